//! `steward backfill start|status|freeze|unfreeze|approve|pause|resume|abort|set`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use steward_proto::ids;
use steward_proto::v1::{BackfillInput, BackfillStatus, OperatorReply, OperatorRequest};
use steward_proto::vocab::OperatorVerb;
use steward_workflows::BackfillRollout;
use temporalio_client::{Client, WorkflowGetResultOptions};

use crate::cli::{ProgressLine, print_json, rejection};
use crate::config::Loaded;
use crate::connect;

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
    /// Live settings: `batch_size=N` and/or `max_lag=S`.
    Set {
        /// Who and why.
        #[command(flatten)]
        op: Op,
        /// `batch_size=N` or `max_lag=S`.
        #[arg(required = true)]
        settings: Vec<String>,
    },
}

/// Who acts on which backfill, and why.
#[derive(Debug, clap::Args)]
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

/// Starts backfill `input.name`'s rollout; its workflow id and run id. A
/// rollout of that backfill still open is named in the error.
pub async fn start(
    client: &Client,
    loaded: &Loaded,
    input: BackfillInput,
) -> anyhow::Result<(String, String)> {
    let name = input.name.clone();
    let id = ids::backfill(&name);
    let shown = crate::summary::backfill(loaded, &input);
    let handle = client
        .start_workflow(
            BackfillRollout::run,
            input,
            shown.start_options(&loaded.config.task_queue, &id),
        )
        .await
        .map_err(|e| {
            super::start_error(
                &e,
                &id,
                format!(
                    "backfill `{name}` is already running as workflow {id}; see `steward backfill status {name}`"
                ),
            )
        })?;
    let run_id = handle.run_id().unwrap_or_default().to_string();
    Ok((id, run_id))
}

