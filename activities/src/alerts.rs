//! The alert sink shared by every workflow: one JSON file per alert in the
//! alerts directory, plus an optional webhook that receives the same JSON,
//! and Prometheus' Alertmanager through an outbox (`alertmanager.rs`). An
//! alert about a condition is resolved when the condition ends: by
//! [`AlertSink::resolve`], or by raising the alert that ends it
//! ([`RESOLVES`]).

use std::path::{Path, PathBuf};

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use steward_proto::names;
use steward_proto::v1::Alert;
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

/// Alert sink errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Writing the alert file failed.
    #[error("alert {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The webhook refused or could not be reached.
    #[error("alert webhook: {0}")]
    Webhook(String),
}

/// `[alerts]` of `steward.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSettings {
    /// Folder for alert files; default `<data_dir>/alerts`.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// URL that receives each alert as a JSON POST.
    #[serde(default)]
    pub webhook: Option<String>,
    /// Alertmanager(s) every alert goes to (their v2 API): one URL or a
    /// list.
    #[serde(default, deserialize_with = "one_or_many")]
    pub alertmanager: Vec<String>,
    /// The operator page's URL, linked from each alert.
    #[serde(default)]
    pub page_url: Option<String>,
    /// The Temporal UI's URL, for a link to the run that raised an alert.
    #[serde(default)]
    pub temporal_ui_url: Option<String>,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(u) => vec![u],
        OneOrMany::Many(v) => v,
    })
}

/// The alerts that end others of the same subject when raised: a passed
/// drill ends the failed ones, an approval ends the hold.
pub const RESOLVES: &[(&str, &[&str])] = &[
    (
        "failover.passed",
        &[
            "failover.failed",
            "failover.target-missed",
            "failover.refused",
        ],
    ),
    (
        "upgrade.approved",
        &["upgrade.held-major", "upgrade.held-manual-migration"],
    ),
];

/// Where alerts go.
#[derive(Debug, Clone)]
pub struct AlertSink {
    dir: PathBuf,
    webhook: Option<String>,
    metrics: crate::metrics::Metrics,
    outbox: Option<crate::alertmanager::Outbox>,
    links: crate::alertmanager::Links,
}

impl AlertSink {
    /// A sink writing into `dir`, posting to `webhook` when set.
    pub fn new(dir: PathBuf, webhook: Option<String>) -> Self {
        Self {
            dir,
            webhook,
            metrics: Default::default(),
            outbox: None,
            links: Default::default(),
        }
    }

    /// The same sink, handing every alert to the Alertmanagers at `urls`
    /// (none: to no Alertmanager), with `links` in each.
    pub fn with_alertmanager(
        mut self,
        urls: Vec<String>,
        links: crate::alertmanager::Links,
    ) -> Self {
        self.outbox = (!urls.is_empty()).then(|| crate::alertmanager::Outbox::new(&self.dir, urls));
        self.links = links;
        self
    }

    /// Hands what waits in the outbox to Alertmanager (a pass; see
    /// `alertmanager.rs`). Nothing without an Alertmanager configured.
    pub async fn deliver(&self) {
        if let Some(outbox) = &self.outbox {
            outbox.deliver(&self.metrics).await;
        }
    }

    /// Resolves every open alert of `kind` about `subject` (any subject
    /// when empty): marked in its file with when, and sent to Alertmanager
    /// with its end. How many it resolved.
    pub async fn resolve(&self, kind: &str, subject: &str) -> usize {
        let resolved = self.mark_resolved(kind, subject);
        if resolved > 0 {
            self.deliver().await;
        }
        resolved
    }

    /// Marks every open alert of `kind` about `subject` (any when empty)
    /// resolved, in its file and in the outbox, without delivering; how
    /// many.
    fn mark_resolved(&self, kind: &str, subject: &str) -> usize {
        let at = crate::time::now_millis_text();
        let mut resolved = 0;
        for mut alert in self.list() {
            if alert["kind"] != kind
                || (!subject.is_empty() && alert["subject"] != subject)
                || !alert["resolved_at"].is_null()
            {
                continue;
            }
            let id = alert["id"].as_str().unwrap_or_default().to_string();
            alert["resolved_at"] = at.clone().into();
            for key in ["acknowledged", "delivery"] {
                if let Some(map) = alert.as_object_mut() {
                    map.remove(key);
                }
            }
            let path = self.file(&id, "json");
            if let Err(e) = crate::files::write_private(&path, alert.to_string().as_bytes()) {
                tracing::warn!("resolving alert {id}: {e}");
                continue;
            }
            if let Some(outbox) = &self.outbox
                && let Err(e) = outbox.resolve(&file_name(&path), &at)
            {
                tracing::warn!("resolving alert {id} in the outbox: {e}");
            }
            resolved += 1;
        }
        resolved
    }

