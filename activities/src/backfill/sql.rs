//! SQL helpers for backfill specs: one-value queries and bound parameters.
//! Every value from data is bound; nothing is built by interpolation.
//!
//! A spec writes its parameters as `$1`, `$2`, ... on every engine. SQLite
//! and PostgreSQL take them as written; MySQL and MariaDB number nothing
//! (`?` in order), so there each `$N` becomes a `?` bound to the N-th
//! value, as often as the statement uses it.

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::{Any, AnyConnection, Row};

/// How an engine writes bound parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `$1`, `$2`: SQLite, PostgreSQL.
    Numbered,
    /// `?` in order: MySQL, MariaDB.
    Positional,
}

impl Dialect {
    /// The dialect of a database URL.
    pub fn of(url: &str) -> Self {
        if crate::dburl::is_mysql(url) {
            Dialect::Positional
        } else {
            Dialect::Numbered
        }
    }
}

/// A value bound to a statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// An integer, or NULL.
    Int(Option<i64>),
    /// Text.
    Text(String),
}

impl From<i64> for Param {
    fn from(v: i64) -> Self {
        Param::Int(Some(v))
    }
}

impl From<Option<i64>> for Param {
    fn from(v: Option<i64>) -> Self {
        Param::Int(v)
    }
}

impl From<&str> for Param {
    fn from(v: &str) -> Self {
        Param::Text(v.to_string())
    }
}

impl From<String> for Param {
    fn from(v: String) -> Self {
        Param::Text(v)
    }
}

/// A statement with its values, written for one engine.
#[derive(Debug, Clone)]
pub struct Statement {
    text: String,
    params: Vec<Param>,
}

impl Statement {
    /// `sql` with `$N` bound to `params[N-1]`. Only the values the
    /// statement uses are bound (PostgreSQL refuses the others); a `$N`
    /// past the values given is an error the database reports.
    pub fn new(dialect: Dialect, sql: &str, params: &[Param]) -> Self {
        let (text, used) = placeholders(sql, dialect);
        let params = match dialect {
            Dialect::Numbered => {
                let highest = used.iter().copied().max().unwrap_or(0);
                params.iter().take(highest).cloned().collect()
            }
            Dialect::Positional => used
                .iter()
                .map(|n| params.get(n - 1).cloned().unwrap_or(Param::Int(None)))
                .collect(),
        };
        Self { text, params }
    }

    /// The statement as the engine reads it.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// A query to run.
    pub fn query(&self) -> sqlx::query::Query<'_, Any, AnyArguments<'_>> {
        let mut q = sqlx::query(&self.text);
        for p in &self.params {
            q = match p {
                Param::Int(v) => q.bind(*v),
                Param::Text(v) => q.bind(v.as_str()),
            };
        }
        q
    }
}

/// The statement for `dialect`, and the numbers of the `$N` placeholders
/// in the order they appear, outside quotes and comments. On MySQL each
/// becomes `?`.
fn placeholders(sql: &str, dialect: Dialect) -> (String, Vec<usize>) {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = String::with_capacity(sql.len());
    let mut used = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\'' | '"' | '`' => {
                // A quoted string or name, to its closing quote (doubled
                // quotes and, on MySQL, backslashes escape).
                out.push(c);
                i += 1;
                while i < chars.len() {
                    out.push(chars[i]);
                    if chars[i] == '\\' && dialect == Dialect::Positional && i + 1 < chars.len() {
                        out.push(chars[i + 1]);
                        i += 2;
                        continue;
                    }
                    if chars[i] == c {
                        if chars.get(i + 1) == Some(&c) {
                            out.push(c);
                            i += 2;
                            continue;
                        }
                        i += 1;
                        break;
                    }
                    i += 1;
                }
            }
            '-' if chars.get(i + 1) == Some(&'-') => {
                while i < chars.len() && chars[i] != '\n' {
                    out.push(chars[i]);
                    i += 1;
                }
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                out.push_str("/*");
                i += 2;
                while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                    out.push(chars[i]);
                    i += 1;
                }
                if i < chars.len() {
                    out.push_str("*/");
                    i += 2;
                }
            }
            '$' if chars.get(i + 1).is_some_and(char::is_ascii_digit) => {
                let start = i + 1;
                let mut end = start;
                while end < chars.len() && chars[end].is_ascii_digit() {
                    end += 1;
                }
                let digits: String = chars[start..end].iter().collect();
                match digits.parse::<usize>() {
                    Ok(n) if n > 0 => {
                        used.push(n);
                        match dialect {
                            Dialect::Numbered => out.push_str(&format!("${digits}")),
                            Dialect::Positional => out.push('?'),
                        }
                    }
                    _ => out.push_str(&format!("${digits}")),
                }
                i = end;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    (out, used)
}

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
    scalar_at(row, 0)
}

