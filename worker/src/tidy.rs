//! The conventions a reader relies on, checked over the source tree (in
//! the spirit of rust-analyzer's `xtask tidy`): the CLI and the API are
//! two faces over `ops` and never import each other; a word of a closed
//! vocabulary is spelt only in `proto/src/vocab/`; a workflow id is built
//! only in `proto/src/ids.rs`. Tests are left out: they compare payloads
//! with the spellings a history shows.

use std::path::{Path, PathBuf};

use steward_proto::vocab::{
    Advance, BackfillOutcome, BackfillPhase, ChangeState, CheckCode, DrillOutcome, DrillPhase,
    FailoverOutcome, FailoverPhase, Hold, OnUnhealthy, RepoStatus, ScheduleKind, SpecAction,
    StoreBackend, SweepPhase, UpgradeOutcome, UpgradePhase, UpgradeStepKind,
};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the worker crate lives in the workspace")
        .to_path_buf()
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// A file's code as the program sees it: no comments, no test module.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines()
        .filter(|l| {
            let t = l.trim_start();
            !t.starts_with("//")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn shown(path: &Path) -> String {
    path.strip_prefix(workspace())
        .unwrap_or(path)
        .display()
        .to_string()
}

#[test]
fn the_cli_and_the_api_never_import_each_other() {
    let src = workspace().join("worker/src");
    let mut wrong = Vec::new();
    for (face, other) in [("cli", "api"), ("api", "cli")] {
        for file in sources(&src.join(face)) {
            let code = code(&file);
            if code.contains(&format!("crate::{other}"))
                || code.contains(&format!("super::{other}"))
            {
                wrong.push(format!("{} imports {other}", shown(&file)));
            }
        }
    }
    assert!(wrong.is_empty(), "faces over ops only: {wrong:#?}");
}

/// The spellings of the closed vocabularies that cannot be ordinary words:
/// those of two or more words (`awaiting_approval`, `rolled-back`).
fn vocabulary() -> Vec<&'static str> {
    let sets: &[&[&str]] = &[
        Advance::WORDS,
        BackfillOutcome::WORDS,
        BackfillPhase::WORDS,
        ChangeState::WORDS,
        CheckCode::WORDS,
        DrillOutcome::WORDS,
        DrillPhase::WORDS,
        FailoverOutcome::WORDS,
        FailoverPhase::WORDS,
        Hold::WORDS,
        OnUnhealthy::WORDS,
        RepoStatus::WORDS,
        ScheduleKind::WORDS,
        SpecAction::WORDS,
        StoreBackend::WORDS,
        SweepPhase::WORDS,
        UpgradeOutcome::WORDS,
        UpgradePhase::WORDS,
        UpgradeStepKind::WORDS,
    ];
    let mut words: Vec<&str> = sets
        .iter()
        .flat_map(|s| s.iter().copied())
        .filter(|w| w.contains('_') || w.contains('-'))
        .collect();
    words.sort();
    words.dedup();
    words
}

/// Spellings that coincide with a vocabulary word but are not one, with
/// why.
const NOT_THE_WORD: &[(&str, &str, &str)] = &[
    (
        "workflows/src/backfill/mod.rs",
        "rolled-back",
        "the backfill's alert kind, spelt like the upgrade's outcome",
    ),
    (
        "activities/src/upgrade/snapshot.rs",
        "cold_passed",
        "the name of the record file in the snapshot folder",
    ),
    (
        "activities/src/upgrade/versions.rs",
        "manual-migration",
        "a phrase looked for in release notes",
    ),
];

#[test]
fn a_vocabulary_word_is_spelt_only_in_the_vocabulary() {
    let words = vocabulary();
    assert!(words.contains(&"awaiting_approval") && words.contains(&"rolled-back"));
    let mut found = Vec::new();
    for krate in ["worker/src", "workflows/src", "activities/src", "proto/src"] {
        for file in sources(&workspace().join(krate)) {
            if file.starts_with(workspace().join("proto/src/vocab")) {
                continue;
            }
            let code = code(&file);
            for word in &words {
                let excused = NOT_THE_WORD
                    .iter()
                    .any(|(f, w, _)| shown(&file) == *f && w == word);
                if !excused && code.contains(&format!("\"{word}\"")) {
                    found.push(format!("{}: \"{word}\"", shown(&file)));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "use the vocabulary's enum, not its spelling: {found:#?}"
    );
}

#[test]
fn a_workflow_id_is_built_only_in_ids() {
    let prefixes = [
        "backfill-",
        "warm-upgrade-",
        "sweep-",
        "cold-sweep-",
        "cold-run-",
        "restore-drill-",
        "failover-drill-",
    ];
    let mut found = Vec::new();
    for krate in ["worker/src", "workflows/src", "activities/src", "proto/src"] {
        for file in sources(&workspace().join(krate)) {
            if file == workspace().join("proto/src/ids.rs") {
                continue;
            }
            let code = code(&file);
            for p in prefixes {
                if code.contains(&format!("format!(\"{p}{{")) {
                    found.push(format!("{}: format!(\"{p}{{…", shown(&file)));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "build workflow ids with steward_proto::ids: {found:#?}"
    );
}
