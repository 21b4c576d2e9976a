//! The claim–send–record pipeline that reminders and daily summaries share.
//!
//! Batches of due rows are leased to this run in one short transaction, sent
//! by `--connections` threads over a pooled transport, and their results are
//! committed in small groups every few milliseconds, so a killed run leaves
//! unrecorded only the messages that were in flight. Rows it had claimed but
//! not sent go back to the queue when the lease runs out.

use std::collections::BTreeSet;
use std::time::{Duration as StdDuration, Instant};

use anyhow::anyhow;
use chrono::{DateTime, Utc};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use lettre::Message;
use lettre::message::Mailbox;
use serde::Serialize;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use signal_hook::consts::{SIGINT, SIGTERM};

use crate::config::Clock;
use crate::db::Db;
use crate::db::queue::{NewSendLog, Resolution};
use crate::db::reminders::opt_out_after_rejections;
use crate::db::types::{Id, Timestamp};
use crate::error::ExitStatus;
use crate::mail::{self, Mailer, SendFailure};
use crate::schedule::backoff;

/// Rejections in a row after which an address is opted out.
const REJECTIONS_BEFORE_OPT_OUT: i64 = 3;
/// The longest a delivery waits to be recorded (the group commit).
const GROUP_COMMIT_WAIT: StdDuration = StdDuration::from_millis(5);
/// The most results recorded in one transaction.
const GROUP_COMMIT_SIZE: usize = 500;

/// A table of messages to send: `reminders` or `daily_summaries`.
pub trait Queue: Sync {
    type Job: Send;

    /// Leases up to `limit` due jobs to `run_id` until `lease_until`.
    fn claim(
        &self,
        db: &mut Db,
        run_id: Id,
        now: Timestamp,
        lease_until: Timestamp,
        limit: i64,
    ) -> anyhow::Result<Vec<Self::Job>>;
    /// What the log and the bookkeeping need to know of a job.
    fn info(&self, job: &Self::Job) -> JobInfo;
    /// Why a job must not go out now, checked just before sending.
    fn skip_reason(&self, job: &Self::Job, now: Timestamp) -> Option<String>;
    fn compose(&self, job: &Self::Job, from: &Mailbox, now: DateTime<Utc>) -> Result<Message, SendFailure>;
    /// Writes resolutions and their send logs in one transaction.
    fn record(
        &self,
        db: &mut Db,
        resolved: &[(Id, Resolution)],
        logs: &[NewSendLog],
        now: Timestamp,
    ) -> anyhow::Result<()>;
    /// Hands back this run's unfinished claims.
    fn release(&self, db: &mut Db, run_id: Id, now: Timestamp) -> anyhow::Result<usize>;
}

/// The bookkeeping facts of one job.
pub struct JobInfo {
    pub id: Id,
    pub attempts: i32,
    pub to_email: String,
    pub reminder_id: Option<Id>,
    pub assignment_id: Option<Id>,
    pub summary_id: Option<Id>,
}

/// How a run sends: from `send` and `summary --send`.
pub struct DeliveryOptions {
    pub max_attempts: i32,
    pub batch_size: i64,
    pub connections: u32,
    pub lease: chrono::Duration,
    pub backoff: chrono::Duration,
    /// Messages a second across all connections (`--rate`).
    pub rate: Option<u32>,
    /// Messages in this run at most (`--limit`); the rest wait for the next.
    pub limit: Option<u64>,
}

/// What the pipeline did.
#[derive(Debug, Default, Serialize)]
pub struct Delivered {
    pub sent: usize,
    pub failed: usize,
    pub retry_later: usize,
    pub skipped: usize,
    pub opted_out: Vec<String>,
    /// Claimed but not sent because SIGTERM or Ctrl-C stopped the run; handed back.
    pub left_over: usize,
}

impl Delivered {
    /// Adds another pipeline's counts (for runs that schedule and deliver).
    pub fn add(&mut self, other: Delivered) {
        self.sent += other.sent;
        self.failed += other.failed;
        self.retry_later += other.retry_later;
        self.skipped += other.skipped;
        self.opted_out.extend(other.opted_out);
        self.left_over += other.left_over;
    }

