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

use std::collections::BTreeSet;
use std::time::{Duration as StdDuration, Instant};

use anyhow::anyhow;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use lettre::message::Mailbox;
use serde::Serialize;
use serde_json::json;

use super::Outcome;
use super::due::{DueList, due_items, walk_window};
use crate::cli::SendArgs;
use crate::config::{Clock, DatabaseUrl, MailSettings, Windows};
use crate::db::Db;
use crate::db::reminders::{self, Claimed, NewReminder, NewSendLog, PENDING, Resolution, SENT, SKIPPED};
use crate::db::types::{Id, Timestamp};
use crate::error::ExitStatus;
use crate::input::parse_duration;
use crate::mail::{self, Mailer, SendFailure};
use crate::output::{self, Report};
use crate::schedule::{Target, backoff, nearest_target, stale_reason};

/// Rejections in a row after which an address is opted out.
const REJECTIONS_BEFORE_OPT_OUT: i64 = 3;
/// The longest a delivery waits to be recorded (the group commit).
const GROUP_COMMIT_WAIT: StdDuration = StdDuration::from_millis(5);
/// The most results recorded in one transaction.
const GROUP_COMMIT_SIZE: usize = 500;

/// The settings of one `send` run, validated.
struct SendOptions {
    max_attempts: i32,
    batch_size: i64,
    connections: u32,
    lease: chrono::Duration,
    delivery_window: Option<chrono::Duration>,
    backoff: chrono::Duration,
    smtp_timeout: StdDuration,
}

impl SendOptions {
    fn from_args(args: &SendArgs) -> anyhow::Result<SendOptions> {
        Ok(SendOptions {
            max_attempts: args.max_attempts,
            batch_size: args.batch_size,
            connections: args.connections,
            lease: parse_duration(&args.lease)?,
            delivery_window: args.delivery_window.as_deref().map(parse_duration).transpose()?,
            backoff: parse_duration(&args.backoff)?,
            smtp_timeout: parse_duration(&args.smtp_timeout)?
                .to_std()
                .unwrap_or(StdDuration::from_secs(30)),
        })
    }
}

pub fn run(database: &DatabaseUrl, args: SendArgs) -> anyhow::Result<Outcome> {
    let windows = Windows::from_args(&args.window)?;
    let options = SendOptions::from_args(&args)?;
    if args.dry_run {
        let mut db = Db::open(database)?;
        let items = due_items(&mut db, &windows)?;
        let queued = reminders::count_claimable(&mut db, windows.clock.now())?;
        return Ok(Outcome::success(DryRun {
            items: DueList(items),
            queued,
        }));
    }
    let mail = MailSettings::from_args(&args.mail)?;
    let mut db = Db::open(database)?;
    let mailer = Mailer::new(&mail.url, options.connections, options.smtp_timeout)?;
    let mut report = SendReport::default();
    schedule_due(&mut db, &windows, &mut report)?;
    let run = Run {
        mailer: &mailer,
        from: &mail.from,
        options: &options,
        clock: &windows.clock,
        run_id: Id::new(),
    };
    run.deliver(&mut db, &mut report)?;
    let status = if report.failed + report.retry_later > 0 {
        ExitStatus::SendsFailed
    } else {
        ExitStatus::Success
    };
    Ok(Outcome {
        report: Box::new(report),
        status,
    })
}

/// Step 1: a `reminders` row for each due (assignment, target). When one
/// assignment is in two windows at once, only the nearest target is sent; the
/// other is recorded as skipped.
fn schedule_due(db: &mut Db, windows: &Windows, report: &mut SendReport) -> anyhow::Result<()> {
    let now = windows.clock.now();
    for target in &windows.targets {
        walk_window(db, windows, target, now, |db, page| {
            let (mut to_send, mut to_skip) = (Vec::new(), Vec::new());
            for candidate in page {
                match candidate.reminder_status.as_deref() {
                    Some(SENT) => report.already_sent += 1,
                    Some(_) => {}
                    None => {
                        let due = candidate.due_at.instant();
                        let nearest = nearest_target(&windows.targets, due, now.instant(), windows.tolerance);
                        let mut row = NewReminder {
                            id: Id::new(),
                            assignment_id: candidate.assignment_id,
                            reminder_type: target.reminder_type(),
                            // Found in the window now, so it is to go now, not later.
                            scheduled_for: Timestamp::new((due - target.lead()).min(now.instant())),
                            status: PENDING,
                            last_error: None,
                            created_at: now,
                            updated_at: now,
                        };
                        match nearest {
                            Some(nearest) if nearest != target => {
                                row.status = SKIPPED;
                                row.last_error = Some(format!("superseded by the nearer {nearest} reminder"));
                                to_skip.push(row);
                            }
                            _ => to_send.push(row),
                        }
                    }
                }
            }
            reminders::schedule(db, &to_send)?;
            report.skipped += reminders::schedule(db, &to_skip)?;
            Ok(())
        })?;
    }
    Ok(())
}

