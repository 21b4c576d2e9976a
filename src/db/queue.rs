//! What the two send queues (`reminders` and `daily_summaries`) share: their
//! statuses, how a finished attempt is written back, and the send log.
//!
//! The two tables have the same queue columns (status, scheduled_for,
//! attempts, last_error, sent_at, claimed_until, claimed_by), so the writes
//! are macros that name the table and compile against either.

use diesel::prelude::*;

use super::schema::send_logs;
use super::types::{Id, Timestamp};

pub const PENDING: &str = "pending";
pub const SENT: &str = "sent";
pub const FAILED: &str = "failed";
pub const SKIPPED: &str = "skipped";

/// How one claimed message ended in this run.
#[derive(Debug, Clone)]
pub enum Resolution {
    /// The mail server accepted it.
    Sent { at: Timestamp },
    /// A transient failure; try again at `retry_at`.
    RetryLater { error: String, retry_at: Timestamp },
    /// Rejected for good, or out of attempts.
    Failed { error: String },
    /// Not this message's fault (the run or the relay failed): left for a
    /// later run as it was, with the reason; not an attempt.
    Released { error: String },
    /// Deliberately not sent (opted out, completed, too late); not an attempt.
    Skipped { reason: String },
}

/// A send attempt for the audit log.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = send_logs)]
pub struct NewSendLog {
    pub id: Id,
    pub reminder_id: Option<Id>,
    pub assignment_id: Option<Id>,
    pub summary_id: Option<Id>,
    pub to_email: String,
    pub from_inbox: String,
    pub message_id: Option<String>,
    pub status: &'static str,
    pub error: Option<String>,
    pub created_at: Timestamp,
}

/// Whether any of these send logs is stored: after a lost connection, whether
/// the group commit that carried them went through before the line dropped.
pub fn any_log_stored(db: &mut super::Db, ids: &[Id]) -> anyhow::Result<bool> {
    use anyhow::Context;
    let found: i64 = super::with_conn!(db, conn => send_logs::table
        .filter(send_logs::id.eq_any(ids))
        .count()
        .get_result(conn))
    .context("cannot read the send log")?;
    Ok(found > 0)
}

/// Inserts send logs inside the caller's transaction.
macro_rules! insert_logs {
    ($conn:ident, $logs:expr) => {{
        let logs: &[$crate::db::queue::NewSendLog] = $logs;
        if !logs.is_empty() {
            diesel::insert_into($crate::db::schema::send_logs::table)
                .values(logs)
                .execute($conn)?;
        }
    }};
}
pub(crate) use insert_logs;

/// Inserts `$rows` into `$table`, skipping any that clash on the unique
/// `$key`: ON CONFLICT DO NOTHING, so overlapping runs schedule each row once.
/// Returns how many rows went in.
macro_rules! insert_ignoring_conflicts {
    ($db:expr, $table:ident, $rows:expr, $key:expr) => {{
        use $crate::db::schema::$table;
        match $db {
            $crate::db::Db::Postgres(conn) => diesel::insert_into($table::table)
                .values($rows)
                .on_conflict($key)
                .do_nothing()
                .execute(conn),
            // Diesel cannot put ON CONFLICT on a multi-row insert for SQLite; row by
            // row inside one transaction costs microseconds a row there.
            $crate::db::Db::Sqlite(conn) => conn.immediate_transaction(|conn| {
                $rows.iter().try_fold(0, |inserted, row| {
                    let one = diesel::insert_into($table::table)
                        .values(row)
                        .on_conflict($key)
                        .do_nothing()
                        .execute(conn)?;
                    Ok(inserted + one)
                })
            }),
        }
    }};
}
pub(crate) use insert_ignoring_conflicts;

