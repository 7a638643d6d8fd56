//! Every id steward gives a workflow, a schedule or a lock, built in one
//! place: the CLI, the schedules, the workflows and the tests all call
//! these, so an id never drifts between the code that starts a run and the
//! code that looks it up.
//!
//! A Temporal Schedule starts its runs with the id of its action followed
//! by `-<RFC 3339 fire time>` ([`scheduled_run_of`] recognises them).

/// Prefix of every schedule id steward manages.
pub const SCHEDULE_PREFIX: &str = "steward-";

/// The id of the schedule of `[[schedules]]` entry `name`.
pub fn schedule(name: &str) -> String {
    format!("{SCHEDULE_PREFIX}{name}")
}

/// The workflow id of backfill `name`'s rollout (one at a time).
pub fn backfill(name: &str) -> String {
    format!("backfill-{name}")
}

/// The workflow id of an upgrade of `app` started by hand; a schedule's
/// runs of the same app carry this id plus their fire time.
pub fn warm_upgrade(app: &str) -> String {
    format!("warm-upgrade-{app}")
}

/// Whether `id` is one of `app`'s upgrades: [`warm_upgrade`], or that id
/// as a schedule started it (so app `sso` does not claim `sso-eu`'s runs).
pub fn is_upgrade_of(app: &str, id: &str) -> bool {
    scheduled_run_of(&warm_upgrade(app), id)
}

/// Whether `id` is `base` itself or a run a schedule started from `base`
/// (`base-<YYYY-MM-DDTHH:MM:SSZ>`).
pub fn scheduled_run_of(base: &str, id: &str) -> bool {
    match id.strip_prefix(base) {
        Some("") => true,
        Some(rest) => rest.strip_prefix('-').is_some_and(is_fire_time),
        None => false,
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ`, the form Temporal appends to scheduled runs.
fn is_fire_time(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18];
    b.len() == 20
        && digits.iter().all(|&i| b[i].is_ascii_digit())
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'Z'
}

/// The workflow id of a sweep started by hand (or the API) from `source`
/// at `stamp` (a compact UTC time, unique enough per source).
pub fn sweep(source: &str, stamp: &str) -> String {
    let source: String = source
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("sweep-{source}-{stamp}")
}

/// The base id of the sweeps schedule `name` starts.
pub fn scheduled_sweep(name: &str) -> String {
    format!("sweep-{name}")
}

/// The id of a restore drill started by hand (`unique`: a fresh id).
pub fn restore_drill(unique: &str) -> String {
    format!("restore-drill-{unique}")
}

/// The base id of the drills schedule `name` starts.
pub fn scheduled_restore_drill(name: &str) -> String {
    restore_drill(name)
}

/// The id of a cold sweep started by hand (`unique`: a fresh id).
pub fn cold_sweep(unique: &str) -> String {
    format!("cold-sweep-{unique}")
}

/// The base id of the cold sweeps schedule `name` starts.
pub fn scheduled_cold_sweep(name: &str) -> String {
    cold_sweep(name)
}

/// The id of a reaper pass started by hand (`unique`: a fresh id).
pub fn shared_reap(unique: &str) -> String {
    format!("shared-reap-{unique}")
}

/// The base id of the reaper passes schedule `name` starts.
pub fn scheduled_shared_reap(name: &str) -> String {
    shared_reap(name)
}

/// The id of the cold run of `app` that the cold sweep `sweep_run` (its
/// run id) starts as a child: one per app and sweep, so a retried start
/// finds the same run.
pub fn cold_run(app: &str, sweep_run: &str) -> String {
    format!("cold-run-{app}-{sweep_run}")
}

/// The id of a failover drill of `drill` started by hand (`unique`: a
/// fresh id).
pub fn failover_drill(drill: &str, unique: &str) -> String {
    format!("failover-drill-{drill}-{unique}")
}

/// The base id of the failover drills schedule `name` starts.
pub fn scheduled_failover_drill(name: &str) -> String {
    format!("failover-drill-{name}")
}

/// Name of the lease lock that keeps two failover drills of one service
/// apart.
pub fn failover_lock(drill: &str) -> String {
    format!("failover-{drill}")
}

/// Name of the sweep's lease lock.
pub const SWEEP_LOCK: &str = "consistency-sweep";

/// Name of the lease lock that keeps two upgrades of `app` apart.
pub fn upgrade_lock(app: &str) -> String {
    format!("upgrade-{app}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_apps_upgrades_are_its_manual_id_and_its_scheduled_ids() {
        assert!(is_upgrade_of("sso", "warm-upgrade-sso"));
        assert!(is_upgrade_of(
            "sso",
            "warm-upgrade-sso-2026-12-02T03:00:00Z"
        ));
        assert!(!is_upgrade_of("sso", "warm-upgrade-sso-eu"));
        assert!(!is_upgrade_of(
            "sso",
            "warm-upgrade-sso-eu-2026-12-02T03:00:00Z"
        ));
        assert!(!is_upgrade_of("sso", "warm-upgrade-ss"));
        assert!(!is_upgrade_of(
            "sso",
            "warm-upgrade-sso-2026-12-02T03:00:00"
        ));
        assert!(is_upgrade_of(
            "sso-eu",
            "warm-upgrade-sso-eu-2026-12-02T03:00:00Z"
        ));
    }

    #[test]
    fn ids_are_spelt_as_they_always_were() {
        assert_eq!(backfill("bf"), "backfill-bf");
        assert_eq!(warm_upgrade("kc"), "warm-upgrade-kc");
        assert_eq!(schedule("sweep"), "steward-sweep");
        assert_eq!(scheduled_sweep("nightly"), "sweep-nightly");
        assert_eq!(scheduled_restore_drill("weekly"), "restore-drill-weekly");
        assert_eq!(
            sweep("api/v1 x", "20261202T101010.000Z"),
            "sweep-api-v1-x-20261202T101010.000Z"
        );
        assert_eq!(upgrade_lock("kc"), "upgrade-kc");
        assert_eq!(scheduled_cold_sweep("nightly"), "cold-sweep-nightly");
        assert_eq!(cold_run("kc", "r1"), "cold-run-kc-r1");
    }
}
