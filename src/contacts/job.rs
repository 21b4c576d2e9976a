//! One claimed message to a guardian or a teacher: what it says (read just
//! before the send), the rules that stop it at the last moment (opted out,
//! digest turned off, its day or week passed, nothing to say, the work
//! handed in), and the email.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use lettre::Message;

use super::course::{self, CourseReport};
use super::plan::Period;
use crate::db::Db;
use crate::db::contacts::{self, ClaimedContact, Contact, EscalatedStep, FollowedWork};
use crate::db::types::{ContactKind, DigestFrequency, Id, Timestamp};
use crate::db::{guardians, teachers};
use crate::input::zone_of;
use crate::mail::token::{MessageKind, MessageRef, Subscriber};
use crate::mail::{self, Blame, Identity, SendFailure, Sender};
use crate::queue::pipeline::{JobInfo, Queue, RowInfo, Withheld, wait_for_window};
use crate::render::{
    AssignmentView, CourseItemView, CourseView, EscalationContext, FollowedStudentView, GuardianDigestContext,
    ItemView, Kind, PersonView, Rendered, TeacherReportContext, Templates, header_safe,
};
use crate::schedule::Target;
use crate::schedule::window::SendWindow;
use crate::time::{self, Writing};

/// How far back a teacher's report looks, and how far ahead a guardian's
/// digest and a teacher's report look.
const WEEK: chrono::Duration = chrono::Duration::days(7);

/// The `contact_messages` table as a send queue.
pub struct ContactMessages {
    /// `--send-window`: when people without their own may be mailed.
    pub send_window: Option<SendWindow>,
    pub templates: Templates,
}

/// What a claimed message says, read when it was claimed or re-read.
pub enum Content {
    /// The followed students, by email, each with their open work due
    /// before a week from now.
    Digest(Vec<(guardians::FollowedStudent, Vec<FollowedWork>)>),
    /// The step, unless its assignment is gone.
    Escalation(Option<EscalatedStep>),
    /// One report per course taught.
    Report(Vec<CourseReport>),
}

pub struct ContactJob {
    claimed: ClaimedContact,
    content: Content,
}

fn content(db: &mut Db, claimed: &ClaimedContact, now: Timestamp) -> anyhow::Result<Content> {
    Ok(match (&claimed.contact, claimed.message.kind) {
        (Contact::Guardian(guardian), ContactKind::GuardianDigest) => {
            let until = Timestamp::new(time::saturating_add(now.instant(), WEEK));
            let work = contacts::followed_work(db, guardian.id, until)?;
            let students = guardians::followed_students(db, guardian.id)?
                .into_iter()
                .map(|student| {
                    let theirs = work
                        .iter()
                        .filter(|item| item.student_id == student.id)
                        .cloned()
                        .collect();
                    (student, theirs)
                })
                .collect();
            Content::Digest(students)
        }
        (_, ContactKind::Escalation) => match claimed.message.reminder_id {
            Some(reminder) => Content::Escalation(contacts::escalated_step(db, reminder)?),
            None => Content::Escalation(None),
        },
        (Contact::Teacher(teacher), ContactKind::TeacherReport) => {
            let courses = teachers::teaching(db, teacher.clone())?.courses;
            let mut reports = Vec::with_capacity(courses.len());
            for code in courses {
                reports.push(course::report(db, &code, WEEK, now.instant())?);
            }
            Content::Report(reports)
        }
        _ => Content::Report(Vec::new()),
    })
}

/// The missing work (past due, not completed, still accepted) and the work
/// due in the coming week, of one student, at `now`.
fn missing_and_upcoming(work: &[FollowedWork], now: DateTime<Utc>) -> (Vec<&FollowedWork>, Vec<&FollowedWork>) {
    let missing = work
        .iter()
        .filter(|item| item.due_at.instant() < now)
        .filter(|item| item.cutoff.is_none_or(|cutoff| cutoff.instant() > now))
        .rev()
        .collect();
    let upcoming = work.iter().filter(|item| item.due_at.instant() >= now).collect();
    (missing, upcoming)
}

/// Why a claimed message must not go out now: never, or not before its
/// recipient's send window opens (within its day or week; an escalation,
/// whenever it opens).
fn withheld(job: &ContactJob, now: DateTime<Utc>, default_window: Option<&SendWindow>) -> Option<Withheld> {
    let (timezone, hour, own) = match &job.claimed.contact {
        Contact::Guardian(guardian) => (&guardian.timezone, guardian.hour, guardian.send_window.as_deref()),
        Contact::Teacher(teacher) => (&teacher.timezone, teacher.hour, None),
        Contact::Gone => return Some(Withheld::Skip("its recipient is gone".to_string())),
    };
    let (zone, hour) = (zone_of(Some(timezone)), hour as u32);
    let own_or_default = SendWindow::own_or(own, default_window);
    let window = own_or_default.as_ref();
    if let Some(reason) = skip_reason(job, now, zone, hour, window) {
        return Some(Withheld::Skip(reason));
    }
    let period = Period::parse(&job.claimed.message.period);
    let in_its_period = |opens: DateTime<Utc>| match (job.claimed.message.kind, period) {
        (ContactKind::Escalation, _) => true,
        (_, Some(period)) => period.is_current(opens, hour, zone, window),
        (_, None) => false,
    };
    wait_for_window(
        window,
        zone,
        now,
        in_its_period,
        "the send window does not open again in its period",
    )
}

