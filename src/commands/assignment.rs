//! `reminders assignment …`: add, list, edit, complete and remove assignments.

use serde_json::json;

use super::{Context, Outcome, Run};
use crate::cli::{AssignmentAddArgs, AssignmentCommand, AssignmentEditArgs};
use crate::db::DatabaseUrl;
use crate::db::Db;
use crate::db::assignments::{self, Assignment, AssignmentChanges, AssignmentWithStudent};
use crate::db::types::{Id, Json, Timestamp};
use crate::db::users;
use crate::error::Failure;
use crate::input::{check_cutoff, parse_cutoff, parse_due, zone_of};
use crate::output::{self, Report};
use crate::time;

impl Run for AssignmentCommand {
    fn run(self, cx: &Context) -> Result<Outcome, Failure> {
        let now = Timestamp::now(&cx.clock());
        Ok(assignment(cx.database()?, self, now)?)
    }
}

fn assignment(database: &DatabaseUrl, command: AssignmentCommand, now: Timestamp) -> anyhow::Result<Outcome> {
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
        AssignmentCommand::Edit(args) => edit(database, args, now),
        AssignmentCommand::Remove { id } => {
            let mut db = Db::open(database)?;
            let removed = assignments::find_assignment(&mut db, id)?
                .ok_or_else(|| crate::error::invalid(format!("no assignment has the id `{id}`")))?;
            assignments::remove_assignment(&mut db, id)?;
            Ok(Outcome::success(output::Done(output::Message {
                text: format!(
                    "removed `{}` of `{}` and its reminders; its send logs stay, unlinked",
                    removed.assignment.title, removed.student_email
                ),
                json: json!({ "removed": AssignmentList(vec![removed]).to_json()[0] }),
            })))
        }
        AssignmentCommand::Complete { id } => {
            let mut db = Db::open(database)?;
            let assignment = assignments::complete_assignment(&mut db, id, now)?;
            Ok(Outcome::success(output::Single(AssignmentList(vec![assignment]))))
        }
    }
}

fn add(database: &DatabaseUrl, args: AssignmentAddArgs, now: Timestamp) -> anyhow::Result<Outcome> {
    let mut db = Db::open(database)?;
    let student = users::require_user_by_email(&mut db, args.student.as_str())?;
    let zone = zone_of(student.timezone.as_deref());
    let due_at = parse_due(&args.due, zone)?;
    let cutoff = parse_cutoff(args.cutoff.as_deref(), zone)?;
    if let Some(cutoff) = cutoff {
        check_cutoff(cutoff, due_at)?;
    }
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
        external_id: args.external_id,
        feed: None,
        previous_due_at: None,
        cutoff: cutoff.map(Timestamp::new),
        course: args.course.filter(|course| !course.is_empty()),
    };
    warn_if_past(assignment.due_at, now);
    assignments::insert_assignment(&mut db, &assignment)?;
    Ok(Outcome::success(output::Single(AssignmentList(vec![
        AssignmentWithStudent {
            assignment,
            student_email: student.email,
            student_timezone: student.timezone,
        },
    ]))))
}

fn edit(database: &DatabaseUrl, args: AssignmentEditArgs, now: Timestamp) -> anyhow::Result<Outcome> {
    let mut db = Db::open(database)?;
    let current = assignments::find_assignment(&mut db, args.id)?
        .ok_or_else(|| crate::error::invalid(format!("no assignment has the id `{}`", args.id)))?;
    let zone = zone_of(current.student_timezone.as_deref());
    let due_at = match &args.due {
        Some(due) => Some(Timestamp::new(parse_due(due, zone)?)),
        None => None,
    };
    let cutoff = match &args.cutoff {
        Some(cutoff) => Some(parse_cutoff(Some(cutoff), zone)?.map(Timestamp::new)),
        None => None,
    };
    // Whichever of the two changes, the pair the assignment ends with must hold.
    let due_after = due_at.unwrap_or(current.assignment.due_at);
    if let Some(cutoff_after) = cutoff.unwrap_or(current.assignment.cutoff) {
        check_cutoff(cutoff_after.instant(), due_after.instant())?;
    }
    let blank_is_none = |text: String| Some(text).filter(|text| !text.trim().is_empty());
    let changes = AssignmentChanges {
        title: args.title,
        due_at,
        description: args.description.map(blank_is_none),
        metadata: args
            .metadata
            .map(|value| Some(value).filter(|v| !v.is_null()).map(Json)),
        external_id: args.external_id.map(blank_is_none),
        cutoff,
        course: args.course.map(blank_is_none),
        ..AssignmentChanges::default()
    };
    if let Some(due_at) = changes.due_at {
        warn_if_past(due_at, now);
    }
    assignments::update_assignment(&mut db, args.id, &changes, now)?;
    let edited = assignments::find_assignment(&mut db, args.id)?
        .ok_or_else(|| crate::error::invalid(format!("no assignment has the id `{}`", args.id)))?;
    Ok(Outcome::success(output::Single(AssignmentList(vec![edited]))))
}

/// A due time already past is allowed (a record of what was due), but no
/// reminder will go out for it: likely a mistyped date, so it says so.
fn warn_if_past(due_at: Timestamp, now: Timestamp) {
    if due_at <= now {
        crate::log::warning!(
            "the due time {} is in the past: no reminder will go out for it",
            time::utc(due_at.instant())
        );
    }
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
                        "course": a.course,
                        "description": a.description,
                        "due_at": time::utc(a.due_at.instant()),
                        "cutoff": a.cutoff.map(|cutoff| time::utc(cutoff.instant())),
                        "completed": a.completed,
                        "metadata": a.metadata,
                        "external_id": a.external_id,
                        "feed": a.feed,
                        "previous_due_at": a.previous_due_at.map(|due| time::utc(due.instant())),
                        "created_at": time::utc(a.created_at.instant()),
                        "updated_at": time::utc(a.updated_at.instant()),
                    })
                })
                .collect::<Vec<_>>()
        )
    }

    fn to_table(&self) -> String {
        // The optional columns only when some assignment has a value for them.
        let with_course = self.0.iter().any(|row| row.assignment.course.is_some());
        let with_cutoff = self.0.iter().any(|row| row.assignment.cutoff.is_some());
        let with_external_id = self.0.iter().any(|row| row.assignment.external_id.is_some());
        let rows = self.0.iter().map(|row| {
            let a = &row.assignment;
            let zone = zone_of(row.student_timezone.as_deref());
            let mut cells = vec![a.id.to_string(), row.student_email.clone(), a.title.clone()];
            if with_course {
                cells.push(a.course.clone().unwrap_or_default());
            }
            cells.push(time::local_short(a.due_at.instant(), zone));
            if with_cutoff {
                cells.push(
                    a.cutoff
                        .map(|cutoff| time::local_short(cutoff.instant(), zone))
                        .unwrap_or_default(),
                );
            }
            cells.push(if a.completed { "yes" } else { "no" }.to_string());
            if with_external_id {
                cells.push(a.external_id.clone().unwrap_or_default());
            }
            cells
        });
        let mut headers = vec!["id", "student", "title"];
        if with_course {
            headers.push("course");
        }
        headers.push("due");
        if with_cutoff {
            headers.push("cut-off");
        }
        headers.push("completed");
        if with_external_id {
            headers.push("external id");
        }
        output::table(&headers, rows)
    }
}
