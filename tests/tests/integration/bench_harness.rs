//! The benchmark harness runs: `bench/run` at its tiny size, one
//! repetition, on a debug build, produces every section of the report with
//! figures from real runs. The figures of a tiny debug run mean nothing;
//! docs/BENCHMARKS.md holds a full release run's.

use steward_tests::{read, temp_dir, workspace};

#[test]
fn the_benchmark_harness_runs_every_section_at_its_tiny_size() {
    let dir = temp_dir();
    let out = dir.path().join("BENCHMARKS.md");
    let mut run = std::process::Command::new(workspace().join("bench/run"));
    // bench/run builds the workspace's binaries with cargo, which scripts/test
    // has already built. Cargo gives this test its package's variables;
    // build scripts that read them (ring's) would see them changed and
    // rebuild half the dependency tree, so the child does not inherit them.
    const SET_FOR_TESTS: [&str; 7] = [
        "CARGO_MANIFEST_",
        "CARGO_PKG_",
        "CARGO_CRATE_NAME",
        "CARGO_BIN_",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
        "CARGO_RUSTC_CURRENT_DIR",
    ];
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if SET_FOR_TESTS.iter().any(|p| name.starts_with(p)) {
            run.env_remove(name.as_ref());
        }
    }
    let status = run
        .args([
            "--size",
            "tiny",
            "--reps",
            "1",
            "--profile",
            "debug",
            "--out",
        ])
        .arg(&out)
        .status()
        .expect("running bench/run (python3)");
    assert!(status.success(), "bench/run failed: {status}");
    let report = read(&out);
    for section in [
        "## 1. Worker efficiency against the Python and TypeScript SDKs",
        "## 2. Memory per cached workflow",
        "## 3. Sweep cost as the estate grows",
        "## 4. Backfill throughput",
        "## 5. Crash recovery",
        "## 6. Replay",
        "## 8. Backfills on MariaDB",
        "## 9. The job driver",
    ] {
        assert!(report.contains(section), "{section} missing:\n{report}");
    }
    for worker in [
        "| steward |",
        "| python-sandboxed |",
        "| python-unsandboxed |",
        "| python-unsandboxed-no-gzip |",
        "| typescript |",
        "| 12 | all clean |",
        "| pt-archiver |",
        "| the job alone |",
    ] {
        assert!(report.contains(worker), "{worker} missing:\n{report}");
    }
    assert!(!report.contains("nan"), "every figure measured:\n{report}");
}
