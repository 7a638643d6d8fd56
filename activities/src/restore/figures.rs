//! What a drill compares: the row count and ordered checksum of every
//! table of the state store, and the store's health queries, run on the
//! live store at backup time and on the restored copy.

use sha2::{Digest, Sha256};
use sqlx::{AnyPool, Column as _, Row as _};
use steward_proto::v1::{HealthCheck, TableFigures};
use steward_proto::vocab::ChangeState;

use super::Error;
use crate::store;

/// The tables whose figures are compared, each with its primary key. The
/// lease locks are left out: they are transient, not data to restore.
pub const TABLES: [(&str, &str); 9] = [
    ("steward_schema", "version"),
    ("workstreams", "id"),
    ("tasks", "id"),
    ("repo_state", "repo"),
    ("status_changes", "id"),
    ("progress_events", "id"),
    ("findings", "repo, file, check_code, subject"),
    ("audit_archive", "seq"),
    ("drill_log", "run_id, kind, seq"),
];

/// One column of `row` as text, whatever its type.
fn cell(row: &sqlx::any::AnyRow, i: usize) -> String {
    if let Ok(v) = row.try_get::<Option<String>, _>(i) {
        return v.unwrap_or_else(|| "\u{2400}".into());
    }
    if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
        return v
            .map(|v| v.to_string())
            .unwrap_or_else(|| "\u{2400}".into());
    }
    if let Ok(v) = row.try_get::<Option<f64>, _>(i) {
        return v
            .map(|v| v.to_string())
            .unwrap_or_else(|| "\u{2400}".into());
    }
    if let Ok(v) = row.try_get::<Option<bool>, _>(i) {
        return v
            .map(|v| v.to_string())
            .unwrap_or_else(|| "\u{2400}".into());
    }
    format!("<unreadable {}>", row.column(i).name())
}

/// Row count and ordered checksum of every compared table.
pub async fn figures(pool: &AnyPool) -> Result<Vec<TableFigures>, Error> {
    let mut out = Vec::new();
    for (table, key) in TABLES {
        let rows = sqlx::query(&format!("SELECT * FROM {table} ORDER BY {key}"))
            .fetch_all(pool)
            .await?;
        let mut hash = Sha256::new();
        for row in &rows {
            for i in 0..row.columns().len() {
                hash.update(cell(row, i).as_bytes());
                hash.update([0x1f]);
            }
            hash.update([0x1e]);
        }
        out.push(TableFigures {
            table: table.into(),
            rows: rows.len() as u64,
            checksum: hex::encode(hash.finalize()),
        });
    }
    Ok(out)
}

/// The store's health queries, run against a restored copy.
pub async fn health(pool: &AnyPool, sqlite: bool) -> Vec<HealthCheck> {
    let mut checks = Vec::new();
    let mut check = |name: &str, result: Result<(bool, String), sqlx::Error>| {
        let (ok, detail) = result.unwrap_or_else(|e| (false, e.to_string()));
        checks.push(HealthCheck {
            name: name.into(),
            ok,
            detail,
        });
    };
    let latest = store::migrations::LATEST;
    check(
        "schema_version",
        sqlx::query_scalar::<_, i64>("SELECT MAX(version) FROM steward_schema")
            .fetch_one(pool)
            .await
            .map(|v| {
                (
                    v == latest,
                    format!("version {v}, this binary expects {latest}"),
                )
            }),
    );
    check(
        "tasks_have_workstreams",
        sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM tasks t LEFT JOIN workstreams w ON w.id = t.workstream_id WHERE w.id IS NULL",
        )
        .fetch_one(pool)
        .await
        .map(|n| (n == 0, format!("{n} tasks without their workstream"))),
    );
    let states: Vec<String> = ChangeState::WORDS
        .iter()
        .map(|w| format!("'{w}'"))
        .collect();
    check(
        "status_changes_are_resolved_or_pending",
        sqlx::query_scalar::<_, i64>(&format!(
            "SELECT COUNT(*) FROM status_changes WHERE state NOT IN ({})",
            states.join(", ")
        ))
        .fetch_one(pool)
        .await
        .map(|n| (n == 0, format!("{n} status changes in an unknown state"))),
    );
    if sqlite {
        check(
            "integrity_check",
            sqlx::query_scalar::<_, String>("PRAGMA integrity_check")
                .fetch_one(pool)
                .await
                .map(|v| (v == "ok", v)),
        );
    }
    checks
}

/// Every difference between the figures at backup time and the restored
/// copy's.
pub fn compare(expected: &[TableFigures], restored: &[TableFigures]) -> Vec<String> {
    let mut out = Vec::new();
    for want in expected {
        match restored.iter().find(|r| r.table == want.table) {
            None => out.push(format!("table {}: missing from the restored copy", want.table)),
            Some(got) if got.rows != want.rows => out.push(format!(
                "table {}: {} rows at backup time, {} restored",
                want.table, want.rows, got.rows
            )),
            Some(got) if got.checksum != want.checksum => out.push(format!(
                "table {}: same {} rows, different content (checksum {} restored, {} at backup time)",
                want.table,
                want.rows,
                &got.checksum[..12],
                &want.checksum[..12]
            )),
            Some(_) => {}
        }
    }
    out
}
