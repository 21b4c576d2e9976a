//! Queries on `reminders`: finding what is due, scheduling it, claiming it for
//! one run, and recording how each attempt went.

use anyhow::Context;
use diesel::prelude::*;

use super::queue::queue_table;
use super::schema::{assignments, reminders, user_preferences, users};
use super::types::{Id, Json, Status, Timestamp};
use super::{Db, with_conn, write_transaction};

/// An assignment in a target window, with its student and, if the reminder of
/// that type exists already, its status.
#[derive(Debug, Clone, Queryable)]
pub struct Candidate {
    pub assignment_id: Id,
    pub title: String,
    pub due_at: Timestamp,
    pub student_id: Id,
    pub student_email: String,
    pub student_timezone: Option<String>,
    pub reminder_status: Option<Status>,
    /// The deadline the existing reminder was scheduled for.
    pub reminder_due_at: Option<Timestamp>,
}

impl Candidate {
    /// The status of this type's reminder for the assignment's current
    /// deadline: a reminder scheduled for an earlier deadline does not count.
    pub fn status_for_this_deadline(&self) -> Option<Status> {
        self.reminder_status
            .filter(|_| self.reminder_due_at == Some(self.due_at))
    }
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
    accepted_at: Option<Timestamp>,
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
                users::id,
                users::email,
                users::timezone,
                reminders::status.nullable(),
                reminders::due_at.nullable(),
            ))
            .order((assignments::due_at, assignments::id))
            .limit(limit)
            .into_boxed();
        if let Some(now) = accepted_at {
            // Work past its cut-off can no longer be handed in: no notice for it.
            query = query.filter(assignments::cutoff.is_null().or(assignments::cutoff.gt(now)));
        }
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
/// reminder row for the assignment's current deadline already, whatever its status.
pub fn existing_types(db: &mut Db, assignment_ids: &[Id]) -> anyhow::Result<Vec<(Id, String)>> {
    with_conn!(db, conn => reminders::table
        .inner_join(assignments::table)
        .filter(reminders::assignment_id.eq_any(assignment_ids))
        .filter(reminders::due_at.eq(assignments::due_at))
        .select((reminders::assignment_id, reminders::reminder_type))
        .load(conn))
    .context("cannot read the scheduled reminders")
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = reminders)]
// None is bound as NULL instead of leaving the column out, so the statement
// is the same for every row and SQLite prepares it once, not per row.
#[diesel(treat_none_as_default_value = false)]
pub struct NewReminder {
    pub id: Id,
    pub assignment_id: Id,
    pub reminder_type: String,
    pub scheduled_for: Timestamp,
    pub status: Status,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// The assignment's due time, copied so that claims can go by it.
    pub due_at: Timestamp,
}

