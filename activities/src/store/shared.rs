//! The per-run resources steward made on shared services
//! (`steward_shared_resources`): recorded before the create command runs,
//! marked when deleted, so the reaper can tell what steward made from what
//! someone else did.

use sqlx::Row;

use super::{Error, Store};

/// One resource steward made for a run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Made {
    /// The `[[shared]]` service.
    pub service: String,
    /// The resource's name on it.
    pub resource: String,
    /// The app whose run it was made for.
    pub app: String,
    /// That run.
    pub run_id: String,
    /// When it was recorded (milliseconds since the epoch).
    pub created_at_ms: i64,
    /// When it was deleted (0: not yet).
    pub deleted_at_ms: i64,
    /// How it ended: `deleted` by its run, `reaped`, `gone` (no longer
    /// listed by the service).
    pub ended: String,
}

impl Store {
    /// Records that `resource` on `service` is being made for `run_id` of
    /// `app`; recording it again (a retried step) changes nothing.
    pub async fn record_shared(
        &self,
        service: &str,
        resource: &str,
        app: &str,
        run_id: &str,
        now_ms: i64,
    ) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO steward_shared_resources (service, resource, app, run_id, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (service, resource) DO NOTHING",
        )
        .bind(service)
        .bind(resource)
        .bind(app)
        .bind(run_id)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks `resource` on `service` deleted (`ended`: `deleted`, `reaped`,
    /// `gone`); marking it twice keeps the first.
    pub async fn shared_ended(
        &self,
        service: &str,
        resource: &str,
        ended: &str,
        now_ms: i64,
    ) -> Result<(), Error> {
        sqlx::query(
            "UPDATE steward_shared_resources SET deleted_at_ms = $1, ended = $2 \
             WHERE service = $3 AND resource = $4 AND deleted_at_ms = 0",
        )
        .bind(now_ms)
        .bind(ended)
        .bind(service)
        .bind(resource)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The resource recorded on `service` under `resource`, if any.
    pub async fn shared_resource(
        &self,
        service: &str,
        resource: &str,
    ) -> Result<Option<Made>, Error> {
        let row = sqlx::query(
            "SELECT service, resource, app, run_id, created_at_ms, deleted_at_ms, ended \
             FROM steward_shared_resources WHERE service = $1 AND resource = $2",
        )
        .bind(service)
        .bind(resource)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(made).transpose()
    }

    /// The resources steward made on `service` and has not seen deleted,
    /// oldest first.
    pub async fn shared_live(&self, service: &str) -> Result<Vec<Made>, Error> {
        let rows = sqlx::query(
            "SELECT service, resource, app, run_id, created_at_ms, deleted_at_ms, ended \
             FROM steward_shared_resources WHERE service = $1 AND deleted_at_ms = 0 \
             ORDER BY created_at_ms, resource",
        )
        .bind(service)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(made).collect()
    }
}

fn made(r: &sqlx::any::AnyRow) -> Result<Made, Error> {
    Ok(Made {
        service: r.try_get("service")?,
        resource: r.try_get("resource")?,
        app: r.try_get("app")?,
        run_id: r.try_get("run_id")?,
        created_at_ms: r.try_get("created_at_ms")?,
        deleted_at_ms: r.try_get("deleted_at_ms")?,
        ended: r.try_get("ended")?,
    })
}
