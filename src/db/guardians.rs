//! Queries on `guardians` and `guardian_students`: the adults who follow
//! students, and whom each of them follows.

use anyhow::Context;
use diesel::prelude::*;
use serde::Serialize;

use super::erasure::{self, Erased, Scrubbed, Theirs};
use super::schema::{contact_messages, guardian_students, guardians, users};
use super::types::{DigestFrequency, Id, OptOutReason, Timestamp};
use super::{Db, with_conn};
use crate::error::invalid;

/// A new guardian's preferences when none are given (the columns' defaults).
pub const DEFAULT_FREQUENCY: DigestFrequency = DigestFrequency::Daily;
/// Monday, as ISO numbers the days (Monday 1 to Sunday 7).
pub const DEFAULT_WEEKDAY: i32 = 1;
pub const DEFAULT_HOUR: i32 = 18;

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = guardians, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
#[diesel(treat_none_as_default_value = false)]
pub struct Guardian {
    pub id: Id,
    pub email: String,
    pub name: Option<String>,
    pub timezone: String,
    pub frequency: DigestFrequency,
    /// ISO: Monday 1 to Sunday 7.
    pub weekday: i32,
    /// The local hour, 0 to 23.
    pub hour: i32,
    pub contact_opt_out: bool,
    pub opt_out_reason: Option<OptOutReason>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Their language (BCP 47); `None`, English.
    pub locale: Option<String>,
    /// Their own send window (`schedule::window::SendWindow`); `None`, the run's.
    pub send_window: Option<String>,
}

/// What `guardian add` or an import row sets; `None` leaves a guardian's
/// value as it is, or gives a new guardian the default.
#[derive(Debug, Default, Clone)]
pub struct GuardianFields {
    /// `Some(None)` removes the name.
    pub name: Option<Option<String>>,
    pub timezone: Option<String>,
    pub frequency: Option<DigestFrequency>,
    pub weekday: Option<i32>,
    pub hour: Option<i32>,
    /// `Some(None)` removes the language.
    pub locale: Option<Option<String>>,
    /// `Some(None)` removes their own send window.
    pub send_window: Option<Option<String>>,
}

impl GuardianFields {
    /// `guardian` with these fields set.
    fn applied_to(&self, guardian: &Guardian) -> Guardian {
        Guardian {
            name: self.name.clone().unwrap_or_else(|| guardian.name.clone()),
            timezone: self.timezone.clone().unwrap_or_else(|| guardian.timezone.clone()),
            frequency: self.frequency.unwrap_or(guardian.frequency),
            weekday: self.weekday.unwrap_or(guardian.weekday),
            hour: self.hour.unwrap_or(guardian.hour),
            locale: self.locale.clone().unwrap_or_else(|| guardian.locale.clone()),
            send_window: self.send_window.clone().unwrap_or_else(|| guardian.send_window.clone()),
            ..guardian.clone()
        }
    }
}

/// A guardian with the emails of the students they follow, sorted.
#[derive(Debug, Clone, Serialize)]
pub struct Following {
    #[serde(flatten)]
    pub guardian: Guardian,
    pub students: Vec<String>,
}

/// What [`follow`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Followed {
    /// The guardian is new, and now follows the student.
    NewGuardian,
    /// A guardian already here now follows the student too (and the fields
    /// given were set).
    NewLink,
    /// The guardian followed the student already; a field given changed.
    Updated,
    /// The guardian followed the student already, with these very fields.
    Unchanged,
}

pub fn find_by_email(db: &mut Db, email: &str) -> anyhow::Result<Option<Guardian>> {
    with_conn!(db, conn => guardians::table
        .filter(guardians::email.eq(email))
        .select(Guardian::as_select())
        .first(conn)
        .optional())
    .context("cannot look up the guardian")
}

/// Finds a guardian or reports the email as bad input.
pub fn require_by_email(db: &mut Db, email: &str) -> anyhow::Result<Guardian> {
    find_by_email(db, email)?.ok_or_else(|| invalid(format!("no guardian has the email `{email}`")))
}

