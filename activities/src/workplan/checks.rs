//! The check catalogue, C-00..C-17. The pure checks over a repo's parsed
//! files live here; the checks that need the state store or git (C-01 across
//! repos, C-11, C-12, C-15, C-16, C-17) are raised by the sweep activity with
//! the same codes. `docs/CHECKS.md` documents every code.

use std::collections::{BTreeMap, BTreeSet};

use steward_proto::v1::Finding;
use steward_proto::vocab::CheckCode;

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

/// A finding about `subject` (a key, a task id, a workplan id; empty
/// for the file as a whole): with repo, file and check, what keeps one
/// problem the same problem from one sweep to the next.
fn finding(check: CheckCode, repo: &str, file: &str, subject: &str, message: String) -> Finding {
    Finding {
        check: check.into(),
        repo: repo.into(),
        file: file.into(),
        subject: subject.into(),
        message,
        ..Default::default()
    }
}

/// The workplan ids `files` name, as their own `id` or in `depends_on`:
/// what the assessment asks the store about other repos.
pub fn referenced_ids(files: &[RepoFile]) -> std::collections::BTreeSet<String> {
    let mut ids = std::collections::BTreeSet::new();
    for wp in files.iter().filter_map(|f| f.parsed.as_ref().ok()) {
        if let Some(id) = wp
            .get("id")
            .map(|f| f.value.trim())
            .filter(|v| !v.is_empty())
        {
            ids.insert(id.to_string());
        }
        if let Some(deps) = wp.get("depends_on") {
            ids.extend(super::parse::list_items(&deps.value));
        }
    }
    ids
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
                out.push(finding(CheckCode::Malformed, repo, path, "", e.to_string()));
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
                out.push(finding(
                    CheckCode::MissingWorkplanField,
                    repo,
                    path,
                    key,
                    format!("missing `{key}`"),
                ));
            }
        }
        if let Some(t) = value("type")
            && t != "workplan"
        {
            out.push(finding(
                CheckCode::InvalidValue,
                repo,
                path,
                "type",
                format!("type is `{t}`, expected `workplan`"),
            ));
        }
        let status = value("status");
        if let Some(s) = status
            && !WORKPLAN_STATUSES.contains(&s)
        {
            out.push(finding(
                CheckCode::InvalidWorkplanStatus,
                repo,
                path,
                "status",
                format!("status `{s}` is not one of {WORKPLAN_STATUSES:?}"),
            ));
        }
        let id = value("id").unwrap_or("");
        if !id.is_empty() {
            if let Some(first) = wp_ids.insert(id.to_string(), path) {
                out.push(finding(
                    CheckCode::DuplicateWorkplanId,
                    repo,
                    path,
                    &format!("{id} in {first}"),
                    format!("workplan id `{id}` is also used by {first}"),
                ));
            }
            if let Some(other) = known.elsewhere.get(id) {
                out.push(finding(
                    CheckCode::DuplicateWorkplanId,
                    repo,
                    path,
                    &format!("{id} in repo {other}"),
                    format!("workplan id `{id}` is also used in repo `{other}`"),
                ));
            }
        }
        if let Some(deps) = value("depends_on") {
            for dep in list_items(deps) {
                if !local_ids.contains(&dep) && !known.elsewhere.contains_key(&dep) {
                    out.push(finding(
                        CheckCode::UnknownDependency,
                        repo,
                        path,
                        &dep,
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
            // The task's id names it across sweeps; a task without one is
            // named by its line.
            let who = tv("id")
                .map(str::to_string)
                .unwrap_or_else(|| where_.clone());
            for key in ["id", "status"] {
                if tv(key).is_none() {
                    out.push(finding(
                        CheckCode::MissingTaskField,
                        repo,
                        path,
                        &format!("{who}:{key}"),
                        format!("{where_} misses `{key}`"),
                    ));
                }
            }
            if let Some(tid) = tv("id") {
                if let Some(first) = task_ids.insert(tid.to_string(), path) {
                    out.push(finding(
                        CheckCode::DuplicateTaskId,
                        repo,
                        path,
                        tid,
                        format!("task id `{tid}` is also used in {first}"),
                    ));
                }
                if !id.is_empty() && !tid.starts_with(&format!("{id}-")) {
                    out.push(finding(
                        CheckCode::TaskIdPrefix,
                        repo,
                        path,
                        tid,
                        format!("task id `{tid}` is not prefixed by `{id}-`"),
                    ));
                }
            }
            if let Some(ts) = tv("status") {
                if !TASK_STATUSES.contains(&ts) {
                    out.push(finding(
                        CheckCode::InvalidTaskStatus,
                        repo,
                        path,
                        &who,
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
                    CheckCode::InvalidValue,
                    repo,
                    path,
                    &format!("{who}:priority"),
                    format!("{where_}: priority `{p}` is not one of {PRIORITIES:?}"),
                ));
            }
            match tv("needs_human") {
                None | Some("false") => {}
                Some("true") => {
                    if tv("intervention_note").is_none() {
                        out.push(finding(
                            CheckCode::NeedsHumanWithoutNote,
                            repo,
                            path,
                            &who,
                            format!("{where_}: needs_human without intervention_note"),
                        ));
                    }
                }
                Some(other) => {
                    out.push(finding(
                        CheckCode::InvalidValue,
                        repo,
                        path,
                        &format!("{who}:needs_human"),
                        format!("{where_}: needs_human is `{other}`, expected true or false"),
                    ));
                }
            }
        }
        if status == Some("finished") && !open_tasks.is_empty() {
            out.push(finding(
                CheckCode::FinishedWithOpenTasks,
                repo,
                path,
                "",
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

    #[test]
    fn a_repo_asks_the_store_only_about_the_ids_its_files_name() {
        let files = [
            file(
                "workplans/a.md",
                "---\nid: WP-A\ntype: workplan\ntitle: A\nstatus: active\ndepends_on: [WP-X, \"WP-Y\"]\n---\n",
            ),
            file(
                "workplans/b.md",
                "---\nid: WP-B\ntype: workplan\ntitle: B\nstatus: active\ndepends_on: WP-A\n---\n",
            ),
            file("workplans/c.md", "not a workplan"),
        ];
        let ids: Vec<String> = referenced_ids(&files).into_iter().collect();
        assert_eq!(ids, ["WP-A", "WP-B", "WP-X", "WP-Y"]);
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
    fn the_catalogue_numbers_every_code_in_order_and_the_docs_list_each() {
        let docs = include_str!("../../../docs/CHECKS.md");
        for (i, code) in CheckCode::ALL.iter().enumerate() {
            assert_eq!(code.as_str(), format!("C-{i:02}"));
            assert!(docs.contains(code.as_str()), "docs/CHECKS.md lacks {code}");
        }
    }
}
