//! `reminders retry`: put failed reminders and daily summaries back in their queues.

use serde_json::json;

use super::{Context, Outcome, Run};
use crate::cli::RetryArgs;
use crate::db::types::Timestamp;
use crate::db::{Db, users};
use crate::error::Failure;
use crate::output;
use crate::queue::{self, RetrySelection};
use crate::time::Clock;

impl Run for RetryArgs {
    fn run(self, cx: &Context) -> Result<Outcome, Failure> {
        retry(&mut Db::open(cx.database()?)?, self, cx.clock())
    }
}

fn retry(db: &mut Db, args: RetryArgs, clock: Clock) -> Result<Outcome, Failure> {
    let since = args.since.map(Timestamp::new);
    let selection = if args.failed {
        let student = match args.student {
            Some(email) => Some(users::require_user_by_email(db, email.as_str())?.id),
            None => None,
        };
        RetrySelection::Failed { since, student }
    } else {
        RetrySelection::Ids(args.ids)
    };
    let requeued = queue::retry(db, &selection, Timestamp::now(&clock))?;
    let total = requeued.reminders + requeued.daily_summaries + requeued.contact_messages;
    Ok(Outcome::success(output::Done(output::Message {
        text: if total == 0 {
            "nothing to retry: no failed reminder or daily summary matched".to_string()
        } else {
            let contacts = match requeued.contact_messages {
                0 => String::new(),
                n => format!(
                    " and {}",
                    output::count(
                        n as i64,
                        "message to a guardian or teacher",
                        "messages to guardians and teachers"
                    )
                ),
            };
            format!(
                "requeued {}, {}{contacts}; the next run delivers them",
                output::count(requeued.reminders as i64, "failed reminder", "failed reminders"),
                output::count(
                    requeued.daily_summaries as i64,
                    "failed daily summary",
                    "failed daily summaries"
                )
            )
        },
        json: json!({
            "requeued": total,
            "reminders": requeued.reminders,
            "daily_summaries": requeued.daily_summaries,
            "contact_messages": requeued.contact_messages,
        }),
    })))
}
