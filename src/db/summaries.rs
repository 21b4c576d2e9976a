//! Queries for daily summaries: preferences, per-student counts, and the
//! `daily_summaries` queue (one row per student per local date).

use anyhow::Context;
use chrono::NaiveDate;
use diesel::dsl::{case_when, count, min};
use diesel::prelude::*;

use super::queue::{insert_ignoring_conflicts, queue_table};
use super::schema::{assignments, daily_summaries, user_preferences, users};
use super::types::{Id, Status, Timestamp};
use super::{Db, with_conn, write_transaction};

/// The defaults of a user without a `user_preferences` row.
pub const DEFAULT_DAILY_SUMMARY: bool = true;
pub const DEFAULT_SUMMARY_HOUR: i32 = 7;

#[derive(Debug, Clone, Queryable, Insertable)]
#[diesel(table_name = user_preferences)]
pub struct Preferences {
    pub user_id: Id,
    pub daily_summary: bool,
    pub summary_hour: i32,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// The reminder types they get (`schedule::TypeList`); `None`, all.
    pub reminder_types: Option<String>,
    /// The reminder types they muted; `None`, none.
    pub muted_types: Option<String>,
    /// `None`: a summary every day; else the ISO weekday of a weekly one.
    pub summary_weekday: Option<i32>,
    /// Messages a local day past which a run's reminders fold into one digest.
    pub max_per_day: Option<i32>,
    /// Their own send window (`schedule::window::SendWindow`); `None`, the run's.
    pub send_window: Option<String>,
}

/// A user's preferences, or the defaults.
pub fn preferences(db: &mut Db, user_id: Id, now: Timestamp) -> anyhow::Result<Preferences> {
    let stored: Option<Preferences> =
        with_conn!(db, conn => user_preferences::table.find(user_id).first(conn).optional())
            .context("cannot read preferences")?;
    Ok(stored.unwrap_or(Preferences {
        user_id,
        daily_summary: DEFAULT_DAILY_SUMMARY,
        summary_hour: DEFAULT_SUMMARY_HOUR,
        created_at: now,
        updated_at: now,
        reminder_types: None,
        muted_types: None,
        summary_weekday: None,
        max_per_day: None,
        send_window: None,
    }))
}

/// Stores a user's preferences, creating the row on first use.
pub fn save_preferences(db: &mut Db, preferences: &Preferences) -> anyhow::Result<()> {
    with_conn!(db, conn => diesel::insert_into(user_preferences::table)
        .values(preferences)
        .on_conflict(user_preferences::user_id)
        .do_update()
        .set((
            user_preferences::daily_summary.eq(preferences.daily_summary),
            user_preferences::summary_hour.eq(preferences.summary_hour),
            user_preferences::updated_at.eq(preferences.updated_at),
            user_preferences::reminder_types.eq(&preferences.reminder_types),
            user_preferences::muted_types.eq(&preferences.muted_types),
            user_preferences::summary_weekday.eq(preferences.summary_weekday),
            user_preferences::max_per_day.eq(preferences.max_per_day),
            user_preferences::send_window.eq(&preferences.send_window),
        ))
        .execute(conn))
    .context("cannot save preferences")?;
    Ok(())
}

/// One student's counts at an instant.
#[derive(Debug, Clone, Queryable)]
pub struct StudentCounts {
    pub user_id: Id,
    pub email: String,
    pub name: Option<String>,
    pub timezone: Option<String>,
    pub current: i64,
    pub overdue: i64,
    pub completed: i64,
    pub next_due_at: Option<Timestamp>,
    /// The title of the open assignment due next (by id among equals).
    pub next_title: Option<String>,
}

/// Current (open, due at or after `now`), overdue (open, due before) and
/// completed counts per student, with the next due time: one grouped query.
/// `students` narrows it to some students; `None` is everyone.
pub fn counts_by_student(db: &mut Db, now: Timestamp, students: Option<&[Id]>) -> anyhow::Result<Vec<StudentCounts>> {
    let open = assignments::completed.nullable().eq(false);
    let next = diesel::alias!(assignments as next);
    // One seek into the (student_id, due_at) index per student.
    let next_title = next
        .filter(next.field(assignments::student_id).eq(users::id))
        .filter(next.field(assignments::completed).eq(false))
        .filter(next.field(assignments::due_at).ge(now))
        .order((next.field(assignments::due_at), next.field(assignments::id)))
        .select(next.field(assignments::title))
        .limit(1)
        .single_value();
    with_conn!(db, conn => {
        let mut query = users::table
            .left_join(assignments::table)
            .group_by((users::id, users::email, users::name, users::timezone))
            .select((
                users::id,
                users::email,
                users::name,
                users::timezone,
                // due_at, not id, is counted: the (student_id, due_at, completed)
                // index then answers the whole query without reading the table.
                count(case_when(open.and(assignments::due_at.nullable().ge(now)), assignments::due_at.nullable())),
                count(case_when(open.and(assignments::due_at.nullable().lt(now)), assignments::due_at.nullable())),
                count(case_when(assignments::completed.nullable().eq(true), assignments::due_at.nullable())),
                min(case_when(open.and(assignments::due_at.nullable().ge(now)), assignments::due_at.nullable())),
                next_title,
            ))
            .order(users::email)
            .into_boxed();
        if let Some(students) = students {
            query = query.filter(users::id.eq_any(students));
        }
        query.load(conn)
    })
    .context("cannot count assignments per student")
}

/// An open assignment as a summary lists it.
#[derive(Debug, Clone, Queryable)]
pub struct OpenAssignment {
    pub student_id: Id,
    pub title: String,
    pub due_at: Timestamp,
}

