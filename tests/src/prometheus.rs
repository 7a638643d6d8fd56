//! Prometheus' own tool on what steward exports and ships: `promtool`
//! (Debian `prometheus`, installed by `scripts/setup`).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The `promtool` on PATH; a test without it fails saying how to get it.
pub fn promtool() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("promtool"))
            .find(|p| p.is_file())
    });
    found.expect("promtool not found: run ./scripts/setup (it installs Debian's prometheus)")
}

/// Runs `promtool <args>` in `dir`; its exit success and its output.
pub fn run_promtool(dir: &std::path::Path, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut child = Command::new(promtool())
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Asserts `promtool check metrics` finds nothing wrong in `exposition`.
pub fn assert_promtool_accepts(exposition: &str, what: &str) {
    let (ok, said) = run_promtool(
        std::path::Path::new("."),
        &["check", "metrics"],
        Some(exposition),
    );
    assert!(ok, "promtool check metrics on {what}: {said}");
}

/// The metric families named in a PromQL expression: `steward_…`,
/// `steward:…` (recorded) and `up`, as written.
pub fn metrics_in(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut in_string = false;
    for c in expr.chars().chain(std::iter::once(' ')) {
        if c == '"' {
            in_string = !in_string;
        }
        if !in_string && (c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            word.push(c);
            continue;
        }
        if word.starts_with("steward_") || word.starts_with("steward:") || word == "up" {
            out.push(std::mem::take(&mut word));
        }
        word.clear();
    }
    out
}
