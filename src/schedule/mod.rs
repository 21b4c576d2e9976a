//! The time rules of sending, as pure functions: target windows (before the
//! due time, and overdue steps after it), which of two nearby targets wins,
//! the delivery window, and the hour of a daily summary.

use std::fmt;

use chrono::{DateTime, Duration, LocalResult, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

use crate::error::invalid;
use crate::time::saturating_add;

pub mod window;

use window::{SendTime, SendWindow};

const MINUTES_PER_DAY: u16 = 24 * 60;

/// Whether targets count minutes (the spec's test mode) or hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Unit {
    Minutes,
    Hours,
}

impl Unit {
    /// The default half-width of a target window. Minutes mode follows the spec
    /// (1 minute). In hours mode 30 minutes makes back-to-back windows cover any
    /// cron interval up to an hour, so nothing falls between two runs.
    pub fn default_tolerance(self) -> Duration {
        match self {
            Unit::Minutes => Duration::minutes(1),
            Unit::Hours => Duration::minutes(30),
        }
    }

    /// The longest lead a target may have in this unit: a year. It keeps the
    /// window arithmetic far from overflowing the clock.
    pub fn max_count(self) -> u32 {
        match self {
            Unit::Minutes => 525_600,
            Unit::Hours => 8_760,
        }
    }
}

/// Whether a target's message comes before the due time or after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// A reminder N units before the deadline.
    Before,
    /// An overdue notice N units after it, for work not handed in.
    Overdue,
}

/// One reminder target, such as `24h` (a day ahead), `2m`, or `overdue-72h`
/// (three days late).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub count: u32,
    pub unit: Unit,
    pub side: Side,
}

impl Target {
    /// A target of 1 to [`Unit::max_count`] units; `None` outside that range.
    pub fn new(count: u32, unit: Unit, side: Side) -> Option<Target> {
        (1..=unit.max_count())
            .contains(&count)
            .then_some(Target { count, unit, side })
    }

    /// N units, whichever side.
    fn distance(&self) -> Duration {
        match self.unit {
            Unit::Minutes => Duration::minutes(self.count.into()),
            Unit::Hours => Duration::hours(self.count.into()),
        }
    }

    /// Where the due time lies from the moment the message is meant to go:
    /// N ahead for a reminder, N behind for an overdue notice.
    pub fn offset(&self) -> Duration {
        match self.side {
            Side::Before => self.distance(),
            Side::Overdue => -self.distance(),
        }
    }

    /// The moment the message is meant to go, for a deadline `due_at`.
    pub fn planned_at(&self, due_at: DateTime<Utc>) -> DateTime<Utc> {
        saturating_add(due_at, -self.offset())
    }

    pub fn is_overdue(&self) -> bool {
        self.side == Side::Overdue
    }

    /// The `reminders.reminder_type` value: `{N}m` or `{N}h`, and
    /// `overdue-{N}m` or `overdue-{N}h`.
    pub fn reminder_type(&self) -> String {
        self.to_string()
    }

    /// Reads a stored `reminder_type` back; `None` for kinds that are not targets.
    pub fn from_reminder_type(text: &str) -> Option<Target> {
        let (text, side) = match text.strip_prefix(OVERDUE_PREFIX) {
            Some(rest) => (rest, Side::Overdue),
            None => (text, Side::Before),
        };
        let (count, unit) = match text.strip_suffix('m') {
            Some(count) => (count, Unit::Minutes),
            None => (text.strip_suffix('h')?, Unit::Hours),
        };
        Target::new(count.parse().ok()?, unit, side)
    }
}

const OVERDUE_PREFIX: &str = "overdue-";

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = match self.side {
            Side::Before => "",
            Side::Overdue => OVERDUE_PREFIX,
        };
        let suffix = match self.unit {
            Unit::Minutes => "m",
            Unit::Hours => "h",
        };
        write!(f, "{prefix}{}{suffix}", self.count)
    }
}