/// Why a claimed message must never go out, for a recipient in `zone`
/// whose hour is `hour` and send window `window`.
fn skip_reason(
    job: &ContactJob,
    now: DateTime<Utc>,
    zone: Tz,
    hour: u32,
    window: Option<&SendWindow>,
) -> Option<String> {
    let message = &job.claimed.message;
    let opted_out = match &job.claimed.contact {
        Contact::Gone => return Some("its recipient is gone".to_string()),
        Contact::Guardian(guardian) => {
            if message.kind == ContactKind::GuardianDigest && guardian.frequency == DigestFrequency::Off {
                return Some("the guardian turned the digest off".to_string());
            }
            guardian.contact_opt_out
        }
        Contact::Teacher(teacher) => teacher.contact_opt_out,
    };
    if opted_out {
        return Some("the recipient opted out".to_string());
    }
    if message.kind != ContactKind::Escalation
        && !Period::parse(&message.period).is_some_and(|period| period.is_current(now, hour, zone, window))
    {
        return Some("its day has passed".to_string());
    }
    match &job.content {
        Content::Digest(students) => {
            let nothing = students.iter().all(|(_, work)| {
                let (missing, upcoming) = missing_and_upcoming(work, now);
                missing.is_empty() && upcoming.is_empty()
            });
            nothing.then(|| "nothing missing or due".to_string())
        }
        Content::Report(reports) => reports
            .iter()
            .all(CourseReport::is_empty)
            .then(|| "nothing due in the last or the next 7 days".to_string()),
        Content::Escalation(None) => Some("the assignment is gone".to_string()),
        Content::Escalation(Some(step)) => {
            if step.completed {
                Some("the assignment is completed".to_string())
            } else if time::utc(step.due_at.instant()) != message.period {
                Some("the deadline moved after the step was sent".to_string())
            } else if step.cutoff.is_some_and(|cutoff| cutoff.instant() <= now) {
                Some("the cut-off has passed: the work can no longer be handed in".to_string())
            } else {
                None
            }
        }
    }
}

impl Queue for ContactMessages {
    type Table = contacts::Table;
    type Job = ContactJob;

    fn jobs(&self, db: &mut Db, rows: Vec<ClaimedContact>, now: Timestamp) -> anyhow::Result<Vec<ContactJob>> {
        rows.into_iter()
            .map(|claimed| {
                let content = content(db, &claimed, now)?;
                Ok(ContactJob { claimed, content })
            })
            .collect()
    }

    fn info(&self, job: &ContactJob) -> JobInfo {
        let id = job.claimed.message.id;
        JobInfo {
            to_email: match &job.claimed.contact {
                Contact::Guardian(guardian) => guardian.email.clone(),
                Contact::Teacher(teacher) => teacher.email.clone(),
                Contact::Gone => String::new(),
            },
            message: MessageRef {
                kind: MessageKind::Contact,
                id: id.0,
            },
            edition: None,
            rows: vec![RowInfo {
                id,
                attempts: job.claimed.message.attempts,
                reminder_id: None,
                assignment_id: None,
                summary_id: None,
                contact_message_id: Some(id),
            }],
        }
    }

    fn check(&self, job: ContactJob, now: Timestamp) -> (Option<ContactJob>, Vec<(Id, Withheld)>) {
        match withheld(&job, now.instant(), self.send_window.as_ref()) {
            Some(withheld) => (None, vec![(job.claimed.message.id, withheld)]),
            None => (Some(job), Vec::new()),
        }
    }

