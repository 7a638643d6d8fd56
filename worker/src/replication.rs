//! The replication of every drilled service, watched beside the worker
//! between drills: how many standbys stream from the primary and how far
//! each lags (`steward_drill_standbys_streaming{drill}`,
//! `steward_drill_standby_lag_bytes{drill, standby}` and
//! `steward_drill_standby_lag_seconds{drill, standby}`), so an alert can
//! fire before a drill's preflight refuses. A service with no reachable
//! primary counts -1 streaming and is logged at warn once until it is back.

use std::collections::BTreeSet;

use steward_activities::failover::service::{self, Service};
use steward_activities::metrics::Metrics;

use crate::config::Loaded;

/// What the watch remembers between passes: the drills already told.
#[derive(Debug)]
pub struct ReplicationWatch {
    drills: Vec<(String, String)>,
    metrics: Metrics,
    told: BTreeSet<String>,
}

impl ReplicationWatch {
    /// A watch over the drills of `loaded`.
    pub fn new(loaded: &Loaded, metrics: Metrics) -> Self {
        Self {
            drills: loaded
                .config
                .drills
                .iter()
                .map(|d| (d.name.clone(), d.url.clone()))
                .collect(),
            metrics,
            told: BTreeSet::new(),
        }
    }

    /// One pass over every drill.
    pub async fn check(&mut self) -> anyhow::Result<()> {
        for (drill, url) in &self.drills {
            let Ok(service) = Service::parse(url) else {
                continue;
            };
            let standbys = match service.primary().await {
                Ok((_, mut c)) => service::standbys(&mut c).await,
                Err(e) => Err(e),
            };
            match standbys {
                Ok(standbys) => {
                    self.told.remove(drill);
                    let streaming = standbys.iter().filter(|s| s.streaming()).count();
                    self.metrics.standbys_streaming(drill, streaming as i64);
                    for s in &standbys {
                        self.metrics
                            .standby_lag(drill, &s.name, s.lag_bytes, s.lag_seconds);
                    }
                }
                Err(why) => {
                    self.metrics.standbys_streaming(drill, -1);
                    if self.told.insert(drill.clone()) {
                        tracing::warn!(
                            "drill `{drill}`: cannot read its replication ({why}); its next \
                             drill will be refused until a primary answers"
                        );
                    }
                }
            }
        }
        Ok(())
    }
}
