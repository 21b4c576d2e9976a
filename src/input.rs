//! Validated input: emails, time zones, due times and metadata, checked once
//! before anything touches the database.

use anyhow::Context;
use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDateTime, TimeZone, Timelike, Utc};
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

    /// The address of someone to be mailed: its domain must be one that can
    /// receive mail on the internet (a dot, and none at the end), unless
    /// `allow_local_domains` (a school's internal mail). `frank@example` is
    /// a typo far more often than a host on the school's network.
    pub fn mailable(self, allow_local_domains: bool) -> anyhow::Result<Email> {
        let domain = self.0.rsplit_once('@').map_or("", |(_, domain)| domain);
        let internet = domain.starts_with('[') || (domain.contains('.') && !domain.ends_with('.'));
        if !internet && !allow_local_domains {
            return Err(invalid(format!(
                "`{}` is not an internet address: its domain `{domain}` {}; write the whole domain, or pass \
                 --allow-local-domains for mail delivered inside the school",
                self.0,
                if domain.ends_with('.') {
                    "ends with a dot"
                } else {
                    "has no dot"
                },
            )));
        }
        Ok(self)
    }
}

/// An IANA time zone such as `America/Los_Angeles`, in any letter case
/// (`utc`, `america/los_angeles`), stored by its canonical name. An unknown
/// one is bad input: an abbreviation (`PST`) says which zones it stands for,
/// and a misspelt Region/City name gets the nearest name. A short word is
/// never matched by spelling, since `PST` is one letter from `EST`, three
/// hours away.
pub fn parse_timezone(raw: &str) -> anyhow::Result<Tz> {
    let wanted = raw.trim();
    if let Ok(zone) = wanted.parse::<Tz>() {
        return Ok(zone);
    }
    if let Some(zone) = chrono_tz::TZ_VARIANTS
        .iter()
        .find(|zone| zone.name().eq_ignore_ascii_case(wanted))
    {
        return Ok(*zone);
    }
    if let Some(meanings) = abbreviation(wanted) {
        let choices: Vec<String> = meanings
            .iter()
            .map(|(zone, place)| format!("`{zone}` ({place})"))
            .collect();
        return Err(invalid(match choices.as_slice() {
            [only] => format!(
                "`{wanted}` is an abbreviation, not a time zone: use {only}, or the Region/City zone of the student's place"
            ),
            [init @ .., last] => format!(
                "`{wanted}` is an abbreviation that several places use, not a time zone: use {} or {last}",
                init.join(", ")
            ),
            [] => unreachable!("every abbreviation has a meaning"),
        }));
    }
    let example = "(a Region/City name such as `America/New_York` or `Europe/Paris`)";
    if !wanted.contains('/') {
        return Err(invalid(format!("`{wanted}` is not an IANA time zone {example}")));
    }
    let lower = wanted.to_lowercase();
    let nearest = chrono_tz::TZ_VARIANTS
        .iter()
        .filter(|zone| zone.name().contains('/'))
        .map(|zone| (strsim::levenshtein(&lower, &zone.name().to_lowercase()), zone.name()))
        .min()
        .filter(|(distance, _)| *distance <= 3);
    Err(invalid(match nearest {
        Some((_, name)) => format!("`{wanted}` is not an IANA time zone: did you mean `{name}`?"),
        None => format!("`{wanted}` is not an IANA time zone {example}"),
    }))
}

