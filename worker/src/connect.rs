//! Connections to Temporal and to the state store.
//!
//! `steward worker` and the operator commands use the SDK's standard client
//! config (`TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`, `TEMPORAL_API_KEY`, TLS
//! settings and `temporal.toml` profiles), so the same binary works against
//! the dev server and a production cluster. `steward dev` connects to the
//! server it started.

use anyhow::Context as _;
use temporalio_client::envconfig::LoadClientConfigProfileOptions;
use temporalio_client::{Client, ClientOptions, Connection, ConnectionOptions, Url};

use crate::config::GrpcCompression;

impl GrpcCompression {
    fn sdk(self) -> temporalio_client::GrpcCompression {
        match self {
            Self::None => temporalio_client::GrpcCompression::None,
            Self::Gzip => temporalio_client::GrpcCompression::Gzip,
        }
    }
}

/// Connects an operator command with the standard client config,
/// optionally a named profile: a few small messages, sent uncompressed.
pub async fn from_env(profile: Option<&str>) -> anyhow::Result<Client> {
    from_env_with(profile, GrpcCompression::None).await
}

/// The file where `steward dev` says where its server listens, in the
/// config's data dir, for the commands run beside it.
pub fn dev_address_file(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("dev-server.address")
}

/// Connects as the standard client config says; when nothing says where
/// (no `TEMPORAL_ADDRESS`, no `TEMPORAL_PROFILE`) and `steward dev` runs
/// for this data dir, to its server.
pub async fn for_data_dir(data_dir: &std::path::Path) -> anyhow::Result<Client> {
    let told = |var: &str| std::env::var(var).is_ok_and(|v| !v.trim().is_empty());
    let file = dev_address_file(data_dir);
    if !told("TEMPORAL_ADDRESS")
        && !told("TEMPORAL_PROFILE")
        && let Ok(address) = std::fs::read_to_string(&file)
    {
        let address = address.trim();
        let namespace = std::env::var("TEMPORAL_NAMESPACE")
            .ok()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| "default".into());
        return to_address(address, &namespace, GrpcCompression::None)
            .await
            .with_context(|| {
                format!(
                    "connecting to the server `steward dev` said it runs at {address} (in {}): \
                     is `steward dev` still running? Set TEMPORAL_ADDRESS to use another server",
                    file.display()
                )
            });
    }
    from_env(None).await
}

/// Connects with the standard client config and `compression` (the
/// worker's is `[worker] grpc_compression`).
pub async fn from_env_with(
    profile: Option<&str>,
    compression: GrpcCompression,
) -> anyhow::Result<Client> {
    let options = LoadClientConfigProfileOptions::builder()
        .maybe_config_file_profile(profile.map(str::to_owned))
        .build();
    let (mut conn, client) = ClientOptions::load_from_config(options).map_err(|e| {
        anyhow::anyhow!(
            "loading the Temporal client config (TEMPORAL_ADDRESS, temporal.toml): {e:?}"
        )
    })?;
    conn.grpc_compression = compression.sdk();
    let target = conn.target.to_string();
    let connection = Connection::connect(conn).await.with_context(|| {
        format!(
            "connecting to Temporal at {target} (the standard client config: set \
             TEMPORAL_ADDRESS, or a temporal.toml profile, to the server `steward dev` or the \
             cluster serves)"
        )
    })?;
    Client::new(connection, client).context("creating the Temporal client")
}

/// Connects to `address` (`host:port`) in `namespace`. A server that is
/// still starting ("frontend is not healthy yet") is retried for 30 s.
pub async fn to_address(
    address: &str,
    namespace: &str,
    compression: GrpcCompression,
) -> anyhow::Result<Client> {
    let url = Url::parse(&format!("http://{address}")).context("parsing the server address")?;
    let mut options = ConnectionOptions::new(url).build();
    options.grpc_compression = compression.sdk();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let connection = loop {
        match Connection::connect(options.clone()).await {
            Ok(c) => break c,
            Err(e)
                if std::time::Instant::now() < deadline
                    && e.to_string().contains("not healthy") =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(e) => {
                return Err(e).with_context(|| format!("connecting to Temporal at {address}"));
            }
        }
    };
    Client::new(connection, ClientOptions::new(namespace.to_owned()).build())
        .context("creating the Temporal client")
}
