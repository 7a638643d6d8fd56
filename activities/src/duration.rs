//! Durations as the config writes them: `90s`, `15m`, `2h`, `1d`, or a
//! number of seconds (a backfill's `max_runtime`, an app's
//! `approval_wait`).

/// Parses "90s", "15m", "2h", "1d" or a number of seconds into seconds.
pub fn parse(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 90s, 15m, 2h"))?;
    let factor = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("`{text}` has an unknown unit (use s, m, h or d)")),
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("`{text}` is too long a duration"))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn durations_parse_in_seconds_minutes_hours_and_days() {
        assert_eq!(parse("2h"), Ok(7200));
        assert_eq!(parse("90"), Ok(90));
        assert_eq!(parse("15m"), Ok(900));
        assert_eq!(parse("1d"), Ok(86_400));
        assert!(parse("2 weeks").unwrap_err().contains("unknown unit"));
        assert!(parse("h").is_err());
        assert!(parse("99999999999999999999d").is_err());
    }
}
