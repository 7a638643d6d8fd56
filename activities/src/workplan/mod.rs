//! Workplan files: the pure parser, the check catalogue and the minimal-diff
//! edits used by writeback. Nothing in this module does I/O.

pub mod checks;
pub mod edit;
pub mod parse;

pub use parse::{Field, ParseError, Task, Workplan, parse};
