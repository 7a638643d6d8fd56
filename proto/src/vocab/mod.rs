//! The closed sets of words steward's payloads use: phases, outcomes,
//! steps, operator actions, severities, statuses, schedule kinds and check
//! codes, each a Rust enum with the spelling the history has always shown.
//!
//! Payload fields stay strings, so a history reads as plain JSON in the
//! Temporal UI and histories recorded before these enums existed still
//! replay; code on both sides converts at the edge with [`as_str`] and
//! [`FromStr`], and matches exhaustively in between. Each vocabulary keeps
//! one case convention (snake_case phases, kebab-case upgrade outcomes and
//! schedule kinds), as the history has always spelt them.
//!
//! [`as_str`]: Severity::as_str
//! [`FromStr`]: std::str::FromStr

mod backfill;
mod failover;
mod restore;
mod sweep;
mod upgrade;

pub use backfill::{BackfillOutcome, BackfillPhase, BackfillStage, OperatorVerb, SpecAction};
pub use failover::{FailoverOutcome, FailoverPhase, FailoverStage, probe_line};
pub use restore::{DrillOutcome, DrillPhase, StoreBackend};
pub use sweep::{ChangeState, CheckCode, RepoStatus, SweepPhase};
pub use upgrade::{
    Advance, Hold, OnUnhealthy, UpgradeMode, UpgradeOutcome, UpgradePhase, UpgradeStage,
    UpgradeStepKind,
};

/// A word that is not in a vocabulary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownWord {
    /// What the vocabulary is, e.g. "schedule kind".
    pub vocabulary: &'static str,
    /// The word given.
    pub word: String,
    /// Every word the vocabulary has.
    pub expected: &'static [&'static str],
}

