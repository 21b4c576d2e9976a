//! The claim–send–record pipeline that reminders and daily summaries share,
//! and the rules that keep each message to one delivery under faults.
//!
//! One dispatcher (the calling thread) owns the database connection. It leases
//! due rows to this run in small batches, renews the lease on everything it
//! holds every third of the lease, re-reads each row just before handing it
//! to a sending thread (opt-out, completion, due time), and commits each result
//! before that thread gets another message. Every write is fenced on the row still
//! being this run's, so a run that lost a row to another never overwrites it.
//!
//! `--connections` sending threads take messages from the dispatcher: one
//! each as they come free (a few milliseconds' worth more while the mail
//! server is fast), and check the run's lease on the monotonic clock and the
//! age of the row's last read before each message leaves: a run frozen past
//! its lease sends nothing more when it wakes. When the database goes away,
//! nothing more is handed out; the messages in flight finish, the run
//! reconnects and records them, or stops and says how many deliveries are
//! unrecorded.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration as StdDuration, Instant};

use anyhow::anyhow;
use chrono::{DateTime, Utc};
use crossbeam_channel::{self as channel, Receiver, RecvTimeoutError, TrySendError};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use lettre::Message;
use serde::Serialize;
use signal_hook::consts::{SIGINT, SIGTERM};

use crate::db::DatabaseUrl;
use crate::db::Db;
use crate::db::queue::{QueueTable, opt_out_after_rejections};
use crate::db::types::{Id, Timestamp};
use crate::error::ExitStatus;
use crate::mail::token::MessageRef;
use crate::mail::{self, Blame, Mailer, SendFailure, Sender};

use super::policy::{self, REJECTIONS_BEFORE_OPT_OUT, RUN_FAILURES_BEFORE_STOP};
use super::{NewSendLog, Resolution};
use crate::time::Clock;

/// The longest a result of a fast message waits to be recorded (the group
/// commit). A message that took longer than this is recorded at once.
const GROUP_COMMIT_WAIT: StdDuration = StdDuration::from_millis(5);
/// The most results recorded in one transaction.
const GROUP_COMMIT_SIZE: usize = 500;
/// While messages are fast, the senders may find this much work queued for
/// them, so that they keep sending while the dispatcher is in the database.
const FAST_QUEUE: StdDuration = StdDuration::from_millis(100);
/// A row read longer ago than this is read again before it is handed out.
const RECHECK_AFTER: StdDuration = StdDuration::from_millis(500);
/// A sending thread hands back, unsent, a message whose row was read longer
/// ago than this (the run was frozen or stalled): the bound on check-to-send.
const MAX_CHECK_AGE: StdDuration = StdDuration::from_secs(1);
/// How long a run keeps trying to reach its database again after losing it.
const RECONNECT_FOR: StdDuration = StdDuration::from_secs(30);
/// Reconnections in one run after which a database fault is taken to be
/// something a new connection does not cure.
const MAX_RECONNECTS: usize = 3;

/// A table of messages to send: `reminders` or `daily_summaries`. The table's
/// own operations (claim, renew, record, release) come from `db::queue`; a
/// queue adds what a claimed row needs to become a message. A job is one
/// message; it may carry several rows (a digest), each recorded on its own.
pub trait Queue: Sync {
    type Table: QueueTable;
    type Job: Send;

    /// Leases up to `limit` due rows to this run (see `QueueTable::claim_batch`).
    fn claim(
        &self,
        db: &mut Db,
        run_id: Id,
        now: Timestamp,
        lease_until: Timestamp,
        limit: i64,
    ) -> anyhow::Result<Vec<<Self::Table as QueueTable>::Row>> {
        Self::Table::claim_batch(db, run_id, now, lease_until, limit)
    }
    /// Turns claimed (or re-read) rows into jobs, reading whatever else the
    /// message needs at `now`.
    fn jobs(
        &self,
        db: &mut Db,
        rows: Vec<<Self::Table as QueueTable>::Row>,
        now: Timestamp,
    ) -> anyhow::Result<Vec<Self::Job>>;
    /// What the log and the bookkeeping need to know of a job.
    fn info(&self, job: &Self::Job) -> JobInfo;
    /// The part of a job that may go out now, checked on its rows as last
    /// read, and each row that must not, with why (it is recorded skipped).
    fn check(&self, job: Self::Job, now: Timestamp) -> (Option<Self::Job>, Vec<(Id, String)>);
    fn compose(&self, job: &Self::Job, sender: &Sender, now: DateTime<Utc>) -> Result<Message, SendFailure>;
}

/// The bookkeeping facts of one job: one message, to one address, of one or more rows.
pub struct JobInfo {
    pub to_email: String,
    /// Which message this is, as its tokens and Message-ID name it.
    pub message: MessageRef,
    /// See `mail::Identity::edition`.
    pub edition: Option<String>,
    pub rows: Vec<RowInfo>,
}

