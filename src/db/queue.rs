//! The send queues, `reminders`, `daily_summaries` and `contact_messages`, written once.
//!
//! Both tables have the same queue columns (status, scheduled_for, attempts,
//! last_error, sent_at, claimed_until, claimed_by). [`queue_table!`] takes a
//! table and what differs (the claim order, the row a claim loads, how a
//! student's rows are found) and generates the plain functions that claim,
//! renew, record, release, requeue and count its rows. `db::reminders`,
//! `db::summaries` and `db::contacts` each invoke it once.

use anyhow::Context;
use diesel::prelude::*;

use super::schema::send_logs;
use super::types::{Id, LogStatus, OptOutReason, Timestamp};
use super::{Db, with_conn, write_transaction};

pub use super::types::Status;

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
    /// Not yet: the recipient's send window is closed. Back in the queue
    /// until `until`, with why; not an attempt.
    Deferred { reason: String, until: Timestamp },
}

/// A send attempt for the audit log.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = send_logs)]
// None is bound as NULL (every such column defaults to NULL anyway): then
// a group of logs is one multi-row INSERT on SQLite too, not one per row.
#[diesel(treat_none_as_default_value = false)]
pub struct NewSendLog {
    pub id: Id,
    pub reminder_id: Option<Id>,
    pub assignment_id: Option<Id>,
    pub summary_id: Option<Id>,
    pub contact_message_id: Option<Id>,
    pub to_email: String,
    pub from_inbox: String,
    pub message_id: Option<String>,
    pub status: LogStatus,
    pub error: Option<String>,
    pub created_at: Timestamp,
}

/// Which failed messages `retry` puts back.
pub enum RetrySelection {
    /// Every failed one, optionally only those last updated at or after
    /// `since`, or those of one student.
    Failed {
        since: Option<Timestamp>,
        student: Option<Id>,
    },
    /// These, which must all be failed.
    Ids(Vec<Id>),
}

/// One queue at a glance, for `reminders status`.
#[derive(Debug, Default, serde::Serialize)]
pub struct QueueState {
    /// Rows per status, all time, zero counts included.
    pub by_status: Vec<(Status, i64)>,
    /// Pending rows that failed before and wait for their next attempt.
    pub waiting_for_retry: i64,
    pub next_retry_at: Option<Timestamp>,
    /// Pending rows due now or earlier (ready for the next run).
    pub ready: i64,
    pub oldest_ready: Option<Timestamp>,
    pub sent_last_24h: i64,
}

/// The operations of one queue table, for the pipeline; [`queue_table!`]
/// implements it for each table as `Table`.
pub trait QueueTable {
    /// A claimed row, with what the message needs of its student.
    type Row: Send;
    fn claim_batch(
        db: &mut Db,
        run_id: Id,
        now: Timestamp,
        lease_until: Timestamp,
        limit: i64,
    ) -> anyhow::Result<Vec<Self::Row>>;
    /// Like `claim_batch`, every due row of these students (for a digest,
    /// which carries all of a student's due reminders in one message).
    fn claim_of_students(
        db: &mut Db,
        run_id: Id,
        now: Timestamp,
        lease_until: Timestamp,
        students: &[Id],
    ) -> anyhow::Result<Vec<Self::Row>>;
    fn reload_held(db: &mut Db, run_id: Id, ids: &[Id]) -> anyhow::Result<Vec<Self::Row>>;
    fn renew_claims(db: &mut Db, run_id: Id, now: Timestamp, lease_until: Timestamp) -> anyhow::Result<Vec<Id>>;
    fn record(
        db: &mut Db,
        run_id: Id,
        resolved: &[(Id, Resolution)],
        logs: &[NewSendLog],
        now: Timestamp,
    ) -> anyhow::Result<Vec<Id>>;
    fn release_claims(db: &mut Db, run_id: Id, now: Timestamp) -> anyhow::Result<usize>;
    fn count_claimable(db: &mut Db, now: Timestamp) -> anyhow::Result<i64>;
}

/// Whether any of these send logs is stored: after a lost connection, whether
/// the group commit that carried them went through before the line dropped.
pub fn any_log_stored(db: &mut Db, ids: &[Id]) -> anyhow::Result<bool> {
    let found: i64 = with_conn!(db, conn => send_logs::table
        .filter(send_logs::id.eq_any(ids))
        .count()
        .get_result(conn))
    .context("cannot read the send log")?;
    Ok(found > 0)
}

