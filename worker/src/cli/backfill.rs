//! `steward backfill start|status|freeze|unfreeze|approve|pause|resume|abort|set`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use steward_proto::ids;
use steward_proto::v1::BackfillStatus;
use steward_proto::vocab::OperatorVerb;
use steward_workflows::BackfillRollout;
use temporalio_client::WorkflowGetResultOptions;

use crate::cli::{ProgressLine, print_json};
use crate::ops::backfill::{Action, Start};
use crate::ops::{Actor, Ops};

/// Backfill commands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Start the rollout of a configured backfill (workflow `backfill-<name>`).
    Start {
        /// The `[[backfills]]` name.
        name: String,
        /// Stop after the dry-run, unfreeze, write the dry-run report.
        #[arg(long)]
        dry_run: bool,
        /// Batch size for this run.
        #[arg(long)]
        batch_size: Option<u32>,
        /// Freeze automatically at this time (RFC 3339, or `now`); else wait for `freeze`.
        #[arg(long)]
        freeze_at: Option<String>,
        /// Why (recorded in the history and the evidence).
        #[arg(long, default_value = "scheduled backfill")]
        reason: String,
        /// Who starts it; defaults to $USER.
        #[arg(long, env = "USER", default_value = "unknown")]
        by: String,
    },
    /// Phase, batches, rows, rate, ETA; `--watch` shows a live progress bar.
    Status {
        /// The backfill name.
        name: String,
        /// Follow until the rollout ends.
        #[arg(long)]
        watch: bool,
    },
    /// Freeze now (ends the wait for the freeze window).
    Freeze(Op),
    /// Unfreeze after a rollback.
    Unfreeze(Op),
    /// Approve execution for a group.
    Approve {
        /// Who and why.
        #[command(flatten)]
        op: Op,
        /// The approving group.
        #[arg(long)]
        group: String,
    },
    /// Pause before the next batch.
    Pause(Op),
    /// Resume batches.
    Resume(Op),
    /// Stop and roll back.
    Abort(Op),
    /// Live settings: `batch_size=N`, `max_lag=S`, `throttle.NAME=MAX`.
    Set {
        /// Who and why.
        #[command(flatten)]
        op: Op,
        /// `batch_size=N`, `max_lag=S` or `throttle.NAME=MAX`.
        #[arg(required = true)]
        settings: Vec<String>,
    },
}

/// Who acts on which backfill, and why.
#[derive(Debug, Clone, clap::Args)]
pub struct Op {
    /// The backfill name.
    name: String,
    /// Why (recorded in the history and the evidence).
    #[arg(long)]
    reason: String,
    /// Who; defaults to $USER.
    #[arg(long, env = "USER", default_value = "unknown")]
    by: String,
}

/// Parses `batch_size=N` / `max_lag=S` / `throttle.NAME=MAX` into a `set`
/// action's settings;
/// which combinations are acceptable is the operations layer's rule.
pub fn settings(items: &[String], mut action: Action) -> anyhow::Result<Action> {
    for item in items {
        let (k, v) = item
            .split_once('=')
            .with_context(|| format!("`{item}`: expected key=value"))?;
        match k {
            "batch_size" => {
                action.batch_size = Some(
                    v.parse()
                        .with_context(|| format!("batch_size `{v}` is not a whole number"))?,
                )
            }
            "max_lag" => {
                action.max_lag_seconds = Some(
                    v.parse()
                        .with_context(|| format!("max_lag `{v}` is not a number of seconds"))?,
                )
            }
            other => match other.strip_prefix("throttle.") {
                Some(name) if !name.is_empty() => {
                    let max = v
                        .parse()
                        .with_context(|| format!("throttle.{name} `{v}` is not a number"))?;
                    action.throttle_max.insert(name.to_string(), max);
                }
                _ => anyhow::bail!(
                    "unknown setting `{other}` (use batch_size=N, max_lag=S or throttle.NAME=MAX)"
                ),
            },
        }
    }
    Ok(action)
}

fn bar(s: &BackfillStatus) -> String {
    let pct = if s.expected > 0 {
        (s.rows as f64 / s.expected as f64).min(1.0)
    } else {
        0.0
    };
    let filled = (pct * 30.0) as usize;
    let eta = if s.eta_seconds >= 0.0 {
        format!("{:.0}s", s.eta_seconds)
    } else {
        "?".into()
    };
    format!(
        "[{}{}] {:>5.1}% {} rows, {} batches, {:.0} rows/s, ETA {eta}, phase {}{}{}",
        "#".repeat(filled),
        "-".repeat(30 - filled),
        pct * 100.0,
        s.rows,
        s.batches,
        s.rows_per_second,
        s.phase,
        if s.paused { " (paused)" } else { "" },
        throttled(s),
    )
}

