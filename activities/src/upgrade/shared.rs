//! `[[shared]]` services: a dependency many apps' cold runs and trials use
//! at once (one Keycloak kept warm for every CI run), each run on a
//! resource of its own (a realm) that steward makes before the run's first
//! step and deletes on every ending. Every resource steward makes is
//! recorded first (`steward_shared_resources`), so the reaper deletes only
//! what steward made, once its run has closed or is unknown, and never a
//! resource made by hand.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use steward_proto::v1::SharedReaped;

use super::health;
use super::spec::Health;
use crate::command::Command;
use crate::store::Store;
use crate::store::locks::HolderRuns;

/// One `[[shared]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedSpec {
    /// Name, `[a-z0-9-]`; apps name it in `uses`, their commands in
    /// `{shared.<name>}`.
    pub name: String,
    /// Makes a run's resource (argv; `{resource}` is its name).
    pub create: Vec<String>,
    /// Deletes a run's resource (argv; `{resource}`).
    pub delete: Vec<String>,
    /// Lists the service's resources, one name per line (argv).
    pub list: Vec<String>,
    /// The service's health, checked before a run's resource is made.
    #[serde(default)]
    pub health: Option<Health>,
    /// The `[[apps]]` entry that keeps the service itself warm (upgraded,
    /// health-gated, snapshotted and rolled back like any app): runs that
    /// use the service wait while it is being upgraded.
    #[serde(default)]
    pub app: Option<String>,
    /// A run's resource name: `{app}` and `{run}` (the run id's first 8
    /// characters), e.g. `realm-{app}-{run}`.
    #[serde(default = "default_resource")]
    pub resource: String,
    /// How old a resource of a closed or unknown run must be before the
    /// reaper deletes it, e.g. "10m".
    #[serde(default = "default_reap_after")]
    pub reap_after: String,
    /// How long a run waits while the service is being upgraded, e.g. "30m".
    #[serde(default = "default_wait")]
    pub wait: String,
    /// Timeout of the create, delete and list commands, in seconds.
    #[serde(default = "default_timeout")]
    pub command_timeout_seconds: u64,
}

fn default_resource() -> String {
    "steward-{app}-{run}".into()
}
fn default_reap_after() -> String {
    "10m".into()
}
fn default_wait() -> String {
    "30m".into()
}
fn default_timeout() -> u64 {
    60
}

/// The placeholder of service `name` in an app's commands.
pub fn placeholder(name: &str) -> String {
    format!("{{shared.{name}}}")
}

impl SharedSpec {
    /// Checks values that parse but are invalid; returns (key, message).
    pub fn check(&self) -> Result<(), (String, String)> {
        let e = |k: &str, m: &str| Err((k.to_string(), m.to_string()));
        for (key, argv) in [
            ("create", &self.create),
            ("delete", &self.delete),
            ("list", &self.list),
        ] {
            if argv.first().is_none_or(|p| p.trim().is_empty()) {
                return e(key, "must be a non-empty argv list");
            }
        }
        for (key, argv) in [("create", &self.create), ("delete", &self.delete)] {
            if !argv.iter().any(|a| a.contains("{resource}")) {
                return e(key, "must pass `{resource}`, the run's resource name");
            }
        }
        if !self.resource.contains("{run}") {
            return e(
                "resource",
                "must contain `{run}`: two runs of one app must never share a resource",
            );
        }
        if self.resource.chars().any(|c| c.is_whitespace() || c == '/') {
            return e("resource", "must not contain spaces or `/`");
        }
        for (key, value) in [("reap_after", &self.reap_after), ("wait", &self.wait)] {
            if let Err(m) = crate::duration::parse(value) {
                return Err((key.into(), m));
            }
        }
        Ok(())
    }

    /// The resource of `app`'s run `run_id` on this service.
    pub fn resource_of(&self, app: &str, run_id: &str) -> String {
        let short: String = run_id.chars().filter(|c| *c != '-').take(8).collect();
        self.resource.replace("{app}", app).replace("{run}", &short)
    }

