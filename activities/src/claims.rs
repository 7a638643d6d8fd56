//! Claims on signed starts: a start the API signed carries a fresh nonce,
//! and the run claims it in the state store before it does anything, so a
//! signed start copied out of one run's history starts no other run.

use std::sync::Arc;

use steward_proto::names;
use steward_proto::v1::{StartClaim, StartClaimed};
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

use crate::failure::retryable;
use crate::store::Store;

/// What the claim activity needs: the state store.
#[derive(Debug, Clone)]
pub struct ClaimActivities {
    store: Store,
}

impl ClaimActivities {
    /// Claims in `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Claims `req.nonce` for `req.run_id`.
    pub async fn claim(&self, req: &StartClaim) -> Result<StartClaimed, crate::store::Error> {
        let holder = self
            .store
            .claim_start(
                &req.nonce,
                &req.workflow_id,
                &req.run_id,
                chrono::Utc::now().timestamp_millis(),
            )
            .await?;
        Ok(if holder == req.run_id {
            StartClaimed {
                claimed: true,
                used_by: String::new(),
            }
        } else {
            StartClaimed {
                claimed: false,
                used_by: holder,
            }
        })
    }
}

#[activities]
impl ClaimActivities {
    /// Claims a signed start's nonce for its run. Idempotent: the claim is
    /// keyed by the nonce and names the run, so a retry of the same run
    /// finds its own claim.
    #[activity(name = names::CLAIM_START)]
    pub async fn claim_start(
        self: Arc<Self>,
        _ctx: ActivityContext,
        req: StartClaim,
    ) -> Result<StartClaimed, ActivityError> {
        self.claim(&req).await.map_err(retryable)
    }
}
