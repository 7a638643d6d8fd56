//! Wall-clock time as steward reads and writes it outside workflow code
//! (which has its own deterministic `steward_workflows::time`): now in
//! milliseconds, and RFC 3339 in UTC to the second or to the millisecond.

use std::time::SystemTime;

/// Now, in milliseconds since the epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// `t` in milliseconds since the epoch.
pub fn ms(t: SystemTime) -> i64 {
    chrono::DateTime::<chrono::Utc>::from(t).timestamp_millis()
}

/// `ms` as RFC 3339 to the second (`2026-12-07T04:01:45Z`).
pub fn secs_text(ms: i64) -> String {
    text(ms, chrono::SecondsFormat::Secs)
}

/// `ms` as RFC 3339 to the millisecond (`2026-12-07T04:01:45.123Z`).
pub fn millis_text(ms: i64) -> String {
    text(ms, chrono::SecondsFormat::Millis)
}

/// Now as RFC 3339 to the second.
pub fn now_secs_text() -> String {
    secs_text(now_ms())
}

/// Now as RFC 3339 to the millisecond.
pub fn now_millis_text() -> String {
    millis_text(now_ms())
}

fn text(ms: i64, precision: chrono::SecondsFormat) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(precision, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_in_utc_to_the_second_or_millisecond() {
        assert_eq!(secs_text(1_000), "1970-01-01T00:00:01Z");
        assert_eq!(millis_text(1_234), "1970-01-01T00:00:01.234Z");
        assert_eq!(
            ms(SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(5)),
            5
        );
        assert!(now_ms() > 1_700_000_000_000);
        assert_eq!(now_secs_text().len(), 20);
    }
}
