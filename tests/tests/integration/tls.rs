//! TLS, mutual TLS and an API key to the Temporal server, through the SDK's
//! standard client config (`TEMPORAL_TLS_*`, `TEMPORAL_API_KEY`), as a
//! production cluster or Temporal Cloud needs them.
//!
//! The dev server speaks plain gRPC only, so the test puts a TLS front in
//! front of it, as a load balancer would: it terminates TLS, demands a
//! client certificate signed by the deployment's CA, records the method,
//! the `authorization` and the `grpc-encoding` of every call and forwards
//! the calls to the dev server. The certificates are the ones the compose
//! file's one-shot makes (`deploy/temporal-certs.sh`, with the `openssl`
//! command, Debian `openssl`), so the test proves they work.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use steward_proto::v1::SweepResult;
use steward_tests::{
    Backend, PLANTED_SECRET, RepoEntry, Server, commit_count, database, make_repo, steward_bin,
    task_queue, temp_dir, wait_for, workplan, workspace, write_config,
};

/// Runs `program` with `args` in `dir`, which must succeed; `missing` says
/// how to install it.
fn must_run(dir: &Path, program: &str, args: &[&std::ffi::OsStr], missing: &str) {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}: {missing}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `openssl` with `args` in `dir`; fails naming the missing tool.
fn openssl(dir: &Path, args: &[&str]) {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    must_run(
        dir,
        "openssl",
        &args,
        "the `openssl` command is needed for the TLS tests: apt-get install openssl",
    );
}

/// The deployment's certificates as the compose file's one-shot makes
/// them (`deploy/temporal-certs.sh`: a CA, the frontend's certificate,
/// the worker's, the API's and the setups'), and a client certificate of
/// another CA, as someone outside the deployment would hold.
fn certificates(dir: &Path) {
    let script = workspace().join("deploy/temporal-certs.sh");
    must_run(
        dir,
        "sh",
        &[script.as_os_str(), dir.as_os_str(), "2".as_ref()],
        "sh runs deploy/temporal-certs.sh",
    );
    for name in [
        "ca.crt",
        "server.crt",
        "server.key",
        "worker.crt",
        "worker.key",
        "api.crt",
        "api.key",
    ] {
        assert!(dir.join(name).is_file(), "{name} made");
    }
    // Someone outside the deployment: a CA of their own, and a client
    // certificate it signed.
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let days = ["-days", "2"];
    openssl(
        dir,
        &[
            &["req", "-x509"][..],
            &ec,
            &["-keyout", "rogue-ca.key", "-out", "rogue-ca.crt"],
            &["-subj", "/CN=rogue ca"],
            &days,
        ]
        .concat(),
    );
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    openssl(
        dir,
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "rogue.key",
                "-out",
                "rogue.csr",
                "-subj",
                "/CN=rogue",
            ],
        ]
        .concat(),
    );
    openssl(
        dir,
        &[
            &[
                "x509",
                "-req",
                "-in",
                "rogue.csr",
                "-CA",
                "rogue-ca.crt",
                "-CAkey",
                "rogue-ca.key",
            ][..],
            &[
                "-CAcreateserial",
                "-out",
                "rogue.crt",
                "-extfile",
                "client.ext",
            ],
            &days,
        ]
        .concat(),
    );
}

/// One call the TLS front forwarded.
struct Call {
    /// The gRPC method, e.g. `RespondWorkflowTaskCompleted`.
    method: String,
    /// The `authorization` header.
    authorization: String,
    /// The `grpc-encoding` header (how the request body is compressed).
    encoding: Option<String>,
}

/// What the TLS front saw.
#[derive(Default)]
struct Seen {
    /// Every forwarded call, in order.
    calls: Vec<Call>,
    /// Handshakes refused (no or an unknown client certificate).
    refused: usize,
}

impl Seen {
    /// The calls from `from` on that only a worker makes: completing its
    /// workflow and activity tasks.
    fn worker_completions(&self, from: usize) -> Vec<&Call> {
        self.calls[from..]
            .iter()
            .filter(|c| c.method.starts_with("Respond") && c.method.ends_with("TaskCompleted"))
            .collect()
    }
}

