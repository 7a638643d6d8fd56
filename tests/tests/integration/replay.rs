//! Recorded sweep histories under `tests/histories/` replay against the
//! current workflow code, so a change that breaks determinism fails CI.

use steward_tests::workspace;
use steward_worker::replay;

#[tokio::test]
async fn recorded_histories_replay_deterministically() {
    let files = replay::history_files(&workspace().join("tests/histories")).unwrap();
    assert!(
        files.len() >= 26,
        "the recorded histories are missing: {files:?}"
    );
    let outcomes = replay::replay_files(&files).await.unwrap();
    let failures: Vec<_> = outcomes.iter().filter(|o| o.error.is_some()).collect();
    assert!(
        failures.is_empty(),
        "histories that no longer replay: {failures:#?}"
    );
}

#[tokio::test]
async fn a_history_of_another_shape_is_reported_as_nondeterministic() {
    // The lock-skipped history with its lock activity renamed: the code
    // schedules `steward.lock.acquire`, the history says otherwise, and the
    // replayer must refuse it.
    let dir = steward_tests::temp_dir();
    let text = std::fs::read_to_string(workspace().join("tests/histories/sweep-lock-skipped.json"))
        .unwrap();
    let tampered = text.replace("steward.lock.acquire", "steward.lock.acquire.v0");
    assert_ne!(text, tampered);
    let file = dir.path().join("tampered.json");
    std::fs::write(&file, tampered).unwrap();
    let outcomes = replay::replay_files(&[file]).await.unwrap();
    let error = outcomes[0].error.as_deref().unwrap_or("");
    assert!(error.contains("ondeterminism"), "{outcomes:?}");
}