/// Inserts reminders with the spec's `ON CONFLICT (assignment_id,
/// reminder_type)`, so that overlapping runs schedule each once. The row that
/// is there already stays as it is, unless it was scheduled for an earlier
/// deadline (the assignment's due time moved) and no live run holds it: then
/// it becomes the reminder for the new deadline, with a fresh count of
/// attempts. Its earlier sends stay in `send_logs`. Returns how many rows
/// were inserted or taken over.
pub fn schedule(db: &mut Db, rows: &[NewReminder], now: Timestamp) -> anyhow::Result<usize> {
    // The WHERE of ON CONFLICT DO UPDATE; QueryDsl's filter is for queries.
    use diesel::query_dsl::methods::FilterDsl as _;
    use diesel::upsert::excluded;
    macro_rules! upsert {
        ($conn:ident, $values:expr) => {
            diesel::insert_into(reminders::table)
                .values($values)
                .on_conflict((reminders::assignment_id, reminders::reminder_type))
                .do_update()
                .set((
                    reminders::scheduled_for.eq(excluded(reminders::scheduled_for)),
                    reminders::status.eq(excluded(reminders::status)),
                    reminders::last_error.eq(excluded(reminders::last_error)),
                    reminders::due_at.eq(excluded(reminders::due_at)),
                    reminders::updated_at.eq(excluded(reminders::updated_at)),
                    reminders::sent_at.eq(None::<Timestamp>),
                    reminders::attempts.eq(0),
                    reminders::claimed_until.eq(None::<Timestamp>),
                    reminders::claimed_by.eq(None::<Id>),
                ))
                .filter(reminders::due_at.ne(excluded(reminders::due_at)))
                .filter(
                    reminders::status
                        .ne(Status::Pending)
                        .or(reminders::claimed_until.is_null())
                        .or(reminders::claimed_until.le(now)),
                )
                .execute($conn)
        };
    }
    if rows.is_empty() {
        return Ok(0);
    }
    match db {
        // A statement takes at most 65,535 parameters (ten a row here), and a
        // window may hold more rows than that allows.
        Db::Postgres(conn) => rows.chunks(2_000).try_fold(0, |written, chunk| {
            Ok::<_, diesel::result::Error>(written + upsert!(conn, chunk)?)
        }),
        // Diesel cannot put ON CONFLICT on a multi-row insert for SQLite, and
        // prepares a DO UPDATE statement anew for every row. So each
        // row tries a plain insert first, prepared once; only a row that is
        // there already (rare: a moved deadline) takes the upsert. The write
        // lock is held throughout, so the two steps act as the one statement.
        Db::Sqlite(conn) => conn.immediate_transaction(|conn| {
            rows.iter().try_fold(0, |written, row| {
                let inserted = diesel::insert_into(reminders::table)
                    .values(row)
                    .on_conflict_do_nothing()
                    .execute(conn)?;
                Ok(written + if inserted == 1 { 1 } else { upsert!(conn, row)? })
            })
        }),
    }
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
    /// The assignment's due time now.
    pub due_at: Timestamp,
    /// The deadline the reminder was scheduled for: not `due_at` when the
    /// deadline moved after that.
    pub scheduled_due_at: Timestamp,
    /// The due time before the deadline last moved.
    pub previous_due_at: Option<Timestamp>,
    pub completed: bool,
    /// When work can no longer be handed in: no overdue notice after it.
    pub cutoff: Option<Timestamp>,
    pub metadata: Option<Json>,
    pub student_id: Id,
    pub student_email: String,
    pub student_name: Option<String>,
    pub student_timezone: Option<String>,
    pub contact_opt_out: bool,
    /// The student's language (BCP 47); `None`, English.
    pub student_locale: Option<String>,
    /// The student's preferences: the types they get (`None`, all), and
    /// those they muted (see `schedule::TypeList`).
    pub reminder_types: Option<String>,
    pub muted_types: Option<String>,
    /// `user set --max-per-day`.
    pub max_per_day: Option<i32>,
    /// `user set --send-window`: their own send window, as stored.
    pub send_window: Option<String>,
}

/// The students with their own send window (`user set --send-window`), as
/// stored: one probe of a partial index when none has.
pub fn own_send_windows(db: &mut Db) -> anyhow::Result<Vec<(Id, String)>> {
    with_conn!(db, conn => user_preferences::table
        .filter(user_preferences::send_window.is_not_null())
        .select((user_preferences::user_id, user_preferences::send_window.assume_not_null()))
        .load(conn))
    .context("cannot read the students' send windows")
}

/// The distinct time zones the students are in (`None` for a student
/// without one): a walk of the timezone index, one probe per zone rather
/// than a scan of the students (a loose index scan, written as a recursive
/// query, which both backends run the same way).
pub fn student_zones(db: &mut Db) -> anyhow::Result<Vec<Option<String>>> {
    #[derive(QueryableByName)]
    struct Zone {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        timezone: Option<String>,
    }
    let zones: Vec<Zone> = with_conn!(db, conn => diesel::sql_query(
        "WITH RECURSIVE zones(timezone) AS ( \
             SELECT MIN(timezone) FROM users \
             UNION ALL \
             SELECT (SELECT MIN(u.timezone) FROM users u WHERE u.timezone > zones.timezone) \
             FROM zones WHERE zones.timezone IS NOT NULL \
         ) \
         SELECT timezone FROM zones WHERE timezone IS NOT NULL \
         UNION ALL \
         SELECT NULL WHERE EXISTS (SELECT 1 FROM users WHERE timezone IS NULL)",
    )
    .load(conn))
    .context("cannot read the students' time zones")?;
    Ok(zones.into_iter().map(|zone| zone.timezone).collect())
}

/// Whether any student has a daily limit (`user set --max-per-day`): one
/// probe of a partial index, so a run without limits pays nothing more.
pub fn any_daily_limit(db: &mut Db) -> anyhow::Result<bool> {
    with_conn!(db, conn => diesel::select(diesel::dsl::exists(
        user_preferences::table
            .filter(user_preferences::max_per_day.is_not_null())
            .select(user_preferences::user_id),
    ))
    .get_result(conn))
    .context("cannot look for daily limits")
}

