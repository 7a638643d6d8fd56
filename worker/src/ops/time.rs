//! Times as operators write them (RFC 3339, or `now`), read once for every
//! face.

use super::{Error, Result};

/// `text` as an instant; `what` names the field in the refusal.
pub fn instant(text: &str, what: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|_| {
            Error::BadRequest(format!(
                "{what} `{text}` is not an RFC 3339 time like 2026-12-01T00:00:00Z"
            ))
        })
}

/// `text` (RFC 3339, or `now`) as `YYYY-MM-DDTHH:MM:SSZ`, the form a
/// workflow reads; `what` names the field.
pub fn normalized(text: &str, what: &str) -> Result<String> {
    let t = if text == "now" {
        chrono::Utc::now()
    } else {
        instant(text, what)?
    };
    Ok(t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

/// An optional time filter (`resolved_since`, `since`) as milliseconds.
pub fn since_ms(text: Option<&str>, what: &str) -> Result<Option<i64>> {
    text.map(|t| instant(t, what).map(|d| d.timestamp_millis()))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_normalize_to_utc_and_bad_ones_name_the_field() {
        assert_eq!(
            normalized("2026-06-21T23:30:00+02:00", "--freeze-at").unwrap(),
            "2026-06-21T21:30:00Z"
        );
        assert_eq!(normalized("now", "freeze_at").unwrap().len(), 20);
        let e = normalized("tomorrow", "--freeze-at").unwrap_err();
        assert!(
            e.to_string()
                .contains("--freeze-at `tomorrow` is not an RFC 3339 time"),
            "{e}"
        );
        assert_eq!(since_ms(None, "since").unwrap(), None);
        assert_eq!(
            since_ms(Some("1970-01-01T00:00:01Z"), "since").unwrap(),
            Some(1000)
        );
        assert!(matches!(
            since_ms(Some("yesterday"), "resolved_since"),
            Err(Error::BadRequest(_))
        ));
        assert!(
            matches!(since_ms(Some(""), "since"), Err(Error::BadRequest(_))),
            "an empty time is no time"
        );
    }
}
