//! The warm upgrade's activities and building blocks: release versions and
//! the safety gate (`versions`), the last-known-good snapshot with its
//! `last_good` record (`snapshot`), the app spec (`spec`), the health gate
//! (`health`), disk safety (`disk`), pruning (`prune`) and the nightly cold
//! sweep's plan (`cold_sweep`).

pub mod cold_sweep;
pub mod disk;
pub mod health;
pub mod prune;
pub mod shared;
pub mod snapshot;
pub mod spec;
pub mod versions;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::command::Command;
use crate::failure::{permanent, retryable};
use steward_proto::v1::{
    AppStep, ColdSkip, ColdSweepInput, ColdSweepPlan, ColdSweepResult, SharedReapInput,
    SharedReapResult, StepResult, UpgradeInput, UpgradePlan, UpgradeResult,
};
use steward_proto::vocab::{self, Advance, UpgradeStepKind};
use steward_proto::{limits, names};
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

pub use cold_sweep::ColdSweepSettings;
pub use shared::SharedSpec;
pub use spec::{AppSpec, Health};
use versions::{Hold, Version};

use crate::git::Repo;
use crate::store::Store;

/// The warm upgrade's activities.
#[derive(Debug)]
pub struct UpgradeActivities {
    apps: BTreeMap<String, AppSpec>,
    /// The apps in config order, as the cold sweep lists them.
    order: Vec<String>,
    cold_sweep: ColdSweepSettings,
    store: Store,
    metrics: crate::metrics::Metrics,
    roster: crate::roster::Roster,
    shared: BTreeMap<String, SharedSpec>,
    /// Temporal's answer to "has this run closed?", for the reaper.
    runs: Option<Arc<dyn crate::store::locks::HolderRuns>>,
    /// Where forge-started runs post their commit status.
    forge: Option<crate::forge::ForgeSettings>,
}

/// Runs a snapshot operation (file copies and hashes of whole volumes, which
/// can take minutes) on the blocking pool, so the runtime's threads keep
/// heartbeating this activity and serving the others meanwhile.
async fn off_the_runtime<T: Send + 'static>(
    op: impl FnOnce() -> Result<T, snapshot::Error> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(op).await {
        Ok(outcome) => outcome.map_err(|e| e.to_string()),
        Err(e) => Err(format!("the snapshot operation did not finish: {e}")),
    }
}

/// Runs `argv` once its placeholders were filled; the reason they could
/// not be, or as [`run_command`].
async fn run_filled(argv: Result<Vec<String>, String>, timeout: Duration) -> Result<(), String> {
    run_command(&argv?, timeout).await
}

