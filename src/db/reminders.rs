//! Queries on `reminders`: finding what is due, scheduling it, claiming it for
//! one run, and recording how each attempt went.

use anyhow::Context;
use diesel::dsl::not;
use diesel::prelude::*;

use super::queue::{
    NewSendLog, Resolution, apply_resolutions, insert_ignoring_conflicts, insert_logs, release_claims, renew_claims,
};
use super::schema::{assignments, reminders, send_logs, users};
use super::types::{Id, Json, Timestamp};
use super::{Db, with_conn, write_transaction};

pub use super::queue::{PENDING, SENT, SKIPPED};

/// An assignment in a target window, with its student and, if the reminder of
/// that type exists already, its status.
#[derive(Debug, Clone, Queryable)]
pub struct Candidate {
    pub assignment_id: Id,
    pub title: String,
    pub due_at: Timestamp,
    pub student_email: String,
    pub student_timezone: Option<String>,
    pub reminder_status: Option<String>,
}

/// One page of the assignments due in `[from, to]` that are not completed and
/// whose student has not opted out, ordered by (due_at, id) and starting after
/// `after`, so that a caller can walk any number of rows in flat memory.
pub fn window_candidates(
    db: &mut Db,
    reminder_type: &str,
    (from, to): (Timestamp, Timestamp),
    after: Option<(Timestamp, Id)>,
    limit: i64,
) -> anyhow::Result<Vec<Candidate>> {
    with_conn!(db, conn => {
        let mut query = assignments::table
            .inner_join(users::table)
            .left_join(
                reminders::table.on(reminders::assignment_id
                    .eq(assignments::id)
                    .and(reminders::reminder_type.eq(reminder_type))),
            )
            .filter(assignments::due_at.between(from, to))
            .filter(assignments::completed.eq(false))
            .filter(users::contact_opt_out.eq(false))
            .select((
                assignments::id,
                assignments::title,
                assignments::due_at,
                users::email,
                users::timezone,
                reminders::status.nullable(),
            ))
            .order((assignments::due_at, assignments::id))
            .limit(limit)
            .into_boxed();
        if let Some((due_at, id)) = after {
            // (due_at, id) > (last due_at, last id), written so that the due_at
            // index range starts at the last page's end instead of the window's.
            query = query
                .filter(assignments::due_at.ge(due_at))
                .filter(assignments::due_at.gt(due_at).or(assignments::id.gt(id)));
        }
        query.load(conn)
    })
    .context("cannot query the assignments that are due")
}

/// The (assignment, reminder type) pairs among `assignment_ids` that have a
/// reminder row already, whatever its status.
pub fn existing_types(db: &mut Db, assignment_ids: &[Id]) -> anyhow::Result<Vec<(Id, String)>> {
    with_conn!(db, conn => reminders::table
        .filter(reminders::assignment_id.eq_any(assignment_ids))
        .select((reminders::assignment_id, reminders::reminder_type))
        .load(conn))
    .context("cannot read the scheduled reminders")
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = reminders)]
pub struct NewReminder {
    pub id: Id,
    pub assignment_id: Id,
    pub reminder_type: String,
    pub scheduled_for: Timestamp,
    pub status: &'static str,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// The assignment's due time, copied so that claims can go by it.
    pub due_at: Timestamp,
}

/// Inserts reminders, skipping any whose (assignment, type) exists already:
/// the spec's `ON CONFLICT DO NOTHING`, so overlapping runs schedule each once.
pub fn schedule(db: &mut Db, rows: &[NewReminder]) -> anyhow::Result<usize> {
    if rows.is_empty() {
        return Ok(0);
    }
    insert_ignoring_conflicts!(
        db,
        reminders,
        rows,
        (reminders::assignment_id, reminders::reminder_type)
    )
    .context("cannot schedule reminders")
}

#[derive(Debug, Clone, Queryable)]
pub struct Claimed {
    pub reminder_id: Id,
    pub reminder_type: String,
    pub attempts: i32,
    pub assignment_id: Id,
    pub title: String,
    pub description: Option<String>,
    pub due_at: Timestamp,
    pub completed: bool,
    pub metadata: Option<Json>,
    pub student_email: String,
    pub student_name: Option<String>,
    pub student_timezone: Option<String>,
    pub contact_opt_out: bool,
}

