//! The drilled service as PostgreSQL clients see it: a URL with every host
//! of the cluster, and writes going to the one that accepts them (libpq's
//! `target_session_attrs=read-write`), found again after a failover.

use std::str::FromStr as _;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions as _, Connection as _, Row as _};
use steward_proto::v1::HostRole;

/// How long one host gets to accept a connection or answer a query.
pub const HOST_TIMEOUT: Duration = Duration::from_secs(2);

/// A parsed service URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    userinfo: String,
    hosts: Vec<String>,
    path: String,
    query: String,
}

impl Service {
    /// Parses `postgres://user[:password]@h1[:p1],h2[:p2]/db[?params]`;
    /// `target_session_attrs` is what this module does, so it is dropped.
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .ok_or_else(|| "not a postgres:// URL".to_string())?;
        let (authority, tail) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        let (userinfo, hostlist) = match authority.rfind('@') {
            Some(i) => (&authority[..i], &authority[i + 1..]),
            None => ("", authority),
        };
        let (path, query) = match tail.find('?') {
            Some(i) => (&tail[..i], &tail[i + 1..]),
            None => (tail, ""),
        };
        let hosts: Vec<String> = hostlist
            .split(',')
            .filter(|h| !h.is_empty())
            .map(|h| {
                let has_port = match h.rfind(']') {
                    Some(close) => h[close..].contains(':'),
                    None => h.contains(':'),
                };
                if has_port {
                    h.to_string()
                } else {
                    format!("{h}:5432")
                }
            })
            .collect();
        if hosts.is_empty() {
            return Err("names no host".into());
        }
        let query = query
            .split('&')
            .filter(|p| !p.is_empty() && !p.starts_with("target_session_attrs="))
            .collect::<Vec<_>>()
            .join("&");
        Ok(Self {
            userinfo: userinfo.to_string(),
            hosts,
            path: path.to_string(),
            query,
        })
    }

    /// The hosts, `host:port`, in the URL's order.
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    /// The URL of one host.
    pub fn host_url(&self, host: &str) -> String {
        let user = if self.userinfo.is_empty() {
            String::new()
        } else {
            format!("{}@", self.userinfo)
        };
        let query = if self.query.is_empty() {
            String::new()
        } else {
            format!("?{}", self.query)
        };
        format!("postgres://{user}{host}/{}{query}", self.path)
    }

    /// The URL with its password hidden, for logs and evidence.
    pub fn redacted(&self) -> String {
        let user = match self.userinfo.split_once(':') {
            Some((u, _)) => format!("{u}:***@"),
            None if self.userinfo.is_empty() => String::new(),
            None => format!("{}@", self.userinfo),
        };
        // Writes go where libpq's `target_session_attrs=read-write` sends
        // them: said, since that is how the drill connects.
        let query = if self.query.is_empty() {
            "target_session_attrs=read-write".to_string()
        } else {
            format!("{}&target_session_attrs=read-write", self.query)
        };
        format!(
            "postgres://{user}{}/{}?{query}",
            self.hosts.join(","),
            self.path
        )
    }

    /// A connection to `host`, within [`HOST_TIMEOUT`].
    pub async fn connect(&self, host: &str) -> Result<PgConnection, String> {
        let options = PgConnectOptions::from_str(&self.host_url(host))
            .map_err(|e| format!("{host}: {e}"))?
            .disable_statement_logging();
        match tokio::time::timeout(HOST_TIMEOUT, options.connect()).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(format!("{host}: {}", first_line(&e.to_string()))),
            Err(_) => Err(format!(
                "{host}: no connection within {}s",
                HOST_TIMEOUT.as_secs()
            )),
        }
    }

    /// Each host's role now: `primary`, `standby` or `down` (with why).
    pub async fn roles(&self) -> Vec<HostRole> {
        let mut out = Vec::new();
        for host in &self.hosts {
            let role = match self.connect(host).await {
                Err(e) => HostRole {
                    host: host.clone(),
                    role: "down".into(),
                    detail: e,
                },
                Ok(mut c) => {
                    let answer =
                        timed(sqlx::query("SELECT pg_is_in_recovery()").fetch_one(&mut c)).await;
                    let _ = c.close().await;
                    match answer.and_then(|r| r.try_get::<bool, _>(0).map_err(|e| e.to_string())) {
                        Ok(true) => HostRole {
                            host: host.clone(),
                            role: "standby".into(),
                            detail: String::new(),
                        },
                        Ok(false) => HostRole {
                            host: host.clone(),
                            role: "primary".into(),
                            detail: String::new(),
                        },
                        Err(e) => HostRole {
                            host: host.clone(),
                            role: "down".into(),
                            detail: e,
                        },
                    }
                }
            };
            out.push(role);
        }
        out
    }

    /// A connection to the first host that accepts writes, and its name.
    pub async fn primary(&self) -> Result<(String, PgConnection), String> {
        let mut why = Vec::new();
        for host in &self.hosts {
            match self.connect(host).await {
                Err(e) => why.push(e),
                Ok(mut c) => {
                    let answer = timed(sqlx::query("SELECT pg_is_in_recovery()").fetch_one(&mut c))
                        .await
                        .and_then(|r| r.try_get::<bool, _>(0).map_err(|e| e.to_string()));
                    match answer {
                        Ok(false) => return Ok((host.clone(), c)),
                        Ok(true) => why.push(format!("{host}: read-only (in recovery)")),
                        Err(e) => why.push(format!("{host}: {e}")),
                    }
                    let _ = c.close().await;
                }
            }
        }
        Err(format!("no host accepts writes: {}", why.join("; ")))
    }
}

