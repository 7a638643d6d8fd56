//! The findings ledger: every assessment failure is a row, keyed by repo,
//! file, check and subject, open from the sweep that first saw it until a
//! sweep that re-reads the file no longer finds it (docs/CHECKS.md).
//!
//! A sweep that skips a clean repo leaves its rows alone, so they stay
//! open; a repo whose path is missing, or that left the config, keeps its
//! open rows with that reason.

use std::collections::BTreeSet;

use sqlx::Row as _;
use sqlx::any::AnyRow;
use steward_proto::limits;
use steward_proto::v1::Finding;

use super::{Error, Store};

/// Why a repo's findings stay open although no sweep re-read them.
pub const REASON_MISSING: &str = "skipped_missing: the repo's path is not a git work tree";
/// See [`REASON_MISSING`].
pub const REASON_REMOVED: &str = "the repo is no longer in the config";

/// A finding as the ledger holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRow {
    /// The finding (subject, reason and first seen filled in).
    pub finding: Finding,
    /// When a sweep first saw it open, ms since the epoch.
    pub first_seen_ms: i64,
    /// The sweep run that opened it.
    pub first_run: String,
    /// When a sweep last saw it.
    pub last_seen_ms: i64,
    /// The run that saw it last.
    pub last_run: String,
    /// When it was resolved; None while open.
    pub resolved_ms: Option<i64>,
    /// The run that resolved it.
    pub resolved_run: String,
}

/// Which rows a query wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted<'a> {
    /// Every open row.
    Open,
    /// Open rows the run opened.
    OpenedBy(&'a str),
    /// Rows the run resolved.
    ResolvedBy(&'a str),
    /// Rows resolved at or after this time (ms).
    ResolvedSince(i64),
}

/// A ledger query: which rows, of which repo and check (empty: any), at
/// most `limit`.
#[derive(Debug, Clone, Copy)]
pub struct FindingsQuery<'a> {
    /// Which rows.
    pub wanted: Wanted<'a>,
    /// Only this repo, unless empty.
    pub repo: &'a str,
    /// Only this check code, unless empty.
    pub check: &'a str,
    /// At most this many rows.
    pub limit: i64,
}

impl<'a> FindingsQuery<'a> {
    /// `wanted` rows of every repo and check, at most `limit`.
    pub fn new(wanted: Wanted<'a>, limit: usize) -> Self {
        Self {
            wanted,
            repo: "",
            check: "",
            limit: i64::try_from(limit).unwrap_or(i64::MAX),
        }
    }
}

/// The key of a finding in the repo's ledger: file, check, subject (an
/// empty subject is the file as a whole). Its message may change from one
/// sweep to the next (a line number, a status) without making it another
/// finding.
fn key(f: &Finding) -> (String, String, String) {
    (f.file.clone(), f.check.clone(), f.subject.clone())
}

fn bounded_message(message: &str) -> String {
    limits::bounded(message, limits::FINDING_MESSAGE_CHARS)
}

const COLUMNS: &str = "repo, file, check_code, subject, message, first_seen_ms, first_run, \
    last_seen_ms, last_run, resolved_ms, resolved_run, reason";

/// The WHERE clause of every ledger query: $1 repo, $2 check, $3 state
/// (`open` or `resolved`), $4 run, $5 resolved since.
const WHERE: &str = "($1 = '' OR repo = $1) AND ($2 = '' OR check_code = $2) AND \
    (($3 = 'open' AND resolved_ms IS NULL AND ($4 = '' OR first_run = $4)) OR \
     ($3 = 'resolved' AND resolved_ms IS NOT NULL AND ($4 = '' OR resolved_run = $4) AND resolved_ms >= $5))";

fn row_from(r: &AnyRow) -> Result<LedgerRow, Error> {
    let first_seen_ms: i64 = r.try_get("first_seen_ms")?;
    Ok(LedgerRow {
        finding: Finding {
            check: r.try_get("check_code")?,
            repo: r.try_get("repo")?,
            file: r.try_get("file")?,
            message: r.try_get("message")?,
            subject: r.try_get("subject")?,
            first_seen: crate::time::secs_text(first_seen_ms),
            reason: r.try_get("reason")?,
        },
        first_seen_ms,
        first_run: r.try_get("first_run")?,
        last_seen_ms: r.try_get("last_seen_ms")?,
        last_run: r.try_get("last_run")?,
        resolved_ms: r.try_get("resolved_ms")?,
        resolved_run: r.try_get("resolved_run")?,
    })
}