/// Normalizes `--freeze-at` to `YYYY-MM-DDTHH:MM:SSZ`.
pub fn freeze_at(text: &str) -> anyhow::Result<String> {
    let t = if text == "now" {
        chrono::Utc::now()
    } else {
        chrono::DateTime::parse_from_rfc3339(text)
            .with_context(|| format!("--freeze-at `{text}` is not an RFC 3339 time like 2026-06-21T22:00:00Z (or `now`)"))?
            .with_timezone(&chrono::Utc)
    };
    Ok(t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

/// Parses `batch_size=N` / `max_lag=S` into a request.
pub fn settings(items: &[String], mut req: OperatorRequest) -> anyhow::Result<OperatorRequest> {
    for item in items {
        let (k, v) = item
            .split_once('=')
            .with_context(|| format!("`{item}`: expected key=value"))?;
        match k {
            "batch_size" => {
                req.batch_size = v
                    .parse()
                    .with_context(|| format!("batch_size `{v}` is not a whole number"))?
            }
            "max_lag" => {
                req.max_lag_seconds = v
                    .parse()
                    .with_context(|| format!("max_lag `{v}` is not a number of seconds"))?
            }
            other => anyhow::bail!("unknown setting `{other}` (use batch_size=N or max_lag=S)"),
        }
    }
    anyhow::ensure!(
        req.batch_size > 0 || req.max_lag_seconds > 0.0,
        "batch_size must be at least 1 and max_lag positive"
    );
    Ok(req)
}

async fn status(client: &Client, name: &str) -> anyhow::Result<BackfillStatus> {
    client
        .get_workflow_handle::<BackfillRollout>(ids::backfill(name))
        .query(BackfillRollout::status, (), Default::default())
        .await
        .with_context(|| {
            format!(
                "no backfill rollout `{}` found (start it with `steward backfill start {name}`)",
                ids::backfill(name)
            )
        })
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
        if s.throttled { " (throttled: lag)" } else { "" },
    )
}

/// Sends the operator update `verb` to backfill `name`. An update that
/// meets the end of a run (the rollout continues as new every
/// `batches_per_run` batches), or the server's limit of concurrent
/// in-flight updates per workflow, is sent again after a wait (doubling
/// from 100 ms to 2 s, with jitter so that many senders spread out) for up
/// to a minute; only a rollout that really ended, or a validator, refuses
/// it.
pub async fn update(
    client: &Client,
    name: &str,
    verb: OperatorVerb,
    req: OperatorRequest,
) -> anyhow::Result<OperatorReply> {
    use std::time::Instant;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut wait = Duration::from_millis(100);
    loop {
        match update_once(client, name, verb, req.clone()).await {
            Err(e) if Instant::now() < deadline && worth_retrying(&e) => {
                let jitter = uuid::Uuid::new_v4().as_u128() % (wait.as_millis() / 2 + 1);
                tokio::time::sleep(wait + Duration::from_millis(jitter as u64)).await;
                wait = (wait * 2).min(Duration::from_secs(2));
            }
            outcome => return outcome,
        }
    }
}

/// Whether the update met a run that had just closed (the server says the
/// execution completed or is not found, or aborts the update it had not yet
/// delivered, while the rollout moves to its next run) or too many updates
/// in flight at once. None of these applied the update.
fn worth_retrying(e: &anyhow::Error) -> bool {
    let text = format!("{e:#}").to_lowercase();
    text.contains("already completed")
        || text.contains("workflow not found")
        || text.contains("concurrent in-flight updates")
        || text.contains("update was aborted")
}

async fn update_once(
    client: &Client,
    name: &str,
    verb: OperatorVerb,
    req: OperatorRequest,
) -> anyhow::Result<OperatorReply> {
    let handle = client.get_workflow_handle::<BackfillRollout>(ids::backfill(name));
    let opts = Default::default();
    let reply = match verb {
        OperatorVerb::Start => {
            anyhow::bail!("`start` is not an operator update; use `steward backfill start {name}`")
        }
        OperatorVerb::Freeze => {
            handle
                .execute_update(BackfillRollout::freeze, req, opts)
                .await
        }
        OperatorVerb::Unfreeze => {
            handle
                .execute_update(BackfillRollout::unfreeze, req, opts)
                .await
        }
        OperatorVerb::Approve => {
            handle
                .execute_update(BackfillRollout::approve, req, opts)
                .await
        }
        OperatorVerb::Pause => {
            handle
                .execute_update(BackfillRollout::pause, req, opts)
                .await
        }
        OperatorVerb::Resume => {
            handle
                .execute_update(BackfillRollout::resume, req, opts)
                .await
        }
        OperatorVerb::Abort => {
            handle
                .execute_update(BackfillRollout::abort, req, opts)
                .await
        }
        OperatorVerb::Set => handle.execute_update(BackfillRollout::set, req, opts).await,
    };
    reply.map_err(|e| anyhow::anyhow!("{verb} refused for backfill `{name}`: {}", rejection(&e)))
}

pub(super) async fn run(loaded: Loaded, cmd: Command) -> anyhow::Result<ExitCode> {
    let known = |name: &str| {
        super::configured(
            &loaded,
            "backfill",
            name,
            loaded.config.backfills.iter().map(|b| b.name.as_str()),
        )
    };
    let client = || connect::from_env(None);
    let op_req = |op: &Op| OperatorRequest {
        operator: op.by.clone(),
        reason: op.reason.clone(),
        ..Default::default()
    };
    let (name, verb, req) = match cmd {
        Command::Start {
            name,
            dry_run,
            batch_size,
            freeze_at: at,
            reason,
            by,
        } => {
            known(&name)?;
            super::check_operator(&by, &reason)?;
            anyhow::ensure!(batch_size != Some(0), "--batch-size must be at least 1");
            anyhow::ensure!(
                !loaded
                    .config
                    .backfills
                    .iter()
                    .any(|b| b.name == name && b.require_verified),
                "backfill `{name}` takes verified operator actions only (require_verified): start it \
                 through steward's API with your operator token (POST /v1/backfills/{name}/start)"
            );
            let input = BackfillInput {
                name: name.clone(),
                dry_run,
                batch_size: batch_size.unwrap_or(0),
                freeze_at: at
                    .as_deref()
                    .map(freeze_at)
                    .transpose()?
                    .unwrap_or_default(),
                operator: by,
                reason,
                ..Default::default()
            };
            let client = client().await?;
            let (id, run_id) = start(&client, &loaded, input).await?;
            print_json(&serde_json::json!({ "workflow_id": id, "run_id": run_id }))?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Status { name, watch } => {
            let client = client().await?;
            let mut s = status(&client, &name).await?;
            if watch {
                // The bar is redrawn every second; the watch ends as soon
                // as the rollout closes (following its continue-as-new
                // runs), not at the next redraw.
                let handle = client.get_workflow_handle::<BackfillRollout>(ids::backfill(&name));
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
                    s = status(&client, &name).await?;
                }
                // The outcome is set before the evidence is written: wait
                // (bounded) for the run to close, so what the watch prints
                // is final and the evidence is on disk.
                if open {
                    let _ = tokio::time::timeout(Duration::from_secs(60), &mut closed).await;
                    s = status(&client, &name).await?;
                }
                line.finish();
            }
            print_json(&s)?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Freeze(op) => (op.name.clone(), OperatorVerb::Freeze, op_req(&op)),
        Command::Unfreeze(op) => (op.name.clone(), OperatorVerb::Unfreeze, op_req(&op)),
        Command::Approve { op, group } => (
            op.name.clone(),
            OperatorVerb::Approve,
            OperatorRequest {
                group,
                ..op_req(&op)
            },
        ),
        Command::Pause(op) => (op.name.clone(), OperatorVerb::Pause, op_req(&op)),
        Command::Resume(op) => (op.name.clone(), OperatorVerb::Resume, op_req(&op)),
        Command::Abort(op) => (op.name.clone(), OperatorVerb::Abort, op_req(&op)),
        Command::Set {
            op,
            settings: items,
        } => (
            op.name.clone(),
            OperatorVerb::Set,
            settings(&items, op_req(&op))?,
        ),
    };
    super::check_operator(&req.operator, &req.reason)?;
    let client = client().await?;
    let reply = update(&client, &name, verb, req).await?;
    print_json(&reply)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freeze_at_normalizes_to_utc() {
        assert_eq!(
            freeze_at("2026-06-21T23:30:00+02:00").unwrap(),
            "2026-06-21T21:30:00Z"
        );
        assert!(
            freeze_at("tomorrow")
                .unwrap_err()
                .to_string()
                .contains("not an RFC 3339 time")
        );
        assert_eq!(freeze_at("now").unwrap().len(), 20);
    }

    #[test]
    fn settings_parse_and_reject_bad_input() {
        let r = settings(
            &["batch_size=50".into(), "max_lag=2.5".into()],
            OperatorRequest::default(),
        )
        .unwrap();
        assert_eq!((r.batch_size, r.max_lag_seconds), (50, 2.5));
        assert!(settings(&["batch_size=0".into()], OperatorRequest::default()).is_err());
        assert!(
            settings(&["speed=fast".into()], OperatorRequest::default())
                .unwrap_err()
                .to_string()
                .contains("unknown setting")
        );
        assert!(settings(&["batch_size=-1".into()], OperatorRequest::default()).is_err());
    }
}
