//! Writing a repo's edits back: the journal that makes a half-done
//! writeback recognisable, atomic file replacement, and the commit with the
//! trailer that names the sweep run.
//!
//! The journal lives in the git directory (never in the work tree) from
//! before the first file is written until after the commit. A retry that
//! finds it, with exactly the journaled contents uncommitted, commits them;
//! anything else stays dirty for a person to look at.
//!
//! What the pass did to the repo (ids assigned, status changes written) is
//! kept with the writeback, in the journal and in the commit's trailers,
//! so a later pass of the same run that reports the commit also reports
//! what the commit did.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::SweepSettings;
use super::error::{Error, io};
use crate::git::Repo;

/// The git trailer naming the sweep run that made a writeback commit.
pub const SWEEP_TRAILER: &str = "Steward-Sweep";

/// The git trailer of each thing the pass that committed did, with its
/// count (`Steward-Action: task ids assigned: 3`).
pub const ACTION_TRAILER: &str = "Steward-Action";

/// What a pass did, by what and how many.
pub type Actions = std::collections::BTreeMap<String, u32>;

const JOURNAL_FILE: &str = "steward-writeback.json";

/// A writeback about to happen: each file and the SHA-256 of its new
/// content.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Journal {
    files: Vec<JournalFile>,
    /// What the pass that wrote them did (empty in journals written before
    /// actions were kept).
    #[serde(default)]
    actions: Actions,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct JournalFile {
    path: String,
    sha256: String,
}

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

/// Whether a writeback of `repo` was interrupted (its journal is there).
pub fn interrupted(repo: &Repo) -> bool {
    Journal::path(repo).exists()
}

/// SHA-256 of `bytes`, hex.
pub fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// One file to replace: its path in the repo and its new content.
#[derive(Debug)]
pub struct FileChange {
    /// Path inside the work tree.
    pub path: String,
    /// The whole new content.
    pub content: String,
}

/// Journals `changes` with what the pass did (`actions`), writes them,
/// commits them as `holder`'s writeback and removes the journal. The
/// commit, unless it was empty.
pub async fn write_and_commit(
    repo: &Repo,
    changes: &[FileChange],
    holder: &str,
    settings: &SweepSettings,
    actions: &Actions,
) -> Result<Option<String>, Error> {
    Journal {
        files: changes
            .iter()
            .map(|c| JournalFile {
                path: c.path.clone(),
                sha256: sha256(c.content.as_bytes()),
            })
            .collect(),
        actions: actions.clone(),
    }
    .write(repo)?;
    for c in changes {
        write_atomic(&repo.dir().join(&c.path), c.content.as_bytes())?;
    }
    let paths: Vec<String> = changes.iter().map(|c| c.path.clone()).collect();
    let commit = commit(repo, &paths, holder, settings, actions).await?;
    Journal::remove(repo)?;
    Ok(commit)
}

/// Commits the written workplan files, naming the sweep run and what the
/// pass did in trailers.
async fn commit(
    repo: &Repo,
    paths: &[String],
    holder: &str,
    settings: &SweepSettings,
    actions: &Actions,
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
        for (what, n) in actions {
            message.push_str(&format!("\n{ACTION_TRAILER}: {what}: {n}"));
        }
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
pub async fn recover(
    repo: &Repo,
    holder: &str,
    settings: &SweepSettings,
) -> Result<Option<(String, Actions)>, Error> {
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
    let commit = commit(repo, &changed, holder, settings, &journal.actions).await?;
    Journal::remove(repo)?;
    Ok(commit.map(|c| (c, journal.actions)))
}

/// HEAD and what the pass that made it did, when HEAD is a writeback
/// commit made by this same sweep run: an earlier pass committed and then
/// failed or died before it could report. A sweep without a holder (a
/// test's direct call) has no trailer.
pub async fn earlier_commit(repo: &Repo, holder: &str) -> Option<(String, Actions)> {
    if holder.is_empty() {
        return None;
    }
    let trailer = format!("{SWEEP_TRAILER}: {holder}");
    let message = repo.head_message().await;
    if !message.lines().any(|l| l.trim() == trailer) {
        return None;
    }
    Some((repo.head().await, actions_of(&message)))
}

/// The actions a writeback commit's trailers record.
fn actions_of(message: &str) -> Actions {
    message
        .lines()
        .filter_map(|l| l.trim().strip_prefix(ACTION_TRAILER)?.strip_prefix(": "))
        .filter_map(|rest| {
            let (what, n) = rest.rsplit_once(": ")?;
            Some((what.to_string(), n.parse().ok()?))
        })
        .collect()
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

#[cfg(test)]
mod action_trailers {
    use super::*;

    #[test]
    fn the_actions_a_commit_records_read_back() {
        let message = "steward: write back\n\n- a.md\n\nSteward-Sweep: run-1\n\
                       Steward-Action: task ids assigned: 3\nSteward-Action: workstream ids assigned: 1\n";
        let actions = actions_of(message);
        assert_eq!(actions.get("task ids assigned"), Some(&3));
        assert_eq!(actions.get("workstream ids assigned"), Some(&1));
        assert_eq!(actions.len(), 2);
        assert!(actions_of("no trailers").is_empty());
    }
}