/// Reads column `i` whatever its type.
pub fn scalar_at(row: &AnyRow, i: usize) -> Scalar {
    if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
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
    if let Ok(Some(v)) = row.try_get::<Option<f64>, _>(i) {
        return Scalar {
            number: Some(v),
            text: v.to_string(),
        };
    }
    if let Ok(Some(v)) = row.try_get::<Option<bool>, _>(i) {
        return Scalar {
            number: Some(f64::from(u8::from(v))),
            text: v.to_string(),
        };
    }
    // MySQL's `TEXT` comes as bytes.
    let text = row
        .try_get::<Option<String>, _>(i)
        .ok()
        .flatten()
        .or_else(|| {
            row.try_get::<Option<Vec<u8>>, _>(i)
                .ok()
                .flatten()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
        });
    if let Some(v) = text {
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

/// The value in column `column` (any case) of the query's first row, or
/// in its first column; an error when there is no row or no such column.
pub async fn reading(
    conn: &mut AnyConnection,
    dialect: Dialect,
    sql: &str,
    column: Option<&str>,
) -> Result<Scalar, String> {
    use sqlx::Column as _;
    let row = Statement::new(dialect, sql, &[])
        .query()
        .fetch_optional(conn)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "the query returned no row".to_string())?;
    let i = match column {
        None => 0,
        Some(name) => row
            .columns()
            .iter()
            .position(|c| c.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| format!("the query returned no column `{name}`"))?,
    };
    Ok(scalar_at(&row, i))
}

/// Runs a one-value query; `$1` is `run_tag` when the query uses it.
pub async fn scalar(
    conn: &mut AnyConnection,
    dialect: Dialect,
    sql: &str,
    run_tag: &str,
) -> Result<Scalar, sqlx::Error> {
    let statement = Statement::new(dialect, sql, &[run_tag.into()]);
    let row = statement.query().fetch_one(conn).await?;
    Ok(scalar_of(&row))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mysql_gets_a_question_mark_per_use_bound_to_its_number() {
        let s = Statement::new(
            Dialect::Positional,
            "INSERT INTO t SELECT id, $3 FROM r WHERE id BETWEEN $1 AND $2 AND tag <> $3",
            &[1.into(), 9.into(), "run".into()],
        );
        assert_eq!(
            s.text(),
            "INSERT INTO t SELECT id, ? FROM r WHERE id BETWEEN ? AND ? AND tag <> ?"
        );
        assert_eq!(
            s.params,
            vec![
                Param::Text("run".into()),
                Param::Int(Some(1)),
                Param::Int(Some(9)),
                Param::Text("run".into())
            ]
        );
    }

    #[test]
    fn placeholders_in_quotes_and_comments_are_text() {
        let sql = "SELECT '$1', \"$2\", `$3`, 'it''s $1', 'a\\'$1' -- $1\n, /* $2 */ $1";
        let s = Statement::new(Dialect::Positional, sql, &["x".into(), "y".into()]);
        assert_eq!(
            s.text(),
            "SELECT '$1', \"$2\", `$3`, 'it''s $1', 'a\\'$1' -- $1\n, /* $2 */ ?"
        );
        assert_eq!(s.params, vec![Param::Text("x".into())]);
    }

    #[test]
    fn numbered_engines_keep_the_text_and_bind_up_to_the_highest_used() {
        let s = Statement::new(
            Dialect::Numbered,
            "SELECT COUNT(*) FROM t WHERE tag = $1",
            &["run".into(), 5.into()],
        );
        assert_eq!(s.text(), "SELECT COUNT(*) FROM t WHERE tag = $1");
        assert_eq!(s.params, vec![Param::Text("run".into())]);
        let none = Statement::new(Dialect::Numbered, "SELECT 1", &["run".into()]);
        assert!(none.params.is_empty(), "PostgreSQL refuses unused values");
    }
}
