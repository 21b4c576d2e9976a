//! `reminders bounces`: read bounce reports, complaints and unsubscribe mails
//! from Maildirs, mbox files, single files or stdin, and act on those that
//! prove themselves.

use serde_json::json;

use super::{Context, Outcome, Run};
use crate::bounces::process::{self, Counts, Options, Stop};
use crate::bounces::source::Source;
use crate::config::BouncesJob;
use crate::db::{DatabaseUrl, Db};
use crate::error::{Failure, invalid};
use crate::output::{self, Report};
use crate::time::Clock;

impl Run for BouncesJob {
    fn run(self, cx: &Context) -> Result<Outcome, Failure> {
        bounces(cx.database()?, self, cx.clock())
    }
}

fn bounces(database: &DatabaseUrl, job: BouncesJob, clock: Clock) -> Result<Outcome, Failure> {
    let BouncesJob {
        args,
        secret,
        bounce_address,
    } = job;
    if bounce_address.is_none() {
        // Once here, not once per report: each report would only say it was
        // "not sent to a VERP address".
        crate::log::warning!(
            "REMINDERS_BOUNCE_ADDRESS is not set, so no report can be matched by its VERP address (bounces+TOKEN@…) \
             and no complaint can be verified: set it (or --bounce-address) to the plain bounce address the VERP \
             addresses are built from, as for `send`, e.g. bounces@school.example"
        );
    }
    // Every source is checked before anything is read: a typo is bad input
    // and nothing is touched.
    let sources = args
        .sources
        .iter()
        .map(|arg| Source::open(arg).map_err(|error| invalid(error.to_string())))
        .collect::<anyhow::Result<Vec<Source>>>()?;
    let options = Options {
        bounce_address,
        secret,
        recipient: args.recipient,
        max_size: args.max_size,
    };
    let mut db = match Db::open(database) {
        Ok(db) => db,
        Err(error) => return Err(try_again_later(error)),
    };
    let mut counts = Counts::default();
    for source in &sources {
        match process::process(&mut db, source, &options, &clock, &mut counts) {
            Ok(()) => {}
            Err(Stop::Source(error)) => return Err(Failure::bad_input(error)),
            Err(Stop::Database(error)) => return Err(try_again_later(error)),
        }
    }
    Ok(Outcome::success(BounceCounts(counts)))
}

/// The database is away or locked: nothing more is recorded now, and the
/// exit status (75) tells a mail server that piped the report in to keep it
/// and try again; the mail log shows the line, which main prints whatever
/// `-q` says (the pipe(8) line runs with `-q`).
fn try_again_later(error: anyhow::Error) -> Failure {
    Failure::temporary(format!("cannot record bounce reports now, try again later: {error:#}"))
}

struct BounceCounts(Counts);

impl Report for BounceCounts {
    fn to_json(&self) -> serde_json::Value {
        json!(self.0)
    }

    fn to_table(&self) -> String {
        let c = &self.0;
        let mut rows = vec![
            ("hard bounces", c.hard.to_string()),
            ("refused for our sending", c.refused.to_string()),
            ("other permanent failures", c.failed.to_string()),
            ("delayed", c.delayed.to_string()),
            ("complaints", c.complaints.to_string()),
            ("unsubscribes", c.unsubscribes.to_string()),
            ("automatic replies", c.auto_replies.to_string()),
            ("unverified (ignored)", c.unverified.to_string()),
            ("unmatched", c.unmatched.to_string()),
            ("unrecognised (set aside)", c.unrecognised.to_string()),
            ("processed before", c.already_processed.to_string()),
            ("taken by another run (skipped)", c.skipped.to_string()),
        ];
        if !c.opted_out.is_empty() {
            rows.push(("opted out", c.opted_out.join(", ")));
        }
        output::key_values(rows)
    }

    fn quiet_ok(&self) -> bool {
        true
    }
}
