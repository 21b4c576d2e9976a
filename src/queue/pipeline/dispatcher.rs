//! The dispatcher: the one thread that owns the database connection. It
//! claims rows, re-reads them, hands messages to the senders, records what
//! comes back, and knows by its [`Phase`] what the run may still do.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration as StdDuration, Instant};

use anyhow::anyhow;
use crossbeam_channel::{self as channel, Receiver, RecvTimeoutError, TrySendError};

use super::report::Delivered;
use super::sender::{Held, Returned, Run};
use super::{Cap, DeliveryOptions, Queue, Withheld};
use crate::db::queue::{QueueTable, opt_out_after_rejections};
use crate::db::types::{Id, Timestamp};
use crate::db::{DatabaseUrl, Db, caps};
use crate::mail::{self, Blame, SendFailure};
use crate::queue::policy::{self, REJECTIONS_BEFORE_OPT_OUT, RUN_FAILURES_BEFORE_STOP};
use crate::queue::{NewSendLog, Resolution};

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
/// How long a run keeps trying to reach its database again after losing it.
const RECONNECT_FOR: StdDuration = StdDuration::from_secs(30);
/// Reconnections in one run after which a database fault is taken to be
/// something a new connection does not cure.
const MAX_RECONNECTS: usize = 3;

/// Where a run is, which decides what it may still do: claim more rows,
/// hand out more messages, and how it ends. A run only moves forward:
/// `Running`, perhaps `Emptied`, perhaps `Draining`, perhaps `Tripped`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Claiming, handing out and recording.
    Running,
    /// The queue had nothing more to claim, or `--limit` is spent: what is
    /// held still goes out, and then the run is over.
    Emptied,
    /// SIGTERM or Ctrl-C: nothing more goes out. The messages in flight
    /// finish and are recorded; everything else is left for the next run.
    Draining { signal: i32 },
    /// The run stopped itself on a fault of the run, not of any student (the
    /// relay refused it): nothing more goes out, what is in flight finishes,
    /// everything held goes back at once, and the run ends in an error.
    Tripped(Trip),
}

/// Why the run tripped its circuit breaker.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Trip {
    /// The reason of the last failure of the run.
    reason: String,
    /// One failure no later message can get past (a token refused), rather
    /// than `RUN_FAILURES_BEFORE_STOP` in a row.
    at_once: bool,
}

impl Phase {
    /// More rows may be leased to the run.
    fn claims(&self) -> bool {
        matches!(self, Phase::Running)
    }

    /// Messages may be handed to the senders.
    fn hands_out(&self) -> bool {
        matches!(self, Phase::Running | Phase::Emptied)
    }

    /// The run stopped short: what comes back unsent is left for the next
    /// run, and at the end everything held is released at once rather than
    /// when the lease runs out.
    fn stopped_short(&self) -> bool {
        matches!(self, Phase::Draining { .. } | Phase::Tripped(_))
    }

    /// Once nothing is waiting or in flight, the run is over (while it may
    /// still claim, a claim may find more).
    fn over_when_idle(&self) -> bool {
        !self.claims()
    }

    /// The phase a signal leads to; `None` when the run is stopping already.
    fn on_signal(&self, signal: i32) -> Option<Phase> {
        match self {
            Phase::Running | Phase::Emptied => Some(Phase::Draining { signal }),
            Phase::Draining { .. } | Phase::Tripped(_) => None,
        }
    }

    /// The phase a fault of the run leads to; `None` when the run tripped
    /// already, so the first fault is the one reported. A run draining after
    /// a signal can still trip: the relay may refuse what is in flight.
    fn on_trip(&self, trip: Trip) -> Option<Phase> {
        match self {
            Phase::Tripped(_) => None,
            _ => Some(Phase::Tripped(trip)),
        }
    }

