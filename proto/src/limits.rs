//! Bounds on what one payload may carry, so that no input, however large,
//! can push a payload past the server's blob limit (2 MiB on a default
//! server, with warnings from 512 KiB) and leave a run stuck.
//!
//! What is cut is counted, never dropped silently: `findings_omitted` on
//! the repo outcome and on the sweep result, `repos_omitted` and
//! `repo_counts` on the sweep result.

/// Findings one repo's activity returns; the rest are counted.
pub const FINDINGS_PER_REPO: usize = 100;

/// Findings one sweep result lists; the rest are counted.
pub const FINDINGS_PER_SWEEP: usize = 1000;

/// Entries of each per-repo list of a sweep result (processed, clean,
/// missing, budget, errors); the rest are counted in `repo_counts` and
/// `repos_omitted`. A processed repo's entry is its actions, a few hundred
/// bytes: 10,000 of them passed the 2 MiB limit.
pub const SWEEP_REPOS_LISTED: usize = 1000;

/// Findings a sweep result lists as opened, and as resolved, by it.
pub const FINDINGS_CHANGED_PER_SWEEP: usize = 100;

/// Characters in an operator's name or reason (signals, updates, CLI).
pub const OPERATOR_TEXT_CHARS: usize = 2000;

/// Characters of one finding's message.
pub const FINDING_MESSAGE_CHARS: usize = 500;

/// Characters of a release's notes an upgrade plan (and a hold's alert)
/// carries.
pub const RELEASE_NOTES_CHARS: usize = 4000;

