//! What the rollout checks around its batches: the preconditions, the dry
//! run's count, the replication lag, the validations.

use super::*;
use actions::shorten;

impl BackfillActivities {
    /// Preconditions, and the values of `unchanged` validations before the
    /// run. Read-only (plus the idempotent progress table DDL).
    pub async fn preconditions(&self, name: &str) -> Result<PreconditionsResult, Error> {
        let s = self.spec(name)?;
        let mut conn = self.connection(name).await?;
        if s.job.is_none()
            && let Some(conn) = conn.as_mut()
        {
            sqlx::query(progress_ddl(s.dialect()))
                .execute(&mut **conn)
                .await
                .map_err(sql_err("creating steward_backfill_progress"))?;
        }
        let mut out = PreconditionsResult::default();
        for p in &s.preconditions {
            if let Some(argv) = &p.command {
                let r = Command::new(argv.iter().cloned())
                    .timeout(Duration::from_secs(60))
                    .run()
                    .await;
                out.checks.push(CheckResult {
                    name: p.name.clone(),
                    ok: r.is_ok(),
                    value: if r.is_ok() {
                        "exit 0".into()
                    } else {
                        String::new()
                    },
                    expect: "exit 0".into(),
                    message: r.err().map(|e| e.to_string()).unwrap_or_default(),
                });
                continue;
            }
            let Some(conn) = conn.as_mut() else {
                return Err(no_database(name));
            };
            let r = sql::scalar(conn, s.dialect(), &p.sql, "").await;
            out.checks.push(match r {
                Ok(v) => CheckResult {
                    name: p.name.clone(),
                    ok: v.truthy(),
                    value: v.text,
                    expect: "true".into(),
                    message: String::new(),
                },
                Err(e) => CheckResult {
                    name: p.name.clone(),
                    ok: false,
                    value: String::new(),
                    expect: "true".into(),
                    message: e.to_string(),
                },
            });
        }
        for v in &s.validations {
            if parse_expect(&v.expect) == Ok(Expect::Unchanged) {
                let value = self
                    .check_value(name, conn.as_mut(), v, "")
                    .await
                    .map_err(|e| Error::Action(format!("baseline of `{}`: {e}", v.name)))?;
                out.baseline.push(CheckResult {
                    name: v.name.clone(),
                    ok: true,
                    value: value.text,
                    expect: v.expect.clone(),
                    message: String::new(),
                });
            }
        }
        Ok(out)
    }
    /// Counts the records the backfill will write and writes the dry-run
    /// report with its SHA-256. Idempotent: reads, then rewrites the same
    /// report file.
    pub async fn dry_run(&self, req: &DryRunRequest) -> Result<DryRunReport, Error> {
        let s = self.spec(&req.name)?;
        let counted = match &s.job {
            // The job's dry run counts, unless the spec counts by SQL.
            Some(job) if s.count_sql.is_empty() => {
                let out = self
                    .run_job(&req.name, job, ("", s.batch_size, &req.run_tag, 0), true)
                    .await?;
                out.count
                    .ok_or_else(|| Error::Action("the job's dry run printed no `count`".into()))?
            }
            _ => {
                let pool = self.pool(&req.name).await?;
                let mut conn = pool.acquire().await.map_err(sql_err("connecting"))?;
                let counted = sql::scalar(&mut conn, s.dialect(), &s.count_sql, &req.run_tag)
                    .await
                    .map_err(sql_err("count_sql"))?;
                counted.number.unwrap_or(0.0).max(0.0) as u64
            }
        };
        let within = s
            .expected_count
            .is_none_or(|e| counted.abs_diff(e) <= s.count_tolerance);
        let report = serde_json::json!({
            "backfill": s.name,
            "spec_sha256": s.sha256(),
            "run_tag": req.run_tag,
            "counted": counted,
            "expected": s.expected_count,
            "tolerance": s.count_tolerance,
            "within_tolerance": within,
        });
        let bytes = serde_json::to_vec_pretty(&report).unwrap_or_default();
        let path = self
            .artifacts
            .join(&req.name)
            .join(&req.evidence_dir)
            .join("dry-run.json");
        write_private(&path, &bytes).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        Ok(DryRunReport {
            expected: s.expected_count.unwrap_or(0),
            has_expected: s.expected_count.is_some(),
            counted,
            within_tolerance: within,
            report_path: path.display().to_string(),
            report_sha256: hex::encode(Sha256::digest(&bytes)),
        })
    }
    /// The replication lag in seconds (0 without `lag_sql`). Read-only.
    pub async fn lag(&self, name: &str) -> Result<LagReading, Error> {
        let s = self.spec(name)?;
        let Some(lag_sql) = &s.lag_sql else {
            return Ok(LagReading { seconds: 0.0 });
        };
        let pool = self.pool(name).await?;
        let mut conn = pool.acquire().await.map_err(sql_err("connecting"))?;
        let v = sql::scalar(&mut conn, s.dialect(), lag_sql, "")
            .await
            .map_err(sql_err("lag_sql"))?;
        let seconds = v.number.unwrap_or(0.0);
        self.metrics.backfill_lag(name, seconds, s.max_lag_seconds);
        if seconds <= s.max_lag_seconds {
            self.resolve(name, &["backfill.lag"]).await;
        }
        Ok(LagReading { seconds })
    }
    /// Reads backfill `name`'s named throttles against `max` (maxima an
    /// operator set, by name; the spec's otherwise); with `sql_only`, only
    /// those a query reads (between the batches of a run). A throttle that
    /// cannot be read counts as over: an unknown load holds the batches.
    /// When none is over, the throttle alert is resolved.
    pub async fn throttles(
        &self,
        name: &str,
        max: &std::collections::HashMap<String, f64>,
        sql_only: bool,
    ) -> Result<ThrottleReadings, Error> {
        let s = self.spec(name)?;
        let mut out = ThrottleReadings::default();
        for t in s.throttles.iter().filter(|t| !sql_only || t.sql.is_some()) {
            let limit = max.get(&t.name).copied().unwrap_or(t.max);
            let timeout = Duration::from_secs(t.timeout_seconds.max(1));
            let value = tokio::time::timeout(timeout, self.read_throttle(name, t, timeout))
                .await
                .unwrap_or_else(|_| Err(format!("no reading within {}s", timeout.as_secs())));
            let reading = match value {
                Ok(value) => ThrottleReading {
                    name: t.name.clone(),
                    value,
                    max: limit,
                    over: value > limit,
                    error: String::new(),
                },
                Err(error) => ThrottleReading {
                    name: t.name.clone(),
                    value: 0.0,
                    max: limit,
                    over: true,
                    error,
                },
            };
            self.metrics
                .backfill_throttle(name, &t.name, reading.value, limit);
            out.readings.push(reading);
        }
        if !sql_only && out.readings.iter().all(|r| !r.over) {
            self.resolve(name, &["backfill.throttle"]).await;
        }
        Ok(out)
    }

