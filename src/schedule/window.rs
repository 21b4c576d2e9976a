//! Send windows: the hours of each weekday, on the recipient's own wall
//! clock, in which a message may reach them (`--send-window`, `user set
//! --send-window`), and the rule that moves a message planned outside them.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, Datelike, Duration, Utc};
use chrono_tz::Tz;
use uuid::Uuid;

use super::local_instant;
use crate::error::invalid;

use super::MINUTES_PER_DAY;
const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// How long before a closed period a reminder that cannot wait for the
/// opening is sent: the last open hour, so it is as near its planned time as
/// the window allows and one cron run in that hour sends it.
const LAST_OPEN_HOUR: Duration = Duration::hours(1);

/// `mon-fri 07:00-21:00; sat,sun 09:00-20:00`: for each weekday (Monday
/// first), its open ranges in minutes since local midnight, sorted, merged,
/// end exclusive. A day with none is closed all day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendWindow {
    days: [Vec<(u16, u16)>; 7],
}

impl SendWindow {
    /// Reads a spec: groups separated by `;`, each a list of days (`mon`,
    /// `mon-fri`, `sat,sun`, or `daily`) and a list of ranges (`07:00-12:00,
    /// 13:00-21:00`; `24:00` ends a range at midnight). Days not named are
    /// closed. Bad input names what is wrong and shows an example.
    pub fn parse(spec: &str) -> anyhow::Result<SendWindow> {
        let example = "like `mon-fri 07:00-21:00; sat,sun 09:00-20:00`";
        let mut days: [Vec<(u16, u16)>; 7] = Default::default();
        for group in spec.split(';').map(str::trim).filter(|group| !group.is_empty()) {
            let split = group.find(|c: char| c.is_ascii_digit()).unwrap_or(group.len());
            let (day_list, range_list) = group.split_at(split);
            if range_list.trim().is_empty() {
                return Err(invalid(format!(
                    "`{group}` in the send window has no hours: give days and hours, {example}"
                )));
            }
            let named = parse_days(day_list).map_err(|error| invalid(format!("{error}, {example}")))?;
            for range in range_list.split(',') {
                let range = parse_range(range).map_err(|error| invalid(format!("{error}, {example}")))?;
                for &day in &named {
                    days[day].push(range);
                }
            }
        }
        if days.iter().all(Vec::is_empty) {
            return Err(invalid(format!(
                "`{spec}` is not a send window: it opens on no day; give days and hours, {example}"
            )));
        }
        for ranges in &mut days {
            ranges.sort_unstable();
            let mut merged: Vec<(u16, u16)> = Vec::with_capacity(ranges.len());
            for &(start, end) in ranges.iter() {
                match merged.last_mut() {
                    Some(last) if start <= last.1 => last.1 = last.1.max(end),
                    _ => merged.push((start, end)),
                }
            }
            *ranges = merged;
        }
        Ok(SendWindow { days })
    }

    /// A person's own window as `user set --send-window` and the imports
    /// take it: a spec, or `always` (also `none` or empty) to follow the
    /// run's `--send-window` again. The canonical text is what is stored.
    pub fn parse_setting(raw: &str) -> anyhow::Result<Option<String>> {
        let wanted = raw.trim();
        if wanted.is_empty() || wanted.eq_ignore_ascii_case("always") || wanted.eq_ignore_ascii_case("none") {
            return Ok(None);
        }
        Ok(Some(SendWindow::parse(wanted)?.to_string()))
    }

    /// The window a person is mailed in: their own, as stored (the text
    /// `parse_setting` wrote), else the run's `default`.
    pub fn own_or(stored: Option<&str>, default: Option<&SendWindow>) -> Option<SendWindow> {
        stored
            .and_then(|spec| SendWindow::parse(spec).ok())
            .or_else(|| default.cloned())
    }

