//! `reminders prune`: retention for a whole term.

use serde_json::json;

use super::Outcome;
use crate::cli::PruneArgs;
use crate::db::types::Timestamp;
use crate::db::{DatabaseUrl, Db, retention};
use crate::output;
use crate::time;
use crate::time::Clock;

pub fn run(database: &DatabaseUrl, args: PruneArgs, clock: Clock) -> anyhow::Result<Outcome> {
    let now = Timestamp::now(&clock);
    let cutoff = Timestamp::new(time::saturating_add(now.instant(), -args.older_than));
    let mut db = Db::open(database)?;
    let pruned = retention::prune(&mut db, cutoff, now, args.dry_run)?;
    let verb = if args.dry_run { "would delete" } else { "deleted" };
    let text = output::key_values([
        ("older than", crate::time::utc(cutoff.instant())),
        (
            if args.dry_run {
                "send_logs (would delete)"
            } else {
                "send_logs deleted"
            },
            pruned.send_logs.to_string(),
        ),
        (
            if args.dry_run {
                "reminders (would delete)"
            } else {
                "reminders deleted"
            },
            pruned.reminders.to_string(),
        ),
        (
            if args.dry_run {
                "daily_summaries (would delete)"
            } else {
                "daily_summaries deleted"
            },
            pruned.daily_summaries.to_string(),
        ),
    ]);
    let json = json!({ "cutoff": crate::time::utc(cutoff.instant()), "dry_run": args.dry_run, verb: pruned });
    let report = output::Message { text, json };
    if args.dry_run {
        return Ok(Outcome::success(report));
    }
    Ok(Outcome::success(output::Done(report)))
}