/// How many messages went to `email` since `since`, as the send log has them.
pub fn delivered_since(db: &mut Db, email: &str, since: Timestamp) -> anyhow::Result<i64> {
    use super::schema::send_logs;
    with_conn!(db, conn => send_logs::table
        .filter(send_logs::to_email.eq(email))
        .filter(send_logs::created_at.ge(since))
        .filter(send_logs::status.eq(crate::db::types::LogStatus::Delivered))
        .count()
        .get_result(conn))
    .context("cannot count the student's messages today")
}

/// Loads the reminders among `$ids` that run `$run_id` still holds, with their
/// assignment and student as they are now. Both the claim and the checks close
/// to the send use it, so both see the same facts.
macro_rules! load_held {
    ($conn:ident, $run_id:expr, $ids:expr) => {
        reminders::table
            .inner_join(assignments::table.inner_join(users::table.left_join(user_preferences::table)))
            .filter(reminders::id.eq_any($ids))
            .filter(reminders::claimed_by.eq($run_id))
            .filter(reminders::status.eq(Status::Pending))
            .select((
                reminders::id,
                reminders::reminder_type,
                reminders::attempts,
                assignments::id,
                assignments::title,
                assignments::description,
                assignments::due_at,
                reminders::due_at,
                assignments::previous_due_at,
                assignments::completed,
                assignments::cutoff,
                assignments::metadata,
                users::id,
                users::email,
                users::name,
                users::timezone,
                users::contact_opt_out,
                users::locale,
                user_preferences::reminder_types.nullable(),
                user_preferences::muted_types.nullable(),
                user_preferences::max_per_day.nullable(),
                user_preferences::send_window.nullable(),
            ))
            .order((assignments::due_at, reminders::id))
            .load::<Claimed>($conn)
    };
}

queue_table! {
    table: reminders,
    row: Claimed,
    // Earlier due times first, not earlier planned slots: a 2h reminder for
    // today's noon goes before a 24h reminder planned earlier for tomorrow.
    // The reminder's own copy of the due time lets the queue index give this
    // order without a join, so FOR UPDATE SKIP LOCKED locks reminder rows alone.
    order: (reminders::priority, reminders::due_at),
    load: load_held,
    of_students: |students| reminders::assignment_id.eq_any(
        assignments::table.filter(assignments::student_id.eq_any(students)).select(assignments::id)
    ),
    what: "reminders",
}

/// An assignment's reminder of one type as a run would claim it, whether or
/// not it is scheduled yet (then with a new id), for `preview`.
pub fn as_claimed(db: &mut Db, assignment_id: Id, reminder_type: &str) -> anyhow::Result<Option<Claimed>> {
    type Row = (
        Option<Id>,
        Option<i32>,
        Id,
        String,
        Option<String>,
        Timestamp,
        Option<Timestamp>,
        bool,
        Option<Timestamp>,
        Option<Json>,
        Id,
        String,
        Option<String>,
        Option<String>,
        bool,
        Option<String>,
    );
    let found: Option<Row> = with_conn!(db, conn => assignments::table
        .inner_join(users::table)
        .left_join(
            reminders::table.on(reminders::assignment_id
                .eq(assignments::id)
                .and(reminders::reminder_type.eq(reminder_type))),
        )
        .filter(assignments::id.eq(assignment_id))
        .select((
            reminders::id.nullable(),
            reminders::attempts.nullable(),
            assignments::id,
            assignments::title,
            assignments::description,
            assignments::due_at,
            assignments::previous_due_at,
            assignments::completed,
            assignments::cutoff,
            assignments::metadata,
            users::id,
            users::email,
            users::name,
            users::timezone,
            users::contact_opt_out,
            users::locale,
        ))
        .first(conn)
        .optional())
    .context("cannot read the assignment")?;
    Ok(found.map(
        |(
            reminder_id,
            attempts,
            assignment_id,
            title,
            description,
            due_at,
            previous_due_at,
            completed,
            cutoff,
            metadata,
            student_id,
            email,
            name,
            timezone,
            opt_out,
            locale,
        )| {
            Claimed {
                // The Message-ID is the reminder's once it is scheduled; until then, a new one.
                reminder_id: reminder_id.unwrap_or_else(Id::new),
                reminder_type: reminder_type.to_string(),
                attempts: attempts.unwrap_or(0),
                assignment_id,
                title,
                description,
                due_at,
                // Preview shows the reminder for the deadline as it is now.
                scheduled_due_at: due_at,
                previous_due_at,
                completed,
                cutoff,
                metadata,
                student_id,
                student_email: email,
                student_name: name,
                student_timezone: timezone,
                contact_opt_out: opt_out,
                student_locale: locale,
                // A preview shows the message whatever the student chose.
                reminder_types: None,
                muted_types: None,
                max_per_day: None,
                send_window: None,
            }
        },
    ))
}
