//! The operator protocol of a rollout: which actions each phase takes,
//! the start's judgement (signature, nonce, `require_verified`, who may
//! start), every update's check (text, signature, permission, phase and
//! the verb's own rules, approvals' membership and separation of duties)
//! and its record. The validator and update shells stay in `mod.rs`, where
//! the SDK's macros need them; the rules they share with the upgrade are
//! `crate::operator`.

use super::*;

/// Phases in which approvals are still accepted.
const BEFORE_EXECUTION: &[BackfillPhase] = &[
    BackfillPhase::Preconditions,
    BackfillPhase::AwaitingFreeze,
    BackfillPhase::Frozen,
    BackfillPhase::DryRun,
    BackfillPhase::AwaitingApproval,
];

/// Phases in which live settings can no longer change.
const SETTLED: &[BackfillPhase] = &[
    BackfillPhase::Validating,
    BackfillPhase::Unfreezing,
    BackfillPhase::ReplayProbe,
    BackfillPhase::RollingBack,
    BackfillPhase::RolledBackFrozen,
];

/// The operator updates a rollout in `phase` accepts (`paused`: whether
/// batches are paused): what the operator page offers. The validator
/// ([`BackfillRollout::check`]) decides; this follows its phase rules.
pub fn verbs_in(phase: BackfillPhase, paused: bool) -> Vec<OperatorVerb> {
    let before = BEFORE_EXECUTION.contains(&phase);
    let executing = phase == BackfillPhase::Executing;
    let mut verbs = Vec::new();
    if phase == BackfillPhase::AwaitingFreeze {
        verbs.push(OperatorVerb::Freeze);
    }
    if before {
        verbs.push(OperatorVerb::Approve);
    }
    if executing {
        verbs.push(if paused {
            OperatorVerb::Resume
        } else {
            OperatorVerb::Pause
        });
    }
    if !SETTLED.contains(&phase) {
        verbs.push(OperatorVerb::Set);
    }
    if before || executing {
        verbs.push(OperatorVerb::Abort);
    }
    if phase == BackfillPhase::RolledBackFrozen {
        verbs.push(OperatorVerb::Unfreeze);
    }
    verbs
}

impl BackfillRollout {
    /// Whether `req` carries the API's signature for `verb` on this run,
    /// arriving at `now`: Ok(true) when it does, Ok(false) when it is
    /// unsigned and the spec allows that, the refusal otherwise.
    pub(super) fn authenticated(
        &self,
        verb: OperatorVerb,
        req: &OperatorRequest,
        now: Option<SystemTime>,
    ) -> Result<bool, String> {
        let detail = signing::request_detail(verb.as_str(), req);
        let action =
            signing::Action::of(&self.workflow_id, &self.chain, verb.as_str(), req, &detail);
        operator::admit(&self.seal(), &action, &req.signature, now)
            .map_err(|refused| refused.explain(verb.as_str(), "rollout"))
    }

    /// Judges the start: a signature must be the API's, bound to a nonce no
    /// other run used, and fresh when the server started the run; then the
    /// spec's `require_verified` and the starter's permission. Sets
    /// `start_verified`; the refusal ends the rollout before anything runs.
    pub(super) async fn judge_start(
        ctx: &mut WorkflowContext<Self>,
    ) -> WorkflowResult<Option<String>> {
        let (input, plan, workflow_id, bound, started) = ctx.state(|s| {
            (
                s.input.clone(),
                s.plan.clone(),
                s.workflow_id.clone(),
                s.bound,
                s.started,
            )
        });
        let name = &input.name;
        let detail = signing::backfill_start_detail(&input);
        let action = signing::Action::of(
            &workflow_id,
            &input.nonce,
            OperatorVerb::Start.as_str(),
            &input,
            &detail,
        );
        let verified = if !bound {
            operator::unbound_start(&plan.verify_key, &action, &input.signature)
        } else if input.signature.is_empty() {
            false
        } else {
            if let Err(refused) =
                operator::admit_start(&plan.verify_key, &action, &input.signature, started)
            {
                return Ok(Some(refused.explain("start", "rollout")));
            }
            let claim = ctx
                .execute_activity(
                    ClaimStart,
                    StartClaim {
                        nonce: input.nonce.clone(),
                        workflow_id: workflow_id.clone(),
                        run_id: ctx.run_id().to_string(),
                    },
                    short("claim the signed start"),
                )
                .await?;
            if !claim.claimed {
                return Ok(Some(format!(
                    "this start's signature was already used by run {}: a signed start starts one run",
                    claim.used_by
                )));
            }
            true
        };
        ctx.state_mut(|s| s.start_verified = verified);
        if plan.require_verified && !verified {
            return Ok(Some(format!(
                "backfill `{name}` takes verified operator actions only (require_verified): \
                 start it through steward's API with your operator token"
            )));
        }
        let roster = operator::roster_for(
            &plan.operators,
            &input.operator,
            &input.credential_id,
            verified,
        );
        Ok(operator::permitted(
            &roster,
            &plan.permissions,
            OperatorVerb::Start.as_str(),
            &input.operator,
            &format!("backfill `{name}`"),
        )
        .err())
    }

