//! The one way a workflow builds an alert for the shared sink: a typed
//! severity, a kind named after the workflow (`backfill.lag`,
//! `upgrade.rolled-back`), and details as JSON built by serde, never by
//! hand.

use std::time::SystemTime;

use serde_json::{Map, Value};
use steward_proto::activities::RaiseAlert;
use steward_proto::v1::Alert;
use steward_proto::vocab::Severity;
use temporalio_sdk::WorkflowContext;

use crate::time::rfc3339;

/// An alert before it is sent.
#[derive(Debug, Clone)]
pub struct NewAlert {
    /// Unique and stable across retries and replays.
    pub id: String,
    /// How urgent.
    pub severity: Severity,
    /// `<workflow>.<what>`, e.g. `backfill.lag`.
    pub kind: String,
    /// The backfill, the app or the backup it is about.
    pub subject: String,
    /// What an operator reads.
    pub message: String,
    /// Workflow time.
    pub at: SystemTime,
    /// Machine-readable details; an empty map is sent as no details.
    pub detail: Map<String, Value>,
}

impl NewAlert {
    /// The alert message for the sink.
    pub fn build(self) -> Alert {
        Alert {
            id: self.id,
            severity: self.severity.as_str().into(),
            kind: self.kind,
            subject: self.subject,
            message: self.message,
            at: rfc3339(self.at),
            detail_json: if self.detail.is_empty() {
                String::new()
            } else {
                Value::Object(self.detail).to_string()
            },
            ..Default::default()
        }
    }

    /// Raises the alert through the alert activity.
    pub async fn raise<W>(self, ctx: &WorkflowContext<W>) -> temporalio_sdk::WorkflowResult<()> {
        let summary = format!("{} alert {}", self.severity, self.kind);
        let options = crate::options::summarized(crate::options::quick(60, 5), summary);
        let alert = Alert {
            workflow_id: ctx.workflow_id().to_string(),
            run_id: ctx.run_id().to_string(),
            ..self.build()
        };
        ctx.execute_activity(RaiseAlert, alert, options).await?;
        Ok(())
    }
}

/// A JSON object from `(key, value)` pairs.
pub fn detail<const N: usize>(pairs: [(&str, Value); N]) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_are_json_built_by_serde_and_quoted_properly() {
        let a = NewAlert {
            id: "wf-1".into(),
            severity: Severity::Critical,
            kind: "upgrade.rollback-failed".into(),
            subject: "kc".into(),
            message: "m".into(),
            at: SystemTime::UNIX_EPOCH,
            detail: detail([
                ("workflow_id", "a \"quoted\" id".into()),
                ("recovered", false.into()),
            ]),
        }
        .build();
        assert_eq!(a.severity, "critical");
        assert_eq!(a.at, "1970-01-01T00:00:00Z");
        let d: Value = serde_json::from_str(&a.detail_json).unwrap();
        assert_eq!(d["workflow_id"], "a \"quoted\" id");
        assert_eq!(d["recovered"], false);
        let none = NewAlert {
            detail: Map::new(),
            ..NewAlert {
                id: String::new(),
                severity: Severity::Info,
                kind: String::new(),
                subject: String::new(),
                message: String::new(),
                at: SystemTime::UNIX_EPOCH,
                detail: Map::new(),
            }
        }
        .build();
        assert_eq!(none.detail_json, "");
    }
}
