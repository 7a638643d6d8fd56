//! steward's workflows: deterministic code only.
//!
//! Nothing here does I/O, reads a clock or spawns a task. Time comes from
//! `ctx.workflow_time()`, waiting from `ctx.timer()`, concurrency from the
//! SDK's deterministic `join_all`. `clippy.toml` beside this crate refuses the
//! usual ways to break that rule. Side effects are scheduled as activities
//! declared in `steward_proto::activities`.
#![warn(missing_docs)]

pub mod alert;
pub mod attributes;
// The SDK macros add undocumented marker constants to the impl blocks.
#[allow(missing_docs)]
pub mod cold_sweep;
// The SDK macros add undocumented marker constants to the impl blocks.
#[allow(missing_docs)]
pub mod backfill;
pub mod failure;
pub mod hosts;
// The operator protocol: text, signatures, permissions, separation of duties.
pub mod operator;
// The SDK macros add undocumented marker constants to the impl blocks.
#[allow(missing_docs)]
pub mod failover;
pub mod options;
// The SDK macros add undocumented marker constants to the impl blocks.
#[allow(missing_docs)]
pub mod restore;
// The SDK macros add undocumented marker constants to the impl blocks.
#[allow(missing_docs)]
pub mod shared_reap;
// The SDK macros add undocumented marker constants to the impl blocks.
#[allow(missing_docs)]
pub mod sweep;
pub mod time;
// The SDK macros add undocumented marker constants to the impl blocks.
#[allow(missing_docs)]
pub mod upgrade;
pub mod verify;

pub use backfill::BackfillRollout;
pub use cold_sweep::ColdSweep;
pub use failover::FailoverDrill;
pub use restore::RestoreDrill;
pub use shared_reap::SharedReap;
pub use sweep::ConsistencySweep;
pub use upgrade::WarmUpgrade;
