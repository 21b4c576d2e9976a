//! `reminders report --course CODE`: for a teacher, the course's assignments
//! that were due lately with who has not completed them, and those due in
//! the coming week. Read-only.

use super::{Context, Outcome, Run};
use crate::config::ReportJob;
use crate::contacts::course::{self, CourseReport};
use crate::db::Db;
use crate::db::types::Timestamp;
use crate::error::Failure;
use crate::output::{self, Report};

impl Run for ReportJob {
    fn run(self, cx: &Context) -> Result<Outcome, Failure> {
        let mut db = Db::open(cx.database()?)?;
        db.map_for_reading()?;
        let report = course::report(&mut db, &self.course, self.since, cx.clock().now())?;
        Ok(Outcome::success(Shown {
            report,
            zone: cx.global.machine_zone,
        }))
    }
}

/// A course's report as shown: times in the table are this machine's; JSON
/// and CSV give UTC.
struct Shown {
    report: CourseReport,
    zone: chrono_tz::Tz,
}

impl Report for Shown {
    fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.report).unwrap_or_default()
    }

    fn to_table(&self) -> String {
        if !self.report.known {
            return format!("no assignment names the course {}", self.report.course);
        }
        let local = |at: Timestamp| crate::time::local_short(at.instant(), self.zone);
        let mut text = format!(
            "{}: due from {} to {}\n",
            self.report.course,
            local(self.report.since),
            local(self.report.now)
        );
        if self.report.past.is_empty() {
            text.push_str("nothing was due\n");
        }
        for due in &self.report.past {
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
        text.push_str(&format!("\ndue by {}\n", local(self.report.until)));
        if self.report.upcoming.is_empty() {
            text.push_str("nothing is due\n");
        } else {
            let rows = self.report.upcoming.iter().map(|due| {
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
        let parts = [("past", &self.report.past), ("upcoming", &self.report.upcoming)];
        for (part, assignments) in parts {
            for due in assignments {
                let fields = [
                    self.report.course.clone(),
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