    /// The open periods, as instants, of the local days from `before` days
    /// before `at`'s to `after` days after it, in order; periods that touch
    /// (Sunday to midnight, Monday from it) are joined.
    fn periods(
        &self,
        zone: Tz,
        at: DateTime<Utc>,
        before: i64,
        after: i64,
    ) -> impl Iterator<Item = (DateTime<Utc>, DateTime<Utc>)> + '_ {
        // Lazily, a day at a time: a run asks this of every candidate, and
        // the answer is nearly always within a day or two of `at`.
        let today = at.with_timezone(&zone).date_naive();
        let mut raw = (-before..=after)
            .filter_map(move |offset| today.checked_add_signed(Duration::days(offset)))
            .flat_map(move |date| {
                self.days[date.weekday().num_days_from_monday() as usize]
                    .iter()
                    .map(move |&(start, end)| (local_instant(date, start, zone), local_instant(date, end, zone)))
            })
            .filter(|(start, end)| start < end) // wholly inside a DST gap
            .peekable();
        std::iter::from_fn(move || {
            let (start, mut end) = raw.next()?;
            while let Some(&(next_start, next_end)) = raw.peek() {
                if next_start > end {
                    break;
                }
                end = end.max(next_end);
                raw.next();
            }
            Some((start, end))
        })
    }

    pub fn is_open(&self, at: DateTime<Utc>, zone: Tz) -> bool {
        self.periods(zone, at, 1, 1)
            .take_while(|&(start, _)| start <= at)
            .any(|(_, end)| at < end)
    }

    /// `at` if the window is open then, or the next moment it opens.
    pub fn next_open(&self, at: DateTime<Utc>, zone: Tz) -> DateTime<Utc> {
        self.periods(zone, at, 1, 8)
            .find(|&(_, end)| at < end)
            .map_or(at, |(start, _)| start.max(at))
    }

    /// The open period that last ended at or before `at`.
    fn last_period_before(&self, at: DateTime<Utc>, zone: Tz) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        self.periods(zone, at, 8, 1)
            .take_while(|&(start, _)| start <= at)
            .filter(|&(_, end)| end <= at)
            .last()
    }

    /// Whether a message moved by this window can go within `tolerance` of
    /// `now` for someone in `zone`: a moved message goes at an opening, or in
    /// the last open hour before a closing (`send_time`), so only when one of
    /// those is near does a run need to look beyond its planned times.
    pub fn moves_messages_to(&self, now: DateTime<Utc>, tolerance: Duration, zone: Tz) -> bool {
        let days = tolerance.num_days() + 1;
        let near = |at: DateTime<Utc>| (at - now).abs() <= tolerance;
        self.periods(zone, now, days, days)
            .any(|(start, end)| near(start) || near((end - LAST_OPEN_HOUR).max(start)))
    }

    /// The longest time the window stays closed, as an upper bound (a DST
    /// change can lengthen a night by an hour): how much further than its
    /// planned time a message may move.
    pub fn longest_closed(&self) -> Duration {
        let mut longest = 0i64;
        let mut last_end: Option<i64> = None;
        // Two weeks of wall-clock minutes, so the gap across Sunday night counts.
        for week in 0..2i64 {
            for (day, ranges) in self.days.iter().enumerate() {
                for &(start, end) in ranges {
                    let base = (week * 7 + day as i64) * i64::from(MINUTES_PER_DAY);
                    if let Some(previous) = last_end {
                        longest = longest.max(base + i64::from(start) - previous);
                    }
                    last_end = Some(base + i64::from(end));
                }
            }
        }
        Duration::minutes(longest) + Duration::hours(1)
    }

    /// When a message planned at `planned` goes to someone in `zone`.
    /// `deadline` is the due time of a reminder before it: such a reminder
    /// never arrives after its deadline because of the window, so when the
    /// window opens too late it goes in the last open hour before the closed
    /// period instead. Everything else waits for the opening.
    pub fn send_time(&self, planned: DateTime<Utc>, deadline: Option<DateTime<Utc>>, zone: Tz) -> SendTime {
        let opening = self.next_open(planned, zone);
        if opening == planned {
            return SendTime {
                at: planned,
                shift: None,
            };
        }
        match deadline {
            Some(deadline) if opening >= deadline => match self.last_period_before(planned, zone) {
                Some((start, end)) => SendTime {
                    at: (end - LAST_OPEN_HOUR).max(start),
                    shift: Some(Shift::Early { closes: end }),
                },
                None => SendTime {
                    at: opening,
                    shift: Some(Shift::Waits { opens: opening }),
                },
            },
            _ => SendTime {
                at: opening,
                shift: Some(Shift::Waits { opens: opening }),
            },
        }
    }
}

