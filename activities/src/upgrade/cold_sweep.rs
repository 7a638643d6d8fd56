//! The nightly cold sweep's plan: which apps it tests, in which order, and
//! which it skips and why. Pure over the config and the earlier sweeps'
//! results, so the order is easy to test.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use steward_proto::v1::{ColdSkip, ColdSweepInput, ColdSweepPlan, ColdSweepResult};

use super::AppSpec;

/// `[cold_sweep]` of `steward.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColdSweepSettings {
    /// At most this many cold runs at a time.
    #[serde(default = "default_parallel")]
    pub max_parallel: u32,
    /// At most this many cold runs per sweep (per night).
    #[serde(default = "default_total")]
    pub max_total: u32,
}

fn default_parallel() -> u32 {
    2
}
fn default_total() -> u32 {
    20
}

impl Default for ColdSweepSettings {
    fn default() -> Self {
        Self {
            max_parallel: default_parallel(),
            max_total: default_total(),
        }
    }
}

/// The plan of a cold sweep over `apps`: those with a cold setup whose
/// name contains the filter, never tested by a sweep first, then the least
/// recently tested (`last_tested`: app → time in ms of the sweep that last
/// tested it), at most `max_total`; the others skipped with the reason.
/// An app another run holds (`busy`: app → the holding run) is skipped
/// without taking a place: it stays first in line, and the places go to
/// the apps after it, so a busy app never starves the others.
pub fn plan(
    apps: &[AppSpec],
    input: &ColdSweepInput,
    settings: &ColdSweepSettings,
    last_tested: &BTreeMap<String, i64>,
    busy: &BTreeMap<String, String>,
) -> ColdSweepPlan {
    let pick = |asked: u32, configured: u32| if asked > 0 { asked } else { configured };
    let max_parallel = pick(input.max_parallel, settings.max_parallel).max(1);
    let max_total = pick(input.max_total, settings.max_total);
    let mut skipped = Vec::new();
    let mut eligible = Vec::new();
    for app in apps {
        let why = if !input.filter.is_empty() && !app.name.contains(&input.filter) {
            Some(format!("does not match the filter `{}`", input.filter))
        } else if app.cold.is_none() {
            Some("no [apps.cold] setup".to_string())
        } else {
            busy.get(&app.name).map(|run| {
                format!(
                    "skipped-busy: another upgrade of {} is running (workflow run {run}); \
                     not counted against max_total, first in line next time",
                    app.name
                )
            })
        };
        match why {
            Some(why) => skipped.push(ColdSkip {
                app: app.name.clone(),
                why,
            }),
            None => eligible.push(app.name.clone()),
        }
    }
    eligible.sort_by_key(|name| (last_tested.get(name).copied(), name.clone()));
    let over = eligible.split_off(eligible.len().min(max_total as usize));
    skipped.extend(over.into_iter().map(|app| ColdSkip {
        app,
        why: format!("over the limit of {max_total} cold runs per sweep; first in line next time"),
    }));
    ColdSweepPlan {
        apps: eligible,
        max_parallel,
        max_total,
        skipped,
    }
}

/// When each app was last tested, from earlier sweeps' results (newest
/// first, with their times in ms).
pub fn last_tested(earlier: &[(i64, ColdSweepResult)]) -> BTreeMap<String, i64> {
    let mut seen = BTreeMap::new();
    for (at, result) in earlier {
        for tested in result.passed.iter().chain(&result.failed) {
            seen.entry(tested.app.clone()).or_insert(*at);
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(name: &str, cold: bool) -> AppSpec {
        let mut v = serde_json::json!({
            "name": name,
            "recipe_repo": "/r",
            "deploy": ["d"],
            "undeploy": ["u"],
            "health": { "command": ["true"] },
            "snapshot_dir": "/s",
        });
        if cold {
            v["cold"] = serde_json::json!({ "deploy": ["d", "{scratch}"], "undeploy": ["u"] });
        }
        serde_json::from_value(v).unwrap()
    }

    fn tested(app: &str) -> ColdSkip {
        ColdSkip {
            app: app.into(),
            why: String::new(),
        }
    }

    #[test]
    fn never_tested_first_then_least_recently_within_the_limit() {
        let apps = [
            app("a", true),
            app("b", true),
            app("c", true),
            app("d", false),
            app("e-eu", true),
        ];
        let earlier = [
            (
                200,
                ColdSweepResult {
                    passed: vec![tested("a")],
                    ..Default::default()
                },
            ),
            (
                100,
                ColdSweepResult {
                    failed: vec![tested("b")],
                    passed: vec![tested("a")],
                    ..Default::default()
                },
            ),
        ];
        let seen = last_tested(&earlier);
        assert_eq!(seen["a"], 200, "the newest sweep that tested it counts");
        let settings = ColdSweepSettings {
            max_parallel: 2,
            max_total: 3,
        };
        let none = BTreeMap::new();
        let p = plan(&apps, &ColdSweepInput::default(), &settings, &seen, &none);
        assert_eq!(p.apps, ["c", "e-eu", "b"]);
        let why: BTreeMap<_, _> = p
            .skipped
            .iter()
            .map(|s| (s.app.as_str(), s.why.as_str()))
            .collect();
        assert_eq!(why["d"], "no [apps.cold] setup");
        assert!(why["a"].contains("over the limit of 3"), "{why:?}");
        assert_eq!(p.max_parallel, 2);

        let only_eu = ColdSweepInput {
            filter: "eu".into(),
            max_parallel: 5,
            ..Default::default()
        };
        let p = plan(&apps, &only_eu, &settings, &seen, &none);
        assert_eq!(p.apps, ["e-eu"]);
        assert_eq!(p.max_parallel, 5, "the input overrides the config");
        assert!(
            p.skipped
                .iter()
                .any(|s| s.app == "a" && s.why.contains("filter `eu`"))
        );
    }

    #[test]
    fn a_busy_app_takes_no_place_and_stays_first_in_line() {
        let apps = [app("a", true), app("b", true), app("c", true)];
        let settings = ColdSweepSettings {
            max_parallel: 1,
            max_total: 1,
        };
        let busy = BTreeMap::from([("a".to_string(), "run-1".to_string())]);
        // Never tested: a, b, c in name order; a is busy, so b gets the
        // one place.
        let p = plan(
            &apps,
            &ColdSweepInput::default(),
            &settings,
            &BTreeMap::new(),
            &busy,
        );
        assert_eq!(p.apps, ["b"]);
        let why = |p: &ColdSweepPlan, app: &str| {
            p.skipped.iter().find(|s| s.app == app).unwrap().why.clone()
        };
        assert!(
            why(&p, "a").contains("another upgrade of a is running"),
            "{p:?}"
        );
        assert!(why(&p, "c").contains("over the limit of 1"), "{p:?}");
        // The next night, b tested and a free again: a goes first.
        let seen = BTreeMap::from([("b".to_string(), 100)]);
        let p = plan(
            &apps,
            &ColdSweepInput::default(),
            &settings,
            &seen,
            &BTreeMap::new(),
        );
        assert_eq!(p.apps, ["a"]);
    }
}
