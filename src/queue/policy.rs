//! The queue's rules, as pure functions: what a failure costs (an attempt, a
//! retry after a backoff, failing for good, the bounce rule, stopping the run).

use chrono::Duration;

use crate::db::types::{LogStatus, Timestamp};
use crate::mail::{Blame, SendFailure};

use super::Resolution;

/// Rejections about the recipient in a row after which the address is opted out.
pub const REJECTIONS_BEFORE_OPT_OUT: i64 = 3;

/// What the send log that triggered the bounce rule says after its error.
pub fn opt_out_note() -> String {
    format!("; {REJECTIONS_BEFORE_OPT_OUT} rejections in a row, so the address is now opted out")
}

/// Failures of the run in a row after which it stops (the circuit breaker):
/// enough to tell a broken relay from one unlucky message.
pub const RUN_FAILURES_BEFORE_STOP: usize = 3;

/// The default of `--max-attempts`: attempts before a message that keeps
/// failing transiently is marked failed.
pub const DEFAULT_MAX_ATTEMPTS: i32 = 5;

/// Longest wait between two attempts.
const BACKOFF_CAP: Duration = Duration::hours(1);

/// What one attempt comes to: the message's new state and its send log's status.
///
/// - delivered: sent;
/// - the recipient's mailbox refused it: failed, and it counts toward the bounce rule;
/// - the message was refused: failed, nobody blamed;
/// - the run or the relay failed: released as it was, no attempt counted;
/// - a transient fault: another attempt after a backoff, until `max_attempts`.
pub fn resolve(
    failure: Option<&SendFailure>,
    attempts_before: i32,
    max_attempts: i32,
    backoff_base: Duration,
    at: Timestamp,
) -> (Resolution, LogStatus) {
    let Some(SendFailure { blame, reason, .. }) = failure else {
        return (Resolution::Sent { at }, LogStatus::Delivered);
    };
    let error = reason.clone();
    match blame {
        Blame::Recipient => (Resolution::Failed { error }, LogStatus::Rejected),
        Blame::Message => (Resolution::Failed { error }, LogStatus::Failed),
        Blame::Run => (Resolution::Released { error }, LogStatus::Failed),
        Blame::Transient => {
            let attempts = attempts_before + 1;
            let resolution = if attempts >= max_attempts {
                Resolution::Failed {
                    error: format!("gave up after {attempts} attempts: {reason}"),
                }
            } else {
                Resolution::RetryLater {
                    error,
                    retry_at: Timestamp::new(at.instant() + backoff(attempts, backoff_base)),
                }
            };
            (resolution, LogStatus::Failed)
        }
    }
}

/// The wait before retry number `attempts + 1`: `base`, doubling per attempt,
/// capped at an hour, plus up to a quarter more of jitter so that a crowd of
/// retries does not arrive at the mail server at once.
pub fn backoff(attempts: i32, base: Duration) -> Duration {
    let doublings = attempts.saturating_sub(1).clamp(0, 20) as u32;
    let delay = base
        .checked_mul(1 << doublings)
        .unwrap_or(BACKOFF_CAP)
        .min(BACKOFF_CAP)
        .max(base);
    let jitter_ms = (delay.num_milliseconds() as f64 * fastrand::f64() / 4.0) as i64;
    delay + Duration::milliseconds(jitter_ms)
}

/// The bounce rule: an address whose latest [`REJECTIONS_BEFORE_OPT_OUT`]
/// attempts were all refused for its mailbox is opted out. `latest` is the
/// address's send log, newest first, as (Message-ID, status, time). An attempt
/// is refused when the server rejected it during the session, or when a relay
/// accepted it and a verified report later said the mailbox bounced it
/// (a `bounced` row with the same Message-ID). Any other outcome resets the
/// count. A digest logs one row per reminder it carries, all with its
/// Message-ID and time: they are one attempt.
pub fn bounced_out(latest: &[(Option<String>, LogStatus, Timestamp)]) -> bool {
    let bounced: std::collections::HashSet<&str> = latest
        .iter()
        .filter(|(_, status, _)| *status == LogStatus::Bounced)
        .filter_map(|(id, _, _)| id.as_deref())
        .collect();
    let refused = |(id, status, _): &(Option<String>, LogStatus, Timestamp)| match status {
        LogStatus::Rejected => true,
        LogStatus::Delivered => id.as_deref().is_some_and(|id| bounced.contains(id)),
        LogStatus::Failed | LogStatus::Bounced => false,
    };
    let mut attempts: Vec<&(Option<String>, LogStatus, Timestamp)> = latest
        .iter()
        .filter(|(_, status, _)| *status != LogStatus::Bounced)
        .collect();
    attempts.dedup_by(|later, earlier| later.0.is_some() && later.0 == earlier.0 && later.2 == earlier.2);
    attempts.len() >= REJECTIONS_BEFORE_OPT_OUT as usize
        && attempts
            .iter()
            .take(REJECTIONS_BEFORE_OPT_OUT as usize)
            .all(|attempt| refused(attempt))
}

