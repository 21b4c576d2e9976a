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
//!
//! Here: the `Queue` trait and `deliver`. The dispatcher and its phases are in
//! `dispatcher`, the sending threads and the lease they check in `sender`, and
//! what a run did, as counted and shown, in `report`.

mod dispatcher;
mod report;
mod sender;

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use lettre::Message;
use signal_hook::consts::{SIGINT, SIGTERM};

use crate::db::DatabaseUrl;
use crate::db::Db;
use crate::db::queue::QueueTable;
use crate::db::types::{Id, Timestamp};
use crate::input::Rate;
use crate::mail::token::MessageRef;
use crate::mail::{Mailer, SendFailure, Sender};
use crate::schedule::window::SendWindow;
use crate::time::Clock;

use dispatcher::Dispatcher;
pub use report::Delivered;
use sender::{Held, Returned, Run};

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
    /// read, and each row that must not, with why.
    fn check(&self, job: Self::Job, now: Timestamp) -> (Option<Self::Job>, Vec<(Id, Withheld)>);
    fn compose(&self, job: &Self::Job, sender: &Sender, now: DateTime<Utc>) -> Result<Message, SendFailure>;
}

/// Why a row does not go out now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Withheld {
    /// Never: recorded skipped (opted out, completed, too late), with why.
    Skip(String),
    /// Not yet: its recipient's send window is closed; it waits in the
    /// queue until `until`, with no attempt counted.
    Wait { reason: String, until: Timestamp },
}

/// Whether a message must wait for its recipient's send window: `None`
/// when there is none or it is open at `now`. Otherwise it waits for the
/// opening, unless `in_time` says the opening comes too late for it: then
/// it is skipped, with `too_late` as the reason.
pub fn wait_for_window(
    window: Option<&SendWindow>,
    zone: Tz,
    now: DateTime<Utc>,
    in_time: impl FnOnce(DateTime<Utc>) -> bool,
    too_late: &str,
) -> Option<Withheld> {
    let window = window.filter(|window| !window.is_open(now, zone))?;
    let opens = window.next_open(now, zone);
    Some(if in_time(opens) {
        Withheld::Wait {
            reason: format!(
                "outside the send window: waits for it to open at {}",
                crate::time::local_short(opens, zone)
            ),
            until: Timestamp::new(opens),
        }
    } else {
        Withheld::Skip(too_late.to_string())
    })
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
    pub contact_message_id: Option<Id>,
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
    /// Messages per second, minute or hour across all connections (`--rate`).
    pub rate: Option<Rate>,
    /// Messages in this run at most (`--limit`); the rest wait for the next.
    pub limit: Option<u64>,
    /// `--daily-cap`: messages per window across all runs and hosts.
    pub cap: Option<Cap>,
}

/// `--daily-cap N` per `--cap-window` (a UTC day by default).
#[derive(Debug, Clone, Copy)]
pub struct Cap {
    pub messages: u32,
    pub window: chrono::Duration,
}

impl Cap {
    /// The start of the window `now` falls in: windows are counted from the
    /// Unix epoch, so a day's starts at midnight UTC.
    pub fn window_start(&self, now: DateTime<Utc>) -> Timestamp {
        let length = self.window.num_seconds().max(1);
        let seconds = now.timestamp();
        let start = DateTime::from_timestamp(seconds - seconds.rem_euclid(length), 0).unwrap_or(now);
        Timestamp::new(start)
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
    let run = Run::new(queue, mailer, sender, clock, options);
    // SIGTERM or Ctrl-C: stop handing out, finish what is in flight, hand the rest back.
    let signals = Arc::new(AtomicUsize::new(0));
    for signal in [SIGTERM, SIGINT] {
        signal_hook::flag::register_usize(signal, Arc::clone(&signals), signal as usize)?;
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
        let mut dispatcher = Dispatcher::new(&run, database, db, options, handoff, handed);
        let result = dispatcher
            .dispatch(&returned, &signals)
            .and_then(|()| dispatcher.settle_cap());
        let report = dispatcher.into_report();
        report.warn_if_lease_lost();
        report.warn_if_held_back();
        result.map(|()| report)
    })
}
