//! The sending threads, what they share with the dispatcher (`Run`), and the
//! run's lease as they see it.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration as StdDuration, Instant};

use crossbeam_channel::{self as channel, Receiver};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::{DeliveryOptions, Queue};
use crate::db::types::{Id, Timestamp};
use crate::input::Rate;
use crate::mail::{Mailer, SendFailure, Sender};
use crate::time::Clock;

/// A sending thread hands back, unsent, a message whose row was read longer
/// ago than this (the run was frozen or stalled): the bound on check-to-send.
const MAX_CHECK_AGE: StdDuration = StdDuration::from_secs(1);

/// The run's lease as the sending threads see it: a deadline on the
/// monotonic clock, moved on by each renewal.
pub(super) struct Lease {
    pub(super) length: StdDuration,
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
    pub(super) fn renewed(&self, started: Instant) {
        let margin = (self.length / 5).min(StdDuration::from_secs(1));
        let deadline = (started + self.length.saturating_sub(margin)).saturating_duration_since(self.epoch);
        self.deadline_ms
            .store(deadline.as_millis().try_into().unwrap_or(u64::MAX), Ordering::SeqCst);
    }

    fn holds(&self) -> bool {
        (self.epoch.elapsed().as_millis() as u64) < self.deadline_ms.load(Ordering::SeqCst)
    }
}

/// What the dispatcher and the sending threads share.
pub(super) struct Run<'a, Q> {
    pub(super) queue: &'a Q,
    mailer: &'a Mailer,
    pub(super) sender: &'a Sender,
    pub(super) clock: &'a Clock,
    rate_limit: Option<DefaultDirectRateLimiter>,
    pub(super) lease: Lease,
    /// Set while the database is unreachable: senders hand back what they get.
    pub(super) halt: AtomicBool,
    /// Sending threads past the rate limit, waiting for a message.
    pub(super) ready: AtomicUsize,
}

impl<'a, Q> Run<'a, Q> {
    pub(super) fn new(
        queue: &'a Q,
        mailer: &'a Mailer,
        sender: &'a Sender,
        clock: &'a Clock,
        options: &DeliveryOptions,
    ) -> Self {
        Run {
            queue,
            mailer,
            sender,
            clock,
            rate_limit: options.rate.map(|rate| RateLimiter::direct(quota(rate))),
            lease: Lease::new(options.lease),
            halt: AtomicBool::new(false),
            ready: AtomicUsize::new(0),
        }
    }
}

/// The limiter's quota for `--rate`. Per second, a first burst of N (a
/// second's worth) as before; per minute or hour, evenly spaced, one at a
/// time: a relay's quota (Microsoft 365's 30 a minute) counts any window of
/// that length, and a burst of N at the start would put nearly 2N in the
/// first.
fn quota(rate: Rate) -> Quota {
    let messages = NonZeroU32::new(rate.messages).unwrap_or(NonZeroU32::MIN);
    if rate.per <= StdDuration::from_secs(1) {
        return Quota::per_second(messages);
    }
    Quota::with_period(rate.per / messages.get())
        .unwrap_or_else(|| Quota::per_second(messages))
        .allow_burst(NonZeroU32::MIN)
}

/// A claimed job, with its rows' ids and when they were last read.
pub(super) struct Held<J> {
    pub(super) ids: Vec<Id>,
    pub(super) job: J,
    pub(super) checked: Instant,
}

/// What comes back from a sending thread.
pub(super) enum Returned<J> {
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
    pub(super) fn send_each(
        &self,
        handed: Receiver<Held<Q::Job>>,
        done: channel::Sender<Returned<Q::Job>>,
    ) -> anyhow::Result<()> {
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
