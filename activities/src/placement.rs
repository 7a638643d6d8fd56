//! Where a run's pinned steps run: the `runs_on` of the app, the drill or
//! the restore drill, as this worker's config says, with how long a
//! pinned step may wait for a worker of its host before the run says so.
//! The run asks once, before its first pinned step, and keeps the answer
//! in its history.

use std::collections::BTreeMap;
use std::sync::Arc;

use steward_proto::names;
use steward_proto::v1::{Placement, PlacementRequest};
use steward_proto::vocab::PlacementKind;
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

use crate::failure::permanent;

/// The hosts the config pins things to.
#[derive(Debug, Clone, Default)]
pub struct PlacementActivities {
    /// `(kind, name)` → host; the restore drill's name is empty.
    hosts: BTreeMap<(PlacementKind, String), String>,
    wait_alert_seconds: u32,
}

impl PlacementActivities {
    /// Nothing pinned; a pinned step's wait is told after
    /// `wait_alert_seconds`.
    pub fn new(wait_alert_seconds: u32) -> Self {
        Self {
            hosts: BTreeMap::new(),
            wait_alert_seconds,
        }
    }

    /// The same, with `name` of `kind` pinned to `host` (when it is some).
    pub fn pin(mut self, kind: PlacementKind, name: &str, host: Option<&str>) -> Self {
        if let Some(host) = host {
            self.hosts
                .insert((kind, name.to_string()), host.to_string());
        }
        self
    }

    /// Where `req`'s steps run.
    pub fn place(&self, req: &PlacementRequest) -> Result<Placement, String> {
        let kind: PlacementKind = req.kind.parse().map_err(|e| format!("{e}"))?;
        Ok(Placement {
            host: self
                .hosts
                .get(&(kind, req.name.clone()))
                .cloned()
                .unwrap_or_default(),
            wait_alert_seconds: self.wait_alert_seconds,
        })
    }
}

#[activities]
impl PlacementActivities {
    /// The host whose workers run a run's pinned steps. Reads the config
    /// only: any worker answers it.
    #[activity(name = names::PLACE)]
    pub async fn place_steps(
        self: Arc<Self>,
        _ctx: ActivityContext,
        req: PlacementRequest,
    ) -> Result<Placement, ActivityError> {
        self.place(&req).map_err(permanent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pinned_thing_names_its_host_and_the_rest_run_anywhere() {
        let p = PlacementActivities::new(300)
            .pin(PlacementKind::App, "sso", Some("app1"))
            .pin(PlacementKind::App, "wiki", None)
            .pin(PlacementKind::Restore, "", Some("db1"));
        let ask = |kind: &str, name: &str| {
            p.place(&PlacementRequest {
                kind: kind.into(),
                name: name.into(),
            })
        };
        assert_eq!(ask("app", "sso").unwrap().host, "app1");
        assert_eq!(ask("app", "sso").unwrap().wait_alert_seconds, 300);
        assert_eq!(ask("app", "wiki").unwrap().host, "");
        assert_eq!(ask("drill", "sso").unwrap().host, "", "kinds are apart");
        assert_eq!(ask("restore", "").unwrap().host, "db1");
        assert!(ask("volume", "x").unwrap_err().contains("placement kind"));
    }
}
