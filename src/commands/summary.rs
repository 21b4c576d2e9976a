//! `reminders summary`: per-student counts at a glance, and with `--send`, each
//! student's daily summary email at their preferred local hour, once per
//! local date.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use lettre::Message;
use lettre::message::Mailbox;
use serde_json::json;

use super::Outcome;
use crate::cli::SummaryArgs;
use crate::db::DatabaseUrl;
use crate::db::Db;
use crate::db::queue::{NewSendLog, PENDING, Resolution};
use crate::db::summaries::{
    self, ClaimedSummary, DEFAULT_DAILY_SUMMARY, DEFAULT_SUMMARY_HOUR, NewSummary, StudentCounts,
};
use crate::db::types::{Id, Timestamp};
use crate::db::users;
use crate::delivery::{Delivered, JobInfo, Queue, deliver};
use crate::failure::{Blame, SendFailure};
use crate::input::{Email, parse_instant, zone_of};
use crate::mail::{self, SummaryContent};
use crate::output::{self, Report};
use crate::render::Templates;
use crate::schedule::{summary_day, summary_due};
use crate::settings::DeliverySettings;
use crate::time;
use crate::time::Clock;

/// Students read per query while scheduling summaries.
const PAGE_SIZE: i64 = 2_000;

pub fn run(database: &DatabaseUrl, args: SummaryArgs, templates: Templates) -> anyhow::Result<Outcome> {
    let student = args.student.as_deref().map(Email::parse).transpose()?;
    let mut clock = Clock::new(args.now.as_deref().map(parse_instant).transpose()?);
    let settings = DeliverySettings::from_args(&args.delivery)?;
    if !args.send {
        let mut db = Db::open(database)?;
        let students = match student {
            Some(email) => Some(vec![users::require_user_by_email(&mut db, email.as_str())?.id]),
            None => None,
        };
        let counts = summaries::counts_by_student(&mut db, Timestamp::now(&clock), students.as_deref())?;
        let next_titles = next_titles(&mut db, &counts)?;
        return Ok(Outcome::success(CountsReport { counts, next_titles }));
    }
    if student.is_some() {
        return Err(crate::error::invalid(
            "`--student` only narrows the counts; `--send` covers every student",
        ));
    }
    if args.dry_run {
        let mut db = Db::open(database)?;
        let mut owed = 0;
        owed_summaries(&mut db, Timestamp::now(&clock), |_, page| {
            owed += page.len();
            Ok(())
        })?;
        let text = format!("{owed} daily summaries would be scheduled (dry run: nothing was written or sent)");
        let json = json!({ "would_schedule": owed });
        return Ok(Outcome::success(output::Message { text, json }));
    }
    let (mail, mailer) = settings.mailer()?;
    let mut db = Db::open(database)?;
    clock.follow(db.server_clock()?);
    let mut scheduled = 0;
    owed_summaries(&mut db, Timestamp::now(&clock), |db, page| {
        scheduled += summaries::schedule(db, &page)?;
        Ok(())
    })?;
    let delivered = deliver(
        database,
        &mut db,
        &Summaries { templates },
        &mailer,
        &mail.from,
        &settings.options,
        &clock,
    )?;
    Ok(Outcome {
        status: delivered.exit_status(),
        report: Box::new(SendReport { scheduled, delivered }),
    })
}

/// The title of each student's next due assignment.
fn next_titles(db: &mut Db, counts: &[StudentCounts]) -> anyhow::Result<HashMap<Id, String>> {
    let wanted: HashMap<Id, Timestamp> = counts
        .iter()
        .filter_map(|c| c.next_due_at.map(|due| (c.user_id, due)))
        .collect();
    let mut titles = HashMap::new();
    for chunk in wanted.keys().copied().collect::<Vec<_>>().chunks(1_000) {
        for open in summaries::open_assignments(db, chunk)? {
            if wanted.get(&open.student_id) == Some(&open.due_at) {
                titles.entry(open.student_id).or_insert(open.title);
            }
        }
    }
    Ok(titles)
}

