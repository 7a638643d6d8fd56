//! `steward upgrade run|status|approve`.

use std::process::ExitCode;

use anyhow::Context as _;
use steward_proto::v1::{ApproveRequest, UpgradeInput};
use steward_workflows::WarmUpgrade;
use temporalio_client::{WorkflowGetResultOptions, WorkflowStartOptions};

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
        /// Try this version on the canonical data, then always restore.
        #[arg(long)]
        trial: Option<String>,
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

/// The workflow id of an app's upgrade.
pub fn workflow_id(app: &str) -> String {
    format!("warm-upgrade-{app}")
}

pub(super) async fn run(loaded: Loaded, cmd: Command) -> anyhow::Result<ExitCode> {
    let known = |app: &str| -> anyhow::Result<()> {
        anyhow::ensure!(
            loaded.config.apps.iter().any(|a| a.name == app),
            "no app named `{app}` in {} (configured: {})",
            loaded.path.display(),
            loaded
                .config
                .apps
                .iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(())
    };
    match cmd {
        Command::Run {
            app,
            version,
            trial,
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
                operator: by,
                reason,
            };
            let client = connect::from_env(None).await?;
            let id = workflow_id(&app);
            let handle = client
                .start_workflow(WarmUpgrade::run, input, WorkflowStartOptions::new(loaded.config.task_queue.clone(), id.clone()).build())
                .await
                .map_err(|e| {
                    let text = e.to_string();
                    if text.to_lowercase().contains("already") {
                        anyhow::anyhow!("an upgrade of `{app}` is already running as workflow {id}; see `steward upgrade status {app}`")
                    } else {
                        anyhow::anyhow!("starting {id}: {text}")
                    }
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
        Command::Status { app } => {
            let client = connect::from_env(None).await?;
            let status = client
                .get_workflow_handle::<WarmUpgrade>(workflow_id(&app))
                .query(WarmUpgrade::status, (), Default::default())
                .await
                .with_context(|| format!("no upgrade `{}` found", workflow_id(&app)))?;
            print_json(&status)?;
        }
        Command::Approve {
            app,
            version,
            reason,
            by,
        } => {
            super::check_operator(&by, &reason)?;
            let client = connect::from_env(None).await?;
            let reply = client
                .get_workflow_handle::<WarmUpgrade>(workflow_id(&app))
                .execute_update(
                    WarmUpgrade::approve,
                    ApproveRequest {
                        version,
                        operator: by,
                        reason,
                    },
                    Default::default(),
                )
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "approve refused for `{app}`: {}",
                        crate::cli::backfill::rejection(&e)
                    )
                })?;
            print_json(&reply)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
