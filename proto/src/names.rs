//! Stable names of workflows, activities, queries, signals and updates.
//!
//! These strings are recorded in every workflow history. Renaming a Rust type
//! must never change them, so they are spelled out here once and used by the
//! declarations, the implementations and the CLI.

/// Workflow type of the consistency sweep.
pub const CONSISTENCY_SWEEP: &str = "ConsistencySweep";

/// Activity: take the sweep's lease lock.
pub const ACQUIRE_LOCK: &str = "steward.lock.acquire";
/// Activity: give the sweep's lease lock back.
pub const RELEASE_LOCK: &str = "steward.lock.release";
/// Activity: claim a signed start's nonce for its run.
pub const CLAIM_START: &str = "steward.operator.claim_start";
/// Activity: list the repos of a sweep, starved repos first.
pub const PLAN_SWEEP: &str = "steward.sweep.plan";
/// Activity: pull gate, assessment, reconciliation and writeback of one repo.
pub const SWEEP_REPO: &str = "steward.sweep.repo";
/// Activity: pull gate, assessment, reconciliation and writeback of a
/// batch of repos, one after the other.
pub const SWEEP_BATCH: &str = "steward.sweep.batch";
/// Activity: record budget skips and write the sweep's progress event.
pub const RECORD_SWEEP: &str = "steward.sweep.record";
/// Activity: the findings ledger as a sweep reports it.
pub const SWEEP_FINDINGS: &str = "steward.sweep.findings";

/// Progress event type written by every sweep.
pub const SWEEP_EVENT_TYPE: &str = "consistency_sweep_remote_all";
/// Sweep query: phase and repo counts.
pub const SWEEP_PROGRESS_QUERY: &str = "progress";

/// Workflow type of the backfill rollout.
pub const BACKFILL_ROLLOUT: &str = "BackfillRollout";
/// Activity: the spec as the workflow needs it.
pub const BACKFILL_PLAN: &str = "steward.backfill.plan";
/// Activity: preconditions and the baseline of `unchanged` validations.
pub const BACKFILL_PRECONDITIONS: &str = "steward.backfill.preconditions";
/// Activity: run one of the spec's actions (freeze, unfreeze, snapshot).
pub const BACKFILL_ACTION: &str = "steward.backfill.action";
/// Activity: count the expected records and write the dry-run report.
pub const BACKFILL_DRY_RUN: &str = "steward.backfill.dry_run";
/// Activity: apply one keyset batch exactly once.
pub const BACKFILL_BATCH: &str = "steward.backfill.batch";
/// Activity: read the replication lag.
pub const BACKFILL_LAG: &str = "steward.backfill.lag";
/// Activity: read the named throttles.
pub const BACKFILL_THROTTLES: &str = "steward.backfill.throttles";
/// Activity: run the validations.
pub const BACKFILL_VALIDATE: &str = "steward.backfill.validate";
/// Activity: remove what the run wrote; restore the snapshot if that fails.
pub const BACKFILL_ROLLBACK: &str = "steward.backfill.rollback";
/// Activity: the replay probe after unfreeze.
pub const BACKFILL_REPLAY_PROBE: &str = "steward.backfill.replay_probe";
/// Activity: write the evidence report and its SHA-256.
pub const BACKFILL_EVIDENCE: &str = "steward.backfill.evidence";
/// Activity: write an alert to the shared sink.
pub const RAISE_ALERT: &str = "steward.alert.raise";

/// Backfill query: phase, batches, rows, rate, ETA.
pub const BACKFILL_STATUS_QUERY: &str = "status";
/// Backfill operator updates.
pub const UPDATE_FREEZE: &str = "freeze";
/// See [`UPDATE_FREEZE`].
pub const UPDATE_UNFREEZE: &str = "unfreeze";
/// See [`UPDATE_FREEZE`].
pub const UPDATE_APPROVE: &str = "approve";
/// See [`UPDATE_FREEZE`].
pub const UPDATE_PAUSE: &str = "pause";
/// See [`UPDATE_FREEZE`].
pub const UPDATE_RESUME: &str = "resume";
/// See [`UPDATE_FREEZE`].
pub const UPDATE_ABORT: &str = "abort";
/// See [`UPDATE_FREEZE`].
pub const UPDATE_SET: &str = "set";

/// Workflow type of the warm upgrade.
pub const WARM_UPGRADE: &str = "WarmUpgrade";
/// Activity: versions, last good, release notes and the safety gate.
pub const UPGRADE_INSPECT: &str = "steward.upgrade.inspect";
/// Activity: one step (undeploy, deploy, snapshot, restore, health, asserts, set_last_good).
pub const UPGRADE_STEP: &str = "steward.upgrade.step";
/// Activity: the upgrade's progress event.
pub const UPGRADE_RECORD: &str = "steward.upgrade.record";
/// Progress event type of every upgrade.
pub const UPGRADE_EVENT_TYPE: &str = "warm_upgrade";
/// Upgrade query.
pub const UPGRADE_STATUS_QUERY: &str = "status";
/// Upgrade update: approve a held version.
pub const UPDATE_APPROVE_VERSION: &str = "approve";

