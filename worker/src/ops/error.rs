//! The one error of the operations layer. Each variant is a kind of answer
//! an operator gets, built from the SDK's typed errors (never from their
//! text), so the API picks its status and the CLI its exit code by
//! variant.

use temporalio_client::errors::{
    WorkflowGetResultError, WorkflowInteractionError, WorkflowQueryError, WorkflowStartError,
    WorkflowUpdateError,
};
use temporalio_client::tonic::{Code, Status};

/// What went wrong, as an operator needs to know it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request itself is wrong: a value out of range, a bad time, a
    /// missing reason. Nothing was sent.
    #[error("{0}")]
    BadRequest(String),
    /// No such backfill, app, schedule, drill or run.
    #[error("{0}")]
    NotFound(String),
    /// The operator may not take this action (`[[permissions]]`).
    #[error("{0}")]
    Forbidden(String),
    /// A run with that workflow id is still open.
    #[error("{message}")]
    AlreadyRunning {
        /// The open run's workflow id.
        workflow_id: String,
        /// What it is and where to look.
        message: String,
    },
    /// The run's validator refused the action, with its reason.
    #[error("{0}")]
    Refused(String),
    /// The run ended without a result: it failed, was cancelled,
    /// terminated or timed out.
    #[error("{0}")]
    RunFailed(String),
    /// Temporal or the state store failed underneath.
    #[error("{context}: {detail}")]
    Upstream {
        /// What steward was doing.
        context: String,
        /// What failed.
        detail: String,
    },
}

/// The messages of a failure and of every cause under it: what the
/// workflow and the activity that failed said.
fn messages(failure: &temporalio_common::error::IncomingError) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(failure.failure());
    while let Some(f) = current {
        if !f.message.is_empty() && !parts.contains(&f.message) {
            parts.push(f.message.clone());
        }
        current = f.cause.as_deref();
    }
    parts.join(": ")
}

/// The failure the server completes an update with when its run closed
/// (continued as new) before the update completed: no validator's word.
const SERVER_ABORTED_UPDATE: &str = "workflow update was aborted";

