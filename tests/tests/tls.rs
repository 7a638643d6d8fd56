//! TLS, mutual TLS and an API key to the Temporal server, through the SDK's
//! standard client config (`TEMPORAL_TLS_*`, `TEMPORAL_API_KEY`), as a
//! production cluster or Temporal Cloud needs them.
//!
//! The dev server speaks plain gRPC only, so the test puts a TLS front in
//! front of it, as a load balancer would: it terminates TLS, demands a
//! client certificate signed by the test's CA, records the `authorization`
//! header of every call and forwards the calls to the dev server. The
//! certificates are made with the `openssl` command (Debian `openssl`).

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
    task_queue, temp_dir, wait_for, workplan, write_config,
};

/// Runs `openssl` with `args` in `dir`; fails naming the missing tool.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("the `openssl` command is needed for the TLS tests: apt-get install openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for `localhost` and a client certificate,
/// both signed by the CA, and a second client certificate signed by
/// another CA.
fn certificates(dir: &Path) {
    let days = ["-days", "2"];
    for ca in ["ca", "rogue-ca"] {
        let key = format!("{ca}.key");
        let crt = format!("{ca}.crt");
        let subject = format!("/CN=steward test {ca}");
        let mut args = vec![
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ];
        args.extend(["-nodes", "-keyout", &key, "-out", &crt, "-subj", &subject]);
        args.extend(days);
        openssl(dir, &args);
    }
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for (name, ca, ext) in [
        ("server", "ca", "server.ext"),
        ("client", "ca", "client.ext"),
        ("rogue", "rogue-ca", "client.ext"),
    ] {
        let (key, csr, crt) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
        );
        let subject = format!("/CN={name}");
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &subject,
            ],
        );
        let (ca_crt, ca_key) = (format!("{ca}.crt"), format!("{ca}.key"));
        let mut args = vec![
            "x509", "-req", "-in", &csr, "-CA", &ca_crt, "-CAkey", &ca_key,
        ];
        args.extend(["-CAcreateserial", "-out", &crt, "-extfile", ext]);
        args.extend(days);
        openssl(dir, &args);
    }
}

/// What the TLS front saw.
#[derive(Default)]
struct Seen {
    /// The `authorization` header of each forwarded call.
    authorizations: Vec<String>,
    /// Handshakes refused (no or an unknown client certificate).
    refused: usize,
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
                        let auth = req
                            .headers()
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_string();
                        log.lock().unwrap().authorizations.push(auth);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_and_the_cli_reach_the_server_over_mutual_tls_with_an_api_key() {
    let dir = temp_dir();
    let root = dir.path();
    let certs: PathBuf = root.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    certificates(&certs);
    let server = Server::start(root).await;
    let (port, seen) = tls_front(&certs, server.address.clone()).await;

    let repo = root.join("repo");
    make_repo(&repo, &[("workplans/TLS-1.md", &workplan("TLS-1", 1))]);
    let db = database(Backend::Sqlite, root).await;
    let config = write_config(
        root,
        &db,
        &task_queue("tls"),
        &[RepoEntry {
            name: "repo",
            path: &repo,
            remote: None,
            push: false,
        }],
        "",
    );

    let log = root.join("worker.log");
    let worker = KillOnDrop(
        steward(&config, port, &certs, "client", &["worker"])
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(root.join("worker.err")).unwrap())
            .spawn()
            .unwrap(),
    );
    let out = tokio::task::spawn_blocking({
        let (config, certs) = (config.clone(), certs.clone());
        move || {
            steward(&config, port, &certs, "client", &["sweep", "run"])
                .output()
                .unwrap()
        }
    });
    let out = tokio::time::timeout(Duration::from_secs(120), out)
        .await
        .expect("the sweep finished over TLS")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let result: SweepResult = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result.exit_code, 0, "{result:?}");
    assert_eq!(result.repos_processed.len(), 1, "{result:?}");
    assert_eq!(commit_count(&repo), 2, "the worker did the work over TLS");

    {
        let seen = seen.lock().unwrap();
        assert!(
            seen.authorizations.len() > 5,
            "calls went through the TLS front: {}",
            seen.authorizations.len()
        );
        let expected = format!("Bearer {PLANTED_SECRET}");
        assert!(
            seen.authorizations.iter().all(|a| *a == expected),
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
    assert_eq!(out.status.code(), Some(2), "{stderr}");
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

    drop(worker);
    let logs = std::fs::read_to_string(&log).unwrap()
        + &std::fs::read_to_string(root.join("worker.err")).unwrap();
    assert!(
        !logs.contains(PLANTED_SECRET),
        "the API key stays out of the log"
    );
    assert!(!stderr.contains(PLANTED_SECRET), "and out of errors");
}
