//! `steward`: see `steward --help`.

use std::process::ExitCode;

use clap::Parser as _;
use steward_worker::cli::{self, Cli};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STEWARD_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli::run(Cli::parse()).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("steward: {e:#}");
            cli::exit_code(&e)
        }
    }
}
