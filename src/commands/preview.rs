//! `reminders preview`: a reminder exactly as `send` would send it. Writes nothing.

use serde_json::json;

use super::{Context, Outcome, Run};
use crate::config::PreviewJob;
use crate::db::Db;
use crate::db::reminders;
use crate::error::{Failure, invalid};
use crate::mail::SendFailure;
use crate::output;
use crate::reminders::job::compose;

impl Run for PreviewJob {
    fn run(self, cx: &Context) -> Result<Outcome, Failure> {
        let id = self.assignment_id;
        let templates = cx.templates()?;
        let mut db = Db::open(cx.database()?)?;
        let claimed = reminders::as_claimed(&mut db, id, &self.reminder_type)?
            .ok_or_else(|| invalid(format!("no assignment has the id `{id}`")))?;
        let message = compose(&claimed, &self.sender, cx.clock().now(), &templates)
            .map_err(|SendFailure { reason, .. }| Failure::bad_input(reason))?;
        let text = String::from_utf8_lossy(&message.formatted()).replace("\r\n", "\n");
        Ok(Outcome::success(output::Message {
            json: json!({ "message": text }),
            text,
        }))
    }
}
