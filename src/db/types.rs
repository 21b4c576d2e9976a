//! Our uuid, timestamptz and json SQL types, which work on both backends.
//!
//! Diesel's own `Uuid`, `Timestamptz` and `Jsonb` exist only for PostgreSQL.
//! Each type here maps to the native PostgreSQL type (delegating to Diesel's
//! implementation) and to TEXT on SQLite, in a fixed format that round-trips
//! losslessly and whose text order is time order.

use std::fmt;

use chrono::{DateTime, SubsecRound, Utc};
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sqlite::{Sqlite, SqliteValue};
use serde::{Deserialize, Serialize};

pub mod sql {
    //! The SQL side of the types; `schema.rs` names these.
    use diesel::query_builder::QueryId;
    use diesel::sql_types::SqlType;

    #[derive(Debug, Clone, Copy, Default, SqlType, QueryId)]
    #[diesel(postgres_type(oid = 2950, array_oid = 2951))]
    #[diesel(sqlite_type(name = "Text"))]
    pub struct Uuid;

    #[derive(Debug, Clone, Copy, Default, SqlType, QueryId)]
    #[diesel(postgres_type(oid = 1184, array_oid = 1185))]
    #[diesel(sqlite_type(name = "Text"))]
    pub struct Timestamptz;

    #[derive(Debug, Clone, Copy, Default, SqlType, QueryId)]
    #[diesel(postgres_type(oid = 3802, array_oid = 3807))]
    #[diesel(sqlite_type(name = "Text"))]
    pub struct Jsonb;

    // `table!` gives every column named `Timestamptz` the `+`/`-` operators,
    // which need these. They mirror Diesel's own timestamptz.
    impl diesel::sql_types::ops::Add for Timestamptz {
        type Rhs = diesel::sql_types::Interval;
        type Output = Timestamptz;
    }

    // Instants order, so min() and max() apply to them.
    impl diesel::sql_types::SqlOrd for Timestamptz {}

    impl diesel::sql_types::ops::Sub for Timestamptz {
        type Rhs = diesel::sql_types::Interval;
        type Output = Timestamptz;
    }
}

/// The text form of a [`Timestamp`] on SQLite: fixed width, microseconds, UTC
/// (`2025-09-27T23:00:00.000001Z`), so text order is time order. chrono's
/// RFC 3339 writer, not a strftime pattern: it is 7% of a bulk import.
fn sqlite_text(instant: DateTime<Utc>) -> String {
    instant.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// A row id: a version 7 uuid, which starts with its creation time, so new
/// rows land at the end of the primary-key index instead of all over it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, AsExpression, FromSqlRow, Serialize, Deserialize,
)]
#[diesel(sql_type = sql::Uuid)]
#[serde(transparent)]
pub struct Id(pub uuid::Uuid);

impl Id {
    pub fn new() -> Self {
        Id(uuid::Uuid::now_v7())
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// A UTC instant at microsecond precision, the precision both backends keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, AsExpression, FromSqlRow, Deserialize)]
#[diesel(sql_type = sql::Timestamptz)]
#[serde(transparent)]
pub struct Timestamp(DateTime<Utc>);

/// In JSON output, as every time is: RFC 3339 UTC to the second.
impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&crate::time::utc(self.0))
    }
}

impl Timestamp {
    /// The run's clock reading, as stored.
    pub fn now(clock: &crate::time::Clock) -> Timestamp {
        Timestamp::new(clock.now())
    }

    pub fn new(instant: DateTime<Utc>) -> Self {
        Timestamp(instant.trunc_subsecs(6))
    }

    pub fn instant(self) -> DateTime<Utc> {
        self.0
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(instant: DateTime<Utc>) -> Self {
        Timestamp::new(instant)
    }
}

/// A JSON value (jsonb on PostgreSQL).
#[derive(Debug, Clone, PartialEq, AsExpression, FromSqlRow, Serialize, Deserialize)]
#[diesel(sql_type = sql::Jsonb)]
#[serde(transparent)]
pub struct Json(pub serde_json::Value);

impl ToSql<sql::Uuid, Pg> for Id {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <uuid::Uuid as ToSql<diesel::sql_types::Uuid, Pg>>::to_sql(&self.0, out)
    }
}

