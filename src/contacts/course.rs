//! A course's report: the assignments due lately with who has not completed
//! them, and those due in the coming week. `reminders report` shows it; a
//! teacher's weekly report mails it.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::db::Db;
use crate::db::assignments::{self, CourseWork};
use crate::db::types::Timestamp;

/// How far ahead a report looks for assignments to come.
pub const UPCOMING: chrono::Duration = chrono::Duration::days(7);

/// A course's report, as the JSON shows it (docs/json.md).
#[derive(Serialize)]
pub struct CourseReport {
    pub course: String,
    /// Whether any assignment names the course at all: a misspelt code
    /// gives an empty report that says so, not an error.
    pub known: bool,
    pub since: Timestamp,
    pub now: Timestamp,
    pub until: Timestamp,
    pub past: Vec<Due>,
    pub upcoming: Vec<Due>,
}

/// One assignment of the course: each student has a copy of it, with the
/// same title and due time.
#[derive(Serialize)]
pub struct Due {
    pub title: String,
    pub due_at: Timestamp,
    pub students: usize,
    pub completed: usize,
    pub not_completed: Vec<Student>,
}

#[derive(Serialize)]
pub struct Student {
    pub name: Option<String>,
    pub email: String,
}

impl CourseReport {
    /// Whether there is anything to tell: work due lately or coming up.
    pub fn is_empty(&self) -> bool {
        self.past.is_empty() && self.upcoming.is_empty()
    }
}

/// The report of `course` at `now`, looking back `since`.
pub fn report(db: &mut Db, course: &str, since: chrono::Duration, now: DateTime<Utc>) -> anyhow::Result<CourseReport> {
    let from = Timestamp::new(crate::time::saturating_add(now, -since));
    let until = Timestamp::new(crate::time::saturating_add(now, UPCOMING));
    let now = Timestamp::new(now);
    let work = assignments::course_work(db, course, (from, until))?;
    let known = !work.is_empty() || assignments::course_exists(db, course)?;
    let (past, upcoming): (Vec<_>, Vec<_>) = work.into_iter().partition(|row| row.due_at <= now);
    Ok(CourseReport {
        course: course.to_string(),
        known,
        since: from,
        now,
        until,
        past: group(past),
        upcoming: group(upcoming),
    })
}

/// The students' copies, ordered by due time and title, as one row per assignment.
fn group(rows: Vec<CourseWork>) -> Vec<Due> {
    let mut assignments: Vec<Due> = Vec::new();
    for row in rows {
        let same = assignments
            .last()
            .is_some_and(|last| last.due_at == row.due_at && last.title == row.title);
        if !same {
            assignments.push(Due {
                title: row.title,
                due_at: row.due_at,
                students: 0,
                completed: 0,
                not_completed: Vec::new(),
            });
        }
        let due = assignments.last_mut().expect("pushed above");
        due.students += 1;
        if row.completed {
            due.completed += 1;
        } else {
            due.not_completed.push(Student {
                name: row.student_name,
                email: row.student_email,
            });
        }
    }
    assignments
}