/// What the common time-zone abbreviations that are not IANA names (`EST`,
/// `CET` and a few others are) mean in practice: the zones, with the place.
fn abbreviation(word: &str) -> Option<&'static [(&'static str, &'static str)]> {
    const LOS_ANGELES: &[(&str, &str)] = &[("America/Los_Angeles", "US and Canada Pacific")];
    const DENVER: &[(&str, &str)] = &[("America/Denver", "US and Canada Mountain")];
    const CHICAGO: &[(&str, &str)] = &[("America/Chicago", "US and Canada Central")];
    const NEW_YORK: &[(&str, &str)] = &[("America/New_York", "US and Canada Eastern")];
    const PARIS: &[(&str, &str)] = &[("Europe/Paris", "Central Europe")];
    const SYDNEY: &[(&str, &str)] = &[("Australia/Sydney", "New South Wales, Victoria")];
    const AUCKLAND: &[(&str, &str)] = &[("Pacific/Auckland", "New Zealand")];
    Some(match word.to_ascii_uppercase().as_str() {
        "PST" | "PDT" | "PT" => LOS_ANGELES,
        "MDT" | "MT" => DENVER,
        "CDT" | "CT" => CHICAGO,
        "EDT" | "ET" => NEW_YORK,
        "CEST" => PARIS,
        "AEDT" => SYDNEY,
        "NZST" | "NZDT" => AUCKLAND,
        "AKST" | "AKDT" => &[("America/Anchorage", "Alaska")],
        "NST" | "NDT" => &[("America/St_Johns", "Newfoundland")],
        "ADT" => &[("America/Halifax", "Atlantic Canada")],
        "EEST" => &[("Europe/Athens", "Eastern Europe")],
        "WEST" => &[("Europe/Lisbon", "Western Europe")],
        "MSK" => &[("Europe/Moscow", "Moscow")],
        "JST" => &[("Asia/Tokyo", "Japan")],
        "KST" => &[("Asia/Seoul", "Korea")],
        "HKT" => &[("Asia/Hong_Kong", "Hong Kong")],
        "SGT" => &[("Asia/Singapore", "Singapore")],
        "PHT" => &[("Asia/Manila", "Philippines")],
        "WIB" => &[("Asia/Jakarta", "western Indonesia")],
        "PKT" => &[("Asia/Karachi", "Pakistan")],
        "ACST" | "ACDT" => &[("Australia/Adelaide", "South Australia")],
        "AWST" => &[("Australia/Perth", "Western Australia")],
        "SAST" => &[("Africa/Johannesburg", "South Africa")],
        "WAT" => &[("Africa/Lagos", "West Africa")],
        "CAT" => &[("Africa/Maputo", "Central Africa")],
        "EAT" => &[("Africa/Nairobi", "East Africa")],
        "BRT" => &[("America/Sao_Paulo", "Brasília")],
        "ART" => &[("America/Argentina/Buenos_Aires", "Argentina")],
        "CST" => &[("America/Chicago", "US and Canada Central"), ("Asia/Shanghai", "China")],
        "IST" => &[
            ("Asia/Kolkata", "India"),
            ("Europe/Dublin", "Ireland"),
            ("Asia/Jerusalem", "Israel"),
        ],
        "BST" => &[("Europe/London", "British Summer Time"), ("Asia/Dhaka", "Bangladesh")],
        "AST" => &[("America/Halifax", "Atlantic Canada"), ("Asia/Riyadh", "Arabia")],
        "AEST" => &[
            ("Australia/Sydney", "New South Wales, Victoria"),
            ("Australia/Brisbane", "Queensland, no daylight saving"),
        ],
        _ => return None,
    })
}

/// The zone a user's stored `timezone` names; UTC when it is absent.
pub fn zone_of(timezone: Option<&str>) -> Tz {
    timezone.and_then(|name| name.parse().ok()).unwrap_or(Tz::UTC)
}

/// A day of the week: its English name or the first three letters (`mon`,
/// `Monday`), or its ISO number (Monday 1 to Sunday 7).
pub fn parse_weekday(raw: &str) -> anyhow::Result<chrono::Weekday> {
    let wanted = raw.trim();
    let by_number = match wanted {
        "1" => Some(chrono::Weekday::Mon),
        "2" => Some(chrono::Weekday::Tue),
        "3" => Some(chrono::Weekday::Wed),
        "4" => Some(chrono::Weekday::Thu),
        "5" => Some(chrono::Weekday::Fri),
        "6" => Some(chrono::Weekday::Sat),
        "7" => Some(chrono::Weekday::Sun),
        _ => None,
    };
    by_number.or_else(|| wanted.parse().ok()).ok_or_else(|| {
        invalid(format!(
            "`{wanted}` is not a day of the week: use mon, tue, wed, thu, fri, sat or sun"
        ))
    })
}