/// One sending run's shared state.
struct Run<'a> {
    mailer: &'a Mailer,
    from: &'a Mailbox,
    options: &'a SendOptions,
    clock: &'a Clock,
    run_id: Id,
}

/// A finished attempt, from a sending thread.
struct Attempt {
    claimed: Claimed,
    message_id: String,
    result: Result<(), SendFailure>,
    at: Timestamp,
}

impl Run<'_> {
    /// Steps 2–4: claim, send in parallel, record in group commits.
    fn deliver(&self, db: &mut Db, report: &mut SendReport) -> anyhow::Result<()> {
        // Holds at most one and a half batches, so memory is flat. Rows waiting
        // here are claimed but not in flight: a kill loses none of them.
        let capacity = self.options.batch_size as usize * 3 / 2 + 1;
        let (jobs, job_queue) = crossbeam_channel::bounded::<Claimed>(capacity);
        let (done, finished) = crossbeam_channel::unbounded::<Attempt>();
        std::thread::scope(|scope| {
            for _ in 0..self.options.connections {
                let (job_queue, done) = (job_queue.clone(), done.clone());
                scope.spawn(move || self.send_each(job_queue, done));
            }
            drop(done);
            let result = self.dispatch(db, jobs, &finished, report);
            if result.is_err() {
                // Hand back what this run can no longer finish; best effort.
                let _ = reminders::release_claims(db, self.run_id, self.clock.now());
            }
            result
        })
    }

    /// A sending thread: one pooled connection's worth of work.
    fn send_each(&self, job_queue: Receiver<Claimed>, done: Sender<Attempt>) {
        for claimed in job_queue {
            let message_id = mail::message_id(claimed.reminder_id, self.from);
            let result = mail::reminder_message(&claimed, self.from, self.clock.now().instant())
                .and_then(|(message, _)| self.mailer.send(&message));
            let attempt = Attempt {
                claimed,
                message_id,
                result,
                at: self.clock.now(),
            };
            if done.send(attempt).is_err() {
                return;
            }
        }
    }

    fn dispatch(
        &self,
        db: &mut Db,
        jobs: Sender<Claimed>,
        finished: &Receiver<Attempt>,
        report: &mut SendReport,
    ) -> anyhow::Result<()> {
        let batch_size = self.options.batch_size;
        let mut group = Group::default();
        let mut outstanding = 0usize;
        let mut exhausted = false;
        loop {
            if !exhausted && jobs.len() < batch_size as usize / 2 + 1 {
                let now = self.clock.now();
                let lease_until = Timestamp::new(now.instant() + self.options.lease);
                let batch = reminders::claim_batch(db, self.run_id, now, lease_until, batch_size)?;
                exhausted = batch.is_empty();
                for claimed in batch {
                    if let Some(reason) = self.skip_reason(&claimed, now) {
                        group.resolve(claimed.reminder_id, Resolution::Skipped { reason });
                        report.skipped += 1;
                    } else {
                        jobs.send(claimed).map_err(|_| anyhow!("the sending threads stopped"))?;
                        outstanding += 1;
                    }
                }
                continue;
            }
            if exhausted && outstanding == 0 {
                return self.flush(db, &mut group, report);
            }
            match finished.recv_timeout(StdDuration::from_millis(2)) {
                Ok(attempt) => {
                    outstanding -= 1;
                    self.settle(attempt, &mut group, report);
                    for attempt in finished.try_iter() {
                        outstanding -= 1;
                        self.settle(attempt, &mut group, report);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(anyhow!("the sending threads stopped"));
                }
            }
            if group.is_due() {
                self.flush(db, &mut group, report)?;
            }
        }
    }

    /// Why a claimed reminder must not go out now, checked just before sending.
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
            self.options.delivery_window,
        )
    }

    /// Turns an attempt into the reminder's new state and its send log.
    fn settle(&self, attempt: Attempt, group: &mut Group, report: &mut SendReport) {
        let Attempt {
            claimed,
            message_id,
            result,
            at,
        } = attempt;
        let (resolution, log_status, error) = match result {
            Ok(()) => {
                report.sent += 1;
                (Resolution::Sent { at }, "delivered", None)
            }
            Err(SendFailure::Transient(error)) => {
                let attempts = claimed.attempts + 1;
                let resolution = if attempts >= self.options.max_attempts {
                    report.failed += 1;
                    Resolution::Failed {
                        error: format!("gave up after {attempts} attempts: {error}"),
                    }
                } else {
                    report.retry_later += 1;
                    let retry_at = Timestamp::new(at.instant() + backoff(attempts, self.options.backoff));
                    Resolution::RetryLater {
                        error: error.clone(),
                        retry_at,
                    }
                };
                (resolution, "failed", Some(error))
            }
            Err(SendFailure::Permanent(error)) => {
                report.failed += 1;
                group.rejected.insert(claimed.student_email.clone());
                (Resolution::Failed { error: error.clone() }, "rejected", Some(error))
            }
        };
        group.logs.push(NewSendLog {
            id: Id::new(),
            reminder_id: Some(claimed.reminder_id),
            assignment_id: Some(claimed.assignment_id),
            to_email: claimed.student_email,
            from_inbox: self.from.email.to_string(),
            message_id: Some(message_id),
            status: log_status,
            error,
            created_at: at,
        });
        group.resolve(claimed.reminder_id, resolution);
    }

    /// Commits a group of results, then applies the bounce rule to the
    /// addresses it saw rejected.
    fn flush(&self, db: &mut Db, group: &mut Group, report: &mut SendReport) -> anyhow::Result<()> {
        if group.resolved.is_empty() {
            return Ok(());
        }
        let now = self.clock.now();
        reminders::record(db, &group.resolved, &group.logs, now)?;
        for email in std::mem::take(&mut group.rejected) {
            if reminders::opt_out_after_rejections(db, &email, REJECTIONS_BEFORE_OPT_OUT, now)? {
                eprintln!(
                    "warning: `{email}` was rejected {REJECTIONS_BEFORE_OPT_OUT} times in a row and is now opted out"
                );
                report.opted_out.push(email);
            }
        }
        group.resolved.clear();
        group.logs.clear();
        group.started = None;
        Ok(())
    }
}

