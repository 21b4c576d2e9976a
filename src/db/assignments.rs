//! Queries on `assignments`.

use std::collections::{HashMap, HashSet};

use anyhow::Context;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use serde::Serialize;

use super::schema::{assignments, users};
use super::types::{Id, Json, Timestamp};
use super::{Db, with_conn};
use crate::error::invalid;

#[derive(Debug, Clone, Queryable, Selectable, Insertable, Serialize)]
// None means NULL, not DEFAULT: required by COPY, and the same thing for these columns.
#[diesel(table_name = assignments, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
#[diesel(treat_none_as_default_value = false)]
pub struct Assignment {
    pub id: Id,
    pub title: String,
    pub description: Option<String>,
    pub student_id: Id,
    pub due_at: Timestamp,
    pub completed: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub metadata: Option<Json>,
    /// The LMS's key for it, unique per student.
    pub external_id: Option<String>,
    /// The iCalendar feed it came from (see `assignment import --remove-missing`).
    pub feed: Option<String>,
    /// The due time before the deadline last moved.
    pub previous_due_at: Option<Timestamp>,
    /// When work can no longer be handed in: at or after the due time.
    pub cutoff: Option<Timestamp>,
    /// The course it belongs to, such as `CS101`.
    pub course: Option<String>,
}

/// An assignment with the student fields needed to show it.
#[derive(Debug, Clone, Queryable)]
pub struct AssignmentWithStudent {
    pub assignment: Assignment,
    pub student_email: String,
    pub student_timezone: Option<String>,
}

/// Values bound in one query at most: SQLite refuses a statement with more
/// than 32,766 variables, and a feed may list far more UIDs than that.
const VALUES_PER_QUERY: usize = 1_000;

/// Stores a new assignment; an external id the student has already is bad input.
pub fn insert_assignment(db: &mut Db, assignment: &Assignment) -> anyhow::Result<()> {
    let inserted = with_conn!(db, conn => diesel::insert_into(assignments::table).values(assignment).execute(conn));
    refuse_duplicate_external_id(inserted, assignment.external_id.as_deref()).context("cannot add the assignment")
}

/// A unique violation on (student, external_id) as bad input.
fn refuse_duplicate_external_id(result: QueryResult<usize>, external_id: Option<&str>) -> anyhow::Result<()> {
    match result {
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Err(invalid(format!(
            "the student has another assignment with the external id `{}`",
            external_id.unwrap_or_default()
        ))),
        other => other.map(drop).map_err(anyhow::Error::from),
    }
}

/// What an edit or an upsert changes; `None` leaves a column as it is, and
/// `Some(None)` empties it.
#[derive(Debug, Default, Clone, AsChangeset)]
#[diesel(table_name = assignments)]
pub struct AssignmentChanges {
    pub title: Option<String>,
    pub due_at: Option<Timestamp>,
    pub description: Option<Option<String>>,
    pub metadata: Option<Option<Json>>,
    pub external_id: Option<Option<String>>,
    pub completed: Option<bool>,
    pub feed: Option<Option<String>>,
    pub cutoff: Option<Option<Timestamp>>,
    pub course: Option<Option<String>>,
    pub updated_at: Option<Timestamp>,
}

impl AssignmentChanges {
    /// The changes that would make `current` into what `incoming` says,
    /// leaving alone what its source does not say: `completed` unless it
    /// says what it is to be, and the columns it keeps.
    pub fn between(current: &Assignment, incoming: &Incoming) -> AssignmentChanges {
        fn differs<T: PartialEq + Clone>(current: &T, wanted: &T) -> Option<T> {
            (current != wanted).then(|| wanted.clone())
        }
        let wanted = &incoming.assignment;
        let completed = incoming.completed;
        AssignmentChanges {
            title: differs(&current.title, &wanted.title),
            due_at: differs(&current.due_at, &wanted.due_at),
            description: differs(&current.description, &wanted.description),
            metadata: differs(&current.metadata, &wanted.metadata),
            external_id: None,
            completed: completed.and_then(|completed| differs(&current.completed, &completed)),
            feed: differs(&current.feed, &wanted.feed),
            cutoff: differs(&current.cutoff, &wanted.cutoff).filter(|_| !incoming.keeps.cutoff),
            course: differs(&current.course, &wanted.course).filter(|_| !incoming.keeps.course),
            updated_at: None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.title.is_none()
            && self.due_at.is_none()
            && self.description.is_none()
            && self.metadata.is_none()
            && self.external_id.is_none()
            && self.completed.is_none()
            && self.feed.is_none()
            && self.cutoff.is_none()
            && self.course.is_none()
    }
}

/// Applies `changes` to an assignment. A new due time needs nothing more:
/// its reminders were scheduled for the old one, so the next run schedules
/// them again (see `db::reminders::schedule`). An unknown id is bad input.
pub fn update_assignment(db: &mut Db, id: Id, changes: &AssignmentChanges, now: Timestamp) -> anyhow::Result<()> {
    let changes = AssignmentChanges {
        updated_at: Some(now),
        ..changes.clone()
    };
    let updated = with_conn!(db, conn => diesel::update(assignments::table.find(id)).set(&changes).execute(conn));
    if matches!(updated, Ok(0)) {
        return Err(invalid(format!("no assignment has the id `{id}`")));
    }
    let external_id = changes.external_id.clone().flatten();
    refuse_duplicate_external_id(updated, external_id.as_deref()).context("cannot change the assignment")
}

/// Removes an assignment and its reminders; its send logs stay, unlinked.
pub fn remove_assignment(db: &mut Db, id: Id) -> anyhow::Result<()> {
    let removed = with_conn!(db, conn => diesel::delete(assignments::table.find(id)).execute(conn))
        .context("cannot remove the assignment")?;
    if removed == 0 {
        return Err(invalid(format!("no assignment has the id `{id}`")));
    }
    Ok(())
}

/// What an upsert did.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Upserted {
    pub inserted: usize,
    pub updated: usize,
    pub unchanged: usize,
}

