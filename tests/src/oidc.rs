//! A real OpenID provider for the sign-in tests: `oidc-provider` (the
//! certified Node.js implementation, installed by `scripts/setup` into
//! tests/fixtures/oidc) on a free loopback port, with users and groups in
//! a file it reads on every lookup.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{free_port, wait_for, workspace};

/// The provider process, killed when dropped.
pub struct Idp {
    child: Option<Child>,
    dir: PathBuf,
    /// Its port.
    pub port: u16,
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Idp {
    /// Starts the provider in `dir` with `users` (`{"ana": {"name": ...,
    /// "password": ..., "groups": [...]}}`); `redirect_uri` is steward's
    /// callback. Panics, saying how to install it, when it is missing.
    pub async fn start(dir: &Path, users: serde_json::Value, redirect_uri: &str) -> Idp {
        let installed = fixture().join("node_modules/oidc-provider/package.json");
        assert!(
            installed.is_file(),
            "oidc-provider is not installed in {}: run ./scripts/setup",
            fixture().display()
        );
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("redirect_uri"), redirect_uri).unwrap();
        let idp = Idp {
            child: None,
            dir: dir.to_path_buf(),
            port: free_port(),
        };
        idp.set_users(users);
        let mut idp = idp;
        idp.run().await;
        idp
    }

    /// The issuer URL.
    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Replaces the users (and their groups): the next token says so.
    pub fn set_users(&self, users: serde_json::Value) {
        std::fs::write(self.dir.join("users.json"), users.to_string()).unwrap();
    }

    /// Tokens issued from now on live one second (`on`), or ten minutes.
    pub fn short_lived(&self, on: bool) {
        let flag = self.dir.join("short-ttl");
        if on {
            std::fs::write(flag, "").unwrap();
        } else {
            let _ = std::fs::remove_file(flag);
        }
    }

    /// A new signing key set (the old keys no longer published), and the
    /// provider restarted on it.
    pub async fn rotate_keys(&mut self) {
        self.stop();
        std::fs::remove_file(self.dir.join("jwks.json")).unwrap();
        self.run().await;
    }

    /// steward's callback is `redirect_uri` from now on (the provider
    /// restarted on it, its keys kept).
    pub async fn set_redirect(&mut self, redirect_uri: &str) {
        self.stop();
        std::fs::write(self.dir.join("redirect_uri"), redirect_uri).unwrap();
        self.run().await;
    }

    /// An access token (a JWT) about `user`, for `resource` (its audience),
    /// by the user's command-line client.
    pub async fn token(&self, user: &str, resource: &str) -> String {
        let resp = reqwest::Client::new()
            .post(format!("{}/token", self.issuer()))
            .basic_auth(format!("{user}-cli"), Some(format!("{user}-secret")))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "grant_type=client_credentials&scope=openid&resource={}",
                resource
                    .replace('%', "%25")
                    .replace(':', "%3A")
                    .replace('/', "%2F")
            ))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.unwrap();
        assert!(status.is_success(), "{status}: {body}");
        body["access_token"].as_str().unwrap().to_string()
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    async fn run(&mut self) {
        let log = std::fs::File::create(self.dir.join("provider.log")).unwrap();
        let child = Command::new("node")
            .arg(fixture().join("provider.mjs"))
            .arg(self.port.to_string())
            .arg(&self.dir)
            .current_dir(fixture())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("node runs (scripts/setup installs it)");
        self.child = Some(child);
        let url = format!("{}/.well-known/openid-configuration", self.issuer());
        let dir = self.dir.clone();
        wait_for("the OpenID provider", Duration::from_secs(30), || async {
            reqwest::get(&url)
                .await
                .ok()
                .filter(|r| r.status().is_success())
        })
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{e}: {}",
                std::fs::read_to_string(dir.join("provider.log")).unwrap_or_default()
            )
        });
    }
}

fn fixture() -> PathBuf {
    workspace().join("tests/fixtures/oidc")
}

/// `token` with its claims signed again by a key the issuer never had
/// (same header, same `kid`).
pub fn signed_by_another_key(token: &str) -> String {
    node(
        "const c = require('crypto'); const [h, p] = process.argv[1].split('.'); \
         const { privateKey } = c.generateKeyPairSync('rsa', { modulusLength: 2048 }); \
         const s = c.sign('RSA-SHA256', Buffer.from(h + '.' + p), privateKey).toString('base64url'); \
         console.log(h + '.' + p + '.' + s)",
        token,
    )
}

/// `token` with a group added to its claims, its signature kept.
pub fn tampered(token: &str) -> String {
    node(
        "const [h, p, s] = process.argv[1].split('.'); \
         const j = JSON.parse(Buffer.from(p, 'base64url')); j.groups = [...(j.groups || []), 'admin']; \
         console.log(h + '.' + Buffer.from(JSON.stringify(j)).toString('base64url') + '.' + s)",
        token,
    )
}

fn node(script: &str, arg: &str) -> String {
    let out = Command::new("node")
        .args(["-e", script, arg])
        .output()
        .expect("node runs");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}
