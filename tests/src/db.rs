//! A fresh database per test on each state store backend: a SQLite file
//! in the test's folder, a new database on the test PostgreSQL; and a new
//! database on the test MariaDB for backfill targets.

use std::path::Path;

use sqlx::Connection as _;

/// The two state store backends every store-facing test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in the test's temp dir.
    Sqlite,
    /// A fresh database on the test PostgreSQL.
    Postgres,
}

/// Both backends.
pub const BACKENDS: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

/// A fresh, empty database for one test.
pub async fn database(backend: Backend, dir: &Path) -> String {
    match backend {
        Backend::Sqlite => format!(
            "sqlite://{}",
            dir.join(format!("state-{}.db", uuid::Uuid::new_v4().simple()))
                .display()
        ),
        Backend::Postgres => postgres_database().await,
    }
}

/// Creates a database on the test PostgreSQL (`STEWARD_TEST_DATABASE_URL`,
/// default `postgres://postgres@127.0.0.1:5432/postgres`) and returns its URL.
pub async fn postgres_database() -> String {
    let admin = std::env::var("STEWARD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|e| {
        panic!("PostgreSQL is required for these tests and is not reachable at {admin}: {e}; run ./scripts/setup --postgres")
    });
    let name = format!("steward_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("creating a test database");
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    format!("{base}/{name}")
}

/// Creates a database on the test MariaDB or MySQL
/// (`STEWARD_TEST_MYSQL_URL`, default `mysql://root@127.0.0.1:3306`), and a
/// user with [`crate::PLANTED_SECRET`] as its password that may use it
/// alone; returns that user's URL of it.
pub async fn mysql_database() -> String {
    let admin = std::env::var("STEWARD_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into());
    let mut conn = sqlx::MySqlConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| {
            panic!("MariaDB (or MySQL) is required for these tests and is not reachable at {admin}: {e}; run ./scripts/setup --postgres")
        });
    let name = format!("steward_test_{}", uuid::Uuid::new_v4().simple());
    let user = "steward_test";
    for statement in [
        format!("CREATE DATABASE {name}"),
        format!(
            "CREATE USER IF NOT EXISTS '{user}'@'127.0.0.1' IDENTIFIED BY '{}'",
            crate::PLANTED_SECRET
        ),
        format!("GRANT ALL PRIVILEGES ON {name}.* TO '{user}'@'127.0.0.1'"),
    ] {
        sqlx::raw_sql(&statement)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    let host = admin
        .split_once("://")
        .map(|(_, rest)| rest.rsplit_once('@').map_or(rest, |(_, h)| h))
        .unwrap_or("127.0.0.1:3306")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    format!("mysql://{user}:{}@{host}/{name}", crate::PLANTED_SECRET)
}

/// A SQLite backfill target at `path` holding table `t (id INTEGER PRIMARY
/// KEY)` with rows 1, 2 and 3; returns its URL.
pub async fn three_row_target(path: &Path) -> String {
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let pool = steward_activities::store::connect_any(&url).await.unwrap();
    sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO t (id) VALUES (1), (2), (3)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    url
}
