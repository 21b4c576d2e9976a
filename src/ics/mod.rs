//! Reading an iCalendar feed (RFC 5545) as the LMS publishes it: Canvas
//! (`UID:event-assignment-<id>`, DTSTART = DTEND = the due time) and Moodle
//! (`UID:<eventid>@<host>`, CATEGORIES the course). The `icalendar` crate
//! parses (unfolding, escapes, parameters); this module only says what an
//! entry means for an assignment.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use icalendar::{CalendarComponent, CalendarDateTime, Component, DatePerhapsTime, EventLike, Property};
use rrule::{RRule, RRuleSet, Tz as RTz, Unvalidated};

use crate::error::invalid;
use windows_zones::WINDOWS_ZONES;

#[cfg(test)]
mod fuzz;
mod vtimezone;
mod windows_zones;

/// When an entry is due, as the feed wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedDue {
    /// In UTC, or with a TZID that names a zone (IANA, Windows).
    Instant(DateTime<Utc>),
    /// No zone: the student's.
    Floating(NaiveDateTime),
    /// A whole day: due at its end in the student's zone.
    AllDay(NaiveDate),
}

impl FeedDue {
    /// How far `later` is from this one, when both are the same kind of time.
    fn until(&self, later: &FeedDue) -> Option<Duration> {
        match (self, later) {
            (FeedDue::Instant(a), FeedDue::Instant(b)) => Some(*b - *a),
            (FeedDue::Floating(a), FeedDue::Floating(b)) => Some(*b - *a),
            (FeedDue::AllDay(a), FeedDue::AllDay(b)) => Some(*b - *a),
            _ => None,
        }
    }

    fn moved_by(self, shift: Option<Duration>) -> FeedDue {
        let Some(shift) = shift else {
            return self;
        };
        match self {
            FeedDue::Instant(at) => FeedDue::Instant(at + shift),
            FeedDue::Floating(at) => FeedDue::Floating(at + shift),
            FeedDue::AllDay(day) => FeedDue::AllDay(day + Duration::days(shift.num_days())),
        }
    }
}

