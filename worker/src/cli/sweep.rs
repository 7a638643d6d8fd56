//! `steward sweep run|compare`.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use serde::Serialize;
use steward_activities::Store;
use steward_proto::v1::{ProgressEvent, SweepInput, SweepResult};
use steward_proto::{ids, names};
use steward_workflows::ConsistencySweep;
use temporalio_client::{Client, WorkflowGetResultOptions};

use crate::cli::{ProgressLine, print_json};
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
    /// Per source: sweeps, completed, lock-skipped, automation errors, open findings.
    Compare {
        /// Look back this many hours.
        #[arg(long, default_value_t = 24.0)]
        since_hours: f64,
    },
}

/// Starts a sweep; its workflow id and run id.
pub async fn start(
    client: &Client,
    loaded: &Loaded,
    input: SweepInput,
) -> anyhow::Result<(String, String)> {
    let shown = crate::summary::sweep(loaded, &input);
    let id = ids::sweep(
        &input.source,
        &chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ").to_string(),
    );
    let handle = client
        .start_workflow(
            ConsistencySweep::run,
            input,
            shown.start_options(&loaded.config.task_queue, &id),
        )
        .await
        .with_context(|| format!("starting sweep {id}"))?;
    let run_id = handle.run_id().unwrap_or_default().to_string();
    Ok((id, run_id))
}

/// Starts a sweep and waits for its result, showing progress on stderr.
pub async fn start_and_wait(
    client: &Client,
    loaded: &Loaded,
    input: SweepInput,
) -> anyhow::Result<SweepResult> {
    let (id, _) = start(client, loaded, input).await?;
    let handle = client.get_workflow_handle::<ConsistencySweep>(id.clone());
    eprintln!("started {id}; follow it with `steward history {id}`");
    let result = handle.get_result(WorkflowGetResultOptions::default());
    tokio::pin!(result);
    let mut line = ProgressLine::default();
    loop {
        tokio::select! {
            r = &mut result => {
                line.finish();
                return r.with_context(|| format!("sweep {id} did not complete"));
            }
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                if let Ok(p) = handle.query(ConsistencySweep::progress, (), Default::default()).await {
                    line.show(format!("{id}: {} {}/{} repos", p.phase, p.repos_done, p.repos_total));
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
    /// Open findings of the estate as the source's newest completed sweep
    /// reported them: the same ledger, so two runners compare like with
    /// like.
    pub open_findings: u32,
}

/// The open findings a sweep reported: the ledger's count, or (a sweep
/// recorded before the ledger, or another runner's) what it listed.
fn open_findings(r: &SweepResult) -> u32 {
    r.open_findings
        .max(r.assessment_failures.len() as u32 + r.findings_omitted)
}

/// Groups sweep progress events (newest first) by source.
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
            if s.completed == 0 {
                s.open_findings = open_findings(&r);
            }
            s.completed += 1;
        }
        s.automation_errors += u32::from(r.automation_error);
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
            let result = start_and_wait(&client, &loaded, input).await?;
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
                    open_findings: 5,
                    findings_omitted: 3,
                    ..Default::default()
                },
            ),
            event(
                "schedule",
                SweepResult {
                    open_findings: 9,
                    ..Default::default()
                },
            ),
            event(
                "local-timer",
                SweepResult {
                    assessment_failures: vec![Finding::default()],
                    ..Default::default()
                },
            ),
        ];
        let c = compare(&events);
        assert_eq!(
            c["schedule"],
            SourceStats {
                sweeps: 3,
                completed: 2,
                lock_skipped: 1,
                automation_errors: 1,
                open_findings: 5,
            },
            "the newest completed sweep's open findings, not a sum"
        );
        assert_eq!(c["local-timer"].completed, 1);
        assert_eq!(
            c["local-timer"].open_findings, 1,
            "a runner without the ledger counts what it listed"
        );
    }
}
