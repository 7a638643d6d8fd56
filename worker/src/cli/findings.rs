//! `steward findings`: the findings ledger, newest first: what is open now
//! (and, with `--resolved-since`, what sweeps resolved since then).

use std::process::ExitCode;

use anyhow::Context as _;

use steward_activities::Store;
use steward_activities::store::findings::{FindingsQuery, LedgerRow, Wanted};
use steward_proto::vocab::CheckCode;

use crate::cli::print_json;
use crate::config::Loaded;

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

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A ledger row as `steward findings` (and the API) shows it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct FindingView {
    /// `open` or `resolved`.
    pub state: String,
    /// The repo.
    pub repo: String,
    /// The file, empty for the repo as a whole.
    pub file: String,
    /// The check code.
    pub check: String,
    /// What in the file it is about.
    pub subject: String,
    /// What is wrong.
    pub message: String,
    /// Why it is open though no sweep re-read it; empty otherwise.
    pub reason: String,
    /// When a sweep first saw it (RFC 3339).
    pub first_seen: String,
    /// The run that opened it.
    pub first_run: String,
    /// When a sweep last saw it.
    pub last_seen: String,
    /// The run that saw it last.
    pub last_run: String,
    /// When it was resolved.
    pub resolved_at: Option<String>,
    /// The run that resolved it.
    pub resolved_run: Option<String>,
}

/// A ledger row as `steward findings` (and the API) shows it.
pub fn row_json(r: &LedgerRow) -> FindingView {
    let f = &r.finding;
    FindingView {
        state: if r.resolved_ms.is_some() {
            "resolved"
        } else {
            "open"
        }
        .into(),
        repo: f.repo.clone(),
        file: f.file.clone(),
        check: f.check.clone(),
        subject: f.subject.clone(),
        message: f.message.clone(),
        reason: f.reason.clone(),
        first_seen: time(r.first_seen_ms),
        first_run: r.first_run.clone(),
        last_seen: time(r.last_seen_ms),
        last_run: r.last_run.clone(),
        resolved_at: r.resolved_ms.map(time),
        resolved_run: (!r.resolved_run.is_empty()).then(|| r.resolved_run.clone()),
    }
}

/// The ledger, newest first: the open findings of `repo` and `check`
/// (empty: any), and those resolved since `since_ms` when given.
pub async fn read(
    store: &Store,
    repo: &str,
    check: &str,
    since_ms: Option<i64>,
    limit: usize,
) -> anyhow::Result<Vec<FindingView>> {
    let query = |wanted| FindingsQuery {
        repo,
        check,
        ..FindingsQuery::new(wanted, limit)
    };
    let (mut rows, _) = store.findings(&query(Wanted::Open)).await?;
    if let Some(ms) = since_ms {
        rows.extend(store.findings(&query(Wanted::ResolvedSince(ms))).await?.0);
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.resolved_ms.unwrap_or(r.first_seen_ms)));
    Ok(rows.iter().map(row_json).collect())
}

pub(super) async fn run(loaded: Loaded, args: Args) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.limit > 0, "--limit must be at least 1");
    if let Some(check) = &args.check {
        check.parse::<CheckCode>()?;
    }
    let since = args
        .resolved_since
        .as_deref()
        .map(|t| {
            chrono::DateTime::parse_from_rfc3339(t)
                .map(|d| d.timestamp_millis())
                .with_context(|| {
                    format!(
                        "--resolved-since `{t}` is not an RFC 3339 time like 2026-12-01T00:00:00Z"
                    )
                })
        })
        .transpose()?;
    let store = Store::connect(&loaded.database_url()).await?;
    let rows = read(
        &store,
        args.repo.as_deref().unwrap_or(""),
        args.check.as_deref().unwrap_or(""),
        since,
        args.limit,
    )
    .await?;
    print_json(&rows)?;
    Ok(ExitCode::SUCCESS)
}
