//! Checks a config as written, before any path is resolved: every refusal
//! names the dotted key at fault (`schedules[1].cron`) and what is wrong.

use std::collections::BTreeSet;

use steward_activities::dburl::DatabaseUrl;
use steward_proto::vocab::ScheduleKind;

use super::Config;
use super::cron::check_cron;

/// The key at fault and what is wrong with it.
pub(super) type Refusal = (String, String);

fn refuse<T>(key: impl Into<String>, message: impl Into<String>) -> Result<T, Refusal> {
    Err((key.into(), message.into()))
}

/// Whether `name` is a valid steward name: `[a-z0-9-]`, 1 to 63
/// characters, not starting or ending with `-`. Names become parts of
/// workflow ids, schedule ids and paths, so nothing else is allowed.
pub fn valid_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// The one check every named list gets: each name valid and declared
/// once. `list` is the key (`repos`), `twice` how a repeat is told.
fn unique_names<'a>(
    list: &str,
    names: impl IntoIterator<Item = &'a str>,
    twice: &str,
) -> Result<BTreeSet<String>, Refusal> {
    let mut seen = BTreeSet::new();
    for (i, name) in names.into_iter().enumerate() {
        if !valid_name(name) {
            return refuse(
                format!("{list}[{i}].name"),
                format!("`{name}` must match [a-z0-9-]{{1,63}}"),
            );
        }
        if !seen.insert(name.to_string()) {
            return refuse(format!("{list}[{i}].name"), format!("`{name}` is {twice}"));
        }
    }
    Ok(seen)
}

fn database_url(key: &str, url: &str) -> Result<(), Refusal> {
    match DatabaseUrl::parse(url) {
        Ok(_) => Ok(()),
        Err(_) => refuse(key, "must start with sqlite:, postgres:// or postgresql://"),
    }
}

/// Checks `config`; the first refusal.
pub(super) fn check(config: &Config) -> Result<(), Refusal> {
    if config.task_queue.trim().is_empty() {
        return refuse("task_queue", "must not be empty");
    }
    if let Some(url) = &config.database_url {
        database_url("database_url", url)?;
    }
    worker_and_guard(config)?;
    config
        .restore
        .check()
        .or_else(|(key, m)| refuse(format!("restore.{key}"), m))?;
    sweep(config)?;
    if let Some(url) = &config.alerts.webhook
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return refuse("alerts.webhook", "must be an http:// or https:// URL");
    }
    unique_names(
        "backfills",
        config.backfills.iter().map(|b| b.name.as_str()),
        "declared twice",
    )?;
    for (i, b) in config.backfills.iter().enumerate() {
        b.check()
            .or_else(|(key, m)| refuse(format!("backfills[{i}].{key}"), m))?;
    }
    let apps = unique_names(
        "apps",
        config.apps.iter().map(|a| a.name.as_str()),
        "declared twice",
    )?;
    for (i, a) in config.apps.iter().enumerate() {
        a.check()
            .or_else(|(key, m)| refuse(format!("apps[{i}].{key}"), m))?;
    }
    shared(config, &apps)?;
    forge(config, &apps)?;
    let drills = unique_names(
        "drills",
        config.drills.iter().map(|d| d.name.as_str()),
        "declared twice",
    )?;
    for (i, d) in config.drills.iter().enumerate() {
        d.check()
            .or_else(|(key, m)| refuse(format!("drills[{i}].{key}"), m))?;
    }
    schedules(config, &apps, &drills)?;
    operators(config)?;
    permissions(config)
}

