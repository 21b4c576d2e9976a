//! `reminders summary`: per-student counts at a glance, and with `--send`, each
//! student's daily summary email at their preferred local hour, once per
//! local date.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::json;

use super::{Context, Outcome, Run};
use crate::config::SummaryJob;
use crate::contacts::{self, job::ContactMessages};
use crate::db::contacts as db_contacts;
use crate::db::summaries::{self, NewSummary, StudentCounts};
use crate::db::types::{Id, Timestamp};
use crate::db::{Db, users};
use crate::error::Failure;
use crate::input::zone_of;
use crate::output::{self, Report};
use crate::queue::Status;
use crate::queue::pipeline::{Delivered, deliver};
use crate::summaries::job::Summaries;
use crate::summaries::plan;
use crate::time;

impl Run for SummaryJob {
    fn run(self, cx: &Context) -> Result<Outcome, Failure> {
        summary(cx, self)
    }
}

fn summary(cx: &Context, job: SummaryJob) -> Result<Outcome, Failure> {
    let templates = cx.templates()?;
    let database = cx.database()?;
    let mut clock = cx.clock();
    let student = job.student;
    let settings = job.delivery;
    if !job.send {
        let mut db = Db::open(database)?;
        let students = match student {
            Some(email) => Some(vec![users::require_user_by_email(&mut db, email.as_str())?.id]),
            None => None,
        };
        let counts = summaries::counts_by_student(&mut db, Timestamp::now(&clock), students.as_deref())?;
        return Ok(Outcome::success(CountsReport { counts }));
    }
    if student.is_some() {
        return Err(Failure::bad_input(
            "`--student` only narrows the counts; `--send` covers every student",
        ));
    }
    if job.dry_run {
        let mut db = Db::open(database)?;
        let now = Timestamp::now(&clock);
        let owed = plan::preview_owed(&mut db, now, job.send_window.as_ref())?;
        let queued = summaries::count_claimable(&mut db, now)? as usize;
        let ids: Vec<_> = owed.iter().map(|summary| summary.user_id).collect();
        let emails: HashMap<Id, String> = users::emails_of(&mut db, &ids)?.into_iter().collect();
        let to_send = owed.iter().filter(|summary| summary.status == Status::Pending).count();
        let skipped = owed.len() - to_send;
        let contacts_owed = contacts::plan::preview_owed(&mut db, now, job.send_window.as_ref())?;
        let contacts_to_send = contacts_owed.iter().filter(|row| row.status == Status::Pending).count();
        let contacts_queued = db_contacts::count_claimable(&mut db, now)? as usize;
        let due = owed
            .into_iter()
            .map(|summary| OwedSummary {
                student_email: emails.get(&summary.user_id).cloned(),
                summary,
            })
            .collect();
        let delivered = Delivered {
            sent: to_send + queued + contacts_to_send + contacts_queued,
            skipped: skipped + contacts_owed.len() - contacts_to_send,
            ..Delivered::default()
        };
        return Ok(Outcome::success(DryRun {
            report: SendReport {
                scheduled: to_send,
                contacts_scheduled: contacts_to_send,
                delivered,
            },
            due,
        }));
    }
    // The database first: a run that cannot record anything creates
    // nothing either (a `file://` outbox).
    let mut db = Db::open(database)?;
    let (mail, mailer) = settings.mailer()?;
    super::warn_if_no_students(&mut db, database)?;
    clock.follow(db.server_clock()?);
    let scheduled = plan::schedule_owed(&mut db, Timestamp::now(&clock), job.send_window.as_ref())?;
    let (sender, options) = (&mail.sender, &settings.options);
    let summaries = Summaries {
        send_window: job.send_window.clone(),
        templates,
    };
    let mut delivered = deliver(database, &mut db, &summaries, &mailer, sender, options, &clock)?;
    delivered.skipped += scheduled.skipped;
    // Guardians' digests and teachers' reports: the same cron line sends them.
    let owed = contacts::plan::schedule_owed(&mut db, Timestamp::now(&clock), job.send_window.as_ref())?;
    delivered.skipped += owed.skipped;
    if db_contacts::count_claimable(&mut db, Timestamp::now(&clock))? > 0 {
        // The same templates, loaded once a run.
        let queue = ContactMessages {
            send_window: summaries.send_window,
            templates: summaries.templates,
        };
        delivered.add(deliver(database, &mut db, &queue, &mailer, sender, options, &clock)?);
    }
    let (status, reasons) = (delivered.exit_status(), delivered.reasons());
    let report = SendReport {
        scheduled: scheduled.to_send,
        contacts_scheduled: owed.to_send,
        delivered,
    };
    Ok(Outcome::unfinished(report, status, reasons))
}

