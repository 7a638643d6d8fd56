//! Who may start an upgrade and who may approve a held one: the start's
//! signature and its nonce, the starter's permission, the approval's
//! signature, membership and separation of duties (the rules themselves
//! are `crate::operator`).

use steward_proto::activities::ClaimStart;
use steward_proto::v1::StartClaim;

use super::*;
use crate::operator::{Seal, Starter};

impl WarmUpgrade {
    /// Whether an approval arriving at `now` is valid; the reason when not.
    pub fn check_approve(
        &self,
        req: &ApproveRequest,
        now: Option<SystemTime>,
    ) -> Result<(), String> {
        operator::text(&req.operator, &req.reason)?;
        if self.stage != UpgradeStage::Running(UpgradePhase::Held) {
            return Err(format!(
                "nothing to approve: the upgrade is in phase `{}`",
                self.stage
            ));
        }
        if req.version != self.plan.target {
            return Err(format!(
                "the held upgrade is to {}, not {}; an approval is for that exact version",
                self.plan.target, req.version
            ));
        }
        let detail = signing::approve_detail(req);
        let action = signing::Action::of(
            &self.workflow_id,
            &self.chain,
            OperatorVerb::Approve.as_str(),
            req,
            &detail,
        );
        let seal = Seal {
            key: &self.plan.verify_key,
            require_verified: self.plan.require_verified,
            operators: &self.plan.operators,
            seen: &self.signatures,
        };
        let verified = operator::admit(&seal, &action, &req.signature, now)
            .map_err(|refused| refused.explain("approve", "upgrade"))?;
        let roster = operator::roster_for(
            &self.plan.operators,
            &req.operator,
            &req.credential_id,
            verified,
        );
        operator::may_approve(
            &roster,
            &self.plan.approval_group,
            &self.starter(),
            &req.operator,
            verified,
            "upgrade",
        )
    }

    /// Who started the upgrade, as far as it can tell.
    pub(super) fn starter(&self) -> Starter {
        Starter::of(&self.input.operator, self.start_verified, self.scheduled)
    }