impl std::fmt::Display for UnknownWord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` is not a {} (expected one of: {})",
            self.word,
            self.vocabulary,
            self.expected.join(", ")
        )
    }
}

impl std::error::Error for UnknownWord {}

/// Declares a vocabulary: an enum whose variants each have one spelling,
/// with `as_str`, `WORDS`, `ALL`, `FromStr`, `Display` and serde as that
/// spelling.
macro_rules! vocabulary {
    (
        $(#[$doc:meta])*
        $vis:vis enum $name:ident ($what:literal) {
            $( $(#[$vdoc:meta])* $variant:ident = $word:literal, )+
        }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        $vis enum $name {
            $( $(#[$vdoc])* $variant, )+
        }

        impl $name {
            /// Every member, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant,)+];
            /// Every spelling, in declaration order.
            pub const WORDS: &'static [&'static str] = &[$($word,)+];

            /// The spelling recorded in payloads and shown to people.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $word,)+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::vocab::UnknownWord;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($word => Ok(Self::$variant),)+
                    _ => Err($crate::vocab::UnknownWord {
                        vocabulary: $what,
                        word: s.to_string(),
                        expected: Self::WORDS,
                    }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.as_str().to_string()
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                self.as_str() == other.as_str()
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let word = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                word.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use vocabulary;

/// Declares a workflow's stage: a phase of `$phase` while it runs, an
/// outcome of `$outcome` once it ended, spelt as the one or the other.
macro_rules! stage {
    ($(#[$doc:meta])* $vis:vis enum $name:ident ($phase:ident, $outcome:ident, first $first:ident)) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        $vis enum $name {
            /// Still running.
            Running($phase),
            /// Finished.
            Ended($outcome),
        }

        impl Default for $name {
            fn default() -> Self {
                Self::Running($phase::$first)
            }
        }

        impl $name {
            /// The phase's or the outcome's spelling.
            pub const fn as_str(self) -> &'static str {
                match self {
                    Self::Running(p) => p.as_str(),
                    Self::Ended(o) => o.as_str(),
                }
            }

            /// Whether the run has ended.
            pub const fn ended(self) -> bool {
                matches!(self, Self::Ended(_))
            }

            /// The outcome, once ended.
            pub const fn outcome(self) -> Option<$outcome> {
                match self {
                    Self::Running(_) => None,
                    Self::Ended(o) => Some(o),
                }
            }

            /// Whether the run is running in `phase`.
            pub fn is(self, phase: $phase) -> bool {
                self == Self::Running(phase)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use stage;

vocabulary! {
    /// How urgent an alert is.
    pub enum Severity ("severity") {
        /// Something happened that an operator may want to know.
        Info = "info",
        /// Something needs a look, nothing is broken.
        Warning = "warning",
        /// Something is broken or was not recovered.
        Critical = "critical",
    }
}

vocabulary! {
    /// What a `[[schedules]]` entry starts.
    pub enum ScheduleKind ("schedule kind") {
        /// A `ConsistencySweep`.
        Sweep = "sweep",
        /// A `WarmUpgrade` of one app.
        Upgrade = "upgrade",
        /// A `RestoreDrill` of the state store.
        RestoreDrill = "restore-drill",
        /// A `ColdSweep`: the cold run of every app with a cold setup.
        ColdSweep = "cold-sweep",
        /// A `SharedReap`: the reaper's pass over the shared services.
        SharedReap = "shared-reap",
        /// A `FailoverDrill` of one `[[drills]]` entry.
        FailoverDrill = "failover-drill",
    }
}

vocabulary! {
    /// What a run places its pinned steps by (`steward.place`).
    pub enum PlacementKind ("placement kind") {
        /// An `[[apps]]` entry: every step that touches the app or its
        /// volume.
        App = "app",
        /// A `[[drills]]` entry: the trigger and the recovery.
        Drill = "drill",
        /// `[restore]`: the backup and its off-node copy.
        Restore = "restore",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every vocabulary round-trips through its spelling, in JSON too, and
    /// an unknown word names the vocabulary and what it expected.
    fn round_trips<T>(all: &[T], words: &[&str])
    where
        T: Copy
            + std::fmt::Debug
            + PartialEq
            + std::str::FromStr<Err = UnknownWord>
            + std::fmt::Display
            + serde::Serialize
            + serde::de::DeserializeOwned,
    {
        assert_eq!(all.len(), words.len());
        let mut seen = std::collections::BTreeSet::new();
        for (v, w) in all.iter().zip(words) {
            assert!(seen.insert(*w), "{w} is spelt twice");
            assert_eq!(v.to_string(), *w);
            assert_eq!(w.parse::<T>().unwrap(), *v);
            let json = serde_json::to_string(v).unwrap();
            assert_eq!(json, format!("\"{w}\""));
            assert_eq!(serde_json::from_str::<T>(&json).unwrap(), *v);
        }
        let e = "no-such-word".parse::<T>().unwrap_err();
        assert!(e.to_string().contains(words[0]), "{e}");
        assert!(serde_json::from_str::<T>("\"no-such-word\"").is_err());
    }

    #[test]
    fn every_vocabulary_round_trips_through_its_spelling() {
        round_trips(Severity::ALL, Severity::WORDS);
        round_trips(ScheduleKind::ALL, ScheduleKind::WORDS);
        round_trips(FailoverPhase::ALL, FailoverPhase::WORDS);
        round_trips(FailoverOutcome::ALL, FailoverOutcome::WORDS);
        round_trips(BackfillPhase::ALL, BackfillPhase::WORDS);
        round_trips(BackfillOutcome::ALL, BackfillOutcome::WORDS);
        round_trips(OperatorVerb::ALL, OperatorVerb::WORDS);
        round_trips(SpecAction::ALL, SpecAction::WORDS);
        round_trips(UpgradePhase::ALL, UpgradePhase::WORDS);
        round_trips(UpgradeOutcome::ALL, UpgradeOutcome::WORDS);
        round_trips(UpgradeMode::ALL, UpgradeMode::WORDS);
        round_trips(UpgradeStepKind::ALL, UpgradeStepKind::WORDS);
        round_trips(Hold::ALL, Hold::WORDS);
        round_trips(RepoStatus::ALL, RepoStatus::WORDS);
        round_trips(SweepPhase::ALL, SweepPhase::WORDS);
        round_trips(ChangeState::ALL, ChangeState::WORDS);
        round_trips(CheckCode::ALL, CheckCode::WORDS);
        round_trips(DrillOutcome::ALL, DrillOutcome::WORDS);
        round_trips(DrillPhase::ALL, DrillPhase::WORDS);
        round_trips(StoreBackend::ALL, StoreBackend::WORDS);
    }

    #[test]
    fn a_dry_run_phase_and_a_dry_run_outcome_read_alike_but_only_one_has_ended() {
        let running = BackfillStage::Running(BackfillPhase::DryRun);
        let ended = BackfillStage::Ended(BackfillOutcome::DryRun);
        assert_eq!(running.as_str(), ended.as_str());
        assert!(!running.ended());
        assert!(ended.ended());
        assert_eq!(ended.outcome(), Some(BackfillOutcome::DryRun));
        assert!(running.is(BackfillPhase::DryRun) && !ended.is(BackfillPhase::DryRun));
        let held = UpgradeStage::Running(UpgradePhase::Held);
        assert!(!held.ended());
        assert_eq!(
            UpgradeStage::Ended(UpgradeOutcome::held(Hold::Major)).as_str(),
            "held-major"
        );
    }

    #[test]
    fn each_failed_or_held_upgrade_exits_with_a_code_of_its_own() {
        let mut seen = std::collections::BTreeMap::new();
        for o in UpgradeOutcome::ALL {
            let code = o.exit_code();
            if code == 0 || *o == UpgradeOutcome::Refused {
                continue;
            }
            assert!(code >= 10, "{o}: {code} is one of every command's codes");
            assert_eq!(seen.insert(code, *o), None, "{o} shares {code}");
        }
        // The documented table (docs/UPGRADE.md): scripts rely on it.
        assert_eq!(UpgradeOutcome::RolledBack.exit_code(), 10);
        assert_eq!(UpgradeOutcome::TrialFailed.exit_code(), 14);
        assert_eq!(UpgradeOutcome::ColdFailed.exit_code(), 15);
        assert_eq!(UpgradeOutcome::HeldMajor.exit_code(), 20);
        assert_eq!(UpgradeOutcome::Upgraded.exit_code(), 0);
    }

    #[test]
    fn an_unknown_word_names_the_vocabulary_and_its_words() {
        let e = "reboot".parse::<ScheduleKind>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "`reboot` is not a schedule kind (expected one of: sweep, upgrade, restore-drill, cold-sweep, shared-reap, failover-drill)"
        );
    }
}
