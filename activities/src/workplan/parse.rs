//! Parser for workplan markdown files.
//!
//! A workplan starts with a frontmatter block between `---` lines holding
//! flat `key: value` pairs, and carries tasks as fenced blocks with the info
//! string `task`; a task's title is the nearest heading above it.
//!
//! The parser keeps the byte span of every value so that writeback can
//! change one value and leave every other byte of the file as it was. It
//! accepts the flat subset of YAML these files use (plain, single- and
//! double-quoted scalars, flow lists, comments) and reports anything else as
//! a [`ParseError`]; it never panics, whatever the input.

use std::ops::Range;

/// One `key: value` line of the frontmatter or of a task block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The key, as written.
    pub key: String,
    /// The value with quotes removed and escapes resolved.
    pub value: String,
    /// Byte range of the value as written (quotes included) in the file.
    pub span: Range<usize>,
    /// 1-based line number.
    pub line: usize,
}

/// A `task` fenced block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// Text of the nearest heading above the block, if any.
    pub title: Option<String>,
    /// The block's fields in file order.
    pub fields: Vec<Field>,
    /// Byte offset of the start of the closing fence line.
    pub close_offset: usize,
    /// 1-based line number of the opening fence.
    pub line: usize,
}

/// A parsed workplan file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workplan {
    /// Frontmatter fields in file order.
    pub frontmatter: Vec<Field>,
    /// Byte offset of the start of the closing `---` line.
    pub frontmatter_close_offset: usize,
    /// Task blocks in file order.
    pub tasks: Vec<Task>,
    /// The line ending the file uses (`"\r\n"` or `"\n"`), for inserted lines.
    pub line_ending: &'static str,
}

/// Why a file is not a well-formed workplan. Each is an assessment failure
/// on that file (check C-13), never a crash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The bytes are not UTF-8.
    #[error("file is not valid UTF-8 (byte {0})")]
    NotUtf8(usize),
    /// The first line is not `---`.
    #[error("file does not start with a `---` frontmatter line")]
    NoFrontmatter,
    /// No closing `---`.
    #[error("frontmatter opened on line 1 is never closed with `---`")]
    UnterminatedFrontmatter,
    /// A fenced block is never closed.
    #[error("code fence opened on line {0} is never closed")]
    UnterminatedFence(usize),
    /// A line that is not `key: value`.
    #[error("line {line}: expected `key: value`, found `{text}`")]
    NotKeyValue {
        /// 1-based line.
        line: usize,
        /// The offending line, shortened.
        text: String,
    },
    /// Nested YAML (indented lines, block lists) is not part of the format.
    #[error("line {0}: nested YAML (indentation or `- item`) is not supported here")]
    Nested(usize),
    /// A key given twice in one block.
    #[error("line {line}: duplicate key `{key}` (first on line {first})")]
    DuplicateKey {
        /// The key.
        key: String,
        /// Line of the duplicate.
        line: usize,
        /// Line of the first occurrence.
        first: usize,
    },
    /// A quoted value without its closing quote, or with text after it.
    #[error("line {0}: badly quoted value")]
    BadQuote(usize),
    /// A control character other than tab inside the file.
    #[error("line {0}: control character in text")]
    ControlCharacter(usize),
}

struct Line<'a> {
    /// Text without the line ending.
    text: &'a str,
    /// Byte offset of the line's first byte.
    start: usize,
    /// 1-based.
    number: usize,
}

fn split_lines(text: &str) -> Vec<Line<'_>> {
    let mut lines = Vec::new();
    let mut start = 0;
    for (number, piece) in (1..).zip(text.split_inclusive('\n')) {
        let body = piece.strip_suffix('\n').unwrap_or(piece);
        let body = body.strip_suffix('\r').unwrap_or(body);
        lines.push(Line {
            text: body,
            start,
            number,
        });
        start += piece.len();
    }
    lines
}