/// Results waiting for their group commit.
#[derive(Default)]
struct Group {
    resolved: Vec<(Id, Resolution)>,
    logs: Vec<NewSendLog>,
    rejected: BTreeSet<String>,
    started: Option<Instant>,
}

impl Group {
    fn resolve(&mut self, id: Id, resolution: Resolution) {
        self.started.get_or_insert_with(Instant::now);
        self.resolved.push((id, resolution));
    }

    fn is_due(&self) -> bool {
        self.resolved.len() >= GROUP_COMMIT_SIZE
            || self
                .started
                .is_some_and(|started| started.elapsed() >= GROUP_COMMIT_WAIT)
    }
}

/// What a run did.
#[derive(Debug, Default, Serialize)]
pub struct SendReport {
    pub sent: usize,
    pub failed: usize,
    pub retry_later: usize,
    pub skipped: usize,
    pub already_sent: usize,
    pub opted_out: Vec<String>,
}

impl Report for SendReport {
    fn to_json(&self) -> serde_json::Value {
        json!(self)
    }

    fn to_table(&self) -> String {
        let mut rows = vec![
            ("sent", self.sent.to_string()),
            ("failed", self.failed.to_string()),
            ("retry later", self.retry_later.to_string()),
            ("skipped", self.skipped.to_string()),
            ("already sent", self.already_sent.to_string()),
        ];
        if !self.opted_out.is_empty() {
            rows.push(("opted out (bounces)", self.opted_out.join(", ")));
        }
        output::key_values(rows)
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
