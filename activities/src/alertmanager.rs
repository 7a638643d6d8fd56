//! Alerts into Prometheus' Alertmanager (its v2 API), through an outbox:
//! each alert is an entry under `<alerts dir>/outbox/` that a delivery
//! pass posts to every configured Alertmanager, retried with backoff until
//! they take it. Raising never waits on Alertmanager and never fails for
//! it: what is not delivered yet is visible in the entry (`steward alerts
//! list` shows it) and counted.
//!
//! An alert about a condition (a backfill over its runtime or lag, a drill
//! that did not pass, no sweep lately, an upgrade held for approval) stays
//! firing, sent again every minute, until steward resolves it when the
//! condition ends; it is then sent once more with `endsAt`. Any other
//! alert is an event: sent once, Alertmanager resolves it on its own.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use steward_proto::v1::Alert;

/// Alert kinds that hold until steward says the condition ended.
pub const CONDITIONS: &[&str] = &[
    "backfill.runtime",
    "backfill.lag",
    "backfill.throttle",
    "restore.failed",
    "failover.failed",
    "failover.target-missed",
    "failover.refused",
    "sweep.deadman",
    "upgrade.held-major",
    "upgrade.held-manual-migration",
];

/// A firing condition is sent again this often (Alertmanager resolves an
/// alert it has not heard of for its `resolve_timeout`, 5 minutes).
const REFRESH: Duration = Duration::from_secs(60);

/// How long a firing condition's `endsAt` reaches past its last sending.
const HOLD: Duration = Duration::from_secs(300);

/// The longest wait between two tries of an undelivered entry.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Where steward's own pages are, for the links in each alert.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Links {
    /// The operator page (`[alerts] page_url`).
    pub page: Option<String>,
    /// The Temporal UI (`[alerts] temporal_ui_url`), with the namespace.
    pub temporal_ui: Option<(String, String)>,
}

/// One alert's way to Alertmanager.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The alert as Alertmanager takes it (without `endsAt`, set at each
    /// sending).
    pub alert: serde_json::Value,
    /// Whether it holds until resolved (a condition).
    pub condition: bool,
    /// When steward resolved it (RFC 3339), if it has.
    #[serde(default)]
    pub resolved_at: Option<String>,
    /// `pending` (not sent since it changed), `delivered`, `failing`.
    pub state: String,
    /// Failed tries since the last delivery.
    #[serde(default)]
    pub attempts: u32,
    /// Why the last try failed.
    #[serde(default)]
    pub last_error: String,
    /// When it may be tried again (ms since the epoch).
    #[serde(default)]
    pub next_at_ms: i64,
    /// When it was last delivered (ms since the epoch).
    #[serde(default)]
    pub sent_at_ms: i64,
}

/// The label an alert's subject goes under, by the workflow its kind
/// names.
fn subject_label(workflow: &str) -> &'static str {
    match workflow {
        "backfill" => "backfill",
        "upgrade" => "app",
        "failover" => "drill",
        "restore" => "backup",
        "sweep" => "sweep",
        _ => "subject",
    }
}

/// `alert` as Alertmanager's v2 API takes it.
pub fn to_alertmanager(alert: &Alert, links: &Links) -> serde_json::Value {
    let workflow = alert.kind.split('.').next().unwrap_or_default();
    let mut labels = serde_json::json!({
        "alertname": alert.kind,
        "severity": alert.severity,
        "workflow": workflow,
        "source": "steward",
    });
    if !alert.subject.is_empty() {
        labels[subject_label(workflow)] = alert.subject.clone().into();
    }
    let mut annotations = serde_json::json!({
        "summary": alert.message.lines().next().unwrap_or_default(),
        "description": alert.message,
        "alert_id": alert.id,
    });
    if !alert.workflow_id.is_empty() {
        annotations["workflow_id"] = alert.workflow_id.clone().into();
        annotations["run_id"] = alert.run_id.clone().into();
        if let Some((ui, namespace)) = &links.temporal_ui {
            annotations["temporal_ui"] = format!(
                "{}/namespaces/{namespace}/workflows/{}/{}/history",
                ui.trim_end_matches('/'),
                alert.workflow_id,
                alert.run_id
            )
            .into();
        }
    }
    if let Some(page) = &links.page {
        annotations["page"] = page.clone().into();
    }
    let mut out = serde_json::json!({
        "labels": labels,
        "annotations": annotations,
        "startsAt": alert.at,
    });
    if let Some(page) = &links.page {
        out["generatorURL"] = page.clone().into();
    }
    out
}

/// The outbox of one alerts folder.
#[derive(Debug, Clone)]
pub struct Outbox {
    dir: PathBuf,
    urls: Vec<String>,
}

