//! The spec's actions (freeze, unfreeze, snapshot, restore, probe) by SQL,
//! HTTP or command; the rollback of what a run wrote; the replay probe.

use super::*;

impl BackfillActivities {
    /// Runs an action of the spec. Idempotent when the action is: freeze
    /// and unfreeze set flags, snapshots replace their copy.
    pub async fn run_action(
        &self,
        name: &str,
        which: SpecAction,
        run_tag: &str,
    ) -> Result<(), Error> {
        let s = self.spec(name)?;
        let action = match which {
            SpecAction::Freeze => s.freeze.as_ref(),
            SpecAction::Unfreeze => s.unfreeze.as_ref(),
            SpecAction::Snapshot => s.snapshot.as_ref(),
            SpecAction::Restore => s.restore.as_ref(),
            SpecAction::Probe | SpecAction::Rollback => {
                return Err(Error::Action(format!(
                    "`{which}` is not a spec action; it has its own activity"
                )));
            }
        };
        match action {
            None => Ok(()),
            Some(a) => self
                .execute(name, a, run_tag)
                .await
                .map_err(|e| Error::Action(format!("{which}: {e}"))),
        }
    }
    async fn execute(&self, name: &str, action: &Action, run_tag: &str) -> Result<(), Error> {
        let timeout = Duration::from_secs(action.timeout_seconds.max(1));
        if let Some(text) = &action.sql {
            let pool = self.pool(name).await?;
            let mut tx = crate::store::begin_write(&pool)
                .await
                .map_err(sql_err("begin"))?;
            let dialect = self.spec(name)?.dialect();
            for statement in text.statements() {
                Statement::new(dialect, statement, &[run_tag.into()])
                    .query()
                    .execute(&mut *tx)
                    .await
                    .map_err(sql_err(format!("`{}`", shorten(statement))))?;
            }
            tx.commit().await.map_err(sql_err("commit"))?;
        }
        if let Some(h) = &action.http {
            let method = reqwest::Method::from_bytes(h.method.as_bytes())
                .map_err(|e| Error::Action(e.to_string()))?;
            let mut req = reqwest::Client::new()
                .request(method, &h.url)
                .timeout(timeout);
            if let Some(body) = &h.body {
                req = req
                    .header("content-type", "application/json")
                    .body(body.clone());
            }
            let resp = req.send().await.map_err(|e| {
                Error::Action(format!(
                    "{} {}: {}",
                    h.method,
                    h.url,
                    crate::http::cause(&e, timeout)
                ))
            })?;
            let ok = match h.expect_status {
                Some(code) => resp.status().as_u16() == code,
                None => resp.status().is_success(),
            };
            if !ok {
                return Err(Error::Action(format!(
                    "{} {} answered {}",
                    h.method,
                    h.url,
                    resp.status()
                )));
            }
        }
        if let Some(argv) = &action.command {
            Command::new(job::argv(argv, &[("run_tag", run_tag.to_string())]))
                .timeout(timeout)
                .env("STEWARD_BACKFILL", name)
                .env("STEWARD_RUN_TAG", run_tag)
                .run()
                .await
                .map_err(|e| Error::Action(e.to_string()))?;
        }
        Ok(())
    }
    /// Removes what the run wrote (`rollback_sql` with the run tag, and the
    /// run's progress rows) in one transaction; if that fails, runs the
    /// restore action. Idempotent: a second rollback deletes nothing more.
    pub async fn rollback(&self, name: &str, run_tag: &str) -> Result<RollbackResult, Error> {
        let s = self.spec(name)?;
        if let Some(action) = &s.rollback {
            return Ok(self.rollback_by(name, action, run_tag).await);
        }
        let pool = self.pool(name).await?;
        let dialect = s.dialect();
        let attempt = async {
            // Before the transaction: MySQL commits at any DDL.
            sqlx::query(progress_ddl(dialect)).execute(&pool).await?;
            let mut tx = crate::store::begin_write(&pool).await?;
            Statement::new(dialect, &s.rollback_sql, &[run_tag.into()])
                .query()
                .execute(&mut *tx)
                .await?;
            Statement::new(
                dialect,
                "DELETE FROM steward_backfill_progress WHERE run_tag = $1",
                &[run_tag.into()],
            )
            .query()
            .execute(&mut *tx)
            .await?;
            tx.commit().await
        };
        match attempt.await {
            Ok(()) => Ok(RollbackResult {
                rolled_back: true,
                ..Default::default()
            }),
            Err(e) => Ok(self.restore_after(name, run_tag, e.to_string()).await),
        }
    }
    /// The rollback by a command or HTTP call (the job's rollback script);
    /// when it fails, the restore action. The run's finished job batches
    /// are forgotten once it succeeded.
    async fn rollback_by(&self, name: &str, action: &Action, run_tag: &str) -> RollbackResult {
        let attempt = async {
            self.execute(name, action, run_tag).await?;
            if let Some(store) = &self.store {
                store
                    .forget_job_batches(run_tag)
                    .await
                    .map_err(|e| Error::Action(format!("the state store: {e}")))?;
            }
            Ok::<(), Error>(())
        };
        match attempt.await {
            Ok(()) => RollbackResult {
                rolled_back: true,
                ..Default::default()
            },
            Err(e) => self.restore_after(name, run_tag, e.to_string()).await,
        }
    }

    /// What a failed rollback leaves: the restore action's outcome.
    async fn restore_after(&self, name: &str, run_tag: &str, error: String) -> RollbackResult {
        let mut r = RollbackResult {
            rolled_back: false,
            error,
            ..Default::default()
        };
        match self.spec(name).ok().and_then(|s| s.restore.as_ref()) {
            None => r.restore_error = "no restore action configured".into(),
            Some(a) => match self.execute(name, a, run_tag).await {
                Ok(()) => r.restored = true,
                Err(e) => r.restore_error = e.to_string(),
            },
        }
        r
    }

    /// Triggers the replay probe and waits for its check. The probe action
    /// should be safe to repeat (one replayed event).
    pub async fn replay_probe(&self, name: &str, run_tag: &str) -> Result<ProbeResult, Error> {
        let s = self.spec(name)?;
        let Some(p) = &s.replay_probe else {
            return Ok(ProbeResult {
                ok: true,
                message: "no probe configured".into(),
            });
        };
        if let Err(e) = self.execute(name, &p.action, run_tag).await {
            return Ok(ProbeResult {
                ok: false,
                message: format!("probe action: {e}"),
            });
        }
        let pool = self.pool(name).await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(p.wait_seconds);
        loop {
            let mut conn = pool.acquire().await.map_err(sql_err("connecting"))?;
            let v = sql::scalar(&mut conn, s.dialect(), &p.check_sql, run_tag).await;
            if let Ok(v) = &v
                && v.truthy()
            {
                return Ok(ProbeResult {
                    ok: true,
                    message: format!("check returned {}", v.text),
                });
            }
            if tokio::time::Instant::now() >= deadline {
                let last = v.map(|v| v.text).unwrap_or_else(|e| e.to_string());
                return Ok(ProbeResult {
                    ok: false,
                    message: format!("check still {last} after {}s", p.wait_seconds),
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

pub(super) fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(160).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}
