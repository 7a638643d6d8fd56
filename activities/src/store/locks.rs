//! The leases as an operator sees them: every lease held now, a lease
//! released by hand, a lease taken over from a run that has closed, and
//! the record of both (who, why, when) in `steward_lock_events`.

use sqlx::Row;

use super::{Error, Store, begin_write};

/// A lease held now.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Lease {
    /// The lock's name (`consistency-sweep`, `upgrade-<app>`, `failover-<drill>`).
    pub name: String,
    /// Who holds it: a run id, or `external:PATH`.
    pub holder: String,
    /// When it lapses unless renewed (milliseconds since the epoch).
    pub expires_at_ms: i64,
}

/// What happened to a lease that its holder did not do itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseAction {
    /// An operator released it.
    Released,
    /// A run took it over from a holder whose run had closed.
    TakenOver,
}

impl LeaseAction {
    /// As recorded.
    pub fn as_str(self) -> &'static str {
        match self {
            LeaseAction::Released => "released",
            LeaseAction::TakenOver => "taken-over",
        }
    }
}

/// One recorded release or takeover.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LeaseEvent {
    /// The lock.
    pub name: String,
    /// The holder it was taken from.
    pub holder: String,
    /// `released` or `taken-over`.
    pub action: String,
    /// The operator, or the run that took it over.
    pub by: String,
    /// Why.
    pub reason: String,
    /// When (milliseconds since the epoch).
    pub at_ms: i64,
}

impl Store {
    /// Every lease held now, by name.
    pub async fn leases(&self) -> Result<Vec<Lease>, Error> {
        let rows =
            sqlx::query("SELECT name, holder, expires_at_ms FROM steward_locks ORDER BY name")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                Ok(Lease {
                    name: r.try_get("name")?,
                    holder: r.try_get("holder")?,
                    expires_at_ms: r.try_get("expires_at_ms")?,
                })
            })
            .collect()
    }

    /// Releases `name` whoever holds it, recording `by` and `reason`; the
    /// holder it had, None when nothing held it.
    pub async fn release_lease(
        &self,
        name: &str,
        by: &str,
        reason: &str,
        now_ms: i64,
    ) -> Result<Option<String>, Error> {
        let mut tx = begin_write(&self.pool).await?;
        let holder: Option<String> =
            sqlx::query_scalar("SELECT holder FROM steward_locks WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(holder) = &holder {
            sqlx::query("DELETE FROM steward_locks WHERE name = $1 AND holder = $2")
                .bind(name)
                .bind(holder)
                .execute(&mut *tx)
                .await?;
            record(
                &mut tx,
                name,
                holder,
                LeaseAction::Released,
                by,
                reason,
                now_ms,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(holder)
    }

    /// Gives `name` to `holder` for `ttl_seconds` if `from` still holds
    /// it, recording why; whether it did.
    pub async fn take_over_lease(
        &self,
        name: &str,
        from: &str,
        holder: &str,
        ttl_seconds: u32,
        reason: &str,
        now_ms: i64,
    ) -> Result<bool, Error> {
        let mut tx = begin_write(&self.pool).await?;
        let done = sqlx::query(
            "UPDATE steward_locks SET holder = $1, expires_at_ms = $2 WHERE name = $3 AND holder = $4",
        )
        .bind(holder)
        .bind(now_ms + i64::from(ttl_seconds) * 1000)
        .bind(name)
        .bind(from)
        .execute(&mut *tx)
        .await?;
        let taken = done.rows_affected() == 1;
        if taken {
            record(
                &mut tx,
                name,
                from,
                LeaseAction::TakenOver,
                holder,
                reason,
                now_ms,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(taken)
    }

    /// The latest `limit` releases and takeovers, newest first.
    pub async fn lease_events(&self, limit: i64) -> Result<Vec<LeaseEvent>, Error> {
        let rows = sqlx::query(
            "SELECT name, holder, action, by_whom, reason, at_ms FROM steward_lock_events \
             ORDER BY at_ms DESC, id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(LeaseEvent {
                    name: r.try_get("name")?,
                    holder: r.try_get("holder")?,
                    action: r.try_get("action")?,
                    by: r.try_get("by_whom")?,
                    reason: r.try_get("reason")?,
                    at_ms: r.try_get("at_ms")?,
                })
            })
            .collect()
    }
}

async fn record(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    name: &str,
    holder: &str,
    action: LeaseAction,
    by: &str,
    reason: &str,
    now_ms: i64,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO steward_lock_events (id, name, holder, action, by_whom, reason, at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(name)
    .bind(holder)
    .bind(action.as_str())
    .bind(by)
    .bind(reason)
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Whether the run a lease's holder names has closed, as the Temporal
/// server knows it (the store cannot tell): `Some(true)` closed,
/// `Some(false)` still open (or continued as new), `None` when the server
/// does not know the run or cannot be asked.
pub trait HolderRuns: Send + Sync + std::fmt::Debug {
    /// Asks about `run_id`.
    fn closed<'a>(&'a self, run_id: &'a str) -> futures::future::BoxFuture<'a, Option<bool>>;
}
