//! PostgreSQL clusters of a test's own, from Debian's PostgreSQL binaries
//! (`/usr/lib/postgresql/<version>/bin`): a single cluster on its own port
//! (an isolated restore target), or a primary with a streaming standby made
//! by `pg_basebackup` (the failover drill's service). As root the programs
//! run as the `postgres` user, as initdb requires. Every cluster is stopped
//! and removed when the test ends.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::free_port;

/// The newest installed PostgreSQL's `bin` folder.
pub fn pg_bin() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path().join("bin")))
                .filter(|b| b.join("initdb").exists())
                .collect()
        })
        .unwrap_or_default();
    found.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found.pop().unwrap_or_else(|| {
        panic!(
            "these tests run their own PostgreSQL clusters and need Debian's PostgreSQL server \
             (/usr/lib/postgresql/<version>/bin/initdb); run ./scripts/setup --postgres"
        )
    })
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `program args` as the user PostgreSQL runs as (the `postgres` user when
/// the tests run as root); panics with its output when it fails.
pub fn as_postgres(program: &Path, args: &[&str]) -> String {
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    let out = cmd
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    assert!(
        out.status.success(),
        "{} {args:?}: {}{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A folder the `postgres` user may use, removed on drop.
pub struct PgRoot {
    /// The folder.
    pub path: PathBuf,
}

impl PgRoot {
    /// A fresh folder under the system's temp dir.
    pub fn new() -> Self {
        let path =
            std::env::temp_dir().join(format!("steward-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path).unwrap();
        if is_root() {
            let status = Command::new("chown")
                .args(["postgres:postgres", path.to_str().unwrap()])
                .status()
                .unwrap();
            assert!(status.success(), "chown postgres {}", path.display());
        }
        Self { path }
    }
}

impl Default for PgRoot {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for PgRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// One PostgreSQL cluster: its data folder and port.
pub struct PgCluster {
    /// The data folder.
    pub data: PathBuf,
    /// Its port on 127.0.0.1.
    pub port: u16,
    socket_dir: PathBuf,
}

impl PgCluster {
    /// A new cluster in `root/<name>`, trust auth on 127.0.0.1, ready for
    /// streaming replication, started.
    pub fn init(root: &PgRoot, name: &str) -> Self {
        let bin = pg_bin();
        let data = root.path.join(name);
        as_postgres(
            &bin.join("initdb"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        let c = Self {
            data,
            port: free_port(),
            socket_dir: root.path.clone(),
        };
        c.configure(&[
            "listen_addresses = '127.0.0.1'",
            "wal_level = replica",
            "max_wal_senders = 8",
            "hot_standby = on",
            "fsync = off",
            "wal_sender_timeout = '5s'",
            "wal_receiver_status_interval = '1s'",
        ]);
        let hba = c.data.join("pg_hba.conf");
        let mut text = std::fs::read_to_string(&hba).unwrap();
        text.push_str("\nhost replication all 127.0.0.1/32 trust\n");
        std::fs::write(&hba, text).unwrap();
        c.start();
        c
    }

    /// A standby of `primary` in `root/<name>`, made by `pg_basebackup`,
    /// streaming, started.
    pub fn standby_of(primary: &PgCluster, root: &PgRoot, name: &str) -> Self {
        let data = root.path.join(name);
        as_postgres(
            &pg_bin().join("pg_basebackup"),
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &primary.port.to_string(),
                "-U",
                "postgres",
                "-D",
                data.to_str().unwrap(),
                "-R",
                "-X",
                "stream",
            ],
        );
        let c = Self {
            data,
            port: free_port(),
            socket_dir: root.path.clone(),
        };
        c.configure(&[]);
        c.start();
        c
    }

    /// Appends `lines` and this cluster's port and socket folder to its
    /// `postgresql.conf` (later lines win).
    fn configure(&self, lines: &[&str]) {
        let conf = self.data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).unwrap();
        for l in lines {
            text.push_str(l);
            text.push('\n');
        }
        text.push_str(&format!(
            "port = {}\nunix_socket_directories = '{}'\n",
            self.port,
            self.socket_dir.display()
        ));
        std::fs::write(&conf, text).unwrap();
    }

    /// `pg_ctl` with `args` on this cluster.
    pub fn pg_ctl(&self, args: &[&str]) -> String {
        let mut all = vec!["-D", self.data.to_str().unwrap()];
        all.extend_from_slice(args);
        as_postgres(&pg_bin().join("pg_ctl"), &all)
    }

    /// Starts it and waits until it accepts connections.
    pub fn start(&self) {
        let log = self.data.with_extension("log");
        self.pg_ctl(&["-l", log.to_str().unwrap(), "-w", "start"]);
    }

    /// `pg_ctl stop -m immediate`: the primary's process dies as on a crash.
    pub fn crash(&self) {
        self.pg_ctl(&["-m", "immediate", "-w", "stop"]);
    }

    /// `host:port`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The URL of database `db` on it.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@{}/{db}", self.host())
    }

    /// Runs `sql` with psql; its output, unaligned.
    pub fn psql(&self, sql: &str) -> String {
        as_postgres(
            &pg_bin().join("psql"),
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-tAc",
                sql,
            ],
        )
        .trim()
        .to_string()
    }

    /// Whether it is running.
    pub fn running(&self) -> bool {
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"])
                .arg(pg_bin().join("pg_ctl"));
            c
        } else {
            Command::new(pg_bin().join("pg_ctl"))
        };
        cmd.args(["-D", self.data.to_str().unwrap(), "status"])
            .output()
            .is_ok_and(|o| o.status.success())
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.running() {
            let _ = std::panic::catch_unwind(|| self.crash());
        }
    }
}

/// A primary and a standby streaming from it.
pub struct PgPair {
    /// The folder both live in (dropped last).
    pub primary: PgCluster,
    /// The standby.
    pub standby: PgCluster,
    /// Their folder.
    pub root: PgRoot,
}

impl PgPair {
    /// Starts both and waits until the standby streams. With
    /// `synchronous`, a write the primary acknowledged is on the standby.
    pub async fn start(synchronous: bool) -> Self {
        let root = PgRoot::new();
        let primary = PgCluster::init(&root, "primary");
        let standby = PgCluster::standby_of(&primary, &root, "standby");
        if synchronous {
            // Set after the base backup, so the standby (a future primary)
            // does not wait for a standby of its own.
            primary.psql("ALTER SYSTEM SET synchronous_standby_names = '*'");
            primary.psql("SELECT pg_reload_conf()");
        }
        let pair = Self {
            primary,
            standby,
            root,
        };
        pair.wait_streaming(Duration::from_secs(30)).await;
        pair
    }

    /// Waits until the primary lists a streaming standby.
    pub async fn wait_streaming(&self, within: Duration) {
        crate::wait_for("the standby to stream", within, || async {
            (self
                .primary
                .psql("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")
                == "1")
                .then_some(())
        })
        .await
        .unwrap();
    }

    /// The service URL with both hosts, as a drill is configured.
    pub fn service_url(&self) -> String {
        format!(
            "postgres://postgres@{},{}/postgres?target_session_attrs=read-write",
            self.primary.host(),
            self.standby.host()
        )
    }

    /// A trigger in the pair's folder: the shipped example
    /// (`examples/drills/pg-failover.sh`) on the pair, crashing the
    /// primary and promoting the standby.
    pub fn failover_script(&self) -> PathBuf {
        self.script(
            "failover.sh",
            &format!(
                "PG_CTL={ctl} exec sh {example} {s} {p}\n",
                ctl = pg_bin().join("pg_ctl").display(),
                example = crate::workspace()
                    .join("examples/drills/pg-failover.sh")
                    .display(),
                p = self.primary.data.display(),
                s = self.standby.data.display(),
            ),
        )
    }

    /// A recovery in the pair's folder: the shipped example
    /// (`examples/drills/pg-rejoin.sh`), bringing the crashed primary back
    /// as a standby of the promoted one.
    pub fn rebuild_script(&self) -> PathBuf {
        let bin = pg_bin();
        self.script(
            "rebuild.sh",
            &format!(
                "PG_CTL={ctl} PG_BASEBACKUP={bb} exec sh {example} {p} 127.0.0.1 {sport} {pport}\n",
                ctl = bin.join("pg_ctl").display(),
                bb = bin.join("pg_basebackup").display(),
                example = crate::workspace()
                    .join("examples/drills/pg-rejoin.sh")
                    .display(),
                p = self.primary.data.display(),
                sport = self.standby.port,
                pport = self.primary.port,
            ),
        )
    }

    /// Writes an executable shell script `name` with `body` into the pair's
    /// folder.
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        let path = self.root.path.join(name);
        std::fs::write(&path, format!("#!/bin/sh\nset -e\n{body}")).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        path
    }
}