/// Each `[[permissions]]` rule names real actions on real targets, and
/// the named backfills, apps, schedules and drills exist.
fn permissions(config: &Config) -> Result<(), Refusal> {
    let schedules: Vec<String> = config
        .schedules
        .as_ref()
        .map(|list| list.iter().map(|s| s.name.clone()).collect())
        .unwrap_or_default();
    for (i, rule) in config.permissions.iter().enumerate() {
        steward_activities::roster::check_rule(rule)
            .or_else(|m| refuse(format!("permissions[{i}]"), m))?;
        for on in &rule.on {
            let Some((kind, name)) = on.split_once(':').filter(|(_, n)| *n != "*") else {
                continue;
            };
            let known = match kind {
                "backfill" => config.backfills.iter().any(|b| b.name == name),
                "app" => config.apps.iter().any(|a| a.name == name),
                "drill" => config.drills.iter().any(|d| d.name == name),
                "schedule" => schedules.is_empty() || schedules.iter().any(|s| s == name),
                _ => true,
            };
            if !known {
                return refuse(
                    format!("permissions[{i}].on"),
                    format!("`{on}`: no {kind} named `{name}` in this config"),
                );
            }
        }
    }
    Ok(())
}

fn hex_of(key: &str, text: &str, bytes: usize) -> Result<(), Refusal> {
    if text.len() == bytes * 2 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        refuse(
            key,
            format!("must be {bytes} bytes as {} hex digits", bytes * 2),
        )
    }
}

fn operators(config: &Config) -> Result<(), Refusal> {
    if config.api.listen.parse::<std::net::SocketAddr>().is_err() {
        return refuse(
            "api.listen",
            format!(
                "`{}` is not host:port (for example 127.0.0.1:8234)",
                config.api.listen
            ),
        );
    }
    if let Some(key) = &config.api.verify_key {
        hex_of("api.verify_key", key, 32)?;
    }
    if let Some(oidc) = &config.api.oidc {
        oidc.check()
            .or_else(|(key, m)| refuse(format!("api.oidc.{key}"), m))?;
    }
    unique_names(
        "operators",
        config.operators.iter().map(|o| o.name.as_str()),
        "declared twice",
    )?;
    let mut tokens = BTreeSet::new();
    for (i, o) in config.operators.iter().enumerate() {
        hex_of(&format!("operators[{i}].token_sha256"), &o.token_sha256, 32)?;
        if !tokens.insert(o.token_sha256.to_lowercase()) {
            return refuse(
                format!("operators[{i}].token_sha256"),
                "is another operator's token",
            );
        }
        if let Some(t) = &o.expires
            && chrono::DateTime::parse_from_rfc3339(t).is_err()
        {
            return refuse(
                format!("operators[{i}].expires"),
                format!("`{t}` is not an RFC 3339 time like 2027-01-01T00:00:00Z"),
            );
        }
        for g in &o.groups {
            if g.trim().is_empty() {
                return refuse(format!("operators[{i}].groups"), "a group name is empty");
            }
        }
    }
    Ok(())
}

fn worker_and_guard(config: &Config) -> Result<(), Refusal> {
    for (key, addr, example) in [
        (
            "worker.metrics_addr",
            &config.worker.metrics_addr,
            "0.0.0.0:9464",
        ),
        (
            "worker.health_addr",
            &config.worker.health_addr,
            "0.0.0.0:9465",
        ),
    ] {
        if let Some(addr) = addr
            && addr.parse::<std::net::SocketAddr>().is_err()
        {
            return refuse(
                key,
                format!("`{addr}` is not host:port (for example {example})"),
            );
        }
    }
    if let Some(id) = &config.worker.build_id
        && (id.trim().is_empty() || id.len() > 255)
    {
        return refuse("worker.build_id", "must be 1 to 255 characters");
    }
    if config.guard.check_seconds == 0 {
        return refuse("guard.check_seconds", "must be at least 1");
    }
    if config.temporal.retention_days == 0 {
        return refuse(
            "temporal.retention_days",
            "must be at least 1 (Temporal keeps closed runs for a day at least)",
        );
    }
    if config.audit.archive_seconds == 0 {
        return refuse("audit.archive_seconds", "must be at least 1");
    }
    if config.worker.max_cached_workflows == 0 {
        return refuse("worker.max_cached_workflows", "must be at least 1");
    }
    match steward_activities::duration::parse(&config.worker.host_wait_alert) {
        Ok(s) if s >= 1 && s <= u64::from(u32::MAX) => {}
        Ok(_) => return refuse("worker.host_wait_alert", "must be at least 1s"),
        Err(e) => return refuse("worker.host_wait_alert", e),
    }
    hosts(config)
}