    /// Nothing sent, nothing failed, nothing left over: a quiet cron run prints nothing.
    pub fn is_idle(&self) -> bool {
        self.sent + self.failed + self.retry_later + self.left_over == 0
    }

    /// 3 when some sends failed (for retry or for good) or a stop left some, else 0.
    pub fn exit_status(&self) -> ExitStatus {
        if self.failed + self.retry_later + self.left_over > 0 {
            ExitStatus::SendsFailed
        } else {
            ExitStatus::Success
        }
    }

    /// The counts as table rows.
    pub fn rows(&self) -> Vec<(&'static str, String)> {
        let mut rows = vec![
            ("sent", self.sent.to_string()),
            ("failed", self.failed.to_string()),
            ("retry later", self.retry_later.to_string()),
            ("skipped", self.skipped.to_string()),
        ];
        if !self.opted_out.is_empty() {
            rows.push(("opted out (bounces)", self.opted_out.join(", ")));
        }
        if self.left_over > 0 {
            rows.push(("left for the next run (stopped)", self.left_over.to_string()));
        }
        rows
    }
}

/// Sends everything the queue has due, and reports what happened.
pub fn deliver<Q: Queue>(
    db: &mut Db,
    queue: &Q,
    mailer: &Mailer,
    from: &Mailbox,
    options: &DeliveryOptions,
    clock: &Clock,
) -> anyhow::Result<Delivered> {
    let rate_limit = options
        .rate
        .and_then(NonZeroU32::new)
        .map(|rate| RateLimiter::direct(Quota::per_second(rate)));
    let run = Run {
        queue,
        mailer,
        from,
        options,
        clock,
        run_id: Id::new(),
        rate_limit,
    };
    let mut report = Delivered::default();
    // SIGTERM or Ctrl-C: stop claiming, finish what is in flight, hand the rest back.
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGTERM, SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    // Holds at most one and a half batches, so memory is flat. Jobs waiting
    // here are claimed but not in flight: a kill loses none of them.
    let capacity = options.batch_size as usize * 3 / 2 + 1;
    let (jobs, job_queue) = crossbeam_channel::bounded::<Q::Job>(capacity);
    let (done, finished) = crossbeam_channel::unbounded::<Attempt<Q::Job>>();
    std::thread::scope(|scope| {
        for _ in 0..options.connections {
            let (job_queue, done) = (job_queue.clone(), done.clone());
            let run = &run;
            scope.spawn(move || {
                if let Err(error) = run.send_each(job_queue, done) {
                    eprintln!("error: a sending thread could not start: {error:#}");
                }
            });
        }
        drop(done);
        let result = run.dispatch(db, (jobs, job_queue), &finished, &stop, &mut report);
        if result.is_err() {
            // Hand back what this run can no longer finish; best effort.
            let _ = queue.release(db, run.run_id, clock.now());
        }
        result
    })?;
    Ok(report)
}

struct Run<'a, Q> {
    queue: &'a Q,
    mailer: &'a Mailer,
    from: &'a Mailbox,
    options: &'a DeliveryOptions,
    clock: &'a Clock,
    run_id: Id,
    rate_limit: Option<DefaultDirectRateLimiter>,
}

/// A finished attempt, from a sending thread.
struct Attempt<J> {
    job: J,
    result: Result<(), SendFailure>,
    at: Timestamp,
}

