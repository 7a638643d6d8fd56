//! Steps that run where the thing is. A step pinned to a host (`runs_on`)
//! is scheduled on that host's task queue (`names::host_queue`), which
//! only the workers of that host poll, so it never runs anywhere else.
//! When no worker of the host picks it up within the wait the config
//! allows (`[worker] host_wait_alert`), the run says so, in its details,
//! in the `StewardHostWait` search attribute (so `steward inbox` lists it)
//! and in one alert, and waits on; the step runs once a worker of the host
//! polls again. A step that was never picked up never started, so
//! scheduling it again does nothing twice.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use steward_proto::activities::Place;
use steward_proto::names;
use steward_proto::v1::{Placement, PlacementRequest};
use steward_proto::vocab::{PlacementKind, Severity};
use temporalio_common::ActivityDefinition;
use temporalio_common::data_converters::TemporalDeserializable;
use temporalio_common::error::{ActivityExecutionError, TimeoutType};
use temporalio_sdk::{ActivityOptions, WorkflowContext, WorkflowResult};

use crate::alert::{NewAlert, detail};
use crate::attributes;

/// Patch that made the upgrade, the failover drill and the restore drill
/// ask where their pinned steps run before the first of them.
pub const HOSTS_PATCH: &str = "steward-hosts";

/// The pins of a run about `name` of `kind` (behind [`HOSTS_PATCH`]: a
/// run recorded before it runs every step anywhere).
pub async fn place<W>(
    ctx: &WorkflowContext<W>,
    workflow: &'static str,
    kind: PlacementKind,
    name: &str,
) -> WorkflowResult<Pins> {
    if !ctx.patched(HOSTS_PATCH) {
        return Ok(Pins::default());
    }
    let placement = ctx
        .execute_activity(
            Place,
            PlacementRequest {
                kind: kind.as_str().into(),
                name: name.into(),
            },
            crate::options::summarized(crate::options::quick(60, 5), "where the steps run"),
        )
        .await?;
    Ok(Pins::placed(workflow, &placement))
}

/// Where a run's pinned steps go, and which hosts they wait for now
/// (shared by the run's lanes; behind a mutex only because a workflow's
/// state must be `Send`: a run's code runs on one thread).
#[derive(Debug, Clone, Default)]
pub struct Pins {
    /// The host of the run's pinned steps; empty: any worker.
    pub host: String,
    /// The workflow's word in alert kinds (`upgrade`, `sweep`).
    workflow: &'static str,
    wait_alert: Duration,
    waits: Arc<Mutex<Waits>>,
}

#[derive(Debug, Default)]
struct Waits {
    /// Steps waiting now, by host.
    hosts: BTreeMap<String, u32>,
    /// Waits told so far: numbers each one's alert.
    told: u32,
}

impl Pins {
    /// Pins for `workflow`'s steps to `host` (empty: anywhere), told after
    /// `wait_alert_seconds` without a worker.
    pub fn new(workflow: &'static str, host: &str, wait_alert_seconds: u32) -> Self {
        Self {
            host: host.to_string(),
            workflow,
            wait_alert: Duration::from_secs(wait_alert_seconds.max(1).into()),
            waits: Arc::default(),
        }
    }

    /// Pins from a placement.
    pub fn placed(workflow: &'static str, p: &Placement) -> Self {
        Self::new(workflow, &p.host, p.wait_alert_seconds)
    }

    /// Runs `activity` on the run's host.
    pub async fn run<W, AD>(
        &self,
        ctx: &WorkflowContext<W>,
        subject: &str,
        activity: AD,
        input: AD::Input,
        options: ActivityOptions,
    ) -> Result<AD::Output, ActivityExecutionError>
    where
        AD: ActivityDefinition + Clone,
        AD::Input: Clone,
        AD::Output: TemporalDeserializable,
    {
        self.run_at(ctx, &self.host.clone(), subject, activity, input, options)
            .await
    }

