//! The shared services' per-run resources: what each service holds now
//! (made by steward for which run, or not), and the reaper's pass.

use steward_activities::roster::Target;
use steward_activities::time::{now_ms, secs_text};
use steward_proto::ids;
use steward_proto::v1::{SharedReapInput, SharedReapResult};
use steward_workflows::SharedReap;
use temporalio_client::WorkflowGetResultOptions;

use super::{Actor, Error, Ops, Result, Started};

/// A resource a shared service lists now.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct SharedRow {
    /// The service.
    pub service: String,
    /// The resource.
    pub resource: String,
    /// Whether steward made it (the reaper touches nothing else).
    pub made_by_steward: bool,
    /// The app and run it was made for.
    pub app: Option<String>,
    /// That run.
    pub run_id: Option<String>,
    /// Whether that run has closed, as Temporal says (`None`: unknown).
    pub run_closed: Option<bool>,
    /// When steward made it.
    pub created_at: Option<String>,
    /// Its age in seconds.
    pub age_seconds: Option<i64>,
}

/// Every shared service's resources, or why a service could not be read.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct SharedList {
    /// The resources listed.
    pub resources: Vec<SharedRow>,
    /// Services whose list failed, and why.
    pub unreadable: Vec<(String, String)>,
}

impl Ops {
    /// What each `[[shared]]` service lists now, with the run steward made
    /// each resource for.
    pub async fn shared_resources(&self) -> Result<SharedList> {
        let store = self.store().await?;
        let runs = crate::ops::locks::TemporalRuns(self.client().await?.clone());
        let now = now_ms();
        let mut out = SharedList {
            resources: Vec::new(),
            unreadable: Vec::new(),
        };
        for service in &self.loaded().config.shared {
            let listed = match service.listed().await {
                Ok(l) => l,
                Err(why) => {
                    out.unreadable.push((service.name.clone(), why));
                    continue;
                }
            };
            for resource in listed {
                let made = store
                    .shared_resource(&service.name, &resource)
                    .await
                    .map_err(Error::store("reading the shared resources"))?;
                let closed = match &made {
                    Some(m) => {
                        steward_activities::store::locks::HolderRuns::closed(&runs, &m.run_id).await
                    }
                    None => None,
                };
                out.resources.push(SharedRow {
                    service: service.name.clone(),
                    resource,
                    made_by_steward: made.is_some(),
                    app: made.as_ref().map(|m| m.app.clone()),
                    run_id: made.as_ref().map(|m| m.run_id.clone()),
                    run_closed: closed,
                    created_at: made.as_ref().map(|m| secs_text(m.created_at_ms)),
                    age_seconds: made.as_ref().map(|m| (now - m.created_at_ms) / 1000),
                });
            }
        }
        Ok(out)
    }

    /// Starts a reaper pass over every shared service (or `service`) as
    /// `actor`.
    pub async fn start_shared_reap(&self, actor: &Actor, service: &str) -> Result<Started> {
        self.permit(actor, Target::Shared, "reap", &[])?;
        let config = &self.loaded().config;
        if config.shared.is_empty() {
            return Err(Error::BadRequest(
                "the config declares no [[shared]] services".into(),
            ));
        }
        if !service.is_empty() && !config.shared.iter().any(|s| s.name == service) {
            return Err(Error::NotFound(format!(
                "no shared service named `{service}` in the config"
            )));
        }
        let input = SharedReapInput {
            service: service.to_string(),
            source: "cli".into(),
        };
        let shown = crate::summary::shared_reap(self.loaded(), &input, &actor.name);
        let id = ids::shared_reap(&uuid::Uuid::new_v4().simple().to_string());
        let (started, _) = self
            .start(SharedReap::run, input, &id, shown, || {
                format!("reaper pass {id} is already running")
            })
            .await?;
        Ok(started)
    }

    /// Waits for the reaper pass `started` to end.
    pub async fn shared_reap_result(&self, started: &Started) -> Result<SharedReapResult> {
        self.client()
            .await?
            .get_workflow_handle::<SharedReap>(started.workflow_id.clone())
            .get_result(WorkflowGetResultOptions::default())
            .await
            .map_err(|e| Error::result(format!("reaper pass {}", started.workflow_id), e))
    }
}