/// Runs argv with a timeout; Ok on exit 0, else the reason.
pub async fn run_command(argv: &[String], timeout: Duration) -> Result<(), String> {
    Command::new(argv.iter().cloned())
        .timeout(timeout)
        .run()
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

impl UpgradeActivities {
    /// Activities over `apps`, recording progress events in `store`.
    pub fn new(apps: Vec<AppSpec>, store: Store) -> Self {
        Self {
            order: apps.iter().map(|a| a.name.clone()).collect(),
            apps: apps.into_iter().map(|a| (a.name.clone(), a)).collect(),
            cold_sweep: ColdSweepSettings::default(),
            store,
            metrics: Default::default(),
            roster: Default::default(),
            shared: BTreeMap::new(),
            runs: None,
            forge: None,
        }
    }

    /// The same activities, posting forge-started runs' statuses to `forge`.
    pub fn with_forge(mut self, forge: Option<crate::forge::ForgeSettings>) -> Self {
        self.forge = forge;
        self
    }

    /// The same activities, with the `[[shared]]` services.
    pub fn with_shared(mut self, shared: Vec<SharedSpec>) -> Self {
        self.shared = shared.into_iter().map(|s| (s.name.clone(), s)).collect();
        self
    }

    /// The same activities, asking `runs` whether a run has closed (the
    /// reaper).
    pub fn with_runs(mut self, runs: Arc<dyn crate::store::locks::HolderRuns>) -> Self {
        self.runs = Some(runs);
        self
    }

    fn service(&self, name: &str) -> Result<&SharedSpec, ActivityError> {
        self.shared
            .get(name)
            .ok_or_else(|| permanent(format!("no shared service named `{name}` in the config")))
    }

    /// The resources of `app`'s run `run_id` on the services it uses, as
    /// (service, resource).
    fn resources_of(
        &self,
        app: &AppSpec,
        run_id: &str,
    ) -> Result<Vec<(String, String)>, ActivityError> {
        app.uses
            .iter()
            .map(|name| {
                Ok((
                    name.clone(),
                    self.service(name)?.resource_of(&app.name, run_id),
                ))
            })
            .collect()
    }

    /// Makes the run's resource on each service the app uses; busy (wait
    /// and ask again) while one of them is being upgraded.
    async fn share(&self, app: &AppSpec, run_id: &str) -> Result<StepResult, ActivityError> {
        let now = crate::time::now_ms();
        let mut made = Vec::new();
        for name in &app.uses {
            let service = self.service(name)?;
            if let Some(holder) = service
                .upgraded_by(&self.store, now)
                .await
                .map_err(retryable)?
            {
                return Ok(StepResult {
                    busy: true,
                    message: format!(
                        "shared service `{name}` is being upgraded (run {holder}); waiting"
                    ),
                    ..Default::default()
                });
            }
            match service.make(&self.store, &app.name, run_id, now).await {
                Ok(resource) => made.push(format!("{resource} on {name}")),
                Err(message) => {
                    return Ok(StepResult {
                        message,
                        ..Default::default()
                    });
                }
            }
        }
        Ok(passed(format!("made {}", made.join(", "))))
    }

    /// Deletes the run's resources on the services the app uses.
    async fn unshare(&self, app: &AppSpec, run_id: &str) -> Result<StepResult, ActivityError> {
        let now = crate::time::now_ms();
        let (mut deleted, mut failed) = (Vec::new(), Vec::new());
        for (name, resource) in self.resources_of(app, run_id)? {
            match self
                .service(&name)?
                .remove(&self.store, &resource, "deleted", now)
                .await
            {
                Ok(true) => deleted.push(format!("{resource} on {name}")),
                Ok(false) => {}
                Err(e) => failed.push(e),
            }
        }
        Ok(if failed.is_empty() {
            passed(if deleted.is_empty() {
                "no per-run resource to delete".into()
            } else {
                format!("deleted {}", deleted.join(", "))
            })
        } else {
            StepResult {
                message: format!("{} (the reaper deletes it later)", failed.join("; ")),
                ..Default::default()
            }
        })
    }

    /// Records `r` as the progress event of run `run` of `workflow`;
    /// whether it is new (a retried record writes nothing).
    async fn record(
        &self,
        event_type: &str,
        source: &str,
        workflow: &str,
        run: &str,
        r: &(impl serde::Serialize + Sync),
    ) -> Result<bool, ActivityError> {
        self.store
            .record_run(event_type, source, workflow, run, r)
            .await
            .map_err(|e| retryable(e.to_string()))
    }

    /// One pass of the reaper over every shared service (or the one
    /// `only` names).
    pub async fn reap(&self, only: &str) -> Result<SharedReapResult, ActivityError> {
        let runs = self
            .runs
            .clone()
            .ok_or_else(|| permanent("this worker cannot ask Temporal about runs"))?;
        if !only.is_empty() {
            self.service(only)?;
        }
        let mut out = SharedReapResult::default();
        for service in self
            .shared
            .values()
            .filter(|s| only.is_empty() || s.name == only)
        {
            match service
                .reap(&self.store, runs.as_ref(), crate::time::now_ms())
                .await
            {
                Ok(reaped) => out.reaped.extend(reaped),
                Err(why) => out.failed.push(ColdSkip {
                    app: service.name.clone(),
                    why,
                }),
            }
        }
        Ok(out)
    }

    /// The same activities, handing `roster` to every upgrade's plan.
    pub fn with_roster(mut self, roster: crate::roster::Roster) -> Self {
        self.roster = roster;
        self
    }

    /// The same activities, with the cold sweep's limits.
    pub fn with_cold_sweep(mut self, settings: ColdSweepSettings) -> Self {
        self.cold_sweep = settings;
        self
    }

    /// The same activities, recording upgrade outcomes into `metrics`.
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    fn app(&self, name: &str) -> Result<&AppSpec, ActivityError> {
        self.apps
            .get(name)
            .ok_or_else(|| permanent(format!("no app named `{name}` in the config")))
    }

    /// Reads last good, what runs, the releases, the target's notes;
    /// applies the gate.
    pub async fn inspect(&self, input: &UpgradeInput) -> Result<UpgradePlan, ActivityError> {
        let app = self.app(&input.app)?;
        if let Some((key, program)) = app.missing_program() {
            return Err(permanent(format!(
                "app `{}`: the {key} program `{program}` is not an executable file or on PATH \
                 on this worker; nothing was touched",
                app.name
            )));
        }
        if input.cold && app.cold.is_none() {
            return Err(permanent(format!(
                "app `{}` has no [apps.cold] setup: a cold run needs its deploy and undeploy with `{{scratch}}`",
                app.name
            )));
        }
        let dir = &app.snapshot_dir;
        let last_good = snapshot::last_good(dir).map_err(|e| retryable(e.to_string()))?;
        let deployed = snapshot::deployed(dir).map_err(|e| retryable(e.to_string()))?;
        let proven = snapshot::cold_passed(dir).map_err(|e| retryable(e.to_string()))?;
        let (repo, tags, tag_of) = releases(app).await.map_err(|e| match e {
            Recipe::NotARepo(m) => permanent(m),
            Recipe::Git(m) => retryable(m),
        })?;
        let mut plan = UpgradePlan {
            app: app.name.clone(),
            last_good: last_good.clone().unwrap_or_default(),
            deployed: deployed.clone().unwrap_or_default(),
            approval_wait_seconds: crate::duration::parse(&app.approval_wait).unwrap_or(86_400),
            operators: self.roster.operators.clone(),
            approval_group: app.approval_group.clone().unwrap_or_default(),
            require_verified: app.require_verified,
            verify_key: self.roster.verify_key.clone(),
            advance: app.advance.into(),
            on_unhealthy: app.on_unhealthy.into(),
            permissions: self.roster.grants(
                crate::roster::Target::App(&app.name),
                app.approval_group.as_slice(),
            ),
            shared: app.uses.clone(),
            shared_wait_seconds: app
                .uses
                .iter()
                .filter_map(|n| self.shared.get(n))
                .map(SharedSpec::wait_seconds)
                .max()
                .unwrap_or(0),
            ..Default::default()
        };
        // A trial may name a git revision of the recipe (a branch, a
        // commit, a pull request's head): deployed as named, never promoted.
        let parsed = Version::parse(&input.version).filter(|v| tag_of.contains_key(&v.raw));
        if (input.trial || input.cold) && parsed.is_none() && !input.version.is_empty() {
            let commit = repo
                .run(&[
                    "rev-parse",
                    "--verify",
                    "--quiet",
                    &format!("{}^{{commit}}", input.version),
                ])
                .await
                .map_err(|_| {
                    permanent(format!(
                        "`{}` is neither a release tag nor a revision of {}",
                        input.version,
                        app.recipe_repo.display()
                    ))
                })?;
            plan.target = input.version.clone();
            plan.revision = commit.trim().to_string();
            plan.unreleased = true;
            return Ok(plan);
        }
        let target = if input.version.is_empty() {
            versions::latest(tags.lines()).ok_or_else(|| {
                permanent(format!("no release tags in {}", app.recipe_repo.display()))
            })?
        } else {
            Version::parse(&input.version).ok_or_else(|| {
                permanent(format!(
                    "`{}` is not a version like 1.2.3+4.5.6, nor (for a trial or a cold run) a revision",
                    input.version
                ))
            })?
        };
        let tag = tag_of.get(&target.raw).ok_or_else(|| {
            permanent(format!(
                "no release tag for {} in {}",
                target,
                app.recipe_repo.display()
            ))
        })?;
        plan.revision = repo
            .run(&["rev-parse", &format!("{tag}^{{commit}}")])
            .await
            .map(|c| c.trim().to_string())
            .unwrap_or_default();
        let notes = match &app.release_notes {
            Some(pattern) => repo
                .run(&[
                    "show",
                    &format!("{tag}:{}", pattern.replace("{version}", &target.raw)),
                ])
                .await
                .unwrap_or_default(),
            None => repo
                .run(&["tag", "--list", "--format=%(contents)", tag])
                .await
                .unwrap_or_default(),
        };
        let from = deployed.as_deref().and_then(Version::parse);
        let hold = versions::gate(from.as_ref(), &target, &notes, &app.hold_patterns);
        (plan.hold, plan.matches) = match hold {
            None => (String::new(), vec![]),
            Some(Hold::Major(m)) => (vocab::Hold::Major.into(), m),
            Some(Hold::ManualMigration(m)) => (vocab::Hold::ManualMigration.into(), m),
        };
        plan.notes = limits::bounded(&notes, limits::RELEASE_NOTES_CHARS);
        plan.cold_proven = proven.contains(&target.raw);
        plan.target = target.raw;
        Ok(plan)
    }

    /// Runs one step; failures are results so the workflow can roll back.
    pub async fn step(&self, s: &AppStep) -> Result<StepResult, ActivityError> {
        let app = self.app(&s.app)?;
        let timeout = Duration::from_secs(app.command_timeout_seconds);
        let kind: UpgradeStepKind = s.step.parse().map_err(permanent)?;
        let resources = if s.shared {
            self.resources_of(app, &s.tag)?
        } else {
            vec![]
        };
        let fill = |argv: Vec<String>| shared::fill(argv, &resources);
        let scratch = app.scratch_dir().join(&s.tag);
        let margin = disk::parse_size(&app.disk_margin).map_err(permanent)?;
        let runs_commands = matches!(
            kind,
            UpgradeStepKind::Undeploy
                | UpgradeStepKind::Deploy
                | UpgradeStepKind::Asserts
                | UpgradeStepKind::ColdDeploy
                | UpgradeStepKind::ColdAsserts
                | UpgradeStepKind::ColdUndeploy
        );
        let revision = if s.revision.is_empty()
            && !s.version.is_empty()
            && runs_commands
            && app.uses_revision()
        {
            match revision_of(app, &s.version).await {
                Ok(r) => r,
                Err(message) => {
                    return Ok(StepResult {
                        ok: false,
                        message,
                        ..Default::default()
                    });
                }
            }
        } else {
            s.revision.clone()
        };
        let at = (s.version.as_str(), revision.as_str());
        let outcome: Result<String, String> = match kind {
            UpgradeStepKind::SharedCreate => return self.share(app, &s.tag).await,
            UpgradeStepKind::SharedDelete => return self.unshare(app, &s.tag).await,
            UpgradeStepKind::Undeploy => run_filled(fill(app.argv(&app.undeploy, at)), timeout)
                .await
                .map(|()| "undeployed".into()),
            UpgradeStepKind::Deploy => run_filled(fill(app.argv(&app.deploy, at)), timeout)
                .await
                .map(|()| format!("deployed {}", s.version)),
            UpgradeStepKind::Health | UpgradeStepKind::ColdHealth => {
                let h = if kind == UpgradeStepKind::Health {
                    &app.health
                } else {
                    app.cold_health()
                };
                return Ok(match health::gate(h).await {
                    Ok(()) => passed("healthy".into()),
                    Err(u) => StepResult {
                        ok: false,
                        message: u.message,
                        check: u.check,
                        answer: u.answer,
                        at: u.at,
                        ..Default::default()
                    },
                });
            }
            UpgradeStepKind::Asserts => {
                return Ok(
                    asserts(app.asserts.iter().map(|a| fill(app.argv(a, at))), timeout).await,
                );
            }
            UpgradeStepKind::ColdAsserts => {
                let asserts = app
                    .cold
                    .as_ref()
                    .map(|c| c.asserts.clone())
                    .unwrap_or_default();
                return Ok(self::asserts(
                    asserts.iter().map(|a| fill(app.cold_argv(a, at, &scratch))),
                    timeout,
                )
                .await);
            }
            UpgradeStepKind::Snapshot => {
                let (volumes, dir, tag) =
                    (app.volumes.clone(), app.snapshot_dir.clone(), s.tag.clone());
                off_the_runtime(move || snapshot::take(&volumes, &dir, &tag))
                    .await
                    .map(|m| format!("snapshot {} of {} volumes", m.tag, m.volumes.len()))
            }
            UpgradeStepKind::Restore => {
                let (volumes, dir) = (app.volumes.clone(), app.snapshot_dir.clone());
                off_the_runtime(move || snapshot::restore(&volumes, &dir))
                    .await
                    .map(|m| format!("restored snapshot {}", m.tag))
            }
            UpgradeStepKind::SetLastGood => {
                let (dir, version, warm) = (
                    app.snapshot_dir.clone(),
                    s.version.clone(),
                    app.advance == Advance::Warm,
                );
                off_the_runtime(move || {
                    if warm {
                        snapshot::set_last_good_and_deployed(&dir, &version)
                    } else {
                        snapshot::set_last_good(&dir, &version)
                    }
                })
                .await
                .map(|()| format!("last_good = {}", s.version))
            }
            UpgradeStepKind::SetDeployed => {
                let (dir, version) = (app.snapshot_dir.clone(), s.version.clone());
                off_the_runtime(move || snapshot::set_deployed(&dir, &version))
                    .await
                    .map(|()| format!("deployed = {}", s.version))
            }
            UpgradeStepKind::Prune => {
                let (app, keep) = (app.clone(), s.tag.clone());
                return match tokio::task::spawn_blocking(move || prune::prune(&app, &keep)).await {
                    Ok(Ok(removed)) => Ok(StepResult {
                        removed: removed.clone(),
                        ..passed(if removed.is_empty() {
                            "nothing to prune".into()
                        } else {
                            format!("pruned {} leftovers", removed.len())
                        })
                    }),
                    Ok(Err(e)) => Ok(StepResult {
                        ok: false,
                        message: e,
                        ..Default::default()
                    }),
                    Err(e) => Err(retryable(format!("pruning did not finish: {e}"))),
                };
            }
            UpgradeStepKind::DiskCheck => {
                let volumes = app.volumes.clone();
                match tokio::task::spawn_blocking(move || disk::size_of(&volumes)).await {
                    Ok(Ok(needs)) => disk::fits(
                        "the snapshot of the volumes",
                        needs,
                        margin,
                        &app.snapshot_dir,
                    ),
                    Ok(Err(e)) => Err(e),
                    Err(e) => Err(format!("measuring the volumes did not finish: {e}")),
                }
            }
            UpgradeStepKind::ColdDiskCheck => {
                let needs = app
                    .cold
                    .as_ref()
                    .and_then(|c| c.needs.as_deref())
                    .map(disk::parse_size)
                    .transpose()
                    .map_err(permanent)?
                    .unwrap_or(0);
                disk::fits("the cold run's data", needs, margin, &app.scratch_dir())
            }
            UpgradeStepKind::ColdDeploy => {
                let cold = app
                    .cold
                    .as_ref()
                    .ok_or_else(|| permanent("no [apps.cold] setup"))?;
                prune::make_scratch(&app.scratch_dir(), &s.tag).map_err(retryable)?;
                run_filled(fill(app.cold_argv(&cold.deploy, at, &scratch)), timeout)
                    .await
                    .map(|()| {
                        format!(
                            "deployed {} on fresh data in {}",
                            s.version,
                            scratch.display()
                        )
                    })
            }
            UpgradeStepKind::ColdUndeploy => {
                let cold = app
                    .cold
                    .as_ref()
                    .ok_or_else(|| permanent("no [apps.cold] setup"))?;
                match run_filled(fill(app.cold_argv(&cold.undeploy, at, &scratch)), timeout).await {
                    Ok(()) => match prune::remove_scratch(&app.scratch_dir(), &s.tag) {
                        Ok(true) => Ok(format!("undeployed; removed {}", scratch.display())),
                        Ok(false) => Ok("undeployed".into()),
                        Err(e) => Err(e),
                    },
                    Err(e) => Err(e),
                }
            }
            UpgradeStepKind::ColdPassed => {
                let (dir, version, moves) = (
                    app.snapshot_dir.clone(),
                    s.version.clone(),
                    app.advance == Advance::Cold,
                );
                off_the_runtime(move || snapshot::record_cold_pass(&dir, &version, moves))
                    .await
                    .map(|()| {
                        if app.advance == Advance::Cold {
                            format!("cold run passed {}; last_good = {}", s.version, s.version)
                        } else {
                            format!(
                                "cold run passed {} (advance = warm: last_good not moved)",
                                s.version
                            )
                        }
                    })
            }
        };
        Ok(match outcome {
            Ok(message) => passed(message),
            Err(message) => StepResult {
                ok: false,
                message,
                ..Default::default()
            },
        })
    }
}

fn passed(message: String) -> StepResult {
    StepResult {
        ok: true,
        message,
        ..Default::default()
    }
}

/// Why an app's recipe could not be read.
enum Recipe {
    /// The folder is not a git work tree (a config error).
    NotARepo(String),
    /// git failed (try again).
    Git(String),
}

impl std::fmt::Display for Recipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Recipe::NotARepo(m) | Recipe::Git(m) => f.write_str(m),
        }
    }
}

