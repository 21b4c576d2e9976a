//! What a run did: its counts and the causes of its failed sends, as
//! recorded, and how they are shown (table rows, stderr) and exit.

use serde::Serialize;
use signal_hook::consts::SIGTERM;

use crate::error::ExitStatus;
use crate::queue::Resolution;

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
    /// Due messages left queued because `--daily-cap` is reached.
    pub held_back: usize,
    /// Messages put back in the queue until their recipient's send window opens.
    pub waiting_for_window: usize,
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
        self.held_back += other.held_back;
        self.waiting_for_window += other.waiting_for_window;
        for cause in other.failures {
            self.note_failure(cause.outcome, &cause.reason, &cause.first, cause.count);
        }
    }

    /// Counts a failure under its outcome and reason.
    pub(super) fn note_failure(&mut self, outcome: &'static str, reason: &str, to: &str, count: usize) {
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

    /// Counts one result the database recorded.
    pub(super) fn count(&mut self, resolution: &Resolution) {
        match resolution {
            Resolution::Sent { .. } => self.sent += 1,
            Resolution::RetryLater { .. } | Resolution::Released { .. } => self.retry_later += 1,
            Resolution::Failed { .. } => self.failed += 1,
            Resolution::Skipped { .. } => self.skipped += 1,
            Resolution::Deferred { .. } => self.waiting_for_window += 1,
        }
    }

    /// A signal stopped the run: `let_go` messages claimed but not handed
    /// out are left for the next run. A run that had emptied its queue and
    /// lets nothing go was not interrupted: it had nothing left to do.
    pub(super) fn note_interruption(&mut self, signal: i32, let_go: usize, queue_emptied: bool) {
        self.stopped_by = Some(signal);
        self.left_over += let_go;
        self.interrupted = !queue_emptied || self.left_over > 0;
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

    pub(super) fn warn_if_held_back(&self) {
        if self.held_back > 0 {
            crate::log::warning!(
                "the daily cap is reached: {} held back for the next window, nearest deadline first",
                crate::output::count(self.held_back as i64, "message", "messages")
            );
        }
    }

    pub(super) fn warn_if_lease_lost(&self) {
        if self.lost_lease > 0 {
            crate::log::warning!(
                "{} taken over by another run after this run's lease ran out (was it \
                 paused or starved?); this run neither sent them nor wrote over the other run's result",
                crate::output::count(self.lost_lease as i64, "message was", "messages were")
            );
        }
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
        if self.held_back > 0 {
            rows.push(("held back (daily cap reached)", self.held_back.to_string()));
        }
        if self.waiting_for_window > 0 {
            rows.push(("waiting for the send window", self.waiting_for_window.to_string()));
        }
        rows
    }
}

fn signal_name(signal: Option<i32>) -> &'static str {
    match signal {
        Some(SIGTERM) => "SIGTERM",
        _ => "Ctrl-C (SIGINT)",
    }
}