    /// The same sink, counting the alerts it raises into `metrics`.
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// The alerts folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes the alert as `<dir>/<id>.json` and posts it to the webhook.
    /// Idempotent: the file is named by the alert's stable id and written
    /// whole through a rename, so a retry rewrites the same bytes.
    pub async fn raise(&self, alert: &Alert) -> Result<PathBuf, Error> {
        let body = alert_json(alert);
        let text = serde_json::to_string_pretty(&body).unwrap_or_default();
        let path = self.file(&alert.id, "json");
        let fresh = !path.exists();
        crate::files::write_private(&path, text.as_bytes()).map_err(|source| Error::Write {
            path: path.display().to_string(),
            source,
        })?;
        if fresh {
            self.metrics.alert(&alert.severity, &alert.kind);
        }
        if let Some(outbox) = &self.outbox {
            let condition = crate::alertmanager::CONDITIONS.contains(&alert.kind.as_str());
            let queued = crate::alertmanager::to_alertmanager(alert, &self.links);
            if let Err(e) = outbox.queue(&file_name(&path), queued, condition) {
                tracing::warn!("alert {} into the outbox: {e}", alert.id);
            }
        }
        for (raised, ends) in RESOLVES {
            if *raised == alert.kind {
                for kind in *ends {
                    self.mark_resolved(kind, &alert.subject);
                }
            }
        }
        // A first try at once (the alert and what it resolved); the
        // worker's delivery pass retries.
        self.deliver().await;
        if let Some(url) = &self.webhook {
            let timeout = std::time::Duration::from_secs(10);
            let resp = reqwest::Client::new()
                .post(url)
                .json(&body)
                .timeout(timeout)
                .send()
                .await
                .map_err(|e| Error::Webhook(crate::http::cause(&e, timeout)))?;
            if !resp.status().is_success() {
                return Err(Error::Webhook(format!("answered {}", resp.status())));
            }
        }
        Ok(path)
    }

    /// The file of alert `id` with `extension`: its id made safe as a file
    /// name.
    fn file(&self, id: &str, extension: &str) -> PathBuf {
        let name: String = id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir.join(format!("{name}.{extension}"))
    }

    /// Every alert in the folder, newest first, each with its
    /// acknowledgement (`acknowledged`: who, why, when; null while none).
    pub fn list(&self) -> Vec<serde_json::Value> {
        let mut alerts: Vec<serde_json::Value> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.extension().is_some_and(|x| x == "json")
                    && !p.to_string_lossy().ends_with(ACK_SUFFIX)
            })
            .filter_map(|p| std::fs::read(p).ok())
            .filter_map(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .map(|mut a| {
                let id = a["id"].as_str().unwrap_or_default().to_string();
                a["acknowledged"] = self.acknowledgement(&id).unwrap_or_default();
                a["delivery"] = self.delivery(&id);
                a
            })
            .collect();
        alerts.sort_by(|a, b| b["at"].as_str().cmp(&a["at"].as_str()));
        alerts
    }

    /// Where alert `id` is on its way to Alertmanager: null without one.
    fn delivery(&self, id: &str) -> serde_json::Value {
        let Some(outbox) = &self.outbox else {
            return serde_json::Value::Null;
        };
        match outbox.entry(&file_name(&self.file(id, "json"))) {
            Some(e) => serde_json::json!({
                "alertmanager": {
                    "state": e.state,
                    "attempts": e.attempts,
                    "last_error": e.last_error,
                    "resolved_at": e.resolved_at,
                }
            }),
            None => serde_json::Value::Null,
        }
    }

    /// Alert `id`'s acknowledgement, if it has one.
    fn acknowledgement(&self, id: &str) -> Option<serde_json::Value> {
        let bytes = std::fs::read(self.file(id, ACK_SUFFIX.trim_start_matches('.'))).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Acknowledges alert `id` as `by`, for `reason`, at `at`: kept beside
    /// the alert. An alert acknowledged before keeps its first
    /// acknowledgement, which is returned. None when there is no such
    /// alert.
    pub fn acknowledge(
        &self,
        id: &str,
        by: &str,
        reason: &str,
        at: &str,
    ) -> Result<Option<serde_json::Value>, Error> {
        if !self.file(id, "json").is_file() {
            return Ok(None);
        }
        if let Some(earlier) = self.acknowledgement(id) {
            return Ok(Some(earlier));
        }
        let ack = serde_json::json!({ "by": by, "reason": reason, "at": at });
        let path = self.file(id, ACK_SUFFIX.trim_start_matches('.'));
        crate::files::write_private(&path, ack.to_string().as_bytes()).map_err(|source| {
            Error::Write {
                path: path.display().to_string(),
                source,
            }
        })?;
        Ok(Some(ack))
    }
}

/// The file name of `path`.
fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default()
}

/// How an alert's acknowledgement file ends (`<id>.ack.json`).
const ACK_SUFFIX: &str = ".ack.json";

/// The alert as the JSON object written to files and webhooks, with its
/// detail parsed.
pub fn alert_json(a: &Alert) -> serde_json::Value {
    serde_json::json!({
        "id": a.id,
        "severity": a.severity,
        "kind": a.kind,
        "subject": a.subject,
        "message": a.message,
        "at": a.at,
        "workflow_id": a.workflow_id,
        "run_id": a.run_id,
        "detail": serde_json::from_str::<serde_json::Value>(&a.detail_json).unwrap_or(serde_json::Value::Null),
    })
}

/// The alert activity, shared by every workflow.
#[derive(Debug)]
pub struct AlertActivities {
    sink: AlertSink,
}

impl AlertActivities {
    /// Alerts into `sink`.
    pub fn new(sink: AlertSink) -> Self {
        Self { sink }
    }
}

#[activities]
impl AlertActivities {
    /// Writes an alert. Idempotent: one file per alert id, rewritten whole;
    /// a webhook may see a retried alert twice, with the same id.
    #[activity(name = names::RAISE_ALERT)]
    pub async fn raise_alert(
        self: Arc<Self>,
        _ctx: ActivityContext,
        a: Alert,
    ) -> Result<(), ActivityError> {
        self.sink
            .raise(&a)
            .await
            .map(|_| ())
            .map_err(crate::failure::retryable)
    }
}