/// Whether `host` may name a host: `[a-z0-9.-]`, 1 to 63 characters, not
/// starting or ending with `-` or `.` (it becomes part of a task queue's
/// name).
pub fn valid_host(host: &str) -> bool {
    (1..=63).contains(&host.len())
        && host
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !host.starts_with(['-', '.'])
        && !host.ends_with(['-', '.'])
}

/// Every host the config names is a valid one, and a repo given by `url`
/// (cloned by every worker) is not pinned.
fn hosts(config: &Config) -> Result<(), Refusal> {
    let named = config
        .worker
        .host
        .iter()
        .map(|h| ("worker.host".to_string(), h.as_str()))
        .chain(config.pinned());
    for (key, host) in named {
        if !valid_host(host) {
            return refuse(key, format!("`{host}` must match [a-z0-9.-]{{1,63}}"));
        }
    }
    for (i, r) in config.repos.iter().enumerate() {
        if r.runs_on.is_some() && r.url.is_some() {
            return refuse(
                format!("repos[{i}].runs_on"),
                "a repo given by `url` is cloned by every worker and runs anywhere: pin a `path` repo",
            );
        }
    }
    Ok(())
}

fn sweep(config: &Config) -> Result<(), Refusal> {
    let s = &config.sweep;
    if s.concurrency == 0 || s.concurrency > 64 {
        return refuse(
            "sweep.concurrency",
            format!("{} is not in 1..=64", s.concurrency),
        );
    }
    if s.max_seconds == 0 {
        return refuse("sweep.max_seconds", "must be at least 1");
    }
    if s.lock_ttl_seconds < 30 {
        return refuse("sweep.lock_ttl_seconds", "must be at least 30");
    }
    unique_names(
        "repos",
        config.repos.iter().map(|r| r.name.as_str()),
        "registered twice",
    )?;
    for (i, repo) in config.repos.iter().enumerate() {
        match (&repo.url, repo.path.as_os_str().is_empty()) {
            (None, true) => {
                return refuse(
                    format!("repos[{i}].path"),
                    "set the repo's path, or its url (each worker then keeps its own clone)",
                );
            }
            (Some(_), false) => {
                return refuse(
                    format!("repos[{i}].url"),
                    "set a path or a url, not both: a url repo lives in each worker's own clone",
                );
            }
            (Some(url), true) if url.trim().is_empty() => {
                return refuse(format!("repos[{i}].url"), "must not be empty");
            }
            (Some(_), true) if repo.remote.is_some() => {
                return refuse(
                    format!("repos[{i}].remote"),
                    "a url repo's remote is its url (origin): leave remote out",
                );
            }
            _ => {}
        }
        if repo.push && repo.remote.is_none() && repo.url.is_none() {
            return refuse(format!("repos[{i}].push"), "push = true needs a remote");
        }
    }
    Ok(())
}

/// `[forge]`: its values, and each repository names an app.
fn forge(config: &Config, apps: &BTreeSet<String>) -> Result<(), Refusal> {
    let Some(forge) = &config.forge else {
        return Ok(());
    };
    forge
        .check()
        .or_else(|(key, m)| refuse(format!("forge.{key}"), m))?;
    if let Some((repo, app)) = forge.repos.iter().find(|(_, app)| !apps.contains(*app)) {
        return refuse(
            "forge.repos",
            format!("`{repo}` = `{app}`: `{app}` is not an [[apps]] entry"),
        );
    }
    if !config.operators.is_empty() && !forge.allowed_commenters.is_empty() {
        return refuse(
            "forge.allowed_commenters",
            "with [[operators]] declared, a commenter must be one of them (by forge login, with              `start` on the app): remove allowed_commenters",
        );
    }
    Ok(())
}