    /// How a run in this phase ends: a tripped run with an error.
    fn ending(&self) -> anyhow::Result<()> {
        match self {
            Phase::Tripped(Trip { reason, at_once: true }) => Err(anyhow!(
                "{reason}; no attempt was counted and nobody was opted out, and the next run tries again"
            )),
            Phase::Tripped(Trip { reason, at_once: false }) => Err(anyhow!(
                "stopped after {RUN_FAILURES_BEFORE_STOP} failures in a row that concern the mail relay, \
                 not the students (last: {reason}); no attempt was counted and nobody was opted out, and the \
                 next run picks up where this one stopped"
            )),
            Phase::Running | Phase::Emptied | Phase::Draining { .. } => Ok(()),
        }
    }
}

/// The messages this run holds that no sender has brought back: waiting
/// here, or handed out (queued for a sender, or being sent).
struct Outstanding<J> {
    /// To the sending threads; `unsent` takes back what none has started.
    handoff: channel::Sender<Held<J>>,
    unsent: Receiver<Held<J>>,
    /// Claimed, checked, not yet handed to a sender; earliest due first.
    waiting: VecDeque<Held<J>>,
    /// Handed to the senders (queued or sending) and not back yet.
    in_flight: usize,
}

impl<J> Outstanding<J> {
    fn new(handoff: channel::Sender<Held<J>>, unsent: Receiver<Held<J>>) -> Self {
        Outstanding {
            handoff,
            unsent,
            waiting: VecDeque::new(),
            in_flight: 0,
        }
    }

    fn len(&self) -> usize {
        self.waiting.len() + self.in_flight
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes back what no sender has started, ahead of what waits here, to
    /// hand out again later.
    fn take_back_unstarted(&mut self) {
        let queued: Vec<Held<J>> = self.unsent.try_iter().collect();
        self.in_flight -= queued.len();
        for held in queued.into_iter().rev() {
            self.waiting.push_front(held);
        }
    }

    /// Lets go of everything no sender has started, for good: returns how
    /// many messages. Only what is in flight is still to come back.
    fn let_go_unstarted(&mut self) -> usize {
        let queued = self.unsent.try_iter().count();
        self.in_flight -= queued;
        let waiting = std::mem::take(&mut self.waiting).len();
        queued + waiting
    }
}

/// The one way a run stops short, after a signal or a fault of the run:
/// nothing more is handed out, and what no sender has started is let go (its
/// claim is released at the end). After a signal it is counted left for the
/// next run.
fn stop_short<J>(next: Phase, phase: &mut Phase, outstanding: &mut Outstanding<J>, report: &mut Delivered) {
    let let_go = outstanding.let_go_unstarted();
    if let Phase::Draining { signal } = next {
        report.note_interruption(signal, let_go, *phase == Phase::Emptied);
    }
    *phase = next;
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
    /// The last message took less than a group commit: keep a queue for the senders.
    fast: bool,
}

impl Pace {
    fn per_second(&self) -> Option<f64> {
        let elapsed = self.first_handoff?.elapsed().as_secs_f64();
        (self.finished >= 4 && elapsed > 0.0).then(|| self.finished as f64 / elapsed)
    }

