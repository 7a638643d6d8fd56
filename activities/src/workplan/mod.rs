//! Workplan files: the pure parser, the check catalogue and the minimal-diff
//! edits used by writeback. Nothing in this module does I/O.

pub mod checks;
pub mod edit;
pub mod parse;

pub use parse::{Field, ParseError, Task, Workplan, parse};

/// The properties the fuzz target (`fuzz/fuzz_targets/workplan.rs`), the
/// property tests and the corpus test check on any input: parsing never
/// panics; a parsed workplan's spans and offsets lie on character
/// boundaries inside the input; replacing one value changes only the bytes
/// of that value. Panics when a property does not hold.
pub fn fuzz_check(bytes: &[u8]) {
    let Ok(wp) = parse(bytes) else {
        return;
    };
    let text = std::str::from_utf8(bytes).expect("a parsed workplan is UTF-8");
    let inside = |at: usize| at <= text.len() && text.is_char_boundary(at);
    assert!(inside(wp.frontmatter_close_offset));
    for task in &wp.tasks {
        assert!(inside(task.close_offset));
    }
    let fields = wp
        .frontmatter
        .iter()
        .chain(wp.tasks.iter().flat_map(|t| t.fields.iter()));
    for field in fields {
        assert!(
            field.span.start <= field.span.end
                && inside(field.span.start)
                && inside(field.span.end),
            "span {:?} of `{}` outside the input",
            field.span,
            field.key
        );
        let replaced = edit::apply(
            text,
            &[edit::Edit::Replace {
                field: field.clone(),
                value: "x y".into(),
            }],
            wp.line_ending,
        );
        assert!(
            replaced.starts_with(&text[..field.span.start])
                && replaced.ends_with(&text[field.span.end..]),
            "editing `{}` changed bytes outside its value",
            field.key
        );
    }
}