/// Per-student counts.
struct CountsReport {
    counts: Vec<StudentCounts>,
}

impl CountsReport {
    fn json_rows(&self) -> Vec<StudentJson<'_>> {
        self.counts
            .iter()
            .map(|c| StudentJson {
                email: &c.email,
                name: c.name.as_deref(),
                timezone: zone_of(c.timezone.as_deref()).name(),
                current: c.current,
                overdue: c.overdue,
                completed: c.completed,
                next_due: c.next_due_at.map(|due| NextDueJson {
                    title: c.next_title.as_deref(),
                    due_at: time::utc(due.instant()),
                }),
            })
            .collect()
    }
}

/// One student's counts in JSON (docs/json.md).
#[derive(Serialize)]
struct StudentJson<'a> {
    email: &'a str,
    name: Option<&'a str>,
    timezone: &'static str,
    current: i64,
    overdue: i64,
    completed: i64,
    next_due: Option<NextDueJson<'a>>,
}

#[derive(Serialize)]
struct NextDueJson<'a> {
    title: Option<&'a str>,
    due_at: String,
}

impl Report for CountsReport {
    fn to_json(&self) -> serde_json::Value {
        json!(self.json_rows())
    }

    fn json_text(&self) -> serde_json::Result<String> {
        serde_json::to_string_pretty(&self.json_rows())
    }

    fn to_table(&self) -> String {
        let rows = self.counts.iter().map(|c| {
            let zone = zone_of(c.timezone.as_deref());
            let next = match (c.next_due_at, &c.next_title) {
                (Some(due), Some(title)) => format!("{title} ({})", time::local_short(due.instant(), zone)),
                _ => String::new(),
            };
            [
                c.email.clone(),
                c.name.clone().unwrap_or_default(),
                zone.name().to_string(),
                c.current.to_string(),
                c.overdue.to_string(),
                c.completed.to_string(),
                next,
            ]
        });
        output::table(
            &[
                "email",
                "name",
                "timezone",
                "current",
                "overdue",
                "completed",
                "next due",
            ],
            rows,
        )
    }
}

/// What `summary --send --dry-run` predicts: the real run's report, and who
/// would get which summary.
struct DryRun {
    report: SendReport,
    due: Vec<OwedSummary>,
}

/// A summary a real run would schedule, to be sent or recorded skipped.
struct OwedSummary {
    student_email: Option<String>,
    summary: NewSummary,
}

impl OwedSummary {
    /// `send`, or `skip (why)` for one recorded skipped.
    fn action(&self) -> String {
        match (self.summary.status, &self.summary.last_error) {
            (Status::Pending, _) => "send".to_string(),
            (_, why) => format!("skip ({})", why.as_deref().unwrap_or_default()),
        }
    }
}

impl Report for DryRun {
    fn to_json(&self) -> serde_json::Value {
        let mut value = self.report.to_json();
        value["dry_run"] = json!(true);
        value["due"] = self
            .due
            .iter()
            .map(|owed| {
                json!({
                    "student_email": owed.student_email,
                    "local_date": owed.summary.local_date.to_string(),
                    "scheduled_for": owed.summary.scheduled_for,
                    "action": owed.action(),
                })
            })
            .collect();
        value
    }

    fn to_table(&self) -> String {
        let rows = self.due.iter().map(|owed| {
            [
                owed.student_email.clone().unwrap_or_default(),
                owed.summary.local_date.to_string(),
                owed.action(),
            ]
        });
        let listed = if self.due.is_empty() {
            "no summary is due".to_string()
        } else {
            output::table(&["student", "date", "action"], rows)
        };
        format!(
            "{listed}\na real run would send {} and record {} skipped (dry run: nothing was written or sent)",
            output::count(self.report.delivered.sent as i64, "summary", "summaries"),
            self.report.delivered.skipped
        )
    }
}

/// What `summary --send` did.
struct SendReport {
    /// Daily summaries scheduled by this run.
    scheduled: usize,
    /// Guardians' digests and teachers' reports scheduled by this run.
    contacts_scheduled: usize,
    delivered: Delivered,
}

impl Report for SendReport {
    fn to_json(&self) -> serde_json::Value {
        let mut value = json!(self.delivered);
        value["scheduled"] = json!(self.scheduled);
        value["contacts_scheduled"] = json!(self.contacts_scheduled);
        value
    }

    fn to_table(&self) -> String {
        let mut rows = vec![("scheduled", self.scheduled.to_string())];
        if self.contacts_scheduled > 0 {
            rows.push(("digests and reports", self.contacts_scheduled.to_string()));
        }
        rows.extend(self.delivered.rows());
        output::key_values(rows)
    }

    fn quiet_ok(&self) -> bool {
        self.delivered.exit_status() == crate::error::ExitStatus::Success
    }
}