/// Parses `--targets 24,2` (or, for `side` overdue, `--overdue 2,24,72`)
/// into targets, nearest-first order not assumed.
pub fn parse_targets(raw: &str, unit: Unit, side: Side) -> anyhow::Result<Vec<Target>> {
    let mut targets = Vec::new();
    for part in raw.split(',') {
        let target = part
            .trim()
            .parse()
            .ok()
            .and_then(|count| Target::new(count, unit, side))
            .ok_or_else(|| {
                let (what, example) = match side {
                    Side::Before => ("targets", "24,2"),
                    Side::Overdue => ("overdue steps", "24,72"),
                };
                invalid(format!(
                    "`{raw}` is not a list of {what}: each must be a whole number from 1 to {} (a year), like `{example}`",
                    unit.max_count()
                ))
            })?;
        if !targets.contains(&target) {
            targets.push(target);
        }
    }
    Ok(targets)
}

/// Reminder types as a person's preferences and `--required-types` name
/// them: `24h`, `overdue-72h`, or `overdue` for every overdue step. Kept as
/// written, comma-separated, in `user_preferences`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeList(Vec<String>);

impl TypeList {
    /// `24h,overdue`: each a reminder type (`2h`, `30m`, `overdue-24h`) or
    /// `overdue`. Bad input names the first item that is neither.
    pub fn parse(raw: &str) -> anyhow::Result<TypeList> {
        let mut items = Vec::new();
        for item in raw.split(',').map(|item| item.trim().to_ascii_lowercase()) {
            if item != OVERDUE_GROUP && Target::from_reminder_type(&item).is_none() {
                return Err(invalid(format!(
                    "`{item}` is not a reminder type: use types such as `24h`, `2h`, `overdue-24h`, or `overdue` for every overdue step"
                )));
            }
            if !items.contains(&item) {
                items.push(item);
            }
        }
        Ok(TypeList(items))
    }

    /// The stored text, which `parse` reads back.
    pub fn to_text(&self) -> String {
        self.0.join(",")
    }

    /// Whether `reminder_type` is one of these.
    pub fn covers(&self, reminder_type: &str) -> bool {
        self.0
            .iter()
            .any(|item| item == reminder_type || (item == OVERDUE_GROUP && reminder_type.starts_with(OVERDUE_PREFIX)))
    }
}

const OVERDUE_GROUP: &str = "overdue";

/// Why a person's preferences keep `reminder_type` from them, if they do:
/// `types` is what they get (`None`, all), `muted` what they do not; a type
/// in `required` reaches everyone.
pub fn muted_reason(
    reminder_type: &str,
    types: Option<&TypeList>,
    muted: Option<&TypeList>,
    required: Option<&TypeList>,
) -> Option<String> {
    if required.is_some_and(|required| required.covers(reminder_type)) {
        return None;
    }
    if types.is_some_and(|types| !types.covers(reminder_type)) {
        return Some(format!(
            "the student gets only {} reminders",
            types.map(TypeList::to_text).unwrap_or_default()
        ));
    }
    muted
        .filter(|muted| muted.covers(reminder_type))
        .map(|_| format!("the student muted {reminder_type} reminders"))
}

/// The due times a target looks for at `now`: `[now + N − T, now + N + T]`
/// for a reminder, `[now − N − T, now − N + T]` for an overdue notice.
pub fn window(target: &Target, now: DateTime<Utc>, tolerance: Duration) -> (DateTime<Utc>, DateTime<Utc>) {
    let center = saturating_add(now, target.offset());
    (saturating_add(center, -tolerance), saturating_add(center, tolerance))
}

/// When `target`'s message for a deadline `due_at` goes to someone in `zone`
/// whose send window is `window` (`None`: always open): its planned time, or
/// as the window moves it (`window::SendWindow::send_time`).
pub fn send_time(target: &Target, due_at: DateTime<Utc>, window: Option<&SendWindow>, zone: Tz) -> SendTime {
    let planned = target.planned_at(due_at);
    match window {
        None => SendTime {
            at: planned,
            shift: None,
        },
        Some(window) => window.send_time(planned, (!target.is_overdue()).then_some(due_at), zone),
    }
}

