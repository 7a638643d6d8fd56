//! A real Alertmanager (Debian `prometheus-alertmanager`, installed by
//! `scripts/setup`) on loopback, routing every alert to a webhook
//! receiver the test reads.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// What the receiver was sent: Alertmanager's webhook notifications.
pub type Received = Arc<Mutex<Vec<serde_json::Value>>>;

/// An Alertmanager and the receiver it notifies; killed on drop.
pub struct Alertmanager {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Every notification, in order.
    pub received: Received,
    _dir: tempfile::TempDir,
}

fn binary() -> PathBuf {
    let path = PathBuf::from("/usr/bin/prometheus-alertmanager");
    assert!(
        path.is_file(),
        "prometheus-alertmanager not found: run ./scripts/setup (Debian prometheus-alertmanager)"
    );
    path
}

/// A webhook receiver on loopback that keeps every JSON body posted to it.
async fn receiver() -> (String, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let received: Received = Arc::default();
    let keep = received.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let keep = keep.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    let Ok(n) = stream.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    let Some(head_end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let length: usize = text[..head_end]
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    if buf.len() < head_end + 4 + length {
                        continue;
                    }
                    let body = &buf[head_end + 4..head_end + 4 + length];
                    if let Ok(v) = serde_json::from_slice(body) {
                        keep.lock().unwrap().push(v);
                    }
                    let _ = stream
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                    return;
                }
            });
        }
    });
    (url, received)
}

impl Alertmanager {
    /// Starts one grouping by `group_by`, notifying at once and again
    /// when an alert resolves.
    pub async fn start(group_by: &[&str]) -> Self {
        let (hook, received) = receiver().await;
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(
            &config,
            format!(
                "route:\n  receiver: hook\n  group_by: [{}]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: {hook}\n        send_resolved: true\n",
                group_by.join(", ")
            ),
        )
        .unwrap();
        let port = crate::free_port();
        let child = Command::new(binary())
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("alertmanager.log")).unwrap())
            .spawn()
            .expect("prometheus-alertmanager starts");
        let url = format!("http://127.0.0.1:{port}");
        let ready = format!("127.0.0.1:{port}");
        crate::wait_for(
            "Alertmanager to be ready",
            Duration::from_secs(30),
            || async { crate::http_get(&ready, "/-/ready").map(|_| ()) },
        )
        .await
        .unwrap();
        Self {
            child,
            url,
            received,
            _dir: dir,
        }
    }

    /// Waits for a notification `matches` accepts, and returns it.
    pub async fn notified(
        &self,
        what: &str,
        matches: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        crate::wait_for(what, Duration::from_secs(60), || async {
            self.received
                .lock()
                .unwrap()
                .iter()
                .find(|n| matches(n))
                .cloned()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}: {:?}", self.received.lock().unwrap()))
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
