//! What an operator can do, once: start a workflow, send it an operator
//! action, query it, read the state store, sign an action. The CLI and the
//! HTTP API are two faces over this layer; neither calls the other. A face
//! parses its input into the calls here and renders what they return.
//!
//! Errors cross the layer as [`Error`] variants built from the SDK's typed
//! errors, never from text: a face picks its HTTP status or exit code by
//! variant. The rules both faces used to write for themselves (a known
//! backfill or app, the `set` rule, operator text, times, who may act) are
//! here once.

pub mod alerts;
pub mod audit;
pub mod backfill;
pub mod drills;
mod error;
pub mod findings;
pub mod forge;
pub mod health;
pub mod history;
pub mod inbox;
pub mod locks;
pub mod overview;
pub mod progress;
pub mod schedules;
pub mod shared;
pub mod sign;
pub mod sweep;
pub mod tasks;
pub mod time;
pub mod upgrade;
pub mod workers;
mod workflow;

use std::sync::Arc;

use steward_activities::Store;
use steward_activities::roster::Target;
use steward_proto::limits;
use temporalio_client::Client;
use tokio::sync::OnceCell;

pub use error::{Error, Result};
pub use workflow::Started;

use crate::config::Loaded;
use sign::Signer;

/// The operations of one config: its Temporal client and state store,
/// connected on first use, and the API's signing key when it has one.
#[derive(Debug)]
pub struct Ops {
    loaded: Arc<Loaded>,
    client: OnceCell<Client>,
    store: OnceCell<Store>,
    signer: Option<Signer>,
}

impl Ops {
    /// The operations of `loaded`, connecting when first needed.
    pub fn new(loaded: impl Into<Arc<Loaded>>) -> Self {
        Self {
            loaded: loaded.into(),
            client: OnceCell::new(),
            store: OnceCell::new(),
            signer: None,
        }
    }

    /// The same over an existing Temporal client.
    pub fn with_client(self, client: Client) -> Self {
        Self {
            client: OnceCell::new_with(Some(client)),
            ..self
        }
    }

    /// The same over an existing state store.
    pub fn with_store(self, store: Store) -> Self {
        Self {
            store: OnceCell::new_with(Some(store)),
            ..self
        }
    }

    /// The same, signing the actions of operators with a credential.
    pub fn with_signer(self, signer: Option<Signer>) -> Self {
        Self { signer, ..self }
    }

    /// The config.
    pub fn loaded(&self) -> &Loaded {
        &self.loaded
    }

    /// The Temporal client: the standard client config, or the server
    /// `steward dev` runs for this config when nothing else says where.
    pub async fn client(&self) -> Result<&Client> {
        self.client
            .get_or_try_init(|| async {
                crate::connect::for_data_dir(&self.loaded.config.data_dir)
                    .await
                    .map_err(|e| Error::upstream("connecting to Temporal", e))
            })
            .await
    }

    /// The state store.
    pub async fn store(&self) -> Result<&Store> {
        self.store
            .get_or_try_init(|| async {
                Store::connect(&self.loaded.database_url())
                    .await
                    .map_err(Error::store("connecting to the state store"))
            })
            .await
    }

    /// The signer for `actor`'s actions: the API's key, for an operator
    /// whose credential it verified.
    fn signer_for(&self, actor: &Actor) -> Option<&Signer> {
        self.signer
            .as_ref()
            .filter(|_| !actor.credential_id.is_empty())
    }

    /// Refuses `actor` unless `[[permissions]]` lets them take `verb` on
    /// `target`; `default` is what the target grants without rules (a
    /// backfill's approving groups, an app's approval group).
    pub fn permit(
        &self,
        actor: &Actor,
        target: Target<'_>,
        verb: &str,
        default: &[String],
    ) -> Result<()> {
        let roster = crate::serve::roster(&self.loaded);
        if roster.operators.is_empty() || actor.process {
            return Ok(());
        }
        // The identity provider vouched for this person and their groups:
        // they need not be declared.
        let vouched = steward_proto::signing::idp_groups(&actor.credential_id).is_some();
        if !vouched && !roster.operators.iter().any(|o| o.name == actor.name) {
            return Err(Error::Forbidden(format!(
                "`{}` is not a declared operator (`[[operators]]`): operators are declared, so \
                 only they act (give `--by` your operator name)",
                actor.name
            )));
        }
        if roster.permits(&actor.groups, target, verb, default) {
            return Ok(());
        }
        let groups = roster.groups(target, verb, default);
        Err(Error::Forbidden(format!(
            "`{}` may not `{verb}` {}: {} may (their groups: {}); see `[[permissions]]`",
            actor.name,
            shown(target),
            if groups.is_empty() {
                "no group".to_string()
            } else {
                format!("members of {}", groups.join(", "))
            },
            if actor.groups.is_empty() {
                "none".to_string()
            } else {
                actor.groups.join(", ")
            }
        )))
    }