/// The `[[shared]]` services, and what the apps say of them: each app a
/// service names exists, each service an app uses exists, no app uses the
/// service it keeps warm.
fn shared(config: &Config, apps: &BTreeSet<String>) -> Result<(), Refusal> {
    let services = unique_names(
        "shared",
        config.shared.iter().map(|s| s.name.as_str()),
        "declared twice",
    )?;
    for (i, s) in config.shared.iter().enumerate() {
        s.check()
            .or_else(|(key, m)| refuse(format!("shared[{i}].{key}"), m))?;
        if let Some(app) = &s.app
            && !apps.contains(app)
        {
            return refuse(
                format!("shared[{i}].app"),
                format!("`{app}` is not an [[apps]] entry (the app that keeps the service warm)"),
            );
        }
    }
    for (i, a) in config.apps.iter().enumerate() {
        for name in &a.uses {
            let Some(s) = config.shared.iter().find(|s| &s.name == name) else {
                return refuse(
                    format!("apps[{i}].uses"),
                    format!(
                        "`{name}` is not a [[shared]] service (declared: {})",
                        services.iter().cloned().collect::<Vec<_>>().join(", ")
                    ),
                );
            };
            if s.app.as_deref() == Some(a.name.as_str()) {
                return refuse(
                    format!("apps[{i}].uses"),
                    format!("`{}` keeps `{name}` warm: it cannot use it too", a.name),
                );
            }
        }
    }
    Ok(())
}

fn schedules(
    config: &Config,
    apps: &BTreeSet<String>,
    drills: &BTreeSet<String>,
) -> Result<(), Refusal> {
    let list = config.schedules.as_deref().unwrap_or_default();
    unique_names(
        "schedules",
        list.iter().map(|s| s.name.as_str()),
        "declared twice",
    )?;
    for (i, sch) in list.iter().enumerate() {
        check_cron(&sch.cron).or_else(|m| refuse(format!("schedules[{i}].cron"), m))?;
        if sch.filter.is_some() && sch.workflow != ScheduleKind::ColdSweep {
            return refuse(
                format!("schedules[{i}].filter"),
                "only `cold-sweep` schedules take a filter",
            );
        }
        match (sch.workflow, &sch.drill) {
            (ScheduleKind::FailoverDrill, Some(d)) if drills.contains(d) => {}
            (ScheduleKind::FailoverDrill, _) => {
                return refuse(
                    format!("schedules[{i}].drill"),
                    "a `failover-drill` schedule needs the name of a [[drills]] entry",
                );
            }
            (_, Some(_)) => {
                return refuse(
                    format!("schedules[{i}].drill"),
                    "only `failover-drill` schedules name a drill",
                );
            }
            (_, None) => {}
        }
        match (sch.workflow, &sch.app) {
            (
                ScheduleKind::Sweep
                | ScheduleKind::RestoreDrill
                | ScheduleKind::ColdSweep
                | ScheduleKind::SharedReap
                | ScheduleKind::FailoverDrill,
                None,
            ) => {}
            (
                ScheduleKind::Sweep
                | ScheduleKind::RestoreDrill
                | ScheduleKind::ColdSweep
                | ScheduleKind::SharedReap
                | ScheduleKind::FailoverDrill,
                Some(_),
            ) => {
                return refuse(
                    format!("schedules[{i}].app"),
                    "only `upgrade` schedules name an app",
                );
            }
            (ScheduleKind::Upgrade, Some(app)) if apps.contains(app) => {}
            (ScheduleKind::Upgrade, _) => {
                return refuse(
                    format!("schedules[{i}].app"),
                    "an `upgrade` schedule needs the name of an [[apps]] entry",
                );
            }
        }
        if sch.source.trim().is_empty() {
            return refuse(format!("schedules[{i}].source"), "must not be empty");
        }
    }
    Ok(())
}