/// Loads the reminders among `$ids` that run `$run_id` still holds, with their
/// assignment and student as they are now. Both the claim and the checks close
/// to the send use it, so both see the same facts.
macro_rules! load_held {
    ($conn:ident, $run_id:expr, $ids:expr) => {
        reminders::table
            .inner_join(assignments::table.inner_join(users::table))
            .filter(reminders::id.eq_any($ids))
            .filter(reminders::claimed_by.eq($run_id))
            .filter(reminders::status.eq(PENDING))
            .select((
                reminders::id,
                reminders::reminder_type,
                reminders::attempts,
                assignments::id,
                assignments::title,
                assignments::description,
                assignments::due_at,
                assignments::completed,
                assignments::metadata,
                users::email,
                users::name,
                users::timezone,
                users::contact_opt_out,
            ))
            .order((assignments::due_at, reminders::id))
            .load::<Claimed>($conn)
    };
}

/// Claims up to `limit` pending reminders that are due by `now` and not leased
/// by a live run, leasing them to `run_id` until `lease_until`. One short write
/// transaction: `FOR UPDATE SKIP LOCKED` on PostgreSQL, so runs on several hosts
/// take disjoint rows without waiting; `BEGIN IMMEDIATE` on SQLite, where the
/// busy timeout makes overlapping runs take turns.
pub fn claim_batch(
    db: &mut Db,
    run_id: Id,
    now: Timestamp,
    lease_until: Timestamp,
    limit: i64,
) -> anyhow::Result<Vec<Claimed>> {
    // Earlier due times first, not earlier planned slots: a 2h reminder for
    // today's noon goes before a 24h reminder planned earlier for tomorrow.
    // The reminder's own copy of the due time lets the queue index give this
    // order without a join, so FOR UPDATE SKIP LOCKED locks reminder rows alone.
    let claimable = reminders::table
        .filter(reminders::status.eq(PENDING))
        .filter(reminders::scheduled_for.le(now))
        .filter(reminders::claimed_until.is_null().or(reminders::claimed_until.le(now)))
        .order((reminders::priority, reminders::due_at))
        .select(reminders::id)
        .limit(limit);
    // The same lease-and-load step on either backend, after the ids are chosen.
    macro_rules! lease_and_load {
        ($conn:ident, $ids:expr) => {{
            let ids: Vec<Id> = $ids;
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            diesel::update(reminders::table.filter(reminders::id.eq_any(&ids)))
                .set((
                    reminders::claimed_until.eq(lease_until),
                    reminders::claimed_by.eq(run_id),
                    reminders::updated_at.eq(now),
                ))
                .execute($conn)?;
            load_held!($conn, run_id, &ids)
        }};
    }
    match db {
        Db::Postgres(conn) => {
            conn.transaction(|conn| lease_and_load!(conn, claimable.for_update().skip_locked().load(conn)?))
        }
        Db::Sqlite(conn) => conn.immediate_transaction(|conn| lease_and_load!(conn, claimable.load(conn)?)),
    }
    .context("cannot claim reminders")
}

/// The reminders among `ids` that `run_id` still holds, read again now: the
/// opt-out, completion and due time as they are just before the send.
pub fn reload_held(db: &mut Db, run_id: Id, ids: &[Id]) -> anyhow::Result<Vec<Claimed>> {
    with_conn!(db, conn => load_held!(conn, run_id, ids)).context("cannot re-check claimed reminders")
}

/// Extends this run's lease on the reminders it holds; returns their ids.
pub fn renew_claims(db: &mut Db, run_id: Id, now: Timestamp, lease_until: Timestamp) -> anyhow::Result<Vec<Id>> {
    with_conn!(db, conn => renew_claims!(conn, reminders, run_id, now, lease_until))
        .context("cannot renew the lease on claimed reminders")
}