/// One VEVENT or VTODO, or one occurrence of a recurring one, as an assignment.
#[derive(Debug, Clone)]
pub struct FeedEntry {
    pub uid: String,
    /// A recurring entry's occurrence: its original start as iCalendar
    /// writes it (`20260310T090000Z`, `20260310T090000` floating,
    /// `20260310` all day). A moved occurrence (RECURRENCE-ID) keeps it.
    pub occurrence: Option<String>,
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

impl FeedEntry {
    /// The assignment's external id: the UID, and for an occurrence of a
    /// recurring entry `UID/START`. A one-off keeps the bare UID it has
    /// always had, so the rows of earlier imports still match.
    pub fn external_id(&self) -> String {
        match &self.occurrence {
            Some(start) => format!("{}/{start}", self.uid),
            None => self.uid.clone(),
        }
    }
}

/// A feed's entries, and a one-line reason for each it skipped.
#[derive(Debug, Default)]
pub struct Feed {
    pub entries: Vec<FeedEntry>,
    pub skipped: Vec<String>,
    /// What was read but not all of it (a rule capped at `MAX_OCCURRENCES`).
    pub warnings: Vec<String>,
}

/// The span recurring entries are expanded over: the occurrences that start
/// from `from` (a month ago) to `until` (now + `--horizon`). A one-off entry
/// is read whenever it is due, as before.
#[derive(Debug, Clone, Copy)]
pub struct Horizon {
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

/// The most occurrences read of one recurring entry. A daily rule over the
/// default 180 days is 180; past this a feed is more likely a room's
/// booking calendar than a student's assignments, and each occurrence would
/// be a row with reminders.
pub const MAX_OCCURRENCES: usize = 1_000;

/// The deepest nesting of components read. A feed is VCALENDAR > VEVENT >
/// VALARM; the parser recurses once per level, so this keeps its stack small.
const MAX_DEPTH: usize = 8;

/// The most properties and parameters one entry (with its alarms) may have.
/// A real entry has tens; the parser holds each in a few hundred bytes, so
/// this bounds the memory an entry takes, whatever the feed's size.
const MAX_ITEMS_PER_ENTRY: usize = 10_000;

/// Reads a whole feed. Text that is not iCalendar is bad input; an entry
/// that cannot be an assignment (no UID, no date, an unknown zone, a rule
/// that cannot be expanded) is skipped with its reason. A UID listed twice
/// keeps its last entry. A recurring entry (RRULE, RDATE) becomes one entry
/// per occurrence within `horizon`, less its EXDATEs, each replaced by the
/// entry of the same UID whose RECURRENCE-ID names it.
///
/// The structure is checked by a linear scan first (nesting, balance, size
/// of each entry), then each VEVENT and VTODO is parsed on its own: the
/// recursive parser never sees more than one bounded entry at a time.
pub fn parse(text: &str, horizon: Horizon) -> anyhow::Result<Feed> {
    let unfolded = icalendar::parser::unfold(text);
    let (entries, vtimezones) = entries_of(&unfolded)?;
    let zones = vtimezone::zones_defined(&vtimezones, horizon.from);
    let mut feed = Feed::default();
    let mut masters: Vec<Read> = Vec::new();
    let mut master_at: HashMap<String, usize> = HashMap::new();
    let mut overrides: Vec<Read> = Vec::new();
    for source in entries {
        let calendar: icalendar::Calendar = icalendar::parser::read_calendar(source)
            .map_err(|error| invalid(format!("not a valid iCalendar feed: {}", first_line(&error))))?
            .into();
        for component in &calendar.components {
            let (kind, read) = match component {
                CalendarComponent::Event(event) => ("event", read(event, event.get_start(), &zones)),
                CalendarComponent::Todo(todo) => ("to-do", read(todo, None, &zones)),
                _ => continue,
            };
            match read {
                Ok(read) if read.recurrence_id.is_some() => overrides.push(read),
                Ok(read) => match master_at.get(&read.entry.uid) {
                    Some(&at) => masters[at] = read,
                    None => {
                        master_at.insert(read.entry.uid.clone(), masters.len());
                        masters.push(read);
                    }
                },
                Err(reason) => feed.skipped.push(format!("{kind} {reason}")),
            }
        }
    }
    // A moved or changed occurrence, by its UID and the start it replaces.
    let mut moved: HashMap<(String, String), FeedEntry> = HashMap::new();
    let mut from_here_on: HashSet<(String, String)> = HashSet::new();
    for read in overrides {
        let Some(key) = read.recurrence_id.clone() else {
            continue;
        };
        if read.this_and_future {
            from_here_on.insert((read.entry.uid.clone(), key.clone()));
        }
        moved.insert((read.entry.uid.clone(), key), read.entry);
    }
    let mut position: HashMap<String, usize> = HashMap::new();
    let mut push = |feed: &mut Feed, entry: FeedEntry| match position.get(&entry.external_id()) {
        Some(&at) => feed.entries[at] = entry,
        None => {
            position.insert(entry.external_id(), feed.entries.len());
            feed.entries.push(entry);
        }
    };
    for master in masters {
        let Some(rule) = master.rule else {
            push(&mut feed, master.entry);
            continue;
        };
        let entry = master.entry;
        let named = format!("`{}` ({})", entry.title, entry.uid);
        let occurrences = match rule.expand(horizon) {
            Ok(occurrences) => occurrences,
            Err(reason) => {
                feed.skipped.push(format!("event {named} {reason}"));
                continue;
            }
        };
        if occurrences.len() > MAX_OCCURRENCES {
            feed.warnings.push(format!(
                "{named} repeats more than {MAX_OCCURRENCES} times within the horizon: only its first {MAX_OCCURRENCES} occurrences are read"
            ));
        }
        // The latest THISANDFUTURE change so far, and how far it moved its occurrence.
        let mut changed_from_here: Option<(FeedEntry, Option<Duration>)> = None;
        for (key, due) in occurrences.into_iter().take(MAX_OCCURRENCES) {
            let at = (entry.uid.clone(), key.clone());
            let occurrence = match moved.remove(&at) {
                Some(changed) => {
                    if from_here_on.contains(&at) {
                        changed_from_here = Some((changed.clone(), due.until(&changed.due)));
                    }
                    changed
                }
                None => match &changed_from_here {
                    Some((changed, shift)) => FeedEntry {
                        due: due.moved_by(*shift),
                        ..changed.clone()
                    },
                    None => FeedEntry { due, ..entry.clone() },
                },
            };
            push(
                &mut feed,
                FeedEntry {
                    occurrence: Some(key),
                    ..occurrence
                },
            );
        }
        // An occurrence moved into the horizon from outside it (or from a
        // start the rule no longer has) is read where it now is.
        let uid = entry.uid.clone();
        let mut into: Vec<(String, FeedEntry)> = moved
            .extract_if(|(of, _), changed| *of == uid && within(&changed.due, horizon))
            .map(|((_, key), changed)| (key, changed))
            .collect();
        into.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, changed) in into {
            push(
                &mut feed,
                FeedEntry {
                    occurrence: Some(key),
                    ..changed
                },
            );
        }
    }
    // Overrides with no recurring entry of their UID: read as they stand.
    let mut orphans: Vec<((String, String), FeedEntry)> = moved.into_iter().collect();
    orphans.sort_by(|a, b| a.0.cmp(&b.0));
    for ((uid, key), changed) in orphans {
        if !master_at.contains_key(&uid) {
            push(
                &mut feed,
                FeedEntry {
                    occurrence: Some(key),
                    ..changed
                },
            );
        }
    }
    Ok(feed)
}

/// Whether a due time falls within the horizon. A floating or all-day time
/// is taken as UTC here: the student's zone is not known yet, and a few
/// hours at the horizon's ends decide nothing a re-import would not.
fn within(due: &FeedDue, horizon: Horizon) -> bool {
    let instant = due_instant(due, chrono_tz::UTC);
    horizon.from <= instant && instant <= horizon.until
}

/// The text of each VEVENT and VTODO directly inside a VCALENDAR, and of
/// each VTIMEZONE, from an unfolded feed, after checking in one pass that every component ends, in
/// order, within `MAX_DEPTH` levels, and that no entry is larger than
/// `MAX_ITEMS_PER_ENTRY`. A truncated feed fails here, so it never reads as
/// a complete one (which `--remove-missing` would trust).
fn entries_of(unfolded: &str) -> anyhow::Result<(Vec<&str>, Vec<&str>)> {
    let bad = |what: String| invalid(format!("not a valid iCalendar feed: {what}"));
    let mut open: Vec<&str> = Vec::new();
    let mut calendars = 0;
    let mut entries = Vec::new();
    let mut timezones = Vec::new();
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
            if open.len() == 1 && in_calendar && name.eq_ignore_ascii_case("VTIMEZONE") {
                timezones.push(&unfolded[entry_start..offset]);
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
    Ok((entries, timezones))
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

/// An entry as read: the assignment (for a recurring one, its first
/// occurrence), the occurrence it replaces when it has a RECURRENCE-ID, and
/// its rule when it repeats.
struct Read {
    entry: FeedEntry,
    recurrence_id: Option<String>,
    /// `RECURRENCE-ID;RANGE=THISANDFUTURE`: the change holds for every later
    /// occurrence too, moved by as much as this one.
    this_and_future: bool,
    rule: Option<Rule>,
}

/// A time of the feed with its zone resolved.
#[derive(Debug, Clone, Copy)]
enum Moment {
    /// With the zone its wall clock is in (UTC for a `Z` time), which a rule
    /// repeats in: 09:00 stays 09:00 across a change of the clocks.
    Instant(DateTime<Utc>, Tz),
    Floating(NaiveDateTime),
    Date(NaiveDate),
}

impl Moment {
    fn due(self) -> FeedDue {
        match self {
            Moment::Instant(instant, _) => FeedDue::Instant(instant),
            Moment::Floating(local) => FeedDue::Floating(local),
            Moment::Date(date) => FeedDue::AllDay(date),
        }
    }

    /// This time on the clock `start` repeats on, as the `rrule` crate takes
    /// it. A floating or all-day rule has no zone yet (it is the
    /// student's), so it runs on UTC as a stand-in for "any wall clock":
    /// the crate sees no change of the clocks there, and none is wanted.
    fn on_clock_of(self, start: Moment) -> DateTime<RTz> {
        match start {
            Moment::Instant(_, zone) => {
                let instant = match self {
                    Moment::Instant(instant, _) => instant,
                    Moment::Floating(local) => local_instant(local, zone),
                    Moment::Date(date) => local_instant(date.and_time(start.wall_time()), zone),
                };
                instant.with_timezone(&RTz::Tz(zone))
            }
            Moment::Floating(_) | Moment::Date(_) => {
                let local = match self {
                    Moment::Instant(instant, zone) => instant.with_timezone(&zone).naive_local(),
                    Moment::Floating(local) => local,
                    Moment::Date(date) => date.and_time(start.wall_time()),
                };
                let local = match start {
                    Moment::Date(_) => local.date().and_time(NaiveTime::MIN),
                    _ => local,
                };
                RTz::UTC.from_utc_datetime(&local)
            }
        }
    }

    fn wall_time(self) -> NaiveTime {
        match self {
            Moment::Instant(instant, zone) => instant.with_timezone(&zone).time(),
            Moment::Floating(local) => local.time(),
            Moment::Date(_) => NaiveTime::MIN,
        }
    }

    /// A time on this start's clock, back as a due time, and the key of the
    /// occurrence: its start as iCalendar writes it, in UTC when it has a
    /// zone so that no zone name is part of an external id.
    fn occurrence(self, at: DateTime<RTz>) -> (String, FeedDue) {
        match self {
            Moment::Instant(..) => {
                let instant = at.with_timezone(&Utc);
                (instant.format("%Y%m%dT%H%M%SZ").to_string(), FeedDue::Instant(instant))
            }
            Moment::Floating(_) => {
                let local = at.naive_utc();
                (local.format("%Y%m%dT%H%M%S").to_string(), FeedDue::Floating(local))
            }
            Moment::Date(_) => {
                let date = at.naive_utc().date();
                (date.format("%Y%m%d").to_string(), FeedDue::AllDay(date))
            }
        }
    }
}

/// How an entry repeats: DTSTART, RRULE, RDATE and EXDATE, its zones
/// resolved, and how long after each start the entry is due (DUE − DTSTART).
#[derive(Debug, Clone)]
struct Rule {
    start: Moment,
    rrule: Option<String>,
    rdates: Vec<Moment>,
    exdates: Vec<Moment>,
    due_after: Duration,
}

impl Rule {
    /// The occurrences within `horizon`, earliest first, as (key, due): at
    /// most one more than `MAX_OCCURRENCES`, so that going past it shows.
    fn expand(&self, horizon: Horizon) -> Result<Vec<(String, FeedDue)>, String> {
        let start = self.start.on_clock_of(self.start);
        let mut set = match &self.rrule {
            Some(rule) => {
                let rule: RRule<Unvalidated> = until_in_utc(rule, self.start)
                    .parse()
                    .map_err(|error| format!("has an RRULE that cannot be read: {error}"))?;
                rule.build(start)
                    .map_err(|error| format!("has an RRULE that cannot be expanded: {error}"))?
            }
            // RDATE alone: DTSTART is the first occurrence (RFC 5545, 3.8.5.2).
            None => RRuleSet::new(start).rdate(start),
        };
        for rdate in &self.rdates {
            set = set.rdate(rdate.on_clock_of(self.start));
        }
        for exdate in &self.exdates {
            set = set.exdate(exdate.on_clock_of(self.start));
        }
        let from = match self.start {
            Moment::Instant(..) => Moment::Instant(horizon.from, chrono_tz::UTC),
            Moment::Floating(_) => Moment::Floating(horizon.from.naive_utc()),
            // An all-day occurrence today is still due tonight.
            Moment::Date(_) => Moment::Date(horizon.from.date_naive()),
        };
        let until = Moment::Instant(horizon.until, chrono_tz::UTC);
        // Occurrences are read by their start; one whose start is before
        // the horizon but due in it is read too.
        let set = set
            .after(from.on_clock_of(self.start) - self.due_after)
            .before(until.on_clock_of(self.start) - self.due_after);
        // `all` takes a u16; the cap is far below.
        let limit = u16::try_from(MAX_OCCURRENCES + 1).unwrap_or(u16::MAX);
        Ok(set
            .all(limit)
            .dates
            .into_iter()
            .map(|at| {
                let (key, _) = self.start.occurrence(at);
                let (_, due) = self.start.occurrence(at + self.due_after);
                (key, due)
            })
            .collect())
    }
}

/// An RRULE with its UNTIL in UTC, as the `rrule` crate requires of a
/// zoned start (RFC 5545 too; feeds often write it local or as a date).
/// A local or date UNTIL is on the start's clock, a date to its end.
fn until_in_utc(rule: &str, start: Moment) -> String {
    rule.split(';')
        .map(|part| {
            let Some((name, value)) = part.split_once('=') else {
                return part.to_string();
            };
            if !name.trim().eq_ignore_ascii_case("UNTIL") || value.ends_with(['Z', 'z']) {
                return part.to_string();
            }
            let local = NaiveDateTime::parse_from_str(value, "%Y%m%dT%H%M%S").ok().or_else(|| {
                NaiveDate::parse_from_str(value, "%Y%m%d")
                    .ok()
                    .and_then(|date| date.and_hms_opt(23, 59, 59))
            });
            let Some(local) = local else { return part.to_string() };
            let on_clock = match start {
                Moment::Instant(_, zone) => local_instant(local, zone).naive_utc(),
                Moment::Floating(_) | Moment::Date(_) => local,
            };
            format!("UNTIL={}", on_clock.format("%Y%m%dT%H%M%SZ"))
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// An entry as an assignment, or why it cannot be one. `start` is a
/// VEVENT's DTSTART, the due time when it has no DUE, and the start of its
/// occurrences when it repeats.
fn read(
    component: &impl EventLike,
    start: Option<DatePerhapsTime>,
    zones: &HashMap<String, Tz>,
) -> Result<Read, String> {
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
    let start = match &start {
        Some(start) => Some(moment(start.clone(), zones).map_err(|what| named(&what))?),
        None => None,
    };
    let due = match component
        .properties()
        .get("DUE")
        .and_then(DatePerhapsTime::from_property)
    {
        Some(due) => Some(moment(due, zones).map_err(|what| named(&what))?),
        None => None,
    };
    let when = due.or(start).ok_or_else(|| named("has no due date (DUE or DTSTART)"))?;
    let dates = |key: &str| -> Result<Vec<Moment>, String> {
        let mut moments = Vec::new();
        for property in component.multi_properties().get(key).into_iter().flatten() {
            for value in property.value().split(',').map(str::trim).filter(|v| !v.is_empty()) {
                // An RDATE may be a PERIOD (`start/end` or `start/duration`):
                // the occurrence is its start.
                let (value, period) = value.split_once('/').map_or((value, false), |(start, _)| (start, true));
                let mut one = Property::new(key, value);
                for (name, parameter) in property.params() {
                    if !(period && name.eq_ignore_ascii_case("VALUE")) {
                        one.add_parameter(name, parameter.value());
                    }
                }
                let date = DatePerhapsTime::from_property(&one)
                    .ok_or_else(|| named(&format!("has an {key} `{value}` that is not a date or a time")))?;
                moments.push(moment(date, zones).map_err(|what| named(&what))?);
            }
        }
        Ok(moments)
    };
    let rrule = component.property_value("RRULE").map(str::trim).map(String::from);
    let rdates = dates("RDATE")?;
    let rule = match (rrule.is_some() || !rdates.is_empty(), start) {
        (false, _) => None,
        (true, None) => return Err(named("repeats but has no DTSTART to repeat from")),
        (true, Some(start)) => {
            let start_at = start.on_clock_of(start);
            let due_after = due.map_or(Duration::zero(), |due| due.on_clock_of(start) - start_at);
            Some(Rule {
                start,
                rrule,
                rdates,
                exdates: dates("EXDATE")?,
                due_after,
            })
        }
    };
    let recurrence_id = match component.get_recurrence_id() {
        Some(id) => {
            let id = moment(id, zones).map_err(|what| named(&what))?;
            Some(id.occurrence(id.on_clock_of(id)).0)
        }
        None => None,
    };
    let text = |key: &str| {
        component
            .property_value(key)
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .map(String::from)
    };
    let entry = FeedEntry {
        title: title.clone(),
        occurrence: None,
        due: when.due(),
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
    };
    let this_and_future = component
        .properties()
        .get("RECURRENCE-ID")
        .and_then(|property| property.params().get("RANGE"))
        .is_some_and(|range| range.value().eq_ignore_ascii_case("THISANDFUTURE"));
    Ok(Read {
        entry,
        recurrence_id,
        this_and_future,
        rule,
    })
}

/// A time of the feed with its zone resolved, or why it cannot be.
/// `zones` are the feed's own VTIMEZONEs, by TZID, as the zone each matches.
fn moment(when: DatePerhapsTime, zones: &HashMap<String, Tz>) -> Result<Moment, String> {
    Ok(match when {
        DatePerhapsTime::Date(date) => Moment::Date(date),
        DatePerhapsTime::DateTime(CalendarDateTime::Utc(instant)) => Moment::Instant(instant, chrono_tz::UTC),
        DatePerhapsTime::DateTime(CalendarDateTime::Floating(local)) => Moment::Floating(local),
        DatePerhapsTime::DateTime(CalendarDateTime::WithTimezone { date_time, tzid }) => {
            let zone = zone_named(&tzid)
                .or_else(|| zones.get(tzid.trim().trim_matches('"')).copied())
                .ok_or_else(|| {
                    format!(
                        "is in the time zone `{tzid}`, which is neither an IANA zone nor a Windows zone, \
                         and which no VTIMEZONE of the feed defines as a known zone"
                    )
                })?;
            Moment::Instant(local_instant(date_time, zone), zone)
        }
    })
}

/// The zone a TZID names: an IANA name (some producers write the
/// "globally unique" `/Europe/London`), else a Windows name as Outlook and
/// Exchange write them, by CLDR's table. Any other name is read from the
/// feed's VTIMEZONE (`vtimezone`).
pub(crate) fn zone_named(tzid: &str) -> Option<Tz> {
    let name = tzid.trim().trim_matches('"').trim_start_matches('/');
    name.parse().ok().or_else(|| {
        WINDOWS_ZONES
            .iter()
            .find(|(windows, _)| windows.eq_ignore_ascii_case(name))
            .and_then(|(_, iana)| iana.parse().ok())
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
    const OUTLOOK: &str = include_str!("../../tests/data/ics/outlook.ics");
    const PROBLEMS: &str = "040000008200E00074C5B7101A82E00800000000A0B1C2D3E4F5DA0100000000000000001000000011223344556677889900AABBCCDDEEFF";
    const LAB: &str = "040000008200E00074C5B7101A82E00800000000B1C2D3E4F5A6DA0100000000000000001000000022334455667788990011AABBCCDDEEFF";
    const QUIZ: &str = "040000008200E00074C5B7101A82E00800000000C2D3E4F5A6B7DA0100000000000000001000000033445566778899001122AABBCCDDEEFF";

    fn entry<'a>(feed: &'a Feed, uid: &str) -> &'a FeedEntry {
        feed.entries
            .iter()
            .find(|e| e.uid == uid)
            .unwrap_or_else(|| panic!("{uid}"))
    }

    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    /// 180 days from a week before the fixtures' assignments are due.
    fn horizon() -> Horizon {
        from(utc("2026-11-20T00:00:00Z"))
    }

    fn from(now: DateTime<Utc>) -> Horizon {
        Horizon {
            from: now,
            until: now + Duration::days(180),
        }
    }

    #[test]
    fn a_canvas_feed_reads_as_its_assignments() {
        let feed = parse(CANVAS, horizon()).unwrap();
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
        // The weekly office hours (COUNT=10): one entry per occurrence.
        let office: Vec<String> = feed
            .entries
            .iter()
            .filter(|e| e.uid == "event-calendar-event-900")
            .map(FeedEntry::external_id)
            .collect();
        assert_eq!(office.len(), 10, "{office:?}");
        assert_eq!(office[0], "event-calendar-event-900/20261124T150000Z");
        assert_eq!(office[9], "event-calendar-event-900/20270126T150000Z");
        assert_eq!(
            essay.external_id(),
            "event-assignment-345",
            "a one-off keeps its bare UID"
        );
        assert!(feed.skipped.is_empty(), "{:?}", feed.skipped);
    }

    #[test]
    fn a_moodle_feed_reads_with_its_zones_categories_and_todos() {
        let feed = parse(MOODLE, horizon()).unwrap();
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
            assert!(parse(text, horizon()).is_err(), "{text:?}");
        }
        let lf_only = CANVAS.replace("\r\n", "\n");
        assert_eq!(
            parse(&lf_only, horizon()).unwrap().entries.len(),
            parse(CANVAS, horizon()).unwrap().entries.len()
        );
    }

    #[test]
    fn nesting_and_entry_size_are_checked_before_parsing() {
        let deep = format!(
            "BEGIN:VCALENDAR\r\n{}{}END:VCALENDAR\r\n",
            "BEGIN:X\r\n".repeat(10_000),
            "END:X\r\n".repeat(10_000)
        );
        let error = parse(&deep, horizon()).unwrap_err().to_string();
        assert!(error.contains("nest more than 8 deep"), "{error}");
        let bomb = CANVAS.replacen("DTSTART:", &format!("DTSTART{}:", ";X=a".repeat(20_000)), 1);
        let error = parse(&bomb, horizon()).unwrap_err().to_string();
        assert!(error.contains("properties and parameters"), "{error}");
        // Semicolons in a value, or in a quoted parameter, are not parameters.
        let quoted = CANVAS.replacen("DTSTART:", &format!("DTSTART;X=\"{}\":", ";".repeat(20_000)), 1);
        assert_eq!(parameters_in(&format!("DESCRIPTION;LANGUAGE=en:{}", ";".repeat(50))), 1);
        assert!(parse(&quoted, horizon()).is_ok());
    }

    #[test]
    fn a_feed_cut_short_or_out_of_order_is_bad_input() {
        let cut = &CANVAS[..CANVAS.rfind("END:VEVENT").unwrap()];
        let error = parse(cut, horizon()).unwrap_err().to_string();
        assert!(error.contains("never ends"), "{error}");
        let crossed = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nEND:VCALENDAR\r\nEND:VEVENT\r\n";
        assert!(parse(crossed, horizon()).unwrap_err().to_string().contains("closes"));
    }

    #[test]
    fn a_uid_listed_twice_keeps_its_last_entry() {
        let twice = CANVAS.replacen("END:VCALENDAR", "BEGIN:VEVENT\r\nUID:event-assignment-345\r\nSUMMARY:Moved\r\nDTSTART:20261201T120000Z\r\nEND:VEVENT\r\nEND:VCALENDAR", 1);
        let feed = parse(&twice, horizon()).unwrap();
        assert_eq!(feed.entries.len(), parse(CANVAS, horizon()).unwrap().entries.len());
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
                let _ = parse(&text, horizon());
            }
        }
    }

    /// The instants of a UID's occurrences, by external id.
    fn occurrences(feed: &Feed, uid: &str) -> Vec<(String, FeedDue)> {
        feed.entries
            .iter()
            .filter(|e| e.uid == uid)
            .map(|e| (e.external_id(), e.due.clone()))
            .collect()
    }

    /// The feed without its VTIMEZONE components, as some exports send it.
    fn without_vtimezones(text: &str) -> String {
        let mut out = String::new();
        let mut inside = false;
        for line in text.split_inclusive("\r\n") {
            if line.starts_with("BEGIN:VTIMEZONE") {
                inside = true;
            }
            if !inside {
                out.push_str(line);
            }
            if line.starts_with("END:VTIMEZONE") {
                inside = false;
            }
        }
        out
    }

    #[test]
    fn every_windows_zone_in_the_table_is_a_zone_chrono_tz_knows() {
        for (windows, iana) in WINDOWS_ZONES {
            assert!(iana.parse::<Tz>().is_ok(), "{windows} → {iana}");
        }
        assert!(WINDOWS_ZONES.windows(2).all(|pair| pair[0].0 < pair[1].0), "sorted");
        assert_eq!(zone_named("Eastern Standard Time"), Some(chrono_tz::America::New_York));
        assert_eq!(zone_named("w. europe standard time"), Some(chrono_tz::Europe::Berlin));
        assert_eq!(zone_named("\"/Europe/London\""), Some(chrono_tz::Europe::London));
        assert_eq!(zone_named("Mars Standard Time"), None);
    }

    #[test]
    fn an_outlook_feed_reads_its_windows_zones_with_or_without_vtimezone() {
        for text in [OUTLOOK.to_string(), without_vtimezones(OUTLOOK)] {
            let feed = parse(&text, horizon()).unwrap();
            // W. Europe Standard Time is Berlin: 17:00 CET is 16:00 UTC.
            let lab = entry(&feed, LAB);
            assert_eq!(lab.due, FeedDue::Instant(utc("2026-12-04T16:00:00Z")));
            assert_eq!(lab.external_id(), LAB, "a one-off keeps its bare UID");
            // An unknown zone is no silent UTC: the event is skipped, named.
            assert_eq!(feed.skipped.len(), 1, "{:?}", feed.skipped);
            let reason = &feed.skipped[0];
            assert!(
                reason.contains("`Field trip`") && reason.contains("`Mars Standard Time`"),
                "{reason}"
            );
        }
    }

    #[test]
    fn a_weekly_rule_expands_in_its_own_zone_less_exdates_with_rdates_and_moves() {
        let feed = parse(OUTLOOK, horizon()).unwrap();
        let problems = occurrences(&feed, PROBLEMS);
        let id = |start: &str| format!("{PROBLEMS}/{start}");
        let ids: Vec<&str> = problems.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(problems.len(), 18, "{ids:#?}");
        // 3, 10 and 17 November are before the horizon; the EXDATEs are gone.
        for gone in ["20261117T140000Z", "20261222T140000Z", "20261229T140000Z"] {
            assert!(!ids.contains(&id(gone).as_str()), "{gone}: {ids:#?}");
        }
        let due = |start: &str| {
            problems
                .iter()
                .find(|(at, _)| *at == id(start))
                .map(|(_, due)| due.clone())
                .unwrap_or_else(|| panic!("{start}: {ids:#?}"))
        };
        // The moved occurrence keeps the id of the start it replaces.
        assert_eq!(due("20261124T140000Z"), FeedDue::Instant(utc("2026-11-23T14:00:00Z")));
        let moved = feed
            .entries
            .iter()
            .find(|e| e.external_id() == id("20261124T140000Z"))
            .unwrap();
        assert_eq!(moved.title, "Problem set (moved)");
        // The RDATE, a Friday.
        assert_eq!(due("20261127T140000Z"), FeedDue::Instant(utc("2026-11-27T14:00:00Z")));
        // 09:00 in New York on either side of 14 March 2027; UNTIL is the last.
        assert_eq!(due("20270309T140000Z"), FeedDue::Instant(utc("2027-03-09T14:00:00Z")));
        assert_eq!(due("20270316T130000Z"), FeedDue::Instant(utc("2027-03-16T13:00:00Z")));
        assert_eq!(problems.last().unwrap().0, id("20270330T130000Z"));
    }

    #[test]
    fn a_change_to_this_and_future_occurrences_holds_for_the_later_ones() {
        let feed = "BEGIN:VCALENDAR\r\n\
            BEGIN:VEVENT\r\nUID:lab\r\nSUMMARY:Lab\r\nDTSTART:20261201T100000Z\r\nRRULE:FREQ=WEEKLY;COUNT=4\r\n\
            RDATE;VALUE=PERIOD:20261203T100000Z/20261203T120000Z\r\nEND:VEVENT\r\n\
            BEGIN:VEVENT\r\nUID:lab\r\nSUMMARY:Lab (new room)\r\nRECURRENCE-ID;RANGE=THISANDFUTURE:20261215T100000Z\r\n\
            DTSTART:20261215T110000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let feed = parse(feed, from(utc("2026-11-30T00:00:00Z"))).unwrap();
        let lab: Vec<(String, String, FeedDue)> = feed
            .entries
            .iter()
            .map(|e| (e.external_id(), e.title.clone(), e.due.clone()))
            .collect();
        let at = |t: &str| FeedDue::Instant(utc(t));
        assert_eq!(
            lab,
            [
                ("lab/20261201T100000Z".into(), "Lab".into(), at("2026-12-01T10:00:00Z")),
                // An RDATE given as a PERIOD occurs at its start.
                ("lab/20261203T100000Z".into(), "Lab".into(), at("2026-12-03T10:00:00Z")),
                ("lab/20261208T100000Z".into(), "Lab".into(), at("2026-12-08T10:00:00Z")),
                // From 15 December on, an hour later and in the new room.
                (
                    "lab/20261215T100000Z".into(),
                    "Lab (new room)".into(),
                    at("2026-12-15T11:00:00Z")
                ),
                (
                    "lab/20261222T100000Z".into(),
                    "Lab (new room)".into(),
                    at("2026-12-22T11:00:00Z")
                ),
            ]
        );
    }

    #[test]
    fn an_unbounded_rule_stops_at_the_horizon() {
        let feed = parse(OUTLOOK, horizon()).unwrap();
        let quiz = occurrences(&feed, QUIZ);
        // Every other week, Monday and Thursday, 30 November to 17 May.
        assert_eq!(quiz.len(), 25, "{quiz:#?}");
        assert_eq!(quiz[0].0, format!("{QUIZ}/20261130T070000Z"));
        assert_eq!(quiz[1].0, format!("{QUIZ}/20261203T070000Z"));
        // 08:00 in Berlin is 06:00 UTC after 28 March.
        assert_eq!(quiz[24].0, format!("{QUIZ}/20270517T060000Z"));
        // Two weeks on: 30 November and 3 December are past; 20 and 31 May are in.
        let later = parse(OUTLOOK, from(utc("2026-12-04T00:00:00Z"))).unwrap();
        let quiz = occurrences(&later, QUIZ);
        assert_eq!(quiz[0].0, format!("{QUIZ}/20261214T070000Z"));
        assert_eq!(quiz.len(), 25, "{quiz:#?}");
    }

    #[test]
    fn a_rule_past_the_cap_is_read_to_the_cap_with_a_warning() {
        let daily = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:daily\r\nSUMMARY:Journal\r\nDTSTART;VALUE=DATE:20261101\r\nRRULE:FREQ=DAILY;INTERVAL=1\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let long = Horizon {
            from: utc("2026-11-20T00:00:00Z"),
            until: utc("2030-11-20T00:00:00Z"),
        };
        let feed = parse(daily, long).unwrap();
        assert_eq!(feed.entries.len(), MAX_OCCURRENCES);
        assert_eq!(feed.entries[0].external_id(), "daily/20261120");
        assert_eq!(
            feed.entries[0].due,
            FeedDue::AllDay(NaiveDate::from_ymd_opt(2026, 11, 20).unwrap())
        );
        assert_eq!(feed.warnings.len(), 1, "{:?}", feed.warnings);
        assert!(feed.warnings[0].contains("`Journal` (daily)"), "{:?}", feed.warnings);
        // Within the cap, no warning; COUNT ends it too (20 to 30 November).
        let counted = daily.replace("INTERVAL=1", "COUNT=30");
        let feed = parse(&counted, long).unwrap();
        assert_eq!((feed.entries.len(), feed.warnings.len()), (11, 0));
    }

    #[test]
    fn floating_rules_and_local_untils_stay_on_the_wall_clock() {
        let floating = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:f\r\nSUMMARY:Lab\r\nDTSTART:20261123T090000\r\nRRULE:FREQ=WEEKLY;UNTIL=20261207\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let feed = parse(floating, horizon()).unwrap();
        let ids: Vec<String> = feed.entries.iter().map(FeedEntry::external_id).collect();
        assert_eq!(ids, ["f/20261123T090000", "f/20261130T090000", "f/20261207T090000"]);
        assert!(matches!(feed.entries[0].due, FeedDue::Floating(_)));
        // A zoned start with a date UNTIL (not RFC 5545, but written): to the end of that day.
        let zoned = floating.replace("DTSTART:", "DTSTART;TZID=Eastern Standard Time:");
        let feed = parse(&zoned, horizon()).unwrap();
        assert_eq!(feed.entries.len(), 3, "{:?}", feed.skipped);
        assert_eq!(feed.entries[2].external_id(), "f/20261207T140000Z");
        // A rule the crate refuses is a skipped entry, named.
        let bad = floating.replace("FREQ=WEEKLY", "FREQ=FORTNIGHTLY");
        let feed = parse(&bad, horizon()).unwrap();
        assert!(feed.entries.is_empty());
        assert!(feed.skipped[0].contains("`Lab` (f)"), "{:?}", feed.skipped);
    }
}
