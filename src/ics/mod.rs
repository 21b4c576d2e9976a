//! Reading an iCalendar feed (RFC 5545) as the LMS publishes it: Canvas
//! (`UID:event-assignment-<id>`, DTSTART = DTEND = the due time) and Moodle
//! (`UID:<eventid>@<host>`, CATEGORIES the course). The `icalendar` crate
//! parses (unfolding, escapes, parameters); this module only says what an
//! entry means for an assignment.

use std::collections::HashMap;

use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use icalendar::{CalendarComponent, CalendarDateTime, Component, DatePerhapsTime, EventLike};

use crate::error::invalid;

#[cfg(test)]
mod fuzz;

/// When an entry is due, as the feed wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedDue {
    /// In UTC, or with a TZID that names an IANA zone.
    Instant(DateTime<Utc>),
    /// No zone: the student's.
    Floating(NaiveDateTime),
    /// A whole day: due at its end in the student's zone.
    AllDay(NaiveDate),
}

/// One VEVENT or VTODO, as an assignment.
#[derive(Debug, Clone)]
pub struct FeedEntry {
    pub uid: String,
    pub title: String,
    /// VTODO: DUE; VEVENT: DUE if present, else DTSTART.
    pub due: FeedDue,
    pub description: Option<String>,
    pub url: Option<String>,
    pub categories: Vec<String>,
    pub location: Option<String>,
    /// Upper case: CANCELLED, COMPLETED, CONFIRMED, NEEDS-ACTION…
    pub status: Option<String>,
}

/// A feed's entries, and a one-line reason for each it skipped.
#[derive(Debug, Default)]
pub struct Feed {
    pub entries: Vec<FeedEntry>,
    pub skipped: Vec<String>,
}

/// The deepest nesting of components read. A feed is VCALENDAR > VEVENT >
/// VALARM; the parser recurses once per level, so this keeps its stack small.
const MAX_DEPTH: usize = 8;

/// The most properties and parameters one entry (with its alarms) may have.
/// A real entry has tens; the parser holds each in a few hundred bytes, so
/// this bounds the memory an entry takes, whatever the feed's size.
const MAX_ITEMS_PER_ENTRY: usize = 10_000;

/// Reads a whole feed. Text that is not iCalendar is bad input; an entry
/// that cannot be an assignment (recurring, no UID, no date, an unknown
/// zone) is skipped with its reason. A UID listed twice keeps its last entry.
///
/// The structure is checked by a linear scan first (nesting, balance, size
/// of each entry), then each VEVENT and VTODO is parsed on its own: the
/// recursive parser never sees more than one bounded entry at a time.
pub fn parse(text: &str) -> anyhow::Result<Feed> {
    let unfolded = icalendar::parser::unfold(text);
    let entries = entries_of(&unfolded)?;
    let mut feed = Feed::default();
    let mut position: HashMap<String, usize> = HashMap::new();
    for source in entries {
        let calendar: icalendar::Calendar = icalendar::parser::read_calendar(source)
            .map_err(|error| invalid(format!("not a valid iCalendar feed: {}", first_line(&error))))?
            .into();
        for component in &calendar.components {
            let (kind, entry) = match component {
                CalendarComponent::Event(event) => ("event", read(event, event.get_start())),
                CalendarComponent::Todo(todo) => ("to-do", read(todo, None)),
                _ => continue,
            };
            match entry {
                Ok(entry) => match position.get(&entry.uid) {
                    Some(&at) => feed.entries[at] = entry,
                    None => {
                        position.insert(entry.uid.clone(), feed.entries.len());
                        feed.entries.push(entry);
                    }
                },
                Err(reason) => feed.skipped.push(format!("{kind} {reason}")),
            }
        }
    }
    Ok(feed)
}

