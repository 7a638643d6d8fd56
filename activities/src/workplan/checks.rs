//! The check catalogue, C-00..C-17. The pure checks over a repo's parsed
//! files live here; the checks that need the state store or git (C-01 across
//! repos, C-11, C-12, C-15, C-16, C-17) are raised by the sweep activity with
//! the same codes. `docs/CHECKS.md` documents every code.

use std::collections::{BTreeMap, BTreeSet};

use steward_proto::v1::Finding;

use super::parse::{ParseError, Workplan, list_items};

/// Workplan status values a file may carry.
pub const WORKPLAN_STATUSES: &[&str] = &[
    "draft",
    "proposed",
    "planned",
    "active",
    "in_progress",
    "blocked",
    "paused",
    "finished",
    "cancelled",
    "archived",
];
/// Task status values a file may carry.
pub const TASK_STATUSES: &[&str] = &[
    "todo",
    "planned",
    "in_progress",
    "blocked",
    "review",
    "done",
    "cancelled",
    "skipped",
];
/// Task statuses that count as closed for C-08.
pub const CLOSED_TASK_STATUSES: &[&str] = &["done", "cancelled", "skipped"];
/// Task priorities.
pub const PRIORITIES: &[&str] = &["low", "medium", "high", "critical"];

/// Every check code with its one-line meaning, in catalogue order.
pub const CATALOGUE: &[(&str, &str)] = &[
    (
        "C-00",
        "automation error: the repo's activity failed after its retries",
    ),
    (
        "C-01",
        "duplicate workplan id (in this repo or across repos)",
    ),
    ("C-02", "duplicate task id"),
    ("C-03", "task id not prefixed by its workplan id"),
    (
        "C-04",
        "workplan frontmatter misses a required field (id, type, title, status)",
    ),
    ("C-05", "invalid workplan status"),
    ("C-06", "task misses a required field (id, status)"),
    ("C-07", "invalid task status"),
    ("C-08", "finished workplan with open tasks"),
    ("C-09", "depends_on names an unknown workplan"),
    ("C-10", "needs_human without intervention_note"),
    (
        "C-11",
        "workplan file deleted while the store still has it (record archived)",
    ),
    (
        "C-12",
        "state_hub id in the file points at another record in the store",
    ),
    (
        "C-13",
        "malformed file (frontmatter, fence, YAML subset, duplicate key, encoding)",
    ),
    (
        "C-14",
        "invalid value (type is not workplan, unknown priority, non-boolean needs_human)",
    ),
    (
        "C-15",
        "writeback conflict: the file's value changed since the last sweep",
    ),
    (
        "C-16",
        "pull gate blocked: diverged or dirty, no writeback to this repo",
    ),
    (
        "C-17",
        "status change queued for a task that no longer exists",
    ),
];

/// A workplan file of one repo, parsed or not.
#[derive(Debug)]
pub struct RepoFile {
    /// Path inside the repo.
    pub path: String,
    /// The parse outcome.
    pub parsed: Result<Workplan, ParseError>,
}

/// What the store knows beyond this repo.
#[derive(Debug, Default)]
pub struct Known {
    /// Live workplan ids owned by other repos, with the owning repo.
    pub elsewhere: BTreeMap<String, String>,
}

fn finding(check: &str, repo: &str, file: &str, message: String) -> Finding {
    Finding {
        check: check.into(),
        repo: repo.into(),
        file: file.into(),
        message,
    }
}

