//! `reminders status`: the state of the reminder queue at a glance.

use serde_json::json;

use super::Outcome;
use crate::db::DatabaseUrl;
use crate::db::Db;
use crate::db::reminders::{self, QueueState};
use crate::db::types::Timestamp;
use crate::input::parse_instant;
use crate::output::{self, Report};
use crate::time;
use crate::time::Clock;

pub fn run(database: &DatabaseUrl, now: Option<String>) -> anyhow::Result<Outcome> {
    let clock = Clock::new(now.as_deref().map(parse_instant).transpose()?);
    let mut db = Db::open(database)?;
    Ok(Outcome::success(reminders::queue_state(
        &mut db,
        Timestamp::now(&clock),
    )?))
}

impl Report for QueueState {
    fn to_json(&self) -> serde_json::Value {
        json!({
            "by_status": self.by_status.iter().map(|(status, n)| (status.clone(), json!(n))).collect::<serde_json::Map<_, _>>(),
            "ready": self.ready,
            "oldest_ready": self.oldest_ready.map(|t| time::utc(t.instant())),
            "waiting_for_retry": self.waiting_for_retry,
            "next_retry_at": self.next_retry_at.map(|t| time::utc(t.instant())),
            "sent_last_24h": self.sent_last_24h,
            "bounced": self.bounced,
        })
    }

    fn to_table(&self) -> String {
        let count = |status: &str| self.by_status.iter().find(|(s, _)| s == status).map_or(0, |(_, n)| *n);
        // `3 (oldest 2030-03-01T12:00:00Z)`, or just the count when there is no time to show.
        let with_time = |n: i64, label: &str, t: Option<crate::db::types::Timestamp>| match t {
            Some(t) => format!("{n} ({label} {})", time::utc(t.instant())),
            None => n.to_string(),
        };
        output::key_values([
            ("pending, ready now", with_time(self.ready, "oldest", self.oldest_ready)),
            (
                "pending, waiting to retry",
                with_time(self.waiting_for_retry, "next at", self.next_retry_at),
            ),
            ("failed", count("failed").to_string()),
            ("skipped", count("skipped").to_string()),
            ("sent, all time", count("sent").to_string()),
            ("sent, last 24 hours", self.sent_last_24h.to_string()),
            (
                "opted out for bounces",
                if self.bounced.is_empty() {
                    "none".to_string()
                } else {
                    self.bounced.join(", ")
                },
            ),
        ])
    }
}