/// A language as BCP 47 writes it (`fr`, `fr-CA`, `es-419`, `zh-Hant-TW`),
/// in its usual case: language lower, script title, region upper. `_` is
/// read as `-` (`fr_CA`, as POSIX writes it). Empty, or `none`, is no
/// language (English).
pub fn parse_locale(raw: &str) -> anyhow::Result<Option<String>> {
    let wanted = raw.trim();
    if wanted.is_empty() || wanted.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let bad = || {
        invalid(format!(
            "`{wanted}` is not a language tag such as `fr`, `fr-CA` or `es-419` (BCP 47)"
        ))
    };
    let mut subtags = wanted.split(['-', '_']);
    let language = subtags.next().unwrap_or_default();
    if !(2..=3).contains(&language.len()) || !language.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(bad());
    }
    let mut tag = language.to_ascii_lowercase();
    for subtag in subtags {
        let letters = subtag.chars().all(|c| c.is_ascii_alphabetic());
        let written = match subtag.len() {
            // A script: Latn, Hant.
            4 if letters => {
                let (first, rest) = subtag.split_at(1);
                first.to_ascii_uppercase() + &rest.to_ascii_lowercase()
            }
            // A region: CA, or a UN M.49 number such as 419.
            2 if letters => subtag.to_ascii_uppercase(),
            3 if subtag.chars().all(|c| c.is_ascii_digit()) => subtag.to_string(),
            // A variant.
            5..=8 if subtag.chars().all(|c| c.is_ascii_alphanumeric()) => subtag.to_ascii_lowercase(),
            _ => return Err(bad()),
        };
        tag = format!("{tag}-{written}");
    }
    Ok(Some(tag))
}

/// `--rate`: at most `messages` per `per` (a second, a minute or an hour).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub messages: u32,
    pub per: std::time::Duration,
}

impl Rate {
    /// Messages a second, for sizing what a run holds.
    pub fn per_second(self) -> f64 {
        f64::from(self.messages) / self.per.as_secs_f64()
    }
}

/// The most messages `--rate` takes, per unit.
const RATE_MAX: u32 = 100_000;

/// `--rate N/s`, `N/min` or `N/h`; a bare N is per second. N is 1 to 100000.
pub fn parse_rate(raw: &str) -> anyhow::Result<Rate> {
    let wanted = raw.trim();
    let (count, unit) = wanted.split_once('/').unwrap_or((wanted, "s"));
    let per = match unit.trim() {
        "s" | "sec" | "second" => std::time::Duration::from_secs(1),
        "min" | "minute" => std::time::Duration::from_secs(60),
        "h" | "hour" => std::time::Duration::from_secs(3600),
        _ => None.ok_or_else(|| {
            invalid(format!(
                "`{wanted}` is not a rate: use N/s, N/min or N/h, such as 30/min"
            ))
        })?,
    };
    let messages = count
        .trim()
        .parse()
        .ok()
        .filter(|n| (1..=RATE_MAX).contains(n))
        .ok_or_else(|| invalid(format!("`{wanted}` is not a rate: N is 1 to {RATE_MAX}, as in 30/min")))?;
    Ok(Rate { messages, per })
}

/// `--max-per-day N`: 1 or more messages a day, or 0 for no limit (`None`).
pub fn parse_max_per_day(raw: &str) -> anyhow::Result<Option<i32>> {
    let wanted = raw.trim();
    match wanted.parse::<i32>() {
        Ok(0) => Ok(None),
        Ok(n) if (1..=1000).contains(&n) => Ok(Some(n)),
        _ => Err(invalid(format!(
            "`{wanted}` is not a daily limit: use 1 to 1000 messages a day, or 0 for none"
        ))),
    }
}

/// A local hour, 0 to 23.
pub fn parse_hour(raw: &str) -> anyhow::Result<i32> {
    let wanted = raw.trim();
    wanted
        .parse()
        .ok()
        .filter(|hour| (0..=23).contains(hour))
        .ok_or_else(|| invalid(format!("`{wanted}` is not an hour: use 0 to 23")))
}

