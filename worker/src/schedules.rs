//! Temporal Schedules declared in the config: `steward schedules sync`
//! makes the server match the config (create, update, delete steward-managed
//! schedules); `steward schedules list` shows them with next run times and
//! skip counters.

use std::collections::BTreeSet;
use std::time::Duration;
use steward_activities::time::{ms, secs_text};

use anyhow::Context as _;
use futures::StreamExt as _;
use serde::Serialize;
use steward_proto::ids::{self, SCHEDULE_PREFIX};
use steward_proto::v1::{
    ColdSweepInput, FailoverDrillInput, RestoreDrillInput, SharedReapInput, SweepInput,
    UpgradeInput,
};
use steward_proto::vocab::ScheduleKind;
use steward_workflows::{
    ColdSweep, ConsistencySweep, FailoverDrill, RestoreDrill, SharedReap, WarmUpgrade,
};
use temporalio_client::schedules::{
    CreateScheduleOptions, ListSchedulesOptions, ScheduleAction, ScheduleOverlapPolicy,
    ScheduleSpec,
};
use temporalio_client::tonic::Request;
use temporalio_client::{Client, NamespacedClient as _};
use temporalio_common::protos::temporal::api::common::v1::Payload;
use temporalio_common::protos::temporal::api::schedule::v1::schedule_action::Action;
use temporalio_common::protos::temporal::api::sdk::v1::UserMetadata;
use temporalio_common::protos::temporal::api::workflowservice::v1::{
    DescribeScheduleRequest, UpdateScheduleRequest,
};

use crate::config::{Loaded, ScheduleConfig};
use crate::summary::{self, Summary};

/// Missed ticks older than this are skipped, never replayed in a burst.
pub const CATCHUP_WINDOW: Duration = Duration::from_secs(60);

/// What a sync changed.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct SyncReport {
    /// Schedules created.
    pub created: Vec<String>,
    /// Schedules that existed and were brought in line with the config.
    pub updated: Vec<String>,
    /// Schedules that existed and already matched the config.
    pub unchanged: Vec<String>,
    /// steward-managed schedules the config no longer has.
    pub deleted: Vec<String>,
}

/// One schedule as `steward schedules list` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ScheduleRow {
    /// Schedule id.
    pub id: String,
    /// The note steward keeps on it (cron, timezone, input).
    pub note: String,
    /// Whether it is paused.
    pub paused: bool,
    /// Why it is paused: the guard's reason (repeated automation errors),
    /// or `<operator>: <reason>`.
    pub paused_reason: Option<String>,
    /// Next fire times, RFC 3339.
    pub next_runs: Vec<String>,
    /// Workflows started so far.
    pub actions: i64,
    /// Ticks skipped because the previous sweep still ran.
    pub overlap_skipped: i64,
    /// Ticks missed for longer than the catch-up window.
    pub missed_catchup_window: i64,
    /// The last workflows it started.
    pub recent_workflow_ids: Vec<String>,
}

/// How the note of a paused schedule starts: `paused by steward: ...`
/// when the guard paused it, `paused by <operator>: ...` when an operator
/// did. A sync keeps either pause, with its note.
pub const PAUSE_PREFIX: &str = "paused by ";

/// How the note of a schedule paused by the guard starts.
pub const AUTO_PAUSE_PREFIX: &str = "paused by steward: ";

/// Pauses the configured schedule `s` for operator `by`, because of
/// `reason`, until someone resumes it.
pub async fn pause(
    client: &Client,
    s: &ScheduleConfig,
    by: &str,
    reason: &str,
) -> anyhow::Result<()> {
    let id = schedule_id(s);
    client
        .get_schedule_handle(id.clone())
        .pause(
            Some(format!("{PAUSE_PREFIX}{by}: {reason}")),
            Default::default(),
        )
        .await
        .with_context(|| format!("pausing schedule {id}"))
}

/// Pauses `schedule_id` because of `reason`; the note keeps the reason for
/// `steward schedules list`. Pausing a paused schedule only rewrites it.
pub async fn pause_for_errors(
    client: &Client,
    schedule_id: &str,
    reason: &str,
) -> anyhow::Result<()> {
    client
        .get_schedule_handle(schedule_id.to_string())
        .pause(
            Some(format!("{AUTO_PAUSE_PREFIX}{reason}")),
            Default::default(),
        )
        .await
        .with_context(|| format!("pausing schedule {schedule_id}"))
}

