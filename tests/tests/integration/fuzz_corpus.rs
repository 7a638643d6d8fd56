//! The cargo-fuzz corpus under `fuzz/corpus/` (seed inputs and whatever the
//! fuzzer kept) replayed through the same checks the fuzz targets run, so
//! CI guards them without a nightly toolchain.

use steward_tests::workspace;

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = workspace().join("fuzz/corpus").join(target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    assert!(
        files.len() >= 4,
        "the {target} corpus is missing: {files:?}"
    );
    files
}

#[test]
fn the_workplan_corpus_passes_the_fuzz_checks() {
    let files = corpus("workplan");
    let parsed = files
        .iter()
        .filter(|(_, bytes)| steward_activities::workplan::parse(bytes).is_ok())
        .count();
    assert!(parsed >= 3, "the corpus holds real workplans");
    for (name, bytes) in &files {
        let outcome = std::panic::catch_unwind(|| steward_activities::workplan::fuzz_check(bytes));
        assert!(outcome.is_ok(), "{name}");
    }
}

#[test]
fn the_config_corpus_passes_the_fuzz_checks() {
    for (name, bytes) in corpus("config") {
        let text = String::from_utf8(bytes).unwrap();
        let outcome = std::panic::catch_unwind(|| steward_worker::config::fuzz_check(&text));
        assert!(outcome.is_ok(), "{name}");
    }
}
