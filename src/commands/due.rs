//! `reminders due`: the assignments in the reminder windows now. Read-only.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use super::Outcome;
use crate::cli::WindowArgs;
use crate::db::DatabaseUrl;
use crate::db::Db;
use crate::db::reminders::{self, Candidate, PENDING};
use crate::db::types::{Id, Timestamp};
use crate::input::zone_of;
use crate::output::{self, Report};
use crate::schedule::{Target, in_window, nearest_target, window};
use crate::settings::Windows;
use crate::time;

/// Rows read per query while walking a window.
pub const PAGE_SIZE: i64 = 2_000;

pub fn run(database: &DatabaseUrl, args: WindowArgs) -> anyhow::Result<Outcome> {
    let windows = Windows::from_args(&args)?;
    let mut db = Db::open(database)?;
    Ok(Outcome::success(DueList(due_items(&mut db, &windows)?)))
}

/// One (assignment, target) pair in a window whose reminder is still to send.
#[derive(Debug, Serialize)]
pub struct DueItem {
    pub assignment_id: Id,
    pub student_email: String,
    pub title: String,
    pub due_at: String,
    pub reminder_type: String,
    /// `send`, or `skip` when a nearer target of the same run wins.
    pub action: String,
    #[serde(skip)]
    pub due_local: String,
}

/// Walks every candidate in `target`'s window at `now`, a page at a time, so
/// memory stays flat however many assignments are due.
pub fn walk_window(
    db: &mut Db,
    windows: &Windows,
    target: &Target,
    now: Timestamp,
    mut visit: impl FnMut(&mut Db, Vec<Candidate>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let (from, to) = window(target, now.instant(), windows.tolerance);
    let range = (Timestamp::new(from), Timestamp::new(to));
    let mut after = None;
    loop {
        let page = reminders::window_candidates(db, &target.reminder_type(), range, after, PAGE_SIZE)?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = Some((last.due_at, last.assignment_id));
        let full = page.len() as i64 == PAGE_SIZE;
        visit(db, page)?;
        if !full {
            return Ok(());
        }
    }
}

/// The README's rule for an assignment in two windows at once: only the
/// target nearest to the time left is sent, and the others are recorded
/// skipped, so that one run does not send two messages at once.
///
/// The rivals are only the targets whose reminders this run would create. A
/// reminder that an earlier run created (sent, skipped or still pending) is
/// settled: the 2m reminder sent at 11:57 must not supersede the 1m reminder
/// whose window comes at 11:58.
#[derive(Default)]
pub struct NearestRule {
    /// The winner chosen for each contested assignment in this run. Kept so
    /// that the rows this run inserts while walking one target's window do not
    /// pass for an earlier run's when the next target's window is walked.
    chosen: HashMap<Id, Target>,
}

impl NearestRule {
    /// For each candidate of a page of `target`'s window, in order: the nearer
    /// target that supersedes it in this run, or `None` when it is to be sent.
    /// Candidates that have a reminder already get `None`; the rule is not theirs.
    pub fn superseded_by(
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
            .filter(|c| c.reminder_status.is_none() && !self.chosen.contains_key(&c.assignment_id))
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
                Some(winner) if candidate.reminder_status.is_none() && winner != target => Some(winner.clone()),
                _ => None,
            })
            .collect())
    }
}

/// Every due (assignment, target) pair, with what a `send` would do with it.
pub fn due_items(db: &mut Db, windows: &Windows) -> anyhow::Result<Vec<DueItem>> {
    let now = Timestamp::now(&windows.clock);
    let mut items = Vec::new();
    let mut rule = NearestRule::default();
    for target in &windows.targets {
        walk_window(db, windows, target, now, |db, page| {
            let superseded = rule.superseded_by(db, windows, now.instant(), target, &page)?;
            for (candidate, nearer) in page.into_iter().zip(superseded) {
                if candidate
                    .reminder_status
                    .as_deref()
                    .is_some_and(|status| status != PENDING)
                {
                    continue;
                }
                let due = candidate.due_at.instant();
                let action = match nearer {
                    Some(nearer) => format!("skip (nearer {nearer})"),
                    None => "send".to_string(),
                };
                items.push(DueItem {
                    assignment_id: candidate.assignment_id,
                    student_email: candidate.student_email,
                    title: candidate.title,
                    due_at: time::utc(due),
                    reminder_type: target.reminder_type(),
                    action,
                    due_local: time::local_short(due, zone_of(candidate.student_timezone.as_deref())),
                });
            }
            Ok(())
        })?;
    }
    Ok(items)
}

pub struct DueList(pub Vec<DueItem>);

impl Report for DueList {
    fn to_json(&self) -> serde_json::Value {
        json!(self.0)
    }

    fn to_table(&self) -> String {
        if self.0.is_empty() {
            return "nothing is due".to_string();
        }
        let rows = self.0.iter().map(|item| {
            [
                item.reminder_type.clone(),
                item.student_email.clone(),
                item.title.clone(),
                item.due_local.clone(),
                item.action.clone(),
                item.assignment_id.to_string(),
            ]
        });
        output::table(&["type", "student", "title", "due", "action", "assignment"], rows)
    }
}
