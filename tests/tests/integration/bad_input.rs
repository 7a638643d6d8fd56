//! What a user can get wrong outside the config file and what they get
//! back: an error that names the problem, the exit code of its kind (2 for
//! a request that is wrong, 4 for a dependency that is not there), nothing
//! started, and no secret in the message.

use std::time::{Duration, Instant};

use steward_tests::{PLANTED_SECRET, run_steward, temp_dir, write_config};

#[test]
fn an_unreachable_state_store_is_named_without_its_password() {
    let dir = temp_dir();
    let url = format!("postgres://steward:{PLANTED_SECRET}@127.0.0.1:1/steward");
    let config = write_config(dir.path(), &url, "q", &[], "");
    let (code, out, err) = run_steward(&config, "127.0.0.1:1", &["progress"]);
    assert_eq!(code, 4, "a dependency that is not there: {out}{err}");
    assert!(err.starts_with("steward: "), "{err}");
    assert!(
        err.contains("127.0.0.1:1"),
        "the error names the store: {err}"
    );
    assert!(
        !err.contains(PLANTED_SECRET),
        "the password stays out: {err}"
    );
}

#[test]
fn an_unreachable_temporal_server_is_named_and_nothing_hangs() {
    let dir = temp_dir();
    let db = format!("sqlite://{}", dir.path().join("state.db").display());
    let config = write_config(dir.path(), &db, "q", &[], "");
    let started = Instant::now();
    let (code, out, err) = run_steward(&config, "127.0.0.1:1", &["sweep", "run"]);
    assert_eq!(code, 4, "a dependency that is not there: {out}{err}");
    assert!(
        err.contains("127.0.0.1:1") && err.contains("TEMPORAL_ADDRESS"),
        "the error names the server and how to point at another: {err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "gave up in {:?}",
        started.elapsed()
    );
}

#[test]
fn a_state_store_url_of_another_kind_is_refused_before_anything_runs() {
    let dir = temp_dir();
    let config = write_config(dir.path(), "mysql://root@db/steward", "q", &[], "");
    let (code, _, err) = run_steward(&config, "127.0.0.1:1", &["check-config"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("database_url") && err.contains("sqlite:, postgres:// or postgresql://"),
        "{err}"
    );
}
