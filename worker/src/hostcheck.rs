//! The poll check beside every worker: for each host the config pins
//! steps to (`runs_on`), whether any worker polls its queue. A host with
//! none is logged at warn once until a worker polls again (its pinned
//! steps wait, and their runs say so after `[worker] host_wait_alert`);
//! `steward_host_workers{host}` counts them all the time.

use std::collections::BTreeSet;

use steward_activities::metrics::Metrics;

use crate::ops::Ops;

/// What the check remembers between passes: the hosts already told.
#[derive(Debug)]
pub struct HostCheck {
    ops: Ops,
    metrics: Metrics,
    told: BTreeSet<String>,
}

impl HostCheck {
    /// A check over `ops`'s config and client.
    pub fn new(ops: Ops, metrics: Metrics) -> Self {
        Self {
            ops,
            metrics,
            told: BTreeSet::new(),
        }
    }

    /// One pass.
    pub async fn check(&mut self) -> anyhow::Result<()> {
        if self.ops.loaded().config.hosts().is_empty() {
            return Ok(());
        }
        let own = self.ops.loaded().config.worker.host.clone();
        let workers = self.ops.workers().await?;
        for h in workers.hosts {
            // This worker polls its own host's queue, though the server may
            // not have seen its first poll yet.
            let polling = if own.as_deref() == Some(h.host.as_str()) {
                h.workers.len().max(1)
            } else {
                h.workers.len()
            };
            self.metrics.host_workers(&h.host, polling);
            if polling > 0 {
                self.told.remove(&h.host);
            } else if !h.pinned.is_empty() && self.told.insert(h.host.clone()) {
                tracing::warn!(
                    "no worker polls host `{}` ({}), which {} pin steps to: they wait until a \
                     worker with `[worker] host = \"{}\"` runs",
                    h.host,
                    h.task_queue,
                    h.pinned.join(", "),
                    h.host
                );
            }
        }
        Ok(())
    }
}
