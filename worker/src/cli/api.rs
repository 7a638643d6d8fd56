//! `steward api`: serve the HTTP API and the operator page; `steward api
//! token` and `steward api keygen` make the credentials it checks.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::cli::print_json;
use crate::ops::sign::{self, Signer};
use crate::serve;

/// Options of `steward api`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Listen on this address (default `[api].listen`, 127.0.0.1:8234).
    #[arg(long)]
    listen: Option<String>,
    /// Temporal client profile (standard client config).
    #[arg(long)]
    profile: Option<String>,
    /// Credentials instead of serving.
    #[command(subcommand)]
    command: Option<Command>,
}

/// Credential commands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// A new operator token: prints the token once (give it to the operator)
    /// and the `[[operators]]` entry for the config (which keeps only its
    /// SHA-256).
    Token {
        /// The operator's name, as every action they take is recorded.
        name: String,
        /// Their groups, comma-separated.
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        /// When the token stops working (RFC 3339).
        #[arg(long)]
        expires: Option<String>,
    },
    /// Serve `/healthz`, `/readyz` and `/v1/summary` over a store opened
    /// read-only, without Temporal or a config: to look at a restored copy
    /// (the restore drill does). Every route but `/healthz` needs the token
    /// given in STEWARD_READ_ONLY_TOKEN.
    ReadOnly {
        /// The store; give it in the environment to keep its password out
        /// of the process list.
        #[arg(long, env = steward_activities::restore::served::DATABASE_URL_ENV, hide_env_values = true)]
        database_url: String,
        /// Listen on this address (a free loopback port by default).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
    },
    /// A new signing key pair: writes the private key to FILE (mode 0600)
    /// and prints the public key for `[api] verify_key`.
    Keygen {
        /// Where to write the private key; refused if it exists.
        #[arg(long)]
        out: PathBuf,
    },
}

pub(super) async fn run(config: &std::path::Path, args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Some(Command::Token {
            name,
            groups,
            expires,
        }) => token(&name, groups, expires),
        Some(Command::Keygen { out }) => keygen(&out),
        Some(Command::ReadOnly {
            database_url,
            listen,
        }) => {
            serve::read_only_api(&database_url, &listen).await?;
            Ok(ExitCode::SUCCESS)
        }
        None => {
            serve::api(config, args.listen, args.profile.as_deref()).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn token(name: &str, groups: Vec<String>, expires: Option<String>) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        crate::config::valid_name(name),
        "operator name `{name}` must be 1 to 63 lowercase letters, digits or inner `-`"
    );
    if let Some(t) = &expires {
        chrono::DateTime::parse_from_rfc3339(t).with_context(|| {
            format!("--expires `{t}` is not an RFC 3339 time like 2027-03-01T00:00:00Z")
        })?;
    }
    let token = sign::new_token()?;
    let hash = sign::token_hash(&token);
    let entry = crate::config::OperatorConfig {
        name: name.to_string(),
        groups,
        token_sha256: hash.clone(),
        token_id: None,
        expires,
    };
    #[derive(serde::Serialize)]
    struct Entries<'a> {
        operators: [&'a crate::config::OperatorConfig; 1],
    }
    let toml = toml::to_string(&Entries {
        operators: [&entry],
    })?;
    print_json(&serde_json::json!({
        "token": token,
        "token_sha256": hash,
        "token_id": entry.credential_id(),
        "config": toml,
    }))?;
    eprintln!(
        "give the token to {name} (it is shown once; steward keeps only its SHA-256), \
         and add the `config` entry to steward.toml"
    );
    Ok(ExitCode::SUCCESS)
}

fn keygen(out: &std::path::Path) -> anyhow::Result<ExitCode> {
    let signer = Signer::generate()?;
    let mut file = open_private(out)?;
    file.write_all(signer.secret_hex().as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", out.display()))?;
    print_json(&serde_json::json!({
        "signing_key_file": out,
        "verify_key": signer.verify_key(),
        "config": format!(
            "[api]\nverify_key = \"{}\"\nsigning_key_file = \"{}\"\n",
            signer.verify_key(),
            out.display()
        ),
    }))?;
    Ok(ExitCode::SUCCESS)
}

fn open_private(path: &std::path::Path) -> anyhow::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path).with_context(|| {
        format!(
            "creating {} (an existing key is never overwritten)",
            path.display()
        )
    })
}
