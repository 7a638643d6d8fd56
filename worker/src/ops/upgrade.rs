//! Warm upgrades, trials and cold runs of an app, their approval and
//! status, and the cold sweep of every app.

use futures::StreamExt as _;
use steward_activities::roster::Target;
use steward_proto::names::WARM_UPGRADE;
use steward_proto::v1::{
    ApproveReply, ApproveRequest, ColdSweepInput, ColdSweepResult, UpgradeInput, UpgradeResult,
    UpgradeStatus,
};
use steward_proto::vocab::{OperatorVerb, UpgradeMode};
use steward_proto::{ids, signing};
use steward_workflows::{ColdSweep, WarmUpgrade};
use temporalio_client::{WorkflowExecutionStatus, WorkflowGetResultOptions, WorkflowListOptions};

use super::{Actor, Error, Ops, Result, Started, sign};

/// What an upgrade's start asks for.
#[derive(Debug, Clone)]
pub struct Start {
    /// Which run.
    pub mode: UpgradeMode,
    /// The version (a trial's release tag or git revision); empty: the
    /// latest release.
    pub version: String,
    /// Why.
    pub reason: String,
    /// The pull request whose comment asked for the run (the forge
    /// webhook): its status is posted back.
    pub forge: Option<steward_proto::v1::ForgeOrigin>,
}

/// An app's upgrade status and the run it was read from.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct UpgradeView {
    /// The run read.
    pub workflow_id: String,
    /// Its status.
    pub status: UpgradeStatus,
}

/// What a cold sweep's start asks for.
#[derive(Debug, Clone, Default)]
pub struct ColdSweepStart {
    /// Only apps whose name contains this.
    pub filter: String,
    /// At most this many at a time (0: `[cold_sweep] max_parallel`).
    pub max_parallel: u32,
    /// At most this many in all (0: `[cold_sweep] max_total`).
    pub max_total: u32,
    /// Where the start came from (`cli`, `api`).
    pub source: String,
}

impl Ops {
    /// Starts an upgrade, trial or cold run of `app` as `actor`, signed when
    /// the API verified them.
    pub async fn start_upgrade(&self, actor: &Actor, app: &str, start: Start) -> Result<Started> {
        let spec = self.app_spec(app)?;
        super::operator_text(&actor.name, &start.reason, "reason")?;
        if start.mode == UpgradeMode::Trial && start.version.trim().is_empty() {
            return Err(Error::BadRequest(
                "a trial needs the release tag or git revision to try".into(),
            ));
        }
        if start.version.chars().any(char::is_control) || start.version.len() > 255 {
            return Err(Error::BadRequest(
                "the version is a release tag or git revision: at most 255 plain characters".into(),
            ));
        }
        self.permit(
            actor,
            Target::App(app),
            OperatorVerb::Start.as_str(),
            spec.approval_group.as_slice(),
        )?;
        let id = ids::warm_upgrade(app);
        let mut input = UpgradeInput {
            app: app.to_string(),
            version: start.version,
            trial: start.mode == UpgradeMode::Trial,
            cold: start.mode == UpgradeMode::Cold,
            operator: actor.name.clone(),
            reason: start.reason,
            credential_id: actor.credential_id.clone(),
            forge: start.forge,
            ..Default::default()
        };
        if let Some(signer) = self.signer_for(actor) {
            input.signed_at = sign::now();
            input.nonce = sign::nonce().map_err(|e| Error::upstream("signing the start", e))?;
            let detail = signing::upgrade_start_detail(&input);
            input.signature = signer.sign(&signing::Action::of(
                &id,
                &input.nonce,
                OperatorVerb::Start.as_str(),
                &input,
                &detail,
            ));
        }
        let shown = crate::summary::upgrade(Some(spec), &input, "").await;
        let (started, _) = self
            .start(WarmUpgrade::run, input, &id, shown, || {
                format!(
                    "an upgrade of `{app}` is already running as workflow {id}; see `steward upgrade status {app}`"
                )
            })
            .await?;
        Ok(started)
    }

    /// Waits for the upgrade `started` to end.
    pub async fn upgrade_result(&self, started: &Started) -> Result<UpgradeResult> {
        self.client()
            .await?
            .get_workflow_handle::<WarmUpgrade>(started.workflow_id.clone())
            .get_result(WorkflowGetResultOptions::default())
            .await
            .map_err(|e| Error::result(format!("upgrade {}", started.workflow_id), e))
    }

    /// The upgrade of `app` that status and approval address: a running
    /// one (the newest, if a manual run and a scheduled one both are), else
    /// the one that ended last (a scheduled run skipped while a trial ran
    /// started after the trial but ended before it); started by hand or by
    /// a schedule. A run started a moment ago may not be listed yet, so the
    /// manual id is asked directly too.
    pub async fn current_upgrade(&self, app: &str) -> Result<String> {
        let client = self.client().await?;
        let base = ids::warm_upgrade(app);
        let manual = client
            .get_workflow_handle::<WarmUpgrade>(base.clone())
            .describe(Default::default())
            .await
            .ok();
        if manual
            .as_ref()
            .is_some_and(|d| d.status() == WorkflowExecutionStatus::Running)
        {
            return Ok(base);
        }
        let query = format!("WorkflowType = '{WARM_UPGRADE}' AND WorkflowId STARTS_WITH '{base}'");
        let mut runs = client.list_workflows(
            query.clone(),
            WorkflowListOptions::builder().limit(100).build(),
        );
        let mut found: Vec<(bool, Option<std::time::SystemTime>, String)> = Vec::new();
        while let Some(run) = runs.next().await {
            let run = run.map_err(|e| Error::upstream(format!("listing `{query}`"), e))?;
            if ids::is_upgrade_of(app, run.id()) {
                let running = run.status() == WorkflowExecutionStatus::Running;
                let at = if running {
                    run.start_time()
                } else {
                    run.close_time()
                };
                found.push((running, at, run.id().to_string()));
            }
        }
        if let Some(d) = manual {
            found.push((false, d.close_time().or(d.start_time()), base.clone()));
        }
        found.sort();
        Ok(found.pop().map(|(_, _, id)| id).unwrap_or(base))
    }

