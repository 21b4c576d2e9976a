//! `reminders due`: the assignments in the reminder windows now. Read-only.

use serde::Serialize;
use serde_json::json;

use super::Outcome;
use crate::cli::WindowArgs;
use crate::config::{DatabaseUrl, Windows};
use crate::db::Db;
use crate::db::reminders::{self, Candidate, PENDING};
use crate::db::types::{Id, Timestamp};
use crate::input::zone_of;
use crate::output::{self, Report};
use crate::schedule::{Target, nearest_target, window};
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

/// Every due (assignment, target) pair, with what a `send` would do with it.
pub fn due_items(db: &mut Db, windows: &Windows) -> anyhow::Result<Vec<DueItem>> {
    let now = windows.clock.now();
    let mut items = Vec::new();
    for target in &windows.targets {
        walk_window(db, windows, target, now, |_, page| {
            for candidate in page {
                if candidate
                    .reminder_status
                    .as_deref()
                    .is_some_and(|status| status != PENDING)
                {
                    continue;
                }
                let due = candidate.due_at.instant();
                let action = match nearest_target(&windows.targets, due, now.instant(), windows.tolerance) {
                    Some(nearest) if nearest != target => format!("skip (nearer {nearest})"),
                    _ => "send".to_string(),
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
