//! `reminders preview`: a reminder exactly as `send` would send it. Writes nothing.

use serde_json::json;

use super::Outcome;
use crate::cli::PreviewArgs;
use crate::db::reminders;
use crate::db::{DatabaseUrl, Db};
use crate::error::invalid;
use crate::mail::SendFailure;
use crate::output;
use crate::reminders::job::compose;
use crate::render::Templates;
use crate::schedule::Target;
use crate::settings::MailSettings;
use crate::time::Clock;

pub fn run(database: &DatabaseUrl, args: PreviewArgs, clock: Clock, templates: Templates) -> anyhow::Result<Outcome> {
    let id = args.assignment_id;
    if Target::from_reminder_type(&args.reminder_type).is_none() {
        return Err(invalid(format!(
            "`{}` is not a reminder type such as `24h` or `2m`",
            args.reminder_type
        )));
    }
    let sender = MailSettings::sender(&args.sender)?;
    let mut db = Db::open(database)?;
    let claimed = reminders::as_claimed(&mut db, id, &args.reminder_type)?
        .ok_or_else(|| invalid(format!("no assignment has the id `{id}`")))?;
    let message =
        compose(&claimed, &sender, clock.now(), &templates).map_err(|SendFailure { reason, .. }| invalid(reason))?;
    let text = String::from_utf8_lossy(&message.formatted()).replace("\r\n", "\n");
    Ok(Outcome::success(output::Message {
        json: json!({ "message": text }),
        text,
    }))
}
