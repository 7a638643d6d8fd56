//! The audit archive: every closed run of every steward workflow, with its
//! full history as exported JSON, kept in the state store after the
//! server's retention has removed it, in a hash chain.
//!
//! Entry `n` stores the SHA-256 of its history and of entry `n - 1`, and
//! its own hash over both and its fields, so changing a stored history,
//! removing an entry or reordering two breaks the chain at the first entry
//! concerned ([`verify`]). An entry is appended in one transaction that
//! reads the last entry and writes the next: a crash mid-append leaves no
//! gap, and `(workflow_id, run_id)` is unique, so nothing is archived twice.

use sha2::{Digest, Sha256};
use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{Error, Store};

/// What the chain's first entry follows.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One archived run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Entry {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// The run.
    pub workflow_id: String,
    /// The run.
    pub run_id: String,
    /// Its workflow type.
    pub workflow_type: String,
    /// When it closed (RFC 3339).
    pub close_time: String,
    /// How it closed (`completed`, `failed`, `continued_as_new`, ...).
    pub status: String,
    /// The whole history as the server exports it (JSON).
    pub history_json: String,
    /// SHA-256 of `history_json`.
    pub history_sha256: String,
    /// `entry_sha256` of the entry before ([`GENESIS`] for the first).
    pub prev_sha256: String,
    /// SHA-256 over this entry's fields, its history's hash and `prev_sha256`.
    pub entry_sha256: String,
    /// When it was archived, ms since the epoch.
    pub archived_at_ms: i64,
}

/// A run to archive.
#[derive(Debug, Clone)]
pub struct NewEntry<'a> {
    /// The run.
    pub workflow_id: &'a str,
    /// The run.
    pub run_id: &'a str,
    /// Its workflow type.
    pub workflow_type: &'a str,
    /// When it closed (RFC 3339).
    pub close_time: &'a str,
    /// How it closed.
    pub status: &'a str,
    /// Its history, exported.
    pub history_json: &'a str,
}

/// SHA-256 of `bytes`, hex.
pub fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The hash that links an entry into the chain.
#[allow(clippy::too_many_arguments)]
fn entry_hash(
    seq: i64,
    workflow_id: &str,
    run_id: &str,
    workflow_type: &str,
    close_time: &str,
    status: &str,
    history_sha256: &str,
    prev_sha256: &str,
) -> String {
    sha256(
        format!(
            "steward-audit-v1\n{seq}\n{workflow_id}\n{run_id}\n{workflow_type}\n{close_time}\n{status}\n{history_sha256}\n{prev_sha256}\n"
        )
        .as_bytes(),
    )
}

/// Where the chain breaks first.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Broken {
    /// The first entry that is not as it was appended.
    pub seq: i64,
    /// Its run, when the entry is there.
    pub workflow_id: String,
    /// Its run, when the entry is there.
    pub run_id: String,
    /// What is wrong.
    pub why: String,
}

/// Recomputes the chain over `entries` (in `seq` order): the number of
/// entries when it holds, else the first entry that was changed, removed
/// or reordered.
pub fn verify(entries: &[Entry]) -> Result<usize, Broken> {
    let mut prev = GENESIS.to_string();
    for (i, e) in entries.iter().enumerate() {
        let expected = i as i64 + 1;
        let broken = |why: String| Broken {
            seq: e.seq,
            workflow_id: e.workflow_id.clone(),
            run_id: e.run_id.clone(),
            why,
        };
        if e.seq != expected {
            return Err(Broken {
                seq: expected,
                workflow_id: String::new(),
                run_id: String::new(),
                why: format!(
                    "entry {expected} is missing (the next one is {}): removed",
                    e.seq
                ),
            });
        }
        if e.prev_sha256 != prev {
            return Err(broken(format!(
                "entry {} does not follow entry {}: reordered, or the entry before it was replaced",
                e.seq,
                e.seq - 1
            )));
        }
        if sha256(e.history_json.as_bytes()) != e.history_sha256 {
            return Err(broken(format!(
                "entry {} ({}/{}): its history was changed after it was archived",
                e.seq, e.workflow_id, e.run_id
            )));
        }
        let hash = entry_hash(
            e.seq,
            &e.workflow_id,
            &e.run_id,
            &e.workflow_type,
            &e.close_time,
            &e.status,
            &e.history_sha256,
            &e.prev_sha256,
        );
        if hash != e.entry_sha256 {
            return Err(broken(format!(
                "entry {} ({}/{}): its fields were changed after it was archived",
                e.seq, e.workflow_id, e.run_id
            )));
        }
        prev = hash;
    }
    Ok(entries.len())
}

const COLUMNS: &str = "seq, workflow_id, run_id, workflow_type, close_time, status, history_json, \
    history_sha256, prev_sha256, entry_sha256, archived_at_ms";

fn entry_from(r: &AnyRow) -> Result<Entry, Error> {
    Ok(Entry {
        seq: r.try_get("seq")?,
        workflow_id: r.try_get("workflow_id")?,
        run_id: r.try_get("run_id")?,
        workflow_type: r.try_get("workflow_type")?,
        close_time: r.try_get("close_time")?,
        status: r.try_get("status")?,
        history_json: r.try_get("history_json")?,
        history_sha256: r.try_get("history_sha256")?,
        prev_sha256: r.try_get("prev_sha256")?,
        entry_sha256: r.try_get("entry_sha256")?,
        archived_at_ms: r.try_get("archived_at_ms")?,
    })
}

