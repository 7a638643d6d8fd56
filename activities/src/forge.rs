//! `[forge]`: the forge (Gitea, Forgejo, GitHub) whose pull-request
//! comments start cold runs and trials, and where their results go back
//! as commit statuses. Both forges speak the same two calls here: a pull
//! request's head (`GET /repos/{repo}/pulls/{n}`) and a commit status
//! (`POST /repos/{repo}/statuses/{sha}`). The webhook's secret and the API
//! token come from files or the environment, never from the config.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use steward_proto::v1::ForgeStatus;
use steward_proto::vocab::UpgradeMode;

/// The environment variable the webhook secret is read from, without
/// `secret_file`.
pub const SECRET_ENV: &str = "STEWARD_FORGE_SECRET";
/// The environment variable the API token is read from, without
/// `token_file`.
pub const TOKEN_ENV: &str = "STEWARD_FORGE_TOKEN";

const TIMEOUT: Duration = Duration::from_secs(10);

/// `[forge]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForgeSettings {
    /// The forge's API root: `https://git.example.org/api/v1` (Gitea,
    /// Forgejo) or `https://api.github.com`.
    pub api_url: String,
    /// File holding the webhook secret (default: `$STEWARD_FORGE_SECRET`).
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// File holding the API token that reads pull requests and posts
    /// statuses (default: `$STEWARD_FORGE_TOKEN`).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Which app each forge repository (`owner/name`) is the recipe of.
    #[serde(default)]
    pub repos: BTreeMap<String, String>,
    /// Comment commands and the run each starts: `cold` or `trial`.
    #[serde(default = "default_commands")]
    pub commands: BTreeMap<String, String>,
    /// Forge users who may trigger runs when no `[[operators]]` are
    /// declared (with operators declared, a commenter must be one of them,
    /// by forge login, with `start` on the app).
    #[serde(default)]
    pub allowed_commenters: Vec<String>,
    /// The link a status carries (the operator page); none by default.
    #[serde(default)]
    pub target_url: Option<String>,
}

fn default_commands() -> BTreeMap<String, String> {
    [
        ("!testme".to_string(), "cold".to_string()),
        ("!testme --quick".to_string(), "trial".to_string()),
    ]
    .into_iter()
    .collect()
}