/// Records a group of finished reminders and their send logs in one write
/// transaction, releasing their claims, and returns the ids it wrote (those
/// `run_id` still held). Called every few milliseconds while messages go out,
/// so a killed run leaves only in-flight messages unrecorded.
pub fn record(
    db: &mut Db,
    run_id: Id,
    resolved: &[(Id, Resolution)],
    logs: &[NewSendLog],
    now: Timestamp,
) -> anyhow::Result<Vec<Id>> {
    write_transaction!(db, conn => {
        let written = apply_resolutions!(conn, reminders, run_id, resolved, now);
        insert_logs!(conn, logs);
        Ok(written)
    })
    .context("cannot record sends")
}

/// Hands this run's unfinished claims back, so another run can take them now
/// rather than when the lease ends.
pub fn release_claims(db: &mut Db, run_id: Id, now: Timestamp) -> anyhow::Result<usize> {
    with_conn!(db, conn => release_claims!(conn, reminders, run_id, now)).context("cannot release claimed reminders")
}

/// Pending reminders that a run at `now` could claim (for `--dry-run`).
pub fn count_claimable(db: &mut Db, now: Timestamp) -> anyhow::Result<i64> {
    with_conn!(db, conn => reminders::table
        .filter(reminders::status.eq(PENDING))
        .filter(reminders::scheduled_for.le(now))
        .filter(reminders::claimed_until.is_null().or(reminders::claimed_until.le(now)))
        .count()
        .get_result(conn))
    .context("cannot count pending reminders")
}

/// After a rejection: when the address's last `limit` attempts were all
/// rejected, opt the user out (reason `bounced`) and say so in the latest log.
/// Returns whether it opted the address out now.
pub fn opt_out_after_rejections(db: &mut Db, email: &str, limit: i64, now: Timestamp) -> anyhow::Result<bool> {
    write_transaction!(db, conn => {
        let latest: Vec<(Id, String)> = send_logs::table
            .filter(send_logs::to_email.eq(email))
            .order((send_logs::created_at.desc(), send_logs::id.desc()))
            .select((send_logs::id, send_logs::status))
            .limit(limit)
            .load(conn)?;
        if latest.len() < limit as usize || latest.iter().any(|(_, status)| status != "rejected") {
            return Ok(false);
        }
        let opted_out = diesel::update(users::table.filter(users::email.eq(email)).filter(not(users::contact_opt_out)))
            .set((
                users::contact_opt_out.eq(true),
                users::opt_out_reason.eq("bounced"),
                users::updated_at.eq(now),
            ))
            .execute(conn)?;
        if opted_out == 0 {
            return Ok(false);
        }
        let note = format!("; {limit} rejections in a row, so the address is now opted out");
        let latest_log = send_logs::table.find(latest[0].0);
        let error: Option<String> = latest_log.select(send_logs::error).first(conn)?;
        diesel::update(latest_log)
            .set(send_logs::error.eq(error.unwrap_or_default() + &note))
            .execute(conn)?;
        Ok(true)
    })
    .context("cannot apply the bounce rule")
}

/// The queue at a glance, for `reminders status`.
#[derive(Debug, Default, serde::Serialize)]
pub struct QueueState {
    /// Reminders per status, all time.
    pub by_status: Vec<(String, i64)>,
    /// Pending reminders that failed before and wait for their next attempt.
    pub waiting_for_retry: i64,
    pub next_retry_at: Option<Timestamp>,
    /// Pending reminders due now or earlier (ready for the next run).
    pub ready: i64,
    pub oldest_ready: Option<Timestamp>,
    pub sent_last_24h: i64,
    /// Addresses that `send` opted out after repeated rejections.
    pub bounced: Vec<String>,
}

