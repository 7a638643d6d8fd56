//! Support for steward's integration tests, by topic: git repos
//! (`repos`), a database per test on each backend (`db`), the real
//! programs (`processes`: a Temporal dev server per test, the `steward`
//! binary as worker or command), configs (`config`), waiting on conditions
//! (`wait`), the HTTP API (`api`) and a real browser on its page (`browser`), PostgreSQL clusters of a test's own (`pg`), a MariaDB primary and replica of a test's own (`mariadb`), Prometheus' `promtool` (`prometheus`), the checks fault and security tests end with (`asserts`), and
//! the one harness every workflow test builds on (`harness`).
//!
//! Every prerequisite that is missing makes the test fail with a message
//! saying how to install it; nothing is skipped.

mod alertmanager;
mod api;
mod asserts;
mod browser;
mod config;
mod db;
mod harness;
mod mariadb;
mod oidc;
mod pg;
mod processes;
mod prometheus;
mod repos;
mod wait;

pub use alertmanager::*;
pub use api::*;
pub use asserts::*;
pub use browser::*;
pub use config::*;
pub use db::*;
pub use harness::*;
pub use mariadb::*;
pub use oidc::*;
pub use pg::*;
pub use processes::*;
pub use prometheus::*;
pub use repos::*;
pub use wait::*;
