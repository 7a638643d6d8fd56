//! `steward restore-drill run|last|decrypt|keygen`: prove the state
//! store's encrypted, off-node backups restore; decrypt one privately for
//! a manual restore; make their key pair.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use steward_proto::vocab::DrillOutcome;

use crate::cli::print_json;
use crate::ops::{Actor, Ops};

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
    /// Decrypt a backup for a manual restore into a new file only its owner
    /// can read (mode 0600), after checking it against its manifest.
    Decrypt {
        /// The backup (a drill's, its manifest beside it).
        #[arg(long)]
        backup: PathBuf,
        /// The new file the plain backup goes to (refused if it exists).
        #[arg(long)]
        out: PathBuf,
        /// The identity file (default: `[restore] identity_file` of the config).
        #[arg(long)]
        identity: Option<PathBuf>,
    },
    /// A key pair for encrypted backups: the identity (private key) into FILE, the `[restore]` lines to stdout.
    Keygen {
        /// Where the identity goes (created with mode 0600; refused if it exists).
        #[arg(long)]
        out: PathBuf,
    },
}

/// Runs `cmd`, loading the config at `config` for the commands that need it.
pub(super) async fn run(config: &Path, cmd: Command) -> anyhow::Result<ExitCode> {
    let ops = || crate::config::load(config).map(Ops::new);
    match cmd {
        Command::Keygen { out } => keygen(out),
        Command::Run { backup, by } => {
            let ops = ops()?;
            let actor = Actor::typed(ops.loaded(), &by);
            let started = ops
                .start_restore_drill(&actor, backup.as_deref(), "manual")
                .await?;
            eprintln!(
                "restore drill {} started; waiting for it",
                started.workflow_id
            );
            let result = ops.restore_result(&started).await?;
            print_json(&result)?;
            Ok(if DrillOutcome::Verified == result.outcome {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Decrypt {
            backup,
            out,
            identity,
        } => {
            let identity = match identity {
                Some(i) => i,
                None => crate::config::load(config)?
                    .config
                    .restore
                    .identity_file
                    .clone()
                    .context("give --identity, or set [restore] identity_file in the config")?,
            };
            let backend = steward_activities::restore::decrypt_backup(&backup, &out, &identity)?;
            print_json(&serde_json::json!({
                "backup": backup,
                "out": out,
                "mode": "0600",
                "backend": backend,
            }))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Last => {
            print_json(&ops()?.last_restore().await?)?;
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
