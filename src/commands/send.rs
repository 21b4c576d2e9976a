//! `reminders send`: schedule what is due, claim it, email it over pooled SMTP
//! connections in parallel, and record every attempt.
//!
//! The flow of one run:
//! 1. schedule: each (assignment, target) in a window gets a `reminders` row,
//!    inserted with ON CONFLICT DO NOTHING, so overlapping runs schedule it once;
//! 2. claim: batches of due pending rows are leased to this run in one short
//!    transaction (SKIP LOCKED on PostgreSQL, BEGIN IMMEDIATE on SQLite);
//! 3. send: `--connections` threads share a pooled transport;
//! 4. record: results are committed in small groups every few milliseconds, so a
//!    killed run leaves unrecorded only the messages that were in flight. Rows it
//!    had claimed but not sent go back to the queue when the lease runs out.

use chrono::{DateTime, Utc};
use lettre::Message;
use lettre::message::Mailbox;
use serde::Serialize;
use serde_json::json;

use super::Outcome;
use super::due::{DueList, NearestRule, due_items, walk_window};
use crate::cli::SendArgs;
use crate::db::DatabaseUrl;
use crate::db::Db;
use crate::db::queue::{NewSendLog, Resolution};
use crate::db::reminders::{self, Claimed, NewReminder, PENDING, SENT, SKIPPED};
use crate::db::types::{Id, Timestamp};
use crate::delivery::{Delivered, JobInfo, Queue, deliver};
use crate::failure::SendFailure;
use crate::mail;
use crate::output::{self, Report};
use crate::render::Templates;
use crate::schedule::{Target, stale_reason};
use crate::settings::{DeliverySettings, Windows};
use crate::time;

pub fn run(database: &DatabaseUrl, args: SendArgs, templates: Templates) -> anyhow::Result<Outcome> {
    let mut windows = Windows::from_args(&args.window)?;
    let settings = DeliverySettings::from_args(&args.delivery)?;
    if args.dry_run {
        let mut db = Db::open(database)?;
        let items = due_items(&mut db, &windows)?;
        let queued = reminders::count_claimable(&mut db, Timestamp::now(&windows.clock))?;
        return Ok(Outcome::success(DryRun {
            items: DueList(items),
            queued,
        }));
    }
    let (mail, mailer) = settings.mailer()?;
    let mut db = Db::open(database)?;
    windows.clock.follow(db.server_clock()?);
    crate::log::info!(
        "database `{}`, mail `{}`, now {}",
        database.display(),
        mail.url.display(),
        windows.clock.now()
    );
    let mut report = SendReport::default();
    let started = std::time::Instant::now();
    schedule_due(&mut db, &windows, &mut report)?;
    crate::log::info!("scheduled the due windows in {:?}", started.elapsed());
    let queue = Reminders {
        delivery_window: args.delivery_window,
        templates,
    };
    let delivered = deliver(
        database,
        &mut db,
        &queue,
        &mailer,
        &mail.from,
        &settings.options,
        &windows.clock,
    )?;
    report.delivered.add(delivered);
    crate::log::info!("finished in {:?}", started.elapsed());
    Ok(Outcome {
        status: report.delivered.exit_status(),
        report: Box::new(report),
    })
}

/// Step 1: a `reminders` row for each due (assignment, target). When this run
/// finds one assignment in two windows, neither reminder created yet, only the
/// nearest target is sent; the other is recorded as skipped (`NearestRule`).
fn schedule_due(db: &mut Db, windows: &Windows, report: &mut SendReport) -> anyhow::Result<()> {
    let now = Timestamp::now(&windows.clock);
    let mut rule = NearestRule::default();
    for target in &windows.targets {
        walk_window(db, windows, target, now, |db, page| {
            let superseded = rule.superseded_by(db, windows, now.instant(), target, &page)?;
            let (mut to_send, mut to_skip) = (Vec::new(), Vec::new());
            for (candidate, nearer) in page.into_iter().zip(superseded) {
                match candidate.reminder_status.as_deref() {
                    Some(SENT) => report.already_sent += 1,
                    Some(_) => {}
                    None => {
                        let due = candidate.due_at.instant();
                        let mut row = NewReminder {
                            id: Id::new(),
                            assignment_id: candidate.assignment_id,
                            reminder_type: target.reminder_type(),
                            // Found in the window now, so it is to go now, not later.
                            scheduled_for: Timestamp::new(time::saturating_add(due, -target.lead()).min(now.instant())),
                            status: PENDING,
                            last_error: None,
                            created_at: now,
                            updated_at: now,
                            due_at: candidate.due_at,
                        };
                        match nearer {
                            Some(nearer) => {
                                row.status = SKIPPED;
                                row.last_error = Some(format!("superseded by the nearer {nearer} reminder"));
                                to_skip.push(row);
                            }
                            None => to_send.push(row),
                        }
                    }
                }
            }
            reminders::schedule(db, &to_send)?;
            report.delivered.skipped += reminders::schedule(db, &to_skip)?;
            Ok(())
        })?;
    }
    Ok(())
}