/// The most frequent errors of failed or rejected attempts since `since`,
/// with how many, most frequent first: what `status` shows.
pub fn frequent_errors(db: &mut Db, since: Timestamp, limit: i64) -> anyhow::Result<Vec<(String, i64)>> {
    use diesel::dsl::count_star;
    let found: Vec<(Option<String>, i64)> = with_conn!(db, conn => send_logs::table
        .filter(send_logs::created_at.ge(since))
        .filter(send_logs::status.eq_any([LogStatus::Failed, LogStatus::Rejected]))
        .group_by(send_logs::error)
        .select((send_logs::error, count_star()))
        .order(count_star().desc())
        .limit(limit)
        .load(conn))
    .context("cannot read the recent errors")?;
    Ok(found
        .into_iter()
        .map(|(error, n)| (error.unwrap_or_else(|| "(no reason given)".to_string()), n))
        .collect())
}

/// Send logs read for the bounce rule: enough to see the latest attempts and
/// the bounce reports about them that came in since.
const BOUNCE_RULE_LOGS: i64 = 50;

/// The bounce rule's write: reads the address's latest send logs, newest
/// first, and when `rule` says they warrant it, opts the user out (reason
/// `bounced`) and appends `note` to the latest log, all in one transaction.
/// The rule itself is the caller's (`queue::policy`). Returns whether it
/// opted the address out now.
pub fn opt_out_after_rejections(
    db: &mut Db,
    email: &str,
    rule: impl Fn(&[(Option<String>, LogStatus, Timestamp)]) -> bool,
    note: &str,
    now: Timestamp,
) -> anyhow::Result<bool> {
    write_transaction!(db, conn => {
        let latest: Vec<(Id, Option<String>, LogStatus, Timestamp)> = send_logs::table
            .filter(send_logs::to_email.eq(email))
            .order((send_logs::created_at.desc(), send_logs::id.desc()))
            .select((send_logs::id, send_logs::message_id, send_logs::status, send_logs::created_at))
            .limit(BOUNCE_RULE_LOGS)
            .load(conn)?;
        let history: Vec<(Option<String>, LogStatus, Timestamp)> = latest
            .iter()
            .map(|(_, message_id, status, at)| (message_id.clone(), *status, *at))
            .collect();
        if !rule(&history) {
            return Ok(false);
        }
        let opted_out = super::contacts::opt_out_address!(conn, email, Some(OptOutReason::Bounced), now);
        if opted_out == 0 {
            return Ok(false);
        }
        let latest_log = send_logs::table.find(latest[0].0);
        let error: Option<String> = latest_log.select(send_logs::error).first(conn)?;
        diesel::update(latest_log)
            .set(send_logs::error.eq(error.unwrap_or_default() + note))
            .execute(conn)?;
        Ok(true)
    })
    .context("cannot apply the bounce rule")
}

