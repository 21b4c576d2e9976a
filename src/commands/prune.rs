//! `reminders prune`: retention for a whole term.

use serde_json::json;

use super::{Context, Outcome, Run};
use crate::cli::PruneArgs;
use crate::db::types::Timestamp;
use crate::db::{Db, retention};
use crate::error::Failure;
use crate::output;
use crate::time;

impl Run for PruneArgs {
    fn run(self, cx: &Context) -> Result<Outcome, Failure> {
        prune(cx, self)
    }
}

fn prune(cx: &Context, args: PruneArgs) -> Result<Outcome, Failure> {
    if args.older_than < chrono::Duration::days(1) && !args.force {
        return Err(Failure::bad_input(format!(
            "--older-than {} is under a day, which would delete today's records: pass --force if that is meant \
             (for months, write days or weeks: `90d`, `12w`)",
            time::human_duration(args.older_than)
        )));
    }
    let now = Timestamp::now(&cx.clock());
    let cutoff = Timestamp::new(time::saturating_add(now.instant(), -args.older_than));
    let mut db = Db::open(cx.database()?)?;
    let pruned = retention::prune(&mut db, cutoff, now, args.dry_run)?;
    let verb = if args.dry_run { "would delete" } else { "deleted" };
    let text = output::key_values([
        (
            "older than",
            time::local_short(cutoff.instant(), cx.global.machine_zone),
        ),
        (&format!("send_logs: {verb}"), pruned.send_logs.to_string()),
        (&format!("reminders: {verb}"), pruned.reminders.to_string()),
        (&format!("daily_summaries: {verb}"), pruned.daily_summaries.to_string()),
        (
            &format!("contact_messages: {verb}"),
            pruned.contact_messages.to_string(),
        ),
        (&format!("bounce_reports: {verb}"), pruned.bounce_reports.to_string()),
    ]);
    // A dry run has the real run's keys, and says it is one.
    let json = json!({ "cutoff": time::utc(cutoff.instant()), "dry_run": args.dry_run, "deleted": pruned });
    let report = output::Message { text, json };
    if args.dry_run {
        return Ok(Outcome::success(report));
    }
    Ok(Outcome::success(output::Done(report)))
}
