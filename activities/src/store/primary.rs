//! steward's own store through a failover. A PostgreSQL `database_url`
//! may name every host of a cluster, as libpq does
//! (`postgres://u@h1:5432,h2:5432/steward?target_session_attrs=read-write`):
//! the store connects to the host that accepts writes, and a watch beside
//! the pool follows the primary. When the host steward writes to stops
//! answering or turns read-only, the watch finds the host that accepts
//! writes now and points the pool's new connections there; the pool drops
//! the dead ones as it hands them out. A step that failed meanwhile fails
//! its activity attempt, and Temporal retries it onto the new primary. The
//! log line, [`Store::failovers`] and the metrics say from where, to where,
//! and after how long (the RTO steward saw: from the old primary's last
//! answer to the new primary's first).

use std::str::FromStr as _;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use sqlx::any::AnyConnectOptions;
use sqlx::postgres::PgConnection;
use sqlx::{AnyPool, Connection as _, Row as _};

use crate::dburl::DatabaseUrl;
use crate::failover::service::{Service, timed};
use crate::metrics::Metrics;

use super::Store;

/// How often the watch asks the primary whether it still is one.
const EVERY: Duration = Duration::from_secs(1);

/// One failover of the store, as steward saw it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Failover {
    /// The host steward wrote to before.
    pub from: String,
    /// The host it writes to now.
    pub to: String,
    /// When it switched (milliseconds since the epoch).
    pub at_ms: i64,
    /// From the old primary's last answer to the switch.
    pub seconds: f64,
}

/// The primary of a cluster named by its hosts, followed.
#[derive(Debug)]
pub struct Follower {
    /// What the pool is, as the log says it: `state store`, `backfill
    /// `bf`'s database`.
    what: String,
    service: Service,
    current: Mutex<String>,
    seen: Mutex<Vec<Failover>>,
    metrics: OnceLock<Metrics>,
}

/// Whether `url` names a cluster to follow: a PostgreSQL URL with more
/// than one host, or with `target_session_attrs=read-write`.
fn cluster(url: &DatabaseUrl) -> Option<Service> {
    if url.is_sqlite() {
        return None;
    }
    let service = Service::parse(url.as_str()).ok()?;
    (service.hosts().len() > 1 || url.as_str().contains("target_session_attrs=read-write"))
        .then_some(service)
}

/// A pool on `url` (a SQLite or PostgreSQL URL; a store's, creating its
/// file, or a backfill's target, `what` in the log): for a cluster's URL,
/// on the host that accepts writes now, followed while `alive` has an
/// owner.
pub async fn connect_following(
    url: &str,
    what: &str,
    alive: Weak<()>,
) -> Result<(AnyPool, Option<Arc<Follower>>), super::Error> {
    let parsed = DatabaseUrl::parse(url)?;
    let Some(service) = cluster(&parsed) else {
        let pool = super::connect_any(url)
            .await
            .map_err(|source| super::Error::Connect {
                url: parsed.redacted(),
                source,
            })?;
        return Ok((pool, None));
    };
    let (follower, host_url) =
        Follower::find(what, service)
            .await
            .map_err(|why| super::Error::NoPrimary {
                url: parsed.redacted(),
                why,
            })?;
    let pool = super::connect_any(&host_url)
        .await
        .map_err(|source| super::Error::Connect {
            url: parsed.redacted(),
            source,
        })?;
    follower.clone().watch(pool.clone(), alive);
    Ok((pool, Some(follower)))
}

impl Follower {
    /// The host that accepts writes now, and the URL of that host alone.
    async fn find(what: &str, service: Service) -> Result<(Arc<Self>, String), String> {
        let (host, c) = service.primary().await?;
        let _ = c.close().await;
        let url = service.host_url(&host);
        Ok((
            Arc::new(Self {
                what: what.to_string(),
                service,
                current: Mutex::new(host),
                seen: Mutex::default(),
                metrics: OnceLock::new(),
            }),
            url,
        ))
    }

    /// The host steward writes to now.
    pub fn current(&self) -> String {
        self.current.lock().expect("not poisoned").clone()
    }

