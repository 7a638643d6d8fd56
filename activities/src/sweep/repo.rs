//! One repo of a sweep: pull gate, fingerprint, parse and assess, reconcile
//! into the store, write back ids and queued status changes, commit.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use steward_proto::limits;
use steward_proto::v1::{Finding, RepoSweepOutcome, RepoSweepRequest};

use super::{SweepSettings, now_ms};
use crate::git::{self, Repo, Sync};
use crate::store::{self, StatusChange, Store, TaskRow, Workstream};
use crate::workplan::checks::{self, Known, RepoFile};
use crate::workplan::edit::{self, Edit};
use crate::workplan::{Workplan, parse};

/// Why a repo's activity failed (an automation error, C-00, once retries
/// are spent).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The state store failed.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// A git command failed.
    #[error(transparent)]
    Git(#[from] git::Error),
    /// Reading or writing a workplan file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Another sweep took the lock: this one must not write.
    #[error("the sweep lock is no longer held by this sweep (now: {0})")]
    LockLost(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}

struct Ctx<'a> {
    store: &'a Store,
    repo: &'a str,
    now: i64,
    findings: Vec<Finding>,
    actions: BTreeMap<&'static str, u32>,
}

impl Ctx<'_> {
    fn find(&mut self, check: &str, file: &str, message: String) {
        self.findings.push(Finding {
            check: check.into(),
            repo: self.repo.into(),
            file: file.into(),
            message,
        });
    }

    fn act(&mut self, what: &'static str) {
        *self.actions.entry(what).or_default() += 1;
    }
}