/// An instant: RFC 3339 with an offset.
pub fn parse_instant(raw: &str) -> anyhow::Result<DateTime<Utc>> {
    let instant = DateTime::parse_from_rfc3339(raw.trim()).map_err(|_| match without_offset(raw) {
        Some(_) => invalid(format!("`{raw}` has no UTC offset: add `Z` or one such as `+01:00`")),
        None => invalid(format!(
            "`{raw}` is not an RFC 3339 time such as `2025-09-27T23:00:00Z`"
        )),
    })?;
    refuse_second_60(raw, instant.nanosecond())?;
    within_years(raw, instant.with_timezone(&Utc))
}

/// An RFC 3339 time but for its offset (`2026-12-05T17:00:00`), the most
/// common slip: read, so that the error can say what is missing.
fn without_offset(raw: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(raw.trim(), "%Y-%m-%dT%H:%M:%S%.f").ok()
}

/// The years an instant may fall in. Far enough from the ends of what the
/// backends store (years 0000 to 9999) that adding a lease, a window or a
/// retention period can never leave that range.
const YEARS: std::ops::RangeInclusive<i32> = 1900..=8999;

fn within_years(raw: &str, instant: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
    if !YEARS.contains(&instant.year()) {
        return Err(invalid(format!(
            "`{}` is out of range: use a time from the year {} to {}",
            raw.trim(),
            YEARS.start(),
            YEARS.end()
        )));
    }
    Ok(instant)
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
        return within_years(raw, instant.with_timezone(&Utc));
    }
    if let Some(local) = without_offset(raw) {
        return Err(invalid(format!(
            "`{raw}` has no UTC offset: add `Z` or one such as `+01:00`, or write `{}` for the student's local time",
            local.format("%Y-%m-%d %H:%M")
        )));
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
        LocalResult::Single(instant) => within_years(raw, instant.with_timezone(&Utc)),
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

/// A cut-off, read as `parse_due` reads a due time; blank is none.
pub fn parse_cutoff(raw: Option<&str>, zone: Tz) -> anyhow::Result<Option<DateTime<Utc>>> {
    match raw.filter(|raw| !raw.trim().is_empty()) {
        Some(raw) => parse_due(raw, zone).context("the cut-off").map(Some),
        None => Ok(None),
    }
}

/// A cut-off is when work can no longer be handed in, so it cannot come
/// before the due time (it may be the due time itself: no late work).
pub fn check_cutoff(cutoff: DateTime<Utc>, due: DateTime<Utc>) -> anyhow::Result<()> {
    if cutoff < due {
        return Err(invalid(format!(
            "the cut-off {} is before the due time {}: give a cut-off at or after the due time",
            crate::time::utc(cutoff),
            crate::time::utc(due)
        )));
    }
    Ok(())
}

/// The clap value parser of a duration option: a whole number and a unit,
/// `90d`, `12h`, `30m` or `45s`, from `min` to `max`. The bound keeps the
/// clock arithmetic of a run far from overflowing.
pub fn duration_between(
    min: Duration,
    max: Duration,
) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
    move |raw: &str| {
        let raw = raw.trim();
        // clap puts the option and the value in front of these messages.
        let malformed = || "write a whole number and a unit, like `90d`, `2w`, `12h`, `30min` or `45s`".to_string();
        let split = raw
            .find(|c: char| !c.is_ascii_digit())
            .filter(|&split| split > 0)
            .ok_or_else(malformed)?;
        let (number, unit) = raw.split_at(split);
        let unit_seconds = match unit {
            "s" => 1,
            "m" | "min" => 60,
            "h" => 3_600,
            "d" => 86_400,
            "w" => 7 * 86_400,
            _ => return Err(malformed()),
        };
        // The number is all digits, so it only fails to parse when it is too big.
        let duration = number
            .parse::<i64>()
            .ok()
            .and_then(|number| number.checked_mul(unit_seconds))
            .and_then(Duration::try_seconds);
        match duration {
            Some(duration) if min <= duration && duration <= max => Ok(duration),
            _ => Err(format!("out of range: use {} to {}", written(min), written(max))),
        }
    }
}

