//! The checks every fault and security test ends with: nothing lost on
//! the server, no secret anywhere, nothing world-writable.

use std::path::Path;
use std::time::Duration;

use crate::wait_for;

/// A password planted in PostgreSQL URLs (trust auth ignores it), which must
/// never show up in a payload, a history, an event, a file or a log.
pub const PLANTED_SECRET: &str = "planted-Secret-7f3a91";

/// `url` with [`PLANTED_SECRET`] as the password of its user.
pub fn with_planted_password(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (user, host) = rest.split_once('@').expect("a user in the URL");
    format!("{scheme}://{user}:{PLANTED_SECRET}@{host}")
}

/// Fails naming the file when [`PLANTED_SECRET`] is in any file under
/// `root` (recursively; the state store, evidence, alerts, backups, exported
/// histories, logs), but for the config file `config` that holds it, or in
/// any of `texts`.
pub fn assert_no_planted_secret(root: &Path, config: &Path, texts: &[(&str, &str)]) {
    fn walk(path: &Path, config: &Path, found: &mut Vec<String>, seen: &mut usize) {
        if path == config {
        } else if path.is_dir() {
            for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
                walk(&entry.path(), config, found, seen);
            }
        } else if let Ok(bytes) = std::fs::read(path) {
            *seen += 1;
            if bytes
                .windows(PLANTED_SECRET.len())
                .any(|w| w == PLANTED_SECRET.as_bytes())
            {
                found.push(path.display().to_string());
            }
        }
    }
    let mut found = Vec::new();
    let mut seen = 0;
    walk(root, config, &mut found, &mut seen);
    assert!(seen > 1, "no files to search under {}", root.display());
    for (name, text) in texts {
        if text.contains(PLANTED_SECRET) {
            found.push((*name).to_string());
        }
    }
    assert!(found.is_empty(), "the planted secret leaked into {found:?}");
}

/// The server side of "nothing lost" after a fault: every workflow run in
/// the namespace (a test's server holds only its own) has completed or
/// continued as new, and no history holds a failed workflow task. Visibility lags a little behind
/// the histories, so open runs are waited for, up to 30 s.
pub async fn assert_every_run_closed_without_task_failures(client: &temporalio_client::Client) {
    use futures::StreamExt as _;
    use temporalio_client::{WorkflowExecutionStatus, WorkflowListOptions};
    use temporalio_common::protos::temporal::api::history::v1::history_event::Attributes;

    let runs = wait_for(
        "every workflow run to close",
        Duration::from_secs(30),
        || async {
            let mut runs = Vec::new();
            let mut stream = client.list_workflows("", WorkflowListOptions::default());
            while let Some(run) = stream.next().await {
                let run = run.ok()?;
                if run.status() == WorkflowExecutionStatus::Running {
                    return None;
                }
                runs.push((run.id().to_string(), run.run_id().to_string(), run.status()));
            }
            Some(runs)
        },
    )
    .await
    .unwrap();
    assert!(!runs.is_empty(), "no workflow runs to check");
    for (id, run_id, status) in runs {
        assert!(
            matches!(
                status,
                WorkflowExecutionStatus::Completed | WorkflowExecutionStatus::ContinuedAsNew
            ),
            "{id}/{run_id} ended {status:?}"
        );
        let events = steward_worker::history::fetch_events(client, &id, Some(&run_id))
            .await
            .unwrap();
        let failed: Vec<i64> = events
            .iter()
            .filter(|ev| {
                matches!(
                    ev.attributes,
                    Some(Attributes::WorkflowTaskFailedEventAttributes(_))
                )
            })
            .map(|ev| ev.event_id)
            .collect();
        assert!(
            failed.is_empty(),
            "{id}/{run_id}: failed workflow tasks at events {failed:?}"
        );
    }
}

/// Fails naming every file or folder under `root` that others may write
/// (mode `o+w`); `root` must hold at least one file.
pub fn assert_not_world_writable(root: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    fn walk(path: &Path, bad: &mut Vec<String>, files: &mut usize) {
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            return;
        };
        if meta.permissions().mode() & 0o002 != 0 {
            bad.push(format!(
                "{} ({:o})",
                path.display(),
                meta.permissions().mode()
            ));
        }
        if meta.is_dir() {
            for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
                walk(&entry.path(), bad, files);
            }
        } else {
            *files += 1;
        }
    }
    let (mut bad, mut files) = (Vec::new(), 0);
    walk(root, &mut bad, &mut files);
    assert!(files > 0, "no files under {}", root.display());
    assert!(bad.is_empty(), "world-writable: {bad:?}");
}

/// Asserts that `activity` ran in a `steward history --json` timeline and
/// every attempt of it on a worker of `host` (its identity ends
/// `host <host>`).
pub fn assert_ran_only_on(timeline: &serde_json::Value, activity: &str, host: &str) {
    let workers: Vec<&str> = timeline
        .as_array()
        .expect("a timeline")
        .iter()
        .filter(|x| x["name"] == activity)
        .map(|x| x["detail"]["worker"].as_str().unwrap_or_default())
        .collect();
    assert!(!workers.is_empty(), "{activity} ran: {timeline}");
    for worker in &workers {
        assert!(
            worker.ends_with(&format!("host {host}")),
            "{activity} ran on `{worker}`, not on host {host}: {workers:?}"
        );
    }
}
