//! Which daily summaries are owed now, one per student per local date, and
//! the counts a summary (and `reminders summary`) shows.

use std::collections::HashSet;

use chrono::{DateTime, Datelike, NaiveDate, Utc};

use crate::db::Db;
use crate::db::summaries::{self, DEFAULT_DAILY_SUMMARY, DEFAULT_SUMMARY_HOUR, NewSummary};
use crate::db::types::{Id, Timestamp};
use crate::input::zone_of;
use crate::queue::Status;
use crate::schedule::window::SendWindow;
use crate::schedule::{before_go_live, summary_due};

/// Students read per query while scheduling summaries.
const PAGE_SIZE: i64 = 2_000;

/// The summaries a `summary --send` at `now` would schedule (to send, or
/// to record skipped with the reason), for `--dry-run`. Writes nothing.
pub fn preview_owed(db: &mut Db, now: Timestamp, send_window: Option<&SendWindow>) -> anyhow::Result<Vec<NewSummary>> {
    let mut owed = Vec::new();
    owed_summaries(db, now, send_window, false, |_, page| {
        owed.extend(page);
        Ok(())
    })?;
    Ok(owed)
}

/// What scheduling did: summaries to send, and those recorded skipped.
#[derive(Debug, Default)]
pub struct Scheduled {
    pub to_send: usize,
    pub skipped: usize,
}

/// Schedules the summaries owed at `now`; UNIQUE(user_id, local_date) with
/// ON CONFLICT DO NOTHING keeps overlapping runs to one each.
pub fn schedule_owed(db: &mut Db, now: Timestamp, send_window: Option<&SendWindow>) -> anyhow::Result<Scheduled> {
    let mut scheduled = Scheduled::default();
    owed_summaries(db, now, send_window, true, |db, page| {
        let (to_send, to_skip): (Vec<NewSummary>, Vec<NewSummary>) =
            page.into_iter().partition(|summary| summary.status == Status::Pending);
        scheduled.to_send += summaries::schedule(db, &to_send)?;
        scheduled.skipped += summaries::schedule(db, &to_skip)?;
        Ok(())
    })?;
    Ok(scheduled)
}

/// The summaries owed at `now` that have no row yet: for each student who has
/// not opted out and has the daily summary on, today's (in their zone), once
/// their hour has come. Yesterday's is owed only while its hour, stepped over
/// midnight out of a DST gap, falls today (`summary_due`); a late run does not
/// send an ordinary summary of a day that has passed.
///
/// A send window moves the hour to its opening (`summary_send_time`): the
/// student's own, else the run's `send_window`.
///
/// Going live: a summary whose hour passed well before the student was added,
/// or before the first `summary --send` on this database (`before_go_live`),
/// is owed as skipped ("before go-live"), not sent late: installing in the
/// evening must not mail every student that day's morning summary at once.
/// Walks the students a page at a time, handing each page's summaries to
/// `visit`; `scheduling` is false for a dry run, which records nothing.
fn owed_summaries(
    db: &mut Db,
    now: Timestamp,
    send_window: Option<&SendWindow>,
    scheduling: bool,
    mut visit: impl FnMut(&mut Db, Vec<NewSummary>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let went_live = summaries::began(db, now, scheduling)?.unwrap_or(now).instant();
    let mut after = None;
    loop {
        let page = summaries::recipients(db, after, PAGE_SIZE)?;
        let Some(last) = page.last() else { break };
        after = Some(last.user_id);
        let mut owed: Vec<(Id, NaiveDate, DateTime<Utc>, Option<String>)> = Vec::new();
        for recipient in &page {
            if !recipient.daily_summary.unwrap_or(DEFAULT_DAILY_SUMMARY) {
                continue;
            }
            let hour = recipient.summary_hour.unwrap_or(DEFAULT_SUMMARY_HOUR) as u32;
            let window = SendWindow::own_or(recipient.send_window.as_deref(), send_window);
            let zone = zone_of(recipient.timezone.as_deref());
            for (date, at) in summary_due(now.instant(), hour, zone, window.as_ref()) {
                // A weekly summary is owed on its weekday only, once a local
                // date as every summary: so once a week.
                if recipient
                    .summary_weekday
                    .is_some_and(|weekday| date.weekday().number_from_monday() as i32 != weekday)
                {
                    continue;
                }
                let skipped = before_go_live(at, went_live, recipient.created_at.instant(), "the student");
                owed.push((recipient.user_id, date, at, skipped));
            }
        }
        let ids: Vec<Id> = owed.iter().map(|(id, _, _, _)| *id).collect();
        let existing: HashSet<(Id, NaiveDate)> = match owed.iter().map(|(_, date, _, _)| *date).min() {
            Some(since) => summaries::existing(db, &ids, since)?.into_iter().collect(),
            None => HashSet::new(),
        };
        let page_owed = owed
            .into_iter()
            .filter(|(id, date, _, _)| !existing.contains(&(*id, *date)))
            .map(|(user_id, local_date, at, before_go_live)| NewSummary {
                id: Id::new(),
                user_id,
                local_date,
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
        visit(db, page_owed.collect())?;
        if (page.len() as i64) < PAGE_SIZE {
            return Ok(());
        }
    }
    Ok(())
}
