//! A feed's own VTIMEZONE, for a TZID that is neither an IANA nor a Windows
//! name (older Outlook writes `(UTC-05:00) Eastern Time (US & Canada)`): the
//! offsets its STANDARD and DAYLIGHT rules give over two years are matched
//! against known zones, and the first zone with the same offsets on every
//! day stands for it. A recurring event then repeats in a real zone, with
//! the changes of the clocks `rrule` knows, and no second calendar engine
//! is kept here for the few feeds that need one.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use rrule::{RRule, Tz as RTz, Unvalidated};

use super::windows_zones::WINDOWS_ZONES;

/// One STANDARD or DAYLIGHT component: from each onset (a wall-clock time
/// on the offset before it), the offset is `to`.
struct Observance {
    start: NaiveDateTime,
    from: i32,
    to: i32,
    rrule: Option<String>,
}

/// An observance as its lines are read; one missing a part is left out.
#[derive(Default)]
struct Partial {
    start: Option<NaiveDateTime>,
    from: Option<i32>,
    to: Option<i32>,
    rrule: Option<String>,
}

/// The zone each of the feed's VTIMEZONEs matches, by TZID, for the TZIDs
/// that do not name a zone themselves. A VTIMEZONE that cannot be read or
/// matches no zone is left out: its entries are skipped, named.
pub(super) fn zones_defined(vtimezones: &[&str], now: DateTime<Utc>) -> HashMap<String, Tz> {
    let mut zones = HashMap::new();
    for text in vtimezones {
        let Some((tzid, observances)) = read(text) else {
            continue;
        };
        if super::zone_named(&tzid).is_some() || observances.is_empty() {
            continue;
        }
        if let Some(zone) = matching(&observances, now) {
            zones.insert(tzid, zone);
        }
    }
    zones
}

/// The TZID and observances of a VTIMEZONE's unfolded text.
fn read(text: &str) -> Option<(String, Vec<Observance>)> {
    let mut tzid = None;
    let mut observances = Vec::new();
    let mut current: Option<Partial> = None;
    for line in text.lines().map(|line| line.trim_end_matches('\r')) {
        let Some((head, value)) = line.split_once(':') else {
            continue;
        };
        let name = head.split(';').next().unwrap_or_default().to_ascii_uppercase();
        let value = value.trim();
        match (name.as_str(), current.as_mut()) {
            ("BEGIN", None) if value.eq_ignore_ascii_case("STANDARD") || value.eq_ignore_ascii_case("DAYLIGHT") => {
                current = Some(Partial::default());
            }
            ("END", Some(_)) if value.eq_ignore_ascii_case("STANDARD") || value.eq_ignore_ascii_case("DAYLIGHT") => {
                if let Some(Partial {
                    start: Some(start),
                    from: Some(from),
                    to: Some(to),
                    rrule,
                }) = current.take()
                {
                    observances.push(Observance { start, from, to, rrule });
                }
            }
            ("TZID", None) => tzid = Some(value.trim_matches('"').to_string()),
            ("DTSTART", Some(observance)) => {
                observance.start = NaiveDateTime::parse_from_str(value, "%Y%m%dT%H%M%S").ok();
            }
            ("TZOFFSETFROM", Some(observance)) => observance.from = offset_seconds(value),
            ("TZOFFSETTO", Some(observance)) => observance.to = offset_seconds(value),
            ("RRULE", Some(observance)) => observance.rrule = Some(value.to_string()),
            _ => {}
        }
    }
    Some((tzid?, observances))
}

/// `-0500`, `+0530`, `+013045` as seconds east of UTC.
fn offset_seconds(value: &str) -> Option<i32> {
    let (sign, digits) = match value.as_bytes().first()? {
        b'+' => (1, &value[1..]),
        b'-' => (-1, &value[1..]),
        _ => return None,
    };
    if !(digits.len() == 4 || digits.len() == 6) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let part = |range: std::ops::Range<usize>| digits.get(range).and_then(|d| d.parse::<i32>().ok());
    let seconds = part(0..2)? * 3600 + part(2..4)? * 60 + part(4..6).unwrap_or(0);
    Some(sign * seconds)
}

/// The first zone (CLDR's Windows zones first, for their usual names, then
/// every IANA zone) whose offset equals the VTIMEZONE's at noon UTC on each
/// day of the two years from the start of `now`'s, and at each hour around
/// its changes of the clocks.
fn matching(observances: &[Observance], now: DateTime<Utc>) -> Option<Tz> {
    let first = NaiveDate::from_ymd_opt(now.year(), 1, 1)?.and_hms_opt(12, 0, 0)?;
    let days: Vec<NaiveDateTime> = (0..731).map(|day| first + Duration::days(day)).collect();
    let onsets = onsets(observances, first - Duration::days(400), first + Duration::days(800));
    // Noon each day tells the offsets apart; each hour of the day before a
    // change tells its hour apart (Havana and New York change on the same
    // Sundays, at different hours).
    let mut samples = days.clone();
    for pair in days.windows(2) {
        if offset_at(observances, &onsets, pair[0]) != offset_at(observances, &onsets, pair[1]) {
            samples.extend((1..24).map(|hour| pair[0] + Duration::hours(hour)));
        }
    }
    let expected: Vec<i32> = samples.iter().map(|at| offset_at(observances, &onsets, *at)).collect();
    let cldr = WINDOWS_ZONES.iter().filter_map(|(_, iana)| iana.parse::<Tz>().ok());
    cldr.chain(chrono_tz::TZ_VARIANTS.iter().copied()).find(|zone| {
        samples
            .iter()
            .zip(&expected)
            .all(|(at, offset)| zone.offset_from_utc_datetime(at).fix().local_minus_utc() == *offset)
    })
}