    /// How long a dependent run waits while the service is upgraded.
    pub fn wait_seconds(&self) -> u64 {
        crate::duration::parse(&self.wait).unwrap_or(1800)
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.command_timeout_seconds)
    }

    fn argv(&self, argv: &[String], resource: &str) -> Vec<String> {
        argv.iter()
            .map(|a| a.replace("{resource}", resource))
            .collect()
    }

    /// The resources the service lists now.
    pub async fn listed(&self) -> Result<Vec<String>, String> {
        let out = Command::new(self.list.iter().cloned())
            .timeout(self.timeout())
            .run()
            .await
            .map_err(|e| format!("listing the resources of `{}`: {e}", self.name))?;
        Ok(String::from_utf8_lossy(&out)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect())
    }

    /// The run of the service's own app that holds its upgrade lease now,
    /// when it is being upgraded.
    pub async fn upgraded_by(&self, store: &Store, now_ms: i64) -> Result<Option<String>, String> {
        let Some(app) = &self.app else {
            return Ok(None);
        };
        let held = store
            .lock_holder(&steward_proto::ids::upgrade_lock(app))
            .await
            .map_err(|e| format!("reading the lease of `{app}`'s upgrades: {e}"))?;
        Ok(held
            .filter(|(_, expires)| *expires > now_ms)
            .map(|(holder, _)| holder))
    }

    /// Makes `resource` for `app`'s run `run_id`: health first, recorded
    /// before the create command runs, nothing run again when the service
    /// already lists it (a retried step).
    pub async fn make(
        &self,
        store: &Store,
        app: &str,
        run_id: &str,
        now_ms: i64,
    ) -> Result<String, String> {
        let resource = self.resource_of(app, run_id);
        if let Some(h) = &self.health {
            health::gate(h).await.map_err(|u| {
                format!("shared service `{}` is unhealthy: {}", self.name, u.message)
            })?;
        }
        store
            .record_shared(&self.name, &resource, app, run_id, now_ms)
            .await
            .map_err(|e| format!("recording {resource} on `{}`: {e}", self.name))?;
        if self.listed().await?.contains(&resource) {
            return Ok(resource);
        }
        Command::new(self.argv(&self.create, &resource))
            .timeout(self.timeout())
            .run()
            .await
            .map_err(|e| format!("making {resource} on `{}`: {e}", self.name))?;
        Ok(resource)
    }

    /// Deletes `resource` if steward made it and it is still there, and
    /// records how it ended (`ended`); whether there was anything to
    /// delete.
    pub async fn remove(
        &self,
        store: &Store,
        resource: &str,
        ended: &str,
        now_ms: i64,
    ) -> Result<bool, String> {
        let made = store
            .shared_resource(&self.name, resource)
            .await
            .map_err(|e| format!("reading the record of {resource}: {e}"))?;
        if made.is_none_or(|m| m.deleted_at_ms != 0) {
            return Ok(false);
        }
        let listed = self.listed().await?;
        let how = if listed.iter().any(|r| r == resource) {
            Command::new(self.argv(&self.delete, resource))
                .timeout(self.timeout())
                .run()
                .await
                .map_err(|e| format!("deleting {resource} on `{}`: {e}", self.name))?;
            ended
        } else {
            "gone"
        };
        store
            .shared_ended(&self.name, resource, how, now_ms)
            .await
            .map_err(|e| format!("recording the deletion of {resource}: {e}"))?;
        Ok(how == ended)
    }

    /// One pass of the reaper over this service: every resource it lists
    /// that steward made for a run that has closed (or that Temporal does
    /// not know), older than `reap_after`, is deleted; a resource steward
    /// did not make is never touched; a recorded one no longer listed is
    /// marked gone.
    pub async fn reap(
        &self,
        store: &Store,
        runs: &dyn HolderRuns,
        now_ms: i64,
    ) -> Result<Vec<SharedReaped>, String> {
        let grace = crate::duration::parse(&self.reap_after)
            .map_err(|m| format!("`{}`: reap_after: {m}", self.name))?;
        let listed = self.listed().await?;
        let made = store
            .shared_live(&self.name)
            .await
            .map_err(|e| format!("reading what steward made on `{}`: {e}", self.name))?;
        let mut out = Vec::new();
        for m in made {
            if !listed.contains(&m.resource) {
                store
                    .shared_ended(&self.name, &m.resource, "gone", now_ms)
                    .await
                    .map_err(|e| format!("recording {} gone: {e}", m.resource))?;
                continue;
            }
            let run = match runs.closed(&m.run_id).await {
                Some(true) => "closed",
                Some(false) => continue,
                None => "unknown",
            };
            let age_ms = now_ms - m.created_at_ms;
            if age_ms < i64::try_from(grace.saturating_mul(1000)).unwrap_or(i64::MAX) {
                continue;
            }
            let deleted = self.remove(store, &m.resource, "reaped", now_ms).await?;
            if deleted {
                out.push(SharedReaped {
                    service: self.name.clone(),
                    resource: m.resource,
                    app: m.app,
                    run_id: m.run_id,
                    run: run.into(),
                    age_seconds: age_ms / 1000,
                });
            }
        }
        Ok(out)
    }
}

/// `argv` with each `{shared.<service>}` of `resources` (service,
/// resource) replaced; an error naming the first placeholder left (a
/// service the run made no resource on).
pub fn fill(argv: Vec<String>, resources: &[(String, String)]) -> Result<Vec<String>, String> {
    argv.into_iter()
        .map(|a| {
            let filled = resources.iter().fold(a, |a, (service, resource)| {
                a.replace(&placeholder(service), resource)
            });
            match filled.find("{shared.") {
                Some(at) => {
                    let name: String = filled[at..].chars().take_while(|c| *c != '}').collect();
                    Err(format!(
                        "`{name}}}` names a per-run resource, made only for a cold run or a \
                         trial of an app that `uses` that service"
                    ))
                }
                None => Ok(filled),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SharedSpec {
        serde_json::from_value(serde_json::json!({
            "name": "keycloak",
            "create": ["kc", "create", "{resource}"],
            "delete": ["kc", "delete", "{resource}"],
            "list": ["kc", "list"],
            "resource": "realm-{app}-{run}",
        }))
        .unwrap()
    }

    #[test]
    fn a_runs_resource_is_named_from_its_app_and_run() {
        let s = spec();
        assert_eq!(
            s.resource_of("wiki", "0193a4b2-7c1d-7e00-9a00-aaaaaaaaaaaa"),
            "realm-wiki-0193a4b2"
        );
        assert!(s.check().is_ok());
    }

    #[test]
    fn a_resource_name_without_the_run_is_refused() {
        let mut s = spec();
        s.resource = "realm-{app}".into();
        assert_eq!(s.check().unwrap_err().0, "resource");
        let mut s = spec();
        s.create = vec!["kc".into(), "create".into()];
        assert_eq!(s.check().unwrap_err().0, "create");
    }

    #[test]
    fn placeholders_are_filled_and_a_missing_one_is_named() {
        let r = vec![("keycloak".to_string(), "realm-a-1".to_string())];
        assert_eq!(
            fill(vec!["--realm={shared.keycloak}".into()], &r).unwrap(),
            vec!["--realm=realm-a-1"]
        );
        let e = fill(vec!["{shared.ldap}".into()], &r).unwrap_err();
        assert!(e.contains("`{shared.ldap}`"), "{e}");
    }
}