impl<Q: Queue> Run<'_, Q> {
    /// A sending thread: one connection's worth of work.
    fn send_each(&self, job_queue: Receiver<Q::Job>, done: Sender<Attempt<Q::Job>>) -> anyhow::Result<()> {
        let mut courier = self.mailer.courier()?;
        for job in job_queue {
            if let Some(limiter) = &self.rate_limit {
                // governor's sync interface: wait out each "not yet" it gives.
                while let Err(not_until) = limiter.check() {
                    std::thread::sleep(not_until.wait_time_from(DefaultClock::default().now()));
                }
            }
            let result = self
                .queue
                .compose(&job, self.from, self.clock.now().instant())
                .and_then(|message| courier.send(&message));
            if done
                .send(Attempt {
                    job,
                    result,
                    at: self.clock.now(),
                })
                .is_err()
            {
                break;
            }
        }
        Ok(())
    }

    fn dispatch(
        &self,
        db: &mut Db,
        (jobs, unsent): (Sender<Q::Job>, Receiver<Q::Job>),
        finished: &Receiver<Attempt<Q::Job>>,
        stop: &AtomicBool,
        report: &mut Delivered,
    ) -> anyhow::Result<()> {
        let batch_size = self.options.batch_size;
        let mut group = Group::default();
        let mut outstanding = 0usize;
        let mut exhausted = false;
        let mut allowance = self.options.limit.unwrap_or(u64::MAX);
        let mut stopping = false;
        loop {
            if !stopping && stop.load(Ordering::SeqCst) {
                // Take back what no sender has started; the claims go back below.
                stopping = true;
                exhausted = true;
                for _ in unsent.try_iter() {
                    outstanding -= 1;
                    report.left_over += 1;
                }
            }
            // Claim the next batch while the senders still have half a batch to go.
            if !exhausted && jobs.len() < batch_size as usize / 2 + 1 {
                let now = self.clock.now();
                let lease_until = Timestamp::new(now.instant() + self.options.lease);
                let wanted = batch_size.min(allowance.try_into().unwrap_or(i64::MAX));
                let batch = if wanted > 0 {
                    self.queue.claim(db, self.run_id, now, lease_until, wanted)?
                } else {
                    Vec::new()
                };
                allowance -= batch.len() as u64;
                exhausted = batch.is_empty();
                for job in batch {
                    if let Some(reason) = self.queue.skip_reason(&job, now) {
                        group.resolve(self.queue.info(&job).id, Resolution::Skipped { reason });
                        report.skipped += 1;
                    } else {
                        jobs.send(job).map_err(|_| anyhow!("the sending threads stopped"))?;
                        outstanding += 1;
                    }
                }
                continue;
            }
            if exhausted && outstanding == 0 {
                self.flush(db, &mut group, report)?;
                if stopping {
                    self.queue.release(db, self.run_id, self.clock.now())?;
                }
                return Ok(());
            }
            match finished.recv_timeout(StdDuration::from_millis(2)) {
                Ok(attempt) => {
                    for attempt in std::iter::once(attempt).chain(finished.try_iter()) {
                        outstanding -= 1;
                        self.settle(attempt, &mut group, report);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Err(anyhow!("the sending threads stopped")),
            }
            if group.is_due() {
                self.flush(db, &mut group, report)?;
            }
        }
    }

    /// Turns an attempt into the job's new state and its send log.
    fn settle(&self, attempt: Attempt<Q::Job>, group: &mut Group, report: &mut Delivered) {
        let Attempt { job, result, at } = attempt;
        let info = self.queue.info(&job);
        let (resolution, log_status, error) = match result {
            Ok(()) => {
                report.sent += 1;
                (Resolution::Sent { at }, "delivered", None)
            }
            Err(SendFailure::Transient(error)) => {
                let attempts = info.attempts + 1;
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
                group.rejected.insert(info.to_email.clone());
                (Resolution::Failed { error: error.clone() }, "rejected", Some(error))
            }
        };
        group.logs.push(NewSendLog {
            id: Id::new(),
            reminder_id: info.reminder_id,
            assignment_id: info.assignment_id,
            summary_id: info.summary_id,
            to_email: info.to_email,
            from_inbox: self.from.email.to_string(),
            message_id: Some(mail::message_id(info.id, self.from)),
            status: log_status,
            error,
            created_at: at,
        });
        group.resolve(info.id, resolution);
    }

    /// Commits a group of results, then applies the bounce rule to the
    /// addresses it saw rejected.
    fn flush(&self, db: &mut Db, group: &mut Group, report: &mut Delivered) -> anyhow::Result<()> {
        if group.resolved.is_empty() {
            return Ok(());
        }
        let now = self.clock.now();
        self.queue.record(db, &group.resolved, &group.logs, now)?;
        for email in std::mem::take(&mut group.rejected) {
            if opt_out_after_rejections(db, &email, REJECTIONS_BEFORE_OPT_OUT, now)? {
                crate::log::warning!(
                    "`{email}` was rejected {REJECTIONS_BEFORE_OPT_OUT} times in a row and is now opted out"
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
