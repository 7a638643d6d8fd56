//! A repo reached by URL (`[[repos]] url`): each worker keeps its own clone
//! under its data dir, so workers on several hosts share the work with no
//! shared disk. The clone is a cache, never a person's work tree: it is
//! made whole or not at all (cloned into a temporary folder, renamed into
//! place), checked before it is used, and put back in line with the
//! remote, keeping only this sweep's own writeback (which a retry pushes).

use std::path::Path;

use super::error::{Error, io};
use super::writeback::{self, SWEEP_TRAILER};
use crate::git::Repo;

/// The remote a clone's origin is.
pub const ORIGIN: &str = "origin";

/// A clone of `url` at `dir` that git can read: cloned, or the one there
/// after it passed its checks (recloned when it did not), put in line with
/// origin but for this sweep's (`holder`'s) own unpushed writeback.
pub async fn prepare(url: &str, dir: &Path, holder: &str) -> Result<Repo, Error> {
    let repo = match healthy(url, dir).await {
        Some(repo) => repo,
        None => reclone(url, dir).await?,
    };
    settle(&repo, holder).await?;
    Ok(repo)
}

/// Forgets the clone at `dir`, so the next use clones afresh (after a
/// failure, a cache is never trusted again).
pub fn forget(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}

/// The clone at `dir` if it is a clone of `url` whose HEAD commit and tree
/// git can read.
async fn healthy(url: &str, dir: &Path) -> Option<Repo> {
    let repo = Repo::open(dir).await?;
    let origin = repo
        .run(&["config", "--get", "remote.origin.url"])
        .await
        .ok()?;
    if origin.trim() != url {
        return None;
    }
    repo.run(&["rev-parse", "--verify", "-q", "HEAD^{commit}"])
        .await
        .ok()?;
    repo.run(&["ls-tree", "-r", "HEAD", "--", "workplans"])
        .await
        .ok()?;
    Some(repo)
}

/// Clones `url` into a temporary folder beside `dir` and renames it into
/// place: a worker killed mid-clone leaves a temporary folder (removed by
/// the next clone), never a half clone at `dir`.
async fn reclone(url: &str, dir: &Path) -> Result<Repo, Error> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // What a clone killed mid-way left (its process is gone) goes first.
    let prefix = format!("{name}.cloning-");
    for entry in std::fs::read_dir(parent).into_iter().flatten().flatten() {
        let other = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = other.strip_prefix(&prefix)
            && !Path::new("/proc").join(pid).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let tmp = parent.join(format!("{name}.cloning-{}", std::process::id()));
    let runner = Repo::at(parent);
    runner
        .run(&["clone", "--quiet", url, &tmp.display().to_string()])
        .await?;
    forget(dir);
    std::fs::rename(&tmp, dir).map_err(io(dir))?;
    Repo::open(dir).await.ok_or_else(|| Error::Io {
        path: dir.display().to_string(),
        source: std::io::Error::other("a fresh clone is not a git work tree"),
    })
}

/// Puts the clone in line with origin: a dirty tree (but for an
/// interrupted writeback, which the sweep finishes) is reset, and local
/// commits that are not this sweep's own writeback are dropped.
async fn settle(repo: &Repo, holder: &str) -> Result<(), Error> {
    if !writeback::interrupted(repo) && repo.is_dirty().await? {
        repo.run(&["reset", "--quiet", "--hard", "HEAD"]).await?;
    }
    repo.run(&["fetch", "--quiet", ORIGIN]).await?;
    let branch = repo.run(&["rev-parse", "--abbrev-ref", "HEAD"]).await?;
    let upstream = format!("{ORIGIN}/{}", branch.trim());
    if repo
        .run(&[
            "rev-parse",
            "--verify",
            "-q",
            &format!("refs/remotes/{upstream}"),
        ])
        .await
        .is_err()
    {
        return Ok(());
    }
    let local = repo
        .run(&["log", "--format=%B%x00", &format!("{upstream}..HEAD")])
        .await?;
    let trailer = format!("{SWEEP_TRAILER}: {holder}");
    let ours = |message: &str| !holder.is_empty() && message.lines().any(|l| l.trim() == trailer);
    let foreign = local
        .split('\0')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .any(|m| !ours(m));
    if foreign {
        repo.run(&["reset", "--quiet", "--hard", &upstream]).await?;
    }
    Ok(())
}
