//! Who may act on a run, as the worker's config declares it: the
//! operators with their groups and expiry, the API's public key that
//! verifies their signed actions, and `[[permissions]]`, who may take which
//! action on what. Plans hand the operators and the resolved grants to each
//! run when it starts, so its validators judge every action by what was
//! declared then; the API judges a request by the same rules before it
//! sends anything.

use serde::{Deserialize, Serialize};
use steward_proto::v1::{OperatorGroups, VerbGrant};
use steward_proto::vocab::ScheduleKind;

/// The declared operators, the key that verifies their actions, and who
/// may do what.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roster {
    /// Each operator with their groups (empty: a single-operator setup).
    pub operators: Vec<OperatorGroups>,
    /// The API's Ed25519 public key, hex; empty when no API is set up.
    pub verify_key: String,
    /// `[[permissions]]` as written; empty: the defaults ([`Roster::groups`]).
    pub rules: Vec<PermissionRule>,
}

/// One `[[permissions]]` entry: the groups whose members may take `verbs`
/// on what `on` names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermissionRule {
    /// Whose members; `*` for any operator with a group.
    pub groups: Vec<String>,
    /// Which actions (`start`, `freeze`, `pause`, ...); `*` for all.
    pub verbs: Vec<String>,
    /// On what: `backfill:NAME`, `app:NAME`, `schedule:NAME`,
    /// `drill:NAME` (each also `KIND:*`), `sweep`, `cold-sweep`,
    /// `restore-drill`, `task`, or `*`.
    pub on: Vec<String>,
}

/// The targets a schedule also starts are named as its kind.
const COLD_SWEEP: &str = ScheduleKind::ColdSweep.as_str();
const RESTORE_DRILL: &str = ScheduleKind::RestoreDrill.as_str();

/// What an operator acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// A backfill and its rollouts.
    Backfill(&'a str),
    /// An app and its upgrades, trials and cold runs.
    App(&'a str),
    /// A schedule (pause, resume).
    Schedule(&'a str),
    /// A failover drill.
    Drill(&'a str),
    /// Consistency sweeps.
    Sweep,
    /// The cold sweep of every app.
    ColdSweep,
    /// The restore drill.
    RestoreDrill,
    /// Workplan tasks (status changes).
    Task,
    /// The leases workflows take (release by hand).
    Lock,
    /// Alerts (acknowledge).
    Alert,
    /// The shared services' per-run resources (reap).
    Shared,
}

impl Target<'_> {
    /// The kind, as `on` spells it.
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Backfill(_) => "backfill",
            Target::App(_) => "app",
            Target::Schedule(_) => "schedule",
            Target::Drill(_) => "drill",
            Target::Sweep => "sweep",
            Target::ColdSweep => COLD_SWEEP,
            Target::RestoreDrill => RESTORE_DRILL,
            Target::Task => "task",
            Target::Lock => "lock",
            Target::Alert => "alert",
            Target::Shared => "shared",
        }
    }

    fn name(&self) -> Option<&str> {
        match self {
            Target::Backfill(n) | Target::App(n) | Target::Schedule(n) | Target::Drill(n) => {
                Some(n)
            }
            _ => None,
        }
    }

    /// The verbs an operator can take on this kind of target.
    pub fn verbs(&self) -> &'static [&'static str] {
        verbs_of(self.kind())
    }

    /// Whether `on` (one entry of a rule's `on`) names this target.
    pub fn matches(&self, on: &str) -> bool {
        if on == "*" {
            return true;
        }
        match (on.split_once(':'), self.name()) {
            (Some((kind, name)), Some(mine)) => {
                kind == self.kind() && (name == "*" || name == mine)
            }
            (None, None) => on == self.kind(),
            _ => false,
        }
    }
}

/// The verbs of a target kind (as `on` spells it); empty for no such kind.
pub fn verbs_of(kind: &str) -> &'static [&'static str] {
    match kind {
        "backfill" => &[
            "start", "freeze", "unfreeze", "pause", "resume", "abort", "set",
        ],
        "app" => &["start"],
        "schedule" => &["pause", "resume"],
        "drill" | "sweep" | COLD_SWEEP | RESTORE_DRILL => &["start"],
        "task" => &["set-status"],
        "lock" => &["release"],
        "alert" => &["ack"],
        "shared" => &["reap"],
        _ => &[],
    }
}