/// One queue row that a job sends.
pub struct RowInfo {
    pub id: Id,
    pub attempts: i32,
    pub reminder_id: Option<Id>,
    pub assignment_id: Option<Id>,
    pub summary_id: Option<Id>,
}

impl JobInfo {
    fn ids(&self) -> Vec<Id> {
        self.rows.iter().map(|row| row.id).collect()
    }
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

/// What the pipeline did, as recorded in the database.
#[derive(Debug, Default, Serialize)]
pub struct Delivered {
    pub sent: usize,
    pub failed: usize,
    pub retry_later: usize,
    pub skipped: usize,
    pub opted_out: Vec<String>,
    /// Claimed but not sent because SIGTERM or Ctrl-C stopped the run; handed back.
    pub left_over: usize,
    /// SIGTERM or Ctrl-C stopped the run before the queue was empty: due
    /// messages may be left (claimed or not) for the next run.
    pub interrupted: bool,
    /// The signal that stopped the run, which decides its exit status.
    #[serde(skip)]
    pub stopped_by: Option<i32>,
    /// Due messages left for the next run when a signal stopped this one.
    #[serde(skip)]
    pub left_for_next_run: usize,
    /// Rows another run took over after this run's lease ran out: this run
    /// neither sent them any more nor wrote its result over the other's.
    pub lost_lease: usize,
    /// Why sends failed: one entry per distinct outcome and reason.
    pub failures: Vec<FailureCause>,
}

/// One reason sends failed in a run, how many it concerned, and the first.
#[derive(Debug, Clone, Serialize)]
pub struct FailureCause {
    /// `will be retried`, `failed for good` or `left for the next run`.
    pub outcome: &'static str,
    pub reason: String,
    pub count: usize,
    /// The first address it concerned.
    pub first: String,
}

/// Distinct causes shown on stderr; the JSON report has them all.
const CAUSES_SHOWN: usize = 5;

impl Delivered {
    /// Adds another pipeline's counts (for runs that schedule and deliver).
    pub fn add(&mut self, other: Delivered) {
        self.sent += other.sent;
        self.failed += other.failed;
        self.retry_later += other.retry_later;
        self.skipped += other.skipped;
        self.opted_out.extend(other.opted_out);
        self.left_over += other.left_over;
        self.interrupted |= other.interrupted;
        self.stopped_by = self.stopped_by.or(other.stopped_by);
        self.left_for_next_run = other.left_for_next_run.max(self.left_for_next_run);
        self.lost_lease += other.lost_lease;
        for cause in other.failures {
            self.note_failure(cause.outcome, &cause.reason, &cause.first, cause.count);
        }
    }

    /// Counts a failure under its outcome and reason.
    fn note_failure(&mut self, outcome: &'static str, reason: &str, to: &str, count: usize) {
        match self
            .failures
            .iter_mut()
            .find(|cause| cause.outcome == outcome && cause.reason == reason)
        {
            Some(cause) => cause.count += count,
            None => self.failures.push(FailureCause {
                outcome,
                reason: reason.to_string(),
                count,
                first: to.to_string(),
            }),
        }
    }

    /// Why the run did not send everything: one line per distinct cause,
    /// most frequent first, such as `3 sends will be retried: connection
    /// refused … (first: a@school.example)`, and the signal that stopped it.
    pub fn reasons(&self) -> Vec<String> {
        let mut causes: Vec<&FailureCause> = self.failures.iter().collect();
        causes.sort_by_key(|cause| std::cmp::Reverse(cause.count));
        let mut reasons: Vec<String> = causes
            .iter()
            .take(CAUSES_SHOWN)
            .map(|cause| {
                let sends = if cause.count == 1 { "send" } else { "sends" };
                format!(
                    "{} {sends} {}: {} (first: {})",
                    cause.count, cause.outcome, cause.reason, cause.first
                )
            })
            .collect();
        if causes.len() > CAUSES_SHOWN {
            reasons.push(format!(
                "and {} other causes (see the JSON report)",
                causes.len() - CAUSES_SHOWN
            ));
        }
        if self.interrupted {
            reasons.push(format!(
                "interrupted by {}: {} left for the next run; nothing was lost",
                signal_name(self.stopped_by),
                crate::output::count(self.left_for_next_run as i64, "message", "messages")
            ));
        }
        reasons
    }

