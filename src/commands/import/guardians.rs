//! `reminders guardian import`: each row as `guardian add` takes it. A
//! guardian already here is updated with the columns a row fills, and linked
//! to the row's student; all rows or none, as for the other imports.

use std::time::Instant;

use serde::Deserialize;

use super::rows::{Columns, input_format, open_rows};
use super::{Students, Tally, import_in_batches, report};
use crate::cli::{GuardianImportArgs, InputFormat};
use crate::commands::Outcome;
use crate::db::guardians::{self, Followed, GuardianFields};
use crate::db::types::{DigestFrequency, Timestamp};
use crate::db::{DatabaseUrl, Db};
use crate::error::invalid;
use crate::input::{Email, parse_hour, parse_locale, parse_name, parse_timezone, parse_weekday, zone_of};
use crate::output;
use crate::schedule::window::SendWindow;

/// A row of a guardians file: the `guardian add` flags. An empty column
/// leaves a guardian's value as it is.
#[derive(Debug, Deserialize)]
struct GuardianRow {
    student: String,
    email: String,
    name: Option<String>,
    timezone: Option<String>,
    frequency: Option<String>,
    /// `mon` … `sun`, or 1 to 7; a JSON number in JSON Lines.
    weekday: Option<serde_json::Value>,
    /// 0 to 23; a JSON number in JSON Lines.
    hour: Option<serde_json::Value>,
    /// BCP 47 (`fr-CA`); `none` removes it, empty leaves it.
    locale: Option<String>,
    /// As `guardian add --send-window`; `always` removes it, empty leaves it.
    send_window: Option<String>,
}

const GUARDIAN_COLUMNS: Columns = Columns {
    required: &["student", "email"],
    all: &[
        "student",
        "email",
        "name",
        "timezone",
        "frequency",
        "weekday",
        "hour",
        "locale",
        "send_window",
    ],
};

pub fn guardians(database: &DatabaseUrl, args: GuardianImportArgs, now: Timestamp) -> anyhow::Result<Outcome> {
    let format = input_format(&args.file, args.input_format)?;
    if format == InputFormat::Ics {
        return Err(invalid("guardians are imported from CSV or JSON Lines, not iCalendar"));
    }
    let rows = open_rows::<GuardianRow>(&args.file, format, &GUARDIAN_COLUMNS)?;
    let mut db = Db::open(database)?;
    let started = Instant::now();
    let mut students = Students::default();
    let tally = import_in_batches(&mut db, rows, |db, batch, bad| {
        let emails = batch
            .iter()
            .filter_map(|(_, row)| Email::parse(&row.student).ok())
            .map(|email| email.as_str().to_string())
            .collect();
        students.look_up(db, emails)?;
        let mut tally = Tally::default();
        for (line, row) in batch {
            let Some(student) = bad.check(line, Email::parse(&row.student))? else {
                continue;
            };
            let Some((student_id, student_zone)) = bad.check(
                line,
                students
                    .known
                    .get(student.as_str())
                    .ok_or_else(|| invalid(format!("no user has the email `{}`", student.as_str()))),
            )?
            else {
                continue;
            };
            let guardian = Email::parse(&row.email)
                .and_then(|email| email.mailable(args.allow_local_domains))
                .and_then(|email| not_the_student(email, &student));
            let (
                Some(email),
                Some(name),
                Some(timezone),
                Some(frequency),
                Some(weekday),
                Some(hour),
                Some(locale),
                Some(send_window),
            ) = (
                bad.check(line, guardian)?,
                bad.check(line, parse_name(row.name.as_deref()))?,
                bad.check(line, filled(row.timezone).map(|zone| parse_timezone(&zone)).transpose())?,
                bad.check(
                    line,
                    filled(row.frequency).map(|word| parse_frequency(&word)).transpose(),
                )?,
                bad.check(
                    line,
                    filled(text_of(row.weekday)).map(|day| parse_weekday(&day)).transpose(),
                )?,
                bad.check(
                    line,
                    filled(text_of(row.hour)).map(|hour| parse_hour(&hour)).transpose(),
                )?,
                bad.check(line, filled(row.locale).map(|tag| parse_locale(&tag)).transpose())?,
                bad.check(
                    line,
                    filled(row.send_window)
                        .map(|spec| SendWindow::parse_setting(&spec))
                        .transpose(),
                )?,
            )
            else {
                continue;
            };
            let fields = GuardianFields {
                name: name.map(Some),
                timezone: timezone.map(|zone| zone.name().to_string()),
                frequency,
                weekday: weekday.map(|day| day.number_from_monday() as i32),
                hour,
                locale,
                send_window,
            };
            let default_zone = zone_of(student_zone.as_deref());
            let (_, followed) = guardians::follow(db, *student_id, email.as_str(), &fields, default_zone.name(), now)?;
            match followed {
                Followed::NewGuardian | Followed::NewLink => tally.inserted += 1,
                Followed::Updated => tally.updated += 1,
                Followed::Unchanged => tally.unchanged += 1,
            }
        }
        Ok(tally)
    })?;
    db.analyze("guardians")?;
    db.analyze("guardian_students")?;
    Ok(Outcome::success(output::Done(report(
        ("guardian", "guardians"),
        &tally,
        true,
        started,
    ))))
}

/// A guardian's address, which must not be the student's own.
pub fn not_the_student(guardian: Email, student: &Email) -> anyhow::Result<Email> {
    if &guardian == student {
        return Err(invalid(format!(
            "`{}` is the student's own address: a guardian is someone else",
            guardian.as_str()
        )));
    }
    Ok(guardian)
}

/// A guardian's frequency: `daily`, `weekly` or `off`.
fn parse_frequency(raw: &str) -> anyhow::Result<DigestFrequency> {
    let wanted = raw.trim().to_ascii_lowercase();
    wanted
        .parse()
        .map_err(|_| invalid(format!("`{}` is not a frequency: use daily, weekly or off", raw.trim())))
}

/// A column's text, `None` when it is blank.
pub(super) fn filled(text: Option<String>) -> Option<String> {
    text.filter(|text| !text.trim().is_empty())
}

/// A column that JSON Lines may give as a number, as text.
pub(super) fn text_of(value: Option<serde_json::Value>) -> Option<String> {
    match value? {
        serde_json::Value::Null => None,
        serde_json::Value::String(text) => Some(text),
        other => Some(other.to_string()),
    }
}
