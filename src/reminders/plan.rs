//! Which reminders are due now, and what a run does with each: the one
//! decision that `due` lists and `send` acts on.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use crate::db::Db;
use crate::db::reminders::{self, Candidate, NewReminder};
use crate::db::types::{Id, Timestamp};
use crate::input::zone_of;
use crate::queue::Status;
use crate::schedule::window::{SendTime, SendWindow, SendWindows};
use crate::schedule::{Target, is_due_now, nearest_target, send_time, window};
use crate::time::{self, Clock, saturating_add};

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
    /// When each student may be mailed (`--send-window`, `user set --send-window`).
    pub send_windows: SendWindows,
}

impl Windows {
    /// Reads the students' own send windows (`user set --send-window`):
    /// one probe of a partial index when no one has one.
    pub fn read_own_send_windows(&mut self, db: &mut Db) -> anyhow::Result<()> {
        self.send_windows.own = reminders::own_send_windows(db)?
            .into_iter()
            .filter_map(|(student, spec)| Some((student.0, SendWindow::parse(&spec).ok()?)))
            .collect();
        Ok(())
    }

    /// When `target`'s reminder for `candidate` goes: planned, or moved by the student's send window.
    fn send_time(&self, target: &Target, candidate: &Candidate) -> SendTime {
        send_time(
            target,
            candidate.due_at.instant(),
            self.send_windows.of(candidate.student_id.0),
            zone_of(candidate.student_timezone.as_deref()),
        )
    }

    /// Whether the student's send window is open at `now`.
    fn is_open(&self, candidate: &Candidate, now: DateTime<Utc>) -> bool {
        self.send_windows
            .of(candidate.student_id.0)
            .is_none_or(|window| window.is_open(now, zone_of(candidate.student_timezone.as_deref())))
    }
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
    /// Planned now, but the student's send window moves it (for `due`):
    /// a later run sends it, or an earlier one did.
    Moved,
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
    // A send window moves a message by up to its longest closed period, so
    // the due times to look at widen by that when a window moves messages to
    // now; none configured, or none that does, none. An overdue notice only
    // ever waits, so its range widens on one side.
    let widen = match windows.send_windows.is_empty() {
        true => chrono::Duration::zero(),
        false => {
            let zones: Vec<_> = reminders::student_zones(db)?
                .iter()
                .map(|zone| zone_of(zone.as_deref()))
                .collect();
            windows
                .send_windows
                .widening_at(now.instant(), windows.tolerance, &zones)
        }
    };
    for target in &windows.targets {
        let (from, to) = window(target, now.instant(), windows.tolerance);
        let (from, to) = match target.is_overdue() {
            true => (saturating_add(from, -widen), to),
            false => (saturating_add(from, -widen), saturating_add(to, widen)),
        };
        let range = (Timestamp::new(from), Timestamp::new(to));
        let mut after = None;
        loop {
            let accepted_at = target.is_overdue().then_some(now);
            let page = reminders::window_candidates(db, &target.reminder_type(), range, after, PAGE_SIZE, accepted_at)?;
            let Some(last) = page.last() else { break };
            after = Some((last.due_at, last.assignment_id));
            let full = page.len() as i64 == PAGE_SIZE;
            let (page, moved) = split_by_send_time(windows, target, page, now.instant());
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
                .chain(moved)
                .collect();
            visit(db, target, decided)?;
            if !full {
                break;
            }
        }
    }
    Ok(())
}

/// Of a page of candidates, those whose time has come in this run, and
/// (decided `Moved`) those planned now that a send window moves elsewhere.
fn split_by_send_time(
    windows: &Windows,
    target: &Target,
    page: Vec<Candidate>,
    now: DateTime<Utc>,
) -> (Vec<Candidate>, Vec<(Candidate, Decision)>) {
    let (mut due, mut moved) = (Vec::with_capacity(page.len()), Vec::new());
    for candidate in page {
        let sends = windows.send_time(target, &candidate);
        if is_due_now(sends.at, now, windows.tolerance) {
            due.push(candidate);
        } else if sends.shift.is_some()
            && candidate.status_for_this_deadline().is_none()
            && is_due_now(target.planned_at(candidate.due_at.instant()), now, windows.tolerance)
        {
            moved.push((candidate, Decision::Moved));
        }
    }
    (due, moved)
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
            let sends = windows.send_time(target, &candidate).at;
            // Due now, so it goes now, not later; unless the send window
            // is still closed, then at its opening.
            let scheduled_for = if windows.is_open(&candidate, now.instant()) {
                sends.min(now.instant())
            } else {
                sends
            };
            let row = |status: Status, last_error: Option<String>| NewReminder {
                id: Id::new(),
                assignment_id: candidate.assignment_id,
                reminder_type: target.reminder_type(),
                scheduled_for: Timestamp::new(scheduled_for),
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
                Decision::Queued | Decision::AlreadySkippedOrFailed | Decision::Moved => {}
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
    /// Why the student's send window moved it from its planned time, if it did.
    pub moved: Option<String>,
}

/// What a `send` run does with a due reminder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Sends it: schedules it now, or sends the one an earlier run queued.
    Send,
    /// Records it skipped: a nearer target of the same run wins.
    Skip { nearer: Target },
    /// Leaves it: the send window moves it to another run's time.
    Wait,
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
            let zone = zone_of(candidate.student_timezone.as_deref());
            let moved = windows
                .send_time(target, &candidate)
                .shift
                .map(|shift| shift.reason(zone));
            let action = match decision {
                Decision::Send | Decision::Queued => Action::Send,
                Decision::Skip { nearer } => Action::Skip { nearer },
                Decision::Moved => Action::Wait,
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
                due_local: time::local_short(due, zone),
                queued,
                moved,
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
            windows.targets.iter().any(|other| {
                other != target && is_due_now(windows.send_time(other, candidate).at, now, windows.tolerance)
            })
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
                    .filter(|t| !earlier.contains(&(candidate.assignment_id, t.reminder_type())))
                    .map(|t| (t, windows.send_time(t, candidate).at));
                if let Some(winner) = nearest_target(open, now, windows.tolerance) {
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