/// Makes `email` a guardian of `student`: a new guardian gets `fields` and
/// the defaults (`default_zone` for the time zone), a guardian already here
/// gets the fields given. Reads, then writes: call it inside
/// [`Db::in_write_transaction`], so that no other writer comes in between.
pub fn follow(
    db: &mut Db,
    student: Id,
    email: &str,
    fields: &GuardianFields,
    default_zone: &str,
    now: Timestamp,
) -> anyhow::Result<(Guardian, Followed)> {
    let (guardian, mut followed) = match find_by_email(db, email)? {
        None => {
            let fresh = fields.applied_to(&Guardian {
                id: Id::new(),
                email: email.to_string(),
                name: None,
                timezone: default_zone.to_string(),
                frequency: DEFAULT_FREQUENCY,
                weekday: DEFAULT_WEEKDAY,
                hour: DEFAULT_HOUR,
                contact_opt_out: false,
                opt_out_reason: None,
                created_at: now,
                updated_at: now,
                locale: None,
                send_window: None,
            });
            with_conn!(db, conn => diesel::insert_into(guardians::table).values(&fresh).execute(conn))
                .context("cannot add the guardian")?;
            (fresh, Followed::NewGuardian)
        }
        Some(stored) => {
            let wanted = fields.applied_to(&stored);
            if wanted == stored {
                (stored, Followed::Unchanged)
            } else {
                (update(db, &wanted, now)?, Followed::Updated)
            }
        }
    };
    let linked = with_conn!(db, conn => diesel::insert_into(guardian_students::table)
        .values((guardian_students::guardian_id.eq(guardian.id), guardian_students::student_id.eq(student)))
        .on_conflict_do_nothing()
        .execute(conn))
    .context("cannot link the guardian to the student")?;
    if linked == 1 && followed != Followed::NewGuardian {
        followed = Followed::NewLink;
    }
    Ok((guardian, followed))
}

/// Sets a guardian's own preferences (the preferences page); returns them.
pub fn set_preferences(db: &mut Db, id: Id, fields: &GuardianFields, now: Timestamp) -> anyhow::Result<Guardian> {
    let stored = with_conn!(db, conn => guardians::table.find(id).select(Guardian::as_select()).first(conn))
        .context("cannot read the guardian")?;
    update(db, &fields.applied_to(&stored), now)
}

/// Writes every field a guardian's own settings cover, as `wanted` has them.
fn update(db: &mut Db, wanted: &Guardian, now: Timestamp) -> anyhow::Result<Guardian> {
    with_conn!(db, conn => diesel::update(guardians::table.find(wanted.id))
        .set((
            guardians::name.eq(&wanted.name),
            guardians::timezone.eq(&wanted.timezone),
            guardians::frequency.eq(wanted.frequency),
            guardians::weekday.eq(wanted.weekday),
            guardians::hour.eq(wanted.hour),
            guardians::locale.eq(&wanted.locale),
            guardians::send_window.eq(&wanted.send_window),
            guardians::updated_at.eq(now),
        ))
        .returning(Guardian::as_returning())
        .get_result(conn))
    .context("cannot change the guardian")
}

/// Every guardian, or those who follow `student`, by email, each with all
/// the students they follow.
pub fn list(db: &mut Db, student: Option<Id>) -> anyhow::Result<Vec<Following>> {
    // A student has a few guardians: their ids make a short list.
    let followers: Option<Vec<Id>> = match student {
        Some(student) => Some(
            with_conn!(db, conn => guardian_students::table
                .filter(guardian_students::student_id.eq(student))
                .select(guardian_students::guardian_id)
                .load(conn))
            .context("cannot list the student's guardians")?,
        ),
        None => None,
    };
    let (found, links) = with_conn!(db, conn => {
        let mut chosen = guardians::table.select(Guardian::as_select()).order(guardians::email).into_boxed();
        let mut links = guardian_students::table
            .inner_join(users::table)
            .select((guardian_students::guardian_id, users::email))
            .order(users::email)
            .into_boxed();
        if let Some(followers) = &followers {
            chosen = chosen.filter(guardians::id.eq_any(followers));
            links = links.filter(guardian_students::guardian_id.eq_any(followers));
        }
        chosen
            .load::<Guardian>(conn)
            .and_then(|found| Ok((found, links.load::<(Id, String)>(conn)?)))
    })
    .context("cannot list guardians")?;
    let mut students: std::collections::HashMap<Id, Vec<String>> = std::collections::HashMap::new();
    for (guardian, email) in links {
        students.entry(guardian).or_default().push(email);
    }
    Ok(found
        .into_iter()
        .map(|guardian| Following {
            students: students.remove(&guardian.id).unwrap_or_default(),
            guardian,
        })
        .collect())
}

