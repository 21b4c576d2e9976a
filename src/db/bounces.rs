//! Queries for `reminders bounces`: which message a report is about, and
//! recording each report once with what it changes.

use anyhow::Context;
use diesel::dsl::count_star;
use diesel::prelude::*;

use super::contacts::opt_out_address;
use super::queue::NewSendLog;
use super::schema::{bounce_reports, send_logs, users};
use super::types::{Id, OptOutReason, ReportKind, Timestamp};
use super::{Db, with_conn, write_transaction};
use crate::mail::token::{MessageKind, MessageRef};

/// A report as `bounce_reports` keeps it.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = bounce_reports)]
pub struct NewReport {
    pub id: Id,
    /// The report's own Message-ID, or a hash of its content.
    pub report_key: String,
    pub kind: ReportKind,
    pub verified: bool,
    pub reason: Option<String>,
    pub to_email: Option<String>,
    pub reminder_id: Option<Id>,
    pub summary_id: Option<Id>,
    pub contact_message_id: Option<Id>,
    pub created_at: Timestamp,
    /// Where the raw report stays, for `user forget` to name: a Maildir
    /// file, `MBOX:N`, a file; `None` for stdin.
    pub source_file: Option<String>,
}

/// What a verified report changes, written with its record.
#[derive(Debug, Clone)]
pub enum Effect {
    /// A send log for the message it is about (`bounced`, or `failed`).
    Log(NewSendLog),
    /// The student stops getting mail, for this reason.
    OptOut { email: String, reason: OptOutReason },
}

/// How recording a report went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// Recorded now; the emails it opted out (that were not already).
    New { opted_out: Vec<String> },
    /// This report (its key) was recorded before, by this or another run:
    /// nothing was changed again.
    Before,
}

/// A message we sent, as its send log has it.
#[derive(Debug, Clone)]
pub struct SentMessage {
    pub to_email: String,
    pub from_inbox: String,
    pub assignment_id: Option<Id>,
    pub message_id: Option<String>,
}

/// The latest send log of a message that a server accepted or refused:
/// whom that message went to.
pub fn sent_message(db: &mut Db, message: MessageRef) -> anyhow::Result<Option<SentMessage>> {
    let id = Id(message.id);
    with_conn!(db, conn => {
        let query = send_logs::table
            .select((send_logs::to_email, send_logs::from_inbox, send_logs::assignment_id, send_logs::message_id))
            .order((send_logs::created_at.desc(), send_logs::id.desc()))
            .into_boxed();
        let query = match message.kind {
            MessageKind::Reminder => query.filter(send_logs::reminder_id.eq(id)),
            MessageKind::Summary => query.filter(send_logs::summary_id.eq(id)),
            MessageKind::Contact => query.filter(send_logs::contact_message_id.eq(id)),
        };
        query.first::<(String, String, Option<Id>, Option<String>)>(conn).optional()
    })
    .map(|found| {
        found.map(|(to_email, from_inbox, assignment_id, message_id)| SentMessage {
            to_email,
            from_inbox,
            assignment_id,
            message_id,
        })
    })
    .context("cannot look up the message a report is about")
}

/// Whether an address is one of our students', guardians' or teachers'.
pub fn is_known_address(db: &mut Db, email: &str) -> anyhow::Result<bool> {
    use super::schema::{guardians, teachers};
    use diesel::dsl::exists;
    let email = email.to_lowercase();
    with_conn!(db, conn => diesel::select(
        exists(users::table.filter(users::email.eq(&email)))
            .or(exists(guardians::table.filter(guardians::email.eq(&email))))
            .or(exists(teachers::table.filter(teachers::email.eq(&email)))),
    )
    .get_result(conn))
    .context("cannot look up the address")
}

/// Records a report and its effects in one transaction, once: a report whose
/// key is recorded already changes nothing (overlapping runs, or the same
/// report read twice).
pub fn record_report(db: &mut Db, report: &NewReport, effects: &[Effect], now: Timestamp) -> anyhow::Result<Recorded> {
    write_transaction!(db, conn => {
        let inserted = diesel::insert_into(bounce_reports::table)
            .values(report)
            .on_conflict(bounce_reports::report_key)
            .do_nothing()
            .execute(conn)?;
        if inserted == 0 {
            return Ok(Recorded::Before);
        }
        let mut opted_out = Vec::new();
        for effect in effects {
            match effect {
                Effect::Log(log) => {
                    diesel::insert_into(send_logs::table).values(log).execute(conn)?;
                }
                Effect::OptOut { email, reason } => {
                    if opt_out_address!(conn, email, Some(*reason), now) > 0 {
                        opted_out.push(email.clone());
                    }
                }
            }
        }
        Ok(Recorded::New { opted_out })
    })
    .context("cannot record the report")
}

/// Reports of each kind since `since`, verified or not: (kind, verified, count).
pub fn counts_since(db: &mut Db, since: Timestamp) -> anyhow::Result<Vec<(ReportKind, bool, i64)>> {
    with_conn!(db, conn => bounce_reports::table
        .filter(bounce_reports::created_at.ge(since))
        .group_by((bounce_reports::kind, bounce_reports::verified))
        .select((bounce_reports::kind, bounce_reports::verified, count_star()))
        .load(conn))
    .context("cannot count bounce reports")
}

/// The reason of the latest verified report of `kind` since `since`, if any.
pub fn latest_reason(db: &mut Db, kind: ReportKind, since: Timestamp) -> anyhow::Result<Option<String>> {
    let found: Option<Option<String>> = with_conn!(db, conn => bounce_reports::table
        .filter(bounce_reports::kind.eq(kind))
        .filter(bounce_reports::verified)
        .filter(bounce_reports::created_at.ge(since))
        .order(bounce_reports::created_at.desc())
        .select(bounce_reports::reason)
        .first(conn)
        .optional())
    .context("cannot read the latest bounce report")?;
    Ok(found.flatten())
}
