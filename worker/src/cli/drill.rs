//! `steward drill failover run|last`: drill a database service's failover,
//! and show the last drill.

use std::process::ExitCode;

use anyhow::Context as _;
use steward_activities::Store;
use steward_proto::v1::{FailoverDrillInput, FailoverDrillResult};
use steward_proto::vocab::FailoverOutcome;
use steward_proto::{ids, names};
use steward_workflows::FailoverDrill;
use temporalio_client::WorkflowGetResultOptions;

use crate::cli::print_json;
use crate::config::Loaded;
use crate::connect;

/// Drill commands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Failover drills of a `[[drills]]` service.
    #[command(subcommand)]
    Failover(Failover),
}

/// Failover drill commands.
#[derive(Debug, clap::Subcommand)]
pub enum Failover {
    /// Fail the primary as the config documents, measure RTO and RPO, verify every acknowledged write; waits for the outcome (exit 1 unless passed).
    Run {
        /// The `[[drills]]` name.
        drill: String,
        /// Why.
        #[arg(long, default_value = "failover drill")]
        reason: String,
        /// Who; defaults to $USER.
        #[arg(long, env = "USER", default_value = "unknown")]
        by: String,
        /// Start and return at once.
        #[arg(long)]
        no_wait: bool,
    },
    /// The last drill of the service, and the last one that passed.
    Last {
        /// The `[[drills]]` name.
        drill: String,
    },
}

pub(super) async fn run(loaded: Loaded, cmd: Command) -> anyhow::Result<ExitCode> {
    let Command::Failover(cmd) = cmd;
    let known = |drill: &str| {
        super::configured(
            &loaded,
            "drill",
            drill,
            loaded.config.drills.iter().map(|d| d.name.as_str()),
        )
    };
    match cmd {
        Failover::Run {
            drill,
            reason,
            by,
            no_wait,
        } => {
            known(&drill)?;
            super::check_operator(&by, &reason)?;
            let input = FailoverDrillInput {
                drill: drill.clone(),
                source: "cli".into(),
                operator: by,
                reason,
            };
            let id = ids::failover_drill(&drill, &uuid::Uuid::new_v4().simple().to_string());
            let shown = crate::summary::failover_drill(&loaded, &input);
            let client = connect::from_env(None).await?;
            let handle = client
                .start_workflow(
                    FailoverDrill::run,
                    input,
                    shown.start_options(&loaded.config.task_queue, &id),
                )
                .await
                .with_context(|| format!("starting {id}"))?;
            if no_wait {
                print_json(&serde_json::json!({ "workflow_id": id, "run_id": handle.run_id() }))?;
                return Ok(ExitCode::SUCCESS);
            }
            eprintln!("failover drill {id} started; waiting for it");
            let result = handle
                .get_result(WorkflowGetResultOptions::default())
                .await
                .with_context(|| format!("waiting for {id}"))?;
            print_json(&result)?;
            Ok(if FailoverOutcome::Passed == result.outcome {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Failover::Last { drill } => {
            known(&drill)?;
            let store = Store::connect(&loaded.database_url()).await?;
            let drills: Vec<FailoverDrillResult> = store
                .progress(Some(names::FAILOVER_EVENT_TYPE), 0, 500)
                .await?
                .iter()
                .filter_map(|e| serde_json::from_str::<FailoverDrillResult>(&e.detail_json).ok())
                .filter(|r| r.drill == drill)
                .collect();
            let passed = drills.iter().find(|d| FailoverOutcome::Passed == d.outcome);
            print_json(&serde_json::json!({
                "last_drill": drills.first(),
                "last_passed": passed,
            }))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