/// Parses a workplan from raw bytes.
pub fn parse(bytes: &[u8]) -> Result<Workplan, ParseError> {
    let text = std::str::from_utf8(bytes).map_err(|e| ParseError::NotUtf8(e.valid_up_to()))?;
    let bom = if text.starts_with('\u{feff}') { 3 } else { 0 };
    let lines = split_lines(text);
    for l in &lines {
        if l.text.chars().any(|c| c.is_control() && c != '\t') {
            return Err(ParseError::ControlCharacter(l.number));
        }
    }
    let line_ending = if text.contains("\r\n") { "\r\n" } else { "\n" };

    let first = lines.first().ok_or(ParseError::NoFrontmatter)?;
    if first.text[bom.min(first.text.len())..].trim_end() != "---" {
        return Err(ParseError::NoFrontmatter);
    }
    let close = lines
        .iter()
        .skip(1)
        .position(|l| l.text.trim_end() == "---")
        .map(|i| i + 1)
        .ok_or(ParseError::UnterminatedFrontmatter)?;
    let frontmatter = parse_block(&lines[1..close])?;

    let mut tasks = Vec::new();
    let mut heading: Option<String> = None;
    let mut i = close + 1;
    while i < lines.len() {
        let line = &lines[i];
        if let Some((fence, info)) = fence_open(line.text) {
            let end = lines[i + 1..]
                .iter()
                .position(|l| fence_closes(l.text, &fence))
                .map(|p| p + i + 1)
                .ok_or(ParseError::UnterminatedFence(line.number))?;
            if info == "task" {
                tasks.push(Task {
                    title: heading.clone(),
                    fields: parse_block(&lines[i + 1..end])?,
                    close_offset: lines[end].start,
                    line: line.number,
                });
            }
            i = end + 1;
            continue;
        }
        if let Some(h) = heading_text(line.text) {
            heading = Some(h);
        }
        i += 1;
    }

    Ok(Workplan {
        frontmatter,
        frontmatter_close_offset: lines[close].start,
        tasks,
        line_ending,
    })
}

/// A fence opening: three or more backticks or tildes, then the info string.
fn fence_open(text: &str) -> Option<(String, String)> {
    let trimmed = text.trim_start_matches(' ');
    if text.len() - trimmed.len() > 3 {
        return None;
    }
    let ch = trimmed.chars().next()?;
    if ch != '`' && ch != '~' {
        return None;
    }
    let run = trimmed.chars().take_while(|c| *c == ch).count();
    if run < 3 {
        return None;
    }
    let info = trimmed[run..].trim();
    if ch == '`' && info.contains('`') {
        return None;
    }
    let word = info.split_whitespace().next().unwrap_or("").to_string();
    Some((trimmed[..run].to_string(), word))
}

fn fence_closes(text: &str, fence: &str) -> bool {
    let trimmed = text.trim_start_matches(' ');
    if text.len() - trimmed.len() > 3 {
        return false;
    }
    let ch = fence.chars().next().unwrap_or('`');
    let run = trimmed.chars().take_while(|c| *c == ch).count();
    run >= fence.len() && trimmed[run..].trim().is_empty()
}

fn heading_text(text: &str) -> Option<String> {
    let hashes = text.chars().take_while(|c| *c == '#').count();
    if !(1..=6).contains(&hashes) {
        return None;
    }
    let rest = &text[hashes..];
    if !rest.is_empty() && !rest.starts_with(' ') && !rest.starts_with('\t') {
        return None;
    }
    Some(rest.trim().trim_end_matches('#').trim().to_string())
}