/// The text of each VEVENT and VTODO directly inside a VCALENDAR, from an
/// unfolded feed, after checking in one pass that every component ends, in
/// order, within `MAX_DEPTH` levels, and that no entry is larger than
/// `MAX_ITEMS_PER_ENTRY`. A truncated feed fails here, so it never reads as
/// a complete one (which `--remove-missing` would trust).
fn entries_of(unfolded: &str) -> anyhow::Result<Vec<&str>> {
    let bad = |what: String| invalid(format!("not a valid iCalendar feed: {what}"));
    let mut open: Vec<&str> = Vec::new();
    let mut calendars = 0;
    let mut entries = Vec::new();
    // Where the current child of a VCALENDAR starts, and its items so far.
    let mut entry_start = 0;
    let mut items = 0;
    let mut offset = 0;
    for raw in unfolded.split_inclusive('\n') {
        let start = offset;
        offset += raw.len();
        let line = raw.trim_end_matches(['\r', '\n']);
        if let Some(name) = keyword_value(line, "BEGIN") {
            if open.len() == MAX_DEPTH {
                return Err(bad(format!("its components nest more than {MAX_DEPTH} deep")));
            }
            if open.is_empty() && name.eq_ignore_ascii_case("VCALENDAR") {
                calendars += 1;
            }
            open.push(name);
            if open.len() == 2 {
                entry_start = start;
                items = 0;
            }
        } else if let Some(name) = keyword_value(line, "END") {
            match open.pop() {
                Some(begun) if begun == name => {}
                Some(begun) => return Err(bad(format!("`END:{name}` closes `BEGIN:{begun}`"))),
                None => return Err(bad(format!("`END:{name}` closes nothing"))),
            }
            let in_calendar = open.first().is_some_and(|root| root.eq_ignore_ascii_case("VCALENDAR"));
            if open.len() == 1
                && in_calendar
                && (name.eq_ignore_ascii_case("VEVENT") || name.eq_ignore_ascii_case("VTODO"))
            {
                entries.push(&unfolded[entry_start..offset]);
            }
        } else if open.len() >= 2 {
            items += 1 + parameters_in(line);
            if items > MAX_ITEMS_PER_ENTRY {
                return Err(bad(format!(
                    "an entry has more than {MAX_ITEMS_PER_ENTRY} properties and parameters"
                )));
            }
        }
    }
    if calendars == 0 {
        return Err(invalid("not an iCalendar feed: there is no BEGIN:VCALENDAR"));
    }
    if let Some(name) = open.last() {
        return Err(bad(format!("`BEGIN:{name}` never ends (is the feed cut short?)")));
    }
    Ok(entries)
}

/// `NAME` of a `BEGIN:NAME` or `END:NAME` line, as the parser reads it.
fn keyword_value<'a>(line: &'a str, keyword: &str) -> Option<&'a str> {
    let head = line.as_bytes().get(..keyword.len() + 1)?;
    // Both are ASCII, so the value starts on a char boundary.
    (head[..keyword.len()].eq_ignore_ascii_case(keyword.as_bytes()) && head[keyword.len()] == b':')
        .then(|| &line[keyword.len() + 1..])
}

/// How many parameters a content line has: the `;` before its value's `:`,
/// outside quoted parameter values.
fn parameters_in(line: &str) -> usize {
    let mut quoted = false;
    let mut count = 0;
    for byte in line.bytes() {
        match byte {
            b'"' => quoted = !quoted,
            b';' if !quoted => count += 1,
            b':' if !quoted => break,
            _ => {}
        }
    }
    count
}

/// An entry as an assignment, or why it cannot be one. `start` is a
/// VEVENT's DTSTART, the due time when it has no DUE.
fn read(component: &impl EventLike, start: Option<DatePerhapsTime>) -> Result<FeedEntry, String> {
    let title = component
        .get_summary()
        .map(str::trim)
        .filter(|summary| !summary.is_empty())
        .unwrap_or("(untitled)")
        .to_string();
    let named = |what: &str| format!("`{title}` {what}");
    let uid = component
        .get_uid()
        .map(str::trim)
        .filter(|uid| !uid.is_empty())
        .ok_or_else(|| named("has no UID"))?
        .to_string();
    let named = |what: &str| format!("`{title}` ({uid}) {what}");
    if component.property_value("RRULE").is_some() || component.multi_properties().contains_key("RDATE") {
        return Err(named("repeats (RRULE); recurring events are skipped"));
    }
    let when = component
        .properties()
        .get("DUE")
        .and_then(DatePerhapsTime::from_property)
        .or(start)
        .ok_or_else(|| named("has no due date (DUE or DTSTART)"))?;
    let due = match when {
        DatePerhapsTime::Date(date) => FeedDue::AllDay(date),
        DatePerhapsTime::DateTime(CalendarDateTime::Utc(instant)) => FeedDue::Instant(instant),
        DatePerhapsTime::DateTime(CalendarDateTime::Floating(local)) => FeedDue::Floating(local),
        DatePerhapsTime::DateTime(CalendarDateTime::WithTimezone { date_time, tzid }) => {
            // Some producers write TZID=/Europe/London (the "globally unique" form).
            let zone: Tz = tzid
                .trim_start_matches('/')
                .parse()
                .map_err(|_| named(&format!("is in the time zone `{tzid}`, which is not an IANA zone")))?;
            FeedDue::Instant(local_instant(date_time, zone))
        }
    };
    let text = |key: &str| {
        component
            .property_value(key)
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .map(String::from)
    };
    Ok(FeedEntry {
        title: title.clone(),
        due,
        description: component
            .get_description()
            .map(String::from)
            .filter(|d| !d.trim().is_empty()),
        url: text("URL"),
        categories: component
            .get_categories()
            .unwrap_or_default()
            .into_iter()
            .map(|category| category.trim().to_string())
            .filter(|category| !category.is_empty())
            .collect(),
        location: text("LOCATION"),
        status: text("STATUS").map(|status| status.to_ascii_uppercase()),
        uid,
    })
}