/// Generates a queue table's functions. `order` is the claim order; `load`
/// names a macro `load!(conn, run_id, ids)` that loads the rows `run_id`
/// still holds among `ids` as the claimed row type `row`; `of_students`
/// turns a slice of students' ids into a filter on the table. `what` names the rows
/// in error messages.
macro_rules! queue_table {
    (
        table: $table:ident,
        row: $row:ty,
        order: $order:expr,
        load: $load:ident,
        of_students: |$students:ident| $of_students:expr,
        what: $what:literal,
    ) => {
        use $crate::db::queue::{
            NewSendLog, QueueState, QueueTable, Resolution, RetrySelection, claimable_rows, lease, lease_and_load,
        };

        /// This table, for the pipeline.
        pub struct Table;

        impl QueueTable for Table {
            type Row = $row;

            fn claim_batch(
                db: &mut Db,
                run_id: Id,
                now: Timestamp,
                lease_until: Timestamp,
                limit: i64,
            ) -> anyhow::Result<Vec<$row>> {
                claim_batch(db, run_id, now, lease_until, limit)
            }

            fn claim_of_students(
                db: &mut Db,
                run_id: Id,
                now: Timestamp,
                lease_until: Timestamp,
                students: &[Id],
            ) -> anyhow::Result<Vec<$row>> {
                claim_of(db, run_id, now, lease_until, students)
            }

            fn reload_held(db: &mut Db, run_id: Id, ids: &[Id]) -> anyhow::Result<Vec<$row>> {
                reload_held(db, run_id, ids)
            }

            fn renew_claims(db: &mut Db, run_id: Id, now: Timestamp, lease_until: Timestamp) -> anyhow::Result<Vec<Id>> {
                renew_claims(db, run_id, now, lease_until)
            }

            fn record(
                db: &mut Db,
                run_id: Id,
                resolved: &[(Id, Resolution)],
                logs: &[NewSendLog],
                now: Timestamp,
            ) -> anyhow::Result<Vec<Id>> {
                record(db, run_id, resolved, logs, now)
            }

            fn release_claims(db: &mut Db, run_id: Id, now: Timestamp) -> anyhow::Result<usize> {
                release_claims(db, run_id, now)
            }

            fn count_claimable(db: &mut Db, now: Timestamp) -> anyhow::Result<i64> {
                count_claimable(db, now)
            }
        }

        /// Leases up to `limit` pending rows that are due by `now` and not
        /// leased by a live run to `run_id` until `lease_until`, and loads
        /// them. One short write transaction: `FOR UPDATE SKIP LOCKED` on
        /// PostgreSQL, so runs on several hosts take disjoint rows without
        /// waiting; `BEGIN IMMEDIATE` on SQLite, where the busy timeout makes
        /// overlapping runs take turns.
        pub fn claim_batch(
            db: &mut Db,
            run_id: Id,
            now: Timestamp,
            lease_until: Timestamp,
            limit: i64,
        ) -> anyhow::Result<Vec<$row>> {
            // An idle run finds nothing: one indexed read, not a write
            // transaction (three round trips on PostgreSQL, and SQLite's
            // write lock, which overlapping runs would wait on).
            let any: bool = with_conn!(db, conn => diesel::select(diesel::dsl::exists(
                claimable_rows!($table, now).select($table::id),
            ))
            .get_result(conn))
            .context(concat!("cannot look for ", $what, " to claim"))?;
            if !any {
                return Ok(Vec::new());
            }
            let claimable = claimable_rows!($table, now).order($order).select($table::id).limit(limit);
            lease!(db, claimable, $table, $load, run_id, now, lease_until).context(concat!("cannot claim ", $what))
        }

        /// Like `claim_batch`, every claimable row of these students.
        fn claim_of(
            db: &mut Db,
            run_id: Id,
            now: Timestamp,
            lease_until: Timestamp,
            $students: &[Id],
        ) -> anyhow::Result<Vec<$row>> {
            let claimable = claimable_rows!($table, now).filter($of_students).select($table::id);
            lease!(db, claimable, $table, $load, run_id, now, lease_until).context(concat!("cannot claim ", $what))
        }

        /// The rows among `ids` that `run_id` still holds, read again now: the
        /// facts as they are just before the send.
        pub fn reload_held(db: &mut Db, run_id: Id, ids: &[Id]) -> anyhow::Result<Vec<$row>> {
            with_conn!(db, conn => $load!(conn, run_id, ids)).context(concat!("cannot re-check claimed ", $what))
        }

        /// Extends the lease on every pending row that `run_id` holds, in one
        /// UPDATE, and returns their ids: whatever is missing from the answer
        /// was taken over by another run.
        pub fn renew_claims(db: &mut Db, run_id: Id, now: Timestamp, lease_until: Timestamp) -> anyhow::Result<Vec<Id>> {
            with_conn!(db, conn => diesel::update(
                $table::table
                    .filter($table::claimed_by.eq(run_id))
                    .filter($table::status.eq(Status::Pending)),
            )
            .set(($table::claimed_until.eq(lease_until), $table::updated_at.eq(now)))
            .returning($table::id)
            .get_results::<Id>(conn))
            .context(concat!("cannot renew the lease on claimed ", $what))
        }

        /// Records a group of finished rows and their send logs in one write
        /// transaction, and returns the ids it wrote. Every write is fenced:
        /// it touches a row only while `run_id` still holds it and it is
        /// still pending, so a row another run took over is left as that run
        /// has it, and a `sent` row never changes again. Send logs are always
        /// written: the attempt happened.
        pub fn record(
            db: &mut Db,
            run_id: Id,
            resolved: &[(Id, Resolution)],
            logs: &[NewSendLog],
            now: Timestamp,
        ) -> anyhow::Result<Vec<Id>> {
            let held = $table::claimed_by.eq(run_id).and($table::status.eq(Status::Pending));
            let no_claim = (
                $table::claimed_until.eq(None::<Timestamp>),
                $table::claimed_by.eq(None::<Id>),
            );
            let scrubbed_logs: Vec<NewSendLog>;
            let logs = if logs.iter().any(|log| log.error.as_deref().is_some_and($crate::redact::holds_secret)) {
                scrubbed_logs = logs.iter().cloned().map(|mut log| {
                    log.error = log.error.as_deref().map($crate::redact::scrub);
                    log
                }).collect();
                &scrubbed_logs[..]
            } else {
                logs
            };
            write_transaction!(db, conn => {
                let mut written: Vec<Id> = Vec::with_capacity(resolved.len());
                // Deliveries are the bulk: one UPDATE, with one sent_at for the
                // group (its deliveries are milliseconds apart).
                let sent: Vec<Id> = resolved
                    .iter()
                    .filter_map(|(id, r)| matches!(r, Resolution::Sent { .. }).then_some(*id))
                    .collect();
                let sent_at = resolved.iter().find_map(|(_, r)| match r {
                    Resolution::Sent { at } => Some(*at),
                    _ => None,
                });
                if !sent.is_empty() {
                    written.extend(
                        diesel::update($table::table.filter($table::id.eq_any(&sent)).filter(held))
                            .set((
                                $table::status.eq(Status::Sent),
                                $table::sent_at.eq(sent_at),
                                $table::attempts.eq($table::attempts + 1),
                                $table::last_error.eq(None::<String>),
                                no_claim,
                                $table::updated_at.eq(now),
                            ))
                            .returning($table::id)
                            .get_results::<Id>(conn)?,
                    );
                }
                for (id, resolution) in resolved {
                    let row = $table::table.find(*id).filter(held);
                    let updated = match resolution {
                        Resolution::Sent { .. } => continue,
                        Resolution::RetryLater { error, retry_at } => diesel::update(row)
                            .set((
                                $table::attempts.eq($table::attempts + 1),
                                $table::last_error.eq($crate::redact::scrub(error)),
                                $table::scheduled_for.eq(retry_at),
                                no_claim,
                                $table::updated_at.eq(now),
                            ))
                            .execute(conn)?,
                        Resolution::Failed { error } => diesel::update(row)
                            .set((
                                $table::status.eq(Status::Failed),
                                $table::attempts.eq($table::attempts + 1),
                                $table::last_error.eq($crate::redact::scrub(error)),
                                no_claim,
                                $table::updated_at.eq(now),
                            ))
                            .execute(conn)?,
                        // Still claimed, so this run does not take it again;
                        // the run hands all such rows back when it ends.
                        Resolution::Released { error } => diesel::update(row)
                            .set(($table::last_error.eq($crate::redact::scrub(error)), $table::updated_at.eq(now)))
                            .execute(conn)?,
                        Resolution::Deferred { reason, until } => diesel::update(row)
                            .set((
                                $table::last_error.eq(reason),
                                $table::scheduled_for.eq(until),
                                no_claim,
                                $table::updated_at.eq(now),
                            ))
                            .execute(conn)?,
                        Resolution::Skipped { reason } => diesel::update(row)
                            .set((
                                $table::status.eq(Status::Skipped),
                                $table::last_error.eq($crate::redact::scrub(reason)),
                                no_claim,
                                $table::updated_at.eq(now),
                            ))
                            .execute(conn)?,
                    };
                    if updated == 1 {
                        written.push(*id);
                    }
                }
                if !logs.is_empty() {
                    // A row removed (`assignment remove`, `user remove`) while
                    // this run held it: its log stays, without the link.
                    let recorded: std::collections::HashSet<&Id> = written.iter().collect();
                    let unwritten: Vec<Id> = resolved
                        .iter()
                        .map(|(id, _)| *id)
                        .filter(|id| !recorded.contains(id))
                        .collect();
                    let still_there: Vec<Id> = if unwritten.is_empty() {
                        Vec::new()
                    } else {
                        $table::table.filter($table::id.eq_any(&unwritten)).select($table::id).load(conn)?
                    };
                    let gone: Vec<Id> = unwritten.into_iter().filter(|id| !still_there.contains(id)).collect();
                    if gone.is_empty() {
                        diesel::insert_into($crate::db::schema::send_logs::table)
                            .values(logs)
                            .execute(conn)?;
                    } else {
                        use $crate::db::schema::assignments;
                        let linked: Vec<Id> = logs.iter().filter_map(|log| log.assignment_id).collect();
                        let assignments_left: Vec<Id> = assignments::table
                            .filter(assignments::id.eq_any(&linked))
                            .select(assignments::id)
                            .load(conn)?;
                        let unlinked: Vec<NewSendLog> = logs
                            .iter()
                            .cloned()
                            .map(|mut log| {
                                log.reminder_id = log.reminder_id.filter(|id| !gone.contains(id));
                                log.summary_id = log.summary_id.filter(|id| !gone.contains(id));
                                log.contact_message_id = log.contact_message_id.filter(|id| !gone.contains(id));
                                log.assignment_id = log.assignment_id.filter(|id| assignments_left.contains(id));
                                log
                            })
                            .collect();
                        diesel::insert_into($crate::db::schema::send_logs::table)
                            .values(&unlinked)
                            .execute(conn)?;
                    }
                }
                Ok(written)
            })
            .context(concat!("cannot record ", $what))
        }

        /// Hands back the claims `run_id` still holds on pending rows, so
        /// another run can take them now rather than when the lease ends.
        pub fn release_claims(db: &mut Db, run_id: Id, now: Timestamp) -> anyhow::Result<usize> {
            with_conn!(db, conn => diesel::update(
                $table::table
                    .filter($table::claimed_by.eq(run_id))
                    .filter($table::status.eq(Status::Pending)),
            )
            .set((
                $table::claimed_until.eq(None::<Timestamp>),
                $table::claimed_by.eq(None::<Id>),
                $table::updated_at.eq(now),
            ))
            .execute(conn))
            .context(concat!("cannot release claimed ", $what))
        }

        /// Pending rows that a run at `now` could claim (for `--dry-run`).
        pub fn count_claimable(db: &mut Db, now: Timestamp) -> anyhow::Result<i64> {
            with_conn!(db, conn => claimable_rows!($table, now).count().get_result(conn))
                .context(concat!("cannot count pending ", $what))
        }

        /// Puts failed rows back to pending with their attempts reset, due at
        /// `now`. Returns how many; refuses (as bad input) any listed id that
        /// is not a failed row of this table.
        pub fn requeue_failed(db: &mut Db, selection: &RetrySelection, now: Timestamp) -> anyhow::Result<usize> {
            write_transaction!(db, conn => {
                let ids: Vec<Id> = match selection {
                    RetrySelection::Ids(ids) => ids.clone(),
                    RetrySelection::Failed { since, student } => {
                        let mut query = $table::table
                            .filter($table::status.eq(Status::Failed))
                            .select($table::id)
                            .into_boxed();
                        if let Some(since) = since {
                            query = query.filter($table::updated_at.ge(*since));
                        }
                        if let Some(student) = student {
                            let $students = std::slice::from_ref(student);
                            query = query.filter($of_students);
                        }
                        query.load(conn)?
                    }
                };
                let mut requeued = 0;
                for chunk in ids.chunks(1_000) {
                    requeued += diesel::update(
                        $table::table
                            .filter($table::id.eq_any(chunk))
                            .filter($table::status.eq(Status::Failed)),
                    )
                    .set((
                        $table::status.eq(Status::Pending),
                        $table::attempts.eq(0),
                        $table::last_error.eq(None::<String>),
                        $table::scheduled_for.eq(now),
                        $table::claimed_until.eq(None::<Timestamp>),
                        $table::claimed_by.eq(None::<Id>),
                        $table::updated_at.eq(now),
                    ))
                    .execute(conn)?;
                }
                Ok(requeued)
            })
        }

        /// The status of each of `ids` found in this table.
        pub fn statuses(db: &mut Db, ids: &[Id]) -> anyhow::Result<Vec<(Id, Status)>> {
            with_conn!(db, conn => $table::table
                .filter($table::id.eq_any(ids))
                .select(($table::id, $table::status))
                .load(conn))
            .context(concat!("cannot read ", $what))
        }

        /// The queue at a glance: a handful of grouped, indexed queries.
        pub fn queue_state(db: &mut Db, now: Timestamp) -> anyhow::Result<QueueState> {
            use diesel::dsl::{count_star, min};
            let day_ago = Timestamp::new(now.instant() - chrono::Duration::hours(24));
            with_conn!(db, conn => {
                let stored: Vec<(Status, i64)> = $table::table
                    .group_by($table::status)
                    .select(($table::status, count_star()))
                    .load(conn)?;
                let by_status = Status::ALL
                    .iter()
                    .map(|status| (*status, stored.iter().find(|(s, _)| s == status).map_or(0, |(_, n)| *n)))
                    .collect();
                let (waiting_for_retry, next_retry_at): (i64, Option<Timestamp>) = $table::table
                    .filter($table::status.eq(Status::Pending))
                    .filter($table::scheduled_for.gt(now))
                    .filter($table::attempts.gt(0))
                    .select((count_star(), min($table::scheduled_for)))
                    .first(conn)?;
                let (ready, oldest_ready): (i64, Option<Timestamp>) = $table::table
                    .filter($table::status.eq(Status::Pending))
                    .filter($table::scheduled_for.le(now))
                    .select((count_star(), min($table::scheduled_for)))
                    .first(conn)?;
                let sent_last_24h: i64 = $table::table
                    .filter($table::status.eq(Status::Sent))
                    .filter($table::sent_at.ge(day_ago))
                    .count()
                    .get_result(conn)?;
                Ok::<_, diesel::result::Error>(QueueState {
                    by_status, waiting_for_retry, next_retry_at, ready, oldest_ready, sent_last_24h,
                })
            })
            .context(concat!("cannot read the queue of ", $what))
        }
    };
}
pub(crate) use queue_table;

