//! Queries on `assignments`.

use anyhow::Context;
use diesel::prelude::*;
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
}

/// An assignment with the student fields needed to show it.
#[derive(Debug, Clone, Queryable)]
pub struct AssignmentWithStudent {
    pub assignment: Assignment,
    pub student_email: String,
    pub student_timezone: Option<String>,
}

pub fn insert_assignment(db: &mut Db, assignment: &Assignment) -> anyhow::Result<()> {
    with_conn!(db, conn => diesel::insert_into(assignments::table).values(assignment).execute(conn))
        .context("cannot add the assignment")?;
    Ok(())
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
