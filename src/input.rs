//! Validated input: emails, time zones, due times and metadata, checked once
//! before anything touches the database.

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

use crate::error::invalid;

/// A syntactically valid email address, trimmed and lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> anyhow::Result<Email> {
        let normalized = raw.trim().to_lowercase();
        if normalized.len() > 254 || normalized.parse::<lettre::Address>().is_err() {
            return Err(invalid(format!("`{}` is not a valid email address", raw.trim())));
        }
        Ok(Email(normalized))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An IANA time zone such as `America/Los_Angeles`.
pub fn parse_timezone(raw: &str) -> anyhow::Result<Tz> {
    raw.trim()
        .parse::<Tz>()
        .map_err(|_| invalid(format!("`{raw}` is not an IANA time zone (e.g. `America/New_York`)")))
}

/// The zone a user's stored `timezone` names; UTC when it is absent.
pub fn zone_of(timezone: Option<&str>) -> Tz {
    timezone.and_then(|name| name.parse().ok()).unwrap_or(Tz::UTC)
}

/// An instant: RFC 3339 with an offset.
pub fn parse_instant(raw: &str) -> anyhow::Result<DateTime<Utc>> {
    let instant = DateTime::parse_from_rfc3339(raw.trim()).map_err(|_| {
        invalid(format!(
            "`{raw}` is not an RFC 3339 time such as `2025-09-27T23:00:00Z`"
        ))
    })?;
    refuse_second_60(raw, instant.nanosecond())?;
    Ok(instant.with_timezone(&Utc))
}

/// chrono reads second 60 as a leap second at any minute, but the backends
/// cannot hold one (SQLite kept `:60` as text, which sorts and shows wrongly;
/// PostgreSQL rolled it over to the next minute). Like a time in a DST gap, it
/// is not on anyone's clock, so it is refused. chrono marks a leap second by a
/// nanosecond field of a second or more.
fn refuse_second_60(raw: &str, nanosecond: u32) -> anyhow::Result<()> {
    if nanosecond >= 1_000_000_000 {
        return Err(invalid(format!(
            "`{}` does not exist: a minute has seconds 00 to 59",
            raw.trim()
        )));
    }
    Ok(())
}

/// A due time: RFC 3339 with an offset, or a local `YYYY-MM-DD HH:MM` read in `zone`.
/// A local time that the zone skips (DST gap) or repeats (DST overlap) is refused.
pub fn parse_due(raw: &str, zone: Tz) -> anyhow::Result<DateTime<Utc>> {
    let raw = raw.trim();
    if let Ok(instant) = DateTime::parse_from_rfc3339(raw) {
        refuse_second_60(raw, instant.nanosecond())?;
        return Ok(instant.with_timezone(&Utc));
    }
    let local = ["%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(raw, format).ok())
        .ok_or_else(|| {
            invalid(format!(
                "`{raw}` is not a due time: use RFC 3339 (`2025-09-27T23:00:00Z`) or local `YYYY-MM-DD HH:MM`"
            ))
        })?;
    refuse_second_60(raw, local.nanosecond())?;
    match zone.from_local_datetime(&local) {
        LocalResult::Single(instant) => Ok(instant.with_timezone(&Utc)),
        LocalResult::None => Err(invalid(format!(
            "`{raw}` does not exist in {zone}: the clocks skip that hour (daylight saving); pick another time"
        ))),
        LocalResult::Ambiguous(first, second) => Err(invalid(format!(
            "`{raw}` is ambiguous in {zone}: it happens twice ({} and {}); give an RFC 3339 time with the offset",
            first.format("%H:%M %Z, UTC%:z"),
            second.format("%H:%M %Z, UTC%:z"),
        ))),
    }
}

/// A duration written like `90d`, `12h`, `30m` or `45s`.
pub fn parse_duration(raw: &str) -> anyhow::Result<chrono::Duration> {
    let bad = || {
        invalid(format!(
            "`{raw}` is not a duration: write a whole number and a unit, like `90d`, `12h`, `30m` or `45s`"
        ))
    };
    let raw_trimmed = raw.trim();
    let split = raw_trimmed.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = raw_trimmed.split_at(split);
    let number: i64 = number.parse().map_err(|_| bad())?;
    match unit {
        "s" => chrono::Duration::try_seconds(number),
        "m" => chrono::Duration::try_minutes(number),
        "h" => chrono::Duration::try_hours(number),
        "d" => chrono::Duration::try_days(number),
        _ => None,
    }
    .ok_or_else(bad)
}

/// Assignment metadata: a JSON object.
pub fn parse_metadata(raw: &str) -> anyhow::Result<serde_json::Value> {
    let value: serde_json::Value =
        serde_json::from_str(raw).map_err(|error| invalid(format!("metadata `{raw}` is not valid JSON: {error}")))?;
    if !value.is_object() {
        return Err(invalid(format!(
            "metadata `{raw}` must be a JSON object, like `{{\"course\": \"CS101\"}}`"
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        assert_eq!(
            Email::parse("  Alice@Example.COM ").unwrap().as_str(),
            "alice@example.com"
        );
        assert!(Email::parse("not-an-email").is_err());
        assert!(Email::parse("a@b@c").is_err());
    }

    #[test]
    fn local_due_times_are_read_in_the_zone() {
        let la: Tz = "America/Los_Angeles".parse().unwrap();
        let due = parse_due("2025-09-27 16:00", la).unwrap();
        assert_eq!(due.to_rfc3339(), "2025-09-27T23:00:00+00:00");
    }

    #[test]
    fn dst_gaps_and_overlaps_are_refused() {
        let ny: Tz = "America/New_York".parse().unwrap();
        let gap = parse_due("2025-03-09 02:30", ny).unwrap_err().to_string();
        assert!(gap.contains("does not exist"), "{gap}");
        let overlap = parse_due("2025-11-02 01:30", ny).unwrap_err().to_string();
        assert!(overlap.contains("ambiguous"), "{overlap}");
    }

    #[test]
    fn second_60_is_refused_everywhere() {
        let utc: Tz = "UTC".parse().unwrap();
        for raw in [
            "2025-06-30T12:00:60Z",
            "2025-06-30T23:59:60Z",
            "2025-06-30T12:00:60.5+02:00",
        ] {
            let error = parse_instant(raw).unwrap_err().to_string();
            assert!(error.contains("seconds 00 to 59"), "{raw}: {error}");
            assert!(parse_due(raw, utc).is_err(), "{raw}");
        }
        let local = parse_due("2025-06-30 12:00:60", utc).unwrap_err().to_string();
        assert!(local.contains("seconds 00 to 59"), "{local}");
        assert!(parse_due("2025-06-30 12:00:59", utc).is_ok());
        assert!(parse_instant("2025-06-30T12:00:59.999999Z").is_ok());
    }

    #[test]
    fn durations_have_a_unit() {
        assert_eq!(parse_duration("90d").unwrap(), chrono::Duration::days(90));
        assert_eq!(parse_duration("5m").unwrap(), chrono::Duration::minutes(5));
        for bad in ["", "5", "m", "-5m", "5 weeks", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn metadata_must_be_an_object() {
        assert!(parse_metadata(r#"{"course":"CS101"}"#).is_ok());
        assert!(parse_metadata("[1,2]").is_err());
        assert!(parse_metadata("{oops").is_err());
    }
}
