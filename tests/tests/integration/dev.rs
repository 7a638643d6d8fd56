//! `steward dev`: a real dev server as a child process with its SQLite file
//! under the data dir, the worker in the same process, schedules synced, a
//! first sweep; SIGTERM stops both; a restart keeps the history.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use steward_tests::free_port;
use steward_tests::{make_repo, run_steward, steward_bin, temp_dir, temporal_bin, workplan};

fn start_dev(config: &std::path::Path, port: u16, stderr: &std::path::Path) -> std::process::Child {
    Command::new(steward_bin())
        .arg("--config")
        .arg(config)
        .args([
            "dev",
            "--headless",
            "--sweep-now",
            "--port",
            &port.to_string(),
        ])
        .env("STEWARD_TEMPORAL_BIN", temporal_bin())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(stderr).unwrap())
        .spawn()
        .unwrap()
}

/// Reads whole JSON documents from the child's stdout until `n` are read;
/// `None` if its output ends first.
fn read_json(child: &mut std::process::Child, n: usize) -> Option<Vec<serde_json::Value>> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = String::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            buf.push_str(&line);
            buf.push('\n');
            if line == "}" {
                let _ = tx.send(serde_json::from_str::<serde_json::Value>(&buf).unwrap());
                buf.clear();
            }
        }
    });
    (0..n)
        .map(|_| match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(doc) => Some(doc),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => None,
            Err(e) => panic!("steward dev output: {e}"),
        })
        .collect()
}

/// Starts `steward dev` on a free port and reads its first `n` documents.
/// The dev server binds more ports than the one found free, so another
/// process can take one first: a start that fails that way ("did not
/// become ready") is tried again on another port, anything else fails.
fn start_dev_ready(
    config: &std::path::Path,
    n: usize,
) -> (std::process::Child, String, Vec<serde_json::Value>) {
    let stderr = config.with_file_name("dev.stderr");
    for _ in 0..5 {
        let port = free_port();
        let mut child = start_dev(config, port, &stderr);
        if let Some(docs) = read_json(&mut child, n) {
            return (child, format!("127.0.0.1:{port}"), docs);
        }
        let status = child.wait().unwrap();
        let err = std::fs::read_to_string(&stderr).unwrap_or_default();
        assert!(
            err.contains("did not become ready"),
            "steward dev ended early ({status}): {err}"
        );
    }
    panic!("steward dev found no free port in 5 tries");
}

/// The retention of the default namespace, read back from the server.
fn retention_days(address: &str) -> u64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = steward_worker::connect::to_address(
            address,
            "default",
            steward_worker::config::GrpcCompression::None,
        )
        .await
        .unwrap();
        steward_worker::namespace::retention(&client)
            .await
            .unwrap()
            .as_secs()
            / 86_400
    })
}