    /// Judges the start: a signature must be the API's, bound to a nonce no
    /// other run used, and fresh when the server started the run; a person
    /// who starts it must be allowed to. Sets `start_verified`; the refusal
    /// ends the run before anything is touched.
    pub(super) async fn judge_start(
        ctx: &mut WorkflowContext<Self>,
    ) -> WorkflowResult<Option<String>> {
        let (input, plan, workflow_id, started) = ctx.state(|s| {
            (
                s.input.clone(),
                s.plan.clone(),
                s.workflow_id.clone(),
                s.started,
            )
        });
        if !input.signature.is_empty() {
            let detail = signing::upgrade_start_detail(&input);
            let action = signing::Action::of(
                &workflow_id,
                &input.nonce,
                OperatorVerb::Start.as_str(),
                &input,
                &detail,
            );
            if let Err(refused) =
                operator::admit_start(&plan.verify_key, &action, &input.signature, started)
            {
                return Ok(Some(refused.explain("start", "upgrade")));
            }
            let claim = ctx
                .execute_activity(
                    ClaimStart,
                    StartClaim {
                        nonce: input.nonce.clone(),
                        workflow_id,
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
            ctx.state_mut(|s| s.start_verified = true);
        }
        let (starter, child) = ctx.state(|s| (s.starter(), s.child));
        if starter == Starter::Schedule || child {
            return Ok(None);
        }
        let verified = ctx.state(|s| s.start_verified);
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
            &format!("upgrades of `{}`", plan.app),
        )
        .err())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_rfc3339;
    use steward_proto::v1::OperatorGroups;

    const SIGNED_AT: &str = "2026-12-02T10:00:00Z";

    fn now() -> Option<SystemTime> {
        parse_rfc3339("2026-12-02T10:00:30Z")
    }

    /// A held upgrade of `kc` to 10.8.0 that ana started (through the API
    /// when `verified`), approved by group `release`, with ana and bob in
    /// it and dan outside.
    fn held_by_ana(require_verified: bool, verify_key: &str, verified: bool) -> WarmUpgrade {
        let mut w = WarmUpgrade {
            stage: UpgradeStage::Running(UpgradePhase::Held),
            workflow_id: "warm-upgrade-kc".into(),
            chain: "run-1".into(),
            start_verified: verified,
            bound: true,
            ..Default::default()
        };
        w.input.operator = "ana".into();
        w.plan.app = "kc".into();
        w.plan.target = "10.8.0".into();
        w.plan.approval_group = "release".into();
        w.plan.require_verified = require_verified;
        w.plan.verify_key = verify_key.into();
        w.plan.operators = [("ana", "release"), ("bob", "release"), ("dan", "storage")]
            .into_iter()
            .map(|(name, group)| OperatorGroups {
                name: name.into(),
                groups: vec![group.into()],
                expires: String::new(),
            })
            .collect();
        w
    }

    fn approval(operator: &str) -> ApproveRequest {
        ApproveRequest {
            version: "10.8.0".into(),
            operator: operator.into(),
            reason: "notes read".into(),
            credential_id: format!("{operator}-token"),
            ..Default::default()
        }
    }

    /// Signs `req` for `w`'s run as the API would, with `key`.
    fn sign(w: &WarmUpgrade, key: &ed25519_dalek::SigningKey, req: &mut ApproveRequest) {
        req.signed_at = SIGNED_AT.into();
        let detail = signing::approve_detail(req);
        req.signature = operator::sign(
            key,
            &signing::Action::of(&w.workflow_id, &w.chain, "approve", &*req, &detail),
        );
    }

    #[test]
    fn the_approver_is_declared_in_the_group_and_not_the_starter() {
        let w = held_by_ana(false, "", false);
        for (who, says) in [
            ("ana", "started this upgrade"),
            ("dan", "not in group `release`"),
            ("zed", "not a declared operator"),
        ] {
            let refusal = w.check_approve(&approval(who), now()).unwrap_err();
            assert!(refusal.contains(says), "{who}: {refusal}");
        }
        assert_eq!(w.check_approve(&approval("bob"), now()), Ok(()));
    }

    #[test]
    fn require_verified_takes_only_what_this_deployments_api_signed_for_this_run() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let other = ed25519_dalek::SigningKey::from_bytes(&[8; 32]);
        let public = hex::encode(key.verifying_key().to_bytes());
        let w = held_by_ana(true, &public, true);
        let refusal = w.check_approve(&approval("bob"), now()).unwrap_err();
        assert!(refusal.contains("require_verified"), "{refusal}");
        let mut signed = approval("bob");
        sign(&w, &key, &mut signed);
        assert_eq!(w.check_approve(&signed, now()), Ok(()));
        let mut forged = approval("bob");
        sign(&w, &other, &mut forged);
        assert!(
            w.check_approve(&forged, now())
                .unwrap_err()
                .contains("does not verify")
        );
        let mut renamed = signed.clone();
        renamed.operator = "dan".into();
        assert!(
            w.check_approve(&renamed, now())
                .unwrap_err()
                .contains("does not verify"),
            "the signature covers the name"
        );
        let mut elsewhere = held_by_ana(true, &public, true);
        elsewhere.workflow_id = "warm-upgrade-other".into();
        assert!(
            elsewhere
                .check_approve(&signed, now())
                .unwrap_err()
                .contains("does not verify"),
            "a signature is for one workflow"
        );
        let mut held_again = held_by_ana(true, &public, true);
        held_again.chain = "run-2".into();
        assert!(
            held_again
                .check_approve(&signed, now())
                .unwrap_err()
                .contains("does not verify"),
            "a signature is for one run: the app held again for the same version"
        );
        let mut used = held_by_ana(true, &public, true);
        used.signatures.push(signed.signature.clone());
        assert!(
            used.check_approve(&signed, now())
                .unwrap_err()
                .contains("already used"),
            "a signature counts once"
        );
        assert!(
            w.check_approve(&signed, parse_rfc3339("2026-12-02T11:00:00Z"))
                .unwrap_err()
                .contains("signed 3600s ago"),
            "a stale signature"
        );
    }

    #[test]
    fn a_verified_approval_needs_a_verified_starter() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let public = hex::encode(key.verifying_key().to_bytes());
        // bob typed `--by carol` on the command line, then approves through
        // the API.
        let mut w = held_by_ana(false, &public, false);
        w.input.operator = "carol".into();
        let mut signed = approval("bob");
        sign(&w, &key, &mut signed);
        let refusal = w.check_approve(&signed, now()).unwrap_err();
        assert!(refusal.contains("typed name (`carol`)"), "{refusal}");
        w.scheduled = true;
        w.input.operator = "schedule".into();
        assert_eq!(
            w.check_approve(&signed, now()),
            Ok(()),
            "a schedule's run has no person to separate from"
        );
    }

    #[test]
    fn an_approval_is_for_the_held_version_only() {
        let mut w = WarmUpgrade {
            stage: UpgradeStage::Running(UpgradePhase::Held),
            ..Default::default()
        };
        w.plan.target = "10.8.0+26.6.2".into();
        let req = |v: &str| ApproveRequest {
            version: v.into(),
            operator: "ana".into(),
            reason: "read the notes".into(),
            ..Default::default()
        };
        assert!(w.check_approve(&req("10.8.0+26.6.2"), now()).is_ok());
        assert!(
            w.check_approve(&req("10.9.0+26.6.2"), now())
                .unwrap_err()
                .contains("exact version")
        );
        assert!(
            w.check_approve(
                &ApproveRequest {
                    reason: "".into(),
                    ..req("10.8.0+26.6.2")
                },
                now()
            )
            .is_err()
        );
        w.stage = UpgradeStage::Running(UpgradePhase::Deploying);
        assert!(
            w.check_approve(&req("10.8.0+26.6.2"), now())
                .unwrap_err()
                .contains("nothing to approve")
        );
    }
}