    /// Runs `activity` on `host` (empty: any worker), about `subject`.
    pub async fn run_at<W, AD>(
        &self,
        ctx: &WorkflowContext<W>,
        host: &str,
        subject: &str,
        activity: AD,
        input: AD::Input,
        mut options: ActivityOptions,
    ) -> Result<AD::Output, ActivityExecutionError>
    where
        AD: ActivityDefinition + Clone,
        AD::Input: Clone,
        AD::Output: TemporalDeserializable,
    {
        if host.is_empty() {
            return ctx.execute_activity(activity, input, options).await;
        }
        options.task_queue = Some(names::host_queue(ctx.task_queue(), host));
        options.schedule_to_start_timeout = Some(self.wait_alert);
        match ctx
            .execute_activity(activity.clone(), input.clone(), options.clone())
            .await
        {
            Err(e) if never_picked_up(&e) => {}
            done => return done,
        }
        let step = options
            .summary
            .clone()
            .unwrap_or_else(|| activity.name().to_string());
        let told = self.enter(ctx, host);
        let _ = NewAlert {
            id: format!("{}-host-wait-{told}", ctx.run_id()),
            severity: Severity::Warning,
            kind: format!("{}.host-wait", self.workflow),
            subject: subject.to_string(),
            message: format!(
                "`{step}` waits for a worker on host `{host}`: none took it within {} s \
                 (start `steward worker` with `[worker] host = \"{host}\"` there)",
                self.wait_alert.as_secs()
            ),
            at: ctx.workflow_time().unwrap_or(std::time::UNIX_EPOCH),
            detail: detail([
                ("host", host.into()),
                ("step", step.clone().into()),
                ("workflow_id", ctx.workflow_id().into()),
            ]),
        }
        .raise(ctx)
        .await;
        // On, without a limit: the step runs when a worker of the host
        // polls again.
        options.schedule_to_start_timeout = None;
        let done = ctx.execute_activity(activity, input, options).await;
        self.leave(ctx, host);
        done
    }

    /// Notes a step waiting for `host`; the number of this wait.
    fn enter<W>(&self, ctx: &WorkflowContext<W>, host: &str) -> u32 {
        let told = {
            let mut w = self.waits.lock().expect("host waits");
            *w.hosts.entry(host.to_string()).or_default() += 1;
            w.told += 1;
            w.told
        };
        self.show(ctx);
        told
    }

    /// Notes a step no longer waiting for `host`.
    fn leave<W>(&self, ctx: &WorkflowContext<W>, host: &str) {
        {
            let mut w = self.waits.lock().expect("host waits");
            if let Some(n) = w.hosts.get_mut(host) {
                *n -= 1;
                if *n == 0 {
                    w.hosts.remove(host);
                }
            }
        }
        self.show(ctx);
    }

    /// The hosts waited for now, in the search attribute and the details.
    fn show<W>(&self, ctx: &WorkflowContext<W>) {
        let hosts: Vec<String> = self
            .waits
            .lock()
            .expect("host waits")
            .hosts
            .keys()
            .cloned()
            .collect();
        if hosts.is_empty() {
            // An empty list removes the attribute on the server; the
            // SDK's unset sends an empty payload, which the server refuses
            // for a keyword list (the workflow task fails).
            ctx.upsert_search_attributes([attributes::HOST_WAIT.value_set(Vec::new())]);
            ctx.set_current_details("");
        } else {
            ctx.set_current_details(format!("waiting for a worker on host {}", hosts.join(", ")));
            ctx.upsert_search_attributes([attributes::HOST_WAIT.value_set(hosts)]);
        }
    }
}

/// Whether `e` says no worker picked the step up in time (the one timeout
/// that leaves a step never started).
fn never_picked_up(e: &ActivityExecutionError) -> bool {
    e.cause()
        .and_then(|c| c.as_timeout())
        .is_some_and(|t| t.timeout_type() == TimeoutType::ScheduleToStart)
}
