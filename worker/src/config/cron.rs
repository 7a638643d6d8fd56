//! The schedules' cron expressions: standard five fields (weekdays 0-7
//! from Sunday), checked before anything runs and read for their interval
//! (the dead-man's switch defaults to twice the sweep's).

/// The shortest gap between the next few fire times of a five-field cron
/// expression.
pub fn cron_interval(expr: &str) -> Option<std::time::Duration> {
    let schedule = cron::Schedule::try_from(seconds_first(expr).as_str()).ok()?;
    let times: Vec<_> = schedule.upcoming(chrono::Utc).take(8).collect();
    times
        .windows(2)
        .filter_map(|w| (w[1] - w[0]).to_std().ok())
        .min()
}

/// A standard five-field expression (weekdays 0-7, Sunday 0 or 7) in the
/// `cron` crate's form: a seconds field first, weekdays 1-7 from Sunday.
/// Temporal itself gets the expression as written.
fn seconds_first(expr: &str) -> String {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    let Some((weekday, rest)) = fields.split_last() else {
        return format!("0 {expr}");
    };
    let shift = |n: &str| match n.parse::<u8>() {
        Ok(d @ 0..=6) => (d + 1).to_string(),
        Ok(7) => "1".to_string(),
        _ => n.to_string(),
    };
    let weekday: Vec<String> = weekday
        .split(',')
        .map(|part| {
            let (range, step) = match part.split_once('/') {
                Some((r, s)) => (r, Some(s)),
                None => (part, None),
            };
            let mut out = range.split('-').map(shift).collect::<Vec<_>>().join("-");
            if let Some(s) = step {
                out.push('/');
                out.push_str(s);
            }
            out
        })
        .collect();
    format!("0 {} {}", rest.join(" "), weekday.join(","))
}

/// Checks a five-field cron expression.
pub fn check_cron(expr: &str) -> Result<(), String> {
    let fields = expr.split_whitespace().count();
    if fields != 5 {
        return Err(format!(
            "`{expr}` has {fields} fields; expected 5 (minute hour day month weekday)"
        ));
    }
    cron::Schedule::try_from(seconds_first(expr).as_str())
        .map(|_| ())
        .map_err(|e| format!("`{expr}` is not a valid cron expression: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn weekdays_count_from_sunday_zero_as_in_standard_cron() {
        for ok in [
            "0 3 * * 0",
            "0 3 * * 7",
            "0 3 * * 1-5",
            "*/5 * * * 0,6",
            "0 3 * * SUN",
            "0 0 * * 1-5/2",
        ] {
            assert!(check_cron(ok).is_ok(), "{ok}: {:?}", check_cron(ok));
        }
        assert!(check_cron("0 3 * * 8").is_err());
        assert_eq!(
            cron_interval("0 3 * * 0"),
            Some(Duration::from_secs(7 * 24 * 3600)),
            "weekly on Sunday"
        );
        assert_eq!(seconds_first("0 3 * * 0"), "0 0 3 * * 1");
    }
}
