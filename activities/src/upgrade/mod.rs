//! The warm upgrade's activities and building blocks: release versions and
//! the safety gate (`versions`), the last-known-good snapshot with its
//! `last_good` record (`snapshot`), and the app spec (`spec`).

pub mod snapshot;
pub mod spec;
pub mod versions;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use crate::failure::{permanent, retryable};
use steward_proto::names;
use steward_proto::v1::{
    AppStep, ProgressEvent, StepResult, UpgradeInput, UpgradePlan, UpgradeResult,
};
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

pub use spec::{AppSpec, Health};
use versions::{Hold, Version};

use crate::git::Repo;
use crate::store::Store;

/// The warm upgrade's activities.
#[derive(Debug)]
pub struct UpgradeActivities {
    apps: BTreeMap<String, AppSpec>,
    store: Store,
    metrics: crate::metrics::Metrics,
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

/// Runs argv with a timeout; Ok on exit 0, else the reason.
pub async fn run_command(argv: &[String], timeout: Duration) -> Result<(), String> {
    let Some((program, args)) = argv.split_first() else {
        return Err("empty command".into());
    };
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(timeout, child)
        .await
        .map_err(|_| format!("`{program}` did not finish within {}s", timeout.as_secs()))?
        .map_err(|e| format!("`{program}` could not be started: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: String = err
            .trim()
            .chars()
            .rev()
            .take(300)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        Err(format!("`{program}` exited with {}: {tail}", out.status))
    }
}

async fn check_once(h: &Health) -> Result<(), String> {
    if let Some(url) = &h.url {
        let timeout = Duration::from_secs(h.interval_seconds.max(1) * 2);
        let resp = reqwest::Client::new()
            .get(url)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {}", crate::http::cause(&e, timeout)))?;
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        if status != h.expect_status {
            return Err(format!(
                "GET {url} answered {status}, expected {}",
                h.expect_status
            ));
        }
        if let Some(needle) = &h.body_contains
            && !body.contains(needle.as_str())
        {
            return Err(format!("GET {url}: body lacks `{needle}`"));
        }
        return Ok(());
    }
    let argv = h.command.clone().unwrap_or_default();
    run_command(&argv, Duration::from_secs(h.timeout_seconds.max(1))).await
}

/// The health gate: `successes` consecutive good checks within the timeout.
pub async fn health_gate(h: &Health) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(h.timeout_seconds);
    let mut streak = 0;
    let mut last = String::from("no check ran");
    loop {
        match check_once(h).await {
            Ok(()) => {
                streak += 1;
                if streak >= h.successes {
                    return Ok(());
                }
            }
            Err(e) => {
                streak = 0;
                last = e;
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("unhealthy after {}s: {last}", h.timeout_seconds));
        }
        tokio::time::sleep(Duration::from_secs(h.interval_seconds.max(1))).await;
    }
}

impl UpgradeActivities {
    /// Activities over `apps`, recording progress events in `store`.
    pub fn new(apps: Vec<AppSpec>, store: Store) -> Self {
        Self {
            apps: apps.into_iter().map(|a| (a.name.clone(), a)).collect(),
            store,
            metrics: Default::default(),
        }
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

    /// Reads last good, the releases, the target's notes; applies the gate.
    pub async fn inspect(&self, input: &UpgradeInput) -> Result<UpgradePlan, ActivityError> {
        let app = self.app(&input.app)?;
        if let Some((key, program)) = app.missing_program() {
            return Err(permanent(format!(
                "app `{}`: the {key} program `{program}` is not an executable file or on PATH \
                 on this worker; nothing was touched",
                app.name
            )));
        }
        let last_good =
            snapshot::last_good(&app.snapshot_dir).map_err(|e| retryable(e.to_string()))?;
        let repo = Repo::open(&app.recipe_repo).await.ok_or_else(|| {
            permanent(format!(
                "recipe repo {} is not a git work tree",
                app.recipe_repo.display()
            ))
        })?;
        let tags = repo
            .run(&["tag", "--list"])
            .await
            .map_err(|e| retryable(e.to_string()))?;
        let tag_of: BTreeMap<String, String> = tags
            .lines()
            .filter_map(|t| Version::parse(t).map(|v| (v.raw, t.to_string())))
            .collect();
        let target = if input.version.is_empty() {
            versions::latest(tags.lines()).ok_or_else(|| {
                permanent(format!("no release tags in {}", app.recipe_repo.display()))
            })?
        } else {
            Version::parse(&input.version).ok_or_else(|| {
                permanent(format!(
                    "`{}` is not a version like 1.2.3+4.5.6",
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
        let from = last_good.as_deref().and_then(Version::parse);
        let hold = versions::gate(from.as_ref(), &target, &notes, &app.hold_patterns);
        let (hold, matches) = match hold {
            None => (String::new(), vec![]),
            Some(Hold::Major) => ("major".to_string(), vec![]),
            Some(Hold::ManualMigration(m)) => ("manual-migration".to_string(), m),
        };
        Ok(UpgradePlan {
            app: app.name.clone(),
            last_good: last_good.unwrap_or_default(),
            target: target.raw,
            hold,
            matches,
            approval_wait_seconds: crate::backfill::spec::parse_duration(&app.approval_wait)
                .unwrap_or(86_400),
        })
    }

    /// Runs one step; failures are results so the workflow can roll back.
    pub async fn step(&self, s: &AppStep) -> Result<StepResult, ActivityError> {
        let app = self.app(&s.app)?;
        let timeout = Duration::from_secs(app.command_timeout_seconds);
        let outcome: Result<String, String> = match s.step.as_str() {
            "undeploy" => run_command(&app.argv(&app.undeploy, &s.version), timeout)
                .await
                .map(|()| "undeployed".into()),
            "deploy" => run_command(&app.argv(&app.deploy, &s.version), timeout)
                .await
                .map(|()| format!("deployed {}", s.version)),
            "health" => health_gate(&app.health).await.map(|()| "healthy".into()),
            "asserts" => {
                let mut r = Ok("assertions passed".to_string());
                for a in &app.asserts {
                    if let Err(e) = run_command(&app.argv(a, &s.version), timeout).await {
                        r = Err(e);
                        break;
                    }
                }
                r
            }
            "snapshot" => {
                let (volumes, dir, tag) =
                    (app.volumes.clone(), app.snapshot_dir.clone(), s.tag.clone());
                off_the_runtime(move || snapshot::take(&volumes, &dir, &tag))
                    .await
                    .map(|m| format!("snapshot {} of {} volumes", m.tag, m.volumes.len()))
            }
            "restore" => {
                let (volumes, dir) = (app.volumes.clone(), app.snapshot_dir.clone());
                off_the_runtime(move || snapshot::restore(&volumes, &dir))
                    .await
                    .map(|m| format!("restored snapshot {}", m.tag))
            }
            "set_last_good" => {
                let (dir, version) = (app.snapshot_dir.clone(), s.version.clone());
                off_the_runtime(move || snapshot::set_last_good(&dir, &version))
                    .await
                    .map(|()| format!("last_good = {}", s.version))
            }
            other => return Err(permanent(format!("unknown step `{other}`"))),
        };
        Ok(match outcome {
            Ok(message) => StepResult { ok: true, message },
            Err(message) => StepResult { ok: false, message },
        })
    }
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

    /// The progress event. Idempotent: its id is the workflow run.
    #[activity(name = names::UPGRADE_RECORD)]
    pub async fn upgrade_record(
        self: Arc<Self>,
        _ctx: ActivityContext,
        r: UpgradeResult,
    ) -> Result<(), ActivityError> {
        let event = ProgressEvent {
            id: format!("{}:{}", r.workflow_id, r.run_id),
            event_type: names::UPGRADE_EVENT_TYPE.into(),
            source: r.app.clone(),
            created_at: String::new(),
            workflow_id: r.workflow_id.clone(),
            run_id: r.run_id.clone(),
            detail_json: serde_json::to_string(&r).unwrap_or_default(),
        };
        let fresh = self
            .store
            .insert_progress(&event, chrono::Utc::now().timestamp_millis())
            .await
            .map_err(|e| retryable(e.to_string()))?;
        if fresh {
            self.metrics.upgrade(&r.app, &r.outcome);
        }
        Ok(())
    }
}