fn parse_block(lines: &[Line<'_>]) -> Result<Vec<Field>, ParseError> {
    let mut fields: Vec<Field> = Vec::new();
    for line in lines {
        let text = line.text;
        let trimmed = text.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if text.starts_with(' ') || text.starts_with('\t') || trimmed.starts_with("- ") {
            return Err(ParseError::Nested(line.number));
        }
        let bad = || ParseError::NotKeyValue {
            line: line.number,
            text: text.chars().take(60).collect(),
        };
        let colon = text.find(':').ok_or_else(bad)?;
        let key = &text[..colon];
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(bad());
        }
        let after = &text[colon + 1..];
        if !after.is_empty() && !after.starts_with(' ') && !after.starts_with('\t') {
            return Err(bad());
        }
        let lead = after.len() - after.trim_start().len();
        let value_start = colon + 1 + lead;
        let (value, len) = scalar(&text[value_start..]).ok_or(ParseError::BadQuote(line.number))?;
        if let Some(first) = fields.iter().find(|f| f.key == key) {
            return Err(ParseError::DuplicateKey {
                key: key.to_string(),
                line: line.number,
                first: first.line,
            });
        }
        let abs = line.start + value_start;
        fields.push(Field {
            key: key.to_string(),
            value,
            span: abs..abs + len,
            line: line.number,
        });
    }
    Ok(fields)
}

/// Reads one scalar at the start of `s`: returns its value and the length
/// of its written form. Trailing `# comment` is allowed after a space.
fn scalar(s: &str) -> Option<(String, usize)> {
    let (value, len) = if let Some(body) = s.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = body.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    end = Some(i + 2);
                    break;
                }
                '\\' => match chars.next()?.1 {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    '"' => out.push('"'),
                    '\\' => out.push('\\'),
                    '/' => out.push('/'),
                    _ => return None,
                },
                c => out.push(c),
            }
        }
        (out, end?)
    } else if let Some(body) = s.strip_prefix('\'') {
        let mut out = String::new();
        let mut end = None;
        let bytes = body.as_bytes();
        let mut i = 0;
        while i < body.len() {
            if bytes[i] == b'\'' {
                if bytes.get(i + 1) == Some(&b'\'') {
                    out.push('\'');
                    i += 2;
                    continue;
                }
                end = Some(i + 2);
                break;
            }
            let c = body[i..].chars().next()?;
            out.push(c);
            i += c.len_utf8();
        }
        (out, end?)
    } else {
        let cut = s.find(" #").or_else(|| s.find("\t#")).unwrap_or(s.len());
        let raw = s[..cut].trim_end();
        if raw.starts_with('#') {
            (String::new(), 0)
        } else {
            (raw.to_string(), raw.len())
        }
    };
    let rest = s[len..].trim_start();
    if !(rest.is_empty() || rest.starts_with('#')) {
        return None;
    }
    Some((value, len))
}

impl Workplan {
    /// The frontmatter value of `key`.
    pub fn get(&self, key: &str) -> Option<&Field> {
        self.frontmatter.iter().find(|f| f.key == key)
    }
}

impl Task {
    /// The task's value of `key`.
    pub fn get(&self, key: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.key == key)
    }
}

