//! Queries on `users`.

use anyhow::Context;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use serde::Serialize;

use super::schema::users;
use super::types::{Id, OptOutReason, Timestamp};
use super::{Db, with_conn};
use crate::error::invalid;

#[derive(Debug, Clone, Queryable, Selectable, Insertable, Serialize)]
// None means NULL, not DEFAULT: required by COPY, and the same thing for these columns.
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg, diesel::sqlite::Sqlite))]
#[diesel(treat_none_as_default_value = false)]
pub struct User {
    pub id: Id,
    pub email: String,
    pub name: Option<String>,
    pub timezone: Option<String>,
    pub contact_opt_out: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// `bounced` when `send` opted the address out after repeated rejections.
    pub opt_out_reason: Option<OptOutReason>,
    /// Their language (BCP 47); `None`, English.
    pub locale: Option<String>,
}

impl User {
    /// A new student who may be mailed; a blank name is no name.
    pub fn new(email: &str, name: Option<String>, timezone: &str, now: Timestamp) -> User {
        User {
            id: Id::new(),
            email: email.to_string(),
            name: name.map(|name| name.trim().to_string()).filter(|name| !name.is_empty()),
            timezone: Some(timezone.to_string()),
            contact_opt_out: false,
            created_at: now,
            updated_at: now,
            opt_out_reason: None,
            locale: None,
        }
    }
}

/// Stores a new user; a duplicate email is bad input.
pub fn insert_user(db: &mut Db, user: &User) -> anyhow::Result<()> {
    let inserted = with_conn!(db, conn => diesel::insert_into(users::table).values(user).execute(conn));
    match inserted {
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
            Err(invalid(format!("a user with email `{}` already exists", user.email)))
        }
        other => other.map(drop).context("cannot add the user"),
    }
}

pub fn list_users(db: &mut Db) -> anyhow::Result<Vec<User>> {
    with_conn!(db, conn => users::table.order(users::email).select(User::as_select()).load(conn))
        .context("cannot list users")
}

pub fn find_user_by_email(db: &mut Db, email: &str) -> anyhow::Result<Option<User>> {
    with_conn!(db, conn => users::table
        .filter(users::email.eq(email))
        .select(User::as_select())
        .first(conn)
        .optional())
    .context("cannot look up the user")
}

/// Finds a user or reports the email as bad input.
pub fn require_user_by_email(db: &mut Db, email: &str) -> anyhow::Result<User> {
    find_user_by_email(db, email)?.ok_or_else(|| invalid(format!("no user has the email `{email}`")))
}

/// Sets `contact_opt_out` and returns the updated user.
pub fn set_contact_opt_out(db: &mut Db, email: &str, opt_out: bool, now: Timestamp) -> anyhow::Result<User> {
    let updated = with_conn!(db, conn => diesel::update(users::table.filter(users::email.eq(email)))
        .set((
            users::contact_opt_out.eq(opt_out),
            users::opt_out_reason.eq(None::<OptOutReason>),
            users::updated_at.eq(now),
        ))
        .execute(conn))
    .context("cannot update the user")?;
    if updated == 0 {
        return Err(invalid(format!("no user has the email `{email}`")));
    }
    require_user_by_email(db, email)
}

/// Which of these emails are taken already.
pub fn existing_emails(db: &mut Db, emails: &[String]) -> anyhow::Result<Vec<String>> {
    with_conn!(db, conn => users::table.filter(users::email.eq_any(emails)).select(users::email).load(conn))
        .context("cannot look up existing users")
}

/// The id and zone of each of these students that exists.
pub fn students_by_email(db: &mut Db, emails: &[String]) -> anyhow::Result<Vec<(String, Id, Option<String>)>> {
    // Given a list of a thousand, PostgreSQL scans the whole table, where a
    // few index lookups of 250 each cost far less (BENCHMARKS.md).
    let mut found = Vec::with_capacity(emails.len());
    for chunk in emails.chunks(250) {
        found.extend(
            with_conn!(db, conn => users::table
                .filter(users::email.eq_any(chunk))
                .select((users::email, users::id, users::timezone))
                .load::<(String, Id, Option<String>)>(conn))
            .context("cannot look up students")?,
        );
    }
    Ok(found)
}

