//! `steward sweep run|compare`.

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use serde::Serialize;
use steward_activities::Store;
use steward_proto::names;
use steward_proto::v1::{ProgressEvent, SweepInput, SweepResult};
use steward_workflows::ConsistencySweep;
use temporalio_client::{Client, WorkflowGetResultOptions, WorkflowStartOptions};

use crate::cli::print_json;
use crate::config::Loaded;
use crate::connect;

/// Sweep commands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Start a sweep, wait for it, print its result; exit 1 on automation errors.
    Run {
        /// Budget in seconds (default: `[sweep].max_seconds`).
        #[arg(long)]
        max_seconds: Option<u32>,
        /// Source tag recorded in the progress event.
        #[arg(long, default_value = "manual")]
        source: String,
        /// Reassess every repo, ignoring the clean fingerprint.
        #[arg(long)]
        full: bool,
        /// Repos processed at once (default: `[sweep].concurrency`).
        #[arg(long)]
        concurrency: Option<u32>,
    },
    /// Per source: sweeps, completed, lock-skipped, automation errors, assessment failures.
    Compare {
        /// Look back this many hours.
        #[arg(long, default_value_t = 24.0)]
        since_hours: f64,
    },
}

/// Starts a sweep and waits for its result, showing progress on stderr.
pub async fn start_and_wait(
    client: &Client,
    task_queue: &str,
    input: SweepInput,
) -> anyhow::Result<SweepResult> {
    let id = format!(
        "sweep-{}-{}",
        input
            .source
            .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "-"),
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
    );
    let handle = client
        .start_workflow(
            ConsistencySweep::run,
            input,
            WorkflowStartOptions::new(task_queue.to_owned(), id.clone()).build(),
        )
        .await
        .with_context(|| format!("starting sweep {id}"))?;
    eprintln!("started {id}; follow it with `steward history {id}`");
    let tty = std::io::stderr().is_terminal();
    let result = handle.get_result(WorkflowGetResultOptions::default());
    tokio::pin!(result);
    let mut last = String::new();
    loop {
        tokio::select! {
            r = &mut result => {
                if tty { eprintln!(); }
                return r.with_context(|| format!("sweep {id} did not complete"));
            }
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                if let Ok(p) = handle.query(ConsistencySweep::progress, (), Default::default()).await {
                    let line = format!("{id}: {} {}/{} repos", p.phase, p.repos_done, p.repos_total);
                    if line != last {
                        if tty { eprint!("\r{line}   "); } else { eprintln!("{line}"); }
                        last = line;
                    }
                }
            }
        }
    }
}

/// Per-source counts for a parallel run of two runners.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct SourceStats {
    /// Sweep events.
    pub sweeps: u32,
    /// Sweeps that took the lock and ran.
    pub completed: u32,
    /// Sweeps skipped because another held the lock.
    pub lock_skipped: u32,
    /// Sweeps with at least one automation error.
    pub automation_errors: u32,
    /// Assessment failures over all sweeps.
    pub assessment_failures: u32,
}

/// Groups sweep progress events by source.
pub fn compare(events: &[ProgressEvent]) -> BTreeMap<String, SourceStats> {
    let mut out: BTreeMap<String, SourceStats> = BTreeMap::new();
    for e in events {
        let Ok(r) = serde_json::from_str::<SweepResult>(&e.detail_json) else {
            continue;
        };
        let s = out.entry(e.source.clone()).or_default();
        s.sweeps += 1;
        if r.lock_skipped {
            s.lock_skipped += 1;
        } else {
            s.completed += 1;
        }
        s.automation_errors += u32::from(r.automation_error);
        s.assessment_failures += r.assessment_failures.len() as u32;
    }
    out
}

pub(super) async fn run(loaded: Loaded, cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Run {
            max_seconds,
            source,
            full,
            concurrency,
        } => {
            anyhow::ensure!(max_seconds != Some(0), "--max-seconds must be at least 1");
            anyhow::ensure!(concurrency != Some(0), "--concurrency must be at least 1");
            anyhow::ensure!(!source.trim().is_empty(), "--source must not be empty");
            let client = connect::from_env(None).await?;
            let input = SweepInput {
                source,
                max_seconds: max_seconds.unwrap_or(0),
                full,
                concurrency: concurrency.unwrap_or(0),
                schedule_id: String::new(),
            };
            let result = start_and_wait(&client, &loaded.config.task_queue, input).await?;
            print_json(&result)?;
            Ok(ExitCode::from(result.exit_code.clamp(0, 255) as u8))
        }
        Command::Compare { since_hours } => {
            anyhow::ensure!(since_hours > 0.0, "--since-hours must be positive");
            let store = Store::connect(&loaded.database_url()).await?;
            let since = chrono::Utc::now().timestamp_millis() - (since_hours * 3_600_000.0) as i64;
            let events = store
                .progress(Some(names::SWEEP_EVENT_TYPE), since, i64::MAX)
                .await?;
            print_json(&serde_json::json!({
                "since_hours": since_hours,
                "by_source": compare(&events),
            }))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use steward_proto::v1::Finding;

    fn event(source: &str, r: SweepResult) -> ProgressEvent {
        ProgressEvent {
            source: source.into(),
            detail_json: serde_json::to_string(&r).unwrap(),
            ..Default::default()
        }
    }

    #[test]
    fn compare_counts_per_source() {
        let events = vec![
            event(
                "schedule",
                SweepResult {
                    lock_skipped: true,
                    ..Default::default()
                },
            ),
            event(
                "schedule",
                SweepResult {
                    automation_error: true,
                    assessment_failures: vec![Finding::default(), Finding::default()],
                    ..Default::default()
                },
            ),
            event("local-timer", SweepResult::default()),
        ];
        let c = compare(&events);
        assert_eq!(
            c["schedule"],
            SourceStats {
                sweeps: 2,
                completed: 1,
                lock_skipped: 1,
                automation_errors: 1,
                assessment_failures: 2
            }
        );
        assert_eq!(c["local-timer"].completed, 1);
    }
}
