//! SQL helpers for backfill specs: one-value queries and bound parameters.
//! Every value from data is bound; nothing is built by interpolation.

use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Row};

/// A one-value query result.
#[derive(Debug, Clone, PartialEq)]
pub struct Scalar {
    /// The value as a number, when it is one.
    pub number: Option<f64>,
    /// The value as text ("null" for NULL).
    pub text: String,
}

impl Scalar {
    /// Non-zero numbers, "true"/"t" and non-empty other text are true.
    pub fn truthy(&self) -> bool {
        match self.number {
            Some(n) => n != 0.0,
            None => !matches!(self.text.as_str(), "" | "null" | "false" | "f"),
        }
    }
}

/// Reads column 0 whatever its type.
pub fn scalar_of(row: &AnyRow) -> Scalar {
    if let Ok(v) = row.try_get::<Option<i64>, _>(0) {
        return match v {
            Some(n) => Scalar {
                number: Some(n as f64),
                text: n.to_string(),
            },
            None => Scalar {
                number: None,
                text: "null".into(),
            },
        };
    }
    if let Ok(Some(v)) = row.try_get::<Option<f64>, _>(0) {
        return Scalar {
            number: Some(v),
            text: v.to_string(),
        };
    }
    if let Ok(Some(v)) = row.try_get::<Option<bool>, _>(0) {
        return Scalar {
            number: Some(f64::from(u8::from(v))),
            text: v.to_string(),
        };
    }
    if let Ok(Some(v)) = row.try_get::<Option<String>, _>(0) {
        return Scalar {
            number: v.trim().parse().ok(),
            text: v,
        };
    }
    Scalar {
        number: None,
        text: "null".into(),
    }
}

/// Binds `run_tag` as `$1` only when the statement uses it (PostgreSQL
/// refuses parameters a statement does not use).
pub fn query_with_tag<'q>(
    sql: &'q str,
    run_tag: &'q str,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
    let q = sqlx::query(sql);
    if sql.contains("$1") {
        q.bind(run_tag)
    } else {
        q
    }
}

/// Runs a one-value query.
pub async fn scalar(
    conn: &mut AnyConnection,
    sql: &str,
    run_tag: &str,
) -> Result<Scalar, sqlx::Error> {
    let row = query_with_tag(sql, run_tag).fetch_one(conn).await?;
    Ok(scalar_of(&row))
}