/// The instant a due time means for a student in `zone`.
pub fn due_instant(due: &FeedDue, zone: Tz) -> DateTime<Utc> {
    match due {
        FeedDue::Instant(instant) => *instant,
        FeedDue::Floating(local) => local_instant(*local, zone),
        FeedDue::AllDay(date) => local_instant(
            date.and_time(NaiveTime::from_hms_opt(23, 59, 0).unwrap_or_default()),
            zone,
        ),
    }
}

/// A wall-clock time in `zone`: in a gap (spring forward), the first valid
/// minute after it; when it repeats (fall back), its first occurrence.
fn local_instant(local: NaiveDateTime, zone: Tz) -> DateTime<Utc> {
    let mut probe = local;
    for _ in 0..(24 * 60) {
        match zone.from_local_datetime(&probe) {
            LocalResult::Single(instant) | LocalResult::Ambiguous(instant, _) => return instant.with_timezone(&Utc),
            LocalResult::None => probe += Duration::minutes(1),
        }
    }
    Utc.from_utc_datetime(&local)
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default().trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANVAS: &str = include_str!("../../tests/data/ics/canvas.ics");
    const MOODLE: &str = include_str!("../../tests/data/ics/moodle.ics");

    fn entry<'a>(feed: &'a Feed, uid: &str) -> &'a FeedEntry {
        feed.entries
            .iter()
            .find(|e| e.uid == uid)
            .unwrap_or_else(|| panic!("{uid}"))
    }

    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn a_canvas_feed_reads_as_its_assignments() {
        let feed = parse(CANVAS).unwrap();
        let essay = entry(&feed, "event-assignment-345");
        assert_eq!(essay.title, "Essay draft [ENG101]");
        assert_eq!(essay.due, FeedDue::Instant(utc("2026-11-25T23:59:00Z")));
        assert_eq!(
            essay.url.as_deref(),
            Some("https://canvas.example.edu/courses/12/assignments/345")
        );
        let description = essay.description.as_deref().unwrap();
        assert!(
            description.contains("Read chapters 1, 2 and 3;\nthen write"),
            "{description:?}"
        );
        assert!(
            description.ends_with("no more than 2,000 words."),
            "folded lines are joined: {description:?}"
        );
        assert_eq!(
            entry(&feed, "event-assignment-346").due,
            FeedDue::AllDay(NaiveDate::from_ymd_opt(2026, 11, 27).unwrap())
        );
        assert_eq!(
            entry(&feed, "event-assignment-347").status.as_deref(),
            Some("CANCELLED")
        );
        assert!(feed.entries.iter().all(|e| e.uid != "event-calendar-event-900"));
        assert_eq!(feed.skipped.len(), 1, "{:?}", feed.skipped);
        assert!(feed.skipped[0].contains("recurring"), "{:?}", feed.skipped);
    }

    #[test]
    fn a_moodle_feed_reads_with_its_zones_categories_and_todos() {
        let feed = parse(MOODLE).unwrap();
        let lab = entry(&feed, "4021@moodle.example.edu");
        // 17:00 in London in November is 17:00 UTC.
        assert_eq!(lab.due, FeedDue::Instant(utc("2026-11-26T17:00:00Z")));
        assert_eq!(lab.categories, ["CS101"]);
        assert_eq!(lab.location.as_deref(), Some("Lab 2, Turing Building"));
        let floating = entry(&feed, "4022@moodle.example.edu");
        assert_eq!(
            floating.due,
            FeedDue::Floating(
                NaiveDate::from_ymd_opt(2026, 11, 28)
                    .unwrap()
                    .and_hms_opt(9, 0, 0)
                    .unwrap()
            )
        );
        let todo = entry(&feed, "4023@moodle.example.edu");
        assert_eq!(todo.due, FeedDue::Instant(utc("2026-11-29T12:00:00Z")));
        assert_eq!(todo.status.as_deref(), Some("NEEDS-ACTION"));
        assert!(
            feed.skipped.iter().any(|reason| reason.contains("has no due date")),
            "{:?}",
            feed.skipped
        );
    }

    #[test]
    fn floating_and_all_day_times_are_in_the_students_zone() {
        let la: Tz = "America/Los_Angeles".parse().unwrap();
        let day = NaiveDate::from_ymd_opt(2026, 11, 27).unwrap();
        assert_eq!(due_instant(&FeedDue::AllDay(day), la), utc("2026-11-28T07:59:00Z"));
        assert_eq!(
            due_instant(&FeedDue::Floating(day.and_hms_opt(9, 0, 0).unwrap()), la),
            utc("2026-11-27T17:00:00Z")
        );
        // The day the clocks go back: 23:59 is in standard time again.
        let fall_back = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
        assert_eq!(
            due_instant(&FeedDue::AllDay(fall_back), la),
            utc("2026-11-02T07:59:00Z")
        );
        // 02:30 on the day the clocks go forward does not exist: the next valid minute.
        let gap = NaiveDate::from_ymd_opt(2026, 3, 8)
            .unwrap()
            .and_hms_opt(2, 30, 0)
            .unwrap();
        assert_eq!(due_instant(&FeedDue::Floating(gap), la), utc("2026-03-08T10:00:00Z"));
    }

    #[test]
    fn what_is_not_a_feed_is_bad_input() {
        for text in ["", "hello", "student,title,due\na@example.com,T,2026-01-01\n"] {
            assert!(parse(text).is_err(), "{text:?}");
        }
        let lf_only = CANVAS.replace("\r\n", "\n");
        assert_eq!(
            parse(&lf_only).unwrap().entries.len(),
            parse(CANVAS).unwrap().entries.len()
        );
    }

    #[test]
    fn nesting_and_entry_size_are_checked_before_parsing() {
        let deep = format!(
            "BEGIN:VCALENDAR\r\n{}{}END:VCALENDAR\r\n",
            "BEGIN:X\r\n".repeat(10_000),
            "END:X\r\n".repeat(10_000)
        );
        let error = parse(&deep).unwrap_err().to_string();
        assert!(error.contains("nest more than 8 deep"), "{error}");
        let bomb = CANVAS.replacen("DTSTART:", &format!("DTSTART{}:", ";X=a".repeat(20_000)), 1);
        let error = parse(&bomb).unwrap_err().to_string();
        assert!(error.contains("properties and parameters"), "{error}");
        // Semicolons in a value, or in a quoted parameter, are not parameters.
        let quoted = CANVAS.replacen("DTSTART:", &format!("DTSTART;X=\"{}\":", ";".repeat(20_000)), 1);
        assert_eq!(parameters_in(&format!("DESCRIPTION;LANGUAGE=en:{}", ";".repeat(50))), 1);
        assert!(parse(&quoted).is_ok());
    }

    #[test]
    fn a_feed_cut_short_or_out_of_order_is_bad_input() {
        let cut = &CANVAS[..CANVAS.rfind("END:VEVENT").unwrap()];
        let error = parse(cut).unwrap_err().to_string();
        assert!(error.contains("never ends"), "{error}");
        let crossed = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nEND:VCALENDAR\r\nEND:VEVENT\r\n";
        assert!(parse(crossed).unwrap_err().to_string().contains("closes"));
    }

    #[test]
    fn a_uid_listed_twice_keeps_its_last_entry() {
        let twice = CANVAS.replacen("END:VCALENDAR", "BEGIN:VEVENT\r\nUID:event-assignment-345\r\nSUMMARY:Moved\r\nDTSTART:20261201T120000Z\r\nEND:VEVENT\r\nEND:VCALENDAR", 1);
        let feed = parse(&twice).unwrap();
        assert_eq!(feed.entries.len(), parse(CANVAS).unwrap().entries.len());
        assert_eq!(entry(&feed, "event-assignment-345").title, "Moved");
    }

    #[test]
    fn mangled_feeds_never_panic() {
        let mut rng = fastrand::Rng::with_seed(20261124);
        for source in [CANVAS, MOODLE] {
            let bytes = source.as_bytes();
            for _ in 0..300 {
                let mut mangled = bytes.to_vec();
                for _ in 0..rng.usize(1..8) {
                    let at = rng.usize(..mangled.len());
                    match rng.u8(..3) {
                        0 => mangled[at] = rng.u8(..),
                        1 => {
                            mangled.remove(at);
                        }
                        _ => mangled.insert(at, *rng.choice(b":;=,\\\r\n ").unwrap()),
                    }
                }
                let text = String::from_utf8_lossy(&mangled);
                let _ = parse(&text);
            }
        }
    }
}