/// `app`'s recipe repo, its tags, and the release tag of each version.
async fn releases(app: &AppSpec) -> Result<(Repo, String, BTreeMap<String, String>), Recipe> {
    let repo = Repo::open(&app.recipe_repo).await.ok_or_else(|| {
        Recipe::NotARepo(format!(
            "recipe repo {} is not a git work tree",
            app.recipe_repo.display()
        ))
    })?;
    let tags = repo
        .run(&["tag", "--list"])
        .await
        .map_err(|e| Recipe::Git(e.to_string()))?;
    let tag_of = tags
        .lines()
        .filter_map(|t| Version::parse(t).map(|v| (v.raw, t.to_string())))
        .collect();
    Ok((repo, tags, tag_of))
}

/// The exact commit of `version` in `app`'s recipe: its release tag's, or
/// (a trial's revision named as it was) the revision's.
async fn revision_of(app: &AppSpec, version: &str) -> Result<String, String> {
    let (repo, _, tag_of) = releases(app).await.map_err(|e| e.to_string())?;
    let tag = tag_of.get(version).map_or(version, String::as_str);
    repo.run(&[
        "rev-parse",
        "--verify",
        "--quiet",
        &format!("{tag}^{{commit}}"),
    ])
    .await
    .map(|c| c.trim().to_string())
    .map_err(|_| {
        format!(
            "`{version}` names no commit of {}",
            app.recipe_repo.display()
        )
    })
}