    /// 130 or 143 when a signal stopped the run with work left (as shells
    /// report it), 3 when some sends failed (for retry or for good), else 0.
    pub fn exit_status(&self) -> ExitStatus {
        if self.interrupted {
            match self.stopped_by {
                Some(SIGTERM) => ExitStatus::Terminated,
                _ => ExitStatus::Interrupted,
            }
        } else if self.failed + self.retry_later + self.left_over > 0 {
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
        if self.left_over > 0 || self.interrupted {
            rows.push((
                "left for the next run (stopped)",
                format!("{} claimed, and what was not claimed yet", self.left_over),
            ));
        }
        if self.lost_lease > 0 {
            rows.push(("taken over by another run (lease ran out)", self.lost_lease.to_string()));
        }
        rows
    }

    fn count(&mut self, resolution: &Resolution) {
        match resolution {
            Resolution::Sent { .. } => self.sent += 1,
            Resolution::RetryLater { .. } | Resolution::Released { .. } => self.retry_later += 1,
            Resolution::Failed { .. } => self.failed += 1,
            Resolution::Skipped { .. } => self.skipped += 1,
        }
    }
}

fn signal_name(signal: Option<i32>) -> &'static str {
    match signal {
        Some(SIGTERM) => "SIGTERM",
        _ => "Ctrl-C (SIGINT)",
    }
}

/// Sends everything the queue has due, and reports what happened.
pub fn deliver<Q: Queue>(
    database: &DatabaseUrl,
    db: &mut Db,
    queue: &Q,
    mailer: &Mailer,
    sender: &Sender,
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
        sender,
        clock,
        rate_limit,
        lease: Lease::new(options.lease),
        halt: AtomicBool::new(false),
        ready: AtomicUsize::new(0),
    };
    // SIGTERM or Ctrl-C: stop handing out, finish what is in flight, hand the rest back.
    let stop = Arc::new(AtomicUsize::new(0));
    for signal in [SIGTERM, SIGINT] {
        signal_hook::flag::register_usize(signal, Arc::clone(&stop), signal as usize)?;
    }
    let (handoff, handed) = crossbeam_channel::bounded::<Held<Q::Job>>(options.batch_size.max(1) as usize);
    let (done, returned) = crossbeam_channel::unbounded::<Returned<Q::Job>>();
    std::thread::scope(|scope| {
        for _ in 0..options.connections {
            let (handed, done) = (handed.clone(), done.clone());
            let run = &run;
            scope.spawn(move || {
                if let Err(error) = run.send_each(handed, done) {
                    crate::log::warning!("a sending thread could not start: {error:#}");
                }
            });
        }
        drop(done);
        let mut dispatcher = Dispatcher {
            handoff,
            unsent: handed,
            run: &run,
            database,
            db,
            options,
            run_id: Id::new(),
            waiting: VecDeque::new(),
            in_flight: 0,
            fast: false,
            group: Group::default(),
            report: Delivered::default(),
            pace: Pace::default(),
            exhausted: false,
            stopping: false,
            allowance: options.limit.unwrap_or(u64::MAX),
            last_renewal: Instant::now(),
            renew_now: false,
            run_failures: 0,
            last_run_failure: None,
            tripped: false,
            stopped_at_once: false,
            warned_message: false,
            reconnects: 0,
        };
        let result = dispatcher.dispatch(&returned, &stop);
        // Ends the senders: they finish their message and find the hand-off closed.
        let Dispatcher { handoff, report, .. } = dispatcher;
        drop(handoff);
        if report.lost_lease > 0 {
            crate::log::warning!(
                "{} taken over by another run after this run's lease ran out (was it \
                 paused or starved?); this run neither sent them nor wrote over the other run's result",
                crate::output::count(report.lost_lease as i64, "message was", "messages were")
            );
        }
        result.map(|()| report)
    })
}

/// The run's lease as the sending threads see it: a deadline on the
/// monotonic clock, moved on by each renewal.
struct Lease {
    length: StdDuration,
    epoch: Instant,
    /// Milliseconds after `epoch` after which nothing more may be sent.
    deadline_ms: AtomicU64,
}

impl Lease {
    fn new(length: chrono::Duration) -> Lease {
        Lease {
            length: length.to_std().unwrap_or(StdDuration::MAX),
            epoch: Instant::now(),
            deadline_ms: AtomicU64::new(0),
        }
    }

    /// The rows were leased (or renewed) by a statement that started at
    /// `started`. The database's lease ends `length` after that statement ran;
    /// stopping a fifth early (a second at most) leaves room for the message
    /// being written and for clocks that tick at slightly different rates.
    fn renewed(&self, started: Instant) {
        let margin = (self.length / 5).min(StdDuration::from_secs(1));
        let deadline = (started + self.length.saturating_sub(margin)).saturating_duration_since(self.epoch);
        self.deadline_ms
            .store(deadline.as_millis().try_into().unwrap_or(u64::MAX), Ordering::SeqCst);
    }

    fn holds(&self) -> bool {
        (self.epoch.elapsed().as_millis() as u64) < self.deadline_ms.load(Ordering::SeqCst)
    }
}

