//! `send --digest`: all the reminders a run sends to one student, in one
//! message that lists each assignment, nearest first. Every reminder row is
//! still claimed, checked and recorded on its own; the message is one
//! attempt for them all, so a rejection or a retry concerns them together.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use lettre::Message;
use sha2::{Digest as _, Sha256};

use super::job::{self, Reminders, message_of, row_of};
use crate::db::Db;
use crate::db::queue::QueueTable;
use crate::db::reminders::{self, Claimed};
use crate::db::types::{Id, Timestamp};
use crate::input::zone_of;
use crate::mail::token::Subscriber;
use crate::mail::{self, Blame, Identity, SendFailure, Sender};
use crate::queue::pipeline::{JobInfo, Queue, Withheld};
use crate::render::{DigestContext, DigestItem, Kind};
use crate::schedule::summary_time;

/// The `reminders` table as a queue of one message per student.
pub struct Digests {
    pub reminders: Reminders,
    pub fold: Fold,
}

/// Which of a student's due reminders share one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fold {
    /// All of them (`send --digest`).
    Always,
    /// Those past the student's daily limit (`user set --max-per-day N`):
    /// while under it, each goes on its own; the one that would be the
    /// N-th message of their local day and all after it go as one digest,
    /// so the day has N messages, and none is dropped.
    PastDailyLimit,
}

/// One student's due reminders, nearest due first.
pub struct Digest {
    parts: Vec<Claimed>,
}

impl Digest {
    fn first(&self) -> &Claimed {
        &self.parts[0]
    }

    /// A digest's Message-ID names the set of reminders (and their
    /// deadlines) it carries, so that a resend after a crash, of the same
    /// set, has the same id. A digest of one is an ordinary reminder.
    fn edition(&self) -> Option<String> {
        if let [only] = self.parts.as_slice() {
            return job::edition(only);
        }
        let mut parts: Vec<(Id, i64)> = self
            .parts
            .iter()
            .map(|part| (part.reminder_id, part.due_at.instant().timestamp()))
            .collect();
        parts.sort();
        let mut hash = Sha256::new();
        for (id, due) in parts {
            hash.update(id.0.as_bytes());
            hash.update(due.to_be_bytes());
        }
        Some(format!("d{}", data_encoding::HEXLOWER.encode(&hash.finalize()[..8])))
    }
}

impl Queue for Digests {
    type Table = reminders::Table;
    type Job = Digest;

    /// A batch, and every other due reminder of its students, so that a
    /// student's reminders are never split over two messages by a batch's end.
    fn claim(
        &self,
        db: &mut Db,
        run_id: Id,
        now: Timestamp,
        lease_until: Timestamp,
        limit: i64,
    ) -> anyhow::Result<Vec<Claimed>> {
        let mut rows = reminders::Table::claim_batch(db, run_id, now, lease_until, limit)?;
        let mut students: Vec<Id> = rows.iter().map(|row| row.student_id).collect();
        students.sort();
        students.dedup();
        if !students.is_empty() {
            rows.extend(reminders::Table::claim_of_students(
                db,
                run_id,
                now,
                lease_until,
                &students,
            )?);
        }
        Ok(rows)
    }

    fn jobs(&self, db: &mut Db, rows: Vec<Claimed>, now: Timestamp) -> anyhow::Result<Vec<Digest>> {
        let mut order: Vec<Id> = Vec::new();
        let mut by_student: HashMap<Id, Vec<Claimed>> = HashMap::new();
        for row in rows {
            if !by_student.contains_key(&row.student_id) {
                order.push(row.student_id);
            }
            by_student.entry(row.student_id).or_default().push(row);
        }
        let mut digests = Vec::with_capacity(order.len());
        for mut parts in order.into_iter().filter_map(|student| by_student.remove(&student)) {
            parts.sort_by_key(|part| (part.due_at, part.reminder_id));
            let alone = match (self.fold, parts[0].max_per_day) {
                (Fold::Always, _) => 0,
                (Fold::PastDailyLimit, None) => parts.len(),
                (Fold::PastDailyLimit, Some(limit)) => {
                    let first = &parts[0];
                    let zone = zone_of(first.student_timezone.as_deref());
                    let today = now.instant().with_timezone(&zone).date_naive();
                    let midnight = Timestamp::new(summary_time(today, 0, zone));
                    let sent = reminders::delivered_since(db, &first.student_email, midnight)?;
                    let left = (i64::from(limit) - sent).max(0) as usize;
                    if parts.len() <= left {
                        parts.len()
                    } else {
                        left.saturating_sub(1)
                    }
                }
            };
            let folded = parts.split_off(alone.min(parts.len()));
            digests.extend(parts.into_iter().map(|part| Digest { parts: vec![part] }));
            if !folded.is_empty() {
                digests.push(Digest { parts: folded });
            }
        }
        Ok(digests)
    }

    fn info(&self, digest: &Digest) -> JobInfo {
        JobInfo {
            to_email: digest.first().student_email.clone(),
            message: message_of(digest.first()),
            edition: digest.edition(),
            rows: digest.parts.iter().map(row_of).collect(),
        }
    }

    /// Each reminder is checked on its own: the digest carries those that may go.
    fn check(&self, digest: Digest, now: Timestamp) -> (Option<Digest>, Vec<(Id, Withheld)>) {
        let mut skipped = Vec::new();
        let parts: Vec<Claimed> = digest
            .parts
            .into_iter()
            .filter(|part| match self.reminders.withheld(part, now.instant()) {
                Some(withheld) => {
                    skipped.push((part.reminder_id, withheld));
                    false
                }
                None => true,
            })
            .collect();
        let sendable = (!parts.is_empty()).then_some(Digest { parts });
        (sendable, skipped)
    }

    fn compose(&self, digest: &Digest, sender: &Sender, now: DateTime<Utc>) -> Result<Message, SendFailure> {
        if let [only] = digest.parts.as_slice() {
            return job::compose(only, sender, now, &self.reminders.templates);
        }
        let first = digest.first();
        let zone = zone_of(first.student_timezone.as_deref());
        let assignments: Vec<DigestItem> = digest
            .parts
            .iter()
            .map(|part| DigestItem {
                assignment: job::assignment_view(part, zone, now),
                reminder_type: part.reminder_type.clone(),
            })
            .collect();
        let context = DigestContext {
            student: job::student_view(first, zone),
            count: digest.parts.len(),
            overdue: assignments.iter().any(|item| item.assignment.overdue_by.is_some()),
            assignments,
        };
        let rendered = self
            .reminders
            .templates
            .render(Kind::Digest, first.student_locale.as_deref(), &context)
            .map_err(|e| SendFailure::new(Blame::Message, format!("{e:#}")))?;
        let identity = Identity {
            message: message_of(first),
            edition: digest.edition(),
            recipient: Subscriber::Student(first.student_id.0),
        };
        mail::build(sender, &first.student_email, context.student.name, identity, rendered)
    }
}
