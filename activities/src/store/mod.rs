//! The state store: workstreams, tasks, lease locks, queued status changes,
//! per-repo sweep state, progress events, the findings ledger
//! (`findings.rs`) and the audit archive of closed runs (`archive.rs`).
//!
//! One `sqlx::AnyPool` serves both backends, chosen by the URL: SQLite for
//! the embedded default (`sqlite://.steward/state.db`), PostgreSQL for
//! production. Every statement is written once in the dialect both accept
//! (`$N` parameters, `ON CONFLICT ... DO UPDATE`), always with bound
//! parameters. Migrations run on connect and are idempotent.

pub mod archive;
pub mod drill_log;
pub mod findings;
pub mod job_batches;
pub mod locks;
pub(crate) mod migrations;
pub mod primary;
pub mod shared;
pub mod summary;

/// The schema version this binary migrates the store to.
pub const SCHEMA_VERSION: i64 = migrations::LATEST;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Once};

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyConnection, AnyPool, Connection, Executor, Row, Transaction};
use steward_proto::v1::{LockGrant, ProgressEvent};
use steward_proto::vocab::{ChangeState, StoreBackend};

use crate::dburl::{DatabaseUrl, Unsupported};

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database refused or failed a statement.
    #[error("state store: {0}")]
    Sql(#[from] sqlx::Error),
    /// A PostgreSQL server that is a standby: steward writes.
    #[error(
        "state store {url}: the server is a read-only standby (in recovery): point database_url \
         at the primary, or name every host of the cluster with target_session_attrs=read-write \
         (postgres://user@host1:5432,host2:5432/db?target_session_attrs=read-write)"
    )]
    Standby {
        /// The URL, password redacted.
        url: String,
    },
    /// No host of a cluster's URL accepts writes.
    #[error("state store {url}: no host accepts writes: {why}")]
    NoPrimary {
        /// The URL, password redacted.
        url: String,
        /// Each host and what it said.
        why: String,
    },
    /// The database could not be reached or opened.
    #[error("state store {url}: cannot connect: {source}")]
    Connect {
        /// The URL, password redacted.
        url: String,
        /// The cause.
        source: sqlx::Error,
    },
    /// The URL names neither SQLite nor PostgreSQL.
    #[error("state store: {0}")]
    UnsupportedUrl(#[from] Unsupported),
    /// A store opened read-only was migrated by a newer steward.
    #[error(
        "state store {url}: schema version {version} is newer than this binary's {}",
        SCHEMA_VERSION
    )]
    NewerSchema {
        /// The URL, password redacted.
        url: String,
        /// The store's version.
        version: i64,
    },
    /// The SQLite file's folder could not be created.
    #[error("state store: cannot create {path}: {source}")]
    CreateDir {
        /// The folder.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

impl Error {
    /// What kind of failure it is, as a metric's label: `busy` for a
    /// database that refused because another connection held it (SQLite's
    /// `SQLITE_BUSY` and its extended codes, PostgreSQL's serialization and
    /// lock failures), `connect`, or `sql`.
    pub fn kind(&self) -> &'static str {
        let busy = |e: &sqlx::Error| match e {
            sqlx::Error::Database(db) => db.code().is_some_and(|c| {
                let c = c.as_ref();
                c == "5" || c == "517" || c == "261" || c == "40001" || c == "55P03"
            }),
            sqlx::Error::PoolTimedOut => true,
            _ => false,
        };
        match self {
            Error::Sql(e) if busy(e) => "busy",
            Error::Sql(e) if unavailable(e) => "connect",
            Error::Sql(_) => "sql",
            Error::Connect { .. }
            | Error::CreateDir { .. }
            | Error::Standby { .. }
            | Error::NoPrimary { .. } => "connect",
            Error::UnsupportedUrl(_) | Error::NewerSchema { .. } => "config",
        }
    }
}

/// Handle to the state store; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: StoreBackend,
    /// For a PostgreSQL store named by its cluster's hosts: the primary,
    /// followed through a failover (`primary.rs`).
    primary: Option<Arc<primary::Follower>>,
    /// Held by every clone; the follower's watch ends with the last.
    _alive: Arc<()>,
}