/// Starts the TLS front on a free port, forwarding to `upstream`.
async fn tls_front(dir: &Path, upstream: String) -> (u16, Arc<Mutex<Seen>>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = CertificateDer::from_pem_file(dir.join("ca.crt")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
        .build()
        .unwrap();
    let chain = vec![CertificateDer::from_pem_file(dir.join("server.crt")).unwrap()];
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let mut config = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let upstream_client: HttpClient<HttpConnector, Incoming> =
        HttpClient::builder(TokioExecutor::new())
            .http2_only(true)
            .build_http();
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, client, log, upstream) = (
                acceptor.clone(),
                upstream_client.clone(),
                log.clone(),
                upstream.clone(),
            );
            tokio::spawn(async move {
                let tls = match acceptor.accept(tcp).await {
                    Ok(tls) => tls,
                    Err(_) => {
                        log.lock().unwrap().refused += 1;
                        return;
                    }
                };
                let service =
                    hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                        let (client, log) = (client.clone(), log.clone());
                        let header = |name: &str| {
                            req.headers()
                                .get(name)
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_owned)
                        };
                        let call = Call {
                            method: req.uri().path().rsplit('/').next().unwrap().to_owned(),
                            authorization: header("authorization").unwrap_or_default(),
                            encoding: header("grpc-encoding"),
                        };
                        log.lock().unwrap().calls.push(call);
                        let path = req
                            .uri()
                            .path_and_query()
                            .map(|p| p.as_str().to_string())
                            .unwrap_or_default();
                        *req.uri_mut() = format!("http://{upstream}{path}").parse().unwrap();
                        async move { client.request(req).await }
                    });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (port, seen)
}

/// `steward` with the standard client config pointing at the TLS front.
fn steward(config: &Path, port: u16, certs: &Path, client: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(steward_bin());
    cmd.arg("--config")
        .arg(config)
        .args(args)
        .env("TEMPORAL_ADDRESS", format!("localhost:{port}"))
        .env("TEMPORAL_NAMESPACE", "default")
        .env("TEMPORAL_TLS_SERVER_CA_CERT_PATH", certs.join("ca.crt"))
        .env(
            "TEMPORAL_TLS_CLIENT_CERT_PATH",
            certs.join(format!("{client}.crt")),
        )
        .env(
            "TEMPORAL_TLS_CLIENT_KEY_PATH",
            certs.join(format!("{client}.key")),
        )
        .env("TEMPORAL_API_KEY", PLANTED_SECRET)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null());
    cmd
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A dev server behind the TLS front, with the certificates, a repo with
/// one workplan `plan` and a SQLite state store.
struct Rig {
    root: PathBuf,
    certs: PathBuf,
    _server: Server,
    port: u16,
    seen: Arc<Mutex<Seen>>,
    repo: PathBuf,
    db: String,
    /// Last, so it is removed after the server has stopped.
    _dir: tempfile::TempDir,
}

impl Rig {
    async fn start(plan: &str) -> Self {
        let dir = temp_dir();
        let root = dir.path().to_owned();
        let certs = root.join("certs");
        std::fs::create_dir_all(&certs).unwrap();
        certificates(&certs);
        let server = Server::start(&root).await;
        let (port, seen) = tls_front(&certs, server.address.clone()).await;
        let repo = root.join("repo");
        make_repo(
            &repo,
            &[(&format!("workplans/{plan}.md"), &workplan(plan, 1))],
        );
        let db = database(Backend::Sqlite, &root).await;
        Self {
            root,
            certs,
            _server: server,
            port,
            seen,
            repo,
            db,
            _dir: dir,
        }
    }

    /// Writes the config for `queue` with `extra` lines.
    fn config(&self, queue: &str, extra: &str) -> PathBuf {
        let repos = [RepoEntry {
            name: "repo",
            path: &self.repo,
            remote: None,
            push: false,
        }];
        write_config(&self.root, &self.db, queue, &repos, extra)
    }