/// An assignment to insert or update, matched on (student, external_id),
/// whether it is completed when the source says so, and the columns an
/// update keeps as stored because the source does not carry them.
pub struct Incoming {
    pub assignment: Assignment,
    pub completed: Option<bool>,
    pub keeps: Kept,
}

/// Columns an update leaves as they are. A calendar feed has no cut-off,
/// and names a course only in CATEGORIES: what the operator set stays.
#[derive(Debug, Default, Clone, Copy)]
pub struct Kept {
    pub cutoff: bool,
    pub course: bool,
}

/// Inserts or updates each row, matched on (student_id, external_id); every
/// row has an external id. A row listed twice counts once, as its last.
pub fn upsert_by_external_id(db: &mut Db, rows: Vec<Incoming>, now: Timestamp) -> anyhow::Result<Upserted> {
    let mut last: HashMap<(Id, String), Incoming> = HashMap::with_capacity(rows.len());
    for row in rows {
        let key = (
            row.assignment.student_id,
            row.assignment.external_id.clone().unwrap_or_default(),
        );
        last.insert(key, row);
    }
    let keys: Vec<&(Id, String)> = last.keys().collect();
    let mut stored: HashMap<(Id, String), Assignment> = HashMap::with_capacity(keys.len());
    for chunk in keys.chunks(VALUES_PER_QUERY) {
        let mut students: Vec<Id> = chunk.iter().map(|(student, _)| *student).collect();
        students.sort_unstable();
        students.dedup();
        let external_ids: Vec<&str> = chunk.iter().map(|(_, id)| id.as_str()).collect();
        let found = with_conn!(db, conn => assignments::table
            .filter(assignments::student_id.eq_any(&students))
            .filter(assignments::external_id.eq_any(&external_ids))
            .select(Assignment::as_select())
            .load::<Assignment>(conn))
        .context("cannot look up assignments by external id")?;
        stored.extend(
            found
                .into_iter()
                .filter_map(|a| Some(((a.student_id, a.external_id.clone()?), a))),
        );
    }
    let mut upserted = Upserted::default();
    let mut fresh = Vec::new();
    for (key, row) in last {
        match stored.get(&key) {
            None => {
                let mut assignment = row.assignment;
                assignment.completed = row.completed.unwrap_or(false);
                fresh.push(assignment);
            }
            Some(current) => {
                let changes = AssignmentChanges::between(current, &row);
                if changes.is_empty() {
                    upserted.unchanged += 1;
                } else {
                    update_assignment(db, current.id, &changes, now)?;
                    upserted.updated += 1;
                }
            }
        }
    }
    upserted.inserted = fresh.len();
    insert_assignments(db, &fresh)?;
    Ok(upserted)
}

/// The (student, external id) pairs among these that are stored already.
pub fn existing_external_ids(
    db: &mut Db,
    students: &[Id],
    external_ids: &[String],
) -> anyhow::Result<Vec<(Id, String)>> {
    let found: Vec<(Id, Option<String>)> = with_conn!(db, conn => assignments::table
        .filter(assignments::student_id.eq_any(students))
        .filter(assignments::external_id.eq_any(external_ids))
        .select((assignments::student_id, assignments::external_id))
        .load(conn))
    .context("cannot look up assignments by external id")?;
    Ok(found
        .into_iter()
        .filter_map(|(student, id)| Some((student, id?)))
        .collect())
}

