//! One repo of a sweep, as stages that each return what the next needs:
//! the lease, the pull gate, the clean check, the assessment, the
//! reconciliation into the store, the writeback, the push, and the close
//! that records what the repo looks like now.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use steward_proto::limits;
use steward_proto::v1::{Finding, RepoSweepOutcome, RepoSweepRequest, RepoTarget};
use steward_proto::vocab::{ChangeState, CheckCode, RepoStatus};

use super::SweepSettings;
use super::error::{Error, io};
use super::writeback::{self, FileChange};
use crate::git::{Repo, Sync};
use crate::store::{self, StatusChange, Store, TaskRow, Workstream};
use crate::time::now_ms;
use crate::workplan::checks::{self, Known, RepoFile};
use crate::workplan::edit::{self, Edit};
use crate::workplan::{Workplan, parse};

/// What one repo's sweep has found and done so far.
struct Ctx<'a> {
    store: &'a Store,
    repo: &'a str,
    now: i64,
    findings: Vec<Finding>,
    actions: writeback::Actions,
}

impl Ctx<'_> {
    fn find(&mut self, check: CheckCode, file: &str, subject: &str, message: String) {
        self.findings.push(Finding {
            check: check.into(),
            repo: self.repo.into(),
            file: file.into(),
            subject: subject.into(),
            message,
            ..Default::default()
        });
    }

    fn act(&mut self, what: &str) {
        *self.actions.entry(what.to_string()).or_default() += 1;
    }

    /// Takes in what an earlier pass of this run did (kept with its
    /// writeback): an action this pass also counted is not counted twice.
    fn keep(&mut self, earlier: writeback::Actions) {
        for (what, n) in earlier {
            let mine = self.actions.entry(what).or_default();
            *mine = (*mine).max(n);
        }
    }
}

/// Edits to write back, by file.
type Edits = BTreeMap<String, Vec<Edit>>;

/// What the reconciliation leaves for the writeback and the close.
#[derive(Default)]
struct Reconciled {
    edits: Edits,
    /// Queued changes the writeback carries (or the file already had).
    applied: Vec<StatusChange>,
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
    renew_lease(store, req).await?;
    let opened = if target.url.is_empty() {
        Repo::open(Path::new(&target.path)).await
    } else {
        Some(super::clone::prepare(&target.url, Path::new(&target.path), &req.lock_holder).await?)
    };
    let Some(repo) = opened else {
        store
            .hold_findings(&target.name, store::findings::REASON_MISSING)
            .await?;
        outcome.status = RepoStatus::SkippedMissing.into();
        return Ok(outcome);
    };
    let mut cx = Ctx {
        store,
        repo: &target.name,
        now: now_ms(),
        findings: Vec::new(),
        actions: writeback::Actions::new(),
    };

    let recovered = writeback::recover(&repo, &req.lock_holder, settings).await?;
    if let Some((_, earlier)) = &recovered {
        cx.keep(earlier.clone());
        cx.act("interrupted writeback committed");
    }
    let gate = pull_gate(&mut cx, &repo, &target).await?;
    let writable = matches!(
        gate,
        Sync::FastForwarded | Sync::UpToDate | Sync::NoUpstream
    );

    let files = read_workplans(repo.dir())?;
    let pending = store.pending_changes(&target.name).await?;
    let state = store.repo_state(&target.name).await?;
    let fp = fingerprint(&repo.head().await, &files, &pending);
    // A retry after the earlier attempt committed reassesses the repo in
    // full and reports that commit, so the sweep's result still lists it.
    // Only a retry can find a commit of its own run: the first attempt
    // spares every repo of every sweep a git call.
    let earlier = if attempt > 1 {
        writeback::earlier_commit(&repo, &req.lock_holder).await
    } else {
        None
    };
    if !req.full && gate != Sync::FastForwarded && state.fingerprint == fp && earlier.is_none() {
        store.set_repo_swept(&target.name, &fp, cx.now).await?;
        outcome.status = RepoStatus::SkippedClean.into();
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
        elsewhere: store
            .workplan_ids_elsewhere(&target.name, &checks::referenced_ids(&parsed))
            .await?,
    };
    cx.findings
        .extend(checks::assess(&target.name, &parsed, &known));