/// Sweeps one repo, as the activity's `attempt` (1 for the first). See
/// [`super::SweepActivities::sweep_repo`] for why a retry is safe.
pub async fn process_repo(
    store: &Store,
    settings: &SweepSettings,
    req: &RepoSweepRequest,
    attempt: u32,
) -> Result<RepoSweepOutcome, Error> {
    let target = req.repo.clone().unwrap_or_default();
    let mut outcome = RepoSweepOutcome {
        repo: target.name.clone(),
        ..Default::default()
    };
    if !req.lock_holder.is_empty()
        && !store
            .renew_lock(
                &req.lock_name,
                &req.lock_holder,
                req.lock_ttl_seconds,
                now_ms(),
            )
            .await?
    {
        let holder = store
            .lock_holder(&req.lock_name)
            .await?
            .map(|h| h.0)
            .unwrap_or_default();
        return Err(Error::LockLost(holder));
    }

    let Some(repo) = Repo::open(Path::new(&target.path)).await else {
        outcome.status = "skipped_missing".into();
        return Ok(outcome);
    };
    let mut cx = Ctx {
        store,
        repo: &target.name,
        now: now_ms(),
        findings: Vec::new(),
        actions: BTreeMap::new(),
    };

    let recovered = recover_writeback(&repo, &req.lock_holder, settings).await?;
    if recovered.is_some() {
        cx.act("interrupted writeback committed");
    }
    let gate = if target.remote.is_empty() {
        if repo.is_dirty().await? {
            Sync::Dirty
        } else {
            Sync::UpToDate
        }
    } else {
        repo.pull_gate(&target.remote).await?
    };
    let writable = match gate {
        Sync::Diverged => {
            cx.find(
                "C-16",
                "",
                format!("branch has diverged from `{}`: no writeback", target.remote),
            );
            false
        }
        Sync::Dirty => {
            cx.find(
                "C-16",
                "",
                "work tree has uncommitted changes: no writeback".into(),
            );
            false
        }
        Sync::FastForwarded => {
            cx.act("fast-forwarded");
            true
        }
        Sync::UpToDate | Sync::NoUpstream => true,
    };

    let files = read_workplans(repo.dir())?;
    let pending = store.pending_changes(&target.name).await?;
    let state = store.repo_state(&target.name).await?;
    let fp = fingerprint(&repo.head().await, &files, &pending);
    // A retry after the earlier attempt committed reassesses the repo in
    // full and reports that commit, so the sweep's result still lists it.
    // Only a retry can find a commit of its own run: the first attempt
    // spares every repo of every sweep a git call.
    let earlier = if attempt > 1 {
        earlier_writeback(&repo, &req.lock_holder).await
    } else {
        None
    };
    if !req.full && gate != Sync::FastForwarded && state.fingerprint == fp && earlier.is_none() {
        store.set_repo_swept(&target.name, &fp, cx.now).await?;
        outcome.status = "skipped_clean".into();
        return Ok(outcome);
    }

    let parsed: Vec<RepoFile> = files
        .iter()
        .map(|(path, bytes)| RepoFile {
            path: path.clone(),
            parsed: parse(bytes),
        })
        .collect();
    let known = Known {
        elsewhere: store.workplan_ids_elsewhere(&target.name).await?,
    };
    cx.findings
        .extend(checks::assess(&target.name, &parsed, &known));

    let mut edits: BTreeMap<String, Vec<Edit>> = BTreeMap::new();
    let mut seen_paths = BTreeSet::new();
    let mut seen_ids = BTreeSet::new();
    let mut applied: Vec<StatusChange> = Vec::new();
    let by_task: BTreeMap<&str, &StatusChange> =
        pending.iter().map(|c| (c.task_id.as_str(), c)).collect();
    let mut present_tasks = BTreeSet::new();

    for file in &parsed {
        seen_paths.insert(file.path.clone());
        let Ok(wp) = &file.parsed else { continue };
        let id = value(wp.get("id"));
        if id.is_empty() || known.elsewhere.contains_key(&id) || !seen_ids.insert(id.clone()) {
            continue;
        }
        let Some(ws_id) = reconcile_workstream(&mut cx, &file.path, wp, &id, &mut edits).await?
        else {
            continue;
        };
        for task in &wp.tasks {
            let task_id = value(task.get("id"));
            if task_id.is_empty() {
                continue;
            }
            present_tasks.insert(task_id.clone());
            let file_status = value(task.get("status"));
            let existing = store.task_by_task_id(&task_id).await?;
            let mut status = file_status.clone();
            if let Some(change) = by_task.get(task_id.as_str()) {
                let last_seen = existing
                    .as_ref()
                    .map(|t| t.file_status.clone())
                    .unwrap_or_default();
                if change.status == file_status {
                    applied.push((*change).clone());
                } else if !last_seen.is_empty() && last_seen != file_status {
                    cx.find(
                        "C-15",
                        &file.path,
                        format!(
                            "{task_id}: status changed in the file (`{last_seen}` -> `{file_status}`) since the last sweep; queued `{}` not written",
                            change.status
                        ),
                    );
                    store
                        .resolve_change(
                            &change.id,
                            "conflict",
                            &format!("file status is now `{file_status}`"),
                            cx.now,
                        )
                        .await?;
                } else if writable && let Some(field) = task.get("status") {
                    edits
                        .entry(file.path.clone())
                        .or_default()
                        .push(Edit::Replace {
                            field: field.clone(),
                            value: change.status.clone(),
                        });
                    status = change.status.clone();
                    applied.push((*change).clone());
                    cx.act("status changes written");
                }
            }
            let task_row = TaskRow {
                id: String::new(),
                task_id: task_id.clone(),
                workstream_id: ws_id.clone(),
                title: task.title.clone().unwrap_or_default(),
                status: status.clone(),
                file_status: status,
                priority: value(task.get("priority")),
                needs_human: value(task.get("needs_human")) == "true",
                intervention_note: value(task.get("intervention_note")),
                archived: false,
            };
            reconcile_task(&mut cx, &file.path, task, task_row, existing, &mut edits).await?;
        }
        for old in store.tasks_of(&ws_id).await? {
            if !old.archived && !present_tasks.contains(&old.task_id) {
                store
                    .upsert_task(
                        &TaskRow {
                            archived: true,
                            ..old
                        },
                        cx.now,
                    )
                    .await?;
                cx.act("tasks archived");
            }
        }
    }

    for change in &pending {
        if !present_tasks.contains(&change.task_id) {
            cx.find(
                "C-17",
                "",
                format!(
                    "status change for `{}` dropped: the task is not in this repo any more",
                    change.task_id
                ),
            );
            store
                .resolve_change(&change.id, "unknown_task", "task not found in repo", cx.now)
                .await?;
        }
    }

    for ws in store.workstreams_of(&target.name).await? {
        if !seen_paths.contains(&ws.path) && !seen_ids.contains(&ws.workplan_id) {
            store.archive_workstream(&ws.id, cx.now).await?;
            cx.find(
                "C-11",
                &ws.path,
                format!("{} was deleted; its record is archived", ws.workplan_id),
            );
            cx.act("workstreams archived");
        }
    }

    if writable && !edits.is_empty() {
        let mut changes = Vec::new();
        for (path, file_edits) in &edits {
            let full = repo.dir().join(path);
            let text = std::fs::read_to_string(&full).map_err(io(&full))?;
            let wp = parse(text.as_bytes()).ok();
            let ending = wp.as_ref().map(|w| w.line_ending).unwrap_or("\n");
            let new = edit::apply(&text, file_edits, ending);
            if new != text {
                changes.push((path.clone(), full, new));
            }
        }
        if !changes.is_empty() {
            // The journal lets a retry after a crash between these writes
            // and the commit recognise the half-done writeback as its own.
            let journal = Journal {
                files: changes
                    .iter()
                    .map(|(path, _, new)| JournalFile {
                        path: path.clone(),
                        sha256: sha256(new.as_bytes()),
                    })
                    .collect(),
            };
            journal.write(&repo)?;
            for (_, full, new) in &changes {
                write_atomic(full, new.as_bytes())?;
            }
            let paths: Vec<String> = changes.iter().map(|(p, _, _)| p.clone()).collect();
            if let Some(commit) =
                commit_writeback(&repo, &paths, &req.lock_holder, settings).await?
            {
                outcome.commit = commit;
                cx.act("writeback commits");
            }
            Journal::remove(&repo)?;
        }
    }
    if outcome.commit.is_empty() {
        if let Some(commit) = recovered {
            outcome.commit = commit;
        } else if let Some(commit) = earlier {
            outcome.commit = commit;
            cx.act("writeback committed by an earlier attempt");
        }
    }
    if writable
        && target.push
        && !target.remote.is_empty()
        && repo.has_unpushed(&target.remote).await?
    {
        repo.push(&target.remote).await?;
        outcome.pushed = true;
        cx.act("pushed");
    }
    for change in &applied {
        store
            .resolve_change(&change.id, "applied", &outcome.commit, cx.now)
            .await?;
    }

    let after = read_workplans(repo.dir())?;
    let left = store.pending_changes(&target.name).await?;
    store
        .set_repo_swept(
            &target.name,
            &fingerprint(&repo.head().await, &after, &left),
            cx.now,
        )
        .await?;

    outcome.status = "processed".into();
    outcome.actions = cx
        .actions
        .iter()
        .map(|(what, n)| format!("{what}: {n}"))
        .collect();
    (outcome.findings, outcome.findings_omitted) = bounded(cx.findings);
    Ok(outcome)
}