/// The send windows of a run: `--send-window`, and each person's own,
/// which wins over it.
#[derive(Debug, Clone, Default)]
pub struct SendWindows {
    pub default: Option<SendWindow>,
    pub own: HashMap<Uuid, SendWindow>,
}

impl SendWindows {
    /// The window of the person with this id; `None`, always open.
    pub fn of(&self, person: Uuid) -> Option<&SendWindow> {
        self.own.get(&person).or(self.default.as_ref())
    }

    /// Whether no window is configured at all: every message goes as planned.
    pub fn is_empty(&self) -> bool {
        self.default.is_none() && self.own.is_empty()
    }

    /// How much wider than its target windows a run at `now` must look for
    /// messages whose time has come: as far as a window moves a message
    /// (its longest closed period), but only for the windows that move one
    /// to near `now` in one of `zones` (the zones the people are in). At
    /// most moments of the day none does, and a run reads no more than
    /// without windows.
    pub fn widening_at(&self, now: DateTime<Utc>, tolerance: Duration, zones: &[Tz]) -> Duration {
        let mut seen = std::collections::HashSet::new();
        self.default
            .iter()
            .chain(self.own.values())
            .filter(|window| seen.insert(window.to_string()))
            .filter(|window| zones.iter().any(|&zone| window.moves_messages_to(now, tolerance, zone)))
            .map(SendWindow::longest_closed)
            .max()
            .unwrap_or_else(Duration::zero)
    }
}

/// When a message goes, and why not at its planned time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendTime {
    pub at: DateTime<Utc>,
    pub shift: Option<Shift>,
}

/// Why a message moved from its planned time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shift {
    /// The window is closed then; it opens at `opens`.
    Waits { opens: DateTime<Utc> },
    /// The window opens again only after the deadline, so it goes before
    /// the window closes at `closes`.
    Early { closes: DateTime<Utc> },
}

impl Shift {
    /// Why, in words, with the instants in `zone`.
    pub fn reason(&self, zone: Tz) -> String {
        match self {
            Shift::Waits { opens } => format!(
                "outside the send window: waits for it to open at {}",
                crate::time::local_short(*opens, zone)
            ),
            Shift::Early { closes } => format!(
                "the send window opens only after the deadline: goes before it closes at {}",
                crate::time::local_short(*closes, zone)
            ),
        }
    }
}

impl fmt::Display for SendWindow {
    /// The canonical spec, which `parse` reads back: weekdays with the same
    /// hours grouped, runs of days as ranges.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut done = [false; 7];
        let mut groups = Vec::new();
        for day in 0..7 {
            if done[day] || self.days[day].is_empty() {
                continue;
            }
            let same: Vec<usize> = (day..7).filter(|&other| self.days[other] == self.days[day]).collect();
            for &other in &same {
                done[other] = true;
            }
            let hours: Vec<String> = self.days[day]
                .iter()
                .map(|&(start, end)| format!("{}-{}", clock(start), clock(end)))
                .collect();
            groups.push(format!("{} {}", day_runs(&same), hours.join(",")));
        }
        f.write_str(&groups.join("; "))
    }
}

/// `0,1,2,3,4` as `mon-fri`; `5,6` as `sat,sun`; all seven as `daily`.
fn day_runs(days: &[usize]) -> String {
    if days.len() == 7 {
        return "daily".to_string();
    }
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for &day in days {
        match runs.last_mut() {
            Some(run) if run.1 + 1 == day => run.1 = day,
            _ => runs.push((day, day)),
        }
    }
    runs.iter()
        .flat_map(|&(first, last)| match last - first {
            0 => vec![DAY_NAMES[first].to_string()],
            1 => vec![DAY_NAMES[first].to_string(), DAY_NAMES[last].to_string()],
            _ => vec![format!("{}-{}", DAY_NAMES[first], DAY_NAMES[last])],
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn clock(minutes: u16) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

fn parse_day(text: &str) -> Option<usize> {
    let text = text.trim().to_ascii_lowercase();
    DAY_NAMES
        .iter()
        .position(|name| text.len() >= 3 && full_day_name(name).starts_with(&text))
}

/// `mon` → `monday`, so `mon`, `mond` and `monday` all name it.
fn full_day_name(short: &str) -> &'static str {
    match short {
        "mon" => "monday",
        "tue" => "tuesday",
        "wed" => "wednesday",
        "thu" => "thursday",
        "fri" => "friday",
        "sat" => "saturday",
        _ => "sunday",
    }
}

fn parse_days(text: &str) -> Result<Vec<usize>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("each part of a send window starts with its days".to_string());
    }
    if ["daily", "every day", "all"].contains(&text.to_ascii_lowercase().as_str()) {
        return Ok((0..7).collect());
    }
    let mut days = Vec::new();
    for item in text.split(',').map(str::trim) {
        let unknown = || format!("`{item}` is not a day or a range of days (mon, mon-fri, sat,sun, daily)");
        match item.split_once('-') {
            Some((first, last)) => {
                let (first, last) = (
                    parse_day(first).ok_or_else(unknown)?,
                    parse_day(last).ok_or_else(unknown)?,
                );
                // `fri-mon` wraps over the weekend.
                let mut day = first;
                loop {
                    days.push(day);
                    if day == last {
                        break;
                    }
                    day = (day + 1) % 7;
                }
            }
            None => days.push(parse_day(item).ok_or_else(unknown)?),
        }
    }
    Ok(days)
}