/// Workflow type of the restore drill.
pub const RESTORE_DRILL: &str = "RestoreDrill";
/// Back up the state store and record its figures.
pub const RESTORE_BACKUP: &str = "steward.restore.backup";
/// Restore a backup into a scratch target and compare.
pub const RESTORE_VERIFY: &str = "steward.restore.verify";
/// Record the drill's outcome ("last verified backup").
pub const RESTORE_RECORD: &str = "steward.restore.record";
/// Restore drill query: its phase.
pub const RESTORE_STATUS_QUERY: &str = "status";
/// Progress event type of a restore drill.
pub const RESTORE_EVENT_TYPE: &str = "restore_drill";

/// Workflow type of the nightly cold sweep.
pub const COLD_SWEEP: &str = "ColdSweep";
/// Activity: the apps a cold sweep tests, in the order it tests them.
pub const COLD_SWEEP_PLAN: &str = "steward.cold_sweep.plan";
/// Activity: the cold sweep's progress event.
pub const COLD_SWEEP_RECORD: &str = "steward.cold_sweep.record";
/// Progress event type of a cold sweep.
pub const COLD_SWEEP_EVENT_TYPE: &str = "cold_sweep";
/// Cold sweep query: what it has tested so far.
pub const COLD_SWEEP_STATUS_QUERY: &str = "status";

/// Activity: post a forge-started run's commit status.
pub const UPGRADE_FORGE_STATUS: &str = "steward.upgrade.forge_status";

/// Workflow type of the shared services' reaper.
pub const SHARED_REAP: &str = "SharedReap";
/// Activity: one pass of the reaper over the shared services.
pub const SHARED_REAP_PASS: &str = "steward.shared.reap";
/// Activity: the reaper's progress event.
pub const SHARED_REAP_RECORD: &str = "steward.shared.record";
/// Progress event type of a reaper pass.
pub const SHARED_REAP_EVENT_TYPE: &str = "shared_reap";

/// Workflow type of the failover drill.
pub const FAILOVER_DRILL: &str = "FailoverDrill";
/// Activity: the primary, its streaming standbys and their lag; the marker table.
pub const FAILOVER_PREFLIGHT: &str = "steward.failover.preflight";
/// Activity: the writer and the probe, until writes succeed again after the trigger.
pub const FAILOVER_OBSERVE: &str = "steward.failover.observe";
/// Activity: the configured trigger.
pub const FAILOVER_TRIGGER: &str = "steward.failover.trigger";
/// Activity: every acknowledged marker against the service; RTO and RPO.
pub const FAILOVER_VERIFY: &str = "steward.failover.verify";
/// Activity: the configured recovery command, and the hosts afterwards.
pub const FAILOVER_RECOVER: &str = "steward.failover.recover";
/// Activity: evidence, progress event and metrics of a failover drill.
pub const FAILOVER_RECORD: &str = "steward.failover.record";
/// Progress event type of a failover drill.
pub const FAILOVER_EVENT_TYPE: &str = "failover_drill";
/// Failover drill query: its phase.
pub const FAILOVER_STATUS_QUERY: &str = "status";

/// Every steward workflow type: what the archiver archives, what
/// `replay-check` replays.
pub const WORKFLOW_TYPES: [&str; 7] = [
    CONSISTENCY_SWEEP,
    BACKFILL_ROLLOUT,
    WARM_UPGRADE,
    RESTORE_DRILL,
    COLD_SWEEP,
    FAILOVER_DRILL,
    SHARED_REAP,
];

/// Search attribute: the run's phase (a `vocab` spelling).
pub const SA_PHASE: &str = "StewardPhase";
/// Search attribute: what the run is about (the backfill, the app).
pub const SA_SUBJECT: &str = "StewardSubject";
/// Search attribute: whether the run waits for an operator.
pub const SA_WAITING: &str = "StewardWaiting";

/// Search attribute: the hosts whose workers a run's pinned steps wait
/// for (set only while one waits past `[worker] host_wait_alert`).
pub const SA_HOST_WAIT: &str = "StewardHostWait";

/// The custom search attributes steward's workflows set, with their
/// Temporal types, as `steward dev` and the compose setup register them.
pub const SEARCH_ATTRIBUTES: [(&str, &str); 4] = [
    (SA_PHASE, "Keyword"),
    (SA_SUBJECT, "Keyword"),
    (SA_WAITING, "Bool"),
    (SA_HOST_WAIT, "KeywordList"),
];

/// Activity: where a run's pinned steps run.
pub const PLACE: &str = "steward.place";

/// The task queue of `host`'s workers beside the shared `task_queue`:
/// pinned steps go there, and only workers with `[worker] host` set to
/// `host` poll it.
pub fn host_queue(task_queue: &str, host: &str) -> String {
    format!("{task_queue}@{host}")
}