    fn count_finished(&mut self, took: StdDuration) {
        self.finished += 1;
        self.fast = took < GROUP_COMMIT_WAIT;
    }
}

/// The dispatcher's state: what it holds, and what it has done.
pub(super) struct Dispatcher<'r, 'a, Q: Queue> {
    run: &'r Run<'a, Q>,
    database: &'r DatabaseUrl,
    db: &'r mut Db,
    options: &'r DeliveryOptions,
    run_id: Id,
    phase: Phase,
    outstanding: Outstanding<Q::Job>,
    group: Group,
    report: Delivered,
    pace: Pace,
    /// Messages `--limit` still allows.
    allowance: u64,
    /// `--daily-cap`: the window this run takes its share in, how much it
    /// took, and whether it found the cap reached.
    cap_window: Option<Timestamp>,
    cap_taken: u64,
    capped: bool,
    /// Messages offered to the mail server (what the cap counts).
    attempted: u64,
    last_renewal: Instant,
    renew_now: bool,
    /// Failures of the run in a row (the circuit breaker counts them).
    run_failures: usize,
    /// A message was refused for its content; said once per run.
    warned_message: bool,
    reconnects: usize,
}

impl<'r, 'a, Q: Queue> Dispatcher<'r, 'a, Q> {
    pub(super) fn new(
        run: &'r Run<'a, Q>,
        database: &'r DatabaseUrl,
        db: &'r mut Db,
        options: &'r DeliveryOptions,
        handoff: channel::Sender<Held<Q::Job>>,
        unsent: Receiver<Held<Q::Job>>,
    ) -> Self {
        Dispatcher {
            run,
            database,
            db,
            options,
            run_id: Id::new(),
            phase: Phase::Running,
            outstanding: Outstanding::new(handoff, unsent),
            group: Group::default(),
            report: Delivered::default(),
            pace: Pace::default(),
            allowance: options.limit.unwrap_or(u64::MAX),
            cap_window: None,
            cap_taken: 0,
            capped: false,
            attempted: 0,
            last_renewal: Instant::now(),
            renew_now: false,
            run_failures: 0,
            warned_message: false,
            reconnects: 0,
        }
    }

    /// What the run did. Dropping the dispatcher closes the hand-off, which
    /// ends the senders: they finish their message and find it closed.
    pub(super) fn into_report(self) -> Delivered {
        self.report
    }
}

impl<Q: Queue> Dispatcher<'_, '_, Q> {
    /// Runs until the queue is emptied, a signal has drained the run, or a
    /// fault stops it.
    pub(super) fn dispatch(
        &mut self,
        returned: &Receiver<Returned<Q::Job>>,
        signals: &AtomicUsize,
    ) -> anyhow::Result<()> {
        loop {
            if let Ok(signal) = i32::try_from(signals.load(Ordering::SeqCst))
                && signal != 0
                && let Some(draining) = self.phase.on_signal(signal)
            {
                self.stop(draining);
            }
            match self.step(returned) {
                Ok(true) => return self.phase.ending(),
                Ok(false) => {}
                Err(Fault::Senders) => return Err(anyhow!("the sending threads stopped")),
                Err(Fault::Database(cause)) => self.recover(cause, returned)?,
            }
        }
    }