/// A duration as an option takes it, in its largest whole unit: `1d`, `90m`, `0s`.
fn written(duration: Duration) -> String {
    let seconds = duration.num_seconds();
    [(86_400, "d"), (3_600, "h"), (60, "m")]
        .into_iter()
        .find(|(unit_seconds, _)| seconds != 0 && seconds % unit_seconds == 0)
        .map_or(format!("{seconds}s"), |(unit_seconds, unit)| {
            format!("{}{unit}", seconds / unit_seconds)
        })
}

/// A student's name: trimmed, one line; blank is no name.
pub fn parse_name(raw: Option<&str>) -> anyhow::Result<Option<String>> {
    let Some(name) = raw.map(str::trim).filter(|name| !name.is_empty()) else {
        return Ok(None);
    };
    refuse_control_characters("the name", name, &[])?;
    Ok(Some(name.to_string()))
}

/// An assignment's title: trimmed, one line, not empty.
pub fn parse_title(raw: &str) -> anyhow::Result<String> {
    let title = raw.trim();
    if title.is_empty() {
        return Err(invalid("the title is empty"));
    }
    refuse_control_characters("the title", title, &[])?;
    Ok(title.to_string())
}

/// An assignment's course (a code such as `CS101`): trimmed, one line;
/// blank is no course.
pub fn parse_course(raw: Option<&str>) -> anyhow::Result<Option<String>> {
    let Some(course) = raw.map(str::trim).filter(|course| !course.is_empty()) else {
        return Ok(None);
    };
    refuse_control_characters("the course", course, &[])?;
    Ok(Some(course.to_string()))
}

/// An assignment's id in the LMS (a Canvas or Moodle UID, a CSV column):
/// trimmed, one line, not empty, at most 255 characters.
pub fn parse_external_id(raw: &str) -> anyhow::Result<String> {
    let id = raw.trim();
    if id.is_empty() {
        return Err(invalid("the external id is empty"));
    }
    if id.chars().count() > 255 {
        return Err(invalid("the external id is longer than 255 characters"));
    }
    refuse_control_characters("the external id", id, &[])?;
    Ok(id.to_string())
}

/// An assignment's description: free text, over several lines if need be.
pub fn parse_description(raw: Option<&str>) -> anyhow::Result<Option<String>> {
    if let Some(description) = raw {
        refuse_control_characters("the description", description, &['\t', '\n', '\r'])?;
    }
    Ok(raw.map(str::to_string))
}

/// Text stored for a student holds no control character (but those `allowed`):
/// PostgreSQL cannot store a NUL at all, and an escape sequence would reach
/// the terminal of whoever lists the data.
fn refuse_control_characters(what: &str, text: &str, allowed: &[char]) -> anyhow::Result<()> {
    match text.chars().find(|c| c.is_control() && !allowed.contains(c)) {
        Some(c) => Err(invalid(format!(
            "{what} holds the control character U+{:04X}; remove it",
            u32::from(c)
        ))),
        None => Ok(()),
    }
}

/// Assignment metadata, as JSON text.
pub fn parse_metadata(raw: &str) -> anyhow::Result<serde_json::Value> {
    let value: serde_json::Value =
        serde_json::from_str(raw).map_err(|error| invalid(format!("metadata `{raw}` is not valid JSON: {error}")))?;
    check_metadata(value)
}

/// Assignment metadata: a JSON object with no NUL in it, which PostgreSQL's
/// jsonb cannot store.
pub fn check_metadata(value: serde_json::Value) -> anyhow::Result<serde_json::Value> {
    if !value.is_object() {
        return Err(invalid(format!(
            "metadata `{value}` must be a JSON object, like `{{\"course\": \"CS101\"}}`"
        )));
    }
    if holds_nul(&value) {
        return Err(invalid("metadata holds the control character U+0000; remove it"));
    }
    Ok(value)
}

