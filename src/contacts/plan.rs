//! Which guardian digests and teacher reports are owed now: at the person's
//! local hour, a guardian's daily digest Monday to Friday or weekly one on
//! their weekday, a teacher's report on their weekday; one per local date
//! (daily) or ISO week (weekly, reports), by the unique `message_key`.

use std::collections::HashSet;

use chrono::{DateTime, Datelike, NaiveDate, Utc, Weekday};

use crate::db::Db;
use crate::db::contacts::{self, NewContactMessage};
use crate::db::summaries;
use crate::db::types::{ContactKind, DigestFrequency, Id, Timestamp};
use crate::input::zone_of;
use crate::queue::Status;
use crate::schedule::window::SendWindow;
use crate::schedule::{before_go_live, summary_day, summary_due};

/// What a message covers, as `contact_messages.period` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// A local date: a daily digest.
    Day(NaiveDate),
    /// The ISO week of a local date: a weekly digest, a teacher's report.
    Week(NaiveDate),
}

impl Period {
    pub fn key(self) -> String {
        match self {
            Period::Day(date) => date.format("%Y-%m-%d").to_string(),
            Period::Week(date) => {
                let week = date.iso_week();
                format!("{}-W{:02}", week.year(), week.week())
            }
        }
    }

    pub fn parse(text: &str) -> Option<Period> {
        if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            return Some(Period::Day(date));
        }
        let (year, week) = text.split_once("-W")?;
        NaiveDate::from_isoywd_opt(year.parse().ok()?, week.parse().ok()?, Weekday::Mon).map(Period::Week)
    }

    /// Whether a message for this period may still go out at `now`, for
    /// someone whose hour is `hour` in `zone`: on its own local day (or
    /// the next, when the hour stepped over midnight out of a DST gap) for
    /// a daily digest; within its ISO week for a weekly one.
    pub fn is_current(self, now: DateTime<Utc>, hour: u32, zone: chrono_tz::Tz, window: Option<&SendWindow>) -> bool {
        let today = now.with_timezone(&zone).date_naive();
        match self {
            Period::Day(date) => today == summary_day(date, hour, zone, window),
            Period::Week(date) => today.iso_week() == date.iso_week(),
        }
    }
}

/// What scheduling did: messages to send, and those recorded skipped.
#[derive(Debug, Default)]
pub struct Scheduled {
    pub to_send: usize,
    pub skipped: usize,
}

/// Schedules the digests and reports owed at `now`.
pub fn schedule_owed(db: &mut Db, now: Timestamp, send_window: Option<&SendWindow>) -> anyhow::Result<Scheduled> {
    let owed = owed(db, now, send_window, true)?;
    let (to_send, to_skip): (Vec<_>, Vec<_>) = owed.into_iter().partition(|row| row.status == Status::Pending);
    Ok(Scheduled {
        to_send: contacts::schedule(db, &to_send)?,
        skipped: contacts::schedule(db, &to_skip)?,
    })
}

/// What `summary --send --dry-run` would schedule. Writes nothing.
pub fn preview_owed(
    db: &mut Db,
    now: Timestamp,
    send_window: Option<&SendWindow>,
) -> anyhow::Result<Vec<NewContactMessage>> {
    owed(db, now, send_window, false)
}

/// One person's message owed at `now`, if their day and hour have come.
struct Due {
    kind: ContactKind,
    guardian_id: Option<Id>,
    teacher_id: Option<Id>,
    recipient: Id,
    created_at: Timestamp,
    timezone: String,
    hour: i32,
    /// `None`: Monday to Friday; else the ISO weekday (Monday 1).
    weekday: Option<i32>,
    /// A guardian's own send window, as stored.
    send_window: Option<String>,
}

/// The messages owed at `now`; a person's own send window, else the run's
/// `send_window`, moves their hour to its opening.
fn owed(
    db: &mut Db,
    now: Timestamp,
    send_window: Option<&SendWindow>,
    scheduling: bool,
) -> anyhow::Result<Vec<NewContactMessage>> {
    let guardians = contacts::digest_guardians(db)?;
    let teachers = contacts::reporting_teachers(db)?;
    if guardians.is_empty() && teachers.is_empty() {
        return Ok(Vec::new());
    }
    let went_live = summaries::began(db, now, scheduling)?.unwrap_or(now).instant();
    let people = guardians
        .into_iter()
        .map(|guardian| Due {
            kind: ContactKind::GuardianDigest,
            guardian_id: Some(guardian.id),
            teacher_id: None,
            recipient: guardian.id,
            created_at: guardian.created_at,
            timezone: guardian.timezone,
            hour: guardian.hour,
            weekday: (guardian.frequency == DigestFrequency::Weekly).then_some(guardian.weekday),
            send_window: guardian.send_window,
        })
        .chain(teachers.into_iter().map(|teacher| Due {
            kind: ContactKind::TeacherReport,
            guardian_id: None,
            teacher_id: Some(teacher.id),
            recipient: teacher.id,
            created_at: teacher.created_at,
            timezone: teacher.timezone,
            hour: teacher.hour,
            weekday: Some(teacher.weekday),
            send_window: None,
        }));
    let mut owed = Vec::new();
    for person in people {
        let zone = zone_of(Some(&person.timezone));
        let window = SendWindow::own_or(person.send_window.as_deref(), send_window);
        for (date, at) in summary_due(now.instant(), person.hour as u32, zone, window.as_ref()) {
            let period = match person.weekday {
                None if date.weekday().number_from_monday() <= 5 => Period::Day(date),
                Some(weekday) if date.weekday().number_from_monday() as i32 == weekday => Period::Week(date),
                _ => continue,
            };
            // As for daily summaries: not sent late on going live.
            let before_go_live = before_go_live(at, went_live, person.created_at.instant(), "the person");
            let period = period.key();
            owed.push(NewContactMessage {
                id: Id::new(),
                kind: person.kind,
                guardian_id: person.guardian_id,
                teacher_id: person.teacher_id,
                reminder_id: None,
                message_key: NewContactMessage::key(person.kind, person.recipient, &period),
                period,
                scheduled_for: Timestamp::new(at),
                status: if before_go_live.is_some() {
                    Status::Skipped
                } else {
                    Status::Pending
                },
                last_error: before_go_live,
                created_at: now,
                updated_at: now,
            });
        }
    }
    let keys: Vec<String> = owed.iter().map(|row| row.message_key.clone()).collect();
    let existing: HashSet<String> = contacts::existing_keys(db, &keys)?.into_iter().collect();
    owed.retain(|row| !existing.contains(&row.message_key));
    Ok(owed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_round_trip() {
        let date = NaiveDate::from_ymd_opt(2026, 12, 7).unwrap();
        assert_eq!(Period::Day(date).key(), "2026-12-07");
        assert_eq!(Period::Week(date).key(), "2026-W50");
        assert_eq!(Period::parse("2026-12-07"), Some(Period::Day(date)));
        let monday = Period::parse("2026-W50").unwrap();
        assert_eq!(monday.key(), "2026-W50");
        // The ISO year differs from the calendar year near New Year.
        let new_year = NaiveDate::from_ymd_opt(2027, 1, 1).unwrap();
        assert_eq!(Period::Week(new_year).key(), "2026-W53");
        assert_eq!(Period::parse("2026-W53").unwrap().key(), "2026-W53");
        assert_eq!(Period::parse("nonsense"), None);
    }
}