    /// The phase, target, last good and hold of `app`'s current upgrade.
    pub async fn upgrade_status(&self, app: &str) -> Result<UpgradeView> {
        self.app_spec(app)?;
        let id = self.current_upgrade(app).await?;
        let status = self.upgrade_run_status(app, &id).await?;
        Ok(UpgradeView {
            workflow_id: id,
            status,
        })
    }

    /// The status of `app`'s upgrade run `id`.
    pub async fn upgrade_run_status(&self, app: &str, id: &str) -> Result<UpgradeStatus> {
        self.client()
            .await?
            .get_workflow_handle::<WarmUpgrade>(id.to_string())
            .query(WarmUpgrade::status, (), Default::default())
            .await
            .map_err(|e| match Error::query(format!("querying {id}"), e) {
                Error::NotFound(_) => {
                    Error::NotFound(format!("no upgrade of `{app}` found (looked for {id})"))
                }
                other => other,
            })
    }

    /// Approves `app`'s held upgrade to `version` as `actor`.
    pub async fn approve_upgrade(
        &self,
        actor: &Actor,
        app: &str,
        version: &str,
        reason: &str,
    ) -> Result<ApproveReply> {
        let spec = self.app_spec(app)?;
        super::operator_text(&actor.name, reason, "reason")?;
        if version.trim().is_empty() {
            return Err(Error::BadRequest(
                "an approval names the held version exactly".into(),
            ));
        }
        let id = self.current_upgrade(app).await?;
        let mut req = ApproveRequest {
            version: version.to_string(),
            operator: actor.name.clone(),
            reason: reason.to_string(),
            credential_id: actor.credential_id.clone(),
            ..Default::default()
        };
        match self.signer_for(actor) {
            Some(signer) => {
                let chain = self.chain::<WarmUpgrade>(&id, app).await?;
                req.signed_at = sign::now();
                let detail = signing::approve_detail(&req);
                req.signature = signer.sign(&signing::Action::of(
                    &id,
                    &chain,
                    OperatorVerb::Approve.as_str(),
                    &req,
                    &detail,
                ));
            }
            None if spec.require_verified => {
                return Err(Error::Forbidden(format!(
                    "upgrades of `{app}` take verified approvals only (require_verified): approve \
                     through steward's API with your operator token \
                     (POST /v1/upgrades/{app}/approve, or the operator page)"
                )));
            }
            None => {}
        }
        let answered = self
            .client()
            .await?
            .get_workflow_handle::<WarmUpgrade>(id)
            .execute_update(WarmUpgrade::approve, req, Default::default())
            .await
            .map_err(|e| Error::update(format!("approve refused for `{app}`"), e));
        // A refused approval is told to those waiting on it.
        if let Err(Error::Refused(why)) = &answered {
            self.notice(
                "upgrade.approval-refused",
                app,
                format!(
                    "upgrade of `{app}`: the approval by {} was refused: {why}",
                    actor.name
                ),
            )
            .await;
        }
        answered
    }

    /// Starts the cold run of every app with a cold setup (or those
    /// matching the filter) as `actor`.
    pub async fn start_cold_sweep(&self, actor: &Actor, start: ColdSweepStart) -> Result<Started> {
        self.permit(actor, Target::ColdSweep, OperatorVerb::Start.as_str(), &[])?;
        if start.filter.chars().any(char::is_control) || start.filter.len() > 255 {
            return Err(Error::BadRequest(
                "filter is part of an app name: at most 255 plain characters".into(),
            ));
        }
        let input = ColdSweepInput {
            filter: start.filter,
            max_parallel: start.max_parallel,
            max_total: start.max_total,
            source: start.source,
        };
        let shown = crate::summary::cold_sweep(self.loaded(), &input, &actor.name);
        let id = ids::cold_sweep(&uuid::Uuid::new_v4().simple().to_string());
        let (started, _) = self
            .start(ColdSweep::run, input, &id, shown, || {
                format!("cold sweep {id} is already running")
            })
            .await?;
        Ok(started)
    }

    /// Waits for the cold sweep `started` to end.
    pub async fn cold_sweep_result(&self, started: &Started) -> Result<ColdSweepResult> {
        self.client()
            .await?
            .get_workflow_handle::<ColdSweep>(started.workflow_id.clone())
            .get_result(WorkflowGetResultOptions::default())
            .await
            .map_err(|e| Error::result(format!("cold sweep {}", started.workflow_id), e))
    }
}
