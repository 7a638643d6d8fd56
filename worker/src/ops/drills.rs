//! Failover drills of a `[[drills]]` service and restore drills of the
//! state store: start one, wait for it, read the last ones.

use steward_activities::roster::Target;
use steward_proto::v1::{
    FailoverDrillInput, FailoverDrillResult, RestoreDrillInput, RestoreDrillResult,
};
use steward_proto::vocab::{DrillOutcome, FailoverOutcome, OperatorVerb};
use steward_proto::{ids, names};
use steward_workflows::{FailoverDrill, RestoreDrill};
use temporalio_client::WorkflowGetResultOptions;

use super::{Actor, Error, Ops, Result, Started};

/// A service's last drill and its last drill that passed.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct LastFailover {
    /// The newest drill.
    #[schema(value_type = Option<Object>)]
    pub last_drill: Option<FailoverDrillResult>,
    /// The newest drill that passed.
    #[schema(value_type = Option<Object>)]
    pub last_passed: Option<FailoverDrillResult>,
}

/// The last verified backup and the last restore drill.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct LastRestore {
    /// The newest drill that verified its backup.
    #[schema(value_type = Option<Object>)]
    pub last_verified_backup: Option<RestoreDrillResult>,
    /// The newest drill.
    #[schema(value_type = Option<Object>)]
    pub last_drill: Option<RestoreDrillResult>,
}

impl Ops {
    /// Starts failover drill `drill` as `actor`.
    pub async fn start_failover_drill(
        &self,
        actor: &Actor,
        drill: &str,
        reason: &str,
        source: &str,
    ) -> Result<Started> {
        self.drill_spec(drill)?;
        super::operator_text(&actor.name, reason, "reason")?;
        self.permit(
            actor,
            Target::Drill(drill),
            OperatorVerb::Start.as_str(),
            &[],
        )?;
        let input = FailoverDrillInput {
            drill: drill.to_string(),
            source: source.to_string(),
            operator: actor.name.clone(),
            reason: reason.to_string(),
        };
        let id = ids::failover_drill(drill, &uuid::Uuid::new_v4().simple().to_string());
        let shown = crate::summary::failover_drill(self.loaded(), &input);
        let (started, _) = self
            .start(FailoverDrill::run, input, &id, shown, || {
                format!("failover drill {id} is already running")
            })
            .await?;
        Ok(started)
    }

    /// Waits for the failover drill `started` to end.
    pub async fn failover_result(&self, started: &Started) -> Result<FailoverDrillResult> {
        self.client()
            .await?
            .get_workflow_handle::<FailoverDrill>(started.workflow_id.clone())
            .get_result(WorkflowGetResultOptions::default())
            .await
            .map_err(|e| Error::result(format!("waiting for {}", started.workflow_id), e))
    }

    /// Drill `drill`'s last run and last passed run.
    pub async fn last_failover(&self, drill: &str) -> Result<LastFailover> {
        self.drill_spec(drill)?;
        let drills: Vec<FailoverDrillResult> = self
            .store()
            .await?
            .progress(Some(names::FAILOVER_EVENT_TYPE), 0, 500)
            .await
            .map_err(Error::store("reading drill events"))?
            .iter()
            .filter_map(|e| serde_json::from_str::<FailoverDrillResult>(&e.detail_json).ok())
            .filter(|r| r.drill == drill)
            .collect();
        let passed = drills
            .iter()
            .find(|d| FailoverOutcome::Passed == d.outcome)
            .cloned();
        Ok(LastFailover {
            last_drill: drills.into_iter().next(),
            last_passed: passed,
        })
    }

    /// Starts a restore drill as `actor`: a new backup, or `backup` (a file
    /// an earlier drill took) verified again.
    pub async fn start_restore_drill(
        &self,
        actor: &Actor,
        backup: Option<&std::path::Path>,
        source: &str,
    ) -> Result<Started> {
        if actor.name.trim().is_empty() {
            return Err(Error::BadRequest("an operator name is required".into()));
        }
        self.permit(
            actor,
            Target::RestoreDrill,
            OperatorVerb::Start.as_str(),
            &[],
        )?;
        if backup.is_none()
            && let Some(missing) = self.loaded().config.restore.unready()
        {
            return Err(Error::NotFound(format!(
                "no restore drill is configured: {missing}"
            )));
        }
        let backup = match backup {
            Some(path) => {
                let path = std::fs::canonicalize(path)
                    .map_err(|e| Error::NotFound(format!("backup {}: {e}", path.display())))?;
                if !steward_activities::restore::manifest_path(&path).exists() {
                    return Err(Error::BadRequest(
                        steward_activities::restore::Error::NoManifest(path.display().to_string())
                            .to_string(),
                    ));
                }
                path.display().to_string()
            }
            None => String::new(),
        };
        let id = ids::restore_drill(&uuid::Uuid::new_v4().simple().to_string());
        let input = RestoreDrillInput {
            source: source.to_string(),
            backup,
            operator: actor.name.clone(),
        };
        let shown = crate::summary::restore_drill(self.loaded(), &input);
        let (started, _) = self
            .start(RestoreDrill::run, input, &id, shown, || {
                format!("restore drill {id} is already running")
            })
            .await?;
        Ok(started)
    }

    /// Waits for the restore drill `started` to end.
    pub async fn restore_result(&self, started: &Started) -> Result<RestoreDrillResult> {
        self.client()
            .await?
            .get_workflow_handle::<RestoreDrill>(started.workflow_id.clone())
            .get_result(WorkflowGetResultOptions::default())
            .await
            .map_err(|e| Error::result(format!("waiting for {}", started.workflow_id), e))
    }

    /// The last verified backup and the last restore drill.
    pub async fn last_restore(&self) -> Result<LastRestore> {
        let drills: Vec<RestoreDrillResult> = self
            .store()
            .await?
            .progress(Some(names::RESTORE_EVENT_TYPE), 0, 200)
            .await
            .map_err(Error::store("reading restore drill events"))?
            .iter()
            .filter_map(|e| serde_json::from_str(&e.detail_json).ok())
            .collect();
        let verified = drills
            .iter()
            .find(|d| DrillOutcome::Verified == d.outcome)
            .cloned();
        Ok(LastRestore {
            last_verified_backup: verified,
            last_drill: drills.into_iter().next(),
        })
    }

    /// The `[[drills]]` entry `name`.
    pub fn drill_spec(&self, name: &str) -> Result<&steward_activities::failover::DrillSpec> {
        let drills = &self.loaded().config.drills;
        drills.iter().find(|d| d.name == name).ok_or_else(|| {
            Error::NotFound(super::unknown(
                "drill",
                name,
                drills.iter().map(|d| d.name.as_str()),
            ))
        })
    }
}
