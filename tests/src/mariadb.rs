//! A MariaDB primary and its streaming replica of a test's own: two
//! `mariadbd` processes on free ports, their data under the test's folder,
//! the replica following the primary's binary log.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A primary and its replica; both stop when it is dropped.
pub struct MariaDbPair {
    /// `mysql://root@127.0.0.1:PORT` of the primary.
    pub primary: String,
    /// `mysql://root@127.0.0.1:PORT` of the replica.
    pub replica: String,
    children: Vec<Child>,
}

impl MariaDbPair {
    /// Makes both servers under `dir` and starts replication.
    pub fn start(dir: &Path) -> Self {
        let mut pair = Self {
            primary: String::new(),
            replica: String::new(),
            children: Vec::new(),
        };
        let mut urls = Vec::new();
        for (name, id) in [("primary", 1), ("replica", 2)] {
            let data = dir.join(format!("mariadb-{name}"));
            let installed = Command::new("mariadb-install-db")
                .arg("--no-defaults")
                .arg(format!("--datadir={}", data.display()))
                .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
                .arg(format!("--user={}", whoami()))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap_or_else(|e| {
                    panic!("mariadb-install-db: {e}; run ./scripts/setup --postgres (Debian mariadb-server)")
                });
            assert!(installed.success(), "mariadb-install-db for the {name}");
            let port = crate::free_port();
            let log = std::fs::File::create(dir.join(format!("mariadb-{name}.log"))).unwrap();
            let mut cmd = Command::new(server_program());
            cmd.arg("--no-defaults")
                .arg(format!("--datadir={}", data.display()))
                .arg(format!("--socket={}/mysqld.sock", data.display()))
                .arg(format!("--pid-file={}/mysqld.pid", data.display()))
                .arg(format!("--port={port}"))
                .arg("--bind-address=127.0.0.1")
                .arg(format!("--server-id={id}"))
                .arg(format!("--user={}", whoami()));
            if id == 1 {
                cmd.arg(format!("--log-bin={}/bin", data.display()));
            }
            let child = cmd
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("starting mariadbd");
            pair.children.push(child);
            urls.push((port, format!("mysql://root@127.0.0.1:{port}")));
        }
        for (port, _) in &urls {
            wait_up(*port);
        }
        pair.primary = urls[0].1.clone();
        pair.replica = urls[1].1.clone();
        pair.replica_sql(&format!(
            "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, MASTER_USER='root', \
             MASTER_PASSWORD='', MASTER_USE_GTID=no; START SLAVE",
            urls[0].0
        ));
        pair
    }

    /// Runs `sql` on the replica with the `mysql` client.
    pub fn replica_sql(&self, sql: &str) -> String {
        client(&self.replica, sql)
    }

    /// Runs `sql` on the primary with the `mysql` client.
    pub fn primary_sql(&self, sql: &str) -> String {
        client(&self.primary, sql)
    }
}

impl Drop for MariaDbPair {
    fn drop(&mut self) {
        for child in &mut self.children {
            // SAFETY: kill(2) on our own child.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
            }
        }
        for child in &mut self.children {
            let deadline = Instant::now() + Duration::from_secs(20);
            while child.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn port_of(url: &str) -> String {
    url.rsplit(':').next().unwrap_or_default().to_string()
}

fn client(url: &str, sql: &str) -> String {
    let out = Command::new("mysql")
        .args([
            "--protocol=tcp",
            "-h",
            "127.0.0.1",
            "-u",
            "root",
            "-N",
            "-B",
        ])
        .arg(format!("-P{}", port_of(url)))
        .args(["-e", sql])
        .output()
        .expect("running the mysql client");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn wait_up(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = Command::new("mysqladmin")
            .args(["--protocol=tcp", "-h", "127.0.0.1", "-u", "root"])
            .arg(format!("-P{port}"))
            .arg("ping")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if up {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "mariadbd on port {port} did not answer within 60 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `mariadbd`, on the PATH or where Debian puts it (`/usr/sbin`, which a
/// user's PATH may lack).
fn server_program() -> std::path::PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("mariadbd"))
                .find(|f| f.is_file())
        })
        .unwrap_or_default();
    on_path.unwrap_or_else(|| "/usr/sbin/mariadbd".into())
}

fn whoami() -> String {
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    if uid == 0 {
        "root".into()
    } else {
        std::env::var("USER").unwrap_or_else(|_| "nobody".into())
    }
}