struct Run<'a, Q> {
    queue: &'a Q,
    mailer: &'a Mailer,
    sender: &'a Sender,
    clock: &'a Clock,
    rate_limit: Option<DefaultDirectRateLimiter>,
    lease: Lease,
    /// Set while the database is unreachable: senders hand back what they get.
    halt: AtomicBool,
    /// Sending threads past the rate limit, waiting for a message.
    ready: AtomicUsize,
}

/// A claimed job, with its rows' ids and when they were last read.
struct Held<J> {
    ids: Vec<Id>,
    job: J,
    checked: Instant,
}

/// What comes back from a sending thread.
enum Returned<J> {
    /// The message was offered to the mail server.
    Attempted {
        held: Held<J>,
        result: Result<(), SendFailure>,
        at: Timestamp,
        /// How long the mail server took over it.
        took: StdDuration,
    },
    /// Not sent: the lease ran out, the check went stale, or the run halted.
    Unsent(Held<J>),
}

impl<Q: Queue> Run<'_, Q> {
    /// A sending thread: one connection's worth of work.
    fn send_each(&self, handed: Receiver<Held<Q::Job>>, done: channel::Sender<Returned<Q::Job>>) -> anyhow::Result<()> {
        // Made at the first message: a run with nothing to send builds no runtime.
        let mut courier = None;
        loop {
            // Wait for the rate limit before taking a message, not after, so
            // no message waits here after its check.
            if let Some(limiter) = &self.rate_limit {
                while let Err(not_until) = limiter.check() {
                    std::thread::sleep(not_until.wait_time_from(DefaultClock::default().now()));
                }
            }
            self.ready.fetch_add(1, Ordering::SeqCst);
            let next = handed.recv();
            self.ready.fetch_sub(1, Ordering::SeqCst);
            let Ok(held) = next else { break };
            let courier = match &mut courier {
                Some(courier) => courier,
                None => match self.mailer.courier() {
                    Ok(made) => courier.insert(made),
                    Err(error) => {
                        let _ = done.send(Returned::Unsent(held));
                        return Err(error);
                    }
                },
            };
            let may_send =
                !self.halt.load(Ordering::SeqCst) && self.lease.holds() && held.checked.elapsed() <= MAX_CHECK_AGE;
            let returned = if may_send {
                let started = Instant::now();
                let result = self
                    .queue
                    .compose(&held.job, self.sender, self.clock.now())
                    .and_then(|message| courier.send(&message));
                Returned::Attempted {
                    held,
                    result,
                    at: Timestamp::now(self.clock),
                    took: started.elapsed(),
                }
            } else {
                Returned::Unsent(held)
            };
            if done.send(returned).is_err() {
                break;
            }
        }
        Ok(())
    }
}

/// Why the dispatcher stopped short.
enum Fault {
    /// A read or write failed: the connection is likely gone.
    Database(anyhow::Error),
    /// Every sending thread has stopped.
    Senders,
}

/// Measured messages a second, which bounds how much a run claims.
#[derive(Default)]
struct Pace {
    first_handoff: Option<Instant>,
    finished: usize,
}

impl Pace {
    fn per_second(&self) -> Option<f64> {
        let elapsed = self.first_handoff?.elapsed().as_secs_f64();
        (self.finished >= 4 && elapsed > 0.0).then(|| self.finished as f64 / elapsed)
    }
}

/// The dispatcher's state: what it holds, and what it has done.
struct Dispatcher<'r, 'a, Q: Queue> {
    run: &'r Run<'a, Q>,
    /// To the sending threads; `unsent` takes back what none has started.
    handoff: channel::Sender<Held<Q::Job>>,
    unsent: Receiver<Held<Q::Job>>,
    database: &'r DatabaseUrl,
    db: &'r mut Db,
    options: &'r DeliveryOptions,
    run_id: Id,
    /// Claimed, checked, not yet handed to a sender; earliest due first.
    waiting: VecDeque<Held<Q::Job>>,
    /// Handed to the senders (queued or sending) and not back yet.
    in_flight: usize,
    /// The last message took less than a group commit: keep a queue for the senders.
    fast: bool,
    group: Group,
    report: Delivered,
    pace: Pace,
    /// The queue had nothing more to claim.
    exhausted: bool,
    /// SIGTERM or Ctrl-C: hand nothing more out.
    stopping: bool,
    /// Messages `--limit` still allows.
    allowance: u64,
    last_renewal: Instant,
    renew_now: bool,
    /// Failures of the run in a row, and the last one's reason.
    run_failures: usize,
    last_run_failure: Option<String>,
    /// The run stopped itself: the relay failed too often in a row.
    tripped: bool,
    /// ... or once, in a way no later message can get past (a token refused).
    stopped_at_once: bool,
    /// A message was refused for its content; said once per run.
    warned_message: bool,
    reconnects: usize,
}