/// Each observance's onsets between `from` and `until`, in UTC, with the
/// offset from then on, earliest first.
fn onsets(observances: &[Observance], from: NaiveDateTime, until: NaiveDateTime) -> Vec<(NaiveDateTime, i32)> {
    let mut onsets = Vec::new();
    for observance in observances {
        // The rule runs on the wall clock; UTC stands in for it (see Moment).
        let start = RTz::UTC.from_utc_datetime(&observance.start);
        let local: Vec<NaiveDateTime> = match &observance.rrule {
            Some(rule) => rule
                .parse::<RRule<Unvalidated>>()
                .ok()
                .and_then(|rule| rule.build(start).ok())
                .map(|set| {
                    set.after(RTz::UTC.from_utc_datetime(&from))
                        .before(RTz::UTC.from_utc_datetime(&until))
                        .all(100)
                        .dates
                        .into_iter()
                        .map(|at| at.naive_utc())
                        .collect()
                })
                .unwrap_or_default(),
            None => vec![observance.start],
        };
        onsets.extend(
            local
                .into_iter()
                .map(|at| (at - Duration::seconds(i64::from(observance.from)), observance.to)),
        );
    }
    onsets.sort();
    onsets
}

/// The offset at `at` (UTC): that of the last onset before it, or, before
/// the first, the offset that onset changed from.
fn offset_at(observances: &[Observance], onsets: &[(NaiveDateTime, i32)], at: NaiveDateTime) -> i32 {
    match onsets.iter().rev().find(|(onset, _)| *onset <= at) {
        Some((_, offset)) => *offset,
        None => observances
            .iter()
            .min_by_key(|observance| observance.start)
            .map_or(0, |observance| {
                if onsets.is_empty() {
                    observance.to
                } else {
                    observance.from
                }
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EASTERN: &str = "BEGIN:VTIMEZONE\r\nTZID:(UTC-05:00) Eastern Time (US & Canada)\r\nBEGIN:STANDARD\r\nDTSTART:16010101T020000\r\nTZOFFSETFROM:-0400\r\nTZOFFSETTO:-0500\r\nRRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=1SU;BYMONTH=11\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\nDTSTART:16010101T020000\r\nTZOFFSETFROM:-0500\r\nTZOFFSETTO:-0400\r\nRRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=2SU;BYMONTH=3\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n";

    fn now() -> DateTime<Utc> {
        "2026-11-20T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn a_vtimezone_under_an_unknown_name_is_the_zone_its_rules_match() {
        let zones = zones_defined(&[EASTERN], now());
        assert_eq!(
            zones.get("(UTC-05:00) Eastern Time (US & Canada)"),
            Some(&chrono_tz::America::New_York)
        );
        // No daylight saving, +05:30: India.
        let india = "BEGIN:VTIMEZONE\r\nTZID:Custom India\r\nBEGIN:STANDARD\r\nDTSTART:16010101T000000\r\nTZOFFSETFROM:+0530\r\nTZOFFSETTO:+0530\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n";
        assert_eq!(
            zones_defined(&[india], now()).get("Custom India"),
            Some(&chrono_tz::Asia::Calcutta)
        );
        // The EU's last Sundays under a made-up name, with Berlin's offsets.
        let europe = EASTERN
            .replace("(UTC-05:00) Eastern Time (US & Canada)", "Romance-ish")
            .replace("-0400", "+0200")
            .replace("-0500", "+0100")
            .replace("BYDAY=1SU;BYMONTH=11", "BYDAY=-1SU;BYMONTH=10")
            .replace("BYDAY=2SU;BYMONTH=3", "BYDAY=-1SU;BYMONTH=3")
            // Back at 03:00 summer time, as in the EU (01:00 UTC both ways).
            .replace(
                "DTSTART:16010101T020000\r\nTZOFFSETFROM:+0200",
                "DTSTART:16010101T030000\r\nTZOFFSETFROM:+0200",
            );
        let zone = zones_defined(&[&europe], now())["Romance-ish"];
        let summer = "2027-07-01T12:00:00".parse::<NaiveDateTime>().unwrap();
        assert_eq!(zone.offset_from_utc_datetime(&summer).fix().local_minus_utc(), 7200);
    }

    #[test]
    fn a_vtimezone_matching_no_zone_or_naming_a_known_one_adds_nothing() {
        let nowhere = EASTERN.replace("BYMONTH=11", "BYMONTH=9");
        assert!(zones_defined(&[&nowhere], now()).is_empty());
        let named = EASTERN.replace("(UTC-05:00) Eastern Time (US & Canada)", "Eastern Standard Time");
        assert!(zones_defined(&[&named], now()).is_empty(), "the name is enough");
        assert_eq!(offset_seconds("-0500"), Some(-18_000));
        assert_eq!(offset_seconds("+013045"), Some(5_445));
        assert_eq!(offset_seconds("0500"), None);
    }
}