/// Runs the assertions in order. The first that fails is the step's
/// failed check: the command, what it answered (its exit and the tail of
/// its output), and when, as the health gate reports its own.
async fn asserts(
    argvs: impl Iterator<Item = Result<Vec<String>, String>>,
    timeout: Duration,
) -> StepResult {
    for argv in argvs {
        let argv = match argv {
            Ok(argv) => argv,
            Err(message) => {
                return StepResult {
                    message,
                    ..Default::default()
                };
            }
        };
        if let Err(answer) = run_command(&argv, timeout).await {
            let check = argv.join(" ");
            return StepResult {
                ok: false,
                message: format!("assertion `{check}` failed: {answer}"),
                check,
                answer,
                at: crate::time::now_millis_text(),
                ..Default::default()
            };
        }
    }
    passed("assertions passed".into())
}

#[activities]
impl UpgradeActivities {
    /// Inspects the app. Idempotent: read-only.
    #[activity(name = names::UPGRADE_INSPECT)]
    pub async fn upgrade_inspect(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: UpgradeInput,
    ) -> Result<UpgradePlan, ActivityError> {
        self.inspect(&input).await
    }

    /// One step. Idempotent: undeploy and deploy commands must be (they
    /// are the operator's scripts: deploying a running version again is a
    /// no-op); a snapshot is taken once per upgrade run (its tag); restore
    /// and last_good rewrite the same bytes.
    #[activity(name = names::UPGRADE_STEP)]
    pub async fn upgrade_step(
        self: Arc<Self>,
        ctx: ActivityContext,
        s: AppStep,
    ) -> Result<StepResult, ActivityError> {
        crate::heartbeat::with_heartbeat(&ctx, self.step(&s)).await
    }

