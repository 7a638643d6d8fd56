//! steward's integration tests, one binary with a module per topic (each
//! extra binary would link the whole SDK again): the store, the activities
//! on real git repos, the workflows on a real Temporal dev server, the
//! API, the deployment files, the drills, replay, TLS and the benchmark
//! harness. `cargo test --test integration <module>::` runs one topic;
//! `scripts/fault-campaign` names its trials the same way.

mod alerting;
mod api;
mod audit;
mod backfill;
mod bad_input;
mod bench_harness;
mod deploy;
mod dev;
mod failover;
mod findings;
mod fuzz_corpus;
mod kubernetes;
mod observability;
mod probes;
mod replay;
mod restore;
mod schedules;
mod store;
mod sweep_remote;
mod sweep_repo;
mod sweep_workflow;
mod tls;
mod upgrade;
