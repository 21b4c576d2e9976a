//! Which reminders are due now, and what a run does with each: the one
//! decision that `due` lists and `send` acts on.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use crate::db::Db;
use crate::db::reminders::{self, Candidate, NewReminder};
use crate::db::types::{Id, Timestamp};
use crate::input::zone_of;
use crate::queue::Status;
use crate::schedule::{Target, in_window, nearest_target, window};
use crate::time::{self, Clock};

/// Rows read per query while walking a window: large enough that a dense
/// window (10,000 due within the hour) takes one query. A query per page
/// repeats the join, and while `send` schedules, PostgreSQL plans the later
/// pages with statistics that do not know the rows the earlier pages added,
/// so smaller pages are slower; a page of this size still takes little
/// memory. BENCHMARKS.md has the measurements.
const PAGE_SIZE: i64 = 10_000;

/// The reminder windows of a `due` or `send` run: `[now + N - T, now + N + T]`.
pub struct Windows {
    pub targets: Vec<Target>,
    pub tolerance: chrono::Duration,
    pub clock: Clock,
}

/// What a run does with one (assignment, target) pair found in a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No reminder yet: schedule it to go now.
    Send,
    /// No reminder yet, but a nearer target of this run wins: record it skipped.
    Skip { nearer: Target },
    /// Scheduled by an earlier run and not sent yet: the queue has it.
    Queued,
    /// Sent by an earlier run.
    AlreadySent,
    /// Skipped or failed in an earlier run: nothing more to do.
    AlreadySkippedOrFailed,
}

/// Walks every candidate of every window at the clock's `now`, a page at a
/// time (so memory stays flat however many are due), handing each page to
/// `visit` with the decision for each candidate.
pub fn plan(
    db: &mut Db,
    windows: &Windows,
    mut visit: impl FnMut(&mut Db, &Target, Vec<(Candidate, Decision)>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let now = Timestamp::now(&windows.clock);
    let mut rule = NearestRule::default();
    for target in &windows.targets {
        let (from, to) = window(target, now.instant(), windows.tolerance);
        let range = (Timestamp::new(from), Timestamp::new(to));
        let mut after = None;
        loop {
            let accepted_at = target.is_overdue().then_some(now);
            let page = reminders::window_candidates(db, &target.reminder_type(), range, after, PAGE_SIZE, accepted_at)?;
            let Some(last) = page.last() else { break };
            after = Some((last.due_at, last.assignment_id));
            let full = page.len() as i64 == PAGE_SIZE;
            let superseded = rule.superseded_by(db, windows, now.instant(), target, &page)?;
            let decided = page
                .into_iter()
                .zip(superseded)
                .map(|(candidate, nearer)| {
                    let decision = match (candidate.status_for_this_deadline(), nearer) {
                        (None, None) => Decision::Send,
                        (None, Some(nearer)) => Decision::Skip { nearer },
                        (Some(Status::Pending), _) => Decision::Queued,
                        (Some(Status::Sent), _) => Decision::AlreadySent,
                        (Some(_), _) => Decision::AlreadySkippedOrFailed,
                    };
                    (candidate, decision)
                })
                .collect();
            visit(db, target, decided)?;
            if !full {
                break;
            }
        }
    }
    Ok(())
}

/// What scheduling the windows did.
#[derive(Debug, Default)]
pub struct Scheduled {
    /// Superseded by a nearer target of this run, recorded skipped.
    pub skipped: usize,
    /// In the windows, sent by an earlier run.
    pub already_sent: usize,
}

/// Inserts a `reminders` row for each pair the plan says to send or skip,
/// with ON CONFLICT DO NOTHING, so overlapping runs schedule each once.
pub fn schedule_due(db: &mut Db, windows: &Windows) -> anyhow::Result<Scheduled> {
    let now = Timestamp::now(&windows.clock);
    let mut scheduled = Scheduled::default();
    plan(db, windows, |db, target, page| {
        let (mut to_send, mut to_skip) = (Vec::new(), Vec::new());
        for (candidate, decision) in page {
            let row = |status: Status, last_error: Option<String>| NewReminder {
                id: Id::new(),
                assignment_id: candidate.assignment_id,
                reminder_type: target.reminder_type(),
                // Found in the window now, so it is to go now, not later.
                scheduled_for: Timestamp::new(target.planned_at(candidate.due_at.instant()).min(now.instant())),
                status,
                last_error,
                created_at: now,
                updated_at: now,
                due_at: candidate.due_at,
            };
            match decision {
                Decision::Send => to_send.push(row(Status::Pending, None)),
                Decision::Skip { nearer } => to_skip.push(row(
                    Status::Skipped,
                    Some(format!("superseded by the nearer {nearer} reminder")),
                )),
                Decision::AlreadySent => scheduled.already_sent += 1,
                Decision::Queued | Decision::AlreadySkippedOrFailed => {}
            }
        }
        reminders::schedule(db, &to_send, now)?;
        scheduled.skipped += reminders::schedule(db, &to_skip, now)?;
        Ok(())
    })?;
    Ok(scheduled)
}

/// One (assignment, target) pair in a window whose reminder is still to send.
#[derive(Debug)]
pub struct DueItem {
    pub assignment_id: Id,
    pub student_email: String,
    pub title: String,
    pub due_at: String,
    pub reminder_type: String,
    pub action: Action,
    pub due_local: String,
    /// Scheduled by an earlier run: the queue has it (counted there).
    pub queued: bool,
}

/// What a `send` run does with a due reminder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Sends it: schedules it now, or sends the one an earlier run queued.
    Send,
    /// Records it skipped: a nearer target of the same run wins.
    Skip { nearer: Target },
}