    fn stop(&mut self, next: Phase) {
        stop_short(next, &mut self.phase, &mut self.outstanding, &mut self.report);
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
        if self.phase.claims() && free > 0 && free >= limit / 2 {
            self.claim(free.min(self.options.batch_size.max(1) as usize))
                .map_err(Fault::Database)?;
        }
        if self
            .outstanding
            .waiting
            .front()
            .is_some_and(|head| head.checked.elapsed() >= RECHECK_AFTER)
        {
            self.recheck().map_err(Fault::Database)?;
        }
        if self.phase.over_when_idle() && self.outstanding.is_empty() {
            self.finish().map_err(Fault::Database)?;
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

    /// The last turn: records what is left, gives back what is held but
    /// unfinished now (not when the lease ends), and after a signal counts
    /// what the next run finds.
    fn finish(&mut self) -> anyhow::Result<()> {
        self.flush()?;
        if self.phase.stopped_short() || self.report.retry_later > 0 {
            Q::Table::release_claims(self.db, self.run_id, Timestamp::now(self.run.clock))?;
        }
        if self.report.interrupted {
            let left = Q::Table::count_claimable(self.db, Timestamp::now(self.run.clock))?;
            self.report.left_for_next_run = usize::try_from(left).unwrap_or_default();
        }
        Ok(())
    }

    /// Hands freshly checked messages to the senders: no more than one per
    /// connection, each to a sender ready to send it at once (past the rate
    /// limit), so no message waits after its check. While messages are fast
    /// and unlimited, a few milliseconds' worth more wait in a queue, so the
    /// senders keep sending while the dispatcher is in the database.
    fn hand_out(&mut self) -> Result<(), Fault> {
        if !self.phase.hands_out() {
            return Ok(());
        }
        let queue_ahead = self.pace.fast && self.options.rate.is_none();
        let queue = if queue_ahead {
            self.pace
                .per_second()
                .map_or(0, |pace| (pace * FAST_QUEUE.as_secs_f64()) as usize)
        } else {
            0
        };
        let room = self.options.connections as usize + queue;
        let ready = self.run.ready.load(Ordering::SeqCst);
        let outstanding = &mut self.outstanding;
        while outstanding.in_flight < room
            && (queue_ahead || outstanding.handoff.len() < ready)
            && let Some(held) = outstanding
                .waiting
                .pop_front_if(|head| head.checked.elapsed() < RECHECK_AFTER)
        {
            match outstanding.handoff.try_send(held) {
                Ok(()) => {
                    outstanding.in_flight += 1;
                    self.pace.first_handoff.get_or_insert_with(Instant::now);
                }
                Err(TrySendError::Full(held)) => {
                    outstanding.waiting.push_front(held);
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
        self.outstanding.len() + self.group.resolved.len()
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
            .map_or(f64::INFINITY, |rate| rate.per_second() * half_lease);
        let by_limit = self.allowance as f64 + self.holding() as f64;
        (by_pace.min(by_rate).min(by_limit) as usize).clamp(1, 2 * self.options.batch_size.max(1) as usize)
    }

    fn claim(&mut self, wanted: usize) -> anyhow::Result<()> {
        let started = Instant::now();
        let now = Timestamp::now(self.run.clock);
        let wanted = wanted.min(self.allowance.try_into().unwrap_or(usize::MAX));
        let wanted = match self.options.cap {
            Some(cap) if wanted > 0 => self.take_from_cap(cap, wanted, now)?,
            _ => wanted,
        };
        if wanted == 0 {
            self.phase = Phase::Emptied;
            return Ok(());
        }
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
        if batch.is_empty() {
            self.phase = Phase::Emptied;
        }
        for job in batch {
            self.admit(job, started, now);
        }
        Ok(())
    }

    /// Takes up to `wanted` messages' share of the cap; what this run does
    /// not send is given back when it ends (`settle_cap`).
    fn take_from_cap(&mut self, cap: Cap, wanted: usize, now: Timestamp) -> anyhow::Result<usize> {
        let window = *self.cap_window.get_or_insert(cap.window_start(now.instant()));
        let wanted = u32::try_from(wanted).unwrap_or(u32::MAX);
        let taken = caps::reserve(self.db, window, cap.messages, wanted)?;
        self.cap_taken += u64::from(taken);
        self.capped |= taken < wanted;
        Ok(taken as usize)
    }

    /// At the end of a run: gives back the share of the cap it did not
    /// send, and, when the cap held messages back, counts them.
    pub(super) fn settle_cap(&mut self) -> anyhow::Result<()> {
        let Some(window) = self.cap_window else { return Ok(()) };
        let unused = self.cap_taken.saturating_sub(self.attempted);
        caps::give_back(self.db, window, u32::try_from(unused).unwrap_or(u32::MAX))?;
        if self.capped {
            let now = Timestamp::now(self.run.clock);
            self.report.held_back = Q::Table::count_claimable(self.db, now)? as usize;
        }
        Ok(())
    }

    /// A job just read from the database: the rows that must not go out are
    /// skipped now, and the rest queued to be handed out.
    fn admit(&mut self, job: Q::Job, checked: Instant, now: Timestamp) {
        let (sendable, withheld) = self.run.queue.check(job, now);
        for (id, withheld) in withheld {
            let resolution = match withheld {
                Withheld::Skip(reason) => Resolution::Skipped { reason },
                Withheld::Wait { reason, until } => Resolution::Deferred { reason, until },
            };
            self.group.resolve(id, resolution);
        }
        if let Some(job) = sendable {
            let ids = self.run.queue.info(&job).ids();
            self.outstanding.waiting.push_back(Held { ids, job, checked });
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
        let waiting = &mut self.outstanding.waiting;
        let stale: Vec<Held<Q::Job>> = waiting.drain(..chunk.min(waiting.len())).collect();
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
                    self.outstanding.waiting.push_front(held);
                }
                return Err(error);
            }
        };
        let still_held: HashSet<Id> = fresh.iter().flat_map(|job| self.run.queue.info(job).ids()).collect();
        self.report.lost_lease += ids.iter().filter(|id| !still_held.contains(id)).count();
        let before = self.outstanding.waiting.len();
        for job in fresh {
            self.admit(job, started, now);
        }
        // admit() appended them; they were at the front, and go back there.
        let admitted = self.outstanding.waiting.len() - before;
        self.outstanding.waiting.rotate_right(admitted);
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
        let waiting = &mut self.outstanding.waiting;
        let lost: usize = waiting
            .iter()
            .filter(|held| held.ids.iter().any(|id| !still_held.contains(id)))
            .map(|held| held.ids.iter().filter(|id| !still_held.contains(id)).count())
            .sum();
        waiting.retain(|held| held.ids.iter().all(|id| still_held.contains(id)));
        self.report.lost_lease += lost;
        Ok(())
    }

    fn lease_until(&self, now: Timestamp) -> Timestamp {
        Timestamp::new(now.instant() + self.options.lease)
    }

    fn take_back(&mut self, back: Returned<Q::Job>) {
        self.outstanding.in_flight -= 1;
        match back {
            Returned::Attempted { held, result, at, took } => {
                self.attempted += 1;
                // A slow message's result is recorded at once, before its
                // sender gets another. Waiting on a commit would halve a fast
                // server's pace, so fast messages' results wait for the group.
                self.pace.count_finished(took);
                self.group.urgent |= !self.pace.fast;
                self.resolve_attempt(held, result, at);
            }
            Returned::Unsent(held) if self.phase.stopped_short() => {
                self.report.left_over += 1;
                drop(held);
            }
            Returned::Unsent(held) => {
                // Its check is stale or the lease ran out: renew, re-read, retry.
                self.renew_now = true;
                self.outstanding.waiting.push_front(held);
            }
        }
    }

    /// Resolves an attempt: each of the job's rows gets its new state and its
    /// send log, to be recorded by the group commit, by whom a failure
    /// concerns (see `mail::Blame`).
    fn resolve_attempt(&mut self, held: Held<Q::Job>, result: Result<(), SendFailure>, at: Timestamp) {
        let info = self.run.queue.info(&held.job);
        let failure = result.err();
        if failure.as_ref().is_none_or(|failure| failure.blame != Blame::Run) {
            self.run_failures = 0;
        }
        // What the run itself does about a failure; what it costs the
        // message is policy::resolve's.
        match &failure {
            Some(failure) if failure.blame == Blame::Recipient => {
                self.group.rejected.insert(info.to_email.clone());
            }
            Some(failure) if failure.blame == Blame::Message && !std::mem::replace(&mut self.warned_message, true) => {
                crate::log::warning!(
                    "the mail server refused a message for its content, not its address: {} \
                     (the student is not blamed; check the templates and the title)",
                    failure.reason
                );
            }
            Some(failure) if failure.blame == Blame::Run => {
                // The circuit breaker: the relay failed the run too often in
                // a row, or once in a way no later message gets past.
                self.run_failures += 1;
                let trip = Trip {
                    reason: failure.reason.clone(),
                    at_once: failure.stops_the_run,
                };
                if (trip.at_once || policy::stop_the_run(self.run_failures))
                    && let Some(tripped) = self.phase.on_trip(trip)
                {
                    self.stop(tripped);
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
                Resolution::Sent { .. } | Resolution::Skipped { .. } | Resolution::Deferred { .. } => None,
            };
            if let (Some(outcome), Some(failure)) = (outcome, &failure) {
                self.report.note_failure(outcome, &failure.reason, &info.to_email, 1);
            }
            self.group.logs.push(NewSendLog {
                id: Id::new(),
                reminder_id: row.reminder_id,
                assignment_id: row.assignment_id,
                summary_id: row.summary_id,
                contact_message_id: row.contact_message_id,
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
        self.outstanding.take_back_unstarted();
        crate::log::warning!("the database failed ({cause:#}); finishing the messages in flight, then reconnecting");
        while self.outstanding.in_flight > 0 {
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

#[cfg(test)]
mod tests {
    use signal_hook::consts::{SIGINT, SIGTERM};

    use super::*;
    use crate::error::ExitStatus;

    fn trip(reason: &str, at_once: bool) -> Trip {
        Trip {
            reason: reason.to_string(),
            at_once,
        }
    }

    /// What a phase allows, as (claims, hands out, over when idle, stopped short).
    fn allows(phase: &Phase) -> (bool, bool, bool, bool) {
        (
            phase.claims(),
            phase.hands_out(),
            phase.over_when_idle(),
            phase.stopped_short(),
        )
    }

    #[test]
    fn a_running_run_claims_and_hands_out_and_is_not_over_when_idle() {
        assert_eq!(allows(&Phase::Running), (true, true, false, false));
        assert!(Phase::Running.ending().is_ok());
    }

    #[test]
    fn an_emptied_run_sends_what_it_holds_and_claims_no_more() {
        assert_eq!(allows(&Phase::Emptied), (false, true, true, false));
        assert!(Phase::Emptied.ending().is_ok());
    }

    #[test]
    fn a_draining_run_sends_nothing_more_and_ends_without_error() {
        let draining = Phase::Draining { signal: SIGTERM };
        assert_eq!(allows(&draining), (false, false, true, true));
        assert!(draining.ending().is_ok());
    }

    #[test]
    fn a_tripped_run_sends_nothing_more_and_ends_in_an_error() {
        let tripped = Phase::Tripped(trip("connection refused", false));
        assert_eq!(allows(&tripped), (false, false, true, true));
        let error = tripped.ending().unwrap_err().to_string();
        assert!(error.starts_with("stopped after 3 failures in a row"), "{error}");
        assert!(error.contains("(last: connection refused)"), "{error}");

        let at_once = Phase::Tripped(trip("the relay refused the token", true));
        assert_eq!(
            at_once.ending().unwrap_err().to_string(),
            "the relay refused the token; no attempt was counted and nobody was opted out, and the next run \
             tries again"
        );
    }

    #[test]
    fn a_signal_drains_a_run_that_is_not_stopping_already() {
        for phase in [Phase::Running, Phase::Emptied] {
            assert_eq!(phase.on_signal(SIGINT), Some(Phase::Draining { signal: SIGINT }));
        }
        // The first signal is the one that counts; a trip is not undone.
        assert_eq!(Phase::Draining { signal: SIGINT }.on_signal(SIGTERM), None);
        assert_eq!(Phase::Tripped(trip("refused", false)).on_signal(SIGTERM), None);
    }

    #[test]
    fn a_fault_of_the_run_trips_it_even_while_draining_but_only_once() {
        let fault = trip("refused", false);
        for phase in [Phase::Running, Phase::Emptied, Phase::Draining { signal: SIGTERM }] {
            assert_eq!(phase.on_trip(fault.clone()), Some(Phase::Tripped(fault.clone())));
        }
        assert_eq!(Phase::Tripped(fault).on_trip(trip("later", true)), None);
    }

    /// `waiting` messages held here, and `handed` handed out, of which
    /// `started` a sender has taken.
    fn outstanding(waiting: u8, handed: u8, started: u8) -> (Outstanding<u8>, Vec<Held<u8>>) {
        let (handoff, unsent) = channel::unbounded();
        let sender_side = unsent.clone();
        let mut outstanding = Outstanding::new(handoff, unsent);
        let held = |job| Held {
            ids: vec![Id::new()],
            job,
            checked: Instant::now(),
        };
        for job in 0..waiting {
            outstanding.waiting.push_back(held(job));
        }
        for job in 100..100 + handed {
            outstanding.handoff.send(held(job)).unwrap();
            outstanding.in_flight += 1;
        }
        let taken = (0..started).map(|_| sender_side.recv().unwrap()).collect();
        (outstanding, taken)
    }

    fn jobs(outstanding: &Outstanding<u8>) -> Vec<u8> {
        outstanding.waiting.iter().map(|held| held.job).collect()
    }

    #[test]
    fn a_signal_leaves_what_no_sender_started_for_the_next_run() {
        let (mut outstanding, _sending) = outstanding(2, 3, 1);
        let (mut phase, mut report) = (Phase::Running, Delivered::default());
        stop_short(
            Phase::Draining { signal: SIGTERM },
            &mut phase,
            &mut outstanding,
            &mut report,
        );

        assert_eq!(phase, Phase::Draining { signal: SIGTERM });
        // Two waiting and two queued for a sender are let go; the one being
        // sent is still to come back.
        assert_eq!((outstanding.waiting.len(), outstanding.in_flight), (0, 1));
        assert_eq!(report.left_over, 4);
        assert!(report.interrupted);
        assert_eq!(report.stopped_by, Some(SIGTERM));
        assert_eq!(report.exit_status(), ExitStatus::Terminated);
    }

    #[test]
    fn a_signal_while_running_interrupts_the_run_even_with_nothing_held() {
        let (mut outstanding, _) = outstanding(0, 0, 0);
        let (mut phase, mut report) = (Phase::Running, Delivered::default());
        stop_short(
            Phase::Draining { signal: SIGINT },
            &mut phase,
            &mut outstanding,
            &mut report,
        );
        // The queue may have more: the next run has work.
        assert!(report.interrupted);
        assert_eq!(report.left_over, 0);
        assert_eq!(report.exit_status(), ExitStatus::Interrupted);
    }

    #[test]
    fn a_signal_after_the_queue_emptied_interrupts_only_if_it_lets_something_go() {
        let (mut idle, _) = outstanding(0, 1, 1);
        let (mut phase, mut report) = (Phase::Emptied, Delivered::default());
        stop_short(Phase::Draining { signal: SIGINT }, &mut phase, &mut idle, &mut report);
        assert!(!report.interrupted, "nothing was left to do");
        assert_eq!(report.exit_status(), ExitStatus::Success);

        let (mut holding, _) = outstanding(1, 0, 0);
        let (mut phase, mut report) = (Phase::Emptied, Delivered::default());
        stop_short(
            Phase::Draining { signal: SIGINT },
            &mut phase,
            &mut holding,
            &mut report,
        );
        assert!(report.interrupted);
        assert_eq!(report.left_over, 1);
    }

    #[test]
    fn a_trip_lets_go_of_what_no_sender_started_without_calling_it_an_interruption() {
        let (mut outstanding, _sending) = outstanding(2, 2, 1);
        let (mut phase, mut report) = (Phase::Running, Delivered::default());
        let tripped = Phase::Tripped(trip("refused", false));
        stop_short(tripped.clone(), &mut phase, &mut outstanding, &mut report);

        assert_eq!(phase, tripped);
        assert_eq!((outstanding.waiting.len(), outstanding.in_flight), (0, 1));
        // Everything the run holds is released when it ends, in error.
        assert_eq!(
            (report.left_over, report.interrupted, report.stopped_by),
            (0, false, None)
        );
    }

    #[test]
    fn a_lost_database_takes_back_what_no_sender_started_ahead_of_what_waits() {
        let (mut outstanding, _sending) = outstanding(2, 3, 1);
        outstanding.take_back_unstarted();
        // 100 is being sent; 101 and 102 come back first, in their order.
        assert_eq!(jobs(&outstanding), vec![101, 102, 0, 1]);
        assert_eq!(outstanding.in_flight, 1);
        assert_eq!(outstanding.len(), 5);
    }
}
