//! steward's activities: every side effect of every workflow (git, the
//! state store, files), plus the pure workplan parser and check catalogue
//! they use.
//!
//! Each activity is idempotent and says why in its doc comment; the worker
//! registers them under the stable names declared in `steward_proto`.
#![warn(missing_docs)]

pub mod alertmanager;
// The SDK macros add undocumented marker constants to the impl blocks.
#[allow(missing_docs)]
pub mod alerts;
// The SDK macros add undocumented marker constants to the impl blocks.
#[allow(missing_docs)]
pub mod backfill;
// The SDK macros add undocumented marker constants to the impl blocks.
#[allow(missing_docs)]
pub mod claims;
pub mod command;
pub mod dburl;
pub mod duration;
pub mod evidence;
mod failure;
// The SDK macros add undocumented marker constants to the impl blocks.
#[allow(missing_docs)]
pub mod failover;
pub mod files;
pub mod forge;
pub mod git;
pub mod heartbeat;
pub mod http;
pub mod metrics;
// The SDK macros add undocumented marker constants to the impl blocks.
#[allow(missing_docs)]
pub mod placement;
// The SDK macros add undocumented marker constants to the impl blocks.
#[allow(missing_docs)]
pub mod restore;
pub mod roster;
pub mod store;
// Declared after the SDK-macro modules, like the other plain modules.
pub mod time;
// The SDK macros add undocumented marker constants to the impl blocks.
#[allow(missing_docs)]
pub mod sweep;
// The SDK macros add undocumented marker constants to the impl blocks.
#[allow(missing_docs)]
pub mod upgrade;
pub mod workplan;

pub use store::Store;
pub use sweep::SweepActivities;