/// A handful of grouped, indexed queries: fast on a million rows.
pub fn queue_state(db: &mut Db, now: Timestamp) -> anyhow::Result<QueueState> {
    use diesel::dsl::{count_star, min};
    let day_ago = Timestamp::new(now.instant() - chrono::Duration::hours(24));
    with_conn!(db, conn => {
        let by_status: Vec<(String, i64)> = reminders::table
            .group_by(reminders::status)
            .select((reminders::status, count_star()))
            .order(reminders::status)
            .load(conn)?;
        let (waiting_for_retry, next_retry_at): (i64, Option<Timestamp>) = reminders::table
            .filter(reminders::status.eq(PENDING))
            .filter(reminders::scheduled_for.gt(now))
            .filter(reminders::attempts.gt(0))
            .select((count_star(), min(reminders::scheduled_for)))
            .first(conn)?;
        let (ready, oldest_ready): (i64, Option<Timestamp>) = reminders::table
            .filter(reminders::status.eq(PENDING))
            .filter(reminders::scheduled_for.le(now))
            .select((count_star(), min(reminders::scheduled_for)))
            .first(conn)?;
        let sent_last_24h: i64 = reminders::table
            .filter(reminders::status.eq(SENT))
            .filter(reminders::sent_at.ge(day_ago))
            .count()
            .get_result(conn)?;
        let bounced: Vec<String> = users::table
            .filter(users::contact_opt_out.eq(true))
            .filter(users::opt_out_reason.eq("bounced"))
            .select(users::email)
            .order(users::email)
            .load(conn)?;
        Ok::<_, diesel::result::Error>(QueueState {
            by_status, waiting_for_retry, next_retry_at, ready, oldest_ready, sent_last_24h, bounced,
        })
    })
    .context("cannot read the queue")
}

/// Which failed reminders `retry` puts back.
pub enum RetrySelection {
    /// Every failed reminder, optionally only those last updated at or after
    /// `since`, or those of one student.
    Failed {
        since: Option<Timestamp>,
        student: Option<Id>,
    },
    /// These reminders, which must all be failed.
    Ids(Vec<Id>),
}

/// Puts failed reminders back to pending with their attempts reset, due at
/// `now`. Returns how many; refuses (as bad input) any listed id that is not failed.
pub fn requeue_failed(db: &mut Db, selection: &RetrySelection, now: Timestamp) -> anyhow::Result<usize> {
    write_transaction!(db, conn => {
        let ids: Vec<Id> = match selection {
            RetrySelection::Ids(ids) => {
                let found: Vec<(Id, String)> = reminders::table
                    .filter(reminders::id.eq_any(ids))
                    .select((reminders::id, reminders::status))
                    .load(conn)?;
                for id in ids {
                    match found.iter().find(|(found, _)| found == id) {
                        None => return Err(crate::error::invalid(format!("no reminder has the id `{id}`"))),
                        Some((_, status)) if status != super::queue::FAILED => {
                            return Err(crate::error::invalid(format!(
                                "reminder `{id}` is {status}; only failed reminders can be retried"
                            )));
                        }
                        Some(_) => {}
                    }
                }
                ids.clone()
            }
            RetrySelection::Failed { since, student } => {
                let mut query = reminders::table
                    .inner_join(assignments::table)
                    .filter(reminders::status.eq(super::queue::FAILED))
                    .select(reminders::id)
                    .into_boxed();
                if let Some(since) = since {
                    query = query.filter(reminders::updated_at.ge(*since));
                }
                if let Some(student) = student {
                    query = query.filter(assignments::student_id.eq(*student));
                }
                query.load(conn)?
            }
        };
        let mut requeued = 0;
        for chunk in ids.chunks(1_000) {
            requeued += diesel::update(reminders::table.filter(reminders::id.eq_any(chunk)))
                .set((
                    reminders::status.eq(PENDING),
                    reminders::attempts.eq(0),
                    reminders::last_error.eq(None::<String>),
                    reminders::scheduled_for.eq(now),
                    reminders::claimed_until.eq(None::<Timestamp>),
                    reminders::claimed_by.eq(None::<Id>),
                    reminders::updated_at.eq(now),
                ))
                .execute(conn)?;
        }
        Ok(requeued)
    })
}

/// The id of an assignment's reminder of one type, if it is scheduled.
pub fn find_id(db: &mut Db, assignment_id: Id, reminder_type: &str) -> anyhow::Result<Option<Id>> {
    with_conn!(db, conn => reminders::table
        .filter(reminders::assignment_id.eq(assignment_id))
        .filter(reminders::reminder_type.eq(reminder_type))
        .select(reminders::id)
        .first(conn)
        .optional())
    .context("cannot look up the reminder")
}