impl ForgeSettings {
    /// Checks values that parse but are invalid; returns (key, message).
    pub fn check(&self) -> Result<(), (String, String)> {
        if !(self.api_url.starts_with("http://") || self.api_url.starts_with("https://")) {
            return Err((
                "api_url".into(),
                "must be an http:// or https:// URL".into(),
            ));
        }
        if self.commands.is_empty() {
            return Err(("commands".into(), "names no comment command".into()));
        }
        for (command, mode) in &self.commands {
            if !command.starts_with('!') || command.contains('\n') {
                return Err((
                    "commands".into(),
                    format!("`{command}`: a command is one line starting with `!`"),
                ));
            }
            match mode.parse::<UpgradeMode>() {
                Ok(UpgradeMode::Cold | UpgradeMode::Trial) => {}
                _ => {
                    return Err((
                        "commands".into(),
                        format!(
                            "`{command}` = `{mode}`: a comment starts a `cold` run or a `trial`, \
                             never a warm upgrade"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The run `comment` asks for: the longest configured command its
    /// first line is, as (command, mode).
    pub fn command_of(&self, comment: &str) -> Option<(String, UpgradeMode)> {
        let first = comment.lines().next().unwrap_or_default().trim();
        self.commands
            .iter()
            .filter(|(c, _)| first == c.as_str())
            .max_by_key(|(c, _)| c.len())
            .and_then(|(c, m)| Some((c.clone(), m.parse().ok()?)))
    }

    /// The webhook secret.
    pub fn secret(&self) -> Result<String, String> {
        read_secret(self.secret_file.as_ref(), SECRET_ENV, "webhook secret")
    }

    fn token(&self) -> Result<String, String> {
        read_secret(self.token_file.as_ref(), TOKEN_ENV, "API token")
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.api_url.trim_end_matches('/'))
    }

    /// The head commit of pull request `pull` of `repo`.
    pub async fn pull_head(&self, repo: &str, pull: u64) -> Result<String, String> {
        let url = self.url(&format!("repos/{repo}/pulls/{pull}"));
        let resp = reqwest::Client::new()
            .get(&url)
            .header("Authorization", format!("token {}", self.token()?))
            .header("Accept", "application/json")
            .timeout(TIMEOUT)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "asking the forge for {repo}#{pull}: {}",
                    crate::http::cause(&e, TIMEOUT)
                )
            })?;
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        if !status.is_success() {
            return Err(format!(
                "the forge answered {status} for {repo}#{pull}: {}",
                body["message"].as_str().unwrap_or_default()
            ));
        }
        body["head"]["sha"]
            .as_str()
            .filter(|s| s.len() >= 7 && s.chars().all(|c| c.is_ascii_hexdigit()))
            .map(String::from)
            .ok_or_else(|| format!("the forge's answer for {repo}#{pull} has no head commit"))
    }

    /// Posts `status` as the commit status of its origin's head.
    pub async fn post_status(&self, status: &ForgeStatus) -> Result<(), String> {
        let origin = status.origin.clone().unwrap_or_default();
        let url = self.url(&format!("repos/{}/statuses/{}", origin.repo, origin.sha));
        let mut body = serde_json::json!({
            "state": status.state,
            "context": status.context,
            "description": steward_proto::limits::bounded(&status.description, 140),
        });
        if let Some(link) = &self.target_url {
            body["target_url"] = link.clone().into();
        }
        let resp = reqwest::Client::new()
            .post(&url)
            .header("Authorization", format!("token {}", self.token()?))
            .json(&body)
            .timeout(TIMEOUT)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "posting the status of {} to the forge: {}",
                    origin.sha,
                    crate::http::cause(&e, TIMEOUT)
                )
            })?;
        if !resp.status().is_success() {
            return Err(format!(
                "the forge answered {} to the status of {}",
                resp.status(),
                origin.sha
            ));
        }
        Ok(())
    }
}

/// A secret from `file`, else from the environment variable `env`.
fn read_secret(file: Option<&PathBuf>, env: &str, what: &str) -> Result<String, String> {
    let value = match file {
        Some(f) => std::fs::read_to_string(f)
            .map_err(|e| format!("reading the forge {what} from {}: {e}", f.display()))?,
        None => std::env::var(env).map_err(|_| {
            format!("the forge {what} is not set: put it in ${env} or name a file in [forge]")
        })?,
    };
    let value = value.trim().to_string();
    if value.is_empty() {
        return Err(format!("the forge {what} is empty"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ForgeSettings {
        ForgeSettings {
            api_url: "http://forge/api/v1".into(),
            secret_file: None,
            token_file: None,
            repos: BTreeMap::new(),
            commands: default_commands(),
            allowed_commenters: vec![],
            target_url: None,
        }
    }

    #[test]
    fn the_longest_command_a_comment_is_wins() {
        let s = settings();
        assert_eq!(
            s.command_of("!testme --quick\nplease"),
            Some(("!testme --quick".into(), UpgradeMode::Trial))
        );
        assert_eq!(
            s.command_of(" !testme "),
            Some(("!testme".into(), UpgradeMode::Cold))
        );
        assert_eq!(s.command_of("looks good, !testme later"), None);
        assert_eq!(s.command_of("!testme --quickly"), None);
    }

    #[test]
    fn a_comment_never_starts_a_warm_upgrade() {
        let mut s = settings();
        s.commands.insert("!deploy".into(), "warm".into());
        assert!(s.check().unwrap_err().1.contains("never a warm upgrade"));
    }
}