/// Resumes the configured schedule `s`, restoring its usual note with who
/// resumed it and why (`by`: `<operator>: <reason>`, or empty) until the
/// next sync.
pub async fn resume(client: &Client, s: &ScheduleConfig, by: &str) -> anyhow::Result<()> {
    let id = schedule_id(s);
    let text = if by.is_empty() {
        note(s)
    } else {
        format!("{}; resumed by {by}", note(s))
    };
    client
        .get_schedule_handle(id.clone())
        .unpause(Some(text), Default::default())
        .await
        .with_context(|| format!("resuming schedule {id}"))
}

/// The schedule id of a config entry.
pub fn schedule_id(s: &ScheduleConfig) -> String {
    ids::schedule(&s.name)
}

/// The app an upgrade schedule names (validation makes sure it does).
fn app(s: &ScheduleConfig) -> &str {
    s.app.as_deref().unwrap_or_default()
}

fn note(s: &ScheduleConfig) -> String {
    let what = match s.workflow {
        ScheduleKind::RestoreDrill => "restore drill".to_string(),
        ScheduleKind::FailoverDrill => {
            format!("failover drill {}", s.drill.as_deref().unwrap_or_default())
        }
        ScheduleKind::ColdSweep => match &s.filter {
            Some(f) => format!("cold sweep filter={f}"),
            None => "cold sweep".to_string(),
        },
        ScheduleKind::SharedReap => "reap shared resources".to_string(),
        ScheduleKind::Upgrade => format!("upgrade app={}", app(s)),
        ScheduleKind::Sweep => format!("full={} source={}", s.full, s.source),
    };
    format!(
        "managed by steward: cron `{}` {} {what}",
        s.cron, s.timezone
    )
}

/// What a schedule starts: a sweep, an upgrade of one app, or a restore
/// drill.
fn action(s: &ScheduleConfig, task_queue: &str) -> ScheduleAction {
    let queue = task_queue.to_owned();
    match s.workflow {
        ScheduleKind::RestoreDrill => ScheduleAction::start_workflow(
            RestoreDrill::run,
            RestoreDrillInput {
                source: s.source.clone(),
                operator: "schedule".into(),
                ..Default::default()
            },
            queue,
            ids::scheduled_restore_drill(&s.name),
        ),
        ScheduleKind::FailoverDrill => ScheduleAction::start_workflow(
            FailoverDrill::run,
            failover_input(s),
            queue,
            ids::scheduled_failover_drill(&s.name),
        ),
        ScheduleKind::ColdSweep => ScheduleAction::start_workflow(
            ColdSweep::run,
            cold_sweep_input(s),
            queue,
            ids::scheduled_cold_sweep(&s.name),
        ),
        ScheduleKind::SharedReap => ScheduleAction::start_workflow(
            SharedReap::run,
            SharedReapInput {
                source: s.source.clone(),
                ..Default::default()
            },
            queue,
            ids::scheduled_shared_reap(&s.name),
        ),
        ScheduleKind::Upgrade => ScheduleAction::start_workflow(
            WarmUpgrade::run,
            UpgradeInput {
                app: app(s).into(),
                operator: "schedule".into(),
                reason: format!("schedule {}", schedule_id(s)),
                ..Default::default()
            },
            queue,
            ids::warm_upgrade(app(s)),
        ),
        ScheduleKind::Sweep => ScheduleAction::start_workflow(
            ConsistencySweep::run,
            SweepInput {
                source: s.source.clone(),
                max_seconds: s.max_seconds,
                full: s.full,
                concurrency: 0,
                schedule_id: schedule_id(s),
            },
            queue,
            ids::scheduled_sweep(&s.name),
        ),
    }
}

/// What a `cold-sweep` schedule's runs are given; the limits come from
/// `[cold_sweep]` when they run.
fn cold_sweep_input(s: &ScheduleConfig) -> ColdSweepInput {
    ColdSweepInput {
        filter: s.filter.clone().unwrap_or_default(),
        source: s.source.clone(),
        ..Default::default()
    }
}

/// What a `failover-drill` schedule's runs are given.
fn failover_input(s: &ScheduleConfig) -> FailoverDrillInput {
    FailoverDrillInput {
        drill: s.drill.clone().unwrap_or_default(),
        source: s.source.clone(),
        operator: "schedule".into(),
        reason: format!("schedule {}", schedule_id(s)),
    }
}

