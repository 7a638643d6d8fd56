//! What a failover drill measured, computed from its log and the markers
//! found on the service afterwards: pure functions, so the rules are easy
//! to read and to test.

use crate::time::millis_text;
use std::collections::BTreeSet;

use steward_proto::v1::{FailoverMeasured, FailoverObserved, ProbeSpan};

use crate::store::drill_log::{LogRow, PROBE, TRIGGER, WRITE};

/// Successful writes in a row, after a failure, that end the observation.
pub const SETTLED: usize = 10;
/// A pause between two write attempts longer than this is a writer gap.
pub const GAP_MS: i64 = 1_000;
/// At most this many lost marker numbers are listed.
pub const LOST_SHOWN: usize = 50;

fn of<'a>(log: &'a [LogRow], kind: &'a str) -> impl Iterator<Item = &'a LogRow> + 'a {
    log.iter().filter(move |r| r.kind == kind)
}

/// When the trigger started, if it has.
pub fn trigger_at(log: &[LogRow]) -> Option<i64> {
    of(log, TRIGGER).find(|r| r.seq == 0).map(|r| r.at_ms)
}

/// The first failed write at or after the trigger (or at all, without one).
fn first_failure(log: &[LogRow]) -> Option<&LogRow> {
    let from = trigger_at(log).unwrap_or(i64::MIN);
    of(log, WRITE).find(|r| !r.ok && r.at_ms >= from)
}

/// Whether the observation is over at `now_ms`, and why: the trigger
/// failed; writes failed and then succeeded [`SETTLED`] times in a row;
/// or `observe_ms` after the trigger, writes never failed or never came
/// back.
pub fn observation_over(log: &[LogRow], now_ms: i64, observe_ms: i64) -> Option<&'static str> {
    if of(log, TRIGGER).any(|r| r.seq == 1 && !r.ok) {
        return Some("trigger failed");
    }
    let triggered = trigger_at(log)?;
    if let Some(failed) = first_failure(log) {
        let last_failure = of(log, WRITE)
            .filter(|r| !r.ok && r.at_ms >= failed.at_ms)
            .map(|r| r.at_ms)
            .max()
            .unwrap_or(failed.at_ms);
        let since = of(log, WRITE)
            .filter(|r| r.ok && r.at_ms > last_failure)
            .count();
        if since >= SETTLED {
            return Some("recovered");
        }
        if now_ms - triggered > observe_ms {
            return Some("not recovered");
        }
    } else if now_ms - triggered > observe_ms {
        return Some("never failed");
    }
    None
}

/// The writer's counts, with why the observation ended.
pub fn observed(log: &[LogRow], ended: &str) -> FailoverObserved {
    let writes: Vec<&LogRow> = of(log, WRITE).collect();
    let acknowledged = writes.iter().filter(|r| r.ok).count() as u64;
    FailoverObserved {
        ended: ended.to_string(),
        writes_attempted: writes.len() as u64,
        writes_acknowledged: acknowledged,
        writes_failed: writes.len() as u64 - acknowledged,
    }
}