    let reconciled = reconcile(&mut cx, &parsed, &known, &pending, writable).await?;
    if writable {
        let changes = rendered(&repo, &reconciled.edits)?;
        if !changes.is_empty()
            && let Some(commit) = writeback::write_and_commit(
                &repo,
                &changes,
                &req.lock_holder,
                settings,
                &cx.actions,
            )
            .await?
        {
            outcome.commit = commit;
            cx.act("writeback commits");
        }
    }
    if outcome.commit.is_empty() {
        if let Some((commit, _)) = recovered {
            outcome.commit = commit;
        } else if let Some((commit, done)) = earlier {
            outcome.commit = commit;
            cx.keep(done);
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
    for change in &reconciled.applied {
        store
            .resolve_change(&change.id, ChangeState::Applied, &outcome.commit, cx.now)
            .await?;
    }
    close(&cx, &repo, &target.name).await?;
    store
        .sync_findings(&target.name, &cx.findings, &req.lock_holder, cx.now)
        .await?;

    outcome.status = RepoStatus::Processed.into();
    outcome.actions = cx
        .actions
        .iter()
        .map(|(what, n)| format!("{what}: {n}"))
        .collect();
    (outcome.findings, outcome.findings_omitted) = bounded(cx.findings);
    Ok(outcome)
}

/// Whether the plan may count `target` as clean without an activity: a
/// local repo (no remote to fetch) whose HEAD, workplan files and queued
/// status changes are what the store saw last, with no interrupted
/// writeback. Anything else (a repo with a remote, a missing one, one that
/// changed) is left to the repo's activity, which decides as it always has.
pub async fn clean_at_plan(store: &Store, target: &RepoTarget) -> Result<bool, Error> {
    if !target.remote.is_empty() {
        return Ok(false);
    }
    let Some(repo) = Repo::open(Path::new(&target.path)).await else {
        return Ok(false);
    };
    if writeback::interrupted(&repo) {
        return Ok(false);
    }
    let state = store.repo_state(&target.name).await?;
    if state.fingerprint.is_empty() {
        return Ok(false);
    }
    let files = read_workplans(repo.dir())?;
    let pending = store.pending_changes(&target.name).await?;
    Ok(state.fingerprint == fingerprint(&repo.head().await, &files, &pending))
}

/// Renews the sweep's lease; a sweep that lost it must not write.
async fn renew_lease(store: &Store, req: &RepoSweepRequest) -> Result<(), Error> {
    if req.lock_holder.is_empty()
        || store
            .renew_lock(
                &req.lock_name,
                &req.lock_holder,
                req.lock_ttl_seconds,
                now_ms(),
            )
            .await?
    {
        return Ok(());
    }
    let holder = store
        .lock_holder(&req.lock_name)
        .await?
        .map(|h| h.0)
        .unwrap_or_default();
    Err(Error::LockLost(holder))
}

/// The pull gate: fetch and fast-forward when there is a remote; a
/// diverged or dirty tree is a C-16 finding and gets no writeback.
async fn pull_gate(cx: &mut Ctx<'_>, repo: &Repo, target: &RepoTarget) -> Result<Sync, Error> {
    let gate = if target.remote.is_empty() {
        if repo.is_dirty().await? {
            Sync::Dirty
        } else {
            Sync::UpToDate
        }
    } else {
        repo.pull_gate(&target.remote).await?
    };
    match gate {
        Sync::Diverged => cx.find(
            CheckCode::PullGateBlocked,
            "",
            "diverged",
            format!("branch has diverged from `{}`: no writeback", target.remote),
        ),
        Sync::Dirty => cx.find(
            CheckCode::PullGateBlocked,
            "",
            "dirty",
            "work tree has uncommitted changes: no writeback".into(),
        ),
        Sync::FastForwarded => cx.act("fast-forwarded"),
        Sync::UpToDate | Sync::NoUpstream => {}
    }
    Ok(gate)
}

/// Reconciles every parsed workplan of the repo with the store: workstream
/// and task records (assigning ids the files lack), queued status changes
/// (written back, or closed as conflicts or unknown tasks), tasks and
/// workstreams gone from the files (archived).
async fn reconcile(
    cx: &mut Ctx<'_>,
    parsed: &[RepoFile],
    known: &Known,
    pending: &[StatusChange],
    writable: bool,
) -> Result<Reconciled, Error> {
    let mut out = Reconciled::default();
    let mut seen_paths = BTreeSet::new();
    let mut seen_ids = BTreeSet::new();
    let by_task: BTreeMap<&str, &StatusChange> =
        pending.iter().map(|c| (c.task_id.as_str(), c)).collect();
    let mut present_tasks = BTreeSet::new();
    // A task id used by two blocks names neither: both are left as they
    // are (C-02 says why) rather than written over each other every sweep.
    let duplicated = duplicated_task_ids(parsed);

    for file in parsed {
        seen_paths.insert(file.path.clone());
        let Ok(wp) = &file.parsed else { continue };
        let id = value(wp.get("id"));
        if id.is_empty() || known.elsewhere.contains_key(&id) || !seen_ids.insert(id.clone()) {
            continue;
        }
        let Some(ws_id) = reconcile_workstream(cx, &file.path, wp, &id, &mut out.edits).await?
        else {
            continue;
        };
        for task in &wp.tasks {
            let task_id = value(task.get("id"));
            if task_id.is_empty() {
                continue;
            }
            present_tasks.insert(task_id.clone());
            if duplicated.contains(&task_id) {
                continue;
            }
            let file_status = value(task.get("status"));
            let existing = cx.store.task_by_task_id(&task_id).await?;
            if let Some(other) = task_elsewhere(cx, existing.as_ref(), &ws_id).await? {
                cx.find(
                    CheckCode::DuplicateTaskId,
                    &file.path,
                    &task_id,
                    format!("task id `{task_id}` is also used in repo `{other}`"),
                );
                continue;
            }
            let mut status = file_status.clone();
            if let Some(change) = by_task.get(task_id.as_str()) {
                let last_seen = existing
                    .as_ref()
                    .map(|t| t.file_status.clone())
                    .unwrap_or_default();
                if change.status == file_status {
                    out.applied.push((*change).clone());
                } else if !last_seen.is_empty() && last_seen != file_status {
                    cx.find(
                        CheckCode::WritebackConflict,
                        &file.path,
                        &task_id,
                        format!(
                            "{task_id}: status changed in the file (`{last_seen}` -> `{file_status}`) since the last sweep; queued `{}` not written",
                            change.status
                        ),
                    );
                    cx.store
                        .resolve_change(
                            &change.id,
                            ChangeState::Conflict,
                            &format!("file status is now `{file_status}`"),
                            cx.now,
                        )
                        .await?;
                } else if writable && let Some(field) = task.get("status") {
                    out.edits
                        .entry(file.path.clone())
                        .or_default()
                        .push(Edit::Replace {
                            field: field.clone(),
                            value: change.status.clone(),
                        });
                    status = change.status.clone();
                    out.applied.push((*change).clone());
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
            reconcile_task(cx, &file.path, task, task_row, existing, &mut out.edits).await?;
        }
        for old in cx.store.tasks_of(&ws_id).await? {
            if !old.archived && !present_tasks.contains(&old.task_id) {
                cx.store
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

    for change in pending {
        if !present_tasks.contains(&change.task_id) {
            cx.find(
                CheckCode::UnknownTask,
                "",
                &change.task_id,
                format!(
                    "status change for `{}` dropped: the task is not in this repo any more",
                    change.task_id
                ),
            );
            cx.store
                .resolve_change(
                    &change.id,
                    ChangeState::UnknownTask,
                    "task not found in repo",
                    cx.now,
                )
                .await?;
        }
    }

    for ws in cx.store.workstreams_of(cx.repo).await? {
        if !seen_paths.contains(&ws.path) && !seen_ids.contains(&ws.workplan_id) {
            cx.store.archive_workstream(&ws.id, cx.now).await?;
            cx.find(
                CheckCode::DeletedWorkplan,
                &ws.path,
                &ws.workplan_id,
                format!("{} was deleted; its record is archived", ws.workplan_id),
            );
            cx.act("workstreams archived");
        }
    }
    Ok(out)
}

/// Task ids that more than one block of the repo's parsed files use.
fn duplicated_task_ids(parsed: &[RepoFile]) -> BTreeSet<String> {
    let mut once = BTreeSet::new();
    let mut twice = BTreeSet::new();
    for task in parsed
        .iter()
        .filter_map(|f| f.parsed.as_ref().ok())
        .flat_map(|wp| &wp.tasks)
    {
        let id = value(task.get("id"));
        if !id.is_empty() && !once.insert(id.clone()) {
            twice.insert(id);
        }
    }
    twice
}

/// The repo whose live workstream already holds the task record
/// `existing`, when that is another repo than the one reconciling it into
/// `ws_id`: the id is taken there, and this block must not move it.
async fn task_elsewhere(
    cx: &Ctx<'_>,
    existing: Option<&TaskRow>,
    ws_id: &str,
) -> Result<Option<String>, Error> {
    let Some(t) = existing.filter(|t| !t.archived && t.workstream_id != ws_id) else {
        return Ok(None);
    };
    Ok(cx
        .store
        .workstream_by_id(&t.workstream_id)
        .await?
        .filter(|w| !w.archived && w.repo != cx.repo)
        .map(|w| w.repo))
}

/// The files the edits change, with their new content; a file whose
/// edits are already in it is left out.
fn rendered(repo: &Repo, edits: &Edits) -> Result<Vec<FileChange>, Error> {
    let mut changes = Vec::new();
    for (path, file_edits) in edits {
        let full = repo.dir().join(path);
        let text = std::fs::read_to_string(&full).map_err(io(&full))?;
        let ending = parse(text.as_bytes())
            .ok()
            .map(|w| w.line_ending)
            .unwrap_or("\n");
        let content = edit::apply(&text, file_edits, ending);
        if content != text {
            changes.push(FileChange {
                path: path.clone(),
                content,
            });
        }
    }
    Ok(changes)
}

/// Remembers what the repo looks like after this sweep (HEAD, files,
/// changes still pending), so the next sweep can skip it while nothing
/// changes.
async fn close(cx: &Ctx<'_>, repo: &Repo, name: &str) -> Result<(), Error> {
    let after = read_workplans(repo.dir())?;
    let left = cx.store.pending_changes(name).await?;
    cx.store
        .set_repo_swept(
            name,
            &fingerprint(&repo.head().await, &after, &left),
            cx.now,
        )
        .await?;
    Ok(())
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
                CheckCode::ForeignId,
                path,
                id,
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
                CheckCode::ForeignId,
                path,
                id,
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
                CheckCode::ForeignId,
                path,
                &row.task_id,
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
                CheckCode::ForeignId,
                path,
                &row.task_id,
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
