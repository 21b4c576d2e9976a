//! Taking a person's address out of what is kept after they are forgotten:
//! the send logs and bounce reports stay for the counts, without the
//! address. `user forget`, `guardian forget` and `teacher forget` all do it
//! here, before they delete the person's rows.

use diesel::prelude::*;

use super::schema::{bounce_reports, send_logs};
use super::types::{Id, Timestamp};
use super::{Db, with_conn};

/// An address of the person's, and until when it was theirs: a former
/// address someone else has now was theirs only until they gave it up.
#[derive(Debug, Clone)]
pub struct Held {
    pub address: String,
    pub until: Option<Timestamp>,
}

impl Held {
    /// An address that is theirs alone, now and before.
    pub fn always(address: &str) -> Held {
        Held {
            address: address.to_string(),
            until: None,
        }
    }

    /// A role's address that another role (a student, a guardian, a
    /// teacher) still has: only what was sent to this role is theirs.
    pub fn shared(address: &str) -> Held {
        Held {
            address: address.to_string(),
            until: Some(Timestamp::new(chrono::DateTime::<chrono::Utc>::MIN_UTC)),
        }
    }

    fn covers(&self, at: Timestamp) -> bool {
        self.until.is_none_or(|until| at <= until)
    }
}

/// The person's own queue rows: a bounce report about one of them is about
/// the person whatever address it names, as is a send log of one of their
/// contact messages.
#[derive(Debug, Default)]
pub struct Theirs<'a> {
    pub reminders: &'a [Id],
    pub summaries: &'a [Id],
    pub contact_messages: &'a [Id],
}

/// What [`scrub_address`] changed.
#[derive(Debug, Default)]
pub struct Scrubbed {
    /// Send logs kept, their address replaced by the stand-in.
    pub send_logs: usize,
    /// Bounce reports kept without the address.
    pub bounce_reports: usize,
    /// Raw report files that name them, out of this tool's reach.
    pub files_left: Vec<String>,
    /// The Message-IDs of what was sent to them, which name their outbox files.
    pub message_ids: Vec<String>,
}

impl Scrubbed {
    /// Both erasures' changes, as one.
    pub fn add(&mut self, other: Scrubbed) {
        self.send_logs += other.send_logs;
        self.bounce_reports += other.bounce_reports;
        self.files_left.extend(other.files_left);
        self.message_ids.extend(other.message_ids);
    }
}

/// A send log as erasure reads it: id, to_email, error, message_id,
/// contact_message_id, created_at.
type LogRow = (Id, String, Option<String>, Option<String>, Option<Id>, Timestamp);
/// A bounce report as erasure reads it: id, to_email, reason, reminder_id,
/// summary_id, contact_message_id, created_at, source_file.
type ReportRow = (
    Id,
    Option<String>,
    Option<String>,
    Option<Id>,
    Option<Id>,
    Option<Id>,
    Timestamp,
    Option<String>,
);