impl<Q: Queue> Dispatcher<'_, '_, Q> {
    fn dispatch(&mut self, returned: &Receiver<Returned<Q::Job>>, stop: &AtomicUsize) -> anyhow::Result<()> {
        loop {
            let signal = stop.load(Ordering::SeqCst);
            if !self.stopping && signal != 0 {
                self.stopping = true;
                self.report.stopped_by = i32::try_from(signal).ok();
                let queued = self.unsent.try_iter().count();
                self.in_flight -= queued;
                self.report.left_over += self.waiting.len() + queued;
                self.report.interrupted = !self.exhausted || self.report.left_over > 0;
                self.waiting.clear();
            }
            match self.step(returned) {
                Ok(true) if self.tripped && self.stopped_at_once => {
                    return Err(anyhow!(
                        "{}; no attempt was counted and nobody was opted out, and the next run tries again",
                        self.last_run_failure.as_deref().unwrap_or("unknown")
                    ));
                }
                Ok(true) if self.tripped => {
                    return Err(anyhow!(
                        "stopped after {RUN_FAILURES_BEFORE_STOP} failures in a row that concern the mail relay, \
                         not the students (last: {}); no attempt was counted and nobody was opted out, and the \
                         next run picks up where this one stopped",
                        self.last_run_failure.as_deref().unwrap_or("unknown")
                    ));
                }
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(Fault::Senders) => return Err(anyhow!("the sending threads stopped")),
                Err(Fault::Database(cause)) => self.recover(cause, returned)?,
            }
        }
    }

