//! The writer and the probe that run across the failure. The writer
//! commits a numbered marker every 100 ms to whichever host accepts writes
//! and logs each attempt; the probe asks the service's health question every
//! 500 ms and logs each answer; a judge reads the log every 250 ms and ends
//! the observation once writes have failed and come back (or the wait is
//! over). Everything is in the log before it counts, so a killed worker's
//! retry resumes where the log ends.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::Connection as _;
use sqlx::postgres::PgConnection;
use steward_proto::v1::FailoverObserved;

use super::measure;
use super::service::{Service, timed};
use super::spec::DrillSpec;
use crate::store::Store;
use crate::store::drill_log::{LogRow, PROBE, WRITE};
use crate::time::now_ms;

const WRITE_EVERY: Duration = Duration::from_millis(100);
const PROBE_EVERY: Duration = Duration::from_millis(500);
const JUDGE_EVERY: Duration = Duration::from_millis(250);

/// Appends one row to run `run`'s drill log, stamped now.
pub(super) async fn append(
    store: &Store,
    run: &str,
    kind: &str,
    seq: i64,
    ok: bool,
    detail: String,
) -> Result<(), String> {
    store
        .drill_log_append(
            run,
            &LogRow {
                kind: kind.into(),
                seq,
                at_ms: now_ms(),
                ok,
                detail,
            },
        )
        .await
        .map(|_| ())
        .map_err(|e| format!("the drill's log: {e}"))
}

fn ticker(every: Duration) -> tokio::time::Interval {
    let mut t = tokio::time::interval(every);
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    t
}

/// Writes and probes until the judge ends the observation; its counts and
/// why it ended.
pub async fn observe(
    d: &DrillSpec,
    service: &Service,
    store: &Store,
    run: &str,
) -> Result<FailoverObserved, String> {
    let earlier = store.drill_log(run).await.map_err(|e| e.to_string())?;
    let next = |kind: &str| {
        earlier
            .iter()
            .filter(|r| r.kind == kind)
            .map(|r| r.seq)
            .max()
            .unwrap_or(0)
            + 1
    };
    let (first_marker, first_probe) = (next(WRITE), next(PROBE));
    let observe_ms = i64::from(d.observe_seconds) * 1000;
    let started = now_ms();
    // Without a trigger in the log by then, the trigger never ran.
    let give_up = started + i64::from(d.baseline_seconds) * 1000 + 120_000 + observe_ms;
    let stop = AtomicBool::new(false);
    let table = d.marker_table.as_str();

    // A writer or prober that cannot log stops the others too.
    let stopping = |r: Result<(), String>| {
        if r.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        r
    };
    let writer = async {
        let mut tick = ticker(WRITE_EVERY);
        let mut conn: Option<(String, PgConnection)> = None;
        let mut seq = first_marker;
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            if conn.is_none() {
                match service.primary().await {
                    Ok(c) => conn = Some(c),
                    Err(e) => {
                        append(store, run, WRITE, seq, false, e).await?;
                        seq += 1;
                        continue;
                    }
                }
            }
            let Some((host, c)) = conn.as_mut() else {
                continue;
            };
            let written = timed(
                sqlx::query(&format!(
                    "INSERT INTO {table} (run, seq) VALUES ($1, $2) ON CONFLICT DO NOTHING"
                ))
                .bind(run)
                .bind(seq)
                .execute(&mut *c),
            )
            .await;
            match written {
                Ok(_) => append(store, run, WRITE, seq, true, host.clone()).await?,
                Err(e) => {
                    append(store, run, WRITE, seq, false, format!("{host}: {e}")).await?;
                    if let Some((_, c)) = conn.take() {
                        let _ = tokio::time::timeout(Duration::from_secs(1), c.close()).await;
                    }
                }
            }
            seq += 1;
        }
        Ok::<_, String>(())
    };
    let writer = async { stopping(writer.await) };

    let prober = async {
        let mut tick = ticker(PROBE_EVERY);
        let mut conn: Option<(String, PgConnection)> = None;
        let http = reqwest::Client::new();
        let mut seq = first_probe;
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            let answer: Result<String, String> = match (&d.probe.sql, &d.probe.url) {
                (Some(sql), _) => {
                    if conn.is_none() {
                        conn = service.primary().await.ok();
                    }
                    match conn.as_mut() {
                        None => Err("no host accepts writes".to_string()),
                        Some((host, c)) => {
                            let host = host.clone();
                            match timed(sqlx::query(sql).execute(&mut *c)).await {
                                Ok(_) => Ok(format!("answered on {host}")),
                                Err(e) => {
                                    conn = None;
                                    Err(format!("{host}: {e}"))
                                }
                            }
                        }
                    }
                }
                (None, Some(url)) => {
                    match http.get(url).timeout(Duration::from_secs(1)).send().await {
                        Ok(r) if r.status().is_success() => Ok(format!("{}", r.status().as_u16())),
                        Ok(r) => Err(format!("answered {}", r.status().as_u16())),
                        Err(e) => Err(crate::http::cause(&e, Duration::from_secs(1))),
                    }
                }
                (None, None) => Ok("no probe configured".into()),
            };
            let (ok, detail) = match answer {
                Ok(d) => (true, d),
                Err(e) => (false, e),
            };
            append(store, run, PROBE, seq, ok, detail).await?;
            seq += 1;
        }
        Ok::<_, String>(())
    };
    let prober = async { stopping(prober.await) };

    let judge = async {
        let mut tick = ticker(JUDGE_EVERY);
        loop {
            tick.tick().await;
            if stop.load(Ordering::Relaxed) {
                return Err("the writer or the probe stopped".to_string());
            }
            let log = match store.drill_log(run).await {
                Ok(l) => l,
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    return Err(format!("the drill's log: {e}"));
                }
            };
            let now = now_ms();
            let over = measure::observation_over(&log, now, observe_ms).or_else(|| {
                (measure::trigger_at(&log).is_none() && now > give_up)
                    .then_some("trigger never ran")
            });
            if let Some(why) = over {
                stop.store(true, Ordering::Relaxed);
                return Ok(why);
            }
        }
    };

    let (wrote, probed, ended) = tokio::join!(writer, prober, judge);
    wrote?;
    probed?;
    let ended = ended?;
    let log = store.drill_log(run).await.map_err(|e| e.to_string())?;
    Ok(measure::observed(&log, ended))
}
