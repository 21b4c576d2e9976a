//! Queries for what guardians and teachers are sent: the `contact_messages`
//! queue (a guardian's digest or escalation, a teacher's report), what each
//! of those messages says, and opting an address out in every role.

use anyhow::Context;
use diesel::prelude::*;

use super::guardians::Guardian;
use super::queue::{insert_ignoring_conflicts, queue_table};
use super::schema::{assignments, contact_messages, guardian_students, guardians, reminders, teachers, users};
use super::teachers::Teacher;
use super::types::{ContactKind, DigestFrequency, Id, OptOutReason, Status, Timestamp};
use super::{Db, with_conn, write_transaction};
use crate::mail::token::Subscriber;

/// A message owed to a guardian or a teacher.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = contact_messages)]
#[diesel(treat_none_as_default_value = false)]
pub struct NewContactMessage {
    pub id: Id,
    pub kind: ContactKind,
    pub guardian_id: Option<Id>,
    pub teacher_id: Option<Id>,
    pub reminder_id: Option<Id>,
    pub period: String,
    pub message_key: String,
    pub scheduled_for: Timestamp,
    pub status: Status,
    /// Why it was skipped, for one recorded skipped.
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl NewContactMessage {
    /// What makes a message one: its kind, its recipient and its period.
    pub fn key(kind: ContactKind, recipient: Id, period: &str) -> String {
        format!("{kind}/{recipient}/{period}")
    }
}

/// The queue columns of a claimed message.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = contact_messages, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
pub struct ContactMessage {
    pub id: Id,
    pub kind: ContactKind,
    pub reminder_id: Option<Id>,
    pub period: String,
    pub attempts: i32,
}

/// To whom a message goes, as they are now.
#[derive(Debug, Clone)]
pub enum Contact {
    Guardian(Guardian),
    Teacher(Teacher),
    /// Forgotten while the message waited.
    Gone,
}

/// A message claimed by this run, with its recipient.
#[derive(Debug, Clone)]
pub struct ClaimedContact {
    pub message: ContactMessage,
    pub contact: Contact,
}

type Loaded = (ContactMessage, Option<Guardian>, Option<Teacher>);

impl From<Loaded> for ClaimedContact {
    fn from((message, guardian, teacher): Loaded) -> ClaimedContact {
        let contact = match (guardian, teacher) {
            (Some(guardian), _) => Contact::Guardian(guardian),
            (None, Some(teacher)) => Contact::Teacher(teacher),
            (None, None) => Contact::Gone,
        };
        ClaimedContact { message, contact }
    }
}

/// Loads the messages among `$ids` that run `$run_id` still holds, with the
/// guardian or teacher as they are now (see `reminders::load_held`).
macro_rules! load_held {
    ($conn:ident, $run_id:expr, $ids:expr) => {
        contact_messages::table
            .left_join(guardians::table)
            .left_join(teachers::table)
            .filter(contact_messages::id.eq_any($ids))
            .filter(contact_messages::claimed_by.eq($run_id))
            .filter(contact_messages::status.eq(Status::Pending))
            .select((
                ContactMessage::as_select(),
                Option::<Guardian>::as_select(),
                Option::<Teacher>::as_select(),
            ))
            .order(contact_messages::scheduled_for)
            .load::<Loaded>($conn)
            .map(|rows| rows.into_iter().map(ClaimedContact::from).collect::<Vec<_>>())
    };
}

queue_table! {
    table: contact_messages,
    row: ClaimedContact,
    order: contact_messages::scheduled_for,
    load: load_held,
    // A student's messages here are those to their guardians.
    of_students: |students| contact_messages::guardian_id.eq_any(
        guardian_students::table
            .filter(guardian_students::student_id.eq_any(students))
            .select(guardian_students::guardian_id.nullable())
    ),
    what: "messages to guardians and teachers",
}

/// Inserts owed messages; the unique `message_key` with ON CONFLICT DO
/// NOTHING keeps each to one, whatever runs overlap.
pub fn schedule(db: &mut Db, rows: &[NewContactMessage]) -> anyhow::Result<usize> {
    if rows.is_empty() {
        return Ok(0);
    }
    insert_ignoring_conflicts!(db, contact_messages, rows, contact_messages::message_key)
        .context("cannot schedule messages to guardians and teachers")
}

/// Which of these keys have a row already.
pub fn existing_keys(db: &mut Db, keys: &[String]) -> anyhow::Result<Vec<String>> {
    let mut found = Vec::new();
    for chunk in keys.chunks(1_000) {
        found.extend(
            with_conn!(db, conn => contact_messages::table
                .filter(contact_messages::message_key.eq_any(chunk))
                .select(contact_messages::message_key)
                .load::<String>(conn))
            .context("cannot read the messages to guardians and teachers")?,
        );
    }
    Ok(found)
}

/// The guardians who may be owed a digest: contact allowed, digest on.
pub fn digest_guardians(db: &mut Db) -> anyhow::Result<Vec<Guardian>> {
    with_conn!(db, conn => guardians::table
        .filter(guardians::contact_opt_out.eq(false))
        .filter(guardians::frequency.ne(DigestFrequency::Off))
        .select(Guardian::as_select())
        .order(guardians::id)
        .load(conn))
    .context("cannot list guardians for digests")
}

/// The teachers who may be owed a report: contact allowed, and teaching.
pub fn reporting_teachers(db: &mut Db) -> anyhow::Result<Vec<Teacher>> {
    use super::schema::teacher_courses;
    with_conn!(db, conn => teachers::table
        .filter(teachers::contact_opt_out.eq(false))
        .filter(diesel::dsl::exists(
            teacher_courses::table.filter(teacher_courses::teacher_id.eq(teachers::id)),
        ))
        .select(Teacher::as_select())
        .order(teachers::id)
        .load(conn))
    .context("cannot list teachers for reports")
}

/// A student's open assignment, as a guardian's digest lists it.
#[derive(Debug, Clone, Queryable)]
pub struct FollowedWork {
    pub student_id: Id,
    pub title: String,
    pub due_at: Timestamp,
    pub cutoff: Option<Timestamp>,
}

/// The open assignments of the students `guardian` follows that are due
/// before `until`, by student and due time: the digest picks the missing
/// and the upcoming among them.
pub fn followed_work(db: &mut Db, guardian: Id, until: Timestamp) -> anyhow::Result<Vec<FollowedWork>> {
    with_conn!(db, conn => guardian_students::table
        .inner_join(users::table.inner_join(assignments::table))
        .filter(guardian_students::guardian_id.eq(guardian))
        .filter(assignments::completed.eq(false))
        .filter(assignments::due_at.lt(until))
        .select((
            users::id,
            assignments::title,
            assignments::due_at,
            assignments::cutoff,
        ))
        .order((users::email, assignments::due_at))
        .load(conn))
    .context("cannot read the work of the guardian's students")
}

/// The overdue step an escalation copies, as it is now.
#[derive(Debug, Clone, Queryable)]
pub struct EscalatedStep {
    pub reminder_type: String,
    pub title: String,
    pub description: Option<String>,
    pub due_at: Timestamp,
    pub cutoff: Option<Timestamp>,
    pub completed: bool,
    pub student_email: String,
    pub student_name: Option<String>,
}

/// The step behind an escalation, with its assignment and student.
pub fn escalated_step(db: &mut Db, reminder: Id) -> anyhow::Result<Option<EscalatedStep>> {
    with_conn!(db, conn => reminders::table
        .inner_join(assignments::table.inner_join(users::table))
        .filter(reminders::id.eq(reminder))
        .select((
            reminders::reminder_type,
            assignments::title,
            assignments::description,
            assignments::due_at,
            assignments::cutoff,
            assignments::completed,
            users::email,
            users::name,
        ))
        .first(conn)
        .optional())
    .context("cannot read the overdue step to escalate")
}

/// An overdue step sent to a student since `since`, for each guardian of
/// theirs: what `send --escalate-after` copies.
#[derive(Debug, Clone, Queryable)]
pub struct StepToEscalate {
    pub reminder_id: Id,
    pub reminder_type: String,
    pub due_at: Timestamp,
    pub guardian_id: Id,
}

/// The overdue steps sent since `since` whose student has guardians, one
/// row per guardian.
pub fn sent_steps_with_guardians(db: &mut Db, since: Timestamp) -> anyhow::Result<Vec<StepToEscalate>> {
    with_conn!(db, conn => reminders::table
        .inner_join(assignments::table)
        .inner_join(guardian_students::table.on(guardian_students::student_id.eq(assignments::student_id)))
        .filter(reminders::status.eq(Status::Sent))
        .filter(reminders::sent_at.ge(since))
        // Written out, not bound, so that both databases see the partial
        // index `reminders_overdue_sent_idx` applies: an idle run's probe.
        .filter(diesel::dsl::sql::<diesel::sql_types::Bool>("reminders.reminder_type LIKE 'overdue-%'"))
        .select((
            reminders::id,
            reminders::reminder_type,
            reminders::due_at,
            guardian_students::guardian_id,
        ))
        .load(conn))
    .context("cannot read the overdue steps to escalate")
}

/// Opts an address out in every role it has (student, guardian, teacher)
/// for `reason`, where it is not already; returns how many rows changed.
/// An address that bounces, complains or unsubscribes is a person or a
/// mailbox, not a role: it stops getting anything from us.
macro_rules! opt_out_address {
    ($conn:ident, $email:expr, $reason:expr, $now:expr) => {{
        use $crate::db::schema::{guardians, teachers, users};
        let email: &str = $email;
        let reason: Option<$crate::db::types::OptOutReason> = $reason;
        let now: $crate::db::types::Timestamp = $now;
        let students = diesel::update(
            users::table
                .filter(users::email.eq(email))
                .filter(users::contact_opt_out.eq(false)),
        )
        .set((
            users::contact_opt_out.eq(true),
            users::opt_out_reason.eq(reason),
            users::updated_at.eq(now),
        ))
        .execute($conn)?;
        let guardians = diesel::update(
            guardians::table
                .filter(guardians::email.eq(email))
                .filter(guardians::contact_opt_out.eq(false)),
        )
        .set((
            guardians::contact_opt_out.eq(true),
            guardians::opt_out_reason.eq(reason),
            guardians::updated_at.eq(now),
        ))
        .execute($conn)?;
        let teachers = diesel::update(
            teachers::table
                .filter(teachers::email.eq(email))
                .filter(teachers::contact_opt_out.eq(false)),
        )
        .set((
            teachers::contact_opt_out.eq(true),
            teachers::opt_out_reason.eq(reason),
            teachers::updated_at.eq(now),
        ))
        .execute($conn)?;
        students + guardians + teachers
    }};
}
pub(crate) use opt_out_address;

/// The address an unsubscribe token's person has now, if they are still here.
pub fn subscriber_email(db: &mut Db, subscriber: Subscriber) -> anyhow::Result<Option<String>> {
    match subscriber {
        Subscriber::Student(id) => super::users::email_of(db, Id(id)),
        Subscriber::Guardian(id) => {
            with_conn!(db, conn => guardians::table.find(Id(id)).select(guardians::email).first(conn).optional())
                .context("cannot look up the guardian")
        }
        Subscriber::Teacher(id) => {
            with_conn!(db, conn => teachers::table.find(Id(id)).select(teachers::email).first(conn).optional())
                .context("cannot look up the teacher")
        }
    }
}

/// Opts an address out in every role it has, for `reason`; returns how many
/// rows changed (none when it was out already).
pub fn opt_out_everywhere(db: &mut Db, email: &str, reason: OptOutReason, now: Timestamp) -> anyhow::Result<usize> {
    write_transaction!(db, conn => Ok(opt_out_address!(conn, email, Some(reason), now)))
        .context("cannot opt the address out")
}

/// Mail to an address again in every role it has, where the person had
/// stopped it themselves (by their link or mail): an address opted out for
/// bounces or a complaint stays out. Returns how many rows changed.
pub fn resume_unsubscribed(db: &mut Db, email: &str, now: Timestamp) -> anyhow::Result<usize> {
    let reason = Some(OptOutReason::Unsubscribed);
    write_transaction!(db, conn => {
        let students = diesel::update(users::table.filter(users::email.eq(email)).filter(users::opt_out_reason.eq(reason)))
            .set((users::contact_opt_out.eq(false), users::opt_out_reason.eq(None::<OptOutReason>), users::updated_at.eq(now)))
            .execute(conn)?;
        let guardians = diesel::update(guardians::table.filter(guardians::email.eq(email)).filter(guardians::opt_out_reason.eq(reason)))
            .set((guardians::contact_opt_out.eq(false), guardians::opt_out_reason.eq(None::<OptOutReason>), guardians::updated_at.eq(now)))
            .execute(conn)?;
        let teachers = diesel::update(teachers::table.filter(teachers::email.eq(email)).filter(teachers::opt_out_reason.eq(reason)))
            .set((teachers::contact_opt_out.eq(false), teachers::opt_out_reason.eq(None::<OptOutReason>), teachers::updated_at.eq(now)))
            .execute(conn)?;
        Ok(students + guardians + teachers)
    })
    .context("cannot resume mail to the address")
}
