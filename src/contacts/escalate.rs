//! `send --escalate-after N`: each overdue step at or after N, once sent to
//! the student, is copied to each of their guardians as a message of its own
//! (own row, send log and Message-ID), once per guardian and step, and again
//! only when a moved deadline re-arms the step.

use std::collections::HashSet;

use chrono::Duration;

use crate::db::Db;
use crate::db::contacts::{self, NewContactMessage};
use crate::db::types::{ContactKind, Id, Timestamp};
use crate::queue::Status;
use crate::schedule::Target;
use crate::time;

/// How long after a step was sent it is still copied: enough for a run
/// killed before it got to the copies, without mailing guardians about
/// steps sent before escalation was turned on.
const LOOKBACK: Duration = Duration::days(1);

/// Schedules the copies owed at `now` of steps `after` or more past the
/// deadline; returns how many.
pub fn schedule(db: &mut Db, after: Duration, now: Timestamp) -> anyhow::Result<usize> {
    let since = Timestamp::new(time::saturating_add(now.instant(), -LOOKBACK));
    let owed: Vec<NewContactMessage> = contacts::sent_steps_with_guardians(db, since)?
        .into_iter()
        .filter(|step| {
            Target::from_reminder_type(&step.reminder_type)
                .is_some_and(|target| target.is_overdue() && -target.offset() >= after)
        })
        .map(|step| {
            let period = time::utc(step.due_at.instant());
            NewContactMessage {
                id: Id::new(),
                kind: ContactKind::Escalation,
                guardian_id: Some(step.guardian_id),
                teacher_id: None,
                reminder_id: Some(step.reminder_id),
                message_key: NewContactMessage::key(
                    ContactKind::Escalation,
                    step.guardian_id,
                    &format!("{}@{period}", step.reminder_id),
                ),
                period,
                scheduled_for: now,
                status: Status::Pending,
                last_error: None,
                created_at: now,
                updated_at: now,
            }
        })
        .collect();
    if owed.is_empty() {
        return Ok(0);
    }
    let keys: Vec<String> = owed.iter().map(|row| row.message_key.clone()).collect();
    let existing: HashSet<String> = contacts::existing_keys(db, &keys)?.into_iter().collect();
    let new: Vec<NewContactMessage> = owed
        .into_iter()
        .filter(|row| !existing.contains(&row.message_key))
        .collect();
    contacts::schedule(db, &new)
}
