//! `reminders due`: the assignments in the reminder windows now. Read-only.

use serde_json::json;

use super::Outcome;
use crate::cli::WindowArgs;
use crate::db::{DatabaseUrl, Db};
use crate::output::{self, Report};
use crate::reminders::plan::{self, DueItem};
use crate::settings;
use crate::time::Clock;

pub fn run(database: &DatabaseUrl, args: WindowArgs, clock: Clock) -> anyhow::Result<Outcome> {
    let windows = settings::windows(&args, clock)?;
    let mut db = Db::open(database)?;
    db.map_for_reading()?;
    Ok(Outcome::success(DueList(plan::preview(&mut db, &windows)?.items)))
}

pub struct DueList(pub Vec<DueItem>);

impl Report for DueList {
    fn to_json(&self) -> serde_json::Value {
        json!(self.0)
    }

    fn json_text(&self) -> serde_json::Result<String> {
        serde_json::to_string_pretty(&self.0)
    }

    fn to_table(&self) -> String {
        if self.0.is_empty() {
            return "nothing is due".to_string();
        }
        let rows = self.0.iter().map(|item| {
            [
                item.reminder_type.clone(),
                item.student_email.clone(),
                item.title.clone(),
                item.due_local.clone(),
                item.action.clone(),
                item.assignment_id.to_string(),
            ]
        });
        output::table(&["type", "student", "title", "due", "action", "assignment"], rows)
    }

    /// `-q` leaves out "nothing is due" (the JSON, an empty array, is data).
    fn quiet_ok(&self) -> bool {
        self.0.is_empty()
    }
}
