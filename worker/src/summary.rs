//! What the Temporal UI shows for a run before it has done anything: the
//! static summary (one line) and details (a few lines) every start of a
//! steward workflow carries, by hand, by the CLI or by a schedule.

use steward_activities::upgrade::AppSpec;
use steward_activities::upgrade::{snapshot, versions};
use steward_proto::v1::{
    BackfillInput, ColdSweepInput, FailoverDrillInput, RestoreDrillInput, SharedReapInput,
    SweepInput, UpgradeInput,
};

use crate::config::Loaded;

/// A run's static summary and details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// One line.
    pub summary: String,
    /// A few lines.
    pub details: String,
}

impl Summary {
    /// Options that start run `id` on `task_queue` with this summary and
    /// these details, as every start from the CLI and the API does.
    pub fn start_options(
        self,
        task_queue: &str,
        id: &str,
    ) -> temporalio_client::WorkflowStartOptions {
        temporalio_client::WorkflowStartOptions::new(task_queue.to_string(), id.to_string())
            .static_summary(self.summary)
            .static_details(self.details)
            .build()
    }
}

/// `sweep of 12 repos (schedule)`.
pub fn sweep(loaded: &Loaded, input: &SweepInput) -> Summary {
    let repos = &loaded.config.repos;
    let mut summary = format!(
        "sweep of {} repo{} ({})",
        repos.len(),
        if repos.len() == 1 { "" } else { "s" },
        input.source
    );
    if input.full {
        summary.push_str(", full");
    }
    let names: Vec<&str> = repos.iter().map(|r| r.name.as_str()).take(20).collect();
    let more = repos.len().saturating_sub(names.len());
    let budget = match input.max_seconds {
        0 => loaded.config.sweep.max_seconds,
        s => s,
    };
    let concurrency = match input.concurrency {
        0 => loaded.config.sweep.concurrency,
        c => c,
    };
    let mut details = format!(
        "budget {budget}s, {concurrency} repos at once\nrepos: {}",
        names.join(", ")
    );
    if more > 0 {
        details.push_str(&format!(" and {more} more"));
    }
    Summary { summary, details }
}

/// `backfill supersedes: batch 500, groups storage+security`.
pub fn backfill(loaded: &Loaded, input: &BackfillInput) -> Summary {
    let spec = loaded
        .config
        .backfills
        .iter()
        .find(|b| b.name == input.name);
    let batch = match (input.batch_size, spec) {
        (0, Some(s)) => s.batch_size,
        (n, _) => n,
    };
    let groups = spec
        .map(|s| s.approvals.join("+"))
        .filter(|g| !g.is_empty())
        .unwrap_or_else(|| "none".into());
    let mut summary = format!("backfill {}: batch {batch}, groups {groups}", input.name);
    if input.dry_run {
        summary.push_str(" (dry run)");
    }
    let freeze = if input.freeze_at.is_empty() {
        format!("on `steward backfill freeze {}`", input.name)
    } else {
        input.freeze_at.clone()
    };
    Summary {
        summary,
        details: format!(
            "started by {}: {}\nfreeze: {freeze}",
            input.operator, input.reason
        ),
    }
}

/// `warm upgrade keycloak 10.7.1 → 10.7.9`: the versions as this host
/// reads them (the app's last good, the asked or latest release), `?` for
/// what it cannot read; the run's own inspection decides.
pub async fn upgrade(app: Option<&AppSpec>, input: &UpgradeInput, source: &str) -> Summary {
    let (from, to) = match app {
        Some(app) => versions_of(app, &input.version).await,
        None => ("?".into(), "?".into()),
    };
    let mut summary = format!("warm upgrade {} {from} → {to}", input.app);
    if input.trial {
        summary.push_str(" (trial)");
    }
    if !source.is_empty() {
        summary.push_str(&format!(" ({source})"));
    }
    Summary {
        summary,
        details: format!("started by {}: {}", input.operator, input.reason),
    }
}

async fn versions_of(app: &AppSpec, asked: &str) -> (String, String) {
    let from = snapshot::last_good(&app.snapshot_dir)
        .ok()
        .flatten()
        .unwrap_or_else(|| "(none)".into());
    if !asked.is_empty() {
        return (from, asked.to_string());
    }
    let latest = match steward_activities::git::Repo::open(&app.recipe_repo).await {
        Some(repo) => repo
            .run(&["tag", "--list"])
            .await
            .ok()
            .and_then(|tags| versions::latest(tags.lines()))
            .map(|v| v.raw),
        None => None,
    };
    (from, latest.unwrap_or_else(|| "latest".into()))
}

/// `restore drill of the state store (sqlite)`.
pub fn restore_drill(loaded: &Loaded, input: &RestoreDrillInput) -> Summary {
    let backend = steward_activities::dburl::DatabaseUrl::parse(&loaded.database_url())
        .map(|u| u.backend().as_str())
        .unwrap_or("?");
    let summary = if input.backup.is_empty() {
        format!(
            "restore drill of the state store ({backend}, {})",
            input.source
        )
    } else {
        format!(
            "restore drill of backup {} ({})",
            input.backup, input.source
        )
    };
    Summary {
        summary,
        details: format!("started by {}", input.operator),
    }
}

/// `cold sweep of 3 apps, 2 at a time (schedule nightly-cold)`.
pub fn cold_sweep(loaded: &Loaded, input: &ColdSweepInput, by: &str) -> Summary {
    let apps = loaded
        .config
        .apps
        .iter()
        .filter(|a| a.cold.is_some() && a.name.contains(&input.filter))
        .count();
    let pick = |asked: u32, configured: u32| if asked > 0 { asked } else { configured };
    let parallel = pick(input.max_parallel, loaded.config.cold_sweep.max_parallel);
    let total = pick(input.max_total, loaded.config.cold_sweep.max_total);
    let filter = if input.filter.is_empty() {
        String::new()
    } else {
        format!(" matching `{}`", input.filter)
    };
    Summary {
        summary: format!(
            "cold sweep of {} apps{filter}, {parallel} at a time ({})",
            apps.min(total as usize),
            input.source
        ),
        details: format!("started by {by}; at most {total} cold runs"),
    }
}

/// `reap shared services keycloak, ldap (schedule hourly)`.
pub fn shared_reap(loaded: &Loaded, input: &SharedReapInput, by: &str) -> Summary {
    let services: Vec<&str> = loaded
        .config
        .shared
        .iter()
        .map(|s| s.name.as_str())
        .filter(|n| input.service.is_empty() || *n == input.service)
        .collect();
    Summary {
        summary: format!(
            "reap shared services {} ({})",
            services.join(", "),
            input.source
        ),
        details: format!(
            "started by {by}; deletes only the per-run resources steward made, of runs that closed"
        ),
    }
}

/// `failover drill db-ha: trigger `pg-failover` (schedule nightly)`.
pub fn failover_drill(loaded: &Loaded, input: &FailoverDrillInput) -> Summary {
    let spec = loaded.config.drills.iter().find(|d| d.name == input.drill);
    let trigger = spec.map(|d| d.trigger.join(" ")).unwrap_or_default();
    let targets = spec
        .map(|d| format!("RTO ≤ {}s, RPO ≤ {}s", d.rto_seconds, d.rpo_seconds))
        .unwrap_or_default();
    Summary {
        summary: format!(
            "failover drill {}: trigger `{trigger}` ({})",
            input.drill, input.source
        ),
        details: format!(
            "started by {}: {}; targets {targets}",
            input.operator, input.reason
        ),
    }
}
