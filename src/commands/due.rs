//! `reminders due`: the assignments in the reminder windows now. Read-only.

use serde_json::json;

use super::{Context, Outcome, Run};
use crate::config::DueJob;
use crate::db::Db;
use crate::error::Failure;
use crate::output::{self, Report};
use crate::reminders::plan::{self, DueItem};

impl Run for DueJob {
    fn run(self, cx: &Context) -> Result<Outcome, Failure> {
        let mut db = Db::open(cx.database()?)?;
        db.map_for_reading()?;
        Ok(Outcome::success(DueList(plan::preview(&mut db, &self.windows)?.items)))
    }
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
