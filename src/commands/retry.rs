//! `reminders retry`: put failed reminders back in the queue.

use serde_json::json;

use super::Outcome;
use crate::cli::RetryArgs;
use crate::db::DatabaseUrl;
use crate::db::Db;
use crate::db::reminders::{self, RetrySelection};
use crate::db::types::{Id, Timestamp};
use crate::db::users;
use crate::error::invalid;
use crate::input::{Email, parse_instant};
use crate::output;
use crate::time::Clock;

pub fn run(database: &DatabaseUrl, args: RetryArgs) -> anyhow::Result<Outcome> {
    let clock = Clock::new(args.now.as_deref().map(parse_instant).transpose()?);
    let since = args
        .since
        .as_deref()
        .map(parse_instant)
        .transpose()?
        .map(Timestamp::new);
    let student = args.student.as_deref().map(Email::parse).transpose()?;
    let ids = args
        .ids
        .iter()
        .map(|raw| {
            raw.trim()
                .parse()
                .map(Id)
                .map_err(|_| invalid(format!("`{raw}` is not a reminder id (a UUID)")))
        })
        .collect::<anyhow::Result<Vec<Id>>>()?;
    let mut db = Db::open(database)?;
    let selection = if args.failed {
        let student = match student {
            Some(email) => Some(users::require_user_by_email(&mut db, email.as_str())?.id),
            None => None,
        };
        RetrySelection::Failed { since, student }
    } else {
        RetrySelection::Ids(ids)
    };
    let requeued = reminders::requeue_failed(&mut db, &selection, Timestamp::now(&clock))?;
    Ok(Outcome::success(output::Message {
        text: format!("requeued {requeued} failed reminder(s); the next `reminders send` delivers them"),
        json: json!({ "requeued": requeued }),
    }))
}