/// Runs the pure checks over one repo's files.
pub fn assess(repo: &str, files: &[RepoFile], known: &Known) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut wp_ids: BTreeMap<String, &str> = BTreeMap::new();
    let mut task_ids: BTreeMap<String, &str> = BTreeMap::new();
    let local_ids: BTreeSet<String> = files
        .iter()
        .filter_map(|f| f.parsed.as_ref().ok())
        .filter_map(|w| w.get("id").map(|f| f.value.clone()))
        .collect();

    for file in files {
        let path = file.path.as_str();
        let wp = match &file.parsed {
            Ok(wp) => wp,
            Err(e) => {
                out.push(finding("C-13", repo, path, e.to_string()));
                continue;
            }
        };
        let value = |k: &str| {
            wp.get(k)
                .map(|f| f.value.as_str())
                .filter(|v| !v.is_empty())
        };
        for key in ["id", "type", "title", "status"] {
            if value(key).is_none() {
                out.push(finding("C-04", repo, path, format!("missing `{key}`")));
            }
        }
        if let Some(t) = value("type")
            && t != "workplan"
        {
            out.push(finding(
                "C-14",
                repo,
                path,
                format!("type is `{t}`, expected `workplan`"),
            ));
        }
        let status = value("status");
        if let Some(s) = status
            && !WORKPLAN_STATUSES.contains(&s)
        {
            out.push(finding(
                "C-05",
                repo,
                path,
                format!("status `{s}` is not one of {WORKPLAN_STATUSES:?}"),
            ));
        }
        let id = value("id").unwrap_or("");
        if !id.is_empty() {
            if let Some(first) = wp_ids.insert(id.to_string(), path) {
                out.push(finding(
                    "C-01",
                    repo,
                    path,
                    format!("workplan id `{id}` is also used by {first}"),
                ));
            }
            if let Some(other) = known.elsewhere.get(id) {
                out.push(finding(
                    "C-01",
                    repo,
                    path,
                    format!("workplan id `{id}` is also used in repo `{other}`"),
                ));
            }
        }
        if let Some(deps) = value("depends_on") {
            for dep in list_items(deps) {
                if !local_ids.contains(&dep) && !known.elsewhere.contains_key(&dep) {
                    out.push(finding(
                        "C-09",
                        repo,
                        path,
                        format!("depends_on `{dep}` is not a known workplan"),
                    ));
                }
            }
        }

        let mut open_tasks = Vec::new();
        for task in &wp.tasks {
            let tv = |k: &str| {
                task.get(k)
                    .map(|f| f.value.as_str())
                    .filter(|v| !v.is_empty())
            };
            let where_ = format!("task on line {}", task.line);
            for key in ["id", "status"] {
                if tv(key).is_none() {
                    out.push(finding(
                        "C-06",
                        repo,
                        path,
                        format!("{where_} misses `{key}`"),
                    ));
                }
            }
            if let Some(tid) = tv("id") {
                if let Some(first) = task_ids.insert(tid.to_string(), path) {
                    out.push(finding(
                        "C-02",
                        repo,
                        path,
                        format!("task id `{tid}` is also used in {first}"),
                    ));
                }
                if !id.is_empty() && !tid.starts_with(&format!("{id}-")) {
                    out.push(finding(
                        "C-03",
                        repo,
                        path,
                        format!("task id `{tid}` is not prefixed by `{id}-`"),
                    ));
                }
            }
            if let Some(ts) = tv("status") {
                if !TASK_STATUSES.contains(&ts) {
                    out.push(finding(
                        "C-07",
                        repo,
                        path,
                        format!("{where_}: status `{ts}` is not one of {TASK_STATUSES:?}"),
                    ));
                }
                if !CLOSED_TASK_STATUSES.contains(&ts) {
                    open_tasks.push(tv("id").unwrap_or("?").to_string());
                }
            }
            if let Some(p) = tv("priority")
                && !PRIORITIES.contains(&p)
            {
                out.push(finding(
                    "C-14",
                    repo,
                    path,
                    format!("{where_}: priority `{p}` is not one of {PRIORITIES:?}"),
                ));
            }
            match tv("needs_human") {
                None | Some("false") => {}
                Some("true") => {
                    if tv("intervention_note").is_none() {
                        out.push(finding(
                            "C-10",
                            repo,
                            path,
                            format!("{where_}: needs_human without intervention_note"),
                        ));
                    }
                }
                Some(other) => {
                    out.push(finding(
                        "C-14",
                        repo,
                        path,
                        format!("{where_}: needs_human is `{other}`, expected true or false"),
                    ));
                }
            }
        }
        if status == Some("finished") && !open_tasks.is_empty() {
            out.push(finding(
                "C-08",
                repo,
                path,
                format!(
                    "finished workplan has open tasks: {}",
                    open_tasks.join(", ")
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workplan::parse;

    fn file(path: &str, text: &str) -> RepoFile {
        RepoFile {
            path: path.into(),
            parsed: parse(text.as_bytes()),
        }
    }

    fn codes(findings: &[Finding]) -> Vec<&str> {
        findings.iter().map(|f| f.check.as_str()).collect()
    }

    const GOOD: &str = "---\nid: WP-1\ntype: workplan\ntitle: t\nstatus: active\n---\n## T1\n```task\nid: WP-1-T01\nstatus: todo\npriority: high\n```\n";

    #[test]
    fn a_good_file_has_no_findings() {
        assert!(assess("r", &[file("workplans/a.md", GOOD)], &Known::default()).is_empty());
    }

    fn one(text: &str) -> Vec<String> {
        codes(&assess("r", &[file("a.md", text)], &Known::default()))
            .into_iter()
            .map(String::from)
            .collect()
    }

    #[test]
    fn each_pure_check_fires_on_its_case() {
        assert_eq!(one("---\nid: WP-1\n"), vec!["C-13"]);
        assert_eq!(
            one("---\nid: WP-1\ntype: workplan\nstatus: active\n---\n"),
            vec!["C-04"]
        );
        assert_eq!(
            one(&GOOD.replace("status: active", "status: nonsense")),
            vec!["C-05"]
        );
        assert_eq!(one(&GOOD.replace("status: todo\n", "")), vec!["C-06"]);
        assert_eq!(
            one(&GOOD.replace("status: todo", "status: whenever")),
            vec!["C-07"]
        );
        assert_eq!(
            one(&GOOD.replace("status: active", "status: finished")),
            vec!["C-08"]
        );
        assert_eq!(
            one(&GOOD.replace("id: WP-1-T01", "id: OTHER-T01")),
            vec!["C-03"]
        );
        assert_eq!(
            one(&GOOD.replace("title: t", "title: t\ndepends_on: NOPE-1")),
            vec!["C-09"]
        );
        assert_eq!(
            one(&GOOD.replace("priority: high", "needs_human: true")),
            vec!["C-10"]
        );
        assert_eq!(
            one(&GOOD.replace(
                "priority: high",
                "needs_human: true\nintervention_note: \"ask\""
            )),
            Vec::<String>::new()
        );
        assert_eq!(
            one(&GOOD.replace("type: workplan", "type: memo")),
            vec!["C-14"]
        );
        assert_eq!(
            one(&GOOD.replace("priority: high", "priority: urgent")),
            vec!["C-14"]
        );
        let two_tasks = GOOD.replace("```\n", "```\n```task\nid: WP-1-T01\nstatus: done\n```\n");
        assert_eq!(one(&two_tasks), vec!["C-02"]);
    }

    #[test]
    fn duplicate_workplan_ids_within_and_across_repos() {
        let f = assess(
            "r",
            &[file("a.md", GOOD), file("b.md", GOOD)],
            &Known::default(),
        );
        assert!(codes(&f).contains(&"C-01"));
        let mut known = Known::default();
        known.elsewhere.insert("WP-1".into(), "other".into());
        let f = assess("r", &[file("a.md", GOOD)], &known);
        assert_eq!(codes(&f), vec!["C-01"]);
        assert!(f[0].message.contains("other"));
    }

    #[test]
    fn depends_on_is_satisfied_by_local_or_known_ids() {
        let dep = GOOD.replace("title: t", "title: t\ndepends_on: [WP-2, EXT-9]");
        let other = GOOD.replace("WP-1", "WP-2");
        let mut known = Known::default();
        known.elsewhere.insert("EXT-9".into(), "x".into());
        let f = assess("r", &[file("a.md", &dep), file("b.md", &other)], &known);
        assert!(f.is_empty(), "{f:?}");
    }

    #[test]
    fn catalogue_lists_every_code_once_in_order() {
        for (i, (code, _)) in CATALOGUE.iter().enumerate() {
            assert_eq!(*code, format!("C-{i:02}"));
        }
    }
}
