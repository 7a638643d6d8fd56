//! Temporal Schedules declared in the config: `steward schedules sync`
//! makes the server match the config (create, update, delete steward-managed
//! schedules); `steward schedules list` shows them with next run times and
//! skip counters.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use futures::StreamExt as _;
use serde::Serialize;
use steward_proto::v1::{RestoreDrillInput, SweepInput, UpgradeInput};
use steward_workflows::{ConsistencySweep, RestoreDrill, WarmUpgrade};
use temporalio_client::Client;
use temporalio_client::schedules::{
    CreateScheduleOptions, ListSchedulesOptions, ScheduleAction, ScheduleOverlapPolicy,
    ScheduleSpec,
};

use crate::config::{SCHEDULE_PREFIX, ScheduleConfig};

/// Missed ticks older than this are skipped, never replayed in a burst.
pub const CATCHUP_WINDOW: Duration = Duration::from_secs(60);

/// What a sync changed.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct SyncReport {
    /// Schedules created.
    pub created: Vec<String>,
    /// Schedules that existed and were brought in line with the config.
    pub updated: Vec<String>,
    /// steward-managed schedules the config no longer has.
    pub deleted: Vec<String>,
}

/// One schedule as `steward schedules list` shows it.
#[derive(Debug, Serialize)]
pub struct ScheduleRow {
    /// Schedule id.
    pub id: String,
    /// The note steward keeps on it (cron, timezone, input).
    pub note: String,
    /// Whether it is paused.
    pub paused: bool,
    /// Why steward paused it (repeated automation errors), if it did.
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

/// How the note of a schedule paused by the guard starts.
pub const AUTO_PAUSE_PREFIX: &str = "paused by steward: ";

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

/// Resumes the configured schedule `s`, restoring its usual note.
pub async fn resume(client: &Client, s: &ScheduleConfig) -> anyhow::Result<()> {
    let id = schedule_id(s);
    client
        .get_schedule_handle(id.clone())
        .unpause(Some(note(s)), Default::default())
        .await
        .with_context(|| format!("resuming schedule {id}"))
}

/// The schedule id of a config entry.
pub fn schedule_id(s: &ScheduleConfig) -> String {
    format!("{SCHEDULE_PREFIX}{}", s.name)
}

fn note(s: &ScheduleConfig) -> String {
    if s.workflow == "restore-drill" {
        return format!(
            "managed by steward: cron `{}` {} restore drill",
            s.cron, s.timezone
        );
    }
    match &s.app {
        Some(app) => format!(
            "managed by steward: cron `{}` {} upgrade app={app}",
            s.cron, s.timezone
        ),
        None => format!(
            "managed by steward: cron `{}` {} full={} source={}",
            s.cron, s.timezone, s.full, s.source
        ),
    }
}

/// What a schedule starts: a sweep, an upgrade of one app, or a restore
/// drill.
fn action(s: &ScheduleConfig, task_queue: &str) -> ScheduleAction {
    if s.workflow == "restore-drill" {
        return ScheduleAction::start_workflow(
            RestoreDrill::run,
            RestoreDrillInput {
                source: s.source.clone(),
                operator: "schedule".into(),
                ..Default::default()
            },
            task_queue.to_owned(),
            format!("restore-drill-{}", s.name),
        );
    }
    match &s.app {
        Some(app) => ScheduleAction::start_workflow(
            WarmUpgrade::run,
            UpgradeInput {
                app: app.clone(),
                operator: "schedule".into(),
                reason: format!("schedule steward-{}", s.name),
                ..Default::default()
            },
            task_queue.to_owned(),
            crate::cli::upgrade::workflow_id(app),
        ),
        None => ScheduleAction::start_workflow(
            ConsistencySweep::run,
            SweepInput {
                source: s.source.clone(),
                max_seconds: s.max_seconds,
                full: s.full,
                concurrency: 0,
                schedule_id: schedule_id(s),
            },
            task_queue.to_owned(),
            format!("sweep-{}", s.name),
        ),
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

/// Makes the server's steward-managed schedules match `schedules`.
/// Idempotent: a second run only re-applies the same settings.
pub async fn sync(
    client: &Client,
    task_queue: &str,
    schedules: &[ScheduleConfig],
) -> anyhow::Result<SyncReport> {
    let existing = managed_ids(client).await?;
    let mut report = SyncReport::default();
    for s in schedules {
        let id = schedule_id(s);
        let action = action(s, task_queue);
        let spec = ScheduleSpec::builder()
            .cron_strings(vec![s.cron.clone()])
            .timezone_name(s.timezone.clone())
            .build();
        if existing.contains(&id) {
            report.updated.push(id.clone());
        } else {
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
                Err(e) if e.to_string().contains("already") => report.updated.push(id.clone()),
                Err(e) => return Err(e).with_context(|| format!("creating schedule {id}")),
            }
        }
        let (mut paused, mut text) = (s.paused, note(s));
        // A schedule the guard paused stays paused, with its reason, until
        // an operator resumes it.
        let handle = client.get_schedule_handle(id.clone());
        if let Ok(desc) = handle.describe(Default::default()).await
            && desc.paused()
            && let Some(current) = desc.note().filter(|n| n.starts_with(AUTO_PAUSE_PREFIX))
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

fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
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
                .and_then(|n| n.strip_prefix(AUTO_PAUSE_PREFIX))
                .map(str::to_string),
            next_runs: desc
                .future_action_times()
                .into_iter()
                .take(3)
                .map(rfc3339)
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