/// At most [`limits::FINDINGS_PER_REPO`] findings, each message at most
/// [`limits::FINDING_MESSAGE_CHARS`], and how many were left out: a repo
/// with tens of thousands of broken workplans must not push the activity's
/// result past the server's payload limit.
fn bounded(mut findings: Vec<Finding>) -> (Vec<Finding>, u32) {
    let omitted = findings.len().saturating_sub(limits::FINDINGS_PER_REPO);
    findings.truncate(limits::FINDINGS_PER_REPO);
    for f in &mut findings {
        if let Some((cut, _)) = f.message.char_indices().nth(limits::FINDING_MESSAGE_CHARS) {
            f.message.truncate(cut);
            f.message.push('…');
        }
    }
    (findings, u32::try_from(omitted).unwrap_or(u32::MAX))
}

/// A writeback about to happen, kept in the git directory (never in the
/// work tree) from before the first file is written until after the
/// commit.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Journal {
    files: Vec<JournalFile>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct JournalFile {
    path: String,
    sha256: String,
}

const JOURNAL_FILE: &str = "steward-writeback.json";

impl Journal {
    fn path(repo: &Repo) -> PathBuf {
        repo.git_dir().join(JOURNAL_FILE)
    }

    fn write(&self, repo: &Repo) -> Result<(), Error> {
        let path = Self::path(repo);
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        crate::files::write_private(&path, &bytes).map_err(io(&path))
    }

