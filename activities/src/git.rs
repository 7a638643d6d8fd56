//! Git, driven through the `git` command with argv (never a shell), with
//! prompts disabled so a missing credential fails instead of hanging.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

/// A failed git command, with what it printed.
#[derive(Debug, thiserror::Error)]
#[error("git {args} in {dir}: {message}")]
pub struct Error {
    /// The arguments, space-joined, for the message.
    pub args: String,
    /// The repo folder.
    pub dir: String,
    /// Exit status and stderr, or the spawn error.
    pub message: String,
}

/// A git work tree.
#[derive(Debug, Clone)]
pub struct Repo {
    dir: PathBuf,
    git_dir: PathBuf,
}

/// Where the work tree stands against its upstream after a fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sync {
    /// No upstream branch to compare with.
    NoUpstream,
    /// Same commit, or only local commits (ahead) on a clean tree.
    UpToDate,
    /// Behind and clean: fast-forwarded.
    FastForwarded,
    /// Local and remote both have commits the other lacks.
    Diverged,
    /// Tracked files have uncommitted changes.
    Dirty,
}

impl Repo {
    /// The work tree at `dir`, if `dir` is the top of a git work tree.
    pub async fn open(dir: &Path) -> Option<Self> {
        if !dir.is_dir() {
            return None;
        }
        let mut repo = Self {
            dir: dir.to_path_buf(),
            git_dir: PathBuf::new(),
        };
        let out = repo
            .run(&["rev-parse", "--show-toplevel", "--absolute-git-dir"])
            .await
            .ok()?;
        let mut lines = out.lines();
        let top = std::fs::canonicalize(lines.next()?.trim()).ok()?;
        repo.git_dir = PathBuf::from(lines.next()?.trim());
        (std::fs::canonicalize(dir).ok()? == top).then_some(repo)
    }

    /// A folder to run git in that need not be a work tree (to clone into
    /// it, say).
    pub fn at(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            git_dir: PathBuf::new(),
        }
    }

    /// The work tree folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs `git <args>` in the work tree and returns stdout.
    pub async fn run(&self, args: &[&str]) -> Result<String, Error> {
        let err = |message: String| Error {
            args: args.join(" "),
            dir: self.dir.display().to_string(),
            message,
        };
        let out = Command::new("git")
            .arg("-C")
            .arg(&self.dir)
            .args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| err(e.to_string()))?;
        if !out.status.success() {
            return Err(err(format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The commit HEAD points at, empty for a repo without commits.
    pub async fn head(&self) -> String {
        self.run(&["rev-parse", "--verify", "-q", "HEAD"])
            .await
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    }

    /// HEAD's full commit message, empty for a repo without commits.
    pub async fn head_message(&self) -> String {
        self.run(&["log", "-1", "--format=%B"])
            .await
            .unwrap_or_default()
    }

    /// Tracked files whose content differs from HEAD, staged or not.
    pub async fn changed_paths(&self) -> Result<Vec<String>, Error> {
        Ok(self
            .run(&["diff", "--name-only", "HEAD", "--"])
            .await?
            .lines()
            .map(str::to_string)
            .collect())
    }

    /// The repository's git directory (`.git` for a plain work tree),
    /// found once when the repo was opened.
    pub fn git_dir(&self) -> &Path {
        &self.git_dir
    }

    /// Whether tracked files have uncommitted changes.
    pub async fn is_dirty(&self) -> Result<bool, Error> {
        Ok(!self
            .run(&["status", "--porcelain", "--untracked-files=no"])
            .await?
            .trim()
            .is_empty())
    }

    /// The pull gate (check C-16): fetch `remote`, fast-forward when behind
    /// and clean; report diverged or dirty trees so no writeback happens.
    pub async fn pull_gate(&self, remote: &str) -> Result<Sync, Error> {
        self.run(&["fetch", "--quiet", remote]).await?;
        if self.is_dirty().await? {
            return Ok(Sync::Dirty);
        }
        let Some(upstream) = self.upstream(remote).await? else {
            return Ok(Sync::NoUpstream);
        };
        let counts = self
            .run(&[
                "rev-list",
                "--left-right",
                "--count",
                &format!("HEAD...{upstream}"),
            ])
            .await?;
        let mut it = counts
            .split_whitespace()
            .map(|n| n.parse::<u64>().unwrap_or(0));
        let (ahead, behind) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
        match (ahead, behind) {
            (_, 0) => Ok(Sync::UpToDate),
            (0, _) => {
                self.run(&["merge", "--ff-only", "--quiet", &upstream])
                    .await?;
                Ok(Sync::FastForwarded)
            }
            _ => Ok(Sync::Diverged),
        }
    }

    /// `remote/<current branch>` if it exists.
    async fn upstream(&self, remote: &str) -> Result<Option<String>, Error> {
        let branch = self.run(&["rev-parse", "--abbrev-ref", "HEAD"]).await?;
        let candidate = format!("{remote}/{}", branch.trim());
        let exists = self
            .run(&[
                "rev-parse",
                "--verify",
                "-q",
                &format!("refs/remotes/{candidate}"),
            ])
            .await
            .is_ok();
        Ok(exists.then_some(candidate))
    }

    /// Commits `paths` with `message` as `name <email>`; returns the new
    /// commit, or None when the files have no staged change (a retry after
    /// a commit that already happened).
    pub async fn commit(
        &self,
        paths: &[String],
        message: &str,
        name: &str,
        email: &str,
    ) -> Result<Option<String>, Error> {
        let mut add = vec!["add", "--"];
        add.extend(paths.iter().map(String::as_str));
        self.run(&add).await?;
        let staged = self.run(&["diff", "--cached", "--name-only"]).await?;
        if staged.trim().is_empty() {
            return Ok(None);
        }
        let user = format!("user.name={name}");
        let mail = format!("user.email={email}");
        let mut args = vec![
            "-c",
            &user,
            "-c",
            &mail,
            "commit",
            "--quiet",
            "--no-verify",
            "-m",
            message,
            "--",
        ];
        args.extend(paths.iter().map(String::as_str));
        self.run(&args).await?;
        Ok(Some(self.head().await))
    }

    /// Whether HEAD has commits the remote branch lacks (true when the
    /// branch is not on the remote yet). Checked after a fresh fetch, it
    /// lets a retried activity push a commit an earlier attempt made.
    pub async fn has_unpushed(&self, remote: &str) -> Result<bool, Error> {
        match self.upstream(remote).await? {
            None => Ok(true),
            Some(upstream) => Ok(self
                .run(&["rev-list", "--count", &format!("{upstream}..HEAD")])
                .await?
                .trim()
                != "0"),
        }
    }

    /// Pushes HEAD to the same branch on `remote`.
    pub async fn push(&self, remote: &str) -> Result<(), Error> {
        let branch = self.run(&["rev-parse", "--abbrev-ref", "HEAD"]).await?;
        self.run(&[
            "push",
            "--quiet",
            remote,
            &format!("HEAD:refs/heads/{}", branch.trim()),
        ])
        .await?;
        Ok(())
    }
}
