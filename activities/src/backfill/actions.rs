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
            Command::new(argv.iter().cloned())
                .timeout(timeout)
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
            Err(e) => {
                let mut r = RollbackResult {
                    rolled_back: false,
                    error: e.to_string(),
                    ..Default::default()
                };
                match &s.restore {
                    None => r.restore_error = "no restore action configured".into(),
                    Some(a) => match self.execute(name, a, run_tag).await {
                        Ok(()) => r.restored = true,
                        Err(e) => r.restore_error = e.to_string(),
                    },
                }
                Ok(r)
            }
        }
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
