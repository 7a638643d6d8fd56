//! The job driver: a backfill whose batches, dry run, validations and
//! rollback are the team's own programs. One run of the job per batch,
//! with the cursor, batch size, run tag and batch number in its argv and
//! environment; it prints JSON lines on stdout and exits 0, or fails and
//! the batch is retried with the same run tag and number (so an idempotent
//! job applies it once). steward records each batch the job finished in
//! its own store, so a retry of a finished batch never runs it again.
//!
//! The lines (docs/BACKFILL.md, "Job-driven backfills"): any number of
//! progress lines `{"rows": N, "errors": N, "idempotency_violations": N}`
//! (running totals for the batch: the last one counts), and a final line
//! with `"next_cursor"` (more to do) or `"done": true`; the dry run's final
//! line carries `"count"`.

use super::*;
use crate::store::Store;
use crate::store::job_batches::JobBatch;
use spec::Job;

/// Characters of a job's stderr kept as evidence.
const STDERR_CHARS: usize = 4000;

/// What one run of the job said.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct JobOutput {
    pub rows: u64,
    pub errors: u64,
    pub violations: u64,
    pub next_cursor: Option<String>,
    pub done: bool,
    pub count: Option<u64>,
    pub stderr: String,
}

/// Reads the job's stdout: its running totals and its final line.
pub(super) fn read_lines(stdout: &str) -> Result<JobOutput, String> {
    let mut out = JobOutput::default();
    let mut finished = false;
    for line in stdout.lines().map(str::trim).filter(|l| l.starts_with('{')) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let number = |key: &str| v.get(key).and_then(serde_json::Value::as_u64);
        if let Some(n) = number("rows") {
            out.rows = n;
        }
        if let Some(n) = number("errors") {
            out.errors = n;
        }
        if let Some(n) = number("idempotency_violations") {
            out.violations = n;
        }
        if let Some(n) = number("count") {
            out.count = Some(n);
            finished = true;
        }
        match v.get("next_cursor") {
            Some(serde_json::Value::String(c)) => {
                out.next_cursor = Some(c.clone());
                finished = true;
            }
            Some(serde_json::Value::Number(c)) => {
                out.next_cursor = Some(c.to_string());
                finished = true;
            }
            _ => {}
        }
        if v.get("done").and_then(serde_json::Value::as_bool) == Some(true) {
            out.done = true;
            finished = true;
        }
    }
    if finished {
        Ok(out)
    } else {
        Err("the job exited 0 without its final line (`next_cursor`, `done` or `count`)".into())
    }
}

/// The job's argv with the batch's values in its placeholders.
pub(super) fn argv(command: &[String], vars: &[(&str, String)]) -> Vec<String> {
    command
        .iter()
        .map(|arg| {
            vars.iter()
                .fold(arg.clone(), |a, (k, v)| a.replace(&format!("{{{k}}}"), v))
        })
        .collect()
}

impl BackfillActivities {
    /// The store job batches are recorded in.
    fn job_store(&self) -> Result<&Store, Error> {
        self.store
            .as_ref()
            .ok_or_else(|| Error::Action("job-driven backfills need the state store".into()))
    }

    /// Runs the job once: batch `batch_no` from `cursor` of run
    /// `run_tag`, or the dry run (`batch_no` 0, no cursor).
    pub(super) async fn run_job(
        &self,
        name: &str,
        job: &Job,
        (cursor, batch_size, run_tag, batch_no): (&str, u32, &str, u64),
        dry_run: bool,
    ) -> Result<JobOutput, Error> {
        let vars = [
            ("cursor", cursor.to_string()),
            ("batch_size", batch_size.max(1).to_string()),
            ("run_tag", run_tag.to_string()),
            ("batch_no", batch_no.to_string()),
        ];
        let mut args = argv(&job.command, &vars);
        if dry_run {
            args.extend(job.dry_run_args.iter().cloned());
        }
        let mut cmd = Command::new(args)
            .timeout(Duration::from_secs(job.timeout_seconds.max(1)))
            .tied()
            .env("STEWARD_BACKFILL", name)
            .env("STEWARD_DRY_RUN", if dry_run { "1" } else { "0" });
        for (k, v) in &vars {
            cmd = cmd.env(&format!("STEWARD_{}", k.to_ascii_uppercase()), v);
        }
        let (stdout, stderr) = cmd
            .run_both()
            .await
            .map_err(|e| Error::Action(format!("job: {e}")))?;
        let stdout = String::from_utf8_lossy(&stdout);
        let mut out = read_lines(&stdout).map_err(Error::Action)?;
        let n = stderr.chars().count();
        out.stderr = stderr
            .chars()
            .skip(n.saturating_sub(STDERR_CHARS))
            .collect();
        Ok(out)
    }