    /// The `[[backfills]]` entry `name`.
    pub fn backfill_spec(&self, name: &str) -> Result<&steward_activities::backfill::BackfillSpec> {
        let backfills = &self.loaded.config.backfills;
        backfills.iter().find(|b| b.name == name).ok_or_else(|| {
            Error::NotFound(unknown(
                "backfill",
                name,
                backfills.iter().map(|b| b.name.as_str()),
            ))
        })
    }

    /// The `[[apps]]` entry `name`.
    pub fn app_spec(&self, name: &str) -> Result<&steward_activities::upgrade::AppSpec> {
        let apps = &self.loaded.config.apps;
        apps.iter().find(|a| a.name == name).ok_or_else(|| {
            Error::NotFound(unknown("app", name, apps.iter().map(|a| a.name.as_str())))
        })
    }
}

/// A target as an operator reads it.
fn shown(target: Target<'_>) -> String {
    match target {
        Target::Backfill(n) => format!("backfill `{n}`"),
        Target::App(n) => format!("app `{n}`"),
        Target::Schedule(n) => format!("schedule `{n}`"),
        Target::Drill(n) => format!("drill `{n}`"),
        Target::Sweep => "sweeps".into(),
        Target::ColdSweep => "the cold sweep".into(),
        Target::RestoreDrill => "the restore drill".into(),
        Target::Task => "tasks".into(),
        Target::Lock => "leases".into(),
        Target::Alert => "alerts".into(),
        Target::Shared => "the shared services' resources".into(),
    }
}

/// "no backfill named `x` in the config (configured: a, b)".
fn unknown<'a>(what: &str, name: &str, names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.collect();
    format!(
        "no {what} named `{name}` in the config (configured: {})",
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    )
}

/// Who acts: a name, the groups the config gives it, and the credential
/// the API verified (empty for a name typed on the command line).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Actor {
    /// The name every action is recorded under.
    pub name: String,
    /// Their groups.
    pub groups: Vec<String>,
    /// The credential's id; empty for a typed name.
    pub credential_id: String,
    /// steward itself (`steward dev`'s first sweep), not an operator: no
    /// permission applies.
    #[serde(skip)]
    #[schema(ignore)]
    pub process: bool,
}

impl Actor {
    /// A name typed on the command line, with the groups `loaded` declares
    /// for it (none when it is not a declared operator).
    pub fn typed(loaded: &Loaded, name: &str) -> Self {
        Self {
            name: name.to_string(),
            groups: loaded
                .config
                .operators
                .iter()
                .find(|o| o.name == name)
                .map(|o| o.groups.clone())
                .unwrap_or_default(),
            credential_id: String::new(),
            process: false,
        }
    }

    /// steward itself acting (`name` says which part), not an operator.
    pub fn process(name: &str) -> Self {
        Self {
            name: name.to_string(),
            groups: Vec::new(),
            credential_id: String::new(),
            process: true,
        }
    }
}

/// Refuses an operator's name or reason (empty, too long, control
/// characters); `what` names the reason as the face asks for it.
pub fn operator_text(name: &str, reason: &str, what: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(Error::BadRequest("an operator name is required".into()));
    }
    if reason.trim().is_empty() {
        return Err(Error::BadRequest(format!("{what} must not be empty")));
    }
    for (field, text) in [("operator name", name), (what, reason)] {
        if let Some(refusal) = limits::operator_text(field, text) {
            return Err(Error::BadRequest(refusal));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_text_is_checked_once_for_every_face() {
        assert!(operator_text("ana", "ok", "reason").is_ok());
        for (name, reason, says) in [
            ("ana", " ", "reason must not be empty"),
            ("", "ok", "operator name is required"),
            ("ana", "ok\u{1b}[31m", "control character"),
        ] {
            let e = operator_text(name, reason, "reason").unwrap_err();
            assert!(matches!(e, Error::BadRequest(_)), "{e:?}");
            assert!(e.to_string().contains(says), "{e}");
        }
    }
}
