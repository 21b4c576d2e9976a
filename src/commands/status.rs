//! `reminders status`: both queues (reminders and daily summaries) at a glance.

use serde_json::json;

use super::Outcome;
use crate::db::types::Timestamp;
use crate::db::{DatabaseUrl, Db, reminders, summaries, users};
use crate::output::{self, Report};
use crate::queue::{OptOutReason, QueueState, Status};
use crate::time;
use crate::time::Clock;

pub fn run(database: &DatabaseUrl, clock: Clock) -> anyhow::Result<Outcome> {
    let now = Timestamp::now(&clock);
    let mut db = Db::open(database)?;
    Ok(Outcome::success(StatusReport {
        reminders: reminders::queue_state(&mut db, now)?,
        summaries: summaries::queue_state(&mut db, now)?,
        bounced: users::opted_out_for(&mut db, OptOutReason::Bounced)?,
    }))
}

/// Both queues, and who the bounce rule opted out.
struct StatusReport {
    reminders: QueueState,
    summaries: QueueState,
    /// Addresses that a run opted out after repeated rejections.
    bounced: Vec<String>,
}

fn queue_json(state: &QueueState) -> serde_json::Value {
    json!({
        "by_status": state.by_status.iter().map(|(status, n)| (status.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
        "ready": state.ready,
        "oldest_ready": state.oldest_ready.map(|t| time::utc(t.instant())),
        "waiting_for_retry": state.waiting_for_retry,
        "next_retry_at": state.next_retry_at.map(|t| time::utc(t.instant())),
        "sent_last_24h": state.sent_last_24h,
    })
}

/// The rows of one queue in the table, each label after `prefix`.
fn queue_rows(prefix: &str, state: &QueueState) -> Vec<(String, String)> {
    let count = |status: Status| {
        state
            .by_status
            .iter()
            .find(|(s, _)| *s == status)
            .map_or(0, |(_, n)| *n)
    };
    // `3 (oldest 2030-03-01T12:00:00Z)`, or just the count when there is no time to show.
    let with_time = |n: i64, label: &str, t: Option<Timestamp>| match t {
        Some(t) => format!("{n} ({label} {})", time::utc(t.instant())),
        None => n.to_string(),
    };
    [
        (
            "pending, ready now",
            with_time(state.ready, "oldest", state.oldest_ready),
        ),
        (
            "pending, waiting to retry",
            with_time(state.waiting_for_retry, "next at", state.next_retry_at),
        ),
        ("failed", count(Status::Failed).to_string()),
        ("skipped", count(Status::Skipped).to_string()),
        ("sent, all time", count(Status::Sent).to_string()),
        ("sent, last 24 hours", state.sent_last_24h.to_string()),
    ]
    .into_iter()
    .map(|(label, value)| (format!("{prefix}{label}"), value))
    .collect()
}

impl Report for StatusReport {
    fn to_json(&self) -> serde_json::Value {
        let mut json = queue_json(&self.reminders);
        json["bounced"] = json!(self.bounced);
        json["daily_summaries"] = queue_json(&self.summaries);
        json
    }

    fn to_table(&self) -> String {
        let mut rows = queue_rows("", &self.reminders);
        rows.extend(queue_rows("summaries ", &self.summaries));
        rows.push((
            "opted out for bounces".to_string(),
            if self.bounced.is_empty() {
                "none".to_string()
            } else {
                self.bounced.join(", ")
            },
        ));
        output::key_values(rows.iter().map(|(label, value)| (label.as_str(), value.clone())))
    }
}
