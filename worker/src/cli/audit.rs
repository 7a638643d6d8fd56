//! `steward audit verify|export`: the audit archive of closed runs, checked
//! end to end (its hash chain) and handed to an auditor.

use std::io::Write as _;
use std::process::ExitCode;

use crate::cli::print_json;
use crate::ops::Ops;

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

pub(super) async fn run(ops: Ops, cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Verify => {
            let verdict = ops.verify_audit().await?;
            if let Some(broken) = &verdict.first_broken {
                eprintln!("steward: the audit archive does not verify: {}", broken.why);
            }
            print_json(&verdict)?;
            Ok(if verdict.verified {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Export { since } => {
            let entries = ops.export_audit(since.as_deref()).await?;
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