    /// Who started the rollout, as far as it can tell.
    pub(super) fn starter(&self) -> Starter {
        Starter::of(&self.input.operator, self.start_verified, self.scheduled)
    }

    /// What the rollout judges a signed action by.
    pub(super) fn seal(&self) -> Seal<'_> {
        Seal {
            key: &self.plan.verify_key,
            require_verified: self.plan.require_verified,
            operators: &self.plan.operators,
            seen: &self.carry.signatures,
        }
    }

    /// Whether an operator request arriving at `now` is valid; the reason
    /// when not.
    pub fn check(
        &self,
        verb: OperatorVerb,
        req: &OperatorRequest,
        now: Option<SystemTime>,
    ) -> Result<(), String> {
        operator::text(&req.operator, &req.reason)?;
        if self.plan.name.is_empty() {
            return Err(format!(
                "the rollout is still reading its plan: send `{verb}` again in a moment"
            ));
        }
        let verified = self.authenticated(verb, req, now)?;
        let roster = operator::roster_for(
            &self.plan.operators,
            &req.operator,
            &req.credential_id,
            verified,
        );
        if verb != OperatorVerb::Approve {
            operator::permitted(
                &roster,
                &self.plan.permissions,
                verb.as_str(),
                &req.operator,
                &format!("backfill `{}`", self.input.name),
            )?;
        }
        match verb {
            OperatorVerb::Start => Err(
                "`start` is not an operator update: start a rollout with `steward backfill start`"
                    .into(),
            ),
            OperatorVerb::Freeze => self.in_phase(&[BackfillPhase::AwaitingFreeze], verb),
            OperatorVerb::Unfreeze => self.in_phase(&[BackfillPhase::RolledBackFrozen], verb),
            OperatorVerb::Approve => {
                self.in_phase(BEFORE_EXECUTION, verb)?;
                if !self.plan.approvals.contains(&req.group) {
                    return Err(format!(
                        "`{}` is not an approving group of this backfill (expected one of: {})",
                        req.group,
                        self.plan.approvals.join(", ")
                    ));
                }
                if self.carry.approvals.contains(&req.group) {
                    return Err(format!("group `{}` has already approved", req.group));
                }
                if let Some(earlier) = self
                    .carry
                    .operator_actions
                    .iter()
                    .find(|a| OperatorVerb::Approve == a.action && a.operator == req.operator)
                {
                    return Err(format!(
                        "`{}` already approved for `{}`: one operator approves for one group",
                        req.operator, earlier.detail
                    ));
                }
                operator::may_approve(
                    &roster,
                    &req.group,
                    &self.starter(),
                    &req.operator,
                    verified,
                    "rollout",
                )
            }
            OperatorVerb::Pause => {
                self.in_phase(&[BackfillPhase::Executing], verb)?;
                if self.carry.paused {
                    Err("already paused".into())
                } else {
                    Ok(())
                }
            }
            OperatorVerb::Resume => {
                if self.carry.paused {
                    Ok(())
                } else {
                    Err("not paused".into())
                }
            }
            OperatorVerb::Abort => {
                if self.abort_requested {
                    return Err("already aborting".into());
                }
                let mut phases = BEFORE_EXECUTION.to_vec();
                phases.push(BackfillPhase::Executing);
                self.in_phase(&phases, verb)
            }
            OperatorVerb::Set => {
                if let Some(refusal) =
                    limits::live_settings(req.batch_size, req.max_lag_seconds, &req.throttle_max)
                {
                    return Err(refusal);
                }
                for name in req.throttle_max.keys() {
                    if !self.plan.throttles.iter().any(|t| &t.name == name) {
                        let known: Vec<&str> = self
                            .plan
                            .throttles
                            .iter()
                            .map(|t| t.name.as_str())
                            .collect();
                        return Err(if known.is_empty() {
                            format!("no throttle named `{name}`: this backfill has none")
                        } else {
                            format!(
                                "no throttle named `{name}` (this backfill has {})",
                                known.join(", ")
                            )
                        });
                    }
                }
                let settled = match self.stage {
                    BackfillStage::Ended(_) => true,
                    BackfillStage::Running(phase) => SETTLED.contains(&phase),
                };
                if settled {
                    return Err(format!("settings cannot change in phase `{}`", self.stage));
                }
                Ok(())
            }
        }
    }

    /// The approving groups that have not approved yet.
    pub(super) fn missing_approvals(&self) -> Vec<String> {
        self.plan
            .approvals
            .iter()
            .filter(|g| !self.carry.approvals.contains(g))
            .cloned()
            .collect()
    }

    pub(super) fn approved(&self) -> bool {
        let have: BTreeSet<&String> = self.carry.approvals.iter().collect();
        self.plan.approvals.iter().all(|g| have.contains(g))
    }

    pub(super) fn in_phase(
        &self,
        phases: &[BackfillPhase],
        verb: OperatorVerb,
    ) -> Result<(), String> {
        if phases.iter().any(|p| self.stage.is(*p)) {
            Ok(())
        } else {
            Err(format!(
                "`{verb}` is not allowed in phase `{}` (allowed in: {})",
                self.stage,
                phases
                    .iter()
                    .map(|p| p.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
    }

    pub(super) fn record(
        &mut self,
        at: Option<SystemTime>,
        verb: OperatorVerb,
        req: &OperatorRequest,
        detail: String,
    ) -> OperatorReply {
        let at = rfc3339(at.unwrap_or(SystemTime::UNIX_EPOCH));
        let detail_text = detail.clone();
        let signed_detail = signing::request_detail(verb.as_str(), req);
        let action = signing::Action::of(
            &self.workflow_id,
            &self.chain,
            verb.as_str(),
            req,
            &signed_detail,
        );
        let verified = operator::signed(&self.plan.verify_key, &action, &req.signature, self.bound);
        if !req.signature.is_empty() {
            self.carry.signatures.push(req.signature.clone());
        }
        self.carry.operator_actions.push(OperatorAction {
            action: verb.into(),
            operator: req.operator.clone(),
            reason: req.reason.clone(),
            detail,
            at,
            credential_id: req.credential_id.clone(),
            verified,
        });
        let message = if detail_text.is_empty() {
            format!("{verb} accepted")
        } else {
            format!("{verb} accepted: {detail_text}")
        };
        OperatorReply {
            phase: self.stage.as_str().into(),
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_offers_what_the_validator_accepts_in_each_phase() {
        use OperatorVerb::*;
        let cases = [
            (
                BackfillPhase::AwaitingFreeze,
                false,
                vec![Freeze, Approve, Set, Abort],
            ),
            (
                BackfillPhase::AwaitingApproval,
                false,
                vec![Approve, Set, Abort],
            ),
            (BackfillPhase::Executing, false, vec![Pause, Set, Abort]),
            (BackfillPhase::Executing, true, vec![Resume, Set, Abort]),
            (BackfillPhase::Validating, false, vec![]),
            (BackfillPhase::RolledBackFrozen, false, vec![Unfreeze]),
        ];
        for (phase, paused, verbs) in cases {
            assert_eq!(verbs_in(phase, paused), verbs, "{phase} paused={paused}");
        }
        // Each verb offered passes the validator's phase rule, and every
        // verb the phase rule refuses is not offered.
        for phase in BackfillPhase::ALL {
            let mut w = BackfillRollout {
                stage: BackfillStage::Running(*phase),
                ..Default::default()
            };
            w.plan.name = "x".into();
            w.plan.approvals = vec!["storage".into()];
            let offered = verbs_in(*phase, false);
            for verb in [Freeze, Unfreeze, Approve, Pause, Abort, Set] {
                let req = OperatorRequest {
                    operator: "ana".into(),
                    reason: "r".into(),
                    group: "storage".into(),
                    batch_size: 5,
                    ..Default::default()
                };
                let accepted = w.check(verb, &req, None).is_ok();
                assert_eq!(
                    offered.contains(&verb),
                    accepted,
                    "{verb} in {phase}: offered {offered:?}, validator {:?}",
                    w.check(verb, &req, None)
                );
            }
        }
    }

    fn wf(phase: BackfillPhase, required: &[&str]) -> BackfillRollout {
        BackfillRollout {
            stage: BackfillStage::Running(phase),
            plan: BackfillPlan {
                name: "x".into(),
                approvals: required.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn req(group: &str) -> OperatorRequest {
        OperatorRequest {
            operator: "ana".into(),
            reason: "ok".into(),
            group: group.into(),
            ..Default::default()
        }
    }

    #[test]
    fn invalid_operator_requests_are_rejected_with_a_reason() {
        let w = wf(BackfillPhase::Executing, &["storage"]);
        let e = w
            .check(OperatorVerb::Approve, &req("storage"), None)
            .unwrap_err();
        assert!(e.contains("not allowed in phase `executing`"), "{e}");
        let e = w.check(OperatorVerb::Unfreeze, &req(""), None).unwrap_err();
        assert!(
            e.contains("`unfreeze` is not allowed in phase `executing`"),
            "{e}"
        );
        let e = w
            .check(
                OperatorVerb::Set,
                &OperatorRequest {
                    batch_size: 0,
                    ..req("")
                },
                None,
            )
            .unwrap_err();
        assert!(e.contains("nothing to set"), "{e}");
        let e = w
            .check(
                OperatorVerb::Pause,
                &OperatorRequest {
                    reason: " ".into(),
                    ..req("")
                },
                None,
            )
            .unwrap_err();
        assert!(e.contains("reason is required"), "{e}");
        let w = wf(BackfillPhase::AwaitingApproval, &["storage"]);
        let e = w
            .check(OperatorVerb::Approve, &req("marketing"), None)
            .unwrap_err();
        assert!(e.contains("not an approving group"), "{e}");
        assert!(
            w.check(OperatorVerb::Approve, &req("storage"), None)
                .is_ok()
        );
        assert!(
            w.check(OperatorVerb::Pause, &req(""), None)
                .unwrap_err()
                .contains("not allowed in phase `awaiting_approval`")
        );
        let mut w = wf(BackfillPhase::Executing, &[]);
        assert!(w.check(OperatorVerb::Pause, &req(""), None).is_ok());
        w.carry.paused = true;
        assert_eq!(
            w.check(OperatorVerb::Pause, &req(""), None).unwrap_err(),
            "already paused"
        );
        assert!(w.check(OperatorVerb::Resume, &req(""), None).is_ok());
        assert!(
            w.check(
                OperatorVerb::Set,
                &OperatorRequest {
                    batch_size: 2_000_000,
                    ..req("")
                },
                None
            )
            .unwrap_err()
            .contains("over the limit")
        );
    }

    #[test]
    fn start_is_not_an_update_and_settings_are_refused_once_settled_or_ended() {
        let w = wf(BackfillPhase::Executing, &[]);
        let e = w.check(OperatorVerb::Start, &req(""), None).unwrap_err();
        assert!(e.contains("not an operator update"), "{e}");
        let resize = OperatorRequest {
            batch_size: 5,
            ..req("")
        };
        assert!(w.check(OperatorVerb::Set, &resize, None).is_ok());
        let w = wf(BackfillPhase::Validating, &[]);
        assert!(
            w.check(OperatorVerb::Set, &resize, None)
                .unwrap_err()
                .contains("cannot change in phase `validating`")
        );
        let mut w = wf(BackfillPhase::DryRun, &[]);
        w.stage = BackfillStage::Ended(BackfillOutcome::DryRun);
        assert!(
            w.check(OperatorVerb::Set, &resize, None)
                .unwrap_err()
                .contains("cannot change in phase `dry_run`")
        );
    }

    #[test]
    fn approval_needs_every_group() {
        let mut w = wf(BackfillPhase::AwaitingApproval, &["a", "b"]);
        assert!(!w.approved());
        w.carry.approvals.push("a".into());
        assert!(!w.approved());
        w.carry.approvals.push("b".into());
        assert!(w.approved());
        assert!(wf(BackfillPhase::Frozen, &[]).approved());
    }
}
