//! The rules every operator action on a run passes, for backfills and
//! upgrades alike: plain, bounded text; the API's signature, bound to this
//! run, fresh, used once, by a credential that had not expired; who may
//! take the action (the permissions the run recorded when it started); and
//! separation of duties, judged on the verified starter.
//!
//! Pure functions over what the run recorded, so a validator and a handler
//! decide the same on every worker. Validators are not run on replay, so
//! the one input from outside, the workflow time an update arrived at, comes
//! from [`ValidatorClock`], which the worker installs.

use std::rc::Rc;
use std::time::{Duration, SystemTime};

use steward_proto::signing::Action;
use steward_proto::v1::{OperatorGroups, VerbGrant};
use steward_proto::{limits, signing};
use temporalio_workflow::workflow_interceptors::{
    SyncWorkflowInterceptorContext, ValidateUpdateInput, ValidateUpdateResult, WorkflowInterceptor,
    WorkflowInterceptorConstructor, WorkflowNext,
};
use temporalio_workflow::{WorkflowContextKey, WorkflowContextView};

use crate::time::parse_rfc3339;
use crate::verify;

/// Refuses an operator's name or reason: empty, too long, or carrying
/// control characters.
pub fn text(operator: &str, reason: &str) -> Result<(), String> {
    if operator.trim().is_empty() {
        return Err("an operator name is required".into());
    }
    if reason.trim().is_empty() {
        return Err("a reason is required".into());
    }
    for (what, text) in [("operator name", operator), ("reason", reason)] {
        if let Some(refusal) = limits::operator_text(what, text) {
            return Err(refusal);
        }
    }
    Ok(())
}

/// The workflow time an update arrived at, as [`ValidatorClock`] hands it
/// to the run's validators.
pub struct ArrivedAt;

impl WorkflowContextKey for ArrivedAt {
    type Value = Option<SystemTime>;
}

/// Gives every update validator the workflow time of the task that
/// delivers the update (a validator sees only the run's state otherwise),
/// so that it can refuse a stale signature.
#[derive(Debug, Clone, Copy, Default)]
pub struct ValidatorClock;

impl WorkflowInterceptor for ValidatorClock {
    fn validate_update(
        &self,
        ctx: SyncWorkflowInterceptorContext,
        input: ValidateUpdateInput,
        next: WorkflowNext<'_, ValidateUpdateInput, ValidateUpdateResult>,
    ) -> ValidateUpdateResult {
        let now = ctx.workflow_time();
        ctx.with_context_value::<ArrivedAt, _>(now, || next.run(input))
    }
}

/// The constructor the worker registers.
pub fn validator_clock() -> WorkflowInterceptorConstructor {
    WorkflowInterceptorConstructor::new(|_: &WorkflowContextView| ValidatorClock)
}

/// The workflow time the update being validated arrived at; None when no
/// [`ValidatorClock`] is installed.
pub fn arrived_at(view: &WorkflowContextView) -> Option<SystemTime> {
    view.context_value::<ArrivedAt>()
        .and_then(|t: Rc<Option<SystemTime>>| *t)
}

/// What a run judges a signed action by: the API's key it recorded, whether
/// it takes verified actions only, the operators it recorded (with when
/// their credentials expire) and the signatures it has accepted.
#[derive(Debug, Clone, Copy)]
pub struct Seal<'a> {
    /// The API's public key (hex); empty when no API is set up.
    pub key: &'a str,
    /// Refuse actions the API did not sign.
    pub require_verified: bool,
    /// The operators recorded when the run started.
    pub operators: &'a [OperatorGroups],
    /// Signatures the run has accepted.
    pub seen: &'a [String],
}

/// Why a run refused an action's signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// A signature is there and was not made by the API's key over this
    /// action for this run.
    DoesNotVerify,
    /// No signature, and the run takes verified actions only.
    Required,
    /// This run accepted the same signature before.
    Replayed,
    /// Signed longer ago than the window allows (seconds).
    Stale(u64),
    /// Signed later than the run's clock allows (seconds ahead).
    Early(u64),
    /// The time it was signed is not a time.
    Undated,
    /// The credential had expired when the API signed (at that time).
    Expired(String),
    /// The worker gave the validator no clock to judge age by.
    NoClock,
}

