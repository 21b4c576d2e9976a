//! `reminders due`: the assignments in the reminder windows now. Read-only.

use serde::Serialize;
use serde_json::json;

use super::{Context, Outcome, Run};
use crate::config::DueJob;
use crate::db::Db;
use crate::db::types::Id;
use crate::error::Failure;
use crate::output::{self, Report};
use crate::reminders::plan::{self, Action, DueItem};

impl Run for DueJob {
    fn run(self, cx: &Context) -> Result<Outcome, Failure> {
        let mut db = Db::open(cx.database()?)?;
        db.map_for_reading()?;
        let mut windows = self.windows;
        windows.read_own_send_windows(&mut db)?;
        Ok(Outcome::success(DueList(plan::preview(&mut db, &windows)?.items)))
    }
}

pub struct DueList(pub Vec<DueItem>);

/// One due reminder in JSON (docs/json.md).
#[derive(Serialize)]
struct DueJson<'a> {
    assignment_id: Id,
    student_email: &'a str,
    title: &'a str,
    due_at: &'a str,
    reminder_type: &'a str,
    /// `send`, `skip (nearer 1h)` when a nearer target of the same run wins,
    /// or `wait` when the student's send window moves it to another run.
    action: String,
    /// Why the student's send window moved it from its planned time; `null`, it did not.
    send_window: Option<&'a str>,
}

impl DueList {
    fn json_rows(&self) -> Vec<DueJson<'_>> {
        self.0
            .iter()
            .map(|item| DueJson {
                assignment_id: item.assignment_id,
                student_email: &item.student_email,
                title: &item.title,
                due_at: &item.due_at,
                reminder_type: &item.reminder_type,
                action: action_text(&item.action),
                send_window: item.moved.as_deref(),
            })
            .collect()
    }
}

/// The `action` of a due reminder, in the table and the JSON.
fn action_text(action: &Action) -> String {
    match action {
        Action::Send => "send".to_string(),
        Action::Skip { nearer } => format!("skip (nearer {nearer})"),
        Action::Wait => "wait".to_string(),
    }
}

impl Report for DueList {
    fn to_json(&self) -> serde_json::Value {
        json!(self.json_rows())
    }

    fn json_text(&self) -> serde_json::Result<String> {
        serde_json::to_string_pretty(&self.json_rows())
    }

    fn to_table(&self) -> String {
        if self.0.is_empty() {
            return "nothing is due".to_string();
        }
        let rows = self.0.iter().map(|item| {
            let action = match &item.moved {
                // A shifted send says why, under what the run does.
                Some(reason) => format!("{}\n{reason}", action_text(&item.action)),
                None => action_text(&item.action),
            };
            [
                item.reminder_type.clone(),
                item.student_email.clone(),
                item.title.clone(),
                item.due_local.clone(),
                action,
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