    /// Follows the primary for `pool` while `alive` has an owner.
    fn watch(self: Arc<Self>, pool: AnyPool, alive: Weak<()>) {
        tokio::spawn(async move {
            let mut conn: Option<PgConnection> = None;
            let mut last_ok = Instant::now();
            let mut told = false;
            loop {
                tokio::time::sleep(EVERY).await;
                if alive.upgrade().is_none() || pool.is_closed() {
                    return;
                }
                let host = self.current();
                match self.writable(&host, &mut conn).await {
                    Ok(()) => {
                        last_ok = Instant::now();
                        told = false;
                        continue;
                    }
                    Err(why) if !told => {
                        tracing::warn!(
                            "{}: {host} does not take writes ({why}); looking for the host that does",
                            self.what
                        );
                        told = true;
                    }
                    Err(_) => {}
                }
                conn = None;
                match self.service.primary().await {
                    Ok((new, c)) => {
                        let _ = c.close().await;
                        if new != host {
                            self.switch(&pool, &host, &new, last_ok.elapsed().as_secs_f64());
                            last_ok = Instant::now();
                            told = false;
                        }
                    }
                    Err(why) => tracing::debug!("{}: {why}", self.what),
                }
            }
        });
    }

    /// Whether `host` still answers as the primary, on the watch's own
    /// connection (made again when it broke).
    async fn writable(&self, host: &str, conn: &mut Option<PgConnection>) -> Result<(), String> {
        if conn.is_none() {
            *conn = Some(self.service.connect(host).await?);
        }
        let c = conn.as_mut().expect("connected above");
        let row = timed(sqlx::query("SELECT pg_is_in_recovery()").fetch_one(c)).await;
        match row.and_then(|r| r.try_get::<bool, _>(0).map_err(|e| e.to_string())) {
            Ok(false) => Ok(()),
            Ok(true) => Err("it is read-only now, in recovery".into()),
            Err(e) => Err(e),
        }
    }

    /// Points the pool's new connections at `to`, and says so.
    fn switch(&self, pool: &AnyPool, from: &str, to: &str, seconds: f64) {
        match AnyConnectOptions::from_str(&self.service.host_url(to)) {
            Ok(options) => pool.set_connect_options(options),
            Err(e) => {
                tracing::error!("{}: cannot connect to {to}: {e}", self.what);
                return;
            }
        }
        *self.current.lock().expect("not poisoned") = to.to_string();
        tracing::warn!(
            "{} failover: writing to {to} instead of {from}, {seconds:.1} s after {from} last answered; \
             steps that failed meanwhile are retried",
            self.what
        );
        if let Some(m) = self.metrics.get() {
            m.store_failover(to, seconds);
        }
        self.seen.lock().expect("not poisoned").push(Failover {
            from: from.into(),
            to: to.into(),
            at_ms: crate::time::now_ms(),
            seconds,
        });
    }
}

impl Store {
    /// The failovers this process followed, oldest first (none for a
    /// store named by one host, or SQLite).
    pub fn failovers(&self) -> Vec<Failover> {
        self.primary
            .as_ref()
            .map(|f| f.seen.lock().expect("not poisoned").clone())
            .unwrap_or_default()
    }

    /// The host the store writes to now, for a store named by its
    /// cluster's hosts.
    pub fn primary_host(&self) -> Option<String> {
        self.primary.as_ref().map(|f| f.current())
    }

    /// Records each failover followed into `metrics` from now on.
    pub fn record_failovers_into(&self, metrics: &Metrics) {
        if let Some(f) = &self.primary {
            let _ = f.metrics.set(metrics.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_postgres_url_naming_a_cluster_is_followed() {
        let followed = |url: &str| cluster(&DatabaseUrl::parse(url).unwrap()).is_some();
        assert!(followed(
            "postgres://u:p@db1:5432,db2:5432/steward?target_session_attrs=read-write"
        ));
        assert!(followed("postgres://u@db1,db2/steward"));
        assert!(followed(
            "postgresql://u@db1/steward?sslmode=disable&target_session_attrs=read-write"
        ));
        assert!(!followed("postgres://u@db1:5432/steward"));
        assert!(!followed("sqlite://state.db"));
    }

    #[test]
    fn a_lost_connection_is_a_failover_not_a_wrong_statement() {
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(crate::store::unavailable(&io));
        assert!(crate::store::unavailable(&sqlx::Error::PoolTimedOut));
        assert!(!crate::store::unavailable(&sqlx::Error::RowNotFound));
        assert_eq!(crate::store::Error::Sql(io).kind(), "connect");
    }
}