impl FromSql<sql::Uuid, Pg> for Id {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        <uuid::Uuid as FromSql<diesel::sql_types::Uuid, Pg>>::from_sql(value).map(Id)
    }
}

impl ToSql<sql::Uuid, Sqlite> for Id {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(self.to_string());
        Ok(IsNull::No)
    }
}

impl FromSql<sql::Uuid, Sqlite> for Id {
    fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        let text = <String as FromSql<diesel::sql_types::Text, Sqlite>>::from_sql(value)?;
        Ok(Id(text.parse()?))
    }
}

impl ToSql<sql::Timestamptz, Pg> for Timestamp {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <DateTime<Utc> as ToSql<diesel::sql_types::Timestamptz, Pg>>::to_sql(&self.0, out)
    }
}

impl FromSql<sql::Timestamptz, Pg> for Timestamp {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        <DateTime<Utc> as FromSql<diesel::sql_types::Timestamptz, Pg>>::from_sql(value).map(Timestamp::new)
    }
}

impl ToSql<sql::Timestamptz, Sqlite> for Timestamp {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(sqlite_text(self.0));
        Ok(IsNull::No)
    }
}

impl FromSql<sql::Timestamptz, Sqlite> for Timestamp {
    fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        let text = <String as FromSql<diesel::sql_types::Text, Sqlite>>::from_sql(value)?;
        let instant = DateTime::parse_from_rfc3339(&text)?;
        Ok(Timestamp::new(instant.with_timezone(&Utc)))
    }
}

impl ToSql<sql::Jsonb, Pg> for Json {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        <serde_json::Value as ToSql<diesel::sql_types::Jsonb, Pg>>::to_sql(&self.0, out)
    }
}

impl FromSql<sql::Jsonb, Pg> for Json {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        <serde_json::Value as FromSql<diesel::sql_types::Jsonb, Pg>>::from_sql(value).map(Json)
    }
}

impl ToSql<sql::Jsonb, Sqlite> for Json {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
        out.set_value(self.0.to_string());
        Ok(IsNull::No)
    }
}

impl FromSql<sql::Jsonb, Sqlite> for Json {
    fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
        let text = <String as FromSql<diesel::sql_types::Text, Sqlite>>::from_sql(value)?;
        Ok(Json(serde_json::from_str(&text)?))
    }
}

/// A closed set of words stored as TEXT (a status, a reason), as a Rust
/// enum: the words are written here once, and a typo fails to compile.
macro_rules! text_enum {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, diesel::AsExpression, diesel::FromSqlRow)]
        #[diesel(sql_type = diesel::sql_types::Text)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            pub const ALL: &[$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;

            fn from_str(text: &str) -> Result<Self, String> {
                match text {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!("`{other}` is not a {}", stringify!($name))),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl diesel::serialize::ToSql<diesel::sql_types::Text, diesel::pg::Pg> for $name {
            fn to_sql<'b>(&'b self, out: &mut diesel::serialize::Output<'b, '_, diesel::pg::Pg>) -> diesel::serialize::Result {
                <str as diesel::serialize::ToSql<diesel::sql_types::Text, diesel::pg::Pg>>::to_sql(self.as_str(), out)
            }
        }

        impl diesel::serialize::ToSql<diesel::sql_types::Text, diesel::sqlite::Sqlite> for $name {
            fn to_sql<'b>(&'b self, out: &mut diesel::serialize::Output<'b, '_, diesel::sqlite::Sqlite>) -> diesel::serialize::Result {
                out.set_value(self.as_str());
                Ok(diesel::serialize::IsNull::No)
            }
        }

        impl<B: diesel::backend::Backend> diesel::deserialize::FromSql<diesel::sql_types::Text, B> for $name
        where
            String: diesel::deserialize::FromSql<diesel::sql_types::Text, B>,
        {
            fn from_sql(value: B::RawValue<'_>) -> diesel::deserialize::Result<Self> {
                let text = <String as diesel::deserialize::FromSql<diesel::sql_types::Text, B>>::from_sql(value)?;
                Ok(text.parse()?)
            }
        }
    };
}