/// Splits a flow list (`[a, b]`) or a single value into items.
pub fn list_items(value: &str) -> Vec<String> {
    let inner = value
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .unwrap_or(value);
    inner
        .split(',')
        .map(|s| s.trim().trim_matches('"').trim_matches('\'').to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "---\nid: STATE-WP-0064\ntype: workplan\ntitle: \"Move sync (activity-core)\"\nstatus: finished   # done\ndepends_on: CUST-WP-0011\n---\n\n# STATE-WP-0064\n\n## T1 — ActivityDefinition and cluster wiring\n\n```task\nid: STATE-WP-0064-T01\nstatus: done\npriority: high\nstate_hub_task_id: \"ecc0f846-e00f-4063-8ec1-f6ad630e9265\"\n```\n\n```bash\n## not a heading\n```\n\n```task\nid: STATE-WP-0064-T02\nstatus: todo\n```\n";

    #[test]
    fn parses_frontmatter_and_tasks_with_titles() {
        let wp = parse(SAMPLE.as_bytes()).unwrap();
        assert_eq!(wp.get("id").unwrap().value, "STATE-WP-0064");
        assert_eq!(wp.get("title").unwrap().value, "Move sync (activity-core)");
        assert_eq!(wp.get("status").unwrap().value, "finished");
        assert_eq!(wp.tasks.len(), 2);
        assert_eq!(
            wp.tasks[0].title.as_deref(),
            Some("T1 — ActivityDefinition and cluster wiring")
        );
        assert_eq!(
            wp.tasks[1].title.as_deref(),
            Some("T1 — ActivityDefinition and cluster wiring")
        );
        assert_eq!(
            wp.tasks[0].get("state_hub_task_id").unwrap().value,
            "ecc0f846-e00f-4063-8ec1-f6ad630e9265"
        );
        assert_eq!(wp.line_ending, "\n");
    }

    #[test]
    fn spans_point_at_the_written_value() {
        let wp = parse(SAMPLE.as_bytes()).unwrap();
        let title = wp.get("title").unwrap();
        assert_eq!(&SAMPLE[title.span.clone()], "\"Move sync (activity-core)\"");
        let status = wp.get("status").unwrap();
        assert_eq!(&SAMPLE[status.span.clone()], "finished");
        let t = &wp.tasks[1];
        assert_eq!(&SAMPLE[t.close_offset..t.close_offset + 3], "```");
    }

    #[test]
    fn crlf_files_keep_their_line_ending() {
        let crlf = SAMPLE.replace('\n', "\r\n");
        let wp = parse(crlf.as_bytes()).unwrap();
        assert_eq!(wp.line_ending, "\r\n");
        assert_eq!(wp.get("status").unwrap().value, "finished");
        assert_eq!(wp.tasks.len(), 2);
    }

    #[test]
    fn malformed_inputs_are_errors_not_panics() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "does not start"),
            (b"# no frontmatter\n", "does not start"),
            (b"---\nid: X\n", "never closed"),
            (b"---\nid: X\n---\n```task\nid: X-T1\n", "never closed"),
            (b"---\nid: X\nid: Y\n---\n", "duplicate key `id`"),
            (b"---\nid: \"X\n---\n", "badly quoted"),
            (b"---\njust text\n---\n", "expected `key: value`"),
            (b"---\nlist:\n  - a\n---\n", "nested YAML"),
            (b"---\nid: X\n---\n\xff\xfe", "not valid UTF-8"),
            (b"---\nid: X\x07\n---\n", "control character"),
            (
                b"---\nid: X\n---\n```task\nid: A\nid: B\n```\n",
                "duplicate key",
            ),
        ];
        for (input, expected) in cases {
            let err = parse(input).unwrap_err().to_string();
            assert!(err.contains(expected), "{input:?}: got {err}");
        }
    }

    #[test]
    fn single_quotes_comments_and_lists() {
        let wp = parse(b"---\na: 'it''s'  # c\nb: [X-1, \"X-2\"]\nc:\n---\n").unwrap();
        assert_eq!(wp.get("a").unwrap().value, "it's");
        assert_eq!(list_items(&wp.get("b").unwrap().value), vec!["X-1", "X-2"]);
        assert_eq!(wp.get("c").unwrap().value, "");
    }

    #[test]
    fn bom_is_accepted() {
        let wp = parse("\u{feff}---\nid: X\n---\n".as_bytes()).unwrap();
        assert_eq!(wp.get("id").unwrap().value, "X");
    }

    #[test]
    fn tilde_fences_and_longer_fences_close_properly() {
        let text = "---\nid: X\n---\n~~~~task\nid: X-T1\n~~~\nstill: inside\n~~~~\n";
        // `~~~` does not close a `~~~~` fence, so it is read as a field line.
        let err = parse(text.as_bytes()).unwrap_err();
        assert!(
            matches!(err, ParseError::NotKeyValue { line: 6, .. }),
            "{err}"
        );
        let ok = "---\nid: X\n---\n````task\nid: X-T1\n````\n";
        assert_eq!(parse(ok.as_bytes()).unwrap().tasks.len(), 1);
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            crate::workplan::fuzz_check(&bytes);
        }

        #[test]
        fn parse_never_panics_on_near_valid_text(
            body in "(---\n)?((id|status|title): [\"'a-z0-9 #-]{0,12}\n|```task\n|```\n|## [a-z]{0,5}\n|\r\n| +- x\n){0,20}(---\n)?"
        ) {
            crate::workplan::fuzz_check(body.as_bytes());
        }
    }
}