    /// Batch `batch_no` from `cursor` by the job, exactly once as steward
    /// sees it: a batch recorded as finished is returned as recorded.
    pub(super) async fn one_job(
        &self,
        job: &Job,
        req: &BatchRequest,
        batch_no: u64,
        cursor: &str,
    ) -> Result<(BatchResult, bool), Error> {
        let store = self.job_store()?;
        let store_err = |e: crate::store::Error| Error::Action(format!("the state store: {e}"));
        if let Some(b) = store
            .job_batch(&req.run_tag, batch_no as i64)
            .await
            .map_err(store_err)?
        {
            return Ok((job_result(&b), false));
        }
        let out = self
            .run_job(
                &req.name,
                job,
                (cursor, req.batch_size, &req.run_tag, batch_no),
                false,
            )
            .await?;
        let b = JobBatch {
            run_tag: req.run_tag.clone(),
            batch_no: batch_no as i64,
            backfill: req.name.clone(),
            cursor_in: cursor.to_string(),
            cursor_out: out
                .next_cursor
                .clone()
                .unwrap_or_else(|| cursor.to_string()),
            rows: out.rows as i64,
            errors: out.errors as i64,
            violations: out.violations as i64,
            done: out.done,
            stderr: out.stderr,
        };
        store
            .record_job_batch(&b, crate::time::now_ms())
            .await
            .map_err(store_err)?;
        self.metrics
            .backfill_job_reported(&req.name, out.errors, out.violations);
        Ok((job_result(&b), true))
    }
}

/// A recorded batch as the batch engine returns it.
fn job_result(b: &JobBatch) -> BatchResult {
    BatchResult {
        applied_now: true,
        done: b.done,
        rows: b.rows.max(0) as u64,
        job_cursor: b.cursor_out.clone(),
        job_errors: b.errors.max(0) as u64,
        idempotency_violations: b.violations.max(0) as u64,
        error: if b.errors > 0 || b.violations > 0 {
            format!(
                "the job reported {} errors and {} idempotency violations{}",
                b.errors,
                b.violations,
                if b.stderr.trim().is_empty() {
                    String::new()
                } else {
                    format!(": {}", b.stderr.trim().lines().last().unwrap_or_default())
                }
            )
        } else {
            String::new()
        },
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_totals_count_and_the_final_line_says_what_comes_next() {
        let out = read_lines(
            "starting\n{\"rows\": 10}\n{\"rows\": 20, \"errors\": 1}\n{\"rows\": 25, \"next_cursor\": \"64b7f0\"}\n",
        )
        .unwrap();
        assert_eq!(
            (out.rows, out.errors, out.next_cursor.as_deref(), out.done),
            (25, 1, Some("64b7f0"), false)
        );
        let end = read_lines("{\"rows\": 3, \"done\": true}").unwrap();
        assert!(end.done);
        let counted = read_lines("{\"count\": 1200}").unwrap();
        assert_eq!(counted.count, Some(1200));
        assert!(
            read_lines("{\"rows\": 5}\n")
                .unwrap_err()
                .contains("without its final line")
        );
        let numeric = read_lines("{\"next_cursor\": 500}").unwrap();
        assert_eq!(numeric.next_cursor.as_deref(), Some("500"));
    }

    #[test]
    fn placeholders_take_the_batchs_values() {
        let got = argv(
            &[
                "job".into(),
                "--from={cursor}".into(),
                "--tag={run_tag}:{batch_no}".into(),
            ],
            &[
                ("cursor", "42".into()),
                ("run_tag", "bf-1".into()),
                ("batch_no", "7".into()),
            ],
        );
        assert_eq!(got, vec!["job", "--from=42", "--tag=bf-1:7"]);
    }
}
