//! `reminders report --course CODE`: for a teacher, the course's assignments
//! that were due lately with who has not completed them, and those due in
//! the coming week. Read-only.

use serde::Serialize;

use super::{Context, Outcome, Run};
use crate::config::ReportJob;
use crate::db::Db;
use crate::db::assignments::{self, CourseWork};
use crate::db::types::Timestamp;
use crate::error::Failure;
use crate::output::{self, Report};

/// How far ahead the report looks for assignments to come.
const UPCOMING: chrono::Duration = chrono::Duration::days(7);

impl Run for ReportJob {
    fn run(self, cx: &Context) -> Result<Outcome, Failure> {
        let mut db = Db::open(cx.database()?)?;
        db.map_for_reading()?;
        let now = cx.clock().now();
        let from = Timestamp::new(crate::time::saturating_add(now, -self.since));
        let until = Timestamp::new(crate::time::saturating_add(now, UPCOMING));
        let now = Timestamp::new(now);
        let work = assignments::course_work(&mut db, &self.course, (from, until))?;
        let known = !work.is_empty() || assignments::course_exists(&mut db, &self.course)?;
        let (past, upcoming): (Vec<_>, Vec<_>) = work.into_iter().partition(|row| row.due_at <= now);
        Ok(Outcome::success(CourseReport {
            course: self.course,
            known,
            since: from,
            now,
            until,
            past: group(past),
            upcoming: group(upcoming),
            zone: cx.global.machine_zone,
        }))
    }
}

/// A course's report, as the JSON shows it (docs/json.md).
#[derive(Serialize)]
pub struct CourseReport {
    course: String,
    /// Whether any assignment names the course at all: a misspelt code
    /// gives an empty report that says so, not an error.
    known: bool,
    since: Timestamp,
    now: Timestamp,
    until: Timestamp,
    past: Vec<Due>,
    upcoming: Vec<Due>,
    /// Times in the table are this machine's; JSON and CSV give UTC.
    #[serde(skip)]
    zone: chrono_tz::Tz,
}

/// One assignment of the course: each student has a copy of it, with the
/// same title and due time.
#[derive(Serialize)]
struct Due {
    title: String,
    due_at: Timestamp,
    students: usize,
    completed: usize,
    not_completed: Vec<Student>,
}

#[derive(Serialize)]
struct Student {
    name: Option<String>,
    email: String,
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

impl Report for CourseReport {
    fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    fn to_table(&self) -> String {
        if !self.known {
            return format!("no assignment names the course {}", self.course);
        }
        let local = |at: Timestamp| crate::time::local_short(at.instant(), self.zone);
        let mut text = format!(
            "{}: due from {} to {}\n",
            self.course,
            local(self.since),
            local(self.now)
        );
        if self.past.is_empty() {
            text.push_str("nothing was due\n");
        }
        for due in &self.past {
            text.push_str(&format!(
                "\n{} (due {}): {} of {} completed\n",
                output::printable(&due.title),
                local(due.due_at),
                due.completed,
                due.students
            ));
            if !due.not_completed.is_empty() {
                let rows = due
                    .not_completed
                    .iter()
                    .map(|student| [student.name.clone().unwrap_or_default(), student.email.clone()]);
                text.push_str(&output::table(&["not completed", "email"], rows));
                text.push('\n');
            }
        }
        text.push_str(&format!("\ndue by {}\n", local(self.until)));
        if self.upcoming.is_empty() {
            text.push_str("nothing is due\n");
        } else {
            let rows = self.upcoming.iter().map(|due| {
                [
                    due.title.clone(),
                    local(due.due_at),
                    due.students.to_string(),
                    due.completed.to_string(),
                ]
            });
            text.push_str(&output::table(&["title", "due", "students", "completed"], rows));
        }
        text
    }

    /// One row per student who has not completed a past assignment, and one
    /// row for each assignment with nobody to list (all done, or still to
    /// come), so that a spreadsheet filters and sorts it as it is.
    fn to_csv(&self) -> anyhow::Result<String> {
        // RFC 4180 ends each record with CRLF.
        let mut writer = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(Vec::new());
        writer.write_record([
            "course",
            "part",
            "title",
            "due_at",
            "students",
            "completed",
            "student_name",
            "student_email",
        ])?;
        let parts = [("past", &self.past), ("upcoming", &self.upcoming)];
        for (part, assignments) in parts {
            for due in assignments {
                let fields = [
                    self.course.clone(),
                    part.to_string(),
                    due.title.clone(),
                    crate::time::utc(due.due_at.instant()),
                    due.students.to_string(),
                    due.completed.to_string(),
                ];
                if due.not_completed.is_empty() || part == "upcoming" {
                    writer.write_record(fields.iter().cloned().chain([String::new(), String::new()]))?;
                    continue;
                }
                for student in &due.not_completed {
                    let person = [student.name.clone().unwrap_or_default(), student.email.clone()];
                    writer.write_record(fields.iter().cloned().chain(person))?;
                }
            }
        }
        Ok(String::from_utf8(writer.into_inner()?)?)
    }
}
