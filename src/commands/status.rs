//! `reminders status`: the queues (reminders, daily summaries, and messages to
//! guardians and teachers) at a glance.

use serde_json::json;

use super::{Context, Outcome, Run};
use crate::config::StatusJob;
use crate::db::types::Timestamp;
use crate::db::{Db, bounces, contacts, reminders, summaries, users};
use crate::error::Failure;
use crate::output::{self, Report};
use crate::queue::{OptOutReason, QueueState, ReportKind, Status};
use crate::time;

impl Run for StatusJob {
    fn run(self, cx: &Context) -> Result<Outcome, Failure> {
        let now = Timestamp::now(&cx.clock());
        let mut db = Db::open(cx.database()?)?;
        let week_ago = Timestamp::new(now.instant() - chrono::Duration::days(7));
        let report = StatusReport {
            machine_zone: cx.global.machine_zone,
            reminders: reminders::queue_state(&mut db, now)?,
            summaries: summaries::queue_state(&mut db, now)?,
            contacts: contacts::queue_state(&mut db, now)?,
            bounced: users::opted_out_for(&mut db, OptOutReason::Bounced)?,
            reports: ReportCounts::of(bounces::counts_since(&mut db, week_ago)?),
            refused_for: bounces::latest_reason(&mut db, ReportKind::Refused, week_ago)?,
            errors: crate::db::queue::frequent_errors(
                &mut db,
                Timestamp::new(now.instant() - chrono::Duration::days(7)),
                5,
            )?,
        };
        if report.reports.refused > 0 {
            // Every later message to that server will fail the same way until the operator acts.
            crate::log::warning!(
                "{} report(s) in the last 7 days say a mail server refuses our sending (a blocklist, reputation, SPF/DKIM/DMARC); check the relay's IP and the domain's DNS records. Latest: {}",
                report.reports.refused,
                report
                    .refused_for
                    .as_deref()
                    .unwrap_or("an authentication failure report")
            );
        }
        Ok(Outcome::success(report))
    }
}

/// Both queues, and who the bounce rule opted out.
struct StatusReport {
    /// Times that concern no student are shown in this machine's zone.
    machine_zone: chrono_tz::Tz,
    reminders: QueueState,
    summaries: QueueState,
    /// Guardians' digests and escalations, teachers' reports.
    contacts: QueueState,
    /// Addresses that a run opted out after repeated rejections.
    bounced: Vec<String>,
    /// What `reminders bounces` read in the last 7 days.
    reports: ReportCounts,
    /// Why the latest report of the last 7 days that blames our sending said so.
    refused_for: Option<String>,
    /// The most frequent reasons sends failed in the last 7 days, with counts.
    errors: Vec<(String, i64)>,
}

/// Reports of the last 7 days. Many unverified ones are a sign that someone
/// is sending forged reports to the bounce address.
#[derive(Debug, Default, serde::Serialize)]
struct ReportCounts {
    hard_bounces: i64,
    /// Failures over our sending (blocklists, reputation, SPF/DKIM/DMARC).
    refused: i64,
    /// Other permanent failures that blame nobody.
    failed: i64,
    complaints: i64,
    unsubscribes: i64,
    unverified: i64,
    /// Mail that was no report at all (set aside, flagged, in a Maildir).
    unrecognised: i64,
}

impl ReportCounts {
    fn of(counts: Vec<(ReportKind, bool, i64)>) -> ReportCounts {
        let mut sums = ReportCounts::default();
        for (kind, verified, n) in counts {
            match (kind, verified) {
                (ReportKind::Hard, true) => sums.hard_bounces += n,
                (ReportKind::Refused, true) => sums.refused += n,
                (ReportKind::Failed, true) => sums.failed += n,
                (ReportKind::Complaint, true) => sums.complaints += n,
                (ReportKind::Unsubscribe, true) => sums.unsubscribes += n,
                (
                    ReportKind::Hard
                    | ReportKind::Refused
                    | ReportKind::Failed
                    | ReportKind::Complaint
                    | ReportKind::Unsubscribe,
                    false,
                ) => sums.unverified += n,
                (ReportKind::Unrecognised, _) => sums.unrecognised += n,
                (ReportKind::Soft | ReportKind::AutoReply, _) => {}
            }
        }
        sums
    }
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
fn queue_rows(prefix: &str, state: &QueueState, zone: chrono_tz::Tz) -> Vec<(String, String)> {
    let count = |status: Status| {
        state
            .by_status
            .iter()
            .find(|(s, _)| *s == status)
            .map_or(0, |(_, n)| *n)
    };
    // `3 (oldest 2030-03-01 12:00 UTC)`, or just the count when there is no time to show.
    let with_time = |n: i64, label: &str, t: Option<Timestamp>| match t {
        Some(t) => format!("{n} ({label} {})", time::local_short(t.instant(), zone)),
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
        json["contact_messages"] = queue_json(&self.contacts);
        json["reports_last_7_days"] = json!(self.reports);
        json["errors_last_7_days"] = json!(
            self.errors
                .iter()
                .map(|(error, count)| json!({ "error": error, "count": count }))
                .collect::<Vec<_>>()
        );
        json
    }

    fn to_table(&self) -> String {
        let mut rows = queue_rows("", &self.reminders, self.machine_zone);
        rows.extend(queue_rows("summaries ", &self.summaries, self.machine_zone));
        // Shown once there are guardians' or teachers' messages at all.
        if self.contacts.by_status.iter().any(|(_, n)| *n > 0) {
            rows.extend(queue_rows("guardians and teachers ", &self.contacts, self.machine_zone));
        }
        let reports = &self.reports;
        rows.extend(
            [
                ("hard bounces reported", reports.hard_bounces),
                ("refused for our sending", reports.refused),
                ("other permanent failures", reports.failed),
                ("complaints", reports.complaints),
                ("unsubscribes by mail", reports.unsubscribes),
                ("unverified reports (ignored)", reports.unverified),
                ("unrecognised mail (set aside)", reports.unrecognised),
            ]
            .map(|(what, n)| (format!("{what}, last 7 days"), n.to_string())),
        );
        rows.push((
            "opted out for bounces".to_string(),
            if self.bounced.is_empty() {
                "none".to_string()
            } else {
                self.bounced.join(", ")
            },
        ));
        for (error, count) in &self.errors {
            rows.push((format!("failed {count}×, last 7 days"), error.clone()));
        }
        output::key_values(rows.iter().map(|(label, value)| (label.as_str(), value.clone())))
    }
}