/// The summaries owed at `now` that have no row yet: for each student who has
/// not opted out and has the daily summary on, today's (in their zone), once
/// their hour has come. Yesterday's is owed only while its hour, stepped over
/// midnight out of a DST gap, falls today (`summary_due`); a late run does not
/// send an ordinary summary of a day that has passed.
/// Walks the students a page at a time, handing each page's summaries to `visit`.
fn owed_summaries(
    db: &mut Db,
    now: Timestamp,
    mut visit: impl FnMut(&mut Db, Vec<NewSummary>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut after = None;
    loop {
        let page = summaries::recipients(db, after, PAGE_SIZE)?;
        let Some(last) = page.last() else { break };
        after = Some(last.user_id);
        let mut owed: Vec<(Id, NaiveDate, DateTime<Utc>)> = Vec::new();
        for recipient in &page {
            if !recipient.daily_summary.unwrap_or(DEFAULT_DAILY_SUMMARY) {
                continue;
            }
            let hour = recipient.summary_hour.unwrap_or(DEFAULT_SUMMARY_HOUR) as u32;
            for (date, at) in summary_due(now.instant(), hour, zone_of(recipient.timezone.as_deref())) {
                owed.push((recipient.user_id, date, at));
            }
        }
        let ids: Vec<Id> = owed.iter().map(|(id, _, _)| *id).collect();
        let existing: HashSet<(Id, NaiveDate)> = match owed.iter().map(|(_, date, _)| *date).min() {
            Some(since) => summaries::existing(db, &ids, since)?.into_iter().collect(),
            None => HashSet::new(),
        };
        let page_owed = owed
            .into_iter()
            .filter(|(id, date, _)| !existing.contains(&(*id, *date)))
            .map(|(user_id, local_date, at)| NewSummary {
                id: Id::new(),
                user_id,
                local_date,
                scheduled_for: Timestamp::new(at),
                status: PENDING,
                created_at: now,
                updated_at: now,
            });
        visit(db, page_owed.collect())?;
        if (page.len() as i64) < PAGE_SIZE {
            return Ok(());
        }
    }
    Ok(())
}

/// A claimed summary with what its email says.
struct SummaryJob {
    claimed: ClaimedSummary,
    counts: Option<StudentCounts>,
    open: Vec<(String, DateTime<Utc>)>,
}

/// Claimed summaries with each student's counts and open assignments at `now`.
fn with_counts(db: &mut Db, claimed: Vec<ClaimedSummary>, now: Timestamp) -> anyhow::Result<Vec<SummaryJob>> {
    if claimed.is_empty() {
        return Ok(Vec::new());
    }
    let students: Vec<Id> = claimed.iter().map(|c| c.user_id).collect();
    let mut counts: HashMap<Id, StudentCounts> = summaries::counts_by_student(db, now, Some(&students))?
        .into_iter()
        .map(|c| (c.user_id, c))
        .collect();
    let mut open: HashMap<Id, Vec<(String, DateTime<Utc>)>> = HashMap::new();
    for assignment in summaries::open_assignments(db, &students)? {
        open.entry(assignment.student_id)
            .or_default()
            .push((assignment.title, assignment.due_at.instant()));
    }
    Ok(claimed
        .into_iter()
        .map(|claimed| SummaryJob {
            counts: counts.remove(&claimed.user_id),
            open: open.remove(&claimed.user_id).unwrap_or_default(),
            claimed,
        })
        .collect())
}

/// The `daily_summaries` table as a send queue.
struct Summaries {
    templates: Templates,
}

impl Queue for Summaries {
    type Job = SummaryJob;

    fn claim(
        &self,
        db: &mut Db,
        run_id: Id,
        now: Timestamp,
        lease_until: Timestamp,
        limit: i64,
    ) -> anyhow::Result<Vec<SummaryJob>> {
        let claimed = summaries::claim_batch(db, run_id, now, lease_until, limit)?;
        with_counts(db, claimed, now)
    }

    fn reload(&self, db: &mut Db, run_id: Id, ids: &[Id], now: Timestamp) -> anyhow::Result<Vec<SummaryJob>> {
        let held = summaries::reload_held(db, run_id, ids)?;
        with_counts(db, held, now)
    }

    fn renew(&self, db: &mut Db, run_id: Id, now: Timestamp, lease_until: Timestamp) -> anyhow::Result<Vec<Id>> {
        summaries::renew_claims(db, run_id, now, lease_until)
    }

    fn info(&self, job: &SummaryJob) -> JobInfo {
        JobInfo {
            id: job.claimed.id,
            attempts: job.claimed.attempts,
            to_email: job.claimed.email.clone(),
            reminder_id: None,
            assignment_id: None,
            summary_id: Some(job.claimed.id),
        }
    }

    fn skip_reason(&self, job: &SummaryJob, now: Timestamp) -> Option<String> {
        let claimed = &job.claimed;
        if claimed.contact_opt_out {
            return Some("the student opted out".to_string());
        }
        if !claimed.daily_summary.unwrap_or(DEFAULT_DAILY_SUMMARY) {
            return Some("the student turned the daily summary off".to_string());
        }
        // A summary, or its retry, goes out only on the local day its hour
        // fell on: its own date, or the next when that hour stepped over
        // midnight out of a DST gap.
        let zone = zone_of(claimed.timezone.as_deref());
        let hour = claimed.summary_hour.unwrap_or(DEFAULT_SUMMARY_HOUR) as u32;
        if now.instant().with_timezone(&zone).date_naive() != summary_day(claimed.local_date, hour, zone) {
            return Some("its day has passed".to_string());
        }
        match &job.counts {
            Some(counts) if counts.current + counts.overdue > 0 => None,
            _ => Some("nothing current or overdue".to_string()),
        }
    }

    fn compose(&self, job: &SummaryJob, from: &Mailbox, now: DateTime<Utc>) -> Result<Message, SendFailure> {
        let counts = job
            .counts
            .as_ref()
            .ok_or_else(|| SendFailure::new(Blame::Message, "the student is gone"))?;
        let content = SummaryContent {
            summary_id: job.claimed.id,
            email: &job.claimed.email,
            name: job.claimed.name.as_deref(),
            timezone: job.claimed.timezone.as_deref(),
            local_date: job.claimed.local_date,
            current: counts.current,
            overdue: counts.overdue,
            completed: counts.completed,
            open: &job.open,
        };
        mail::summary_message(&content, from, now, &self.templates)
    }

    fn record(
        &self,
        db: &mut Db,
        run_id: Id,
        resolved: &[(Id, Resolution)],
        logs: &[NewSendLog],
        now: Timestamp,
    ) -> anyhow::Result<Vec<Id>> {
        summaries::record(db, run_id, resolved, logs, now)
    }

    fn release(&self, db: &mut Db, run_id: Id, now: Timestamp) -> anyhow::Result<usize> {
        summaries::release_claims(db, run_id, now)
    }
}

/// Per-student counts.
struct CountsReport {
    counts: Vec<StudentCounts>,
    next_titles: HashMap<Id, String>,
}

impl Report for CountsReport {
    fn to_json(&self) -> serde_json::Value {
        json!(
            self.counts
                .iter()
                .map(|c| json!({
                    "email": c.email,
                    "name": c.name,
                    "timezone": zone_of(c.timezone.as_deref()).name(),
                    "current": c.current,
                    "overdue": c.overdue,
                    "completed": c.completed,
                    "next_due": c.next_due_at.map(|due| json!({
                        "title": self.next_titles.get(&c.user_id),
                        "due_at": time::utc(due.instant()),
                    })),
                }))
                .collect::<Vec<_>>()
        )
    }

    fn to_table(&self) -> String {
        let rows = self.counts.iter().map(|c| {
            let zone = zone_of(c.timezone.as_deref());
            let next = match (c.next_due_at, self.next_titles.get(&c.user_id)) {
                (Some(due), Some(title)) => format!("{title} ({})", time::local_short(due.instant(), zone)),
                _ => String::new(),
            };
            [
                c.email.clone(),
                c.name.clone().unwrap_or_default(),
                zone.name().to_string(),
                c.current.to_string(),
                c.overdue.to_string(),
                c.completed.to_string(),
                next,
            ]
        });
        output::table(
            &[
                "email",
                "name",
                "timezone",
                "current",
                "overdue",
                "completed",
                "next due",
            ],
            rows,
        )
    }
}

/// What `summary --send` did.
struct SendReport {
    scheduled: usize,
    delivered: Delivered,
}

impl Report for SendReport {
    fn to_json(&self) -> serde_json::Value {
        let mut value = json!(self.delivered);
        value["scheduled"] = json!(self.scheduled);
        value
    }

    fn to_table(&self) -> String {
        let mut rows = vec![("scheduled", self.scheduled.to_string())];
        rows.extend(self.delivered.rows());
        output::key_values(rows)
    }

    fn is_idle(&self) -> bool {
        self.delivered.is_idle()
    }
}