/// RTO, RPO, lost markers, writer gaps and the probe's view, from the log
/// and the markers `found` on the service.
pub fn measure(log: &[LogRow], found: &BTreeSet<i64>) -> FailoverMeasured {
    let mut m = FailoverMeasured::default();
    let writes: Vec<&LogRow> = of(log, WRITE).collect();
    let failed = first_failure(log);
    if let Some(f) = failed {
        m.first_failed_write = millis_text(f.at_ms);
        if let Some(back) = writes.iter().find(|r| r.ok && r.at_ms > f.at_ms) {
            m.first_write_after = millis_text(back.at_ms);
            m.rto_seconds = (back.at_ms - f.at_ms) as f64 / 1000.0;
        }
    }
    let lost: Vec<&&LogRow> = writes
        .iter()
        .filter(|r| r.ok && !found.contains(&r.seq))
        .collect();
    m.lost_writes = lost.len() as u64;
    m.lost_markers = lost.iter().take(LOST_SHOWN).map(|r| r.seq as u64).collect();
    if let Some(oldest) = lost.iter().map(|r| r.at_ms).min() {
        let until = failed
            .map(|f| f.at_ms)
            .unwrap_or_else(|| lost.iter().map(|r| r.at_ms).max().unwrap_or(oldest));
        m.rpo_seconds = (until - oldest).max(0) as f64 / 1000.0;
    }
    m.writes_acknowledged = writes.iter().filter(|r| r.ok).count() as u64;
    m.writes_failed = writes.len() as u64 - m.writes_acknowledged;
    m.writer_gaps = writes
        .windows(2)
        .filter(|w| w[1].at_ms - w[0].at_ms > GAP_MS)
        .map(|w| {
            format!(
                "{} → {} ({:.1}s without a write attempt)",
                millis_text(w[0].at_ms),
                millis_text(w[1].at_ms),
                (w[1].at_ms - w[0].at_ms) as f64 / 1000.0
            )
        })
        .collect();
    for p in of(log, PROBE) {
        match m.probe.last_mut() {
            Some(span) if span.ok == p.ok => {
                span.to = millis_text(p.at_ms);
                span.answers += 1;
                span.detail = p.detail.clone();
            }
            _ => m.probe.push(ProbeSpan {
                ok: p.ok,
                from: millis_text(p.at_ms),
                to: millis_text(p.at_ms),
                answers: 1,
                detail: p.detail.clone(),
            }),
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use steward_proto::vocab::probe_line;

    fn row(kind: &str, seq: i64, at_ms: i64, ok: bool) -> LogRow {
        LogRow {
            kind: kind.into(),
            seq,
            at_ms,
            ok,
            detail: if ok { "ok".into() } else { "refused".into() },
        }
    }

    /// Writes every 100 ms from 0; the trigger at 1000; writes 12..=20
    /// fail (1200..2000), then succeed from 2100 on.
    fn failover_log(until: i64) -> Vec<LogRow> {
        let mut log = vec![row(TRIGGER, 0, 1000, true), row(TRIGGER, 1, 1100, true)];
        let mut seq = 1;
        let mut at = 100;
        while at <= until {
            log.push(row(WRITE, seq, at, !(1200..=2000).contains(&at)));
            seq += 1;
            at += 100;
        }
        log.push(row(PROBE, 1, 500, true));
        log.push(row(PROBE, 2, 1500, false));
        log.push(row(PROBE, 3, 2500, true));
        log.sort_by_key(|r| r.at_ms);
        log
    }

    #[test]
    fn rto_is_first_failed_write_to_first_success_and_lost_acks_are_the_rpo() {
        let log = failover_log(3500);
        let acked: BTreeSet<i64> = log
            .iter()
            .filter(|r| r.kind == WRITE && r.ok)
            .map(|r| r.seq)
            .collect();
        // The new primary lacks the two writes acknowledged last before
        // the failure (1000 and 1100 ms: markers 10 and 11).
        let found: BTreeSet<i64> = acked
            .iter()
            .copied()
            .filter(|s| *s != 10 && *s != 11)
            .collect();
        let m = measure(&log, &found);
        assert_eq!(m.rto_seconds, 0.9);
        assert_eq!(m.first_failed_write, "1970-01-01T00:00:01.200Z");
        assert_eq!(m.lost_writes, 2);
        assert_eq!(m.lost_markers, [10, 11]);
        assert_eq!(
            m.rpo_seconds, 0.2,
            "from the oldest lost write to the failure"
        );
        assert_eq!(m.writes_failed, 9);
        assert!(m.writer_gaps.is_empty());
        assert_eq!(
            probe_line(&m.probe),
            "ok 1×, then failing 1× (refused), then ok 1×"
        );
        let all = measure(&log, &acked);
        assert_eq!((all.lost_writes, all.rpo_seconds), (0, 0.0));
    }

    #[test]
    fn observation_ends_when_writes_settle_or_the_wait_runs_out() {
        assert_eq!(observation_over(&failover_log(2500), 2500, 60_000), None);
        assert_eq!(
            observation_over(&failover_log(3100), 3100, 60_000),
            Some("recovered")
        );
        let before_trigger: Vec<LogRow> = failover_log(3500)
            .into_iter()
            .filter(|r| r.kind != TRIGGER)
            .collect();
        assert_eq!(observation_over(&before_trigger, 99_000, 1_000), None);
        let quiet: Vec<LogRow> = (1..50)
            .map(|i| row(WRITE, i, i * 100, true))
            .chain([row(TRIGGER, 0, 1000, true)])
            .collect();
        assert_eq!(observation_over(&quiet, 4000, 10_000), None);
        assert_eq!(
            observation_over(&quiet, 12_000, 10_000),
            Some("never failed")
        );
        let down: Vec<LogRow> = (1..50)
            .map(|i| row(WRITE, i, i * 100, i < 15))
            .chain([row(TRIGGER, 0, 1000, true)])
            .collect();
        assert_eq!(
            observation_over(&down, 12_000, 10_000),
            Some("not recovered")
        );
        let bad = vec![row(TRIGGER, 0, 10, true), row(TRIGGER, 1, 20, false)];
        assert_eq!(observation_over(&bad, 30, 10_000), Some("trigger failed"));
    }

    #[test]
    fn a_pause_of_the_writer_is_reported_as_a_gap() {
        let log = vec![
            row(WRITE, 1, 0, true),
            row(WRITE, 2, 100, true),
            row(WRITE, 3, 5100, true),
        ];
        let m = measure(&log, &[1, 2, 3].into());
        assert_eq!(m.writer_gaps.len(), 1);
        assert!(
            m.writer_gaps[0].contains("5.0s without a write attempt"),
            "{:?}",
            m.writer_gaps
        );
    }
}