impl Refused {
    /// The refusal as an operator reads it; `verb` is the action, `run`
    /// what it was sent to ("rollout", "upgrade").
    pub fn explain(&self, verb: &str, run: &str) -> String {
        let window = limits::SIGNATURE_MAX_AGE_SECONDS;
        match self {
            Refused::DoesNotVerify => format!(
                "the `{verb}` request's signature does not verify: it was not signed by this \
                 deployment's API for this {run} (a signature is for one run and one action)"
            ),
            Refused::Required => format!(
                "this {run} takes verified operator actions only (require_verified): send `{verb}` \
                 through steward's API with your operator token"
            ),
            Refused::Replayed => format!(
                "this `{verb}` signature was already used on this {run}: a signed action counts once"
            ),
            Refused::Stale(age) => format!(
                "this `{verb}` was signed {age}s ago; a signed action is accepted for {window}s \
                 after the API signs it: send it again"
            ),
            Refused::Early(ahead) => format!(
                "this `{verb}` is signed {ahead}s in the future of this {run}'s clock (at most \
                 {window}s are tolerated): check the API host's clock"
            ),
            Refused::Undated => format!("this `{verb}` carries no valid signing time"),
            Refused::Expired(at) => format!(
                "the credential that signed this `{verb}` had expired ({at}) when it was signed"
            ),
            Refused::NoClock => format!(
                "this worker cannot judge the age of a signed `{verb}` (no validator clock is \
                 installed): run the steward worker"
            ),
        }
    }
}

/// Whether a run admits `action` with `signature`, arriving at `now`:
/// Ok(true) when the API signed it for this run, within the window, for
/// the first time, with a credential that had not expired; Ok(false) when
/// it is unsigned and the run allows that; the refusal otherwise.
pub fn admit(
    seal: &Seal<'_>,
    action: &Action<'_>,
    signature: &str,
    now: Option<SystemTime>,
) -> Result<bool, Refused> {
    if signature.is_empty() {
        return if seal.require_verified {
            Err(Refused::Required)
        } else {
            Ok(false)
        };
    }
    if !verify::signed(seal.key, action, signature) {
        return Err(Refused::DoesNotVerify);
    }
    if seal.seen.iter().any(|s| s.eq_ignore_ascii_case(signature)) {
        return Err(Refused::Replayed);
    }
    fresh(action.signed_at, now)?;
    if let Some(at) = seal
        .operators
        .iter()
        .find(|o| o.name == action.operator)
        .map(|o| o.expires.as_str())
        .filter(|e| !e.is_empty())
        && parse_rfc3339(at).is_none_or(|expires| {
            parse_rfc3339(action.signed_at).is_none_or(|signed| signed >= expires)
        })
    {
        return Err(Refused::Expired(at.to_string()));
    }
    Ok(true)
}

/// Whether `signed_at` is within the window around `now`.
pub fn fresh(signed_at: &str, now: Option<SystemTime>) -> Result<(), Refused> {
    let now = now.ok_or(Refused::NoClock)?;
    let signed = parse_rfc3339(signed_at).ok_or(Refused::Undated)?;
    let window = Duration::from_secs(limits::SIGNATURE_MAX_AGE_SECONDS);
    match now.duration_since(signed) {
        Ok(age) if age > window => Err(Refused::Stale(age.as_secs())),
        Ok(_) => Ok(()),
        Err(ahead) if ahead.duration() > window => Err(Refused::Early(ahead.duration().as_secs())),
        Err(_) => Ok(()),
    }
}

/// Whether an action the run has already admitted carries the API's
/// signature: what the handler records as `verified`. `bound` is false for
/// runs recorded before signatures named the run, whose replay must
/// recompute what they decided then.
pub fn signed(key: &str, action: &Action<'_>, signature: &str, bound: bool) -> bool {
    if signature.is_empty() {
        return false;
    }
    if bound {
        verify::signed(key, action, signature)
    } else {
        verify::signed_unbound(key, action, signature)
    }
}

/// Who started a run, as far as the run can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Starter {
    /// The API signed the start: the name is the token's.
    Verified(String),
    /// A Temporal Schedule started it (the server says so).
    Schedule,
    /// A name typed on a command line, or sent to Temporal directly.
    Typed(String),
}

impl Starter {
    /// The starter of a run whose start said `operator`, as the run judged
    /// its start: `verified` when the API's signature held, `scheduled`
    /// when the server marked the run as a schedule's.
    pub fn of(operator: &str, verified: bool, scheduled: bool) -> Self {
        if verified {
            Starter::Verified(operator.to_string())
        } else if scheduled && operator == "schedule" {
            Starter::Schedule
        } else {
            Starter::Typed(operator.to_string())
        }
    }

    /// The person, when one started the run.
    pub fn name(&self) -> Option<&str> {
        match self {
            Starter::Verified(n) | Starter::Typed(n) => Some(n),
            Starter::Schedule => None,
        }
    }
}