/// Whether a run that has had `in_a_row` failures of its own, one after
/// another, should stop (the circuit breaker).
pub fn stop_the_run(in_a_row: usize) -> bool {
    in_a_row >= RUN_FAILURES_BEFORE_STOP
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> Timestamp {
        Timestamp::new("2030-01-01T00:00:00Z".parse().unwrap())
    }

    fn failure(blame: Blame) -> SendFailure {
        SendFailure::new(blame, "reason")
    }

    #[test]
    fn only_the_recipients_mailbox_counts_toward_the_bounce_rule() {
        let base = Duration::minutes(1);
        let (_, log) = resolve(Some(&failure(Blame::Recipient)), 0, 5, base, at());
        assert_eq!(log, LogStatus::Rejected);
        for blame in [Blame::Message, Blame::Run, Blame::Transient] {
            assert_eq!(resolve(Some(&failure(blame)), 0, 5, base, at()).1, LogStatus::Failed);
        }
        assert_eq!(resolve(None, 0, 5, base, at()).1, LogStatus::Delivered);
    }

    #[test]
    fn a_fault_of_the_run_costs_no_attempt() {
        let (resolution, _) = resolve(Some(&failure(Blame::Run)), 4, 5, Duration::minutes(1), at());
        assert!(matches!(resolution, Resolution::Released { .. }), "{resolution:?}");
    }

    #[test]
    fn transient_faults_retry_until_the_last_attempt() {
        let base = Duration::minutes(1);
        let (retry, _) = resolve(Some(&failure(Blame::Transient)), 0, 5, base, at());
        match retry {
            Resolution::RetryLater { retry_at, .. } => {
                let wait = retry_at.instant() - at().instant();
                assert!(wait >= base && wait <= base + base / 4, "{wait}");
            }
            other => panic!("{other:?}"),
        }
        let (last, _) = resolve(Some(&failure(Blame::Transient)), 4, 5, base, at());
        assert!(matches!(last, Resolution::Failed { error } if error.starts_with("gave up after 5 attempts")));
    }

    #[test]
    fn backoff_doubles_from_the_base_with_bounded_jitter() {
        let base = Duration::minutes(1);
        for (attempts, minutes) in [(1, 1), (2, 2), (3, 4), (4, 8), (10, 60), (40, 60)] {
            let wait = backoff(attempts, base);
            let floor = Duration::minutes(minutes);
            assert!(wait >= floor && wait <= floor + floor / 4, "attempt {attempts}: {wait}");
        }
    }

    /// Send logs, newest first, a minute apart.
    fn logs(entries: &[(&str, LogStatus)]) -> Vec<(Option<String>, LogStatus, Timestamp)> {
        let newest: chrono::DateTime<chrono::Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        entries
            .iter()
            .enumerate()
            .map(|(n, (id, status))| {
                let at = Timestamp::new(newest - Duration::minutes(n as i64));
                (Some(id.to_string()), *status, at)
            })
            .collect()
    }

    #[test]
    fn a_digest_refused_once_is_one_rejection() {
        use LogStatus::*;
        let mut digest = logs(&[("d", Rejected), ("b", Rejected), ("a", Rejected)]);
        // The first message was a digest of three reminders: three rows, one time.
        digest[1] = (Some("d".into()), Rejected, digest[0].2);
        digest[2] = (Some("d".into()), Rejected, digest[0].2);
        assert!(!bounced_out(&digest));
        digest.extend(
            logs(&[("y", Rejected), ("x", Rejected)])
                .into_iter()
                .map(|(id, status, at)| (id, status, Timestamp::new(at.instant() - Duration::hours(1)))),
        );
        assert!(bounced_out(&digest));
    }

    #[test]
    fn three_rejections_in_a_row_opt_out() {
        use LogStatus::*;
        assert!(bounced_out(&logs(&[("c", Rejected), ("b", Rejected), ("a", Rejected)])));
        assert!(!bounced_out(&logs(&[("b", Rejected), ("a", Rejected)])));
        assert!(!bounced_out(&logs(&[
            ("c", Rejected),
            ("b", Delivered),
            ("a", Rejected)
        ])));
        assert!(!bounced_out(&logs(&[("c", Rejected), ("b", Rejected), ("a", Failed)])));
    }

    #[test]
    fn a_delivery_that_bounced_later_counts_as_a_rejection() {
        use LogStatus::*;
        // Relayed three times, each bounced later by a DSN: newest first.
        let all_bounced = logs(&[
            ("c", Bounced),
            ("b", Bounced),
            ("c", Delivered),
            ("a", Bounced),
            ("b", Delivered),
            ("a", Delivered),
        ]);
        assert!(bounced_out(&all_bounced));
        // The newest delivery has not bounced (yet): not opted out.
        let one_open = logs(&[
            ("b", Bounced),
            ("c", Delivered),
            ("a", Bounced),
            ("b", Delivered),
            ("a", Delivered),
        ]);
        assert!(!bounced_out(&one_open));
        // Session rejections and later bounces mix.
        assert!(bounced_out(&logs(&[
            ("b", Bounced),
            ("c", Rejected),
            ("b", Delivered),
            ("a", Rejected)
        ])));
    }

    #[test]
    fn the_breaker_trips_on_the_third_run_failure() {
        assert!(!stop_the_run(2));
        assert!(stop_the_run(3));
    }
}
