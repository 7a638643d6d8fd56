//! `steward audit verify|export`: the audit archive of closed runs, checked
//! end to end (its hash chain) and handed to an auditor.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use steward_activities::Store;
use steward_activities::store::archive;

use crate::cli::print_json;
use crate::config::Loaded;

/// Audit commands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Recompute the archive's hash chain; exit 1 naming the first entry changed, removed or reordered.
    Verify,
    /// Write the archived runs (JSON lines, chain order) for an auditor.
    Export {
        /// Only the runs that closed at or after this time (RFC 3339).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
    },
}

pub(super) async fn run(loaded: Loaded, cmd: Command) -> anyhow::Result<ExitCode> {
    let store = Store::connect(&loaded.database_url()).await?;
    match cmd {
        Command::Verify => {
            let entries = store.archive_entries(None).await?;
            match archive::verify(&entries) {
                Ok(n) => {
                    print_json(&serde_json::json!({
                        "verified": true,
                        "entries": n,
                        "last": entries.last().map(|e| &e.entry_sha256),
                    }))?;
                    Ok(ExitCode::SUCCESS)
                }
                Err(broken) => {
                    eprintln!("steward: the audit archive does not verify: {}", broken.why);
                    print_json(&serde_json::json!({
                        "verified": false,
                        "entries": entries.len(),
                        "first_broken": broken,
                    }))?;
                    Ok(ExitCode::from(1))
                }
            }
        }
        Command::Export { since } => {
            let since = since
                .map(|t| {
                    chrono::DateTime::parse_from_rfc3339(&t)
                        .map(|d| {
                            d.with_timezone(&chrono::Utc)
                                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                        })
                        .with_context(|| {
                            format!(
                                "--since `{t}` is not an RFC 3339 time like 2026-12-01T00:00:00Z"
                            )
                        })
                })
                .transpose()?;
            let entries = store.archive_entries(since.as_deref()).await?;
            let mut out = std::io::stdout().lock();
            for e in &entries {
                serde_json::to_writer(&mut out, e)?;
                writeln!(out)?;
            }
            eprintln!("{} archived runs", entries.len());
            Ok(ExitCode::SUCCESS)
        }
    }
}