/// The rows of `$table` a run may claim at `$now`: pending, due, and not
/// leased by a live run.
macro_rules! claimable_rows {
    ($table:ident, $now:expr) => {
        $table::table
            .filter($table::status.eq(Status::Pending))
            .filter($table::scheduled_for.le($now))
            .filter($table::claimed_until.is_null().or($table::claimed_until.le($now)))
    };
}
pub(crate) use claimable_rows;

/// A claim in one short write transaction: `FOR UPDATE SKIP LOCKED` on
/// PostgreSQL, so runs on several hosts take disjoint rows without waiting;
/// `BEGIN IMMEDIATE` on SQLite, where the busy timeout makes overlapping runs
/// take turns.
macro_rules! lease {
    ($db:expr, $claimable:expr, $table:ident, $load:ident, $run_id:expr, $now:expr, $lease_until:expr) => {
        match $db {
            Db::Postgres(conn) => conn.transaction(|conn| {
                let ids = $claimable.for_update().skip_locked().load(conn)?;
                lease_and_load!(conn, $table, $load, &ids, $run_id, $now, $lease_until)
            }),
            Db::Sqlite(conn) => conn.immediate_transaction(|conn| {
                let ids = $claimable.load(conn)?;
                lease_and_load!(conn, $table, $load, &ids, $run_id, $now, $lease_until)
            }),
        }
    };
}
pub(crate) use lease;

/// The second half of a claim, the same on both backends once the ids are
/// chosen: lease the rows to the run, and load them.
macro_rules! lease_and_load {
    ($conn:ident, $table:ident, $load:ident, $ids:expr, $run_id:expr, $now:expr, $lease_until:expr) => {{
        let ids: &Vec<Id> = $ids;
        if ids.is_empty() {
            Ok(Vec::new())
        } else {
            diesel::update($table::table.filter($table::id.eq_any(ids)))
                .set((
                    $table::claimed_until.eq($lease_until),
                    $table::claimed_by.eq($run_id),
                    $table::updated_at.eq($now),
                ))
                .execute($conn)?;
            $load!($conn, $run_id, ids)
        }
    }};
}
pub(crate) use lease_and_load;

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
