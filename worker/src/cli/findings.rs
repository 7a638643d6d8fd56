//! `steward findings`: the findings ledger, newest first: what is open now
//! (and, with `--resolved-since`, what sweeps resolved since then).

use std::process::ExitCode;

use crate::cli::print_json;
use crate::ops::Ops;
use crate::ops::findings::Filter;

/// Options of `steward findings`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this repo.
    #[arg(long)]
    repo: Option<String>,
    /// Only this check, e.g. `C-02`.
    #[arg(long)]
    check: Option<String>,
    /// Also the findings resolved at or after this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    resolved_since: Option<String>,
    /// At most this many of each (open, resolved).
    #[arg(long, default_value_t = 1000)]
    limit: usize,
}

pub(super) async fn run(ops: Ops, args: Args) -> anyhow::Result<ExitCode> {
    let rows = ops
        .findings(Filter {
            repo: args.repo,
            check: args.check,
            resolved_since: args.resolved_since,
            limit: Some(args.limit),
        })
        .await?;
    print_json(&rows)?;
    Ok(ExitCode::SUCCESS)
}