impl Store {
    /// Makes the ledger of `repo` what `run` found when it re-read the
    /// repo at `now_ms`: every finding open (opened, reopened, or seen
    /// again, its reason cleared), every other open row of the repo
    /// resolved by `run`. One transaction; running it again for the same
    /// run changes nothing but the time it was last seen.
    pub async fn sync_findings(
        &self,
        repo: &str,
        findings: &[Finding],
        run: &str,
        now_ms: i64,
    ) -> Result<(), Error> {
        let mut tx = super::begin_write(&self.pool).await?;
        let open: BTreeSet<(String, String, String)> = sqlx::query(
            "SELECT file, check_code, subject FROM findings WHERE repo = $1 AND resolved_ms IS NULL",
        )
        .bind(repo)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("file")?, r.try_get("check_code")?, r.try_get("subject")?)))
        .collect::<Result<_, sqlx::Error>>()?;
        let mut seen = BTreeSet::new();
        for f in findings {
            let k = key(f);
            if !seen.insert(k.clone()) {
                continue;
            }
            sqlx::query(
                "INSERT INTO findings (repo, file, check_code, subject, message, first_seen_ms, first_run, \
                 last_seen_ms, last_run, resolved_ms, resolved_run, reason) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $6, $7, NULL, '', '') \
                 ON CONFLICT (repo, file, check_code, subject) DO UPDATE SET message = excluded.message, \
                 first_seen_ms = CASE WHEN findings.resolved_ms IS NULL THEN findings.first_seen_ms ELSE excluded.first_seen_ms END, \
                 first_run = CASE WHEN findings.resolved_ms IS NULL THEN findings.first_run ELSE excluded.first_run END, \
                 last_seen_ms = excluded.last_seen_ms, last_run = excluded.last_run, \
                 resolved_ms = NULL, resolved_run = '', reason = ''",
            )
            .bind(repo)
            .bind(&k.0)
            .bind(&k.1)
            .bind(&k.2)
            .bind(bounded_message(&f.message))
            .bind(now_ms)
            .bind(run)
            .execute(&mut *tx)
            .await?;
        }
        for (file, check, subject) in open.difference(&seen) {
            sqlx::query(
                "UPDATE findings SET resolved_ms = $1, resolved_run = $2 \
                 WHERE repo = $3 AND file = $4 AND check_code = $5 AND subject = $6 AND resolved_ms IS NULL",
            )
            .bind(now_ms)
            .bind(run)
            .bind(repo)
            .bind(file)
            .bind(check)
            .bind(subject)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Keeps `repo`'s open findings open with `reason` (its path is
    /// missing): they are not re-read, not resolved, and not hidden.
    /// Writes only rows whose reason differs.
    pub async fn hold_findings(&self, repo: &str, reason: &str) -> Result<(), Error> {
        sqlx::query(
            "UPDATE findings SET reason = $1 WHERE repo = $2 AND resolved_ms IS NULL AND reason <> $1",
        )
        .bind(reason)
        .bind(repo)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Gives the open findings of every repo not in `configured` the reason
    /// [`REASON_REMOVED`]; a repo that is configured again and still has a
    /// missing path gets [`REASON_MISSING`] back from its next sweep.
    pub async fn hold_findings_of_removed_repos(&self, configured: &[String]) -> Result<(), Error> {
        let repos: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT repo FROM findings WHERE resolved_ms IS NULL AND reason <> $1",
        )
        .bind(REASON_REMOVED)
        .fetch_all(&self.pool)
        .await?;
        for repo in repos.iter().filter(|r| !configured.contains(r)) {
            self.hold_findings(repo, REASON_REMOVED).await?;
        }
        Ok(())
    }

    /// The rows `q` wants, newest first (opened or resolved most
    /// recently), and how many there are in all.
    pub async fn findings(&self, q: &FindingsQuery<'_>) -> Result<(Vec<LedgerRow>, u64), Error> {
        let (state, run, since) = match q.wanted {
            Wanted::Open => ("open", "", 0),
            Wanted::OpenedBy(run) => ("open", run, 0),
            Wanted::ResolvedBy(run) => ("resolved", run, 0),
            Wanted::ResolvedSince(ms) => ("resolved", "", ms),
        };
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM findings WHERE {WHERE} \
             ORDER BY COALESCE(resolved_ms, first_seen_ms) DESC, repo, file, check_code, subject LIMIT $6"
        ))
        .bind(q.repo)
        .bind(q.check)
        .bind(state)
        .bind(run)
        .bind(since)
        .bind(q.limit)
        .fetch_all(&self.pool)
        .await?;
        let total: i64 =
            sqlx::query_scalar(&format!("SELECT COUNT(*) FROM findings WHERE {WHERE}"))
                .bind(q.repo)
                .bind(q.check)
                .bind(state)
                .bind(run)
                .bind(since)
                .fetch_one(&self.pool)
                .await?;
        let rows = rows.iter().map(row_from).collect::<Result<_, _>>()?;
        Ok((rows, u64::try_from(total).unwrap_or(0)))
    }
}
