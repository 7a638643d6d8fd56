//! `steward restore-drill run|last`: prove the state store's backups
//! restore.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use steward_activities::Store;
use steward_proto::names;
use steward_proto::v1::{RestoreDrillInput, RestoreDrillResult};
use steward_workflows::RestoreDrill;
use temporalio_client::{WorkflowGetResultOptions, WorkflowStartOptions};

use crate::cli::print_json;
use crate::config::Loaded;
use crate::connect;

/// Restore drill commands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Back up the state store, restore it into a scratch target, compare; waits for the outcome (exit 1 unless verified).
    Run {
        /// Verify this existing backup (taken by an earlier drill) instead of taking a new one.
        #[arg(long)]
        backup: Option<PathBuf>,
        /// Who; defaults to $USER.
        #[arg(long, env = "USER", default_value = "unknown")]
        by: String,
    },
    /// The last verified backup and the last drill, from the state store.
    Last,
}

pub(super) async fn run(loaded: Loaded, cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Run { backup, by } => {
            let backup = match backup {
                Some(path) => {
                    let path = std::fs::canonicalize(&path)
                        .with_context(|| format!("backup {}", path.display()))?;
                    path.display().to_string()
                }
                None => String::new(),
            };
            let client = connect::from_env(None).await?;
            let id = format!("restore-drill-{}", uuid::Uuid::new_v4().simple());
            let handle = client
                .start_workflow(
                    RestoreDrill::run,
                    RestoreDrillInput {
                        source: "manual".into(),
                        backup,
                        operator: by,
                    },
                    WorkflowStartOptions::new(loaded.config.task_queue.clone(), id.clone()).build(),
                )
                .await
                .with_context(|| format!("starting {id}"))?;
            eprintln!("restore drill {id} started; waiting for it");
            let result = handle
                .get_result(WorkflowGetResultOptions::default())
                .await
                .with_context(|| format!("waiting for {id}"))?;
            print_json(&result)?;
            Ok(if result.outcome == "verified" {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Last => {
            let store = Store::connect(&loaded.database_url()).await?;
            let drills: Vec<RestoreDrillResult> = store
                .progress(Some(names::RESTORE_EVENT_TYPE), 0, 200)
                .await?
                .iter()
                .filter_map(|e| serde_json::from_str(&e.detail_json).ok())
                .collect();
            let verified = drills.iter().find(|d| d.outcome == "verified");
            print_json(&serde_json::json!({
                "last_verified_backup": verified,
                "last_drill": drills.first(),
            }))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
