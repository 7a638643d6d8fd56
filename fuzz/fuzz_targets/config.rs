//! Any text: the config loader returns a config or an error naming the
//! file, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        steward_worker::config::fuzz_check(text);
    }
});
