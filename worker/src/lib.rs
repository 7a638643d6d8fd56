//! The `steward` binary's library: worker wiring, the operator CLI, the
//! config, the embedded Temporal dev server. The only crate that sees both
//! the workflows and the activities.
#![warn(missing_docs)]

pub mod api;
pub mod archive;
pub mod cli;
pub mod config;
pub mod connect;
pub mod devserver;
pub mod guard;
pub mod health;
pub mod history;
pub mod hostcheck;
pub mod namespace;
pub mod ops;
pub mod periodic;
pub mod registration;
pub mod replay;
pub mod replication;
pub mod schedules;
pub mod serve;
pub mod summary;
#[cfg(test)]
mod tidy;