/// Why an `on` entry or a verb of a rule means nothing.
pub fn check_rule(rule: &PermissionRule) -> Result<(), String> {
    if rule.groups.is_empty() {
        return Err("groups is empty: name the groups whose members may act (or `*`)".into());
    }
    if rule.on.is_empty() {
        return Err("on is empty: name what the rule is for (for example `backfill:*`)".into());
    }
    let mut kinds = Vec::new();
    for on in &rule.on {
        let kind = if on == "*" {
            "*"
        } else {
            on.split_once(':').map_or(on.as_str(), |(k, _)| k)
        };
        let named = on.contains(':');
        let takes_name = matches!(kind, "backfill" | "app" | "schedule" | "drill");
        if kind != "*" && (verbs_of(kind).is_empty() || named != takes_name) {
            return Err(format!(
                "on `{on}` is not a target (backfill:NAME, app:NAME, schedule:NAME, drill:NAME, \
                 each also KIND:*; sweep, cold-sweep, restore-drill, task; or *)"
            ));
        }
        kinds.push(kind);
    }
    for verb in &rule.verbs {
        if verb == "*" {
            continue;
        }
        let known = kinds.iter().any(|k| {
            if *k == "*" {
                ["backfill", "app", "schedule", "drill", "task"]
                    .iter()
                    .any(|k| verbs_of(k).contains(&verb.as_str()))
            } else {
                verbs_of(k).contains(&verb.as_str())
            }
        });
        if !known {
            return Err(format!(
                "verb `{verb}` is not an action on {} (their actions: {})",
                rule.on.join(", "),
                kinds
                    .iter()
                    .flat_map(|k| if *k == "*" { &[][..] } else { verbs_of(k) })
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    if rule.verbs.is_empty() {
        return Err("verbs is empty: name the actions (or `*`)".into());
    }
    Ok(())
}

impl Roster {
    /// The groups whose members may take `verb` on `target`; `*` stands
    /// for any group. `default` is what the target grants when the config
    /// has no `[[permissions]]`: a backfill's approving groups, an app's
    /// approval group (each `*` when it has none); everything else `*`.
    /// An operator with no group is refused everything.
    pub fn groups(&self, target: Target<'_>, verb: &str, default: &[String]) -> Vec<String> {
        if self.rules.is_empty() {
            return if default.is_empty() {
                vec!["*".into()]
            } else {
                default.to_vec()
            };
        }
        let mut groups: Vec<String> = Vec::new();
        for rule in &self.rules {
            let covers_verb = rule.verbs.iter().any(|v| v == "*" || v == verb);
            if covers_verb && rule.on.iter().any(|on| target.matches(on)) {
                for g in &rule.groups {
                    if !groups.contains(g) {
                        groups.push(g.clone());
                    }
                }
            }
        }
        groups
    }

    /// Every verb of `target` with its groups, as a run records them; empty
    /// when no operators are declared (nothing is checked then).
    pub fn grants(&self, target: Target<'_>, default: &[String]) -> Vec<VerbGrant> {
        if self.operators.is_empty() {
            return Vec::new();
        }
        target
            .verbs()
            .iter()
            .map(|verb| VerbGrant {
                verb: (*verb).into(),
                groups: self.groups(target, verb, default),
            })
            .collect()
    }

    /// Whether an operator in `groups` may take `verb` on `target`; with no
    /// operators declared, anyone may.
    pub fn permits(
        &self,
        member_groups: &[String],
        target: Target<'_>,
        verb: &str,
        default: &[String],
    ) -> bool {
        if self.operators.is_empty() {
            return true;
        }
        let allowed = self.groups(target, verb, default);
        allowed
            .iter()
            .any(|g| (g == "*" && !member_groups.is_empty()) || member_groups.contains(g))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(groups: &[&str], verbs: &[&str], on: &[&str]) -> PermissionRule {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect();
        PermissionRule {
            groups: v(groups),
            verbs: v(verbs),
            on: v(on),
        }
    }

    fn roster(rules: Vec<PermissionRule>) -> Roster {
        Roster {
            operators: vec![OperatorGroups {
                name: "ana".into(),
                groups: vec!["storage".into()],
                expires: String::new(),
            }],
            verify_key: String::new(),
            rules,
        }
    }

    #[test]
    fn the_defaults_give_a_backfill_to_its_approvers_and_the_rest_to_any_group() {
        let r = roster(vec![]);
        let approvers = vec!["storage".to_string(), "security".to_string()];
        assert_eq!(
            r.groups(Target::Backfill("users"), "freeze", &approvers),
            approvers
        );
        assert_eq!(r.groups(Target::Sweep, "start", &[]), vec!["*"]);
        assert!(r.permits(
            &["storage".into()],
            Target::Backfill("users"),
            "abort",
            &approvers
        ));
        assert!(!r.permits(
            &["web".into()],
            Target::Backfill("users"),
            "abort",
            &approvers
        ));
        assert!(
            !r.permits(&[], Target::Sweep, "start", &[]),
            "no group, no action"
        );
        let grants = r.grants(Target::Backfill("users"), &approvers);
        assert_eq!(grants.len(), 7);
        assert!(Roster::default().grants(Target::Sweep, &[]).is_empty());
        assert!(Roster::default().permits(&[], Target::Sweep, "start", &[]));
    }

    #[test]
    fn rules_grant_by_verb_and_target_and_nothing_else() {
        let r = roster(vec![
            rule(&["dba"], &["*"], &["backfill:*"]),
            rule(&["oncall"], &["pause", "abort"], &["backfill:users"]),
            rule(&["release"], &["start"], &["app:kc", "sweep"]),
        ]);
        assert_eq!(
            r.groups(Target::Backfill("users"), "abort", &[]),
            vec!["dba", "oncall"]
        );
        assert_eq!(
            r.groups(Target::Backfill("orders"), "abort", &[]),
            vec!["dba"]
        );
        assert_eq!(r.groups(Target::App("kc"), "start", &[]), vec!["release"]);
        assert!(r.groups(Target::App("web"), "start", &[]).is_empty());
        assert!(r.groups(Target::Schedule("sweep"), "pause", &[]).is_empty());
        assert_eq!(r.groups(Target::Sweep, "start", &[]), vec!["release"]);
    }

    #[test]
    fn rules_that_name_nothing_are_refused() {
        assert!(check_rule(&rule(&["a"], &["start"], &["backfill:x", "sweep"])).is_ok());
        assert!(check_rule(&rule(&["a"], &["*"], &["*"])).is_ok());
        for (bad, says) in [
            (rule(&["a"], &["start"], &["backfills:x"]), "not a target"),
            (rule(&["a"], &["start"], &["sweep:x"]), "not a target"),
            (rule(&["a"], &["start"], &["backfill"]), "not a target"),
            (rule(&["a"], &["freeze"], &["app:x"]), "not an action"),
            (rule(&[], &["start"], &["app:x"]), "groups is empty"),
            (rule(&["a"], &[], &["app:x"]), "verbs is empty"),
        ] {
            let e = check_rule(&bad).unwrap_err();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }
}