impl Outbox {
    /// The outbox under `alerts_dir`, delivering to `urls`.
    pub fn new(alerts_dir: &Path, urls: Vec<String>) -> Self {
        Self {
            dir: alerts_dir.join("outbox"),
            urls,
        }
    }

    fn path(&self, file_name: &str) -> PathBuf {
        self.dir.join(file_name)
    }

    /// Entry `file_name`, if there is one.
    pub fn entry(&self, file_name: &str) -> Option<Entry> {
        serde_json::from_slice(&std::fs::read(self.path(file_name)).ok()?).ok()
    }

    fn write(&self, file_name: &str, entry: &Entry) -> std::io::Result<()> {
        crate::files::write_private(
            &self.path(file_name),
            serde_json::to_string_pretty(entry)
                .unwrap_or_default()
                .as_bytes(),
        )
    }

    /// Queues `alert` (once: a retried raise finds its entry).
    pub fn queue(
        &self,
        file_name: &str,
        alert: serde_json::Value,
        condition: bool,
    ) -> std::io::Result<()> {
        if self.entry(file_name).is_some() {
            return Ok(());
        }
        self.write(
            file_name,
            &Entry {
                alert,
                condition,
                resolved_at: None,
                state: "pending".into(),
                attempts: 0,
                last_error: String::new(),
                next_at_ms: 0,
                sent_at_ms: 0,
            },
        )
    }

    /// Marks entry `file_name` resolved at `at`, to be sent again.
    pub fn resolve(&self, file_name: &str, at: &str) -> std::io::Result<()> {
        let Some(mut entry) = self.entry(file_name) else {
            return Ok(());
        };
        if entry.resolved_at.is_some() {
            return Ok(());
        }
        entry.resolved_at = Some(at.to_string());
        entry.state = "pending".into();
        entry.next_at_ms = 0;
        self.write(file_name, &entry)
    }

    /// One pass: every entry due is posted to every Alertmanager; how many
    /// failed. An entry is due when it changed since it was delivered,
    /// when its backoff after a failure ran out, or when it is a firing
    /// condition last sent a minute ago.
    pub async fn deliver(&self, metrics: &crate::metrics::Metrics) -> usize {
        let Ok(files) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        let now = crate::time::now_ms();
        let mut failed = 0;
        let mut pending = 0;
        for file in files.flatten() {
            let name = file.file_name().to_string_lossy().to_string();
            let Some(mut entry) = self.entry(&name) else {
                continue;
            };
            let refresh = entry.condition
                && entry.resolved_at.is_none()
                && now - entry.sent_at_ms >= REFRESH.as_millis() as i64;
            let due = (entry.state != "delivered" && now >= entry.next_at_ms)
                || (entry.state == "delivered" && refresh);
            if !due {
                pending += usize::from(entry.state != "delivered");
                continue;
            }
            match self.post(&entry, now).await {
                Ok(()) => {
                    entry.state = "delivered".into();
                    entry.attempts = 0;
                    entry.last_error.clear();
                    entry.sent_at_ms = now;
                }
                Err(why) => {
                    failed += 1;
                    pending += 1;
                    metrics.alert_delivery_failed("alertmanager");
                    entry.state = "failing".into();
                    entry.attempts += 1;
                    entry.last_error = why;
                    let backoff = Duration::from_secs(1 << entry.attempts.min(9)).min(MAX_BACKOFF);
                    entry.next_at_ms = now + backoff.as_millis() as i64;
                }
            }
            if let Err(e) = self.write(&name, &entry) {
                tracing::warn!("alert outbox {name}: {e}");
            }
        }
        metrics.alert_deliveries_pending("alertmanager", pending);
        failed
    }

    /// Posts `entry` to every Alertmanager, with its `endsAt`.
    async fn post(&self, entry: &Entry, now: i64) -> Result<(), String> {
        let mut alert = entry.alert.clone();
        if let Some(at) = &entry.resolved_at {
            alert["endsAt"] = at.clone().into();
        } else if entry.condition {
            alert["endsAt"] = crate::time::millis_text(now + HOLD.as_millis() as i64).into();
        }
        let body = serde_json::Value::Array(vec![alert]);
        let timeout = Duration::from_secs(10);
        let client = reqwest::Client::new();
        let mut errors = Vec::new();
        for url in &self.urls {
            let target = format!("{}/api/v2/alerts", url.trim_end_matches('/'));
            match client
                .post(&target)
                .json(&body)
                .timeout(timeout)
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => errors.push(format!("{target} answered {}", r.status())),
                Err(e) => errors.push(format!("{target}: {}", crate::http::cause(&e, timeout))),
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}