/// The open assignments of some students, by due time: what a summary lists.
pub fn open_assignments(db: &mut Db, students: &[Id]) -> anyhow::Result<Vec<OpenAssignment>> {
    with_conn!(db, conn => assignments::table
        .filter(assignments::student_id.eq_any(students))
        .filter(assignments::completed.eq(false))
        .order((assignments::student_id, assignments::due_at))
        .select((assignments::student_id, assignments::title, assignments::due_at))
        .load(conn))
    .context("cannot list open assignments")
}

/// A student who may be owed a summary: contact allowed, with preferences.
#[derive(Debug, Clone, Queryable)]
pub struct Recipient {
    pub user_id: Id,
    /// When the student was added.
    pub created_at: Timestamp,
    pub timezone: Option<String>,
    pub daily_summary: Option<bool>,
    pub summary_hour: Option<i32>,
    pub summary_weekday: Option<i32>,
    /// Their own send window, as stored.
    pub send_window: Option<String>,
}

/// A page of the students who have not opted out, by id after `after`.
pub fn recipients(db: &mut Db, after: Option<Id>, limit: i64) -> anyhow::Result<Vec<Recipient>> {
    with_conn!(db, conn => {
        let mut query = users::table
            .left_join(user_preferences::table)
            .filter(users::contact_opt_out.eq(false))
            .select((
                users::id,
                users::created_at,
                users::timezone,
                user_preferences::daily_summary.nullable(),
                user_preferences::summary_hour.nullable(),
                user_preferences::summary_weekday.nullable(),
                user_preferences::send_window.nullable(),
            ))
            .order(users::id)
            .limit(limit)
            .into_boxed();
        if let Some(after) = after {
            query = query.filter(users::id.gt(after));
        }
        query.load(conn)
    })
    .context("cannot list students for summaries")
}

/// The (student, local date) pairs that already have a summary row on or after `since`.
pub fn existing(db: &mut Db, students: &[Id], since: NaiveDate) -> anyhow::Result<Vec<(Id, NaiveDate)>> {
    with_conn!(db, conn => daily_summaries::table
        .filter(daily_summaries::user_id.eq_any(students))
        .filter(daily_summaries::local_date.ge(since))
        .select((daily_summaries::user_id, daily_summaries::local_date))
        .load(conn))
    .context("cannot read daily summaries")
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = daily_summaries)]
pub struct NewSummary {
    pub id: Id,
    pub user_id: Id,
    pub local_date: NaiveDate,
    pub scheduled_for: Timestamp,
    pub status: Status,
    /// Why it was skipped, for one recorded skipped.
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// When summaries began on this database: the first `summary --send`,
/// which this records (unless `record` is false, for a dry run). `None`
/// before the first.
pub fn began(db: &mut Db, now: Timestamp, record: bool) -> anyhow::Result<Option<Timestamp>> {
    use super::schema::milestones;
    const NAME: &str = "summaries_began";
    with_conn!(db, conn => {
        if record {
            diesel::insert_into(milestones::table)
                .values((milestones::name.eq(NAME), milestones::at.eq(now)))
                .on_conflict(milestones::name)
                .do_nothing()
                .execute(conn)?;
        }
        milestones::table
            .filter(milestones::name.eq(NAME))
            .select(milestones::at)
            .first(conn)
            .optional()
    })
    .context("cannot read when summaries began")
}

/// Inserts summaries; UNIQUE(user_id, local_date) with ON CONFLICT DO NOTHING
/// keeps it to one per student per local date, whatever runs overlap.
pub fn schedule(db: &mut Db, rows: &[NewSummary]) -> anyhow::Result<usize> {
    if rows.is_empty() {
        return Ok(0);
    }
    insert_ignoring_conflicts!(
        db,
        daily_summaries,
        rows,
        (daily_summaries::user_id, daily_summaries::local_date)
    )
    .context("cannot schedule daily summaries")
}

/// A summary claimed by this run.
#[derive(Debug, Clone, Queryable)]
pub struct ClaimedSummary {
    pub id: Id,
    pub local_date: NaiveDate,
    pub attempts: i32,
    pub user_id: Id,
    pub email: String,
    pub name: Option<String>,
    pub timezone: Option<String>,
    pub contact_opt_out: bool,
    pub daily_summary: Option<bool>,
    pub summary_hour: Option<i32>,
    pub locale: Option<String>,
    /// Their own send window, as stored.
    pub send_window: Option<String>,
}

/// Loads the summaries among `$ids` that run `$run_id` still holds, with the
/// student as they are now (see `reminders::load_held`).
macro_rules! load_held {
    ($conn:ident, $run_id:expr, $ids:expr) => {
        daily_summaries::table
            .inner_join(users::table.left_join(user_preferences::table))
            .filter(daily_summaries::id.eq_any($ids))
            .filter(daily_summaries::claimed_by.eq($run_id))
            .filter(daily_summaries::status.eq(Status::Pending))
            .select((
                daily_summaries::id,
                daily_summaries::local_date,
                daily_summaries::attempts,
                users::id,
                users::email,
                users::name,
                users::timezone,
                users::contact_opt_out,
                user_preferences::daily_summary.nullable(),
                user_preferences::summary_hour.nullable(),
                users::locale,
                user_preferences::send_window.nullable(),
            ))
            .order(daily_summaries::scheduled_for)
            .load::<ClaimedSummary>($conn)
    };
}

queue_table! {
    table: daily_summaries,
    row: ClaimedSummary,
    // By the hour each is due: summaries are all for today, so none outranks another.
    order: daily_summaries::scheduled_for,
    load: load_held,
    of_students: |students| daily_summaries::user_id.eq_any(students),
    what: "daily summaries",
}