/// The `reminders` table as a send queue.
struct Reminders {
    delivery_window: Option<chrono::Duration>,
    templates: Templates,
}

impl Queue for Reminders {
    type Job = Claimed;

    fn claim(
        &self,
        db: &mut Db,
        run_id: Id,
        now: Timestamp,
        lease_until: Timestamp,
        limit: i64,
    ) -> anyhow::Result<Vec<Claimed>> {
        reminders::claim_batch(db, run_id, now, lease_until, limit)
    }

    fn reload(&self, db: &mut Db, run_id: Id, ids: &[Id], _now: Timestamp) -> anyhow::Result<Vec<Claimed>> {
        reminders::reload_held(db, run_id, ids)
    }

    fn renew(&self, db: &mut Db, run_id: Id, now: Timestamp, lease_until: Timestamp) -> anyhow::Result<Vec<Id>> {
        reminders::renew_claims(db, run_id, now, lease_until)
    }

    fn info(&self, claimed: &Claimed) -> JobInfo {
        JobInfo {
            id: claimed.reminder_id,
            attempts: claimed.attempts,
            to_email: claimed.student_email.clone(),
            reminder_id: Some(claimed.reminder_id),
            assignment_id: Some(claimed.assignment_id),
            summary_id: None,
        }
    }

    fn skip_reason(&self, claimed: &Claimed, now: Timestamp) -> Option<String> {
        if claimed.contact_opt_out {
            return Some("the student opted out".to_string());
        }
        if claimed.completed {
            return Some("the assignment is completed".to_string());
        }
        let target = Target::from_reminder_type(&claimed.reminder_type);
        stale_reason(
            target.as_ref(),
            claimed.due_at.instant(),
            now.instant(),
            self.delivery_window,
        )
    }

    fn compose(&self, claimed: &Claimed, from: &Mailbox, now: DateTime<Utc>) -> Result<Message, SendFailure> {
        mail::reminder_message(claimed, from, now, &self.templates)
    }

    fn record(
        &self,
        db: &mut Db,
        run_id: Id,
        resolved: &[(Id, Resolution)],
        logs: &[NewSendLog],
        now: Timestamp,
    ) -> anyhow::Result<Vec<Id>> {
        reminders::record(db, run_id, resolved, logs, now)
    }

    fn release(&self, db: &mut Db, run_id: Id, now: Timestamp) -> anyhow::Result<usize> {
        reminders::release_claims(db, run_id, now)
    }
}

/// What a run did.
#[derive(Debug, Default, Serialize)]
pub struct SendReport {
    #[serde(flatten)]
    pub delivered: Delivered,
    /// Reminders in the windows that an earlier run had sent.
    pub already_sent: usize,
}

impl Report for SendReport {
    fn to_json(&self) -> serde_json::Value {
        json!(self)
    }

    fn to_table(&self) -> String {
        let mut rows = self.delivered.rows();
        rows.push(("already sent", self.already_sent.to_string()));
        output::key_values(rows)
    }

    fn is_idle(&self) -> bool {
        self.delivered.is_idle()
    }
}

/// What `--dry-run` would do.
struct DryRun {
    items: DueList,
    queued: i64,
}

impl Report for DryRun {
    fn to_json(&self) -> serde_json::Value {
        json!({ "due": self.items.to_json(), "queued": self.queued })
    }

    fn to_table(&self) -> String {
        format!(
            "{}\n{} pending reminder(s) in the queue would be claimed (dry run: nothing was written or sent)",
            self.items.to_table(),
            self.queued
        )
    }
}
