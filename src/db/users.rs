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
    with_conn!(db, conn => users::table
        .filter(users::email.eq_any(emails))
        .select((users::email, users::id, users::timezone))
        .load(conn))
    .context("cannot look up students")
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

/// How many students there are.
pub fn count(db: &mut Db) -> anyhow::Result<i64> {
    with_conn!(db, conn => users::table.count().get_result(conn)).context("cannot count the students")
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