fn holds_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(text) => text.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(holds_nul),
        serde_json::Value::Object(fields) => fields.iter().any(|(key, value)| key.contains('\0') || holds_nul(value)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekdays_by_name_or_iso_number_and_hours_0_to_23() {
        for raw in ["fri", "Friday", " FRI ", "5"] {
            assert_eq!(parse_weekday(raw).unwrap(), chrono::Weekday::Fri, "{raw}");
        }
        assert_eq!(parse_weekday("7").unwrap(), chrono::Weekday::Sun);
        for raw in ["0", "8", "funday", ""] {
            let error = parse_weekday(raw).unwrap_err().to_string();
            assert!(error.contains("is not a day of the week"), "{error}");
        }
        assert_eq!(parse_hour(" 0").unwrap(), 0);
        assert_eq!(parse_hour("23").unwrap(), 23);
        for raw in ["24", "-1", "7pm", "7.5"] {
            let error = parse_hour(raw).unwrap_err().to_string();
            assert!(error.contains("is not an hour: use 0 to 23"), "{error}");
        }
    }

    #[test]
    fn language_tags_are_read_in_their_usual_case() {
        assert_eq!(parse_locale("fr").unwrap().as_deref(), Some("fr"));
        assert_eq!(parse_locale(" FR_ca ").unwrap().as_deref(), Some("fr-CA"));
        assert_eq!(parse_locale("es-419").unwrap().as_deref(), Some("es-419"));
        assert_eq!(parse_locale("zh-hant-tw").unwrap().as_deref(), Some("zh-Hant-TW"));
        assert_eq!(parse_locale("").unwrap(), None);
        assert_eq!(parse_locale("none").unwrap(), None);
        for bad in ["f", "french", "fr-C", "fr-CA-x", "12", "fr CA"] {
            let error = parse_locale(bad).unwrap_err().to_string();
            assert!(error.contains("is not a language tag"), "{bad}: {error}");
        }
    }

    #[test]
    fn rates_per_second_minute_or_hour() {
        let second = std::time::Duration::from_secs(1);
        assert_eq!(
            parse_rate("10").unwrap(),
            Rate {
                messages: 10,
                per: second
            }
        );
        assert_eq!(
            parse_rate("10/s").unwrap(),
            Rate {
                messages: 10,
                per: second
            }
        );
        let per_minute = parse_rate(" 30/min ").unwrap();
        assert_eq!(per_minute.per, std::time::Duration::from_secs(60));
        assert!((per_minute.per_second() - 0.5).abs() < 1e-9);
        assert_eq!(parse_rate("416/h").unwrap().per, std::time::Duration::from_secs(3600));
        for raw in ["0", "0/min", "30/day", "fast", "", "100001", "-1/h", "1.5/s"] {
            let error = parse_rate(raw).unwrap_err().to_string();
            assert!(error.contains("is not a rate"), "{raw}: {error}");
        }
    }

    #[test]
    fn time_zones_in_any_case_and_near_misses_are_named() {
        assert_eq!(parse_timezone("utc").unwrap().name(), "UTC");
        assert_eq!(
            parse_timezone("america/los_angeles").unwrap().name(),
            "America/Los_Angeles"
        );
        let error = parse_timezone("Europe/Londn").unwrap_err().to_string();
        assert!(error.contains("did you mean `Europe/London`?"), "{error}");
        let error = parse_timezone("Mars/Olympus_Mons").unwrap_err().to_string();
        assert!(error.contains("such as `America/New_York`"), "{error}");
    }

    #[test]
    fn abbreviations_say_what_they_mean_and_are_never_matched_by_spelling() {
        let error = parse_timezone("PST").unwrap_err().to_string();
        assert!(
            error.contains("`America/Los_Angeles`") && !error.contains("EST"),
            "{error}"
        );
        let error = parse_timezone("ist").unwrap_err().to_string();
        for zone in ["Asia/Kolkata", "Europe/Dublin", "Asia/Jerusalem"] {
            assert!(error.contains(zone), "{error}");
        }
        let error = parse_timezone("XST").unwrap_err().to_string();
        assert!(!error.contains("did you mean"), "{error}");
        assert_eq!(parse_timezone("CET").unwrap().name(), "CET");
    }

    #[test]
    fn a_time_without_its_offset_is_named_as_such() {
        let error = parse_due("2026-12-05T17:00:00", Tz::UTC).unwrap_err().to_string();
        assert!(
            error.contains("has no UTC offset") && error.contains("`2026-12-05 17:00`"),
            "{error}"
        );
        let error = parse_instant("2026-12-05T17:00:00").unwrap_err().to_string();
        assert!(error.contains("has no UTC offset"), "{error}");
        assert!(
            parse_due("2026-12-05T17:00", Tz::UTC).is_ok(),
            "the short local form stays local"
        );
    }

    #[test]
    fn an_address_mailable_needs_an_internet_domain() {
        let parse = |raw: &str, local| Email::parse(raw).and_then(|email| email.mailable(local));
        assert!(parse("frank@school.example", false).is_ok());
        let error = parse("frank@example", false).unwrap_err().to_string();
        assert!(error.contains("its domain `example` has no dot"), "{error}");
        assert!(parse("frank@example.org.", false).is_err());
        assert!(parse("frank@localhost", true).is_ok());
    }

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
    fn a_cutoff_comes_at_or_after_the_due_time() {
        let due = parse_instant("2030-01-01T10:00:00Z").unwrap();
        assert!(check_cutoff(due, due).is_ok());
        assert!(check_cutoff(parse_instant("2030-01-02T10:00:00Z").unwrap(), due).is_ok());
        let error = check_cutoff(parse_instant("2030-01-01T09:59:59Z").unwrap(), due)
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "the cut-off 2030-01-01T09:59:59Z is before the due time 2030-01-01T10:00:00Z: \
             give a cut-off at or after the due time"
        );
    }

    #[test]
    fn durations_have_a_unit_and_a_range() {
        let parse = duration_between(Duration::zero(), Duration::days(365));
        assert_eq!(parse("90d").unwrap(), Duration::days(90));
        assert_eq!(parse("5m").unwrap(), Duration::minutes(5));
        assert_eq!(parse("0s").unwrap(), Duration::zero());
        for bad in ["", "5", "m", "-5m", "5 weeks", "1.5h"] {
            assert!(parse(bad).unwrap_err().starts_with("write a whole number"), "{bad}");
        }
        for too_long in ["366d", "99999999d", "100000000000d", "99999999999999999999s"] {
            assert_eq!(
                parse(too_long).unwrap_err(),
                "out of range: use 0s to 365d",
                "{too_long}"
            );
        }
        assert_eq!(written(Duration::hours(1)), "1h");
        assert_eq!(written(Duration::seconds(90)), "90s");
    }

    #[test]
    fn metadata_must_be_an_object() {
        assert!(parse_metadata(r#"{"course":"CS101"}"#).is_ok());
        assert!(parse_metadata("[1,2]").is_err());
        assert!(parse_metadata("{oops").is_err());
        assert!(parse_metadata(r#"{"course":"CS\u0000101"}"#).is_err());
        assert!(parse_metadata(r#"{"a\u0000":1}"#).is_err());
        assert!(
            parse_metadata(r#"{"path":"C:\\u0000"}"#).is_ok(),
            "a backslash is not a NUL"
        );
    }

    #[test]
    fn names_and_titles_are_one_line_of_text() {
        assert_eq!(parse_name(Some("  Ada ")).unwrap().as_deref(), Some("Ada"));
        assert_eq!(parse_name(Some(" ")).unwrap(), None);
        assert_eq!(parse_title(" Essay ").unwrap(), "Essay");
        assert!(parse_title(" ").is_err());
        for bad in ["A\0B", "\u{1b}[2J", "Tab\there", "two\nlines", "C1\u{9b}"] {
            let error = parse_title(bad).unwrap_err().to_string();
            assert!(error.contains("control character"), "{bad:?}: {error}");
            assert!(parse_name(Some(bad)).is_err(), "{bad:?}");
        }
        assert_eq!(parse_course(Some(" CS101 ")).unwrap().as_deref(), Some("CS101"));
        assert_eq!(parse_course(Some(" ")).unwrap(), None);
        assert!(parse_course(Some("CS\t101")).is_err());
        assert!(parse_description(Some("Line one\n\tLine two\r\n")).is_ok());
        assert!(parse_description(Some("NUL\0")).is_err());
    }
}