/// The search attribute a Temporal Schedule sets on every run it starts;
/// clients cannot set `Temporal*` attributes themselves.
pub const SCHEDULED_BY: &str = "TemporalScheduledById";

/// Whether the server marked this run as started by a schedule.
pub fn scheduled(view: &WorkflowContextView) -> bool {
    view.search_attributes()
        .is_some_and(|a| a.keys().any(|k| k == SCHEDULED_BY))
}

/// The operator as the run recorded them when it started; the refusal
/// names the roster's age, since an operator declared since is unknown to
/// runs started before.
pub fn declared<'a>(
    operators: &'a [OperatorGroups],
    operator: &str,
) -> Result<&'a OperatorGroups, String> {
    operators.iter().find(|o| o.name == operator).ok_or_else(|| {
        format!(
            "`{operator}` is not a declared operator of this deployment as this run recorded it \
             when it started (a run reads `[[operators]]` once, at its start: an operator declared \
             since acts on runs started after)"
        )
    })
}

/// The operators a run judges an action by: those it recorded when it
/// started, and, when the API's signature on the action held (`verified`)
/// and its credential is the identity provider's, that person with the
/// groups the IdP gave them when they acted (in place of any entry of the
/// same name).
pub fn roster_for<'a>(
    operators: &'a [OperatorGroups],
    operator: &str,
    credential_id: &str,
    verified: bool,
) -> std::borrow::Cow<'a, [OperatorGroups]> {
    match signing::idp_groups(credential_id).filter(|_| verified) {
        None => std::borrow::Cow::Borrowed(operators),
        Some(groups) => {
            let mut all: Vec<OperatorGroups> = operators
                .iter()
                .filter(|o| o.name != operator)
                .cloned()
                .collect();
            all.push(OperatorGroups {
                name: operator.to_string(),
                groups,
                ..Default::default()
            });
            std::borrow::Cow::Owned(all)
        }
    }
}

/// Whether `operator` may take `verb`, by the grants the run recorded. A
/// run with no operators recorded (a single-operator setup), or no grants
/// (recorded before permissions existed), lets anyone.
pub fn permitted(
    operators: &[OperatorGroups],
    grants: &[VerbGrant],
    verb: &str,
    operator: &str,
    what: &str,
) -> Result<(), String> {
    if operators.is_empty() || grants.is_empty() {
        return Ok(());
    }
    let member = declared(operators, operator)?;
    let groups = grants
        .iter()
        .find(|g| g.verb == verb)
        .map(|g| g.groups.as_slice())
        .unwrap_or_default();
    let allowed = groups
        .iter()
        .any(|g| (g == "*" && !member.groups.is_empty()) || member.groups.contains(g));
    if allowed {
        return Ok(());
    }
    let who = if groups.is_empty() {
        "no group".to_string()
    } else {
        format!("members of {}", groups.join(", "))
    };
    Err(format!(
        "`{operator}` may not `{verb}` {what}: {who} may (their groups: {}); see `[[permissions]]` \
         in the config",
        if member.groups.is_empty() {
            "none".to_string()
        } else {
            member.groups.join(", ")
        }
    ))
}

/// Separation of duties and membership for an approval: the approver is
/// declared, belongs to `group` (any group of theirs when empty), did not
/// start the run, and, when the approval is verified, the run's starter is
/// verified too (a typed starter's name proves nothing, so a verified
/// approval could not show it comes from someone else). A run with no
/// operators recorded (a single-operator setup) checks none of it.
pub fn may_approve(
    operators: &[OperatorGroups],
    group: &str,
    starter: &Starter,
    approver: &str,
    approval_verified: bool,
    run: &str,
) -> Result<(), String> {
    if operators.is_empty() {
        return Ok(());
    }
    let member = declared(operators, approver)?;
    if !group.is_empty() && !member.groups.iter().any(|g| g == group) {
        return Err(format!(
            "`{approver}` is not in group `{group}` (their groups: {})",
            member.groups.join(", ")
        ));
    }
    if starter.name() == Some(approver) {
        return Err(format!(
            "`{approver}` started this {run} and cannot approve it"
        ));
    }
    if approval_verified && let Starter::Typed(name) = starter {
        return Err(format!(
            "who started this {run} is a typed name (`{name}`), not a verified one, so a verified \
             approval cannot show that someone else approves it: start the {run} through steward's \
             API (or from a schedule)"
        ));
    }
    Ok(())
}