async fn managed_ids(client: &Client) -> anyhow::Result<BTreeSet<String>> {
    let mut ids = BTreeSet::new();
    let mut stream = client.list_schedules(ListSchedulesOptions::default());
    while let Some(entry) = stream.next().await {
        let entry = entry.context("listing schedules")?;
        if entry.schedule_id().starts_with(SCHEDULE_PREFIX) {
            ids.insert(entry.schedule_id().to_string());
        }
    }
    Ok(ids)
}

/// The static summary and details of the runs schedule `s` starts.
async fn run_summary(loaded: &Loaded, s: &ScheduleConfig) -> Summary {
    let source = format!("schedule {}", s.name);
    match s.workflow {
        ScheduleKind::Sweep => summary::sweep(
            loaded,
            &SweepInput {
                source: source.clone(),
                max_seconds: s.max_seconds,
                full: s.full,
                ..Default::default()
            },
        ),
        ScheduleKind::Upgrade => {
            let spec = loaded.config.apps.iter().find(|a| a.name == app(s));
            let input = UpgradeInput {
                app: app(s).into(),
                operator: "schedule".into(),
                reason: format!("schedule {}", schedule_id(s)),
                ..Default::default()
            };
            let mut shown = summary::upgrade(spec, &input, &source).await;
            // The schedule's runs upgrade to whatever is latest when they fire.
            if let Some((head, _)) = shown.summary.split_once(" → ") {
                shown.summary = format!("{head} → latest ({source})");
            }
            shown
        }
        ScheduleKind::RestoreDrill => summary::restore_drill(
            loaded,
            &RestoreDrillInput {
                source,
                operator: "schedule".into(),
                ..Default::default()
            },
        ),
        ScheduleKind::FailoverDrill => summary::failover_drill(
            loaded,
            &FailoverDrillInput {
                source,
                ..failover_input(s)
            },
        ),
        ScheduleKind::ColdSweep => summary::cold_sweep(
            loaded,
            &ColdSweepInput {
                source,
                ..cold_sweep_input(s)
            },
            "schedule",
        ),
        ScheduleKind::SharedReap => summary::shared_reap(
            loaded,
            &SharedReapInput {
                source,
                ..Default::default()
            },
            "schedule",
        ),
    }
}

/// A string as a JSON payload, the form the UI reads user metadata in.
fn json_payload(text: &str) -> Payload {
    Payload {
        metadata: [("encoding".to_string(), b"json/plain".to_vec())]
            .into_iter()
            .collect(),
        data: serde_json::to_vec(text).unwrap_or_default(),
        ..Default::default()
    }
}

/// Schedule `id` as the server holds it: its spec, action, policies and
/// state, without the server's bookkeeping.
async fn definition(
    client: &Client,
    id: &str,
) -> anyhow::Result<temporalio_common::protos::temporal::api::schedule::v1::Schedule> {
    let mut svc = client.connection().workflow_service();
    svc.describe_schedule(Request::new(DescribeScheduleRequest {
        namespace: client.namespace(),
        schedule_id: id.to_string(),
    }))
    .await
    .with_context(|| format!("describing schedule {id}"))?
    .into_inner()
    .schedule
    .with_context(|| format!("schedule {id} has no definition"))
}

/// Gives the runs schedule `id` starts a static summary and details. The
/// SDK's schedule action has no place for them, so the schedule is read
/// and written back through the raw API with them in its action.
async fn set_run_summary(client: &Client, id: &str, shown: &Summary) -> anyhow::Result<()> {
    let namespace = client.namespace();
    let mut svc = client.connection().workflow_service();
    let described = svc
        .describe_schedule(Request::new(DescribeScheduleRequest {
            namespace: namespace.clone(),
            schedule_id: id.to_string(),
        }))
        .await
        .with_context(|| format!("describing schedule {id}"))?
        .into_inner();
    let Some(mut schedule) = described.schedule else {
        anyhow::bail!("schedule {id} has no definition");
    };
    if let Some(Action::StartWorkflow(start)) =
        schedule.action.as_mut().and_then(|a| a.action.as_mut())
    {
        start.user_metadata = Some(UserMetadata {
            summary: Some(json_payload(&shown.summary)),
            details: Some(json_payload(&shown.details)),
        });
    }
    svc.update_schedule(Request::new(UpdateScheduleRequest {
        namespace,
        schedule_id: id.to_string(),
        schedule: Some(schedule),
        conflict_token: described.conflict_token,
        identity: "steward schedules sync".into(),
        request_id: uuid::Uuid::new_v4().to_string(),
        ..Default::default()
    }))
    .await
    .with_context(|| format!("setting the run summary of schedule {id}"))?;
    Ok(())
}