/// Whether a message that goes `at` is a run's at `now`: within `tolerance`
/// either side, so back-to-back runs between them cover every instant.
pub fn is_due_now(at: DateTime<Utc>, now: DateTime<Utc>, tolerance: Duration) -> bool {
    (at - now).abs() <= tolerance
}

/// Among `targets`, each with the time its message goes, those due now, the
/// one nearest to now (ties go to the shorter lead). When one run finds an
/// assignment due for two targets, the student gets one email, for this
/// target. The caller passes only the targets whose reminders that run would
/// create: one that an earlier run created is no rival.
pub fn nearest_target<'a>(
    targets: impl IntoIterator<Item = (&'a Target, DateTime<Utc>)>,
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Option<&'a Target> {
    targets
        .into_iter()
        .filter(|(_, at)| is_due_now(*at, now, tolerance))
        .min_by_key(|(target, at)| ((*at - now).abs(), target.offset().abs()))
        .map(|(target, _)| target)
}

/// Why a claimed reminder is not sent, or `None` when it should go out.
pub fn stale_reason(
    target: Option<&Target>,
    due_at: DateTime<Utc>,
    now: DateTime<Utc>,
    delivery_window: Option<Duration>,
    send_window: Option<(&SendWindow, Tz)>,
) -> Option<String> {
    let overdue = target.is_some_and(Target::is_overdue);
    if due_at <= now && !overdue {
        return Some("the assignment is already past due".to_string());
    }
    if due_at > now && overdue {
        return Some("the assignment is not past due".to_string());
    }
    let target = target?;
    // Seed 002's delivery window: a reminder this late has lost its point.
    let window = delivery_window.unwrap_or_else(|| target.distance() / 2);
    // Late counts from when the send window let it go, not from a closed hour.
    let planned = match send_window {
        Some((send_window, zone)) => send_time(target, due_at, Some(send_window), zone).at,
        None => target.planned_at(due_at),
    };
    (now > saturating_add(planned, window)).then(|| {
        format!(
            "more than {} late for its {} slot (the delivery window)",
            crate::time::human_duration(window),
            target
        )
    })
}

/// The instant a student's daily summary becomes due on local `date`: `hour`
/// o'clock on their wall clock. An hour that the zone skips (spring forward)
/// means the first instant after it; an hour that repeats (fall back) means
/// its first occurrence.
pub fn summary_time(date: NaiveDate, hour: u32, zone: Tz) -> DateTime<Utc> {
    local_instant(date, hour.min(23) as u16 * 60, zone)
}

/// The instant of `minutes` past midnight on local `date` (up to 24:00, the
/// next midnight). A time that the zone skips (spring forward) means the
/// first instant after it; a time that repeats (fall back), its first
/// occurrence.
fn local_instant(date: NaiveDate, minutes: u16, zone: Tz) -> DateTime<Utc> {
    let (date, minutes) = if minutes >= MINUTES_PER_DAY {
        (date.succ_opt().unwrap_or(date), 0)
    } else {
        (date, minutes)
    };
    let mut local = date.and_time(chrono::NaiveTime::MIN) + Duration::minutes(minutes.into());
    loop {
        match zone.from_local_datetime(&local) {
            LocalResult::Single(instant) | LocalResult::Ambiguous(instant, _) => return instant.with_timezone(&Utc),
            // Inside a gap: step to the next minute until the clocks resume.
            LocalResult::None => local += Duration::minutes(1),
        }
    }
}

/// When the summary (or digest, or report) of local `date` at `hour` goes
/// to someone whose send window is `window`: at its hour, or when the
/// window next opens after it.
pub fn summary_send_time(date: NaiveDate, hour: u32, zone: Tz, window: Option<&SendWindow>) -> DateTime<Utc> {
    let at = summary_time(date, hour, zone);
    window.map_or(at, |window| window.next_open(at, zone))
}