    /// The cold sweep's plan. Idempotent: reads the config and earlier
    /// sweeps' progress events only.
    #[activity(name = names::COLD_SWEEP_PLAN)]
    pub async fn cold_sweep_plan(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: ColdSweepInput,
    ) -> Result<ColdSweepPlan, ActivityError> {
        let earlier = self
            .store
            .progress(Some(names::COLD_SWEEP_EVENT_TYPE), 0, 200)
            .await
            .map_err(|e| retryable(e.to_string()))?;
        let earlier: Vec<(i64, ColdSweepResult)> = earlier
            .iter()
            .filter_map(|e| {
                let at = chrono::DateTime::parse_from_rfc3339(&e.created_at).ok()?;
                let r = serde_json::from_str(&e.detail_json).ok()?;
                Some((at.timestamp_millis(), r))
            })
            .collect();
        let apps: Vec<AppSpec> = self
            .order
            .iter()
            .filter_map(|n| self.apps.get(n).cloned())
            .collect();
        // Apps whose upgrade lock another run holds now.
        let now = crate::time::now_ms();
        let mut busy = BTreeMap::new();
        for app in &apps {
            let held = self
                .store
                .lock_holder(&steward_proto::ids::upgrade_lock(&app.name))
                .await
                .map_err(|e| retryable(e.to_string()))?;
            if let Some((holder, _)) = held.filter(|(_, expires)| *expires > now) {
                busy.insert(app.name.clone(), holder);
            }
        }
        Ok(cold_sweep::plan(
            &apps,
            &input,
            &self.cold_sweep,
            &cold_sweep::last_tested(&earlier),
            &busy,
        ))
    }