/// `text` cut to `chars` characters, with `…` when it was longer.
pub fn bounded(text: &str, chars: usize) -> String {
    match text.char_indices().nth(chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// Batches one batch activity may apply: its result lists the skipped
/// ones, each error cut at [`FINDING_MESSAGE_CHARS`].
pub const BATCHES_PER_ACTIVITY: u32 = 1000;

/// Most batch activities one sweep runs. Each adds at most six events to
/// the history (scheduled, started, completed, and the workflow task that
/// takes its result), so a sweep's history stays under about 2,500 events
/// whatever the number of repos, far from Temporal's 10,240-event warning.
pub const MAX_SWEEP_BATCHES: usize = 400;

/// Repos per batch activity for a sweep of `repos` repos in `lanes`
/// lanes, the config asking for `configured`: small enough that every lane
/// gets a batch, large enough that there are at most
/// [`MAX_SWEEP_BATCHES`].
pub fn sweep_batch_size(repos: usize, lanes: u32, configured: u32) -> usize {
    let fill_lanes = (repos / lanes.max(1) as usize).max(1);
    let bounded = repos.div_ceil(MAX_SWEEP_BATCHES).max(1);
    (configured.max(1) as usize).min(fill_lanes).max(bounded)
}

/// The largest batch size an operator may set, live or at a start.
pub const BATCH_SIZE_MAX: u32 = 1_000_000;

/// The largest replication-lag limit an operator may set, in seconds (a
/// day: past it, a lag limit throttles nothing).
pub const MAX_LAG_SECONDS_MAX: f64 = 86_400.0;

/// The refusal of a backfill's live settings, or None when they are
/// acceptable: at least one of them (a batch size of 1 to
/// [`BATCH_SIZE_MAX`], a lag limit above 0 and at most
/// [`MAX_LAG_SECONDS_MAX`] seconds, a named throttle's maximum of 0 or
/// more); 0 leaves the batch size and the lag limit unchanged.
pub fn live_settings<'a>(
    batch_size: u32,
    max_lag_seconds: f64,
    throttle_max: impl IntoIterator<Item = (&'a String, &'a f64)>,
) -> Option<String> {
    let mut throttles = 0;
    for (name, max) in throttle_max {
        if !max.is_finite() || *max < 0.0 {
            return Some(format!(
                "throttle.{name} must be a number of 0 or more, not {max}"
            ));
        }
        throttles += 1;
    }
    if batch_size == 0 && max_lag_seconds == 0.0 && throttles == 0 {
        return Some(
            "nothing to set: give batch_size (1 or more), max_lag (seconds above 0) or throttle.NAME (a maximum)"
                .into(),
        );
    }
    if batch_size > BATCH_SIZE_MAX {
        return Some(format!(
            "batch_size {batch_size} is over the limit of {BATCH_SIZE_MAX}"
        ));
    }
    if !max_lag_seconds.is_finite() || !(0.0..=MAX_LAG_SECONDS_MAX).contains(&max_lag_seconds) {
        return Some(format!(
            "max_lag must be a number of seconds above 0 and at most {MAX_LAG_SECONDS_MAX}"
        ));
    }
    None
}

/// Seconds a signed operator action stays acceptable after the API
/// signed it: a signature is made for one request and sent at once, so an
/// older one is a replay. The same bound, the other way, tolerates the
/// API's clock running ahead of the Temporal server's.
pub const SIGNATURE_MAX_AGE_SECONDS: u64 = 300;

/// The refusal of an operator's name or reason (`what` names it), or None
/// when it is acceptable: at most [`OPERATOR_TEXT_CHARS`] characters and
/// no control characters, which `steward history` and the page would
/// otherwise print into another operator's terminal or page as they are.
pub fn operator_text(what: &str, text: &str) -> Option<String> {
    let n = text.chars().count();
    if n > OPERATOR_TEXT_CHARS {
        return Some(format!(
            "the {what} is {n} characters long; at most {OPERATOR_TEXT_CHARS} are accepted"
        ));
    }
    text.chars().find(|c| c.is_control()).map(|c| {
        format!(
            "the {what} contains the control character U+{:04X}; write it on one line, in plain text",
            u32::from(c)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_of_any_size_runs_at_most_the_bounded_number_of_batches_and_fills_its_lanes() {
        for repos in [1usize, 6, 100, 500, 1_000, 10_000, 100_000, 1_000_000] {
            let size = sweep_batch_size(repos, 4, 25);
            let batches = repos.div_ceil(size);
            assert!(batches <= MAX_SWEEP_BATCHES, "{repos}: {batches} batches");
            assert!(
                batches >= repos.min(4),
                "{repos}: every lane gets work ({batches})"
            );
        }
        assert_eq!(sweep_batch_size(6, 4, 25), 1);
        assert_eq!(sweep_batch_size(500, 4, 25), 25);
        assert_eq!(sweep_batch_size(10_000, 4, 25), 25);
        assert_eq!(sweep_batch_size(100_000, 4, 25), 250);
        assert_eq!(sweep_batch_size(0, 4, 25), 1);
    }

    #[test]
    fn live_settings_take_either_or_both_within_bounds() {
        let none = std::collections::HashMap::<String, f64>::new();
        assert_eq!(live_settings(5, 0.0, &none), None);
        assert_eq!(live_settings(0, 2.5, &none), None);
        assert_eq!(live_settings(5, 2.5, &none), None);
        assert!(
            live_settings(0, 0.0, &none)
                .unwrap()
                .contains("nothing to set")
        );
        assert!(
            live_settings(BATCH_SIZE_MAX + 1, 0.0, &none)
                .unwrap()
                .contains("over the limit")
        );
        for lag in [-1.0, f64::NAN, f64::INFINITY, 1e308] {
            assert!(
                live_settings(0, lag, &none).unwrap().contains("max_lag"),
                "{lag} refused"
            );
        }
        let cpu = |max: f64| std::collections::HashMap::from([("cpu".to_string(), max)]);
        assert_eq!(live_settings(0, 0.0, &cpu(0.0)), None, "a throttle alone");
        assert_eq!(live_settings(0, 0.0, &cpu(5.0)), None);
        for max in [-1.0, f64::NAN, f64::INFINITY] {
            assert!(
                live_settings(0, 0.0, &cpu(max))
                    .unwrap()
                    .contains("throttle.cpu"),
                "{max} refused"
            );
        }
    }

    #[test]
    fn operator_text_refuses_what_is_too_long_or_carries_control_characters() {
        assert_eq!(operator_text("reason", "read the dry run, ok"), None);
        assert_eq!(operator_text("reason", "déjà vu — ✓"), None);
        let long = "x".repeat(OPERATOR_TEXT_CHARS + 1);
        assert!(operator_text("reason", &long).unwrap().contains("at most"));
        for bad in [
            "a\u{1b}[2Jb",
            "line\nbreak",
            "tab\there",
            "nul\0",
            "del\u{7f}",
            "c1\u{9b}",
        ] {
            let refusal =
                operator_text("reason", bad).unwrap_or_else(|| panic!("{bad:?} accepted"));
            assert!(refusal.contains("control character U+"), "{refusal}");
        }
    }
}
