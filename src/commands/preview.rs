//! `reminders preview`: a reminder exactly as `send` would send it. Writes nothing.

use serde_json::json;

use super::Outcome;
use super::assignment::parse_id;
use crate::cli::PreviewArgs;
use crate::db::DatabaseUrl;
use crate::db::Db;
use crate::db::reminders::{self, Claimed};
use crate::db::types::Id;
use crate::db::{assignments, users};
use crate::error::invalid;
use crate::failure::SendFailure;
use crate::input::parse_instant;
use crate::mail;
use crate::output;
use crate::render::Templates;
use crate::schedule::Target;
use crate::time::Clock;

pub fn run(database: &DatabaseUrl, args: PreviewArgs, templates: Templates) -> anyhow::Result<Outcome> {
    let id = parse_id(&args.assignment_id)?;
    if Target::from_reminder_type(&args.reminder_type).is_none() {
        return Err(invalid(format!(
            "`{}` is not a reminder type such as `24h` or `2m`",
            args.reminder_type
        )));
    }
    let clock = Clock::new(args.now.as_deref().map(parse_instant).transpose()?);
    let from_text = args.mail_from.as_deref().ok_or_else(|| {
        anyhow::anyhow!("no sender is set: set `--mail-from` or `MAIL_FROM` (e.g. Reminders <noreply@school.example>)")
    })?;
    let from = from_text
        .parse()
        .map_err(|error| anyhow::anyhow!("MAIL_FROM `{from_text}` is not a mailbox: {error}"))?;
    let mut db = Db::open(database)?;
    let found = assignments::find_assignment(&mut db, id)?
        .ok_or_else(|| invalid(format!("no assignment has the id `{id}`")))?;
    let student = users::require_user_by_email(&mut db, &found.student_email)?;
    // The Message-ID is the reminder's once it is scheduled; until then, a new one.
    let reminder_id = reminders::find_id(&mut db, id, &args.reminder_type)?.unwrap_or_else(Id::new);
    let assignment = found.assignment;
    let claimed = Claimed {
        reminder_id,
        reminder_type: args.reminder_type,
        attempts: 0,
        assignment_id: assignment.id,
        title: assignment.title,
        description: assignment.description,
        due_at: assignment.due_at,
        completed: assignment.completed,
        metadata: assignment.metadata,
        student_email: student.email,
        student_name: student.name,
        student_timezone: student.timezone,
        contact_opt_out: student.contact_opt_out,
    };
    let message = mail::reminder_message(&claimed, &from, clock.now(), &templates)
        .map_err(|SendFailure { reason, .. }| invalid(reason))?;
    let text = String::from_utf8_lossy(&message.formatted()).replace("\r\n", "\n");
    Ok(Outcome::success(output::Message {
        json: json!({ "message": text }),
        text,
    }))
}
