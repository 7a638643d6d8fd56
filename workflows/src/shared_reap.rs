//! `SharedReap`: one pass of the reaper over the `[[shared]]` services.
//! Each per-run resource steward made whose run has closed (or that
//! Temporal does not know), past the service's grace, is deleted; a
//! resource steward did not make is never touched. A run ends its own
//! resources on every ending it sees; the reaper is for what a run could
//! not (terminated by an operator, its worker gone for good). A pass that
//! deleted something, or could not read a service, raises an alert.

use serde_json::Value;
use steward_proto::activities::{SharedReapPass, SharedReapRecord};
use steward_proto::names;
use steward_proto::v1::{SharedReapInput, SharedReapResult};
use steward_proto::vocab::Severity;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{WorkflowContext, WorkflowContextView, WorkflowResult};

use crate::alert::{NewAlert, detail};
use crate::options::summarized;

/// The reaper's workflow.
#[workflow]
#[derive(Default)]
pub struct SharedReap {
    input: SharedReapInput,
}

#[workflow_methods]
impl SharedReap {
    /// Takes the input.
    #[init]
    pub fn new(_ctx: &WorkflowContextView, input: SharedReapInput) -> Self {
        Self { input }
    }

    /// Reaps, records, alerts.
    #[run(name = names::SHARED_REAP)]
    pub async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<SharedReapResult> {
        let input = ctx.state(|s| s.input.clone());
        let options = summarized(
            crate::options::heartbeating(600, 5),
            "reap shared resources",
        );
        let mut result = ctx
            .execute_activity(SharedReapPass, input.clone(), options)
            .await?;
        result.workflow_id = ctx.workflow_id().to_string();
        result.run_id = ctx.run_id().to_string();
        result.source = input.source;
        ctx.execute_activity(
            SharedReapRecord,
            result.clone(),
            summarized(crate::options::quick(60, 5), "record the reaper's pass"),
        )
        .await?;
        if !result.reaped.is_empty() || !result.failed.is_empty() {
            let severity = if result.failed.is_empty() {
                Severity::Info
            } else {
                Severity::Warning
            };
            let mut said: Vec<String> = result
                .reaped
                .iter()
                .map(|r| format!("{} on {} ({} run)", r.resource, r.service, r.run))
                .collect();
            said.extend(
                result
                    .failed
                    .iter()
                    .map(|f| format!("{}: {}", f.app, f.why)),
            );
            let new = NewAlert {
                id: format!("{}-{}-reap", result.workflow_id, result.run_id),
                severity,
                kind: "shared.reaped".into(),
                subject: if input.service.is_empty() {
                    "shared".into()
                } else {
                    input.service.clone()
                },
                message: format!(
                    "reaper: deleted {} leftover resources{}: {}",
                    result.reaped.len(),
                    if result.failed.is_empty() {
                        String::new()
                    } else {
                        format!(", {} services not cleaned", result.failed.len())
                    },
                    said.join("; ")
                ),
                at: ctx
                    .workflow_time()
                    .unwrap_or(std::time::SystemTime::UNIX_EPOCH),
                detail: detail([(
                    "reaped",
                    Value::from(
                        result
                            .reaped
                            .iter()
                            .map(|r| r.resource.clone())
                            .collect::<Vec<_>>(),
                    ),
                )]),
            };
            let _ = new.raise(ctx).await;
        }
        Ok(result)
    }
}