/// Takes every address in `held` out of the send logs and bounce reports:
/// each send log to them gets `stand_in` for its `to_email`, the addresses
/// are cut from SMTP replies quoted in send logs and bounce reports, and a
/// report about them loses its `to_email` and its raw file's name (returned
/// in `files_left`, unsorted). Call it inside the erasure's transaction,
/// before the person's rows go (their ids in `theirs` name what is theirs).
pub fn scrub_address(db: &mut Db, held: &[Held], theirs: &Theirs, stand_in: &str) -> anyhow::Result<Scrubbed> {
    let addresses: Vec<String> = held.iter().map(|held| held.address.clone()).collect();
    let patterns: Vec<String> = addresses.iter().map(|address| format!("%{address}%")).collect();
    let scrub = |text: String| {
        addresses.iter().fold(text, |text, address| {
            replace_ignoring_case(&text, address, "[forgotten]")
        })
    };
    // Quoted in a reply at `at`: theirs if the address was theirs then.
    let quotes = |text: &Option<String>, at: Timestamp| {
        text.as_deref().is_some_and(|text| {
            let text = text.to_lowercase();
            held.iter().any(|held| held.covers(at) && text.contains(&held.address))
        })
    };
    let sent_to = |to: Option<&str>, at: Timestamp| {
        held.iter()
            .any(|held| held.covers(at) && to == Some(held.address.as_str()))
    };
    let of_theirs =
        |contact_message: Option<Id>| contact_message.is_some_and(|id| theirs.contact_messages.contains(&id));
    let mut scrubbed = Scrubbed::default();
    with_conn!(db, conn => {
        let mut logs = send_logs::table
            .filter(send_logs::to_email.eq_any(&addresses))
            .or_filter(send_logs::contact_message_id.eq_any(theirs.contact_messages.iter().copied().map(Some)))
            .into_boxed();
        for pattern in &patterns {
            logs = logs.or_filter(lower(send_logs::error).like(pattern));
        }
        let logs: Vec<LogRow> = logs
            .select((
                send_logs::id,
                send_logs::to_email,
                send_logs::error,
                send_logs::message_id,
                send_logs::contact_message_id,
                send_logs::created_at,
            ))
            .load(conn)?;
        for (id, to_email, error, message_id, contact_message, at) in logs {
            let to_them = sent_to(Some(&to_email), at) || of_theirs(contact_message);
            if !to_them && !quotes(&error, at) {
                continue;
            }
            scrubbed.send_logs += 1;
            if to_them {
                scrubbed.message_ids.extend(message_id);
            }
            diesel::update(send_logs::table.find(id))
                .set((
                    send_logs::to_email.eq(if to_them { stand_in.to_string() } else { to_email }),
                    send_logs::error.eq(error.map(scrub)),
                ))
                .execute(conn)?;
        }

        let mut reports = bounce_reports::table
            .filter(bounce_reports::to_email.eq_any(&addresses))
            .or_filter(bounce_reports::reminder_id.eq_any(theirs.reminders.iter().copied().map(Some)))
            .or_filter(bounce_reports::summary_id.eq_any(theirs.summaries.iter().copied().map(Some)))
            .or_filter(bounce_reports::contact_message_id.eq_any(theirs.contact_messages.iter().copied().map(Some)))
            .into_boxed();
        for pattern in &patterns {
            reports = reports.or_filter(lower(bounce_reports::reason).like(pattern));
        }
        let reports: Vec<ReportRow> = reports
            .select((
                bounce_reports::id,
                bounce_reports::to_email,
                bounce_reports::reason,
                bounce_reports::reminder_id,
                bounce_reports::summary_id,
                bounce_reports::contact_message_id,
                bounce_reports::created_at,
                bounce_reports::source_file,
            ))
            .load(conn)?;
        for (id, to_email, reason, reminder_id, summary_id, contact_message, at, source_file) in reports {
            let linked = reminder_id.is_some_and(|id| theirs.reminders.contains(&id))
                || summary_id.is_some_and(|id| theirs.summaries.contains(&id))
                || of_theirs(contact_message);
            if !linked && !sent_to(to_email.as_deref(), at) && !quotes(&reason, at) {
                continue;
            }
            scrubbed.bounce_reports += 1;
            scrubbed.files_left.extend(source_file);
            diesel::update(bounce_reports::table.find(id))
                .set((
                    bounce_reports::to_email.eq(None::<String>),
                    bounce_reports::reason.eq(reason.map(scrub)),
                    bounce_reports::source_file.eq(None::<String>),
                ))
                .execute(conn)?;
        }
        Ok::<_, diesel::result::Error>(())
    })?;
    Ok(scrubbed)
}

/// The address of a guardian or teacher being forgotten, as erasure holds
/// it: theirs alone, unless another role still has it (an address is one
/// person's, but the school may know them as a parent and as a teacher),
/// and then only in what was sent to this role.
pub fn contact_address(db: &mut Db, address: &str) -> anyhow::Result<Held> {
    use super::schema::{guardians, teachers, users};
    let holders: i64 = with_conn!(db, conn => {
        let students: i64 = users::table.filter(users::email.eq(address)).count().get_result(conn)?;
        let guardians: i64 = guardians::table.filter(guardians::email.eq(address)).count().get_result(conn)?;
        let teachers: i64 = teachers::table.filter(teachers::email.eq(address)).count().get_result(conn)?;
        Ok::<_, diesel::result::Error>(students + guardians + teachers)
    })?;
    // The one being forgotten is still here, and counts once.
    Ok(if holders > 1 {
        Held::shared(address)
    } else {
        Held::always(address)
    })
}

/// A new stand-in for an erased address: a random token that links back to
/// nobody.
pub fn stand_in() -> String {
    format!("forgotten-{}", uuid::Uuid::new_v4().simple())
}

diesel::define_sql_function!(fn lower(text: diesel::sql_types::Nullable<diesel::sql_types::Text>) -> diesel::sql_types::Nullable<diesel::sql_types::Text>);

/// `text` with every `needle` (in any case) replaced.
fn replace_ignoring_case(text: &str, needle: &str, with: &str) -> String {
    let (lower, needle) = (text.to_lowercase(), needle.to_lowercase());
    // Lower-casing can change lengths outside ASCII; then match exactly.
    if lower.len() != text.len() {
        return text.replace(&needle, with);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    for (at, _) in lower.match_indices(&needle) {
        out.push_str(&text[rest..at]);
        out.push_str(with);
        rest = at + needle.len();
    }
    out.push_str(&text[rest..]);
    out
}

/// What `guardian forget` or `teacher forget` took away.
#[derive(Debug)]
pub struct Erased {
    /// How many students they followed, or courses they taught.
    pub links: i64,
    /// What stands for their address in the send logs kept.
    pub stand_in: String,
    pub scrubbed: Scrubbed,
}