    fn compose(&self, job: &ContactJob, sender: &Sender, now: DateTime<Utc>) -> Result<Message, SendFailure> {
        let (person, recipient) = match &job.claimed.contact {
            Contact::Guardian(guardian) => (
                person_view(&guardian.email, guardian.name.as_deref(), &guardian.timezone),
                Subscriber::Guardian(guardian.id.0),
            ),
            Contact::Teacher(teacher) => (
                person_view(&teacher.email, teacher.name.as_deref(), &teacher.timezone),
                Subscriber::Teacher(teacher.id.0),
            ),
            Contact::Gone => return Err(SendFailure::new(Blame::Message, "its recipient is gone")),
        };
        let zone = zone_of(Some(&person.timezone));
        let locale = match &job.claimed.contact {
            Contact::Guardian(guardian) => guardian.locale.as_deref(),
            Contact::Teacher(teacher) => teacher.locale.as_deref(),
            Contact::Gone => None,
        };
        let writing = Writing::for_locale(locale);
        let date = writing.date(now.with_timezone(&zone).date_naive());
        let rendered = match &job.content {
            Content::Digest(students) => {
                let item = |work: &&FollowedWork| ItemView {
                    title: header_safe(&work.title),
                    due_utc: time::utc(work.due_at.instant()),
                    due_local: writing.long(work.due_at.instant(), zone),
                };
                let students: Vec<FollowedStudentView> = students
                    .iter()
                    .map(|(student, work)| {
                        let (missing, upcoming) = missing_and_upcoming(work, now);
                        FollowedStudentView {
                            email: student.email.clone(),
                            name: clean_name(student.name.as_deref()),
                            missing: missing.iter().map(item).collect(),
                            upcoming: upcoming.iter().map(item).collect(),
                        }
                    })
                    .collect();
                let context = GuardianDigestContext {
                    weekly: matches!(Period::parse(&job.claimed.message.period), Some(Period::Week(_))),
                    missing: students.iter().map(|s| s.missing.len()).sum(),
                    upcoming: students.iter().map(|s| s.upcoming.len()).sum(),
                    guardian: person,
                    date,
                    students,
                };
                blame_template(self.templates.render(Kind::GuardianDigest, locale, &context))?
            }
            Content::Escalation(Some(step)) => {
                let due = step.due_at.instant();
                let context = EscalationContext {
                    guardian: person,
                    student: PersonView {
                        email: step.student_email.clone(),
                        name: clean_name(step.student_name.as_deref()),
                        timezone: zone.name().to_string(),
                    },
                    assignment: AssignmentView {
                        title: header_safe(&step.title),
                        description: step.description.clone().filter(|d| !d.trim().is_empty()),
                        due_utc: time::utc(due),
                        due_local: writing.long(due, zone),
                        due_local_short: writing.short(due, zone),
                        time_left: writing.duration(due - now),
                        overdue_by: (due <= now).then(|| writing.duration(now - due)),
                        cutoff_local: step.cutoff.map(|cutoff| writing.long(cutoff.instant(), zone)),
                        moved_from: None,
                        metadata: serde_json::Value::Null,
                    },
                    reminder_type: Target::from_reminder_type(&step.reminder_type)
                        .map_or_else(|| step.reminder_type.clone(), |target| target.reminder_type()),
                };
                blame_template(self.templates.render(Kind::Escalation, locale, &context))?
            }
            Content::Escalation(None) => return Err(SendFailure::new(Blame::Message, "the assignment is gone")),
            Content::Report(reports) => {
                // Who has not completed is named for past work only.
                let item = |due: &course::Due, named: bool| CourseItemView {
                    title: header_safe(&due.title),
                    due_local: writing.long(due.due_at.instant(), zone),
                    students: due.students,
                    completed: due.completed,
                    not_completed: due
                        .not_completed
                        .iter()
                        .filter(|_| named)
                        .map(|student| PersonView {
                            email: student.email.clone(),
                            name: clean_name(student.name.as_deref()),
                            timezone: zone.name().to_string(),
                        })
                        .collect(),
                };
                let courses = reports
                    .iter()
                    .map(|report| CourseView {
                        course: header_safe(&report.course),
                        past: report.past.iter().map(|due| item(due, true)).collect(),
                        upcoming: report.upcoming.iter().map(|due| item(due, false)).collect(),
                    })
                    .collect();
                let context = TeacherReportContext {
                    teacher: person,
                    date,
                    courses,
                };
                blame_template(self.templates.render(Kind::TeacherReport, locale, &context))?
            }
        };
        let identity = Identity {
            message: MessageRef {
                kind: MessageKind::Contact,
                id: job.claimed.message.id.0,
            },
            edition: None,
            recipient,
        };
        let (to, name) = match &job.claimed.contact {
            Contact::Guardian(guardian) => (&guardian.email, guardian.name.as_deref()),
            Contact::Teacher(teacher) => (&teacher.email, teacher.name.as_deref()),
            Contact::Gone => unreachable!("refused above"),
        };
        mail::build(sender, to, clean_name(name), identity, rendered)
    }
}

/// A template that does not render is the message's fault.
fn blame_template(rendered: anyhow::Result<Rendered>) -> Result<Rendered, SendFailure> {
    rendered.map_err(|e| SendFailure::new(Blame::Message, format!("{e:#}")))
}

fn clean_name(name: Option<&str>) -> Option<String> {
    name.map(header_safe).filter(|name| !name.is_empty())
}

fn person_view(email: &str, name: Option<&str>, timezone: &str) -> PersonView {
    PersonView {
        email: email.to_string(),
        name: clean_name(name),
        timezone: zone_of(Some(timezone)).name().to_string(),
    }
}