    /// One throttle's number.
    async fn read_throttle(
        &self,
        name: &str,
        t: &spec::Throttle,
        timeout: Duration,
    ) -> Result<f64, String> {
        let number = |text: &str| {
            text.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("`{}` is not a number", shorten(text.trim())))
        };
        if let Some(query) = &t.sql {
            let (pool, dialect) = match &t.database_url {
                Some(url) => (
                    self.pool_at(
                        &format!("{name}/throttle/{}", t.name),
                        url,
                        &format!("throttle `{}`'s database", t.name),
                    )
                    .await
                    .map_err(|e| e.to_string())?,
                    Dialect::of(url),
                ),
                None => (
                    self.pool(name).await.map_err(|e| e.to_string())?,
                    self.spec(name).map_err(|e| e.to_string())?.dialect(),
                ),
            };
            let mut conn = pool.acquire().await.map_err(|e| e.to_string())?;
            let v = sql::reading(&mut conn, dialect, query, t.column.as_deref()).await?;
            // NULL (a replica whose SQL thread stopped has no lag to say).
            return v
                .number
                .ok_or_else(|| format!("the query returned {}", v.text));
        }
        if let Some(argv) = &t.command {
            return number(&last_line(argv.clone(), timeout).await?);
        }
        if let Some(h) = &t.http {
            let resp = reqwest::Client::new()
                .get(&h.url)
                .timeout(timeout)
                .send()
                .await
                .map_err(|e| format!("GET {}: {}", h.url, crate::http::cause(&e, timeout)))?;
            if !resp.status().is_success() {
                return Err(format!("GET {} answered {}", h.url, resp.status()));
            }
            let body = resp.text().await.map_err(|e| e.to_string())?;
            return match &h.pointer {
                None => number(&body),
                Some(pointer) => {
                    let doc: serde_json::Value = serde_json::from_str(&body)
                        .map_err(|e| format!("GET {}: not JSON: {e}", h.url))?;
                    match doc.pointer(pointer) {
                        Some(serde_json::Value::Number(n)) => {
                            n.as_f64().ok_or_else(|| format!("{n} is not a number"))
                        }
                        Some(serde_json::Value::String(s)) => number(s),
                        _ => Err(format!("GET {}: no number at {pointer}", h.url)),
                    }
                }
            };
        }
        Err("no source".into())
    }

    /// A connection to the backfill's database; none when it has none (a
    /// job-driven backfill that runs no SQL).
    async fn connection(
        &self,
        name: &str,
    ) -> Result<Option<sqlx::pool::PoolConnection<sqlx::Any>>, Error> {
        if self.spec(name)?.database_url.is_empty() {
            return Ok(None);
        }
        let pool = self.pool(name).await?;
        Ok(Some(pool.acquire().await.map_err(sql_err("connecting"))?))
    }

    /// A validation's value: its query's, or the last line its command
    /// prints (`{run_tag}` filled).
    async fn check_value(
        &self,
        name: &str,
        conn: Option<&mut sqlx::pool::PoolConnection<sqlx::Any>>,
        v: &spec::Validation,
        run_tag: &str,
    ) -> Result<sql::Scalar, String> {
        if let Some(argv) = &v.command {
            let argv = job::argv(argv, &[("run_tag", run_tag.to_string())]);
            let last = last_line(argv, Duration::from_secs(600)).await?;
            return Ok(sql::Scalar {
                number: last.parse().ok(),
                text: last,
            });
        }
        let conn = conn.ok_or_else(|| no_database(name).to_string())?;
        let dialect = self.spec(name).map_err(|e| e.to_string())?.dialect();
        sql::scalar(conn, dialect, &v.sql, run_tag)
            .await
            .map_err(|e| e.to_string())
    }

    /// Runs the validations. Read-only.
    pub async fn validate(&self, req: &ValidationRequest) -> Result<ValidationResult, Error> {
        let s = self.spec(&req.name)?;
        let mut conn = self.connection(&req.name).await?;
        let mut out = ValidationResult::default();
        for v in &s.validations {
            let expect = parse_expect(&v.expect).map_err(Error::Action)?;
            let got = self
                .check_value(&req.name, conn.as_mut(), v, &req.run_tag)
                .await;
            let check = match got {
                Err(e) => CheckResult {
                    name: v.name.clone(),
                    ok: false,
                    value: String::new(),
                    expect: v.expect.clone(),
                    message: e.to_string(),
                },
                Ok(value) => {
                    let n = value.number;
                    let ok = match expect {
                        Expect::Unchanged => req
                            .baseline
                            .iter()
                            .find(|b| b.name == v.name)
                            .is_some_and(|b| b.value == value.text),
                        Expect::Equal(x) => n == Some(x),
                        Expect::AtMost(x) => n.is_some_and(|n| n <= x),
                        Expect::AtLeast(x) => n.is_some_and(|n| n >= x),
                    };
                    let message = match expect {
                        Expect::Unchanged => format!(
                            "before: {}",
                            req.baseline
                                .iter()
                                .find(|b| b.name == v.name)
                                .map(|b| b.value.as_str())
                                .unwrap_or("?")
                        ),
                        _ => String::new(),
                    };
                    CheckResult {
                        name: v.name.clone(),
                        ok,
                        value: value.text,
                        expect: v.expect.clone(),
                        message,
                    }
                }
            };
            self.metrics.backfill_validation(
                &req.name,
                &check.name,
                check.value.parse().ok(),
                check.ok,
            );
            out.checks.push(check);
        }
        Ok(out)
    }
}

/// The last non-empty line a command prints, trimmed.
async fn last_line(argv: Vec<String>, timeout: Duration) -> Result<String, String> {
    let out = Command::new(argv)
        .timeout(timeout)
        .run()
        .await
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out);
    Ok(text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string())
}
