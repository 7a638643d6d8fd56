//! Any bytes: the workplan parser returns a workplan or an error, never
//! panics; a parsed workplan's spans lie inside the input and editing a
//! parsed value keeps every other byte.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    steward_activities::workplan::fuzz_check(data);
});