    fn read(repo: &Repo) -> Result<Option<Self>, Error> {
        let path = Self::path(repo);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }

    fn remove(repo: &Repo) -> Result<(), Error> {
        let path = Self::path(repo);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&path)(e)),
            _ => Ok(()),
        }
    }
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Commits the written workplan files, naming the sweep run in a trailer.
async fn commit_writeback(
    repo: &Repo,
    paths: &[String],
    holder: &str,
    settings: &SweepSettings,
) -> Result<Option<String>, Error> {
    let mut message = format!(
        "steward: write back State Hub ids and status changes\n\n{}",
        paths
            .iter()
            .map(|p| format!("- {p}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    if !holder.is_empty() {
        message.push_str(&format!("\n\n{SWEEP_TRAILER}: {holder}"));
    }
    Ok(repo
        .commit(
            paths,
            &message,
            &settings.committer_name,
            &settings.committer_email,
        )
        .await?)
}

/// Finishes a writeback that an earlier attempt interrupted between
/// writing files and committing them: when every uncommitted change is a
/// journaled file with exactly the journaled content, those files are
/// committed. Anything else (a person's edit, a different content) is left
/// alone and the repo stays dirty, so the pull gate reports it (C-16).
async fn recover_writeback(
    repo: &Repo,
    holder: &str,
    settings: &SweepSettings,
) -> Result<Option<String>, Error> {
    let Some(journal) = Journal::read(repo)? else {
        return Ok(None);
    };
    let changed = repo.changed_paths().await?;
    if changed.is_empty() {
        Journal::remove(repo)?;
        return Ok(None);
    }
    let ours = changed.iter().all(|path| {
        journal.files.iter().any(|f| {
            f.path == *path
                && std::fs::read(repo.dir().join(path)).is_ok_and(|b| sha256(&b) == f.sha256)
        })
    });
    if !ours {
        return Ok(None);
    }
    let commit = commit_writeback(repo, &changed, holder, settings).await?;
    Journal::remove(repo)?;
    Ok(commit)
}

/// The git trailer naming the sweep run that made a writeback commit.
pub const SWEEP_TRAILER: &str = "Steward-Sweep";

/// HEAD, when HEAD is a writeback commit made by this same sweep run: an
/// earlier attempt of this activity committed and then died before it could
/// report. A sweep without a holder (a test's direct call) has no trailer.
async fn earlier_writeback(repo: &Repo, holder: &str) -> Option<String> {
    if holder.is_empty() {
        return None;
    }
    let trailer = format!("{SWEEP_TRAILER}: {holder}");
    let message = repo.head_message().await;
    if message.lines().any(|l| l.trim() == trailer) {
        Some(repo.head().await)
    } else {
        None
    }
}

fn value(field: Option<&crate::workplan::Field>) -> String {
    field.map(|f| f.value.clone()).unwrap_or_default()
}

/// Upserts the workstream of one file; returns its UUID, or None when the
/// file's id points at another record (C-12).
async fn reconcile_workstream(
    cx: &mut Ctx<'_>,
    path: &str,
    wp: &Workplan,
    id: &str,
    edits: &mut BTreeMap<String, Vec<Edit>>,
) -> Result<Option<String>, Error> {
    let file_uuid = value(wp.get("state_hub_workstream_id"));
    let by_natural = cx.store.workstream_by_workplan_id(id).await?;
    let uuid = if file_uuid.is_empty() {
        let uuid = by_natural
            .as_ref()
            .map(|w| w.id.clone())
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        edits.entry(path.into()).or_default().push(Edit::Insert {
            offset: wp.frontmatter_close_offset,
            key: "state_hub_workstream_id".into(),
            value: uuid.clone(),
        });
        cx.act("workstream ids assigned");
        uuid
    } else {
        if let Some(other) = cx.store.workstream_by_id(&file_uuid).await?
            && other.workplan_id != id
        {
            cx.find(
                "C-12",
                path,
                format!(
                    "state_hub_workstream_id {file_uuid} belongs to `{}`",
                    other.workplan_id
                ),
            );
            return Ok(None);
        }
        if let Some(w) = &by_natural
            && w.id != file_uuid
        {
            cx.find(
                "C-12",
                path,
                format!("store knows `{id}` as {}, the file says {file_uuid}", w.id),
            );
            return Ok(None);
        }
        file_uuid
    };
    let row = Workstream {
        id: uuid.clone(),
        workplan_id: id.into(),
        repo: cx.repo.into(),
        path: path.into(),
        title: value(wp.get("title")),
        status: value(wp.get("status")),
        owner: value(wp.get("owner")),
        domain: value(wp.get("domain")),
        depends_on: value(wp.get("depends_on")),
        archived: false,
    };
    let before = cx.store.workstream_by_id(&uuid).await?;
    if before.as_ref() != Some(&row) {
        cx.store.upsert_workstream(&row, cx.now).await?;
        cx.act(if before.is_none() {
            "workstreams created"
        } else {
            "workstreams updated"
        });
    }
    Ok(Some(uuid))
}

async fn reconcile_task(
    cx: &mut Ctx<'_>,
    path: &str,
    task: &crate::workplan::Task,
    mut row: TaskRow,
    existing: Option<TaskRow>,
    edits: &mut BTreeMap<String, Vec<Edit>>,
) -> Result<(), Error> {
    let file_uuid = value(task.get("state_hub_task_id"));
    if file_uuid.is_empty() {
        row.id = existing
            .as_ref()
            .map(|t| t.id.clone())
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        edits.entry(path.into()).or_default().push(Edit::Insert {
            offset: task.close_offset,
            key: "state_hub_task_id".into(),
            value: row.id.clone(),
        });
        cx.act("task ids assigned");
    } else {
        if let Some(other) = cx.store.task_by_id(&file_uuid).await?
            && other.task_id != row.task_id
        {
            cx.find(
                "C-12",
                path,
                format!(
                    "state_hub_task_id {file_uuid} belongs to `{}`",
                    other.task_id
                ),
            );
            return Ok(());
        }
        if let Some(t) = &existing
            && t.id != file_uuid
        {
            cx.find(
                "C-12",
                path,
                format!(
                    "store knows `{}` as {}, the file says {file_uuid}",
                    row.task_id, t.id
                ),
            );
            return Ok(());
        }
        row.id = file_uuid;
    }
    let before = cx.store.task_by_id(&row.id).await?;
    if before.as_ref() != Some(&row) {
        cx.store.upsert_task(&row, cx.now).await?;
        cx.act(if before.is_none() {
            "tasks created"
        } else {
            "tasks updated"
        });
    }
    Ok(())
}

/// Workplan files of a work tree: `workplans/**/*.md` except the human
/// index `workplans/README.md`, sorted by path, with their bytes.
pub fn read_workplans(dir: &Path) -> Result<Vec<(String, Vec<u8>)>, Error> {
    let root = dir.join("workplans");
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = vec![root.clone()];
    while let Some(folder) = stack.pop() {
        let entries = match std::fs::read_dir(&folder) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(&folder)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io(&folder))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(io(&path))?;
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() && path.extension().is_some_and(|e| e == "md") {
                let rel = path
                    .strip_prefix(dir)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .replace('\\', "/");
                if rel == "workplans/README.md" {
                    continue;
                }
                let bytes = std::fs::read(&path).map_err(io(&path))?;
                out.push((rel, bytes));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Fingerprint of what a sweep of the repo depends on: HEAD, every
/// workplan file's bytes, and the pending status changes.
pub fn fingerprint(head: &str, files: &[(String, Vec<u8>)], pending: &[StatusChange]) -> String {
    let mut h = Sha256::new();
    h.update(head.as_bytes());
    for (path, bytes) in files {
        h.update([0]);
        h.update(path.as_bytes());
        h.update([0]);
        h.update(Sha256::digest(bytes));
    }
    for c in pending {
        h.update([1]);
        h.update(c.id.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Replaces `path` through a temporary file and a rename, so a crash never
/// leaves a half-written workplan; keeps the file's permissions.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let tmp = path.with_extension("md.steward-tmp");
    std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
    if let Ok(meta) = std::fs::metadata(path) {
        std::fs::set_permissions(&tmp, meta.permissions()).map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io(path))
}
