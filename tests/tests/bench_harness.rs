//! The benchmark harness runs: `bench/run` at its tiny size, one
//! repetition, on a debug build, produces every section of the report with
//! figures from real runs. The figures of a tiny debug run mean nothing;
//! docs/BENCHMARKS.md holds a full release run's.

use steward_tests::{read, temp_dir, workspace};

#[test]
fn the_benchmark_harness_runs_every_section_at_its_tiny_size() {
    let dir = temp_dir();
    let out = dir.path().join("BENCHMARKS.md");
    let status = std::process::Command::new(workspace().join("bench/run"))
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
        "## 1. Worker efficiency against the Python SDK",
        "## 2. Memory per cached workflow",
        "## 3. Sweep cost",
        "## 4. Backfill throughput",
        "## 5. Crash recovery",
        "## 6. Replay",
    ] {
        assert!(report.contains(section), "{section} missing:\n{report}");
    }
    for worker in [
        "| steward |",
        "| python-sandboxed |",
        "| python-unsandboxed |",
        "| python-unsandboxed-no-gzip |",
    ] {
        assert!(report.contains(worker), "{worker} missing:\n{report}");
    }
    assert!(!report.contains("nan"), "every figure measured:\n{report}");
}