/// The guardian with the students they follow.
pub fn following(db: &mut Db, guardian: Guardian) -> anyhow::Result<Following> {
    let students = with_conn!(db, conn => guardian_students::table
        .inner_join(users::table)
        .filter(guardian_students::guardian_id.eq(guardian.id))
        .select(users::email)
        .order(users::email)
        .load::<String>(conn))
    .context("cannot list the guardian's students")?;
    Ok(Following { guardian, students })
}

/// Stops `guardian` following `student`; `false` when they did not.
pub fn unfollow(db: &mut Db, guardian: Id, student: Id) -> anyhow::Result<bool> {
    let removed =
        with_conn!(db, conn => diesel::delete(guardian_students::table.find((guardian, student))).execute(conn))
            .context("cannot unlink the guardian")?;
    Ok(removed == 1)
}

/// Erases a guardian with every link of theirs (the links and their
/// messages cascade), in one transaction, after taking their address out of
/// the send logs and bounce reports kept (see [`erasure::scrub_address`]).
pub fn forget(db: &mut Db, guardian: &Guardian) -> anyhow::Result<Erased> {
    let stand_in = erasure::stand_in();
    db.in_write_transaction(|db| {
        let links: i64 = with_conn!(db, conn => guardian_students::table
            .filter(guardian_students::guardian_id.eq(guardian.id))
            .count()
            .get_result(conn))?;
        let scrubbed = scrub_traces(db, guardian.id, &guardian.email, &stand_in)?;
        with_conn!(db, conn => diesel::delete(guardians::table.find(guardian.id)).execute(conn))?;
        Ok(Erased {
            links,
            stand_in: stand_in.clone(),
            scrubbed,
        })
    })
    .context("cannot forget the guardian")
}

/// Takes the guardian's address out of the send logs and bounce reports
/// kept, `stand_in` in its place (only from what was sent to them as a
/// guardian when another role still has the address); call it inside the
/// erasure's transaction, before the guardian goes.
pub fn scrub_traces(db: &mut Db, guardian: Id, email: &str, stand_in: &str) -> anyhow::Result<Scrubbed> {
    let messages: Vec<Id> = with_conn!(db, conn => contact_messages::table
        .filter(contact_messages::guardian_id.eq(Some(guardian)))
        .select(contact_messages::id)
        .load(conn))
    .context("cannot list the guardian's messages")?;
    let theirs = Theirs {
        contact_messages: &messages,
        ..Theirs::default()
    };
    let held = erasure::contact_address(db, email)?;
    erasure::scrub_address(db, &[held], &theirs, stand_in)
}

/// A student a guardian follows, as their digest names them.
#[derive(Debug, Clone, Queryable)]
pub struct FollowedStudent {
    pub id: Id,
    pub email: String,
    pub name: Option<String>,
}

/// The students `guardian` follows, by email.
pub fn followed_students(db: &mut Db, guardian: Id) -> anyhow::Result<Vec<FollowedStudent>> {
    with_conn!(db, conn => guardian_students::table
        .inner_join(users::table)
        .filter(guardian_students::guardian_id.eq(guardian))
        .select((users::id, users::email, users::name))
        .order(users::email)
        .load(conn))
    .context("cannot list the guardian's students")
}