text_enum! {
    /// Where a queued message (a reminder or a daily summary) stands.
    pub enum Status {
        /// Waiting for its time, or for a run to claim it.
        Pending = "pending",
        /// The mail server accepted it. It never changes again.
        Sent = "sent",
        /// Rejected for good, or out of attempts; `retry` puts it back.
        Failed = "failed",
        /// Deliberately not sent (opted out, completed, too late, superseded).
        Skipped = "skipped",
    }
}

text_enum! {
    /// How one send attempt went, in `send_logs` (not the queue's status).
    pub enum LogStatus {
        /// The mail server accepted the message.
        Delivered = "delivered",
        /// The server refused the recipient's address or mailbox: counts toward the bounce rule.
        Rejected = "rejected",
        /// Any other failure: the message, the run, or a transient fault, or
        /// a later report (DSN) of a permanent failure not about the mailbox.
        Failed = "failed",
        /// A later report (DSN) that the mailbox does not exist or is disabled:
        /// counts toward the bounce rule as a rejection does.
        Bounced = "bounced",
    }
}

text_enum! {
    /// Why a student gets no mail, in `users.opt_out_reason` (NULL when the
    /// operator opted them out).
    pub enum OptOutReason {
        /// Their address was rejected too many times in a row (the bounce rule).
        Bounced = "bounced",
        /// They marked a message as spam (a verified complaint report).
        Complaint = "complaint",
        /// They asked to stop, by the unsubscribe link or mail (with their token).
        Unsubscribed = "unsubscribed",
    }
}

text_enum! {
    /// How often a guardian's digest goes out, in `guardians.frequency`.
    pub enum DigestFrequency {
        /// Monday to Friday, at the guardian's hour.
        Daily = "daily",
        /// Once a week, on the guardian's weekday.
        Weekly = "weekly",
        /// Never: the guardian is kept, and mailed nothing.
        Off = "off",
    }
}

text_enum! {
    /// What a row of `contact_messages` is: a message to a guardian or a teacher.
    pub enum ContactKind {
        /// A guardian's daily or weekly digest of missing and upcoming work.
        GuardianDigest = "guardian-digest",
        /// A copy of a student's overdue notice to a guardian (`send --escalate-after`).
        Escalation = "escalation",
        /// A teacher's weekly course report.
        TeacherReport = "teacher-report",
    }
}

text_enum! {
    /// What a report read by `reminders bounces` was, in `bounce_reports.kind`.
    pub enum ReportKind {
        /// A permanent failure of the address (a hard bounce): it does not
        /// exist, or its mailbox is disabled or has moved.
        Hard = "hard",
        /// A permanent failure over our sending (a blocklist, reputation,
        /// SPF/DKIM/DMARC, the sender address): blames nobody, and `status` warns.
        Refused = "refused",
        /// Any other permanent failure (content, size, rate, relaying, a mailer
        /// error, or no cause given): blames nobody.
        Failed = "failed",
        /// Delayed, or a failure that says nothing about the address.
        Soft = "soft",
        /// A spam complaint (ARF).
        Complaint = "complaint",
        /// A request to stop mail.
        Unsubscribe = "unsubscribe",
        /// A vacation notice or other automatic answer.
        AutoReply = "auto_reply",
        /// Mail that is no report it can read; kept without an address, so
        /// `status` can count it after it is set aside.
        Unrecognised = "unrecognised",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_keep_microseconds_and_sort_as_text() {
        let early = Timestamp::new("2025-09-27T23:00:00.000001Z".parse().unwrap());
        let late = Timestamp::new("2025-09-27T23:00:00.1Z".parse().unwrap());
        let early_text = sqlite_text(early.0);
        let late_text = sqlite_text(late.0);
        assert_eq!(early_text, "2025-09-27T23:00:00.000001Z");
        assert_eq!(late_text, "2025-09-27T23:00:00.100000Z");
        assert!(early_text < late_text);
    }

    #[test]
    fn timestamps_drop_nanoseconds() {
        let t = Timestamp::new("2025-01-01T00:00:00.123456789Z".parse().unwrap());
        assert_eq!(t.instant().timestamp_subsec_nanos(), 123_456_000);
    }
}
