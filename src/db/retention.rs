//! Retention: deleting old send logs, bounce reports, and finished reminders
//! and summaries in short batches, so no transaction holds a long lock on
//! PostgreSQL.

use chrono::Days;
use diesel::dsl::{exists, not};
use diesel::prelude::*;
use serde::Serialize;

use super::schema::{assignments, bounce_reports, contact_messages, daily_summaries, reminders, send_logs};
use super::types::Status;
use super::types::{Id, Timestamp};
use super::{Db, with_conn, write_transaction};

/// Rows deleted (or, in a dry run, that would be) per table.
#[derive(Debug, Default, Serialize)]
pub struct Pruned {
    pub send_logs: usize,
    pub reminders: usize,
    pub daily_summaries: usize,
    pub contact_messages: usize,
    pub bounce_reports: usize,
}

/// Rows per delete transaction.
const BATCH: i64 = 1_000;

/// Deletes what is older than `cutoff`:
/// - send logs created before it;
/// - bounce reports recorded before it (they hold addresses). A report read
///   again after that, from an mbox kept that long, counts as new;
/// - finished reminders (sent, failed, skipped) last scheduled before it whose
///   assignment is already past due at `now`. A reminder of an assignment that
///   is still due stays, whatever its age, so its window can never find it
///   missing and send it again. Pending reminders always stay;
/// - finished daily summaries of local dates two days or more before the
///   cut-off's UTC date. The row of a summary is what stops a second one for
///   its date, so it stays while the summary could still be owed: a student's
///   local date is within a day of UTC's, and a summary can go out a day after
///   its date (an hour in a DST gap to midnight, see `schedule::summary_day`);
/// - finished guardians' digests and escalations and teachers' reports
///   scheduled more than 8 days before the cut-off: likewise, the row of a
///   weekly one stops a second in its week, and an escalation is owed only
///   for a day after its step.
pub fn prune(db: &mut Db, cutoff: Timestamp, now: Timestamp, dry_run: bool) -> anyhow::Result<Pruned> {
    let finished = [Status::Sent, Status::Failed, Status::Skipped];
    let keep_summaries_from = cutoff.instant().date_naive() - Days::new(2);
    // Each query is written once and either counted (dry run) or deleted in batches.
    macro_rules! prune_in_batches {
        ($table:ident, $selection:expr) => {{
            if dry_run {
                with_conn!(db, conn => $selection.count().get_result::<i64>(conn))? as usize
            } else {
                let mut deleted = 0;
                loop {
                    let batch = write_transaction!(db, conn => {
                        let ids: Vec<Id> = $selection.select($table::id).limit(BATCH).load(conn)?;
                        Ok(diesel::delete($table::table.filter($table::id.eq_any(ids))).execute(conn)?)
                    })?;
                    deleted += batch;
                    if batch == 0 {
                        break deleted;
                    }
                }
            }
        }};
    }
    let send_logs = prune_in_batches!(send_logs, send_logs::table.filter(send_logs::created_at.lt(cutoff)));
    let reminders = prune_in_batches!(
        reminders,
        reminders::table
            .filter(reminders::status.eq_any(finished))
            // When it was last planned for: the run's clock, like the cut-off.
            .filter(reminders::scheduled_for.lt(cutoff))
            .filter(exists(
                assignments::table
                    .filter(assignments::id.eq(reminders::assignment_id))
                    .filter(assignments::due_at.lt(now)),
            ))
            // Logs kept (newer than the cut-off) still point at their reminder;
            // the older ones go first, above.
            .filter(not(exists(
                send_logs::table
                    .filter(send_logs::reminder_id.eq(reminders::id.nullable()))
                    .filter(send_logs::created_at.ge(cutoff)),
            )))
    );
    let daily_summaries = prune_in_batches!(
        daily_summaries,
        daily_summaries::table
            .filter(daily_summaries::status.eq_any(finished))
            .filter(daily_summaries::local_date.lt(keep_summaries_from))
    );
    let keep_contacts_from = Timestamp::new(cutoff.instant() - chrono::Duration::days(8));
    let contact_messages = prune_in_batches!(
        contact_messages,
        contact_messages::table
            .filter(contact_messages::status.eq_any(finished))
            .filter(contact_messages::created_at.lt(keep_contacts_from))
    );
    let bounce_reports = prune_in_batches!(
        bounce_reports,
        bounce_reports::table.filter(bounce_reports::created_at.lt(cutoff))
    );
    Ok(Pruned {
        send_logs,
        reminders,
        daily_summaries,
        contact_messages,
        bounce_reports,
    })
}
