//! Git repos for tests: made, written, committed, counted; and workplans
//! to put in them.

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::Command;

/// Runs git in `dir`, panicking with its stderr on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .expect("running git");
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Creates a git repo at `dir` holding `files`, committed.
pub fn make_repo(dir: &Path, files: &[(&str, &str)]) {
    std::fs::create_dir_all(dir).unwrap();
    git(dir, &["init", "-q", "-b", "main"]);
    write_files(dir, files);
    commit_all(dir, "initial");
}

/// Makes every commit in the repo at `dir` take at least `seconds` more,
/// by a `post-commit` hook (which `git commit --no-verify` still runs).
/// Tests that need a sweep to outlast a budget or a lock use it instead of
/// hoping the machine is slow enough.
pub fn slow_commits(dir: &Path, seconds: f64) {
    use std::os::unix::fs::PermissionsExt;
    let hook = dir.join(".git/hooks/post-commit");
    std::fs::create_dir_all(hook.parent().unwrap()).unwrap();
    std::fs::write(&hook, format!("#!/bin/sh\nsleep {seconds}\n")).unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Writes `files` under `dir`.
pub fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let full = dir.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, text).unwrap();
    }
}

/// Commits everything in `dir` as a test author.
pub fn commit_all(dir: &Path, message: &str) {
    git(dir, &["add", "-A"]);
    git(
        dir,
        &[
            "-c",
            "user.name=tester",
            "-c",
            "user.email=tester@localhost",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            message,
        ],
    );
}

/// Number of commits on HEAD.
pub fn commit_count(dir: &Path) -> usize {
    git(dir, &["rev-list", "--count", "HEAD"])
        .trim()
        .parse()
        .unwrap()
}

/// A minimal valid workplan with `tasks` task ids (all `todo`).
pub fn workplan(id: &str, tasks: usize) -> String {
    let mut s = format!(
        "---\nid: {id}\ntype: workplan\ntitle: \"Plan {id}\"\nstatus: active\n---\n\n# {id}\n"
    );
    for t in 1..=tasks {
        s.push_str(&format!("\n## T{t} — step {t}\n\n```task\nid: {id}-T{t:02}\nstatus: todo\npriority: medium\n```\n"));
    }
    s
}

/// A real git server on loopback: `git daemon` serving the bare repos in
/// a folder, pushes allowed, killed on drop. `git` starts the daemon as a
/// child of its own, so it runs in a process group of its own and the
/// whole group is killed.
pub struct GitDaemon {
    child: std::process::Child,
    /// `git://127.0.0.1:PORT`.
    pub base: String,
}

impl GitDaemon {
    /// Serves the bare repos under `root`.
    pub fn serve(root: &Path) -> Self {
        let port = crate::free_port();
        let child = Command::new("git")
            .args([
                "daemon",
                "--reuseaddr",
                "--export-all",
                "--enable=receive-pack",
                "--listen=127.0.0.1",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", root.display()))
            .arg(root)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .expect("git daemon (Debian's git-daemon-run or git's own `git daemon`)");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "git daemon did not listen on {port}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Self {
            child,
            base: format!("git://127.0.0.1:{port}"),
        }
    }

    /// The URL of bare repo `name` (`<root>/<name>`).
    pub fn url(&self, name: &str) -> String {
        format!("{}/{name}", self.base)
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group our own child leads.
        unsafe {
            libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// A bare copy of the repo at `src` at `dest`, as a git server keeps it.
pub fn bare_copy(src: &Path, dest: &Path) {
    git(
        src.parent().unwrap(),
        &[
            "clone",
            "-q",
            "--bare",
            src.to_str().unwrap(),
            dest.to_str().unwrap(),
        ],
    );
}