/// The local date on which the summary for `date` goes out: `date` itself, or
/// the next day when its hour falls in a gap that runs to midnight (23:00 on
/// 2025-03-29 in America/Nuuk is 00:00 on the 30th), or when the send window
/// opens only the next morning. The summary is still `date`'s; it may go
/// out, or be retried, until the end of this day.
pub fn summary_day(date: NaiveDate, hour: u32, zone: Tz, window: Option<&SendWindow>) -> NaiveDate {
    summary_send_time(date, hour, zone, window)
        .with_timezone(&zone)
        .date_naive()
}

/// How long before go-live a summary's (or digest's, or report's) hour may
/// have passed and it still go out: a first cron run a few minutes after the
/// hour, or a person added just after it, still gets today's.
const GO_LIVE_GRACE: Duration = Duration::hours(1);

/// Why a message due `at` is recorded skipped, not sent late, if it is:
/// its hour passed well before `started`, the later of when summaries began
/// on this database (`went_live`) and when its recipient was added (`who`
/// names them). Installing in the evening must not mail everyone that
/// morning's summary at once.
pub fn before_go_live(at: DateTime<Utc>, went_live: DateTime<Utc>, added: DateTime<Utc>, who: &str) -> Option<String> {
    let started = went_live.max(added);
    (at + GO_LIVE_GRACE < started).then(|| {
        let since = if started == went_live {
            "summaries began on this database".to_string()
        } else {
            format!("{who} was added")
        };
        format!(
            "before go-live: its hour had passed when {since} ({})",
            crate::time::utc(started)
        )
    })
}