fn sigterm_and_wait(child: &mut std::process::Child) -> std::process::ExitStatus {
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "steward dev did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn dev_runs_a_first_sweep_stops_on_sigterm_and_keeps_history() {
    let dir = temp_dir();
    let repo = dir.path().join("repos/plans");
    make_repo(&repo, &[("workplans/a.md", &workplan("DEV-1", 1))]);
    let config = dir.path().join("steward.toml");
    std::fs::write(
        &config,
        "[temporal]\nretention_days = 45\n\n[api]\nlisten = \"127.0.0.1:0\"\n\n[[repos]]\nname = \"plans\"\npath = \"repos/plans\"\n",
    )
    .unwrap();
    let (mut dev, address, docs) = start_dev_ready(&config, 2);
    assert_eq!(docs[0]["frontend"], address.as_str());
    let api = docs[0]["api"]
        .as_str()
        .unwrap_or_else(|| panic!("steward dev prints its API's URL: {}", docs[0]));
    let api = api.trim_start_matches("http://").trim_end_matches('/');
    let document =
        steward_tests::http_get(api, "/openapi.json").expect("the API answers beside dev");
    assert!(
        document.contains("/consistency/sweep/remote-all"),
        "{document}"
    );
    assert_eq!(docs[0]["retention_days"], 45);
    assert_eq!(
        retention_days(&address),
        45,
        "the server keeps closed runs as long as the config says"
    );
    assert_eq!(
        docs[0]["schedules"]["created"],
        serde_json::json!(["steward-sweep", "steward-sweep-nightly-full"])
    );
    let first = &docs[1];
    assert_eq!(first["exit_code"], 0);
    assert_eq!(first["repos_processed"][0]["repo"], "plans");
    let workflow_id = first["workflow_id"].as_str().unwrap().to_string();
    assert!(
        dir.path().join(".steward/temporal.db").is_file(),
        "persistent server database under the data dir"
    );
    assert!(dir.path().join(".steward/state.db").is_file());
    // Every history and every signed action is in these files: steward's
    // alone.
    let mode = |p: &str| {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(dir.path().join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(".steward"), 0o700, "the data folder is private");
    assert_eq!(mode(".steward/temporal.db"), 0o600, "the server's database");
    assert_eq!(mode(".steward/state.db"), 0o600, "the state store");

    // A command run beside it, told nothing of where the server is, finds
    // the one steward dev said it runs.
    let told = dir.path().join(".steward/dev-server.address");
    assert_eq!(std::fs::read_to_string(&told).unwrap().trim(), address);
    let beside = Command::new(steward_bin())
        .arg("--config")
        .arg(&config)
        .args(["schedules", "list"])
        .env_remove("TEMPORAL_ADDRESS")
        .env_remove("TEMPORAL_PROFILE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        beside.status.success()
            && String::from_utf8_lossy(&beside.stdout).contains("steward-sweep-nightly-full"),
        "{}",
        String::from_utf8_lossy(&beside.stderr)
    );

    let status = sigterm_and_wait(&mut dev);
    assert!(status.success(), "{status:?}");
    assert!(
        !told.exists(),
        "the address is forgotten when steward dev stops"
    );
    assert!(
        std::net::TcpStream::connect(&address).is_err(),
        "the server stopped with steward dev"
    );

    // Every start applies the config's retention again.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("retention_days = 45", "retention_days = 120"),
    )
    .unwrap();
    let (mut again, address, docs) = start_dev_ready(&config, 2);
    assert_eq!(retention_days(&address), 120);
    assert_eq!(
        docs[0]["schedules"]["created"],
        serde_json::json!([]),
        "schedules kept, only updated"
    );
    assert_eq!(
        docs[1]["skipped_clean"],
        serde_json::json!(["plans"]),
        "the second first sweep finds the repo as the first left it: {}",
        docs[1]
    );
    let (code, out, err) = run_steward(&config, &address, &["history", &workflow_id, "--json"]);
    assert_eq!(code, 0, "{err}");
    let timeline: serde_json::Value = serde_json::from_str(&out).unwrap();
    let kinds: Vec<&str> = timeline
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds.first(),
        Some(&"ConsistencySweep"),
        "history survived the restart: {kinds:?}"
    );
    assert!(kinds.contains(&"steward.sweep.batch"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"completed"));

    // A `kill -9` of steward dev takes its server with it: the same
    // command starts again on the same port, at once, even while the old
    // server is still closing its database.
    let db = dir.path().join(".steward/temporal.db");
    let old_server: i32 = std::fs::read_to_string(dir.path().join(".steward/temporal.db.pid"))
        .expect("steward dev keeps its server's process id beside the database")
        .trim()
        .parse()
        .unwrap();
    let serves_db = |pid: i32| steward_worker::devserver::serves(pid, &db);
    assert!(serves_db(old_server), "the recorded process is the server");
    again.kill().unwrap();
    again.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(&address).is_ok() {
        assert!(
            Instant::now() < deadline,
            "the dev server outlived a kill -9 of steward dev"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let port: u16 = address.rsplit(':').next().unwrap().parse().unwrap();
    let stderr = config.with_file_name("dev-again.stderr");
    let mut third = start_dev(&config, port, &stderr);
    let docs = read_json(&mut third, 2).unwrap_or_else(|| {
        panic!(
            "steward dev did not start again on its port: {}",
            std::fs::read_to_string(&stderr).unwrap_or_default()
        )
    });
    assert_eq!(docs[0]["frontend"], address.as_str());
    assert!(
        !serves_db(old_server),
        "the new server started only once the old one had let go of the database"
    );
    assert!(sigterm_and_wait(&mut third).success());
    assert!(
        !dir.path().join(".steward/temporal.db.pid").exists(),
        "a server stopped cleanly leaves no process id behind"
    );
}

#[test]
fn dev_without_a_temporal_binary_says_how_to_install_it() {
    let dir = temp_dir();
    let config = dir.path().join("steward.toml");
    std::fs::write(&config, "").unwrap();
    let out = Command::new(steward_bin())
        .arg("--config")
        .arg(&config)
        .args(["dev", "--temporal-bin", "/nonexistent/temporal"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim(),
        "steward: temporal binary /nonexistent/temporal does not exist"
    );
}

/// Copies `from` into `to`, folders and all.
fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn the_demos_first_sweep_lists_what_it_did_to_every_repo() {
    // `./scripts/demo` on a fresh machine: the example repos made from
    // their templates, the example config, `steward dev --sweep-now`.
    let dir = temp_dir();
    let examples = dir.path().join("examples");
    let shipped = steward_tests::workspace().join("examples");
    copy_tree(&shipped.join("templates"), &examples.join("templates"));
    std::fs::copy(shipped.join("make-repos"), examples.join("make-repos")).unwrap();
    let config = examples.join("steward.toml");
    let text = std::fs::read_to_string(shipped.join("steward.toml")).unwrap();
    assert!(
        !text.contains("[api]"),
        "the test gives the API a free port"
    );
    std::fs::write(
        &config,
        format!("{text}\n[api]\nlisten = \"127.0.0.1:0\"\n"),
    )
    .unwrap();
    let made = Command::new(examples.join("make-repos")).output().unwrap();
    assert!(made.status.success(), "{made:?}");

    let (mut dev, _, docs) = start_dev_ready(&config, 2);
    let first = &docs[1];
    assert_eq!(first["exit_code"], 0, "{first}");
    assert_eq!(
        first["skipped_missing"],
        serde_json::json!(["retired-tools"])
    );
    let processed = first["repos_processed"].as_array().unwrap();
    let mut names: Vec<&str> = processed
        .iter()
        .map(|r| r["repo"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["custodian", "docs-site", "state-hub"], "{first}");
    for repo in processed {
        let actions: Vec<&str> = repo["actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        // What the pass did, never only that a pass did something, and
        // on the first sweep there ever was, no pass done twice.
        assert!(
            actions
                .iter()
                .any(|a| !a.starts_with("writeback") && !a.starts_with("pushed")),
            "{}: {actions:?}",
            repo["repo"]
        );
        assert!(
            !actions.iter().any(|a| a.contains("earlier attempt")),
            "{}: {actions:?}",
            repo["repo"]
        );
        assert!(
            !repo["commit"].as_str().unwrap().is_empty(),
            "{}: {repo}",
            repo["repo"]
        );
    }
    the_demos_page_opens_signed_in_once(&docs[0]);
    assert!(sigterm_and_wait(&mut dev).success());
}

/// The demo declares no operator: `steward dev` printed a sign-in link
/// that signs its local operator in once, and the page then works.
fn the_demos_page_opens_signed_in_once(started: &serde_json::Value) {
    let link = started["sign_in"]
        .as_str()
        .unwrap_or_else(|| panic!("steward dev prints a sign-in link: {started}"));
    let rest = link.strip_prefix("http://").unwrap();
    let (addr, path) = rest.split_at(rest.find('/').unwrap());
    assert!(path.starts_with("/ui/signin/local?secret=stw_"), "{link}");
    let (code, _, body) = http(addr, "/", None);
    assert_eq!(code, 200);
    assert!(
        body.contains("id=token"),
        "without the link, the page asks for a token"
    );
    let (code, head, _) = http(addr, path, None);
    assert_eq!(code, 303, "{head}");
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .unwrap_or_else(|| panic!("the link sets the session's cookie: {head}"));
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap();
    let (code, _, body) = http(addr, "/", Some(session));
    assert_eq!(code, 200);
    assert!(body.contains("Signed in as <b id=operator>"), "{body}");
    let (code, _, whoami) = http(addr, "/v1/whoami", Some(session));
    assert_eq!(code, 200, "{whoami}");
    let me: serde_json::Value = serde_json::from_str(&whoami).unwrap();
    assert_eq!(me["credential_id"], "local-session", "{me}");
    let (code, _, again) = http(addr, path, None);
    assert_eq!(code, 401, "the link works once: {again}");
    assert!(again.contains("used already"), "{again}");
    let (code, _, _) = http(addr, "/ui/signin/local?secret=stw_guessed", None);
    assert_eq!(code, 401);
}

/// `GET path` on `addr` with an optional cookie: (status, head, body).
fn http(addr: &str, path: &str, cookie: Option<&str>) -> (u16, String, String) {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{cookie}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let code = head.split(' ').nth(1).unwrap().parse().unwrap();
    (code, head.to_string(), body.to_string())
}