/// A standby as its primary sees it (`pg_stat_replication`).
#[derive(Debug, Clone, PartialEq)]
pub struct Standby {
    /// `application_name@client_addr`.
    pub name: String,
    /// `streaming`, `catchup`, ...
    pub state: String,
    /// Replay lag in bytes (-1: not known).
    pub lag_bytes: i64,
    /// Replay lag in seconds, as the primary last heard it from the
    /// standby (`replay_lag`; 0 when it has nothing to replay).
    pub lag_seconds: f64,
}

impl Standby {
    /// Whether it streams with a known lag.
    pub fn streaming(&self) -> bool {
        self.state == "streaming" && self.lag_bytes >= 0
    }

    /// One line for a report.
    pub fn line(&self) -> String {
        format!(
            "{} {}, replay lag {} bytes ({:.1} s)",
            self.name, self.state, self.lag_bytes, self.lag_seconds
        )
    }
}

/// The standbys the primary on `c` serves.
pub async fn standbys(c: &mut PgConnection) -> Result<Vec<Standby>, String> {
    let rows = timed(
        sqlx::query(
            "SELECT COALESCE(application_name, ''), COALESCE(client_addr::text, 'local'), COALESCE(state, ''), \
             COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), -1)::bigint, \
             COALESCE(EXTRACT(EPOCH FROM replay_lag), 0)::float8 FROM pg_stat_replication",
        )
        .fetch_all(c),
    )
    .await?;
    Ok(rows
        .iter()
        .map(|row| Standby {
            name: format!(
                "{}@{}",
                row.try_get::<String, _>(0).unwrap_or_default(),
                row.try_get::<String, _>(1).unwrap_or_default()
            ),
            state: row.try_get(2).unwrap_or_default(),
            lag_bytes: row.try_get(3).unwrap_or(-1),
            lag_seconds: row.try_get(4).unwrap_or(0.0),
        })
        .collect())
}

/// A query (or any database call) within [`HOST_TIMEOUT`], its error as
/// one line.
pub async fn timed<T>(
    call: impl std::future::Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(HOST_TIMEOUT, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(first_line(&e.to_string())),
        Err(_) => Err(format!("no answer within {}s", HOST_TIMEOUT.as_secs())),
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multi_host_url_splits_into_host_urls_without_target_session_attrs() {
        let s = Service::parse(
            "postgres://app:s3cret@10.0.0.1:5433,db2/state?target_session_attrs=read-write&sslmode=disable",
        )
        .unwrap();
        assert_eq!(s.hosts(), ["10.0.0.1:5433", "db2:5432"]);
        assert_eq!(
            s.host_url("db2:5432"),
            "postgres://app:s3cret@db2:5432/state?sslmode=disable"
        );
        assert_eq!(
            s.redacted(),
            "postgres://app:***@10.0.0.1:5433,db2:5432/state?sslmode=disable&target_session_attrs=read-write",
            "shown as the drill connects: every host, every parameter, the password hidden"
        );
        assert!(Service::parse("mysql://x/y").is_err());
        assert!(Service::parse("postgres:///db").is_err());
        let v6 = Service::parse("postgres://u@[::1]:6000,[::1]/d").unwrap();
        assert_eq!(v6.hosts(), ["[::1]:6000", "[::1]:5432"]);
    }
}
