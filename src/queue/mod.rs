//! Sending from a queue table: the statuses a message goes through, the rules
//! for what a failure costs (`policy`), and the claim–send–record run (`pipeline`).

pub mod pipeline;
pub mod policy;

pub use crate::db::queue::{NewSendLog, QueueState, Resolution, RetrySelection};
pub use crate::db::types::{LogStatus, OptOutReason, ReportKind, Status};

use crate::db::types::{Id, Timestamp};
use crate::db::{Db, contacts, reminders, summaries};
use crate::error::invalid;

/// How many failed messages `retry` put back, per queue.
#[derive(Debug, Default, serde::Serialize)]
pub struct Requeued {
    pub reminders: usize,
    pub daily_summaries: usize,
    /// Guardians' digests and escalations, teachers' reports.
    pub contact_messages: usize,
}

/// Puts failed reminders and daily summaries back in their queues, attempts
/// reset, due at `now`. Listed ids must each be a failed reminder or summary;
/// otherwise nothing changes (bad input).
pub fn retry(db: &mut Db, selection: &RetrySelection, now: Timestamp) -> anyhow::Result<Requeued> {
    if let RetrySelection::Ids(ids) = selection {
        let found: Vec<(Id, Status, (&str, &str))> = reminders::statuses(db, ids)?
            .into_iter()
            .map(|(id, status)| (id, status, ("reminder", "reminders")))
            .chain(
                summaries::statuses(db, ids)?
                    .into_iter()
                    .map(|(id, status)| (id, status, ("daily summary", "daily summaries"))),
            )
            .chain(
                contacts::statuses(db, ids)?
                    .into_iter()
                    .map(|(id, status)| (id, status, ("message", "messages"))),
            )
            .collect();
        for id in ids {
            match found.iter().find(|(found, _, _)| found == id) {
                None => {
                    return Err(invalid(format!(
                        "no reminder has the id `{id}`, and no daily summary or message to a guardian or teacher either"
                    )));
                }
                Some((_, status, (what, plural))) if *status != Status::Failed => {
                    return Err(invalid(format!(
                        "{what} `{id}` is {status}; only failed {plural} can be retried"
                    )));
                }
                Some(_) => {}
            }
        }
    }
    Ok(Requeued {
        reminders: reminders::requeue_failed(db, selection, now)?,
        daily_summaries: summaries::requeue_failed(db, selection, now)?,
        contact_messages: contacts::requeue_failed(db, selection, now)?,
    })
}
