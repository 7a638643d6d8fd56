//! Minimal-diff edits of workplan files for writeback: change one value, or
//! insert one `key: "value"` line, and leave every other byte as it was
//! (line endings included).

use super::parse::Field;

/// One edit at a byte position of the original text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Replace the written value of a field.
    Replace {
        /// The field as parsed from the original text.
        field: Field,
        /// The new value (unquoted).
        value: String,
    },
    /// Insert a line `key: "value"` at `offset` (the start of a line).
    Insert {
        /// Byte offset of the start of the line to insert before.
        offset: usize,
        /// The key.
        key: String,
        /// The value (unquoted); written double-quoted.
        value: String,
    },
}

impl Edit {
    fn position(&self) -> usize {
        match self {
            Edit::Replace { field, .. } => field.span.start,
            Edit::Insert { offset, .. } => *offset,
        }
    }
}

/// Applies edits to `text`. Edits may come in any order; positions refer to
/// the original text.
pub fn apply(text: &str, edits: &[Edit], line_ending: &str) -> String {
    let mut sorted: Vec<&Edit> = edits.iter().collect();
    sorted.sort_by_key(|e| std::cmp::Reverse(e.position()));
    let mut out = text.to_string();
    for edit in sorted {
        match edit {
            Edit::Replace { field, value } => {
                let written = &text[field.span.clone()];
                out.replace_range(field.span.clone(), &requote(written, value));
            }
            Edit::Insert { offset, key, value } => {
                let line = format!("{key}: {}{line_ending}", double_quoted(value));
                out.insert_str(*offset, &line);
            }
        }
    }
    out
}

/// Writes `value` in the quoting style of `written`.
fn requote(written: &str, value: &str) -> String {
    if written.starts_with('"') {
        double_quoted(value)
    } else if written.starts_with('\'') {
        format!("'{}'", value.replace('\'', "''"))
    } else if is_plain_safe(value) {
        value.to_string()
    } else {
        double_quoted(value)
    }
}

fn double_quoted(value: &str) -> String {
    let mut s = String::with_capacity(value.len() + 2);
    s.push('"');
    for c in value.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\t' => s.push_str("\\t"),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

fn is_plain_safe(value: &str) -> bool {
    !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workplan::parse;

    const TEXT: &str = "---\r\nid: X\r\nstatus: active  # keep\r\n---\r\n```task\r\nid: X-T1\r\nstatus: \"todo\"\r\n```\r\n";

    #[test]
    fn replace_keeps_quoting_comment_and_line_endings() {
        let wp = parse(TEXT.as_bytes()).unwrap();
        let edits = vec![
            Edit::Replace {
                field: wp.tasks[0].get("status").unwrap().clone(),
                value: "done".into(),
            },
            Edit::Replace {
                field: wp.get("status").unwrap().clone(),
                value: "finished".into(),
            },
        ];
        let out = apply(TEXT, &edits, wp.line_ending);
        assert_eq!(
            out,
            "---\r\nid: X\r\nstatus: finished  # keep\r\n---\r\n```task\r\nid: X-T1\r\nstatus: \"done\"\r\n```\r\n"
        );
    }

    #[test]
    fn insert_adds_one_line_with_the_file_line_ending() {
        let wp = parse(TEXT.as_bytes()).unwrap();
        let edits = vec![
            Edit::Insert {
                offset: wp.frontmatter_close_offset,
                key: "state_hub_workstream_id".into(),
                value: "u-1".into(),
            },
            Edit::Insert {
                offset: wp.tasks[0].close_offset,
                key: "state_hub_task_id".into(),
                value: "u-2".into(),
            },
        ];
        let out = apply(TEXT, &edits, wp.line_ending);
        assert_eq!(
            out,
            "---\r\nid: X\r\nstatus: active  # keep\r\nstate_hub_workstream_id: \"u-1\"\r\n---\r\n```task\r\nid: X-T1\r\nstatus: \"todo\"\r\nstate_hub_task_id: \"u-2\"\r\n```\r\n"
        );
        let again = parse(out.as_bytes()).unwrap();
        assert_eq!(again.get("state_hub_workstream_id").unwrap().value, "u-1");
        assert_eq!(
            again.tasks[0].get("state_hub_task_id").unwrap().value,
            "u-2"
        );
    }

    #[test]
    fn unsafe_plain_values_become_quoted() {
        assert_eq!(requote("todo", "in progress: x"), "\"in progress: x\"");
        assert_eq!(requote("'a'", "it's"), "'it''s'");
        assert_eq!(requote("todo", "done"), "done");
    }
}