/// Inserts many users at once: COPY on PostgreSQL, a multi-row INSERT on SQLite.
pub fn insert_users(db: &mut Db, rows: &[User]) -> anyhow::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    match db {
        Db::Postgres(conn) => diesel::copy_from(users::table).from_insertable(rows).execute(conn),
        Db::Sqlite(conn) => diesel::insert_into(users::table).values(rows).execute(conn),
    }
    .context("cannot insert users")?;
    Ok(())
}

/// The addresses opted out for one reason, by email.
pub fn opted_out_for(db: &mut Db, reason: OptOutReason) -> anyhow::Result<Vec<String>> {
    with_conn!(db, conn => users::table
        .filter(users::contact_opt_out.eq(true))
        .filter(users::opt_out_reason.eq(reason))
        .select(users::email)
        .order(users::email)
        .load(conn))
    .context("cannot list opted-out students")
}

/// The email of the user with this id, if there is one.
pub fn email_of(db: &mut Db, id: Id) -> anyhow::Result<Option<String>> {
    with_conn!(db, conn => users::table.find(id).select(users::email).first(conn).optional())
        .context("cannot look up the student")
}

/// The emails of these students, by id.
pub fn emails_of(db: &mut Db, ids: &[Id]) -> anyhow::Result<Vec<(Id, String)>> {
    let mut found = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(1_000) {
        found.extend(
            with_conn!(db, conn => users::table
            .filter(users::id.eq_any(chunk))
            .select((users::id, users::email))
            .load::<(Id, String)>(conn))
            .context("cannot look up the students")?,
        );
    }
    Ok(found)
}

/// Opts a student out for a reason (an unsubscribe request), and returns them.
pub fn opt_out_for(db: &mut Db, email: &str, reason: OptOutReason, now: Timestamp) -> anyhow::Result<User> {
    with_conn!(db, conn => diesel::update(users::table.filter(users::email.eq(email)))
        .set((
            users::contact_opt_out.eq(true),
            users::opt_out_reason.eq(reason),
            users::updated_at.eq(now),
        ))
        .execute(conn))
    .context("cannot update the user")?;
    require_user_by_email(db, email)
}

/// Each language set on a student, guardian or teacher, with how many have it.
pub fn locales_in_use(db: &mut Db) -> anyhow::Result<Vec<(String, i64)>> {
    use super::schema::{guardians, teachers};
    use diesel::dsl::count_star;
    let mut found: std::collections::BTreeMap<String, i64> = std::collections::BTreeMap::new();
    let rows: Vec<(Option<String>, i64)> = with_conn!(db, conn => {
        let mut rows: Vec<(Option<String>, i64)> = users::table
            .filter(users::locale.is_not_null())
            .group_by(users::locale)
            .select((users::locale, count_star()))
            .load(conn)?;
        rows.extend(guardians::table
            .filter(guardians::locale.is_not_null())
            .group_by(guardians::locale)
            .select((guardians::locale, count_star()))
            .load::<(Option<String>, i64)>(conn)?);
        rows.extend(teachers::table
            .filter(teachers::locale.is_not_null())
            .group_by(teachers::locale)
            .select((teachers::locale, count_star()))
            .load::<(Option<String>, i64)>(conn)?);
        Ok::<_, diesel::result::Error>(rows)
    })
    .context("cannot read the languages in use")?;
    for (locale, people) in rows {
        *found.entry(locale.unwrap_or_default()).or_default() += people;
    }
    Ok(found.into_iter().collect())
}

