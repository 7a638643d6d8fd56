//! `steward upgrade run|status|approve|cold-sweep`.

use std::process::ExitCode;

use anyhow::Context as _;
use futures::StreamExt as _;
use steward_proto::ids;
use steward_proto::names::WARM_UPGRADE;
use steward_proto::v1::{ApproveRequest, ColdSweepInput, UpgradeInput};
use steward_workflows::{ColdSweep, WarmUpgrade};
use temporalio_client::{WorkflowExecutionStatus, WorkflowGetResultOptions, WorkflowListOptions};

use crate::cli::print_json;
use crate::config::Loaded;
use crate::connect;

/// Upgrade commands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Upgrade an app to its latest release (or `--version`), or try a candidate (`--trial`); waits for the outcome.
    Run {
        /// The `[[apps]]` name.
        app: String,
        /// Target version instead of the latest.
        #[arg(long, conflicts_with = "trial")]
        version: Option<String>,
        /// Try this release tag or git revision of the recipe (a branch, a
        /// commit) on the canonical data, then always restore.
        #[arg(long, conflicts_with = "cold")]
        trial: Option<String>,
        /// A cold run: the version on fresh, empty data in a scratch
        /// folder, never the canonical volumes; with `advance = "cold"` a
        /// green one moves last_good.
        #[arg(long)]
        cold: bool,
        /// Why.
        #[arg(long, default_value = "routine upgrade")]
        reason: String,
        /// Who; defaults to $USER.
        #[arg(long, env = "USER", default_value = "unknown")]
        by: String,
        /// Start and return at once.
        #[arg(long)]
        no_wait: bool,
    },
    /// Phase, target, last good, hold of the running (or last) upgrade.
    Status {
        /// The app.
        app: String,
    },
    /// The cold run of every app with a cold setup (or those matching
    /// `--filter`), a few at a time; prints the summary.
    ColdSweep {
        /// Only apps whose name contains this.
        #[arg(long, default_value = "")]
        filter: String,
        /// At most this many at a time (default `[cold_sweep] max_parallel`).
        #[arg(long, default_value_t = 0)]
        max_parallel: u32,
        /// At most this many in all (default `[cold_sweep] max_total`).
        #[arg(long, default_value_t = 0)]
        max_total: u32,
        /// Start and return at once.
        #[arg(long)]
        no_wait: bool,
    },
    /// Approve a held upgrade, for that exact version.
    Approve {
        /// The app.
        app: String,
        /// The held version.
        #[arg(long)]
        version: String,
        /// Why.
        #[arg(long)]
        reason: String,
        /// Who; defaults to $USER.
        #[arg(long, env = "USER", default_value = "unknown")]
        by: String,
    },
}

/// The upgrade of `app` that `status` and `approve` address: a running one
/// (the newest, if a manual run and a scheduled one both are), else the
/// newest closed one; started by hand or by a schedule. A run started a
/// moment ago may not be listed yet, so the manual id is asked directly too.
pub(crate) async fn current_upgrade(
    client: &temporalio_client::Client,
    app: &str,
) -> anyhow::Result<String> {
    let base = ids::warm_upgrade(app);
    let manual = client
        .get_workflow_handle::<WarmUpgrade>(base.clone())
        .describe(Default::default())
        .await
        .ok();
    if manual
        .as_ref()
        .is_some_and(|d| d.status() == WorkflowExecutionStatus::Running)
    {
        return Ok(base);
    }
    let query = format!("WorkflowType = '{WARM_UPGRADE}' AND WorkflowId STARTS_WITH '{base}'");
    let mut runs = client.list_workflows(
        query.clone(),
        WorkflowListOptions::builder().limit(100).build(),
    );
    let mut found: Vec<(bool, Option<std::time::SystemTime>, String)> = Vec::new();
    while let Some(run) = runs.next().await {
        let run = run.with_context(|| format!("listing upgrades matching `{query}`"))?;
        if ids::is_upgrade_of(app, run.id()) {
            let running = run.status() == WorkflowExecutionStatus::Running;
            found.push((running, run.start_time(), run.id().to_string()));
        }
    }
    if let Some(d) = manual {
        found.push((false, d.start_time(), base.clone()));
    }
    found.sort();
    Ok(found.pop().map(|(_, _, id)| id).unwrap_or(base))
}