    /// Runs `steward worker` with `config` through the TLS front (its stdout
    /// and stderr to `logs` with extensions `out` and `err`), then one
    /// `steward sweep run`, which must succeed; the worker is stopped after.
    async fn sweep(&self, config: &Path, logs: &Path) -> SweepResult {
        let (port, certs) = (self.port, &self.certs);
        let _worker = KillOnDrop(
            steward(config, port, certs, "worker", &["worker"])
                .stdout(std::fs::File::create(logs.with_extension("out")).unwrap())
                .stderr(std::fs::File::create(logs.with_extension("err")).unwrap())
                .spawn()
                .unwrap(),
        );
        let out = tokio::task::spawn_blocking({
            let (config, certs) = (config.to_owned(), certs.to_owned());
            move || {
                steward(&config, port, &certs, "api", &["sweep", "run"])
                    .output()
                    .unwrap()
            }
        });
        let out = tokio::time::timeout(Duration::from_secs(120), out)
            .await
            .expect("the sweep finished")
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let result: SweepResult = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(result.exit_code, 0, "{result:?}");
        result
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_and_the_cli_reach_the_server_over_mutual_tls_with_an_api_key() {
    let rig = Rig::start("TLS-1").await;
    let (port, certs, seen) = (rig.port, rig.certs.clone(), &rig.seen);
    let config = rig.config(&task_queue("tls"), "");
    let logs = rig.root.join("worker");
    let result = rig.sweep(&config, &logs).await;
    assert_eq!(result.repos_processed.len(), 1, "{result:?}");
    assert_eq!(
        commit_count(&rig.repo),
        2,
        "the worker did the work over TLS"
    );

    {
        let seen = seen.lock().unwrap();
        assert!(
            seen.calls.len() > 5,
            "calls went through the TLS front: {}",
            seen.calls.len()
        );
        let expected = format!("Bearer {PLANTED_SECRET}");
        assert!(
            seen.calls.iter().all(|c| c.authorization == expected),
            "every call carried the API key"
        );
    }

    // A client certificate from another CA is refused at the handshake,
    // and the command says where it could not connect.
    let before = seen.lock().unwrap().refused;
    let out = tokio::task::spawn_blocking({
        let (config, certs) = (config.clone(), certs.clone());
        move || {
            steward(&config, port, &certs, "rogue", &["sweep", "run"])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(4),
        "a server it cannot reach: {stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "connecting to Temporal at https://localhost:{port}"
        )),
        "{stderr}"
    );
    wait_for("the refused handshake", Duration::from_secs(10), || async {
        (seen.lock().unwrap().refused > before).then_some(())
    })
    .await
    .unwrap();

    let logs = std::fs::read_to_string(logs.with_extension("out")).unwrap()
        + &std::fs::read_to_string(logs.with_extension("err")).unwrap();
    assert!(
        !logs.contains(PLANTED_SECRET),
        "the API key stays out of the log"
    );
    assert!(!stderr.contains(PLANTED_SECRET), "and out of errors");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_sends_uncompressed_grpc_unless_told_to_gzip() {
    let rig = Rig::start("GZ-1").await;
    let queue = task_queue("gzip");
    rig.sweep(&rig.config(&queue, ""), &rig.root.join("plain"))
        .await;
    let gzipped_from = {
        let seen = rig.seen.lock().unwrap();
        let completions = seen.worker_completions(0);
        assert!(!completions.is_empty(), "the worker completed tasks");
        assert!(
            seen.calls.iter().all(|c| c.encoding.is_none()),
            "by default no call is compressed: {:?}",
            seen.calls
                .iter()
                .filter_map(|c| c.encoding.as_ref().map(|e| (&c.method, e)))
                .collect::<Vec<_>>()
        );
        seen.calls.len()
    };

    let gzip = rig.config(&queue, "[worker]\ngrpc_compression = \"gzip\"\n");
    rig.sweep(&gzip, &rig.root.join("gzip")).await;
    let seen = rig.seen.lock().unwrap();
    let completions = seen.worker_completions(gzipped_from);
    assert!(!completions.is_empty(), "the gzip worker completed tasks");
    assert!(
        completions
            .iter()
            .all(|c| c.encoding.as_deref() == Some("gzip")),
        "with grpc_compression = \"gzip\" the worker gzips: {:?}",
        completions
            .iter()
            .map(|c| (&c.method, &c.encoding))
            .collect::<Vec<_>>()
    );
}
