//! The alerts every workflow raised, newest first, and their
//! acknowledgement: who saw one, when, and why it needs nothing more.

use steward_activities::roster::Target;

use super::{Actor, Error, Ops, Result};

/// The most alerts one read returns.
pub const MAX_ALERTS: usize = 1000;

impl Ops {
    /// The newest `limit` alerts.
    pub fn alerts(&self, limit: usize) -> Result<Vec<serde_json::Value>> {
        if !(1..=MAX_ALERTS).contains(&limit) {
            return Err(Error::BadRequest(format!(
                "limit must be 1 to {MAX_ALERTS}"
            )));
        }
        Ok(crate::serve::alert_sink(self.loaded())
            .list()
            .into_iter()
            .take(limit)
            .collect())
    }

    /// Raises a notice (an info alert) of `kind` about `subject`: what an
    /// operator did or was refused, for the people who wait on it. Best
    /// effort: a notice that cannot be written is logged, never fails the
    /// action it tells of.
    pub async fn notice(&self, kind: &str, subject: &str, message: String) {
        let alert = steward_proto::v1::Alert {
            id: format!("{kind}-{}", uuid::Uuid::new_v4()),
            severity: "info".into(),
            kind: kind.into(),
            subject: subject.into(),
            message,
            at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            ..Default::default()
        };
        if let Err(e) = crate::serve::alert_sink(self.loaded()).raise(&alert).await {
            tracing::warn!("the notice {kind} about {subject}: {e}");
        }
    }

    /// Critical alerts no one has acknowledged, newest first.
    pub fn unacknowledged_critical(&self) -> Vec<serde_json::Value> {
        crate::serve::alert_sink(self.loaded())
            .list()
            .into_iter()
            .filter(|a| a["severity"] == "critical" && a["acknowledged"].is_null())
            .collect()
    }

    /// Acknowledges alert `id` as `actor` for `reason`; the
    /// acknowledgement (the first one, when it had one already).
    pub fn acknowledge_alert(
        &self,
        actor: &Actor,
        id: &str,
        reason: &str,
    ) -> Result<serde_json::Value> {
        super::operator_text(&actor.name, reason, "reason")?;
        self.permit(actor, Target::Alert, "ack", &[])?;
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        crate::serve::alert_sink(self.loaded())
            .acknowledge(id, &actor.name, reason, &at)
            .map_err(|e| Error::upstream("acknowledging the alert", e))?
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "no alert `{id}` (see `steward alerts list` for the ids)"
                ))
            })
    }
}