/// The signature check of a start: the API's signature over the start,
/// bound to its nonce (`action.run`), made within the window before
/// `started` (when the server started the run).
pub fn admit_start(
    key: &str,
    action: &Action<'_>,
    signature: &str,
    started: Option<SystemTime>,
) -> Result<(), Refused> {
    if action.run.is_empty() || !verify::signed(key, action, signature) {
        return Err(Refused::DoesNotVerify);
    }
    fresh(action.signed_at, started)
}

/// The message of a start signed before signatures named the run.
pub fn unbound_start(key: &str, action: &Action<'_>, signature: &str) -> bool {
    !signature.is_empty() && verify::signed_unbound(key, action, signature)
}

/// Signs `action` as the API does, for tests.
#[cfg(test)]
pub(crate) fn sign(key: &ed25519_dalek::SigningKey, action: &Action<'_>) -> String {
    use ed25519_dalek::Signer as _;
    hex::encode(
        key.sign(&steward_proto::signing::message(action))
            .to_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn at(s: &str) -> Option<SystemTime> {
        parse_rfc3339(s)
    }

    fn action(signed_at: &'static str) -> Action<'static> {
        Action {
            workflow_id: "backfill-x",
            run: "run-1",
            verb: "approve",
            operator: "ana",
            credential_id: "t1",
            reason: "read the dry run",
            detail: "storage",
            signed_at,
        }
    }

    fn roster(expires: &str) -> Vec<OperatorGroups> {
        vec![
            OperatorGroups {
                name: "ana".into(),
                groups: vec!["storage".into()],
                expires: expires.into(),
            },
            OperatorGroups {
                name: "bob".into(),
                groups: vec!["security".into()],
                expires: String::new(),
            },
            OperatorGroups {
                name: "nog".into(),
                groups: vec![],
                expires: String::new(),
            },
        ]
    }

    #[test]
    fn a_signature_counts_once_for_its_run_within_the_window() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let public = hex::encode(key.verifying_key().to_bytes());
        let a = action("2026-12-02T10:00:00Z");
        let sig = sign(&key, &a);
        let operators = roster("");
        let mut seal = Seal {
            key: &public,
            require_verified: true,
            operators: &operators,
            seen: &[],
        };
        let now = at("2026-12-02T10:01:00Z");
        assert_eq!(admit(&seal, &a, &sig, now), Ok(true));
        let elsewhere = Action { run: "run-2", ..a };
        assert_eq!(
            admit(&seal, &elsewhere, &sig, now),
            Err(Refused::DoesNotVerify),
            "another run of the same workflow"
        );
        let seen = [sig.clone()];
        seal.seen = &seen;
        assert_eq!(admit(&seal, &a, &sig, now), Err(Refused::Replayed));
        seal.seen = &[];
        assert_eq!(
            admit(&seal, &a, &sig, at("2026-12-02T10:05:01Z")),
            Err(Refused::Stale(301))
        );
        assert_eq!(
            admit(&seal, &a, &sig, at("2026-12-02T09:54:00Z")),
            Err(Refused::Early(360))
        );
        assert_eq!(admit(&seal, &a, &sig, None), Err(Refused::NoClock));
        assert_eq!(admit(&seal, &a, "", now), Err(Refused::Required));
        seal.require_verified = false;
        assert_eq!(admit(&seal, &a, "", now), Ok(false));
        for refusal in [
            Refused::DoesNotVerify,
            Refused::Replayed,
            Refused::Stale(301),
            Refused::Required,
        ] {
            assert!(refusal.explain("approve", "rollout").contains("approve"));
        }
    }

    #[test]
    fn an_expired_credential_signs_nothing_after_its_expiry() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let public = hex::encode(key.verifying_key().to_bytes());
        let a = action("2026-12-02T10:00:00Z");
        let sig = sign(&key, &a);
        let now = at("2026-12-02T10:00:30Z");
        let expired = roster("2026-12-02T09:00:00Z");
        let seal = Seal {
            key: &public,
            require_verified: true,
            operators: &expired,
            seen: &[],
        };
        assert_eq!(
            admit(&seal, &a, &sig, now),
            Err(Refused::Expired("2026-12-02T09:00:00Z".into()))
        );
        let later = roster("2026-12-03T00:00:00Z");
        let seal = Seal {
            operators: &later,
            ..seal
        };
        assert_eq!(admit(&seal, &a, &sig, now), Ok(true));
    }

    #[test]
    fn permissions_follow_the_grants_and_need_a_group() {
        let ops = roster("");
        let grants = vec![
            VerbGrant {
                verb: "freeze".into(),
                groups: vec!["storage".into()],
            },
            VerbGrant {
                verb: "pause".into(),
                groups: vec!["*".into()],
            },
            VerbGrant {
                verb: "abort".into(),
                groups: vec![],
            },
        ];
        assert_eq!(permitted(&ops, &grants, "freeze", "ana", "x"), Ok(()));
        let e = permitted(&ops, &grants, "freeze", "bob", "backfill `x`").unwrap_err();
        assert!(e.contains("members of storage"), "{e}");
        assert_eq!(permitted(&ops, &grants, "pause", "bob", "x"), Ok(()));
        let e = permitted(&ops, &grants, "pause", "nog", "x").unwrap_err();
        assert!(e.contains("their groups: none"), "{e}");
        assert!(
            permitted(&ops, &grants, "abort", "ana", "x")
                .unwrap_err()
                .contains("no group may")
        );
        assert!(
            permitted(&ops, &grants, "set", "ana", "x")
                .unwrap_err()
                .contains("no group may"),
            "a verb without a grant is nobody's"
        );
        assert!(
            permitted(&ops, &grants, "freeze", "zed", "x")
                .unwrap_err()
                .contains("not a declared operator")
        );
        assert_eq!(permitted(&[], &grants, "freeze", "zed", "x"), Ok(()));
        assert_eq!(permitted(&ops, &[], "freeze", "nog", "x"), Ok(()));
    }

    #[test]
    fn an_identity_providers_groups_count_only_under_a_signature_that_held() {
        let ops = roster("");
        let idp = signing::idp_credential("sub-7", &["security".into()]);
        let vouched = roster_for(&ops, "zed", &idp, true);
        assert_eq!(
            may_approve(
                &vouched,
                "security",
                &Starter::Schedule,
                "zed",
                true,
                "upgrade"
            ),
            Ok(())
        );
        let unverified = roster_for(&ops, "zed", &idp, false);
        assert!(
            may_approve(
                &unverified,
                "security",
                &Starter::Schedule,
                "zed",
                false,
                "upgrade"
            )
            .unwrap_err()
            .contains("not a declared operator")
        );
        // The IdP's groups replace what the roster says of that name.
        let bob = roster_for(&ops, "bob", &signing::idp_credential("b", &[]), true);
        assert!(may_approve(&bob, "security", &Starter::Schedule, "bob", true, "upgrade").is_err());
        assert_eq!(roster_for(&ops, "bob", "t1", true).len(), ops.len());
    }

    #[test]
    fn separation_of_duties_is_judged_on_the_verified_starter() {
        let ops = roster("");
        let typed = Starter::of("carol", false, false);
        let e = may_approve(&ops, "security", &typed, "bob", true, "upgrade").unwrap_err();
        assert!(e.contains("typed name (`carol`)"), "{e}");
        assert_eq!(
            may_approve(&ops, "security", &typed, "bob", false, "upgrade"),
            Ok(()),
            "an unverified approval of a typed start compares typed names"
        );
        let verified = Starter::of("bob", true, false);
        assert!(
            may_approve(&ops, "security", &verified, "bob", true, "upgrade")
                .unwrap_err()
                .contains("started this upgrade")
        );
        let ana = Starter::of("ana", true, false);
        assert_eq!(
            may_approve(&ops, "security", &ana, "bob", true, "upgrade"),
            Ok(())
        );
        assert_eq!(
            may_approve(
                &ops,
                "security",
                &Starter::of("schedule", false, true),
                "bob",
                true,
                "upgrade"
            ),
            Ok(())
        );
        assert_eq!(
            Starter::of("schedule", false, false),
            Starter::Typed("schedule".into()),
            "a typed `schedule` is no schedule"
        );
        assert!(
            may_approve(&ops, "storage", &ana, "bob", true, "rollout")
                .unwrap_err()
                .contains("not in group `storage`")
        );
        assert_eq!(
            may_approve(&[], "storage", &typed, "carol", true, "rollout"),
            Ok(())
        );
    }

    #[test]
    fn operator_text_is_required_bounded_and_plain() {
        assert!(text("ana", "ok").is_ok());
        assert!(text(" ", "ok").unwrap_err().contains("operator name"));
        assert!(text("ana", "").unwrap_err().contains("reason"));
        assert!(
            text("ana", "ok\u{1b}[2J")
                .unwrap_err()
                .contains("control character")
        );
        assert!(
            text("ana\r", "ok")
                .unwrap_err()
                .contains("operator name contains")
        );
    }
}