fn parse_time(text: &str) -> Option<u16> {
    let (hours, minutes) = text.trim().split_once(':')?;
    let digits = |part: &str, widths: std::ops::RangeInclusive<usize>| {
        widths.contains(&part.len()) && part.bytes().all(|b| b.is_ascii_digit())
    };
    if !digits(hours, 1..=2) || !digits(minutes, 2..=2) {
        return None;
    }
    let (hours, minutes): (u16, u16) = (hours.parse().ok()?, minutes.parse().ok()?);
    let total = hours * 60 + minutes;
    (minutes < 60 && total <= MINUTES_PER_DAY).then_some(total)
}

fn parse_range(text: &str) -> Result<(u16, u16), String> {
    let text = text.trim();
    let bad = || format!("`{text}` is not a range of hours such as `07:00-21:00`");
    let (start, end) = text.split_once('-').ok_or_else(bad)?;
    let (start, end) = (parse_time(start).ok_or_else(bad)?, parse_time(end).ok_or_else(bad)?);
    if start >= end {
        return Err(format!(
            "`{text}` ends before it starts: a range ends on its own day (`24:00` for midnight); split a night across two days"
        ));
    }
    Ok((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn a_run_looks_beyond_its_planned_times_whenever_a_moved_message_can_be_due() {
        // Every moved message's send time, for messages planned every 10
        // minutes of a week with a DST change, in three zones, with and
        // without a deadline: a run within the tolerance of it must know.
        let tolerance = Duration::minutes(30);
        for zone in ["UTC", "Europe/Berlin", "Asia/Kolkata"] {
            let zone: Tz = zone.parse().unwrap();
            for window in [school(), SendWindow::parse("mon-fri 15:00-20:00").unwrap()] {
                let mut planned = at("2025-03-27T00:00:00Z");
                while planned < at("2025-04-03T00:00:00Z") {
                    for deadline in [None, Some(planned + Duration::hours(2))] {
                        let sends = window.send_time(planned, deadline, zone);
                        if sends.shift.is_some() {
                            for now in [sends.at - tolerance, sends.at, sends.at + tolerance] {
                                assert!(
                                    window.moves_messages_to(now, tolerance, zone),
                                    "{window} in {zone}: planned {planned}, goes {}, run at {now}",
                                    sends.at
                                );
                            }
                        }
                    }
                    planned += Duration::minutes(10);
                }
            }
        }
        // Mid-morning on a weekday, and in the middle of the night, nothing moved goes.
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        assert!(!school().moves_messages_to(at("2025-01-15T10:00:00Z"), tolerance, berlin));
        assert!(!school().moves_messages_to(at("2025-01-15T01:00:00Z"), tolerance, berlin));
        // The 07:00 opening and the last open hour from 20:00 do.
        assert!(school().moves_messages_to(at("2025-01-15T06:10:00Z"), tolerance, berlin));
        assert!(school().moves_messages_to(at("2025-01-15T19:00:00Z"), tolerance, berlin));
        let windows = SendWindows {
            default: Some(school()),
            own: HashMap::new(),
        };
        assert_eq!(
            windows.widening_at(at("2025-01-15T10:00:00Z"), tolerance, &[berlin]),
            Duration::zero()
        );
        assert_eq!(
            windows.widening_at(at("2025-01-15T06:00:00Z"), tolerance, &[berlin]),
            school().longest_closed()
        );
    }

    fn school() -> SendWindow {
        SendWindow::parse("mon-fri 07:00-21:00; sat,sun 09:00-20:00").unwrap()
    }

    #[test]
    fn specs_read_back_as_written_and_reject_nonsense() {
        assert_eq!(school().to_string(), "mon-fri 07:00-21:00; sat,sun 09:00-20:00");
        let odd = SendWindow::parse("Friday-Mon 18:00-24:00, 08:00-12:00 ; wed 10:00-11:00;wed 10:30-12:00").unwrap();
        assert_eq!(odd.to_string(), "mon,fri-sun 08:00-12:00,18:00-24:00; wed 10:00-12:00");
        assert_eq!(SendWindow::parse(&odd.to_string()).unwrap(), odd);
        assert_eq!(
            SendWindow::parse("daily 08:00-20:00").unwrap().to_string(),
            "daily 08:00-20:00"
        );
        for bad in [
            "",
            "mon-fri",
            "07:00-21:00",
            "mon-fri 21:00-07:00",
            "funday 07:00-09:00",
            "mon 7-9",
            "mon 07:00-25:00",
            "mon 07:60-08:00",
            "mon 07:00-07:00",
        ] {
            assert!(SendWindow::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn open_and_next_opening_follow_the_local_wall_clock() {
        let paris: Tz = "Europe/Paris".parse().unwrap();
        let window = school();
        // Wednesday 2025-01-15 06:00 UTC is 07:00 in Paris: open.
        assert!(window.is_open(at("2025-01-15T06:00:00Z"), paris));
        assert!(!window.is_open(at("2025-01-15T05:59:00Z"), paris));
        assert!(!window.is_open(at("2025-01-15T20:00:00Z"), paris));
        // Friday 21:00 Paris: the next opening is Saturday 09:00.
        assert_eq!(
            window.next_open(at("2025-01-17T20:00:00Z"), paris),
            at("2025-01-18T08:00:00Z")
        );
        // Across the spring change (2025-03-30, 02:00 → 03:00): Sunday opens at 09:00 CEST.
        assert_eq!(
            window.next_open(at("2025-03-29T19:30:00Z"), paris),
            at("2025-03-30T07:00:00Z")
        );
        // Saturday 20:00 to Sunday 09:00 is the longest night.
        assert_eq!(window.longest_closed(), Duration::hours(13 + 1));
        let weekdays = SendWindow::parse("mon-fri 07:00-21:00").unwrap();
        assert_eq!(weekdays.longest_closed(), Duration::hours(58 + 1));
    }

    #[test]
    fn a_reminder_goes_at_the_opening_or_in_the_last_open_hour_before_its_deadline() {
        let utc: Tz = "UTC".parse().unwrap();
        let window = school();
        // Planned 04:00 Wednesday for a 06:00 deadline: the 07:00 opening is too
        // late, so it goes at 20:00 on Tuesday, the last open hour.
        let early = window.send_time(at("2025-01-15T04:00:00Z"), Some(at("2025-01-15T06:00:00Z")), utc);
        assert_eq!(early.at, at("2025-01-14T20:00:00Z"));
        assert_eq!(
            early.shift,
            Some(Shift::Early {
                closes: at("2025-01-14T21:00:00Z")
            })
        );
        // Planned 05:30 for 07:30: the opening at 07:00 is before the deadline.
        let waits = window.send_time(at("2025-01-15T05:30:00Z"), Some(at("2025-01-15T07:30:00Z")), utc);
        assert_eq!(waits.at, at("2025-01-15T07:00:00Z"));
        // An overdue notice planned at night waits for the morning.
        let overdue = window.send_time(at("2025-01-15T23:30:00Z"), None, utc);
        assert_eq!(overdue.at, at("2025-01-16T07:00:00Z"));
        // In the window: as planned.
        let planned = at("2025-01-15T12:00:00Z");
        assert_eq!(
            window.send_time(planned, Some(at("2025-01-15T14:00:00Z")), utc),
            SendTime {
                at: planned,
                shift: None
            }
        );
    }
}
