//! `reminders assignment …`: add, list and complete assignments.

use serde_json::json;

use super::Outcome;
use crate::cli::{AssignmentAddArgs, AssignmentCommand};
use crate::db::DatabaseUrl;
use crate::db::Db;
use crate::db::assignments::{self, Assignment, AssignmentWithStudent};
use crate::db::types::{Id, Json, Timestamp};
use crate::db::users;

use crate::input::{parse_due, zone_of};
use crate::output::{self, Report};
use crate::time;

pub fn run(database: &DatabaseUrl, command: AssignmentCommand, now: Timestamp) -> anyhow::Result<Outcome> {
    match command {
        AssignmentCommand::Add(args) => add(database, args, now),
        AssignmentCommand::List { student } => {
            let mut db = Db::open(database)?;
            let student_id = match student {
                Some(email) => Some(users::require_user_by_email(&mut db, email.as_str())?.id),
                None => None,
            };
            Ok(Outcome::success(AssignmentList(assignments::list_assignments(
                &mut db, student_id,
            )?)))
        }
        AssignmentCommand::Import(args) => super::import::assignments(database, args, now),
        AssignmentCommand::Complete { id } => {
            let mut db = Db::open(database)?;
            let assignment = assignments::complete_assignment(&mut db, id, now)?;
            Ok(Outcome::success(AssignmentList(vec![assignment])))
        }
    }
}

fn add(database: &DatabaseUrl, args: AssignmentAddArgs, now: Timestamp) -> anyhow::Result<Outcome> {
    let mut db = Db::open(database)?;
    let student = users::require_user_by_email(&mut db, args.student.as_str())?;
    let due_at = parse_due(&args.due, zone_of(student.timezone.as_deref()))?;
    let assignment = Assignment {
        id: Id::new(),
        title: args.title,
        description: args.description,
        student_id: student.id,
        due_at: Timestamp::new(due_at),
        completed: false,
        created_at: now,
        updated_at: now,
        metadata: args.metadata.map(Json),
    };
    assignments::insert_assignment(&mut db, &assignment)?;
    Ok(Outcome::success(AssignmentList(vec![AssignmentWithStudent {
        assignment,
        student_email: student.email,
        student_timezone: student.timezone,
    }])))
}

/// Assignments as a table (due times in the student's zone) or JSON (UTC).
struct AssignmentList(Vec<AssignmentWithStudent>);

impl Report for AssignmentList {
    fn to_json(&self) -> serde_json::Value {
        json!(
            self.0
                .iter()
                .map(|row| {
                    let a = &row.assignment;
                    json!({
                        "id": a.id,
                        "student_email": row.student_email,
                        "title": a.title,
                        "description": a.description,
                        "due_at": time::utc(a.due_at.instant()),
                        "completed": a.completed,
                        "metadata": a.metadata,
                        "created_at": time::utc(a.created_at.instant()),
                        "updated_at": time::utc(a.updated_at.instant()),
                    })
                })
                .collect::<Vec<_>>()
        )
    }

    fn to_table(&self) -> String {
        let rows = self.0.iter().map(|row| {
            let a = &row.assignment;
            [
                a.id.to_string(),
                row.student_email.clone(),
                a.title.clone(),
                time::local_short(a.due_at.instant(), zone_of(row.student_timezone.as_deref())),
                if a.completed { "yes" } else { "no" }.to_string(),
            ]
        });
        output::table(&["id", "student", "title", "due", "completed"], rows)
    }
}