/// A workstream (one workplan file) as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Workstream {
    /// UUID assigned by the store.
    pub id: String,
    /// The workplan's own id, e.g. `STATE-WP-0064`.
    pub workplan_id: String,
    /// Registered repo name.
    pub repo: String,
    /// Path inside the repo.
    pub path: String,
    /// Title from the frontmatter.
    pub title: String,
    /// Status from the frontmatter.
    pub status: String,
    /// Owner from the frontmatter.
    pub owner: String,
    /// Domain from the frontmatter.
    pub domain: String,
    /// `depends_on` as written.
    pub depends_on: String,
    /// Whether the file is gone.
    pub archived: bool,
}

/// A task as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TaskRow {
    /// UUID assigned by the store.
    pub id: String,
    /// The task's own id, e.g. `STATE-WP-0064-T01`.
    pub task_id: String,
    /// UUID of the workstream.
    pub workstream_id: String,
    /// Nearest heading above the block.
    pub title: String,
    /// Current status in the store.
    pub status: String,
    /// Status as last seen in the file; a file value that moved away from
    /// it since the last sweep makes a queued change a conflict (C-15).
    pub file_status: String,
    /// Priority.
    pub priority: String,
    /// Whether a human must act.
    pub needs_human: bool,
    /// Why a human must act.
    pub intervention_note: String,
    /// Whether the task is gone from its file.
    pub archived: bool,
}

/// A status change queued by an operator, waiting for writeback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    /// UUID of the change.
    pub id: String,
    /// The task's own id.
    pub task_id: String,
    /// The new status.
    pub status: String,
    /// Why.
    pub reason: String,
    /// Who asked.
    pub requested_by: String,
    /// Where it is.
    pub state: ChangeState,
}

/// Per-repo sweep memory.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RepoState {
    /// Fingerprint of HEAD, workplan files and pending changes after the
    /// last successful sweep of the repo.
    pub fingerprint: String,
    /// When the repo was first left out by the budget, if it still waits.
    pub starved_since_ms: Option<i64>,
}

/// Whether `e` says the server is gone or will not take writes now (a
/// lost connection, a shutdown, a standby), not that the statement is
/// wrong: a failover in progress, to be retried, never a batch's failure.
pub fn unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // MySQL and MariaDB: shutting down, read-only (`--read-only`, a
        // replica) by error number; their SQLSTATE says only HY000.
        sqlx::Error::Database(db)
            if db
                .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                .is_some_and(|m| matches!(m.number(), 1053 | 1290 | 1836)) =>
        {
            true
        }
        sqlx::Error::Database(db) => db.code().is_some_and(|c| {
            let c = c.as_ref();
            // connection exceptions, admin/crash shutdown, cannot connect
            // now, read-only transaction (a standby)
            c.starts_with("08") || matches!(c, "57P01" | "57P02" | "57P03" | "25006")
        }),
        _ => false,
    }
}

static DRIVERS: Once = Once::new();

/// A pool on any SQLite, PostgreSQL, MySQL or MariaDB URL, with the SQLite
/// busy timeout and WAL mode set. Unlike the store, it never creates a
/// missing database.
pub async fn connect_any(url: &str) -> Result<AnyPool, sqlx::Error> {
    open_pool(url, false).await
}

/// A pool on `url`. A writer's SQLite sessions get the busy timeout and
/// WAL mode; a reader's sessions all refuse writes (`PRAGMA query_only`
/// on SQLite, read-only transactions on PostgreSQL). MySQL and MariaDB
/// sessions run at READ COMMITTED, PostgreSQL's default, so a statement
/// reads what is committed without locking it (InnoDB's REPEATABLE READ
/// takes shared locks on every row an `INSERT ... SELECT` reads, against
/// the application's writes); with `binlog_format = STATEMENT`, which
/// logs no such write at READ COMMITTED, they keep the server's level.
async fn open_pool(url: &str, read_only: bool) -> Result<AnyPool, sqlx::Error> {
    DRIVERS.call_once(sqlx::any::install_default_drivers);
    let sqlite = DatabaseUrl::parse(url).is_ok_and(|u| u.is_sqlite());
    let settings: &'static [&'static str] = match (sqlite, read_only) {
        (true, false) => &["PRAGMA busy_timeout = 15000", "PRAGMA journal_mode = WAL"],
        (true, true) => &["PRAGMA query_only = ON"],
        (false, true) => &["SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"],
        (false, false) => &[],
    };
    AnyPoolOptions::new()
        .max_connections(match (read_only, sqlite) {
            (true, _) => 2,
            (false, true) => 4,
            (false, false) => 8,
        })
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                for statement in settings {
                    conn.execute(*statement).await?;
                }
                if conn.backend_name() == "MySQL" {
                    let binlog: String = sqlx::query_scalar("SELECT CAST(@@binlog_format AS CHAR)")
                        .fetch_one(&mut *conn)
                        .await?;
                    if !binlog.eq_ignore_ascii_case("STATEMENT") {
                        conn.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                            .await?;
                    }
                }
                Ok(())
            })
        })
        .connect(url)
        .await
}