/// The summaries due at `now`, as (local date, instant): those whose instant
/// (`summary_send_time`) has come and falls on the student's local today.
/// That is today's once its hour (or the window's opening) has come, and
/// yesterday's only when that stepped over midnight into today; an ordinary
/// summary of a day that has passed is never due. A send window closed for
/// longer than a night (a weekend) leaves only the last day's to go.
pub fn summary_due(
    now: DateTime<Utc>,
    hour: u32,
    zone: Tz,
    window: Option<&SendWindow>,
) -> Vec<(NaiveDate, DateTime<Utc>)> {
    let today = now.with_timezone(&zone).date_naive();
    [today.pred_opt(), Some(today)]
        .into_iter()
        .flatten()
        .map(|date| (date, summary_send_time(date, hour, zone, window)))
        .filter(|(_, due)| *due <= now && due.with_timezone(&zone).date_naive() == today)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_lists_name_types_or_every_overdue_step() {
        let list = TypeList::parse("24h, OVERDUE,24h").unwrap();
        assert_eq!(list.to_text(), "24h,overdue");
        assert!(list.covers("24h") && list.covers("overdue-72h") && !list.covers("2h"));
        for bad in ["", "soon", "overdue-", "24"] {
            assert!(
                TypeList::parse(bad)
                    .unwrap_err()
                    .to_string()
                    .contains("is not a reminder type"),
                "{bad}"
            );
        }
        let only = TypeList::parse("24h,overdue").unwrap();
        let muted = TypeList::parse("2h,overdue-2h").unwrap();
        let required = TypeList::parse("overdue").unwrap();
        assert_eq!(muted_reason("24h", Some(&only), None, None), None);
        assert!(
            muted_reason("2h", Some(&only), None, None)
                .unwrap()
                .contains("only 24h,overdue")
        );
        assert!(
            muted_reason("overdue-2h", None, Some(&muted), None)
                .unwrap()
                .contains("muted overdue-2h")
        );
        assert_eq!(muted_reason("overdue-2h", None, Some(&muted), Some(&required)), None);
        assert_eq!(muted_reason("2h", None, None, None), None);
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn targets_parse_and_reject_nonsense() {
        let targets = parse_targets("24, 2", Unit::Hours, Side::Before).unwrap();
        assert_eq!(
            targets.iter().map(Target::reminder_type).collect::<Vec<_>>(),
            ["24h", "2h"]
        );
        for bad in ["1,,x", "0", "-3", "", "2.5", "525601", "4000000000"] {
            assert!(parse_targets(bad, Unit::Minutes, Side::Before).is_err(), "{bad}");
            assert!(parse_targets(bad, Unit::Minutes, Side::Overdue).is_err(), "{bad}");
        }
        assert_eq!(
            Target::from_reminder_type("2m"),
            Some(Target {
                count: 2,
                unit: Unit::Minutes,
                side: Side::Before,
            })
        );
        let steps = parse_targets("2,24,72", Unit::Hours, Side::Overdue).unwrap();
        let types: Vec<String> = steps.iter().map(Target::reminder_type).collect();
        assert_eq!(types, ["overdue-2h", "overdue-24h", "overdue-72h"]);
        for (text, target) in types.iter().zip(&steps) {
            assert_eq!(Target::from_reminder_type(text).as_ref(), Some(target));
        }
        assert_eq!(Target::from_reminder_type("daily-summary"), None);
        assert_eq!(Target::from_reminder_type("8761h"), None);
        assert_eq!(Target::from_reminder_type("overdue-0h"), None);
        assert!(parse_targets("8760", Unit::Hours, Side::Before).is_ok());
    }

    #[test]
    fn the_nearest_target_wins() {
        let targets = parse_targets("1,2", Unit::Minutes, Side::Before).unwrap();
        let now = at("2025-01-01T10:00:00Z");
        let tolerance = Duration::minutes(1);
        let nearest = |due: &str| {
            let timed = targets.iter().map(|target| (target, target.planned_at(at(due))));
            nearest_target(timed, now, tolerance).map(Target::reminder_type)
        };
        assert_eq!(nearest("2025-01-01T10:01:20Z").as_deref(), Some("1m"));
        assert_eq!(nearest("2025-01-01T10:01:40Z").as_deref(), Some("2m"));
        assert_eq!(
            nearest("2025-01-01T10:01:30Z").as_deref(),
            Some("1m"),
            "a tie goes to the shorter lead"
        );
        assert_eq!(nearest("2025-01-01T10:03:01Z"), None);
    }

    #[test]
    fn late_reminders_are_stale_after_half_their_lead() {
        let day = Target {
            count: 24,
            unit: Unit::Hours,
            side: Side::Before,
        };
        let due = at("2025-01-02T12:00:00Z");
        assert_eq!(
            stale_reason(Some(&day), due, at("2025-01-01T23:59:00Z"), None, None),
            None
        );
        assert!(stale_reason(Some(&day), due, at("2025-01-02T00:01:00Z"), None, None).is_some());
        assert!(
            stale_reason(
                Some(&day),
                due,
                at("2025-01-02T00:01:00Z"),
                Some(Duration::hours(13)),
                None
            )
            .is_none()
        );
        assert!(
            stale_reason(Some(&day), due, due, None, None)
                .unwrap()
                .contains("past due")
        );
    }

    #[test]
    fn an_overdue_step_looks_behind_and_goes_stale_after_half_its_distance() {
        let step = Target::new(24, Unit::Hours, Side::Overdue).unwrap();
        let now = at("2025-01-03T12:00:00Z");
        let (from, to) = window(&step, now, Duration::minutes(30));
        assert_eq!((from, to), (at("2025-01-02T11:30:00Z"), at("2025-01-02T12:30:00Z")));
        let due = at("2025-01-02T12:00:00Z");
        assert_eq!(step.planned_at(due), now);
        assert_eq!(
            stale_reason(Some(&step), due, at("2025-01-03T23:59:00Z"), None, None),
            None
        );
        assert!(stale_reason(Some(&step), due, at("2025-01-04T00:01:00Z"), None, None).is_some());
        let moved_later = at("2025-01-05T12:00:00Z");
        assert!(
            stale_reason(Some(&step), moved_later, now, None, None)
                .unwrap()
                .contains("not past due")
        );
        // Steps and reminders never rival each other: their windows lie on either side of now.
        let all = [Target::new(24, Unit::Hours, Side::Before).unwrap(), step.clone()];
        let timed = all.iter().map(|target| (target, target.planned_at(due)));
        assert_eq!(nearest_target(timed, now, Duration::minutes(30)), Some(&step));
    }

    #[test]
    fn summary_hours_follow_the_local_wall_clock() {
        let ny: Tz = "America/New_York".parse().unwrap();
        let day = |text: &str| text.parse::<NaiveDate>().unwrap();
        // An ordinary day: 07:00 EST is 12:00 UTC.
        assert_eq!(summary_time(day("2025-01-15"), 7, ny), at("2025-01-15T12:00:00Z"));
        // Spring forward: 02:00–02:59 does not exist; the first instant after is 03:00 EDT.
        assert_eq!(summary_time(day("2025-03-09"), 2, ny), at("2025-03-09T07:00:00Z"));
        // Fall back: 01:00 happens twice; the first is 01:00 EDT.
        assert_eq!(summary_time(day("2025-11-02"), 1, ny), at("2025-11-02T05:00:00Z"));
        // 07:00 on both change days is 07:00 local.
        assert_eq!(summary_time(day("2025-03-09"), 7, ny), at("2025-03-09T11:00:00Z"));
        assert_eq!(summary_time(day("2025-11-02"), 7, ny), at("2025-11-02T12:00:00Z"));
    }

    #[test]
    fn a_summary_is_due_from_its_hour_until_local_midnight() {
        let tokyo: Tz = "Asia/Tokyo".parse().unwrap();
        let dates = |now: &str| -> Vec<String> {
            summary_due(at(now), 7, tokyo, None)
                .into_iter()
                .map(|(date, _)| date.to_string())
                .collect()
        };
        // 03:00 UTC is 12:00 in Tokyo: the 07:00 summary of that date is due.
        assert_eq!(dates("2025-05-01T03:00:00Z"), ["2025-05-01"]);
        // 14:59 UTC is 23:59 in Tokyo: still that date's.
        assert_eq!(dates("2025-05-01T14:59:00Z"), ["2025-05-01"]);
        // 21:00 UTC is 06:00 the next day in Tokyo: not yet, and the day before has passed.
        assert!(dates("2025-05-01T21:00:00Z").is_empty());
        assert_eq!(
            summary_day(at("2025-05-01T00:00:00Z").date_naive(), 7, tokyo, None).to_string(),
            "2025-05-01"
        );
    }

    #[test]
    fn a_summary_hour_in_a_gap_to_midnight_goes_out_the_next_day_as_its_own() {
        // America/Nuuk skips 23:00-23:59 on Saturday 2025-03-29: 22:59 -02 is
        // followed by 00:00 -01 on the 30th, which is 01:00 UTC.
        let nuuk: Tz = "America/Nuuk".parse().unwrap();
        let day = |text: &str| text.parse::<NaiveDate>().unwrap();
        assert_eq!(summary_time(day("2025-03-29"), 23, nuuk), at("2025-03-30T01:00:00Z"));
        assert_eq!(summary_day(day("2025-03-29"), 23, nuuk, None), day("2025-03-30"));
        assert_eq!(summary_day(day("2025-03-28"), 23, nuuk, None), day("2025-03-28"));
        let due = |now: &str| -> Vec<(String, DateTime<Utc>)> {
            summary_due(at(now), 23, nuuk, None)
                .into_iter()
                .map(|(date, at)| (date.to_string(), at))
                .collect()
        };
        // 22:59 on the 29th: nothing (the 28th's day is over, the 29th's instant is to come).
        assert!(due("2025-03-30T00:59:00Z").is_empty());
        // 00:00 on the 30th: the 29th's summary, at that instant.
        assert_eq!(
            due("2025-03-30T01:00:00Z"),
            [("2025-03-29".to_string(), at("2025-03-30T01:00:00Z"))]
        );
        // 23:00 on the 30th: the 29th's is still owed (its day is the 30th) and the 30th's has come.
        let both = due("2025-03-31T00:00:00Z");
        assert_eq!(
            both.iter().map(|(date, _)| date.as_str()).collect::<Vec<_>>(),
            ["2025-03-29", "2025-03-30"]
        );
        // 00:30 on the 31st: both days have passed; the 31st's hour has not come.
        assert!(due("2025-03-31T01:30:00Z").is_empty());
    }
}