/// What a `send` run at the windows' clock would do, for `due` and
/// `send --dry-run`: every due pair whose reminder is still to send (or to
/// be recorded skipped), and how many in the windows went out already.
#[derive(Debug, Default)]
pub struct Preview {
    pub items: Vec<DueItem>,
    pub already_sent: usize,
}

pub fn preview(db: &mut Db, windows: &Windows) -> anyhow::Result<Preview> {
    let mut preview = Preview::default();
    plan(db, windows, |_, target, page| {
        for (candidate, decision) in page {
            let queued = decision == Decision::Queued;
            let action = match decision {
                Decision::Send | Decision::Queued => Action::Send,
                Decision::Skip { nearer } => Action::Skip { nearer },
                Decision::AlreadySent => {
                    preview.already_sent += 1;
                    continue;
                }
                Decision::AlreadySkippedOrFailed => continue,
            };
            let due = candidate.due_at.instant();
            preview.items.push(DueItem {
                assignment_id: candidate.assignment_id,
                student_email: candidate.student_email,
                title: candidate.title,
                due_at: time::utc(due),
                reminder_type: target.reminder_type(),
                action,
                due_local: time::local_short(due, zone_of(candidate.student_timezone.as_deref())),
                queued,
            });
        }
        Ok(())
    })?;
    Ok(preview)
}

/// docs/design.md's rule for an assignment in two windows at once: only the
/// target nearest to the time left is sent, and the others are recorded
/// skipped, so that one run does not send two messages at once.
///
/// The rivals are only the targets whose reminders this run would create. A
/// reminder that an earlier run created (sent, skipped or still pending) is
/// no rival: the 2m reminder sent at 11:57 must not supersede the 1m reminder
/// whose window comes at 11:58.
#[derive(Default)]
struct NearestRule {
    /// The winner chosen for each contested assignment in this run. Kept so
    /// that the rows this run inserts while walking one target's window do not
    /// pass for an earlier run's when the next target's window is walked.
    chosen: HashMap<Id, Target>,
}

impl NearestRule {
    /// For each candidate of a page of `target`'s window, in order: the nearer
    /// target that supersedes it in this run, or `None` when it is to be sent.
    /// Candidates that have a reminder already get `None`; the rule is not theirs.
    fn superseded_by(
        &mut self,
        db: &mut Db,
        windows: &Windows,
        now: DateTime<Utc>,
        target: &Target,
        page: &[Candidate],
    ) -> anyhow::Result<Vec<Option<Target>>> {
        let in_another_window = |candidate: &Candidate| {
            windows
                .targets
                .iter()
                .any(|other| other != target && in_window(other, candidate.due_at.instant(), now, windows.tolerance))
        };
        // Only assignments in two windows need the database, and they are few.
        let contested: HashSet<Id> = page
            .iter()
            .filter(|c| c.status_for_this_deadline().is_none() && !self.chosen.contains_key(&c.assignment_id))
            .filter(|c| in_another_window(c))
            .map(|c| c.assignment_id)
            .collect();
        if !contested.is_empty() {
            let ids: Vec<Id> = contested.iter().copied().collect();
            let earlier: HashSet<(Id, String)> = reminders::existing_types(db, &ids)?.into_iter().collect();
            for candidate in page.iter().filter(|c| contested.contains(&c.assignment_id)) {
                let open = windows
                    .targets
                    .iter()
                    .filter(|t| !earlier.contains(&(candidate.assignment_id, t.reminder_type())));
                if let Some(winner) = nearest_target(open, candidate.due_at.instant(), now, windows.tolerance) {
                    self.chosen.insert(candidate.assignment_id, winner.clone());
                }
            }
        }
        Ok(page
            .iter()
            .map(|candidate| match self.chosen.get(&candidate.assignment_id) {
                Some(winner) if candidate.status_for_this_deadline().is_none() && winner != target => {
                    Some(winner.clone())
                }
                _ => None,
            })
            .collect())
    }
}