/// Sets a student's language; returns it.
pub fn set_locale(db: &mut Db, id: Id, locale: Option<String>, now: Timestamp) -> anyhow::Result<Option<String>> {
    with_conn!(db, conn => diesel::update(users::table.find(id))
        .set((users::locale.eq(&locale), users::updated_at.eq(now)))
        .execute(conn))
    .context("cannot set the student's language")?;
    Ok(locale)
}

/// Whether there is any student: one index probe, where a count would read
/// every row on each cron run.
pub fn any(db: &mut Db) -> anyhow::Result<bool> {
    with_conn!(db, conn => diesel::select(diesel::dsl::exists(users::table.select(users::id))).get_result(conn))
        .context("cannot look for students")
}

/// What `user edit` changes; `None` leaves a column as it is.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = users)]
pub struct UserChanges {
    pub email: Option<String>,
    pub name: Option<Option<String>>,
    pub timezone: Option<String>,
    pub updated_at: Option<Timestamp>,
}

/// Changes a user found by email; an unknown email, or a new email another
/// user has, is bad input.
pub fn update_user(db: &mut Db, email: &str, changes: &UserChanges) -> anyhow::Result<User> {
    let current = require_user_by_email(db, email)?;
    let updated = with_conn!(db, conn => diesel::update(users::table.find(current.id))
        .set(changes)
        .returning(User::as_returning())
        .get_result(conn));
    match updated {
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Err(invalid(format!(
            "a user with email `{}` already exists",
            changes.email.as_deref().unwrap_or_default()
        ))),
        other => other.context("cannot change the user"),
    }
}

/// Removes a user with their assignments, reminders, summaries and
/// preferences; their send logs stay, unlinked. An unknown email is bad input.
pub fn remove_user(db: &mut Db, email: &str) -> anyhow::Result<User> {
    let user = require_user_by_email(db, email)?;
    with_conn!(db, conn => diesel::delete(users::table.find(user.id)).execute(conn))
        .context("cannot remove the user")?;
    Ok(user)
}

/// What `user forget` took away.
#[derive(Debug, Default, Serialize)]
pub struct Forgotten {
    pub email: String,
    /// Every address erased: the current one, then the former ones.
    pub addresses: Vec<String>,
    pub assignments: i64,
    pub reminders: i64,
    pub daily_summaries: i64,
    /// Send logs kept, their address replaced by `stand_in` (theirs and
    /// those of the guardians forgotten with them).
    pub send_logs: usize,
    /// Bounce reports kept without the address (theirs and those of the
    /// guardians forgotten with them).
    pub bounce_reports: usize,
    /// What stands for the addresses erased in the send logs kept.
    pub stand_in: String,
    /// Where raw reports about them stay, out of this tool's reach, sorted.
    pub files_left: Vec<String>,
    /// How many guardians followed them.
    pub guardian_links: i64,
    /// The guardians erased with them, who followed no one else, by email.
    pub guardians_forgotten: Vec<String>,
    /// The Message-IDs of what was sent to them, which name their outbox files.
    #[serde(skip)]
    pub message_ids: Vec<String>,
}