/// A transaction that will write. On SQLite it takes the database's write
/// lock at its start (`BEGIN IMMEDIATE`), so the busy timeout makes it
/// wait for another writer, where a deferred transaction that reads and
/// then writes would fail at once with "database is locked"
/// (`SQLITE_BUSY`, or `SQLITE_BUSY_SNAPSHOT` when another connection
/// committed since its read) and leave its caller to try again. On
/// PostgreSQL, a plain `BEGIN`: its row locks already serialise writers.
pub async fn begin_write(pool: &AnyPool) -> Result<Transaction<'static, Any>, sqlx::Error> {
    if pool.connect_options().database_url.scheme() == "sqlite" {
        pool.begin_with("BEGIN IMMEDIATE").await
    } else {
        pool.begin().await
    }
}

/// [`begin_write`] on a connection held for several transactions.
pub async fn begin_write_on(conn: &mut AnyConnection) -> Result<Transaction<'_, Any>, sqlx::Error> {
    if conn.backend_name() == "SQLite" {
        conn.begin_with("BEGIN IMMEDIATE").await
    } else {
        conn.begin().await
    }
}

impl Store {
    /// Connects and runs the migrations. A SQLite file and its folder are
    /// created when missing.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        let parsed = DatabaseUrl::parse(url)?;
        let url = parsed.creating().map_err(|source| Error::CreateDir {
            path: parsed
                .sqlite_file()
                .and_then(|f| f.parent().map(|p| p.display().to_string()))
                .unwrap_or_default(),
            source,
        })?;
        let alive = Arc::new(());
        let (pool, follower) =
            primary::connect_following(&url, "state store", Arc::downgrade(&alive)).await?;
        if !parsed.is_sqlite() {
            let standby: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
                .fetch_one(&pool)
                .await?;
            if standby {
                pool.close().await;
                return Err(Error::Standby {
                    url: parsed.redacted(),
                });
            }
        }
        let store = Self {
            pool,
            backend: parsed.backend(),
            primary: follower,
            _alive: alive,
        };
        migrations::run(&store.pool, store.backend).await?;
        Ok(store)
    }

    /// Opens an existing store read-only, without migrating it: every
    /// session refuses writes (`PRAGMA query_only` on SQLite, read-only
    /// transactions on PostgreSQL), so a restored copy is looked at, never
    /// changed. Refused when the store is newer than this binary.
    pub async fn open_read_only(url: &str) -> Result<Self, Error> {
        let parsed = DatabaseUrl::parse(url)?;
        let pool = open_pool(url, true)
            .await
            .map_err(|source| Error::Connect {
                url: parsed.redacted(),
                source,
            })?;
        let version: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM steward_schema")
            .fetch_one(&pool)
            .await?;
        if version.is_some_and(|v| v > SCHEMA_VERSION) {
            return Err(Error::NewerSchema {
                url: parsed.redacted(),
                version: version.unwrap_or_default(),
            });
        }
        Ok(Self {
            pool,
            backend: parsed.backend(),
            primary: None,
            _alive: Arc::new(()),
        })
    }

    /// The backend behind this store.
    pub fn backend(&self) -> StoreBackend {
        self.backend
    }

    /// Whether the database answers a query now (the probes' check).
    pub async fn ping(&self) -> Result<(), Error> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// The pool, for tests and maintenance commands.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Takes `name` for `holder` until `now_ms + ttl`, unless another holder
    /// has a lease that has not expired. Taking it again as the same holder
    /// renews it, which makes a retried acquire harmless.
    pub async fn acquire_lock(
        &self,
        name: &str,
        holder: &str,
        ttl_seconds: u32,
        now_ms: i64,
    ) -> Result<LockGrant, Error> {
        let expires = now_ms + i64::from(ttl_seconds) * 1000;
        sqlx::query(
            "INSERT INTO steward_locks (name, holder, expires_at_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at_ms = excluded.expires_at_ms \
             WHERE steward_locks.holder = excluded.holder OR steward_locks.expires_at_ms < $4",
        )
        .bind(name)
        .bind(holder)
        .bind(expires)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        let row = sqlx::query("SELECT holder, expires_at_ms FROM steward_locks WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        let current: String = row.try_get("holder")?;
        Ok(LockGrant {
            acquired: current == holder,
            holder: current,
            expires_at_ms: row.try_get("expires_at_ms")?,
        })
    }

    /// Claims a signed start's `nonce` for `run_id` of `workflow_id`: the
    /// run that holds it (this one when the claim is new or was this run's
    /// before, so a retry claims again).
    pub async fn claim_start(
        &self,
        nonce: &str,
        workflow_id: &str,
        run_id: &str,
        now_ms: i64,
    ) -> Result<String, Error> {
        sqlx::query(
            "INSERT INTO steward_start_claims (nonce, workflow_id, run_id, claimed_at_ms) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (nonce) DO NOTHING",
        )
        .bind(nonce)
        .bind(workflow_id)
        .bind(run_id)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(
            sqlx::query_scalar("SELECT run_id FROM steward_start_claims WHERE nonce = $1")
                .bind(nonce)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Extends `holder`'s lease; false when the lease is no longer theirs.
    pub async fn renew_lock(
        &self,
        name: &str,
        holder: &str,
        ttl_seconds: u32,
        now_ms: i64,
    ) -> Result<bool, Error> {
        let done = sqlx::query(
            "UPDATE steward_locks SET expires_at_ms = $1 WHERE name = $2 AND holder = $3",
        )
        .bind(now_ms + i64::from(ttl_seconds) * 1000)
        .bind(name)
        .bind(holder)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Releases the lock if `holder` has it; releasing twice is harmless.
    pub async fn release_lock(&self, name: &str, holder: &str) -> Result<(), Error> {
        sqlx::query("DELETE FROM steward_locks WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Current holder and expiry of a lock, if any row exists.
    pub async fn lock_holder(&self, name: &str) -> Result<Option<(String, i64)>, Error> {
        let row = sqlx::query("SELECT holder, expires_at_ms FROM steward_locks WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((r.try_get("holder")?, r.try_get("expires_at_ms")?)))
            .transpose()
    }

    /// The repo's sweep memory.
    pub async fn repo_state(&self, repo: &str) -> Result<RepoState, Error> {
        let row =
            sqlx::query("SELECT fingerprint, starved_since_ms FROM repo_state WHERE repo = $1")
                .bind(repo)
                .fetch_optional(&self.pool)
                .await?;
        match row {
            None => Ok(RepoState::default()),
            Some(r) => Ok(RepoState {
                fingerprint: r.try_get("fingerprint")?,
                starved_since_ms: r.try_get("starved_since_ms")?,
            }),
        }
    }

    /// Records a successful sweep of the repo: its fingerprint, no longer starved.
    pub async fn set_repo_swept(
        &self,
        repo: &str,
        fingerprint: &str,
        now_ms: i64,
    ) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO repo_state (repo, fingerprint, starved_since_ms, updated_at_ms) VALUES ($1, $2, NULL, $3) \
             ON CONFLICT (repo) DO UPDATE SET fingerprint = excluded.fingerprint, starved_since_ms = NULL, updated_at_ms = excluded.updated_at_ms",
        )
        .bind(repo)
        .bind(fingerprint)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Clears a repo's starved mark: a sweep visited it (its plan found it
    /// clean) though no activity ran it.
    pub async fn unstarve(&self, repo: &str) -> Result<(), Error> {
        sqlx::query("UPDATE repo_state SET starved_since_ms = NULL WHERE repo = $1")
            .bind(repo)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Marks a repo as left out by the budget; the first mark wins, so a
    /// retried call keeps the original time.
    pub async fn mark_starved(&self, repo: &str, now_ms: i64) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO repo_state (repo, fingerprint, starved_since_ms, updated_at_ms) VALUES ($1, '', $2, $2) \
             ON CONFLICT (repo) DO UPDATE SET starved_since_ms = COALESCE(repo_state.starved_since_ms, excluded.starved_since_ms)",
        )
        .bind(repo)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Repos waiting since a budget skip, longest-waiting first.
    pub async fn starved_repos(&self) -> Result<Vec<String>, Error> {
        let rows = sqlx::query(
            "SELECT repo FROM repo_state WHERE starved_since_ms IS NOT NULL ORDER BY starved_since_ms, repo",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("repo")?)).collect()
    }

    /// A workstream by its workplan id.
    pub async fn workstream_by_workplan_id(
        &self,
        workplan_id: &str,
    ) -> Result<Option<Workstream>, Error> {
        self.one_workstream("workplan_id", workplan_id).await
    }

    /// A workstream by its UUID.
    pub async fn workstream_by_id(&self, id: &str) -> Result<Option<Workstream>, Error> {
        self.one_workstream("id", id).await
    }

    async fn one_workstream(
        &self,
        column: &'static str,
        value: &str,
    ) -> Result<Option<Workstream>, Error> {
        let sql = format!("SELECT {WS_COLUMNS} FROM workstreams WHERE {column} = $1");
        let row = sqlx::query(&sql)
            .bind(value)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(workstream_from).transpose()
    }

    /// Live workstreams of one repo.
    pub async fn workstreams_of(&self, repo: &str) -> Result<Vec<Workstream>, Error> {
        let sql = format!(
            "SELECT {WS_COLUMNS} FROM workstreams WHERE repo = $1 AND archived = 0 ORDER BY workplan_id"
        );
        let rows = sqlx::query(&sql).bind(repo).fetch_all(&self.pool).await?;
        rows.iter().map(workstream_from).collect()
    }

    /// Live workplan ids of every repo but `repo`, with their repo.
    pub async fn workplan_ids_elsewhere(
        &self,
        repo: &str,
        ids: &BTreeSet<String>,
    ) -> Result<BTreeMap<String, String>, Error> {
        // Only the ids the repo's files name: a sweep of many repos never
        // reads the whole estate's workplan ids once per repo.
        let mut out = BTreeMap::new();
        let ids: Vec<&String> = ids.iter().collect();
        for chunk in ids.chunks(500) {
            let marks: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "SELECT workplan_id, repo FROM workstreams WHERE repo <> $1 AND archived = 0 AND workplan_id IN ({})",
                marks.join(", ")
            );
            let mut query = sqlx::query(&sql).bind(repo);
            for id in chunk {
                query = query.bind(id.as_str());
            }
            for r in query.fetch_all(&self.pool).await? {
                out.insert(r.try_get("workplan_id")?, r.try_get("repo")?);
            }
        }
        Ok(out)
    }

    /// Inserts or updates a workstream by UUID.
    pub async fn upsert_workstream(&self, w: &Workstream, now_ms: i64) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO workstreams (id, workplan_id, repo, path, title, status, owner, domain, depends_on, archived, updated_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (id) DO UPDATE SET workplan_id = excluded.workplan_id, repo = excluded.repo, path = excluded.path, \
             title = excluded.title, status = excluded.status, owner = excluded.owner, domain = excluded.domain, \
             depends_on = excluded.depends_on, archived = excluded.archived, updated_at_ms = excluded.updated_at_ms",
        )
        .bind(&w.id)
        .bind(&w.workplan_id)
        .bind(&w.repo)
        .bind(&w.path)
        .bind(&w.title)
        .bind(&w.status)
        .bind(&w.owner)
        .bind(&w.domain)
        .bind(&w.depends_on)
        .bind(i64::from(w.archived))
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Archives a workstream and its tasks (records are never deleted).
    pub async fn archive_workstream(&self, id: &str, now_ms: i64) -> Result<(), Error> {
        let mut tx = begin_write(&self.pool).await?;
        sqlx::query("UPDATE workstreams SET archived = 1, updated_at_ms = $1 WHERE id = $2")
            .bind(now_ms)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE tasks SET archived = 1, updated_at_ms = $1 WHERE workstream_id = $2")
            .bind(now_ms)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A task by its own id.
    pub async fn task_by_task_id(&self, task_id: &str) -> Result<Option<TaskRow>, Error> {
        self.one_task("task_id", task_id).await
    }

    /// A task by its UUID.
    pub async fn task_by_id(&self, id: &str) -> Result<Option<TaskRow>, Error> {
        self.one_task("id", id).await
    }

    async fn one_task(&self, column: &'static str, value: &str) -> Result<Option<TaskRow>, Error> {
        let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE {column} = $1");
        let row = sqlx::query(&sql)
            .bind(value)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(task_from).transpose()
    }

    /// Tasks of one workstream.
    pub async fn tasks_of(&self, workstream_id: &str) -> Result<Vec<TaskRow>, Error> {
        let sql =
            format!("SELECT {TASK_COLUMNS} FROM tasks WHERE workstream_id = $1 ORDER BY task_id");
        let rows = sqlx::query(&sql)
            .bind(workstream_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(task_from).collect()
    }

    /// Inserts or updates a task by UUID.
    pub async fn upsert_task(&self, t: &TaskRow, now_ms: i64) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO tasks (id, task_id, workstream_id, title, status, file_status, priority, needs_human, intervention_note, archived, updated_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (id) DO UPDATE SET task_id = excluded.task_id, workstream_id = excluded.workstream_id, title = excluded.title, \
             status = excluded.status, file_status = excluded.file_status, priority = excluded.priority, needs_human = excluded.needs_human, \
             intervention_note = excluded.intervention_note, archived = excluded.archived, updated_at_ms = excluded.updated_at_ms",
        )
        .bind(&t.id)
        .bind(&t.task_id)
        .bind(&t.workstream_id)
        .bind(&t.title)
        .bind(&t.status)
        .bind(&t.file_status)
        .bind(&t.priority)
        .bind(i64::from(t.needs_human))
        .bind(&t.intervention_note)
        .bind(i64::from(t.archived))
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Queues a status change for writeback by the next sweep.
    pub async fn queue_status_change(
        &self,
        task_id: &str,
        status: &str,
        reason: &str,
        requested_by: &str,
        now_ms: i64,
    ) -> Result<StatusChange, Error> {
        let change = StatusChange {
            id: uuid::Uuid::new_v4().to_string(),
            task_id: task_id.into(),
            status: status.into(),
            reason: reason.into(),
            requested_by: requested_by.into(),
            state: ChangeState::Pending,
        };
        sqlx::query(
            "INSERT INTO status_changes (id, task_id, status, reason, requested_by, requested_at_ms, state, note) \
             VALUES ($1, $2, $3, $4, $5, $6, 'pending', '')",
        )
        .bind(&change.id)
        .bind(&change.task_id)
        .bind(&change.status)
        .bind(&change.reason)
        .bind(&change.requested_by)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(change)
    }

    /// Pending status changes for tasks whose workstream lives in `repo`,
    /// plus pending changes for task ids the store does not know at all.
    pub async fn pending_changes(&self, repo: &str) -> Result<Vec<StatusChange>, Error> {
        let rows = sqlx::query(
            "SELECT c.id, c.task_id, c.status, c.reason, c.requested_by, c.state FROM status_changes c \
             LEFT JOIN tasks t ON t.task_id = c.task_id LEFT JOIN workstreams w ON w.id = t.workstream_id \
             WHERE c.state = 'pending' AND w.repo = $1 ORDER BY c.requested_at_ms, c.id",
        )
        .bind(repo)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(change_from).collect()
    }

    /// Closes a pending status change as `state`.
    pub async fn resolve_change(
        &self,
        id: &str,
        state: ChangeState,
        note: &str,
        now_ms: i64,
    ) -> Result<(), Error> {
        sqlx::query("UPDATE status_changes SET state = $1, note = $2, resolved_at_ms = $3 WHERE id = $4 AND state = 'pending'")
            .bind(state.as_str())
            .bind(note)
            .bind(now_ms)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A status change by id.
    pub async fn status_change(&self, id: &str) -> Result<Option<(StatusChange, String)>, Error> {
        let row = sqlx::query("SELECT id, task_id, status, reason, requested_by, state, note FROM status_changes WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((change_from(&r)?, r.try_get("note")?)))
            .transpose()
    }

    /// Writes a progress event; writing the same id twice keeps the first,
    /// so a retried activity records one event. True when this call wrote it.
    pub async fn insert_progress(
        &self,
        e: &ProgressEvent,
        created_at_ms: i64,
    ) -> Result<bool, Error> {
        let done = sqlx::query(
            "INSERT INTO progress_events (id, event_type, source, created_at_ms, workflow_id, run_id, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&e.id)
        .bind(&e.event_type)
        .bind(&e.source)
        .bind(created_at_ms)
        .bind(&e.workflow_id)
        .bind(&e.run_id)
        .bind(&e.detail_json)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records the progress event of a workflow run: `detail` as its JSON
    /// body, `workflow_id:run_id` as its id, now as its time. Recording a
    /// run twice keeps the first (a retried activity records one event);
    /// true when this call wrote it.
    pub async fn record_run(
        &self,
        event_type: &str,
        source: &str,
        workflow_id: &str,
        run_id: &str,
        detail: &impl serde::Serialize,
    ) -> Result<bool, Error> {
        let event = ProgressEvent {
            id: format!("{workflow_id}:{run_id}"),
            event_type: event_type.into(),
            source: source.into(),
            created_at: String::new(),
            workflow_id: workflow_id.into(),
            run_id: run_id.into(),
            detail_json: serde_json::to_string(detail).unwrap_or_default(),
        };
        self.insert_progress(&event, chrono::Utc::now().timestamp_millis())
            .await
    }

    /// Latest progress events, newest first, optionally of one type and
    /// not older than `since_ms`.
    pub async fn progress(
        &self,
        event_type: Option<&str>,
        since_ms: i64,
        limit: i64,
    ) -> Result<Vec<ProgressEvent>, Error> {
        let rows = sqlx::query(
            "SELECT id, event_type, source, created_at_ms, workflow_id, run_id, detail FROM progress_events \
             WHERE ($1 = '' OR event_type = $1) AND created_at_ms >= $2 ORDER BY created_at_ms DESC, id DESC LIMIT $3",
        )
        .bind(event_type.unwrap_or(""))
        .bind(since_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let ms: i64 = r.try_get("created_at_ms")?;
                Ok(ProgressEvent {
                    id: r.try_get("id")?,
                    event_type: r.try_get("event_type")?,
                    source: r.try_get("source")?,
                    created_at: crate::time::millis_text(ms),
                    workflow_id: r.try_get("workflow_id")?,
                    run_id: r.try_get("run_id")?,
                    detail_json: r.try_get("detail")?,
                })
            })
            .collect()
    }
}

const WS_COLUMNS: &str =
    "id, workplan_id, repo, path, title, status, owner, domain, depends_on, archived";
const TASK_COLUMNS: &str = "id, task_id, workstream_id, title, status, file_status, priority, needs_human, intervention_note, archived";

fn workstream_from(r: &AnyRow) -> Result<Workstream, Error> {
    Ok(Workstream {
        id: r.try_get("id")?,
        workplan_id: r.try_get("workplan_id")?,
        repo: r.try_get("repo")?,
        path: r.try_get("path")?,
        title: r.try_get("title")?,
        status: r.try_get("status")?,
        owner: r.try_get("owner")?,
        domain: r.try_get("domain")?,
        depends_on: r.try_get("depends_on")?,
        archived: r.try_get::<i64, _>("archived")? != 0,
    })
}

fn change_from(r: &AnyRow) -> Result<StatusChange, Error> {
    Ok(StatusChange {
        id: r.try_get("id")?,
        task_id: r.try_get("task_id")?,
        status: r.try_get("status")?,
        reason: r.try_get("reason")?,
        requested_by: r.try_get("requested_by")?,
        state: r
            .try_get::<String, _>("state")?
            .parse()
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
    })
}

fn task_from(r: &AnyRow) -> Result<TaskRow, Error> {
    Ok(TaskRow {
        id: r.try_get("id")?,
        task_id: r.try_get("task_id")?,
        workstream_id: r.try_get("workstream_id")?,
        title: r.try_get("title")?,
        status: r.try_get("status")?,
        file_status: r.try_get("file_status")?,
        priority: r.try_get("priority")?,
        needs_human: r.try_get::<i64, _>("needs_human")? != 0,
        intervention_note: r.try_get("intervention_note")?,
        archived: r.try_get::<i64, _>("archived")? != 0,
    })
}
