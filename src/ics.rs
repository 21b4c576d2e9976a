//! Reading an iCalendar feed (RFC 5545) as the LMS publishes it: Canvas
//! (`UID:event-assignment-<id>`, DTSTART = DTEND = the due time) and Moodle
//! (`UID:<eventid>@<host>`, CATEGORIES the course). The `icalendar` crate
//! parses (unfolding, escapes, parameters); this module only says what an
//! entry means for an assignment.

use std::str::FromStr;

use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use icalendar::{CalendarComponent, CalendarDateTime, Component, DatePerhapsTime, EventLike};

use crate::error::invalid;

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

/// Reads a whole feed. Text that is not iCalendar is bad input; an entry
/// that cannot be an assignment (recurring, no UID, no date, an unknown
/// zone) is skipped with its reason. A UID listed twice keeps its last entry.
pub fn parse(text: &str) -> anyhow::Result<Feed> {
    if !text.to_ascii_uppercase().contains("BEGIN:VCALENDAR") {
        return Err(invalid("not an iCalendar feed: there is no BEGIN:VCALENDAR"));
    }
    // The crate expects CRLF or LF line ends alike; a lone CR is neither.
    let calendar = icalendar::Calendar::from_str(text)
        .map_err(|error| invalid(format!("not a valid iCalendar feed: {}", first_line(&error))))?;
    let mut feed = Feed::default();
    for component in &calendar.components {
        let (kind, entry) = match component {
            CalendarComponent::Event(event) => ("event", read(event, event.get_start())),
            CalendarComponent::Todo(todo) => ("to-do", read(todo, None)),
            _ => continue,
        };
        match entry {
            Ok(entry) => {
                feed.entries.retain(|earlier| earlier.uid != entry.uid);
                feed.entries.push(entry);
            }
            Err(reason) => feed.skipped.push(format!("{kind} {reason}")),
        }
    }
    Ok(feed)
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

    const CANVAS: &str = include_str!("../tests/data/ics/canvas.ics");
    const MOODLE: &str = include_str!("../tests/data/ics/moodle.ics");

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