impl Store {
    /// Whether the run is in the archive.
    pub async fn is_archived(&self, workflow_id: &str, run_id: &str) -> Result<bool, Error> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM audit_archive WHERE workflow_id = $1 AND run_id = $2",
        )
        .bind(workflow_id)
        .bind(run_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }

    /// Appends the run to the chain; its position, or None when it was
    /// archived already. Another archiver appending at the same moment
    /// makes this one fail (the position is taken); it is tried again on
    /// the next pass.
    pub async fn archive(&self, e: &NewEntry<'_>) -> Result<Option<i64>, Error> {
        let mut tx = super::begin_write(&self.pool).await?;
        let done: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM audit_archive WHERE workflow_id = $1 AND run_id = $2",
        )
        .bind(e.workflow_id)
        .bind(e.run_id)
        .fetch_one(&mut *tx)
        .await?;
        if done > 0 {
            return Ok(None);
        }
        let last =
            sqlx::query("SELECT seq, entry_sha256 FROM audit_archive ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut *tx)
                .await?;
        let (seq, prev) = match last {
            Some(r) => (
                r.try_get::<i64, _>("seq")? + 1,
                r.try_get::<String, _>("entry_sha256")?,
            ),
            None => (1, GENESIS.to_string()),
        };
        let history_sha256 = sha256(e.history_json.as_bytes());
        let hash = entry_hash(
            seq,
            e.workflow_id,
            e.run_id,
            e.workflow_type,
            e.close_time,
            e.status,
            &history_sha256,
            &prev,
        );
        sqlx::query(&format!(
            "INSERT INTO audit_archive ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(seq)
        .bind(e.workflow_id)
        .bind(e.run_id)
        .bind(e.workflow_type)
        .bind(e.close_time)
        .bind(e.status)
        .bind(e.history_json)
        .bind(&history_sha256)
        .bind(&prev)
        .bind(&hash)
        .bind(chrono::Utc::now().timestamp_millis())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(seq))
    }

    /// The archive in chain order; only the runs that closed at or after
    /// `since` (RFC 3339) when given.
    pub async fn archive_entries(&self, since: Option<&str>) -> Result<Vec<Entry>, Error> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM audit_archive WHERE close_time >= $1 ORDER BY seq"
        ))
        .bind(since.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(entry_from).collect()
    }

    /// The archived run `run_id` of `workflow_id`, or its last archived run.
    pub async fn archived_run(
        &self,
        workflow_id: &str,
        run_id: Option<&str>,
    ) -> Result<Option<Entry>, Error> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM audit_archive WHERE workflow_id = $1 AND ($2 = '' OR run_id = $2) \
             ORDER BY close_time DESC, seq DESC LIMIT 1"
        ))
        .bind(workflow_id)
        .bind(run_id.unwrap_or(""))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(entry_from).transpose()
    }

    /// The latest close time in the archive (RFC 3339).
    pub async fn last_archived_close(&self) -> Result<Option<String>, Error> {
        Ok(
            sqlx::query_scalar("SELECT MAX(close_time) FROM audit_archive")
                .fetch_one(&self.pool)
                .await?,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<Entry> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|seq| {
                let history_json = format!("{{\"events\":[{seq}]}}");
                let history_sha256 = sha256(history_json.as_bytes());
                let id = format!("wf-{seq}");
                let entry_sha256 = entry_hash(
                    seq,
                    &id,
                    "run",
                    "T",
                    "2026-12-02T00:00:00Z",
                    "completed",
                    &history_sha256,
                    &prev,
                );
                let e = Entry {
                    seq,
                    workflow_id: id,
                    run_id: "run".into(),
                    workflow_type: "T".into(),
                    close_time: "2026-12-02T00:00:00Z".into(),
                    status: "completed".into(),
                    history_json,
                    history_sha256,
                    prev_sha256: prev.clone(),
                    entry_sha256: entry_sha256.clone(),
                    archived_at_ms: 0,
                };
                prev = entry_sha256;
                e
            })
            .collect()
    }

    #[test]
    fn the_chain_names_the_first_entry_changed_removed_or_reordered() {
        assert_eq!(verify(&chain(4)), Ok(4));
        assert_eq!(verify(&[]), Ok(0));

        let mut changed = chain(4);
        changed[2].history_json = "{\"events\":[]}".into();
        let b = verify(&changed).unwrap_err();
        assert_eq!((b.seq, b.workflow_id.as_str()), (3, "wf-3"));
        assert!(b.why.contains("history was changed"), "{b:?}");

        let mut fields = chain(4);
        fields[1].status = "failed".into();
        let b = verify(&fields).unwrap_err();
        assert_eq!(b.seq, 2);
        assert!(b.why.contains("fields were changed"), "{b:?}");

        let mut removed = chain(4);
        removed.remove(1);
        let b = verify(&removed).unwrap_err();
        assert_eq!(b.seq, 2);
        assert!(b.why.contains("missing"), "{b:?}");

        let mut reordered = chain(4);
        reordered.swap(1, 2);
        (reordered[1].seq, reordered[2].seq) = (2, 3);
        let b = verify(&reordered).unwrap_err();
        assert_eq!(b.seq, 2);
        assert!(b.why.contains("does not follow"), "{b:?}");
    }
}
