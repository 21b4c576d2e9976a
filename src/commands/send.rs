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

use serde::Serialize;
use serde_json::json;

use super::due::DueList;
use super::{Context, Outcome, Run};
use crate::config::SendJob;
use crate::contacts::escalate;
use crate::contacts::job::ContactMessages;
use crate::db::Db;
use crate::db::reminders;
use crate::db::types::Timestamp;
use crate::error::Failure;
use crate::output::{self, Report};
use crate::queue::pipeline::{Delivered, deliver};
use crate::reminders::digest::{Digests, Fold};
use crate::reminders::job::Reminders;
use crate::reminders::plan::{self, Action, Preview, schedule_due};

impl Run for SendJob {
    fn run(self, cx: &Context) -> Result<Outcome, Failure> {
        send(cx, self)
    }
}

fn send(cx: &Context, job: SendJob) -> Result<Outcome, Failure> {
    let templates = cx.templates()?;
    let database = cx.database()?;
    let SendJob {
        mut windows,
        dry_run,
        delivery_window,
        digest,
        required_types,
        escalate_after,
        delivery: settings,
    } = job;
    if dry_run {
        let mut db = Db::open(database)?;
        windows.read_own_send_windows(&mut db)?;
        let Preview { items, already_sent } = plan::preview(&mut db, &windows)?;
        let queued = reminders::count_claimable(&mut db, Timestamp::now(&windows.clock))? as usize;
        return Ok(Outcome::success(DryRun {
            due: DueList(items),
            already_sent,
            queued,
        }));
    }
    // The database first: a run that cannot record anything creates
    // nothing either (a `file://` outbox).
    let mut db = Db::open(database)?;
    let (mail, mailer) = settings.mailer()?;
    super::warn_if_no_students(&mut db, database)?;
    windows.clock.follow(db.server_clock()?);
    crate::log::info!(
        "database `{}`, mail `{}`, now {}",
        database.display(),
        mail.url.display(),
        windows.clock.now()
    );
    let started = std::time::Instant::now();
    windows.read_own_send_windows(&mut db)?;
    let scheduled = schedule_due(&mut db, &windows)?;
    crate::log::info!("scheduled the due windows in {:?}", started.elapsed());
    let queue = Reminders {
        delivery_window,
        required_types,
        send_window: windows.send_windows.default.clone(),
        templates,
    };
    let mut report = SendReport {
        already_sent: scheduled.already_sent,
        ..SendReport::default()
    };
    report.delivered.skipped += scheduled.skipped;
    let (sender, options, clock) = (&mail.sender, &settings.options, &windows.clock);
    let fold = if digest {
        Some(Fold::Always)
    } else {
        reminders::any_daily_limit(&mut db)?.then_some(Fold::PastDailyLimit)
    };
    // The templates come back from the queue for the guardians' copies:
    // loaded once a run.
    let (delivered, templates) = if let Some(fold) = fold {
        let digests = Digests { reminders: queue, fold };
        let delivered = deliver(database, &mut db, &digests, &mailer, sender, options, clock)?;
        (delivered, digests.reminders.templates)
    } else {
        let delivered = deliver(database, &mut db, &queue, &mailer, sender, options, clock)?;
        (delivered, queue.templates)
    };
    report.delivered.add(delivered);
    if let Some(after) = escalate_after {
        report.escalated = escalate::schedule(&mut db, after, Timestamp::now(clock))?;
        let contacts = ContactMessages {
            send_window: windows.send_windows.default.clone(),
            templates,
        };
        report
            .delivered
            .add(deliver(database, &mut db, &contacts, &mailer, sender, options, clock)?);
    }
    crate::log::info!("finished in {:?}", started.elapsed());
    let (status, reasons) = (report.delivered.exit_status(), report.delivered.reasons());
    Ok(Outcome::unfinished(report, status, reasons))
}

/// What a run did.
#[derive(Debug, Default, Serialize)]
pub struct SendReport {
    #[serde(flatten)]
    pub delivered: Delivered,
    /// Reminders in the windows that an earlier run had sent.
    pub already_sent: usize,
    /// Copies of overdue steps to guardians scheduled by this run (`--escalate-after`).
    pub escalated: usize,
}

impl Report for SendReport {
    fn to_json(&self) -> serde_json::Value {
        json!(self)
    }

    fn to_table(&self) -> String {
        let mut rows = self.delivered.rows();
        rows.push(("already sent", self.already_sent.to_string()));
        if self.escalated > 0 {
            rows.push(("escalated to guardians", self.escalated.to_string()));
        }
        output::key_values(rows)
    }

    fn quiet_ok(&self) -> bool {
        self.delivered.exit_status() == crate::error::ExitStatus::Success
    }
}

/// What `--dry-run` would do: the real run's report, as predicted, with
/// the due reminders listed.
struct DryRun {
    due: DueList,
    already_sent: usize,
    /// Reminders already queued (scheduled by an earlier run) that are due now.
    queued: usize,
}

impl DryRun {
    fn report(&self) -> SendReport {
        let mut report = SendReport {
            already_sent: self.already_sent,
            ..SendReport::default()
        };
        let new = self
            .due
            .0
            .iter()
            .filter(|item| item.action == Action::Send && !item.queued)
            .count();
        // What the run schedules now, and everything queued and due.
        report.delivered.sent = new + self.queued;
        report.delivered.skipped = self
            .due
            .0
            .iter()
            .filter(|item| matches!(item.action, Action::Skip { .. }))
            .count();
        report
    }
}

impl Report for DryRun {
    fn to_json(&self) -> serde_json::Value {
        let mut value = self.report().to_json();
        value["dry_run"] = json!(true);
        value["due"] = self.due.to_json();
        value
    }

    fn to_table(&self) -> String {
        let report = self.report();
        format!(
            "{}\na real run would send {} and record {} skipped (dry run: nothing was written or sent)",
            self.due.to_table(),
            output::count(report.delivered.sent as i64, "reminder", "reminders"),
            report.delivered.skipped,
        )
    }
}
