//! `steward upgrade run|status|approve`.

use std::process::ExitCode;

use anyhow::Context as _;
use futures::StreamExt as _;
use steward_proto::names::WARM_UPGRADE;
use steward_proto::v1::{ApproveRequest, UpgradeInput};
use steward_workflows::WarmUpgrade;
use temporalio_client::{
    WorkflowExecutionStatus, WorkflowGetResultOptions, WorkflowListOptions, WorkflowStartOptions,
};

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

/// The workflow id of an app's upgrade started by `steward upgrade run`.
pub fn workflow_id(app: &str) -> String {
    format!("warm-upgrade-{app}")
}

/// Whether `id` is one of `app`'s upgrades: the id `steward upgrade run`
/// gives, or that id with the `-<RFC 3339 time>` a Temporal Schedule appends
/// to the runs it starts (so app `sso` does not claim `sso-eu`'s runs).
fn is_upgrade_of(app: &str, id: &str) -> bool {
    let base = workflow_id(app);
    match id.strip_prefix(base.as_str()) {
        Some("") => true,
        Some(rest) => rest
            .strip_prefix('-')
            .is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok()),
        None => false,
    }
}

/// The upgrade of `app` that `status` and `approve` address: a running one
/// (the newest, if a manual run and a scheduled one both are), else the
/// newest closed one; started by hand or by a schedule. A run started a
/// moment ago may not be listed yet, so the manual id is asked directly too.
async fn current_upgrade(client: &temporalio_client::Client, app: &str) -> anyhow::Result<String> {
    let base = workflow_id(app);
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
        if is_upgrade_of(app, run.id()) {
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

#[cfg(test)]
mod tests {
    use super::is_upgrade_of;

    #[test]
    fn an_apps_upgrades_are_its_manual_id_and_its_scheduled_ids() {
        assert!(is_upgrade_of("sso", "warm-upgrade-sso"));
        assert!(is_upgrade_of(
            "sso",
            "warm-upgrade-sso-2026-12-02T03:00:00Z"
        ));
        assert!(!is_upgrade_of("sso", "warm-upgrade-sso-eu"));
        assert!(!is_upgrade_of(
            "sso",
            "warm-upgrade-sso-eu-2026-12-02T03:00:00Z"
        ));
        assert!(!is_upgrade_of("sso", "warm-upgrade-ss"));
        assert!(is_upgrade_of(
            "sso-eu",
            "warm-upgrade-sso-eu-2026-12-02T03:00:00Z"
        ));
    }
}