/// Makes the server's steward-managed schedules match the config's.
/// Idempotent: a second run only re-applies the same settings.
pub async fn sync(client: &Client, loaded: &Loaded) -> anyhow::Result<SyncReport> {
    let task_queue = loaded.config.task_queue.as_str();
    let schedules = loaded.schedules();
    let existing = managed_ids(client).await?;
    let mut report = SyncReport::default();
    for s in &schedules {
        let id = schedule_id(s);
        let action = action(s, task_queue);
        let spec = ScheduleSpec::builder()
            .cron_strings(vec![s.cron.clone()])
            .timezone_name(s.timezone.clone())
            .build();
        // What the server holds before: a schedule it holds the same after
        // the update was already in line with the config.
        let before = if existing.contains(&id) {
            Some(definition(client, &id).await?)
        } else {
            None
        };
        let mut raced = false;
        if before.is_none() {
            let created = client
                .create_schedule(
                    id.clone(),
                    CreateScheduleOptions::builder()
                        .action(action.clone())
                        .spec(spec.clone())
                        .overlap_policy(ScheduleOverlapPolicy::Skip)
                        .paused(s.paused)
                        .note(note(s))
                        .build(),
                )
                .await;
            match created {
                Ok(_) => report.created.push(id.clone()),
                // Another sync created it in between: update it below.
                Err(e) if e.to_string().contains("already") => raced = true,
                Err(e) => return Err(e).with_context(|| format!("creating schedule {id}")),
            }
        }
        let (mut paused, mut text) = (s.paused, note(s));
        // A schedule the guard paused stays paused, with its reason, until
        // an operator resumes it.
        let handle = client.get_schedule_handle(id.clone());
        if let Ok(desc) = handle.describe(Default::default()).await
            && desc.paused()
            && let Some(current) = desc.note().filter(|n| n.starts_with(PAUSE_PREFIX))
        {
            paused = true;
            text = current.to_string();
        }
        handle
            .update(
                move |u| {
                    u.set_spec(spec);
                    u.set_action(action);
                    u.set_overlap_policy(ScheduleOverlapPolicy::Skip);
                    u.set_catchup_window(CATCHUP_WINDOW);
                    u.set_paused(paused);
                    u.set_note(text);
                },
                Default::default(),
            )
            .await
            .with_context(|| format!("updating schedule {id}"))?;
        set_run_summary(client, &id, &run_summary(loaded, s).await).await?;
        match before {
            Some(before) if before == definition(client, &id).await? => {
                report.unchanged.push(id.clone())
            }
            Some(_) => report.updated.push(id.clone()),
            None if raced => report.updated.push(id.clone()),
            None => {}
        }
    }
    let wanted: BTreeSet<String> = schedules.iter().map(schedule_id).collect();
    for id in existing.difference(&wanted) {
        client
            .get_schedule_handle(id.clone())
            .delete(Default::default())
            .await
            .with_context(|| format!("deleting schedule {id}"))?;
        report.deleted.push(id.clone());
    }
    Ok(report)
}

/// The steward-managed schedules on the server.
pub async fn list(client: &Client) -> anyhow::Result<Vec<ScheduleRow>> {
    let mut rows = Vec::new();
    for id in managed_ids(client).await? {
        let desc = client
            .get_schedule_handle(id.clone())
            .describe(Default::default())
            .await
            .with_context(|| format!("describing schedule {id}"))?;
        rows.push(ScheduleRow {
            id,
            note: desc.note().unwrap_or_default().to_string(),
            paused: desc.paused(),
            paused_reason: desc
                .note()
                .filter(|_| desc.paused())
                .and_then(|n| {
                    n.strip_prefix(AUTO_PAUSE_PREFIX)
                        .or_else(|| n.strip_prefix(PAUSE_PREFIX))
                })
                .map(str::to_string),
            next_runs: desc
                .future_action_times()
                .into_iter()
                .take(3)
                .map(|t| secs_text(ms(t)))
                .collect(),
            actions: desc.action_count(),
            overlap_skipped: desc.overlap_skipped(),
            missed_catchup_window: desc.missed_catchup_window(),
            recent_workflow_ids: desc
                .recent_actions()
                .into_iter()
                .rev()
                .take(3)
                .map(|a| a.workflow_id)
                .collect(),
        });
    }
    Ok(rows)
}
