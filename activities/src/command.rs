//! The one way an activity runs a program: argv (never a shell string),
//! stdin closed, killed when the activity stops waiting for it, an
//! optional timeout, and one wording for every way it can fail. Secrets
//! the program is given through its environment are hidden from what its
//! stderr says.

use std::process::Stdio;
use std::time::Duration;

/// Makes the program `cmd` starts die with this process (Linux's
/// parent-death signal, SIGTERM), even when this process is killed with
/// `kill -9`: for a helper that must never outlive it (the dev server, the
/// read-only API a restore drill asks).
pub fn dies_with_parent(cmd: &mut tokio::process::Command) {
    let parent = std::process::id();
    // SAFETY: between fork and exec only async-signal-safe calls (prctl,
    // getppid), no allocation.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent died before the signal was armed.
            if libc::getppid() as u32 != parent {
                return Err(std::io::Error::other("the parent ended while starting"));
            }
            Ok(())
        });
    }
}

/// Characters of a failed program's stderr kept in the error (its end,
/// where the reason usually is).
const STDERR_TAIL_CHARS: usize = 300;

/// Why a program did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The argv is empty.
    #[error("empty command")]
    Empty,
    /// It could not be started (missing, not executable).
    #[error("`{program}` could not be started: {source}{hint}")]
    NotStarted {
        /// argv\[0\].
        program: String,
        /// The cause.
        source: std::io::Error,
        /// What to do about it, if the caller knows.
        hint: String,
    },
    /// It ran past its timeout and was killed.
    #[error("`{program}` did not finish within {seconds}s")]
    TimedOut {
        /// argv\[0\].
        program: String,
        /// The timeout.
        seconds: u64,
    },
    /// It exited unsuccessfully.
    #[error("`{program}` exited with {status}: {stderr}")]
    Failed {
        /// argv\[0\].
        program: String,
        /// How it exited.
        status: std::process::ExitStatus,
        /// The end of its stderr, secrets hidden.
        stderr: String,
    },
}

/// A program to run.
#[derive(Debug, Clone, Default)]
pub struct Command {
    argv: Vec<String>,
    timeout: Option<Duration>,
    env: Vec<(String, String)>,
    hidden: Vec<(String, String)>,
    hint: String,
    tied: bool,
}

impl Command {
    /// `argv[0]` with the rest as its arguments.
    pub fn new(argv: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            argv: argv.into_iter().map(Into::into).collect(),
            ..Default::default()
        }
    }

    /// It ends with this process (SIGTERM), even a `kill -9` of it: a
    /// retried attempt then never runs beside a stray earlier one.
    pub fn tied(mut self) -> Self {
        self.tied = true;
        self
    }

    /// Kill it after `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets `key` in its environment.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Shows `secret` as `shown` wherever the program's stderr repeats it.
    pub fn hide(mut self, secret: &str, shown: &str) -> Self {
        if !secret.is_empty() {
            self.hidden.push((secret.into(), shown.into()));
        }
        self
    }

    /// Says what to do when the program cannot be started.
    pub fn hint(mut self, hint: &str) -> Self {
        self.hint = format!("; {hint}");
        self
    }

    /// Runs it to the end; its stdout when it exits 0.
    pub async fn run(&self) -> Result<Vec<u8>, Error> {
        self.run_both().await.map(|(stdout, _)| stdout)
    }

    /// Runs it to the end; its stdout and stderr (secrets hidden) when it
    /// exits 0.
    pub async fn run_both(&self) -> Result<(Vec<u8>, String), Error> {
        let Some((program, args)) = self.argv.split_first() else {
            return Err(Error::Empty);
        };
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if self.tied {
            dies_with_parent(&mut cmd);
        }
        let child = cmd.output();
        let output = match self.timeout {
            Some(t) => tokio::time::timeout(t, child)
                .await
                .map_err(|_| Error::TimedOut {
                    program: program.clone(),
                    seconds: t.as_secs().max(1),
                })?,
            None => child.await,
        }
        .map_err(|source| Error::NotStarted {
            program: program.clone(),
            source,
            hint: self.hint.clone(),
        })?;
        let mut stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        for (secret, shown) in &self.hidden {
            stderr = stderr.replace(secret.as_str(), shown);
        }
        if output.status.success() {
            return Ok((output.stdout, stderr));
        }
        let stderr = stderr.trim();
        let tail: String = {
            let n = stderr.chars().count();
            stderr
                .chars()
                .skip(n.saturating_sub(STDERR_TAIL_CHARS))
                .collect()
        };
        Err(Error::Failed {
            program: program.clone(),
            status: output.status,
            stderr: tail,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        Command::new(["sh", "-c", script])
    }

    #[tokio::test]
    async fn every_failure_names_the_program_and_why() {
        assert_eq!(sh("printf hi").run().await.unwrap(), b"hi");
        let e = sh("echo oops >&2; exit 3").run().await.unwrap_err();
        assert_eq!(e.to_string(), "`sh` exited with exit status: 3: oops");
        let e = sh("sleep 5")
            .timeout(Duration::from_millis(200))
            .run()
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "`sh` did not finish within 1s");
        let e = Command::new(["steward-no-such-program"])
            .hint("install it")
            .run()
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("`steward-no-such-program` could not be started: ")
                && e.ends_with("; install it"),
            "{e}"
        );
        let empty: [&str; 0] = [];
        assert_eq!(
            Command::new(empty).run().await.unwrap_err().to_string(),
            "empty command"
        );
    }

    #[tokio::test]
    async fn secrets_in_stderr_are_hidden_and_only_its_end_is_kept() {
        let e = sh("echo \"auth failed for s3cret at $URL\" >&2; exit 1")
            .env("URL", "postgres://u@h/db")
            .hide("s3cret", "***")
            .hide("postgres://u@h/db", "<url>")
            .run()
            .await
            .unwrap_err()
            .to_string();
        assert!(e.ends_with("auth failed for *** at <url>"), "{e}");
        let e = sh("printf 'x%.0s' $(seq 1 1000) >&2; exit 1")
            .run()
            .await
            .unwrap_err();
        let Error::Failed { stderr, .. } = e else {
            panic!("{e}")
        };
        assert_eq!(stderr.len(), STDERR_TAIL_CHARS);
    }
}