    /// The cold sweep's progress event. Idempotent: its id is the workflow
    /// run.
    #[activity(name = names::COLD_SWEEP_RECORD)]
    pub async fn cold_sweep_record(
        self: Arc<Self>,
        _ctx: ActivityContext,
        r: ColdSweepResult,
    ) -> Result<(), ActivityError> {
        let (source, workflow, run) = (&r.source, &r.workflow_id, &r.run_id);
        self.record(names::COLD_SWEEP_EVENT_TYPE, source, workflow, run, &r)
            .await
            .map(drop)
    }

    /// Posts a forge-started run's commit status. Idempotent: the forge
    /// keeps the newest status of a context.
    #[activity(name = names::UPGRADE_FORGE_STATUS)]
    pub async fn upgrade_forge_status(
        self: Arc<Self>,
        _ctx: ActivityContext,
        status: steward_proto::v1::ForgeStatus,
    ) -> Result<(), ActivityError> {
        let forge = self
            .forge
            .as_ref()
            .ok_or_else(|| permanent("this worker's config has no [forge]"))?;
        forge.post_status(&status).await.map_err(retryable)
    }

    /// One pass of the reaper. Idempotent: a resource already deleted is
    /// not deleted again.
    #[activity(name = names::SHARED_REAP_PASS)]
    pub async fn shared_reap_pass(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: SharedReapInput,
    ) -> Result<SharedReapResult, ActivityError> {
        crate::heartbeat::with_heartbeat(&ctx, self.reap(&input.service)).await
    }

    /// The reaper's progress event. Idempotent: its id is the workflow run.
    #[activity(name = names::SHARED_REAP_RECORD)]
    pub async fn shared_reap_record(
        self: Arc<Self>,
        _ctx: ActivityContext,
        r: SharedReapResult,
    ) -> Result<(), ActivityError> {
        let (source, workflow, run) = (&r.source, &r.workflow_id, &r.run_id);
        self.record(names::SHARED_REAP_EVENT_TYPE, source, workflow, run, &r)
            .await
            .map(drop)
    }

    /// The progress event. Idempotent: its id is the workflow run.
    #[activity(name = names::UPGRADE_RECORD)]
    pub async fn upgrade_record(
        self: Arc<Self>,
        _ctx: ActivityContext,
        r: UpgradeResult,
    ) -> Result<(), ActivityError> {
        let fresh = self
            .record(
                names::UPGRADE_EVENT_TYPE,
                &r.app,
                &r.workflow_id,
                &r.run_id,
                &r,
            )
            .await?;
        if fresh {
            self.metrics.upgrade(&r.app, &r.outcome);
        }
        Ok(())
    }
}