pub(super) async fn run(loaded: Loaded, cmd: Command) -> anyhow::Result<ExitCode> {
    let known = |app: &str| {
        super::configured(
            &loaded,
            "app",
            app,
            loaded.config.apps.iter().map(|a| a.name.as_str()),
        )
    };
    match cmd {
        Command::Run {
            app,
            version,
            trial,
            cold,
            reason,
            by,
            no_wait,
        } => {
            known(&app)?;
            super::check_operator(&by, &reason)?;
            let input = UpgradeInput {
                app: app.clone(),
                version: trial.clone().or(version).unwrap_or_default(),
                trial: trial.is_some(),
                cold,
                operator: by,
                reason,
                ..Default::default()
            };
            let client = connect::from_env(None).await?;
            let id = ids::warm_upgrade(&app);
            let spec = loaded.config.apps.iter().find(|a| a.name == app);
            let shown = crate::summary::upgrade(spec, &input, "").await;
            let handle = client
                .start_workflow(
                    WarmUpgrade::run,
                    input,
                    shown.start_options(&loaded.config.task_queue, &id),
                )
                .await
                .map_err(|e| {
                    super::start_error(
                        &e,
                        &id,
                        format!(
                            "an upgrade of `{app}` is already running as workflow {id}; see `steward upgrade status {app}`"
                        ),
                    )
                })?;
            if no_wait {
                print_json(&serde_json::json!({ "workflow_id": id, "run_id": handle.run_id() }))?;
                return Ok(ExitCode::SUCCESS);
            }
            eprintln!("started {id}; `steward upgrade status {app}` shows its phase");
            let result = handle
                .get_result(WorkflowGetResultOptions::default())
                .await
                .with_context(|| format!("upgrade {id}"))?;
            print_json(&result)?;
        }
        Command::ColdSweep {
            filter,
            max_parallel,
            max_total,
            no_wait,
        } => {
            let input = ColdSweepInput {
                filter,
                max_parallel,
                max_total,
                source: "cli".into(),
            };
            let by = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
            let shown = crate::summary::cold_sweep(&loaded, &input, &by);
            let id = ids::cold_sweep(&uuid::Uuid::new_v4().simple().to_string());
            let client = connect::from_env(None).await?;
            let handle = client
                .start_workflow(
                    ColdSweep::run,
                    input,
                    shown.start_options(&loaded.config.task_queue, &id),
                )
                .await
                .with_context(|| format!("starting cold sweep {id}"))?;
            if no_wait {
                print_json(&serde_json::json!({ "workflow_id": id, "run_id": handle.run_id() }))?;
                return Ok(ExitCode::SUCCESS);
            }
            eprintln!("started {id}");
            let result = handle
                .get_result(WorkflowGetResultOptions::default())
                .await
                .with_context(|| format!("cold sweep {id}"))?;
            print_json(&result)?;
            if !result.failed.is_empty() {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Status { app } => {
            let client = connect::from_env(None).await?;
            let id = current_upgrade(&client, &app).await?;
            let status = client
                .get_workflow_handle::<WarmUpgrade>(id.clone())
                .query(WarmUpgrade::status, (), Default::default())
                .await
                .with_context(|| format!("no upgrade of `{app}` found (looked for {id})"))?;
            let mut out = serde_json::to_value(&status)?;
            out["workflow_id"] = id.into();
            print_json(&out)?;
        }
        Command::Approve {
            app,
            version,
            reason,
            by,
        } => {
            super::check_operator(&by, &reason)?;
            let client = connect::from_env(None).await?;
            let id = current_upgrade(&client, &app).await?;
            let reply = client
                .get_workflow_handle::<WarmUpgrade>(id)
                .execute_update(
                    WarmUpgrade::approve,
                    ApproveRequest {
                        version,
                        operator: by,
                        reason,
                        ..Default::default()
                    },
                    Default::default(),
                )
                .await
                .map_err(|e| {
                    anyhow::anyhow!("approve refused for `{app}`: {}", super::rejection(&e))
                })?;
            print_json(&reply)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