/// Erasure on request, in one transaction: removes the user and everything
/// that names them (assignments, reminders, summaries, preferences, former
/// addresses, by the cascading foreign keys), and takes every address they
/// had out of what is kept for the counts: each send log's `to_email`
/// becomes `stand_in`, a random token that links back to nobody, and the
/// addresses are cut from SMTP replies quoted in send logs and bounce
/// reports. A report's raw file is named in `files_left`, then forgotten.
/// Their links to guardians go too, and, unless `keep_guardians`, each
/// guardian who then follows no one, with their address erased the same
/// way: a guardian is known through the student.
pub fn forget_user(db: &mut Db, email: &str, keep_guardians: bool) -> anyhow::Result<Forgotten> {
    use super::erasure::{self, Held, Theirs};
    use super::schema::{assignments, daily_summaries, former_emails, guardian_students, guardians, reminders};
    let user = require_user_by_email(db, email)?;
    let stand_in = erasure::stand_in();
    let forgotten = db
        .in_write_transaction(|db| {
            let (held, reminder_ids, summary_ids, their_guardians, alone) = with_conn!(db, conn => {
                let former: Vec<(String, Timestamp)> = former_emails::table
                    .filter(former_emails::user_id.eq(user.id))
                    .filter(former_emails::email.ne(&user.email))
                    .order(former_emails::email)
                    .select((former_emails::email, former_emails::replaced_at))
                    .load(conn)?;
                let mut held = vec![Held::always(&user.email)];
                for (address, replaced_at) in former {
                    let taken: i64 = users::table.filter(users::email.eq(&address)).count().get_result(conn)?;
                    held.push(Held { address, until: (taken > 0).then_some(replaced_at) });
                }
                let of_user = assignments::table.filter(assignments::student_id.eq(user.id));
                let reminder_ids: Vec<Id> = reminders::table
                    .filter(reminders::assignment_id.eq_any(of_user.select(assignments::id)))
                    .select(reminders::id)
                    .load(conn)?;
                let summary_ids: Vec<Id> = daily_summaries::table
                    .filter(daily_summaries::user_id.eq(user.id))
                    .select(daily_summaries::id)
                    .load(conn)?;
                let their_guardians: Vec<Id> = guardian_students::table
                    .filter(guardian_students::student_id.eq(user.id))
                    .select(guardian_students::guardian_id)
                    .load(conn)?;
                // The guardians who follow this student and no one else.
                let alone: Vec<(Id, String)> = if keep_guardians {
                    Vec::new()
                } else {
                    guardians::table
                        .filter(guardians::id.eq_any(&their_guardians))
                        .filter(diesel::dsl::not(diesel::dsl::exists(
                            guardian_students::table
                                .filter(guardian_students::guardian_id.eq(guardians::id))
                                .filter(guardian_students::student_id.ne(user.id)),
                        )))
                        .select((guardians::id, guardians::email))
                        .order(guardians::email)
                        .load(conn)?
                };
                Ok::<_, diesel::result::Error>((held, reminder_ids, summary_ids, their_guardians, alone))
            })?;
            let assignment_count: i64 = with_conn!(db, conn => assignments::table
                .filter(assignments::student_id.eq(user.id))
                .count()
                .get_result(conn))?;
            let theirs = Theirs {
                reminders: &reminder_ids,
                summaries: &summary_ids,
                contact_messages: &[],
            };
            let mut scrubbed = erasure::scrub_address(db, &held, &theirs, &stand_in)?;
            // A guardian erased with the student leaves no address behind either.
            for (guardian, address) in &alone {
                scrubbed.add(super::guardians::scrub_traces(db, *guardian, address, &stand_in)?);
            }
            let mut files_left = scrubbed.files_left;
            files_left.sort();
            files_left.dedup();
            let guardians_forgotten: Vec<String> = alone.into_iter().map(|(_, email)| email).collect();
            with_conn!(db, conn => {
                diesel::delete(users::table.find(user.id)).execute(conn)?;
                diesel::delete(guardians::table.filter(guardians::email.eq_any(&guardians_forgotten))).execute(conn)
            })?;
            Ok(Forgotten {
                email: user.email.clone(),
                addresses: held.iter().map(|held| held.address.clone()).collect(),
                assignments: assignment_count,
                reminders: reminder_ids.len() as i64,
                daily_summaries: summary_ids.len() as i64,
                send_logs: scrubbed.send_logs,
                bounce_reports: scrubbed.bounce_reports,
                stand_in: stand_in.clone(),
                files_left,
                guardian_links: their_guardians.len() as i64,
                guardians_forgotten,
                message_ids: scrubbed.message_ids,
            })
        })
        .context("cannot forget the user")?;
    Ok(forgotten)
}