/// The result of an operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An upstream failure while doing `context`.
    pub fn upstream(context: impl Into<String>, e: impl std::fmt::Display) -> Self {
        Self::Upstream {
            context: context.into(),
            detail: format!("{e:#}"),
        }
    }

    /// The store failed while doing `context`.
    pub fn store(
        context: impl Into<String>,
    ) -> impl FnOnce(steward_activities::store::Error) -> Self {
        let context = context.into();
        move |e| Self::upstream(context, e)
    }

    /// A gRPC status from Temporal, by its code: a bad argument is the
    /// request's fault, a missing run is not found, the rest is upstream.
    pub fn status(context: impl Into<String>, status: &Status) -> Self {
        let context = context.into();
        let message = status.message().to_string();
        match status.code() {
            Code::InvalidArgument => Self::BadRequest(format!("{context}: {message}")),
            Code::NotFound => Self::NotFound(format!("{context}: {message}")),
            Code::AlreadyExists => Self::AlreadyRunning {
                workflow_id: String::new(),
                message: format!("{context}: {message}"),
            },
            _ => Self::upstream(context, message),
        }
    }

    /// A workflow start's failure; `already` is what to say when a run
    /// with that id is still open.
    pub fn start(workflow_id: &str, already: String, e: WorkflowStartError) -> Self {
        match e {
            WorkflowStartError::AlreadyStarted { .. } => Self::AlreadyRunning {
                workflow_id: workflow_id.to_string(),
                message: already,
            },
            WorkflowStartError::Rpc(status) => {
                Self::status(format!("starting {workflow_id}"), &status)
            }
            other => Self::upstream(format!("starting {workflow_id}"), other),
        }
    }

    /// An update's failure: the validator's refusal with its own message,
    /// a run that is gone, or the transport.
    pub fn update(context: impl Into<String>, e: WorkflowUpdateError) -> Self {
        let context = context.into();
        match e {
            WorkflowUpdateError::Failed(failure) => {
                Self::Refused(format!("{context}: {}", failure.message))
            }
            WorkflowUpdateError::NotFound(status) => {
                Self::NotFound(format!("{context}: {}", status.message()))
            }
            WorkflowUpdateError::Rpc(status) => Self::status(context, &status),
            other => Self::upstream(context, other),
        }
    }

    /// A query's failure.
    pub fn query(context: impl Into<String>, e: WorkflowQueryError) -> Self {
        let context = context.into();
        match e {
            WorkflowQueryError::NotFound(status) => {
                Self::NotFound(format!("{context}: {}", status.message()))
            }
            WorkflowQueryError::Rpc(status) => Self::status(context, &status),
            other => Self::upstream(context, other),
        }
    }

    /// A describe, terminate or history call's failure.
    pub fn interaction(context: impl Into<String>, e: WorkflowInteractionError) -> Self {
        let context = context.into();
        match e {
            WorkflowInteractionError::NotFound(status) => {
                Self::NotFound(format!("{context}: {}", status.message()))
            }
            other => Self::upstream(context, other),
        }
    }

    /// Waiting for a run's result failed: the run ended without one, or
    /// the server.
    pub fn result(context: impl Into<String>, e: WorkflowGetResultError) -> Self {
        let context = context.into();
        match e {
            WorkflowGetResultError::NotFound(status) => {
                Self::NotFound(format!("{context}: {}", status.message()))
            }
            WorkflowGetResultError::Failed(failure) => {
                Self::RunFailed(format!("{context}: the run failed: {}", messages(&failure)))
            }
            WorkflowGetResultError::Cancelled { .. } => {
                Self::RunFailed(format!("{context}: the run was cancelled"))
            }
            WorkflowGetResultError::Terminated { .. } => {
                Self::RunFailed(format!("{context}: the run was terminated"))
            }
            WorkflowGetResultError::TimedOut => {
                Self::RunFailed(format!("{context}: the run timed out"))
            }
            other => Self::upstream(context, other),
        }
    }

    /// Whether an update met a run that had just closed (the rollout moves
    /// to its next run), the server's limit of updates in flight, or the
    /// server's abort of an update whose run closed before the update
    /// completed: the update did not complete on any run, and sending it
    /// again is right (its validator refuses it if the first one's effect
    /// was carried over).
    pub fn update_worth_resending(e: &WorkflowUpdateError) -> bool {
        match e {
            WorkflowUpdateError::NotFound(_) => true,
            WorkflowUpdateError::Failed(f) => f.message == SERVER_ABORTED_UPDATE,
            WorkflowUpdateError::Rpc(status) => matches!(
                status.code(),
                Code::ResourceExhausted
                    | Code::Aborted
                    | Code::FailedPrecondition
                    | Code::NotFound
                    | Code::Unavailable
            ),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use temporalio_common::protos::temporal::api::failure::v1::Failure;

    use super::*;

    #[test]
    fn an_update_the_server_aborted_is_sent_again_and_a_validators_refusal_is_not() {
        let failed = |message: &str| {
            WorkflowUpdateError::Failed(Box::new(Failure {
                message: message.into(),
                ..Default::default()
            }))
        };
        assert!(Error::update_worth_resending(&failed(
            "workflow update was aborted"
        )));
        assert!(!Error::update_worth_resending(&failed(
            "backfill `bf` is already paused"
        )));
        assert!(Error::update_worth_resending(&WorkflowUpdateError::Rpc(
            Status::resource_exhausted(
                "limit on number of concurrent in-flight updates has been reached (10)"
            )
        )));
        assert!(!Error::update_worth_resending(&WorkflowUpdateError::Rpc(
            Status::invalid_argument("bad")
        )));
    }
}