/// Removes the student's assignments from `feed` whose external id is not
/// in `listed`, and returns how many. The difference is taken here, not in
/// SQL: a feed may list more UIDs than one statement may bind.
pub fn remove_missing_from_feed(db: &mut Db, student: Id, feed: &str, listed: &[String]) -> anyhow::Result<usize> {
    let listed: HashSet<&str> = listed.iter().map(String::as_str).collect();
    let from_feed: Vec<(Id, Option<String>)> = with_conn!(db, conn => assignments::table
        .filter(assignments::student_id.eq(student))
        .filter(assignments::feed.eq(feed))
        .select((assignments::id, assignments::external_id))
        .load(conn))
    .context("cannot read the assignments from the feed")?;
    let gone: Vec<Id> = from_feed
        .into_iter()
        .filter(|(_, external_id)| !external_id.as_deref().is_some_and(|id| listed.contains(id)))
        .map(|(id, _)| id)
        .collect();
    let mut removed = 0;
    for chunk in gone.chunks(VALUES_PER_QUERY) {
        removed += with_conn!(db, conn => diesel::delete(assignments::table.filter(assignments::id.eq_any(chunk)))
            .execute(conn))
        .context("cannot remove the assignments the feed no longer lists")?;
    }
    Ok(removed)
}

/// Assignments by due time, optionally of one student.
pub fn list_assignments(db: &mut Db, student_id: Option<Id>) -> anyhow::Result<Vec<AssignmentWithStudent>> {
    with_conn!(db, conn => {
        let mut query = assignments::table
            .inner_join(users::table)
            .select((Assignment::as_select(), users::email, users::timezone))
            .order((assignments::due_at, assignments::id))
            .into_boxed();
        if let Some(student_id) = student_id {
            query = query.filter(assignments::student_id.eq(student_id));
        }
        query.load(conn)
    })
    .context("cannot list assignments")
}

pub fn find_assignment(db: &mut Db, id: Id) -> anyhow::Result<Option<AssignmentWithStudent>> {
    with_conn!(db, conn => assignments::table
        .inner_join(users::table)
        .filter(assignments::id.eq(id))
        .select((Assignment::as_select(), users::email, users::timezone))
        .first(conn)
        .optional())
    .context("cannot look up the assignment")
}

/// Marks an assignment completed; an unknown id is bad input.
pub fn complete_assignment(db: &mut Db, id: Id, now: Timestamp) -> anyhow::Result<AssignmentWithStudent> {
    let updated = with_conn!(db, conn => diesel::update(assignments::table.find(id))
        .set((assignments::completed.eq(true), assignments::updated_at.eq(now)))
        .execute(conn))
    .context("cannot complete the assignment")?;
    if updated == 0 {
        return Err(invalid(format!("no assignment has the id `{id}`")));
    }
    find_assignment(db, id)?.ok_or_else(|| invalid(format!("no assignment has the id `{id}`")))
}

/// The (student, title, due time) of the assignments these students have due
/// in `[from, to]`: what an import compares against to find rows it has
/// already. The (student_id, due_at) index serves it with one seek per student.
pub fn existing_keys(
    db: &mut Db,
    students: &[Id],
    (from, to): (Timestamp, Timestamp),
) -> anyhow::Result<Vec<(Id, String, Timestamp)>> {
    with_conn!(db, conn => assignments::table
        .filter(assignments::student_id.eq_any(students))
        .filter(assignments::due_at.between(from, to))
        .select((assignments::student_id, assignments::title, assignments::due_at))
        .load(conn))
    .context("cannot look up existing assignments")
}

/// Inserts many assignments at once: COPY on PostgreSQL, a multi-row INSERT on SQLite.
pub fn insert_assignments(db: &mut Db, rows: &[Assignment]) -> anyhow::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    match db {
        Db::Postgres(conn) => diesel::copy_from(assignments::table)
            .from_insertable(rows)
            .execute(conn),
        // One cached prepared statement run per row beats a freshly parsed
        // multi-row statement per batch on SQLite, where a row costs no round trip.
        Db::Sqlite(conn) => rows.iter().try_fold(0, |n, row| {
            Ok(n + diesel::insert_into(assignments::table).values(row).execute(conn)?)
        }),
    }
    .context("cannot insert assignments")?;
    Ok(())
}

/// One student's copy of a course's assignment, for the course report.
#[derive(Debug, Clone, Queryable)]
pub struct CourseWork {
    pub title: String,
    pub due_at: Timestamp,
    pub completed: bool,
    pub student_email: String,
    pub student_name: Option<String>,
}

/// Every student's copy of the course's assignments due in `(from, to]`, by
/// due time, title and student.
pub fn course_work(db: &mut Db, course: &str, (from, to): (Timestamp, Timestamp)) -> anyhow::Result<Vec<CourseWork>> {
    with_conn!(db, conn => assignments::table
        .inner_join(users::table)
        .filter(assignments::course.eq(course))
        .filter(assignments::due_at.gt(from))
        .filter(assignments::due_at.le(to))
        .select((
            assignments::title,
            assignments::due_at,
            assignments::completed,
            users::email,
            users::name,
        ))
        .order((assignments::due_at, assignments::title, users::email))
        .load(conn))
    .context("cannot read the course's assignments")
}

/// Whether any assignment names the course, whenever it is due.
pub fn course_exists(db: &mut Db, course: &str) -> anyhow::Result<bool> {
    with_conn!(db, conn => diesel::select(diesel::dsl::exists(
        assignments::table.filter(assignments::course.eq(course))
    ))
    .get_result(conn))
    .context("cannot look up the course")
}
