//! The findings ledger: what is open now, and what sweeps resolved since a
//! time.

use steward_activities::store::findings::{FindingsQuery, LedgerRow, Wanted};
use steward_proto::limits;
use steward_proto::vocab::CheckCode;

use steward_activities::time::secs_text;

use super::{Error, Ops, Result, time};

/// Which findings.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this repo.
    pub repo: Option<String>,
    /// Only this check code, e.g. `C-02`.
    pub check: Option<String>,
    /// Also those resolved at or after this time (RFC 3339).
    pub resolved_since: Option<String>,
    /// At most this many of each (open, resolved); None: the most a sweep
    /// lists.
    pub limit: Option<usize>,
}

/// A ledger row as the CLI and the API show it.
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

impl From<&LedgerRow> for FindingView {
    fn from(r: &LedgerRow) -> Self {
        let f = &r.finding;
        Self {
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
            first_seen: secs_text(r.first_seen_ms),
            first_run: r.first_run.clone(),
            last_seen: secs_text(r.last_seen_ms),
            last_run: r.last_run.clone(),
            resolved_at: r.resolved_ms.map(secs_text),
            resolved_run: (!r.resolved_run.is_empty()).then(|| r.resolved_run.clone()),
        }
    }
}

impl Ops {
    /// The ledger, newest first: the open findings `filter` selects, and
    /// those resolved since its time when given.
    pub async fn findings(&self, filter: Filter) -> Result<Vec<FindingView>> {
        let limit = filter.limit.unwrap_or(limits::FINDINGS_PER_SWEEP);
        if !(1..=limits::FINDINGS_PER_SWEEP * 10).contains(&limit) {
            return Err(Error::BadRequest(format!(
                "limit must be 1 to {}",
                limits::FINDINGS_PER_SWEEP * 10
            )));
        }
        let check = filter.check.as_deref().unwrap_or("");
        if !check.is_empty() {
            check
                .parse::<CheckCode>()
                .map_err(|e| Error::BadRequest(e.to_string()))?;
        }
        let since = time::since_ms(filter.resolved_since.as_deref(), "resolved_since")?;
        let repo = filter.repo.as_deref().unwrap_or("");
        let store = self.store().await?;
        let query = |wanted| FindingsQuery {
            repo,
            check,
            ..FindingsQuery::new(wanted, limit)
        };
        let (mut rows, _) = store
            .findings(&query(Wanted::Open))
            .await
            .map_err(Error::store("reading the findings ledger"))?;
        if let Some(ms) = since {
            rows.extend(
                store
                    .findings(&query(Wanted::ResolvedSince(ms)))
                    .await
                    .map_err(Error::store("reading the findings ledger"))?
                    .0,
            );
        }
        rows.sort_by_key(|r| std::cmp::Reverse(r.resolved_ms.unwrap_or(r.first_seen_ms)));
        Ok(rows.iter().map(FindingView::from).collect())
    }
}
