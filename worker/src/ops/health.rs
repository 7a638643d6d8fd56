//! Whether a process can do its work, for probes: the state store answers
//! a query, Temporal answers for the namespace, and, for a worker, the
//! server saw it poll lately. Each check is named with what it found, so a
//! probe's body says why a process is not ready.

use std::future::Future;
use std::time::Duration;

use temporalio_client::NamespacedClient as _;
use temporalio_common::protos::temporal::api::enums::v1::TaskQueueType;

use super::{Error, Ops};

/// How long one check may take before it counts as failed.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// A worker counts as polling when the server saw it poll within this
/// (a long poll lasts up to a minute and a bit).
pub const POLLED_WITHIN: Duration = Duration::from_secs(180);

/// One check of a probe.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Check {
    /// `config`, `store`, `temporal`, `polling`.
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// What it found: the store and namespace it reached, or why not.
    pub detail: String,
}

impl Check {
    /// A check that passed.
    pub fn passed(name: &str, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ok: true,
            detail: detail.into(),
        }
    }

    /// A check that failed.
    pub fn failed(name: &str, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ok: false,
            detail: detail.into(),
        }
    }

    /// `check`, failed when it errs or takes longer than [`CHECK_TIMEOUT`].
    async fn timed(name: &str, check: impl Future<Output = Result<String, String>>) -> Self {
        let (ok, detail) = match tokio::time::timeout(CHECK_TIMEOUT, check).await {
            Ok(Ok(detail)) => (true, detail),
            Ok(Err(why)) => (false, why),
            Err(_) => (
                false,
                format!("no answer within {} s", CHECK_TIMEOUT.as_secs()),
            ),
        };
        Self {
            name: name.into(),
            ok,
            detail,
        }
    }
}

/// A probe's answer: ready when every check passed.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// Every check passed.
    pub ready: bool,
    /// Each check, in order.
    pub checks: Vec<Check>,
}

impl Readiness {
    /// The answer of `checks`.
    pub fn of(checks: Vec<Check>) -> Self {
        Self {
            ready: checks.iter().all(|c| c.ok),
            checks,
        }
    }
}

impl Ops {
    /// The state store answers a query.
    pub async fn store_check(&self) -> Check {
        Check::timed("store", async {
            let store = self.store().await.map_err(|e| e.to_string())?;
            store
                .ping()
                .await
                .map_err(|e| Error::upstream("querying the state store", e).to_string())?;
            let url = steward_activities::dburl::redact(&self.loaded().database_url());
            Ok(match (store.primary_host(), store.failovers().last()) {
                (Some(host), Some(f)) => format!(
                    "{url}: writing to {host} (failed over from {} after {:.1} s at {})",
                    f.from,
                    f.seconds,
                    steward_activities::time::millis_text(f.at_ms)
                ),
                (Some(host), None) => format!("{url}: writing to {host}"),
                _ => url,
            })
        })
        .await
    }

    /// Temporal answers for the namespace.
    pub async fn temporal_check(&self) -> Check {
        Check::timed("temporal", async {
            let client = self.client().await.map_err(|e| e.to_string())?;
            crate::namespace::retention(client)
                .await
                .map_err(|e| format!("{e:#}"))?;
            Ok(format!("namespace {}", client.namespace()))
        })
        .await
    }

    /// The server saw the worker `identity` poll the shared task queue
    /// within [`POLLED_WITHIN`].
    pub async fn polling_check(&self, identity: &str) -> Check {
        let queue = &self.loaded().config.task_queue;
        Check::timed("polling", async {
            let pollers = self
                .pollers(queue, TaskQueueType::Workflow)
                .await
                .map_err(|e| e.to_string())?;
            let now = steward_activities::time::now_ms();
            let seen = pollers
                .iter()
                .find(|p| p.identity == identity)
                .map(|p| now - p.last_poll_ms);
            match seen {
                Some(ago) if ago <= POLLED_WITHIN.as_millis() as i64 => Ok(format!(
                    "`{identity}` polled `{queue}` {} s ago",
                    ago.max(0) / 1000
                )),
                Some(ago) => Err(format!(
                    "`{identity}` last polled `{queue}` {} s ago",
                    ago / 1000
                )),
                None => Err(format!(
                    "the server has not seen `{identity}` poll `{queue}`"
                )),
            }
        })
        .await
    }
}