    /// One turn of the loop; `true` when the run is over.
    fn step(&mut self, returned: &Receiver<Returned<Q::Job>>) -> Result<bool, Fault> {
        if self.holding() > 0 && (self.renew_now || self.last_renewal.elapsed() >= self.run.lease.length / 3) {
            self.renew().map_err(Fault::Database)?;
        }
        // Claim in large batches, once half of what may be held is free: many
        // small claims would cost a transaction each.
        let limit = self.hold_limit();
        let free = limit.saturating_sub(self.holding());
        if !self.stopping && !self.exhausted && free > 0 && free >= limit / 2 {
            self.claim(free.min(self.options.batch_size.max(1) as usize))
                .map_err(Fault::Database)?;
        }
        if self
            .waiting
            .front()
            .is_some_and(|head| head.checked.elapsed() >= RECHECK_AFTER)
        {
            self.recheck().map_err(Fault::Database)?;
        }
        if (self.exhausted || self.stopping) && self.waiting.is_empty() && self.in_flight == 0 {
            self.flush().map_err(Fault::Database)?;
            if self.stopping || self.report.retry_later > 0 {
                // What is held but unfinished goes back now, not when the lease ends.
                Q::Table::release_claims(self.db, self.run_id, Timestamp::now(self.run.clock))
                    .map_err(Fault::Database)?;
            }
            if self.report.interrupted {
                let left =
                    Q::Table::count_claimable(self.db, Timestamp::now(self.run.clock)).map_err(Fault::Database)?;
                self.report.left_for_next_run = usize::try_from(left).unwrap_or_default();
            }
            return Ok(true);
        }
        // A slow message's result is recorded before anything more is handed
        // out, and no more messages are out than connections: so at any moment
        // at most one delivery per connection is unrecorded.
        for back in returned.try_iter() {
            self.take_back(back);
        }
        if self.group.urgent {
            self.flush().map_err(Fault::Database)?;
        }
        self.hand_out()?;
        match returned.recv_timeout(GROUP_COMMIT_WAIT / 2) {
            Ok(first) => {
                for back in std::iter::once(first).chain(returned.try_iter()) {
                    self.take_back(back);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Err(Fault::Senders),
        }
        if self.group.is_due() {
            self.flush().map_err(Fault::Database)?;
        }
        Ok(false)
    }

    /// Hands freshly checked messages to the senders: no more than one per
    /// connection, each to a sender ready to send it at once (past the rate
    /// limit), so no message waits after its check. While messages are fast
    /// and unlimited, a few milliseconds' worth more wait in a queue, so the
    /// senders keep sending while the dispatcher is in the database.
    fn hand_out(&mut self) -> Result<(), Fault> {
        if self.stopping {
            return Ok(());
        }
        let queue_ahead = self.fast && self.options.rate.is_none();
        let queue = if queue_ahead {
            self.pace
                .per_second()
                .map_or(0, |pace| (pace * FAST_QUEUE.as_secs_f64()) as usize)
        } else {
            0
        };
        let room = self.options.connections as usize + queue;
        let ready = self.run.ready.load(Ordering::SeqCst);
        while self.in_flight < room
            && (queue_ahead || self.handoff.len() < ready)
            && let Some(held) = self.waiting.pop_front_if(|head| head.checked.elapsed() < RECHECK_AFTER)
        {
            match self.handoff.try_send(held) {
                Ok(()) => {
                    self.in_flight += 1;
                    self.pace.first_handoff.get_or_insert_with(Instant::now);
                }
                Err(TrySendError::Full(held)) => {
                    self.waiting.push_front(held);
                    break;
                }
                Err(TrySendError::Disconnected(_)) => return Err(Fault::Senders),
            }
        }
        Ok(())
    }

    /// Rows this run holds in the database: waiting, in flight, or resolved
    /// but not yet recorded.
    fn holding(&self) -> usize {
        self.waiting.len() + self.in_flight + self.group.resolved.len()
    }

    /// The most rows to hold at once: what this run sends in half a lease at
    /// its `--rate` and its measured pace (a few per connection until
    /// measured), and two batches at most.
    fn hold_limit(&self) -> usize {
        let half_lease = self.run.lease.length.as_secs_f64() / 2.0;
        let by_pace = self
            .pace
            .per_second()
            .map_or(f64::from(self.options.connections) * 2.0, |pace| pace * half_lease);
        let by_rate = self
            .options
            .rate
            .map_or(f64::INFINITY, |rate| f64::from(rate) * half_lease);
        let by_limit = self.allowance as f64 + self.holding() as f64;
        (by_pace.min(by_rate).min(by_limit) as usize).clamp(1, 2 * self.options.batch_size.max(1) as usize)
    }

    fn claim(&mut self, wanted: usize) -> anyhow::Result<()> {
        let wanted = wanted.min(self.allowance.try_into().unwrap_or(usize::MAX));
        if wanted == 0 {
            self.exhausted = true;
            return Ok(());
        }
        let started = Instant::now();
        let now = Timestamp::now(self.run.clock);
        let held_before = self.holding();
        let rows = self
            .run
            .queue
            .claim(self.db, self.run_id, now, self.lease_until(now), wanted as i64)?;
        let batch = self.run.queue.jobs(self.db, rows, now)?;
        if held_before == 0 && !batch.is_empty() {
            // Nothing older is held, so this claim's lease is the run's lease.
            self.run.lease.renewed(started);
            self.last_renewal = started;
        }
        self.allowance -= batch.len() as u64;
        self.exhausted = batch.is_empty();
        for job in batch {
            self.admit(job, started, now);
        }
        Ok(())
    }

    /// A job just read from the database: the rows that must not go out are
    /// skipped now, and the rest queued to be handed out.
    fn admit(&mut self, job: Q::Job, checked: Instant, now: Timestamp) {
        let (sendable, skipped) = self.run.queue.check(job, now);
        for (id, reason) in skipped {
            self.group.resolve(id, Resolution::Skipped { reason });
        }
        if let Some(job) = sendable {
            let ids = self.run.queue.info(&job).ids();
            self.waiting.push_back(Held { ids, job, checked });
        }
    }

    /// Reads the next rows to hand out again, in one query: a student who
    /// opted out or an assignment completed since the claim is caught here.
    fn recheck(&mut self) -> anyhow::Result<()> {
        let chunk = self
            .pace
            .per_second()
            .map_or(0, |pace| (pace * RECHECK_AFTER.as_secs_f64()) as usize)
            .max(self.options.connections as usize * 2)
            .min(self.options.batch_size.max(1) as usize);
        let stale: Vec<Held<Q::Job>> = self.waiting.drain(..chunk.min(self.waiting.len())).collect();
        let ids: Vec<Id> = stale.iter().flat_map(|held| held.ids.iter().copied()).collect();
        let started = Instant::now();
        let now = Timestamp::now(self.run.clock);
        let reloaded =
            Q::Table::reload_held(self.db, self.run_id, &ids).and_then(|rows| self.run.queue.jobs(self.db, rows, now));
        let fresh = match reloaded {
            Ok(jobs) => jobs,
            Err(error) => {
                // Keep them for after a reconnect, in their order.
                for held in stale.into_iter().rev() {
                    self.waiting.push_front(held);
                }
                return Err(error);
            }
        };
        let still_held: HashSet<Id> = fresh.iter().flat_map(|job| self.run.queue.info(job).ids()).collect();
        self.report.lost_lease += ids.iter().filter(|id| !still_held.contains(id)).count();
        let before = self.waiting.len();
        for job in fresh {
            self.admit(job, started, now);
        }
        // admit() appended them; they were at the front, and go back there.
        let admitted = self.waiting.len() - before;
        self.waiting.rotate_right(admitted);
        Ok(())
    }

    /// Extends the lease on all this run holds; drops what another run took.
    fn renew(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        let now = Timestamp::now(self.run.clock);
        let still_held: HashSet<Id> = Q::Table::renew_claims(self.db, self.run_id, now, self.lease_until(now))?
            .into_iter()
            .collect();
        self.run.lease.renewed(started);
        self.last_renewal = started;
        self.renew_now = false;
        // A job that lost a row goes whole: its other rows' leases lapse,
        // and the next run sends them.
        let lost: usize = self
            .waiting
            .iter()
            .filter(|held| held.ids.iter().any(|id| !still_held.contains(id)))
            .map(|held| held.ids.iter().filter(|id| !still_held.contains(id)).count())
            .sum();
        self.waiting
            .retain(|held| held.ids.iter().all(|id| still_held.contains(id)));
        self.report.lost_lease += lost;
        Ok(())
    }

    fn lease_until(&self, now: Timestamp) -> Timestamp {
        Timestamp::new(now.instant() + self.options.lease)
    }

    /// The circuit breaker: the relay failed the run too often in a row. Hand
    /// nothing more out; what is in flight finishes and everything held goes
    /// back at once, so the next run (or another host) can try.
    fn trip(&mut self) {
        self.tripped = true;
        self.stopping = true;
        let queued = self.unsent.try_iter().count();
        self.in_flight -= queued;
        self.waiting.clear();
    }

    fn take_back(&mut self, back: Returned<Q::Job>) {
        self.in_flight -= 1;
        match back {
            Returned::Attempted { held, result, at, took } => {
                self.pace.finished += 1;
                // A slow message's result is recorded at once, before its
                // sender gets another. Waiting on a commit would halve a fast
                // server's pace, so fast messages' results wait for the group.
                self.fast = took < GROUP_COMMIT_WAIT;
                self.group.urgent |= !self.fast;
                self.settle(held, result, at);
            }
            Returned::Unsent(held) if self.stopping => {
                self.report.left_over += 1;
                drop(held);
            }
            Returned::Unsent(held) => {
                // Its check is stale or the lease ran out: renew, re-read, retry.
                self.renew_now = true;
                self.waiting.push_front(held);
            }
        }
    }

    /// Turns an attempt into the job's new state and its send log, by whom
    /// a failure concerns (see `failure`).
    fn settle(&mut self, held: Held<Q::Job>, result: Result<(), SendFailure>, at: Timestamp) {
        let info = self.run.queue.info(&held.job);
        let failure = result.err();
        if failure.as_ref().is_none_or(|failure| failure.blame != Blame::Run) {
            self.run_failures = 0;
        }
        // What the run itself does about a failure; what it costs the
        // message is policy::resolve's.
        match failure.as_ref().map(|failure| (failure.blame, &failure.reason)) {
            Some((Blame::Recipient, _)) => {
                self.group.rejected.insert(info.to_email.clone());
            }
            Some((Blame::Message, reason)) if !std::mem::replace(&mut self.warned_message, true) => {
                crate::log::warning!(
                    "the mail server refused a message for its content, not its address: {reason} \
                     (the student is not blamed; check the templates and the title)"
                );
            }
            Some((Blame::Run, reason)) if !self.tripped => {
                self.run_failures += 1;
                self.last_run_failure = Some(reason.clone());
                let at_once = failure.as_ref().is_some_and(|failure| failure.stops_the_run);
                if at_once || policy::stop_the_run(self.run_failures) {
                    self.stopped_at_once = at_once;
                    self.trip();
                }
            }
            _ => {}
        }
        let message_id = mail::message_id(info.message, info.edition.as_deref(), self.run.sender);
        let error = failure.as_ref().map(|failure| failure.reason.clone());
        for row in &info.rows {
            let (resolution, log_status) = policy::resolve(
                failure.as_ref(),
                row.attempts,
                self.options.max_attempts,
                self.options.backoff,
                at,
            );
            let outcome = match &resolution {
                Resolution::RetryLater { .. } => Some("will be retried"),
                Resolution::Failed { .. } => Some("failed for good"),
                Resolution::Released { .. } => Some("left for the next run"),
                Resolution::Sent { .. } | Resolution::Skipped { .. } => None,
            };
            if let (Some(outcome), Some(failure)) = (outcome, &failure) {
                self.report.note_failure(outcome, &failure.reason, &info.to_email, 1);
            }
            self.group.logs.push(NewSendLog {
                id: Id::new(),
                reminder_id: row.reminder_id,
                assignment_id: row.assignment_id,
                summary_id: row.summary_id,
                to_email: info.to_email.clone(),
                from_inbox: self.run.sender.from.email.to_string(),
                message_id: Some(message_id.clone()),
                status: log_status,
                error: error.clone(),
                created_at: at,
            });
            self.group.resolve(row.id, resolution);
        }
    }

    /// Commits a group of results, then applies the bounce rule to the
    /// addresses it saw rejected. A result for a row this run no longer
    /// holds is not written (its send log is: the attempt happened).
    fn flush(&mut self) -> anyhow::Result<()> {
        if self.group.resolved.is_empty() {
            return Ok(());
        }
        let now = Timestamp::now(self.run.clock);
        let written: HashSet<Id> = Q::Table::record(self.db, self.run_id, &self.group.resolved, &self.group.logs, now)?
            .into_iter()
            .collect();
        for (id, resolution) in &self.group.resolved {
            if written.contains(id) {
                self.report.count(resolution);
            } else {
                self.report.lost_lease += 1;
            }
        }
        let rejected = std::mem::take(&mut self.group.rejected);
        self.group = Group::default();
        for email in rejected {
            if opt_out_after_rejections(self.db, &email, policy::bounced_out, &policy::opt_out_note(), now)? {
                crate::log::warning!(
                    "`{email}` was rejected {REJECTIONS_BEFORE_OPT_OUT} times in a row and is now opted out"
                );
                self.report.opted_out.push(email);
            }
        }
        Ok(())
    }

    /// The database failed: hand nothing more out, let the messages in flight
    /// finish, then reconnect and record them. Gives up after `RECONNECT_FOR`,
    /// saying how many deliveries are unrecorded (a later run sends them again).
    fn recover(&mut self, cause: anyhow::Error, returned: &Receiver<Returned<Q::Job>>) -> anyhow::Result<()> {
        self.run.halt.store(true, Ordering::SeqCst);
        // Take back what no sender has started, ahead of what waits here.
        let queued: Vec<Held<Q::Job>> = self.unsent.try_iter().collect();
        self.in_flight -= queued.len();
        for held in queued.into_iter().rev() {
            self.waiting.push_front(held);
        }
        crate::log::warning!("the database failed ({cause:#}); finishing the messages in flight, then reconnecting");
        while self.in_flight > 0 {
            match returned.recv() {
                Ok(back) => self.take_back(back),
                Err(_) => break,
            }
        }
        if self.reconnects == MAX_RECONNECTS {
            // Reconnecting does not cure it: the fault is not the connection.
            return Err(cause.context(format!(
                "the database failed again after {MAX_RECONNECTS} reconnections: {} unrecorded and may go out again",
                crate::output::count(
                    self.unrecorded() as i64,
                    "delivered message is",
                    "delivered messages are"
                )
            )));
        }
        self.reconnects += 1;
        let give_up = Instant::now() + RECONNECT_FOR;
        let mut wait = StdDuration::from_millis(250);
        let mut last_error;
        loop {
            match Db::connect(self.database) {
                Ok(db) => {
                    *self.db = db;
                    match self.committed_before_the_fault().and_then(|()| self.flush()) {
                        Ok(()) => break,
                        Err(error) => last_error = error,
                    }
                }
                Err(error) => last_error = error,
            }
            if Instant::now() + wait > give_up {
                return Err(last_error.context(format!(
                    "lost the database and could not reconnect within {}s: {} unrecorded and may go out again",
                    RECONNECT_FOR.as_secs(),
                    crate::output::count(
                        self.unrecorded() as i64,
                        "delivered message is",
                        "delivered messages are"
                    )
                )));
            }
            std::thread::sleep(wait);
            wait = (wait * 2).min(StdDuration::from_secs(5));
        }
        crate::log::warning!("reconnected to the database; the run goes on");
        self.run.halt.store(false, Ordering::SeqCst);
        self.renew_now = true;
        Ok(())
    }

    /// Deliveries waiting for a commit that can no longer be made.
    fn unrecorded(&self) -> usize {
        self.group
            .resolved
            .iter()
            .filter(|(_, resolution)| matches!(resolution, Resolution::Sent { .. }))
            .count()
    }

    /// When the line dropped during a group commit, the commit may have gone
    /// through; its send logs tell (one transaction wrote them with the rows).
    fn committed_before_the_fault(&mut self) -> anyhow::Result<()> {
        let ids: Vec<Id> = self.group.logs.iter().map(|log| log.id).collect();
        if !ids.is_empty() && crate::db::queue::any_log_stored(self.db, &ids)? {
            for (_, resolution) in &self.group.resolved {
                self.report.count(resolution);
            }
            self.group = Group::default();
        }
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
    /// Holds the result of a slow message: record it now.
    urgent: bool,
}

impl Group {
    fn resolve(&mut self, id: Id, resolution: Resolution) {
        self.started.get_or_insert_with(Instant::now);
        self.resolved.push((id, resolution));
    }

    fn is_due(&self) -> bool {
        self.urgent
            || self.resolved.len() >= GROUP_COMMIT_SIZE
            || self
                .started
                .is_some_and(|started| started.elapsed() >= GROUP_COMMIT_WAIT)
    }
}
