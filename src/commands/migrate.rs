//! `reminders migrate`: create or update the schema.

use serde_json::json;

use super::{Context, Outcome, Run};
use crate::config::MigrateJob;
use crate::db::DatabaseUrl;
use crate::db::Db;
use crate::error::Failure;
use crate::output::{Done, Message};

impl Run for MigrateJob {
    fn run(self, cx: &Context) -> Result<Outcome, Failure> {
        migrate(cx.database()?)
    }
}

fn migrate(database: &DatabaseUrl) -> Result<Outcome, Failure> {
    let created = match database {
        DatabaseUrl::Sqlite { path, .. } if !path.exists() => Some(match database.default_note() {
            Some(note) => format!("created a new SQLite database `{}` ({note})\n", path.display()),
            None => format!("created a new SQLite database `{}`\n", path.display()),
        }),
        _ => None,
    };
    let mut db = Db::connect(database)?;
    let applied = db.migrate()?;
    let text = created.clone().unwrap_or_default()
        + &if applied.is_empty() {
            format!("the database `{}` is up to date; nothing to apply", database.display())
        } else {
            let lines: Vec<String> = applied.iter().map(|version| format!("applied {version}")).collect();
            format!(
                "{}\nthe database `{}` is up to date",
                lines.join("\n"),
                database.display()
            )
        };
    Ok(Outcome::success(Done(Message {
        text,
        json: json!({ "applied": applied, "database": database.display(), "created": created.is_some() }),
    })))
}