/// Writes each resolution into `$table`, releasing the claims, inside the
/// caller's transaction, and returns the ids it wrote. Every write is fenced:
/// it touches a row only while run `$run_id` still holds it and it is still
/// pending. A row another run took over (after this run's lease ran out) is
/// left as that run has it, and a `sent` row never changes again.
/// Deliveries share one UPDATE: they are the bulk.
macro_rules! apply_resolutions {
    ($conn:ident, $table:ident, $run_id:expr, $resolved:expr, $now:expr) => {{
        use $crate::db::queue::{FAILED, PENDING, Resolution, SENT, SKIPPED};
        use $crate::db::schema::$table;
        let resolved: &[(Id, Resolution)] = $resolved;
        let run_id: Id = $run_id;
        let now: Timestamp = $now;
        let held = $table::claimed_by.eq(run_id).and($table::status.eq(PENDING));
        let no_claim = (
            $table::claimed_until.eq(None::<Timestamp>),
            $table::claimed_by.eq(None::<Id>),
        );
        let sent: Vec<Id> = resolved
            .iter()
            .filter_map(|(id, r)| matches!(r, Resolution::Sent { .. }).then_some(*id))
            .collect();
        let mut written: Vec<Id> = Vec::with_capacity(resolved.len());
        if !sent.is_empty() {
            // The group shares one sent_at: deliveries in a group are milliseconds apart.
            let sent_at = resolved.iter().find_map(|(_, r)| match r {
                Resolution::Sent { at } => Some(*at),
                _ => None,
            });
            written.extend(
                diesel::update($table::table.filter($table::id.eq_any(&sent)).filter(held))
                    .set((
                        $table::status.eq(SENT),
                        $table::sent_at.eq(sent_at),
                        $table::attempts.eq($table::attempts + 1),
                        $table::last_error.eq(None::<String>),
                        no_claim,
                        $table::updated_at.eq(now),
                    ))
                    .returning($table::id)
                    .get_results::<Id>($conn)?,
            );
        }
        for (id, resolution) in resolved {
            let row = $table::table.find(*id).filter(held);
            let updated = match resolution {
                Resolution::Sent { .. } => continue,
                Resolution::RetryLater { error, retry_at } => diesel::update(row)
                    .set((
                        $table::attempts.eq($table::attempts + 1),
                        $table::last_error.eq(error),
                        $table::scheduled_for.eq(retry_at),
                        no_claim,
                        $table::updated_at.eq(now),
                    ))
                    .execute($conn)?,
                Resolution::Failed { error } => diesel::update(row)
                    .set((
                        $table::status.eq(FAILED),
                        $table::attempts.eq($table::attempts + 1),
                        $table::last_error.eq(error),
                        no_claim,
                        $table::updated_at.eq(now),
                    ))
                    .execute($conn)?,
                // Still claimed, so this run does not take it again; the run
                // hands all such rows back when it ends.
                Resolution::Released { error } => diesel::update(row)
                    .set(($table::last_error.eq(error), $table::updated_at.eq(now)))
                    .execute($conn)?,
                Resolution::Skipped { reason } => diesel::update(row)
                    .set((
                        $table::status.eq(SKIPPED),
                        $table::last_error.eq(reason),
                        no_claim,
                        $table::updated_at.eq(now),
                    ))
                    .execute($conn)?,
            };
            if updated == 1 {
                written.push(*id);
            }
        }
        written
    }};
}
pub(crate) use apply_resolutions;

/// Extends the lease on every pending row of `$table` that run `$run_id`
/// holds, in one UPDATE, and returns their ids: whatever is missing from the
/// answer was taken over by another run.
macro_rules! renew_claims {
    ($conn:ident, $table:ident, $run_id:expr, $now:expr, $lease_until:expr) => {{
        use $crate::db::schema::$table;
        diesel::update(
            $table::table
                .filter($table::claimed_by.eq($run_id))
                .filter($table::status.eq(PENDING)),
        )
        .set(($table::claimed_until.eq($lease_until), $table::updated_at.eq($now)))
        .returning($table::id)
        .get_results::<Id>($conn)
    }};
}
pub(crate) use renew_claims;

/// Clears the claims that run `$run_id` still holds on pending rows of `$table`.
macro_rules! release_claims {
    ($conn:ident, $table:ident, $run_id:expr, $now:expr) => {{
        use $crate::db::schema::$table;
        diesel::update(
            $table::table
                .filter($table::claimed_by.eq($run_id))
                .filter($table::status.eq(PENDING)),
        )
        .set((
            $table::claimed_until.eq(None::<Timestamp>),
            $table::claimed_by.eq(None::<Id>),
            $table::updated_at.eq($now),
        ))
        .execute($conn)
    }};
}
pub(crate) use release_claims;