/// What holds the batches, when something does: the lag, named throttles.
fn throttled(s: &BackfillStatus) -> String {
    if !s.throttled {
        return String::new();
    }
    let mut by: Vec<String> = s
        .throttles
        .iter()
        .filter(|r| r.over)
        .map(|r| {
            if r.error.is_empty() {
                format!("{} {} > {}", r.name, r.value, r.max)
            } else {
                format!("{} unreadable", r.name)
            }
        })
        .collect();
    if by.is_empty() {
        by.push("lag".into());
    }
    format!(" (throttled: {})", by.join(", "))
}

pub(super) async fn run(ops: Ops, cmd: Command) -> anyhow::Result<ExitCode> {
    let actor = |by: &str| Actor::typed(ops.loaded(), by);
    let action = |op: &Op| Action {
        reason: op.reason.clone(),
        ..Default::default()
    };
    let (op, verb, action) = match cmd {
        Command::Start {
            name,
            dry_run,
            batch_size,
            freeze_at,
            reason,
            by,
        } => {
            let started = ops
                .start_backfill(
                    &actor(&by),
                    &name,
                    Start {
                        dry_run,
                        batch_size,
                        freeze_at,
                        reason,
                    },
                )
                .await?;
            print_json(&started)?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Status { name, watch } => {
            let s = if watch {
                watch_status(&ops, &name).await?
            } else {
                ops.backfill_status(&name).await?
            };
            print_json(&s)?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Freeze(op) => (op.clone(), OperatorVerb::Freeze, action(&op)),
        Command::Unfreeze(op) => (op.clone(), OperatorVerb::Unfreeze, action(&op)),
        Command::Approve { op, group } => (
            op.clone(),
            OperatorVerb::Approve,
            Action {
                group: Some(group),
                ..action(&op)
            },
        ),
        Command::Pause(op) => (op.clone(), OperatorVerb::Pause, action(&op)),
        Command::Resume(op) => (op.clone(), OperatorVerb::Resume, action(&op)),
        Command::Abort(op) => (op.clone(), OperatorVerb::Abort, action(&op)),
        Command::Set {
            op,
            settings: items,
        } => (
            op.clone(),
            OperatorVerb::Set,
            settings(&items, action(&op))?,
        ),
    };
    let reply = ops
        .act_on_backfill(&actor(&op.by), &op.name, verb, action)
        .await?;
    print_json(&reply)?;
    Ok(ExitCode::SUCCESS)
}

/// Redraws the progress bar every second until the rollout closes
/// (following its continue-as-new runs), then waits (bounded) for its
/// evidence: what the watch prints is final.
async fn watch_status(ops: &Ops, name: &str) -> anyhow::Result<BackfillStatus> {
    let mut s = ops.backfill_status(name).await?;
    let handle = ops
        .client()
        .await?
        .get_workflow_handle::<BackfillRollout>(ids::backfill(name));
    let closed = handle.get_result(WorkflowGetResultOptions::default());
    tokio::pin!(closed);
    let mut open = true;
    let mut line = ProgressLine::default();
    while !s.ended() {
        line.show(bar(&s));
        let sleep = tokio::time::sleep(Duration::from_secs(1));
        if open {
            tokio::select! {
                _ = sleep => {}
                _ = &mut closed => open = false,
            }
        } else {
            sleep.await;
        }
        s = ops.backfill_status(name).await?;
    }
    // The outcome is set before the evidence is written: wait (bounded)
    // for the run to close, so what the watch prints is final and the
    // evidence is on disk.
    if open {
        let _ = tokio::time::timeout(Duration::from_secs(60), &mut closed).await;
        s = ops.backfill_status(name).await?;
    }
    line.finish();
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_and_reject_what_is_not_a_setting() {
        let a = settings(
            &["batch_size=50".into(), "max_lag=2.5".into()],
            Action::default(),
        )
        .unwrap();
        assert_eq!((a.batch_size, a.max_lag_seconds), (Some(50), Some(2.5)));
        assert!(
            settings(&["speed=fast".into()], Action::default())
                .unwrap_err()
                .to_string()
                .contains("unknown setting")
        );
        let t = settings(&["throttle.primary-cpu=7.5".into()], Action::default()).unwrap();
        assert_eq!(t.throttle_max.get("primary-cpu"), Some(&7.5));
        assert!(settings(&["throttle.=1".into()], Action::default()).is_err());
        assert!(settings(&["throttle.cpu=high".into()], Action::default()).is_err());
        assert!(settings(&["batch_size=-1".into()], Action::default()).is_err());
        assert!(settings(&["batch_size".into()], Action::default()).is_err());
    }
}
