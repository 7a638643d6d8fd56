//! `steward restore-drill run|last|keygen`: prove the state store's
//! encrypted, off-node backups restore; make their key pair.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use steward_activities::Store;
use steward_proto::v1::{RestoreDrillInput, RestoreDrillResult};
use steward_proto::vocab::DrillOutcome;
use steward_proto::{ids, names};
use steward_workflows::RestoreDrill;
use temporalio_client::WorkflowGetResultOptions;

use crate::cli::print_json;
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
    /// A key pair for encrypted backups: the identity (private key) into FILE, the `[restore]` lines to stdout.
    Keygen {
        /// Where the identity goes (created with mode 0600; refused if it exists).
        #[arg(long)]
        out: PathBuf,
    },
}

/// Runs `cmd`, loading the config at `config` for the commands that need it.
pub(super) async fn run(config: &Path, cmd: Command) -> anyhow::Result<ExitCode> {
    let load = || crate::config::load(config);
    match cmd {
        Command::Keygen { out } => keygen(out),
        Command::Run { backup, by } => {
            let loaded = load()?;
            let backup = match backup {
                Some(path) => {
                    let path = std::fs::canonicalize(&path)
                        .with_context(|| format!("backup {}", path.display()))?;
                    path.display().to_string()
                }
                None => String::new(),
            };
            let client = connect::from_env(None).await?;
            let id = ids::restore_drill(&uuid::Uuid::new_v4().simple().to_string());
            let input = RestoreDrillInput {
                source: "manual".into(),
                backup,
                operator: by,
            };
            let shown = crate::summary::restore_drill(&loaded, &input);
            let handle = client
                .start_workflow(
                    RestoreDrill::run,
                    input,
                    shown.start_options(&loaded.config.task_queue, &id),
                )
                .await
                .with_context(|| format!("starting {id}"))?;
            eprintln!("restore drill {id} started; waiting for it");
            let result = handle
                .get_result(WorkflowGetResultOptions::default())
                .await
                .with_context(|| format!("waiting for {id}"))?;
            print_json(&result)?;
            Ok(if DrillOutcome::Verified == result.outcome {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Last => {
            let store = Store::connect(&load()?.database_url()).await?;
            let drills: Vec<RestoreDrillResult> = store
                .progress(Some(names::RESTORE_EVENT_TYPE), 0, 200)
                .await?
                .iter()
                .filter_map(|e| serde_json::from_str(&e.detail_json).ok())
                .collect();
            let verified = drills.iter().find(|d| DrillOutcome::Verified == d.outcome);
            print_json(&serde_json::json!({
                "last_verified_backup": verified,
                "last_drill": drills.first(),
            }))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `restore-drill keygen`: needs no config (it makes the lines that go
/// into one).
fn keygen(out: PathBuf) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        !out.exists(),
        "{} exists; a key pair is never overwritten (the backups encrypted to it would become unreadable)",
        out.display()
    );
    let keys = steward_activities::restore::crypt::keygen();
    let mut f = steward_activities::files::create_private(&out)
        .with_context(|| format!("creating {}", out.display()))?;
    use std::io::Write as _;
    writeln!(
        f,
        "# steward restore drill identity; recipient: {}\n{}",
        keys.recipient, keys.identity
    )
    .with_context(|| format!("writing {}", out.display()))?;
    let path = std::fs::canonicalize(&out).unwrap_or(out);
    println!(
        "[restore]\nrecipient = \"{}\"\nidentity_file = \"{}\"",
        keys.recipient,
        path.display()
    );
    eprintln!(
        "keep {} off this worker's data folder and backed up elsewhere: without it no backup restores",
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}
