//! One claimed daily summary: the rules that stop it at the last moment
//! (opted out, turned off, its day passed, nothing to say), and the message.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use lettre::Message;

use crate::db::Db;
use crate::db::summaries::{self, ClaimedSummary, DEFAULT_DAILY_SUMMARY, DEFAULT_SUMMARY_HOUR, StudentCounts};
use crate::db::types::{Id, Timestamp};
use crate::input::zone_of;
use crate::mail::token::{MessageKind, MessageRef, Subscriber};
use crate::mail::{self, Blame, Identity, SendFailure, Sender};
use crate::queue::pipeline::{JobInfo, Queue, RowInfo, Withheld, wait_for_window};
use crate::render::{Counts, ItemView, Kind, StudentView, SummaryContext, Templates, header_safe};
use crate::schedule::summary_day;
use crate::schedule::window::SendWindow;
use crate::time::{self, Writing};

/// A claimed summary with what its email says.
pub struct SummaryJob {
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
pub struct Summaries {
    /// `--send-window`: when students without their own may be mailed.
    pub send_window: Option<SendWindow>,
    pub templates: Templates,
}

/// Why a claimed summary must not go out now: never, or not before the
/// student's send window opens (on the summary's own day).
fn withheld(job: &SummaryJob, now: Timestamp, default_window: Option<&SendWindow>) -> Option<Withheld> {
    let claimed = &job.claimed;
    if claimed.contact_opt_out {
        return Some(Withheld::Skip("the student opted out".to_string()));
    }
    if !claimed.daily_summary.unwrap_or(DEFAULT_DAILY_SUMMARY) {
        return Some(Withheld::Skip("the student turned the daily summary off".to_string()));
    }
    // A summary, or its retry, goes out only on the local day its hour
    // fell on: its own date, or the next when that hour stepped over
    // midnight out of a DST gap.
    let zone = zone_of(claimed.timezone.as_deref());
    let hour = claimed.summary_hour.unwrap_or(DEFAULT_SUMMARY_HOUR) as u32;
    let own_or_default = SendWindow::own_or(claimed.send_window.as_deref(), default_window);
    let window = own_or_default.as_ref();
    let day = summary_day(claimed.local_date, hour, zone, window);
    if now.instant().with_timezone(&zone).date_naive() != day {
        return Some(Withheld::Skip("its day has passed".to_string()));
    }
    let on_its_day = |opens: DateTime<Utc>| opens.with_timezone(&zone).date_naive() == day;
    if let Some(wait) = wait_for_window(
        window,
        zone,
        now.instant(),
        on_its_day,
        "the send window does not open again on its day",
    ) {
        return Some(wait);
    }
    match &job.counts {
        Some(counts) if counts.current + counts.overdue > 0 => None,
        _ => Some(Withheld::Skip("nothing current or overdue".to_string())),
    }
}

impl Queue for Summaries {
    type Table = summaries::Table;
    type Job = SummaryJob;

    fn jobs(&self, db: &mut Db, rows: Vec<ClaimedSummary>, now: Timestamp) -> anyhow::Result<Vec<SummaryJob>> {
        with_counts(db, rows, now)
    }

    fn info(&self, job: &SummaryJob) -> JobInfo {
        JobInfo {
            to_email: job.claimed.email.clone(),
            message: MessageRef {
                kind: MessageKind::Summary,
                id: job.claimed.id.0,
            },
            edition: None,
            rows: vec![RowInfo {
                id: job.claimed.id,
                attempts: job.claimed.attempts,
                reminder_id: None,
                assignment_id: None,
                summary_id: Some(job.claimed.id),
                contact_message_id: None,
            }],
        }
    }

    fn check(&self, job: SummaryJob, now: Timestamp) -> (Option<SummaryJob>, Vec<(Id, Withheld)>) {
        match withheld(&job, now, self.send_window.as_ref()) {
            Some(withheld) => (None, vec![(job.claimed.id, withheld)]),
            None => (Some(job), Vec::new()),
        }
    }

    fn compose(&self, job: &SummaryJob, sender: &Sender, now: DateTime<Utc>) -> Result<Message, SendFailure> {
        let counts = job
            .counts
            .as_ref()
            .ok_or_else(|| SendFailure::new(Blame::Message, "the student is gone"))?;
        let content = SummaryContent {
            summary_id: job.claimed.id,
            student_id: job.claimed.user_id,
            email: &job.claimed.email,
            name: job.claimed.name.as_deref(),
            timezone: job.claimed.timezone.as_deref(),
            locale: job.claimed.locale.as_deref(),
            local_date: job.claimed.local_date,
            current: counts.current,
            overdue: counts.overdue,
            completed: counts.completed,
            open: &job.open,
        };
        compose(&content, sender, now, &self.templates)
    }
}

/// What a daily summary says, before it meets the template.
pub struct SummaryContent<'a> {
    pub summary_id: Id,
    pub student_id: Id,
    pub email: &'a str,
    pub name: Option<&'a str>,
    pub timezone: Option<&'a str>,
    /// The student's language (BCP 47).
    pub locale: Option<&'a str>,
    pub local_date: chrono::NaiveDate,
    pub current: i64,
    pub overdue: i64,
    pub completed: i64,
    /// Open assignments, by due time.
    pub open: &'a [(String, DateTime<Utc>)],
}

/// How many assignments of each kind a summary lists by name.
const SUMMARY_LIST_LIMIT: usize = 10;

/// Builds a daily summary: the three counts, then the overdue and upcoming
/// assignments, nearest first, in the student's zone.
pub fn compose(
    content: &SummaryContent,
    sender: &Sender,
    now: DateTime<Utc>,
    templates: &Templates,
) -> Result<Message, SendFailure> {
    let zone = zone_of(content.timezone);
    let writing = Writing::for_locale(content.locale);
    let item = |(title, due): &&(String, DateTime<Utc>)| ItemView {
        title: header_safe(title),
        due_utc: time::utc(*due),
        due_local: writing.long(*due, zone),
    };
    // Nearest first: the most recently missed, and the soonest due.
    let overdue: Vec<_> = content.open.iter().filter(|(_, due)| *due < now).rev().collect();
    let upcoming: Vec<_> = content.open.iter().filter(|(_, due)| *due >= now).collect();
    let context = SummaryContext {
        student: StudentView {
            email: content.email.to_string(),
            name: content.name.map(header_safe).filter(|name| !name.is_empty()),
            timezone: zone.name().to_string(),
        },
        date: writing.date(content.local_date),
        counts: Counts {
            current: content.current,
            overdue: content.overdue,
            completed: content.completed,
        },
        overdue: overdue.iter().take(SUMMARY_LIST_LIMIT).map(item).collect(),
        overdue_more: overdue.len().saturating_sub(SUMMARY_LIST_LIMIT),
        upcoming: upcoming.iter().take(SUMMARY_LIST_LIMIT).map(item).collect(),
        upcoming_more: upcoming.len().saturating_sub(SUMMARY_LIST_LIMIT),
    };
    let rendered = templates
        .render(Kind::Summary, content.locale, &context)
        .map_err(|e| SendFailure::new(Blame::Message, format!("{e:#}")))?;
    let identity = Identity {
        edition: None,
        message: MessageRef {
            kind: MessageKind::Summary,
            id: content.summary_id.0,
        },
        recipient: Subscriber::Student(content.student_id.0),
    };
    mail::build(sender, content.email, context.student.name, identity, rendered)
}
