//! `reminders teacher import`: each row as `teacher add` takes it. A teacher
//! already here is updated with the columns a row fills, and linked to the
//! row's course; all rows or none, as for the other imports.

use std::time::Instant;

use serde::Deserialize;

use super::guardians::{filled, text_of};
use super::rows::{Columns, input_format, open_rows};
use super::{Tally, import_in_batches, report};
use crate::cli::{InputFormat, TeacherImportArgs};
use crate::commands::Outcome;
use crate::db::teachers::{self, Taught, TeacherFields};
use crate::db::types::Timestamp;
use crate::db::{DatabaseUrl, Db};
use crate::error::invalid;
use crate::input::{Email, parse_course, parse_hour, parse_locale, parse_name, parse_timezone, parse_weekday};
use crate::output;

/// A row of a teachers file: the `teacher add` flags. An empty column
/// leaves a teacher's value as it is.
#[derive(Debug, Deserialize)]
struct TeacherRow {
    course: String,
    email: String,
    name: Option<String>,
    timezone: Option<String>,
    /// `mon` … `sun`, or 1 to 7; a JSON number in JSON Lines.
    weekday: Option<serde_json::Value>,
    /// 0 to 23; a JSON number in JSON Lines.
    hour: Option<serde_json::Value>,
    /// BCP 47 (`fr-CA`); `none` removes it, empty leaves it.
    locale: Option<String>,
}

const TEACHER_COLUMNS: Columns = Columns {
    required: &["course", "email"],
    all: &["course", "email", "name", "timezone", "weekday", "hour", "locale"],
};

pub fn teachers(database: &DatabaseUrl, args: TeacherImportArgs, now: Timestamp) -> anyhow::Result<Outcome> {
    let format = input_format(&args.file, args.input_format)?;
    if format == InputFormat::Ics {
        return Err(invalid("teachers are imported from CSV or JSON Lines, not iCalendar"));
    }
    let rows = open_rows::<TeacherRow>(&args.file, format, &TEACHER_COLUMNS)?;
    let mut db = Db::open(database)?;
    let started = Instant::now();
    let tally = import_in_batches(&mut db, rows, |db, batch, bad| {
        let mut tally = Tally::default();
        for (line, row) in batch {
            let course = parse_course(Some(&row.course))
                .and_then(|course| course.ok_or_else(|| invalid("the course is blank: every row names one")));
            let email = Email::parse(&row.email).and_then(|email| email.mailable(args.allow_local_domains));
            let (Some(course), Some(email), Some(name), Some(timezone), Some(weekday), Some(hour), Some(locale)) = (
                bad.check(line, course)?,
                bad.check(line, email)?,
                bad.check(line, parse_name(row.name.as_deref()))?,
                bad.check(line, filled(row.timezone).map(|zone| parse_timezone(&zone)).transpose())?,
                bad.check(
                    line,
                    filled(text_of(row.weekday)).map(|day| parse_weekday(&day)).transpose(),
                )?,
                bad.check(
                    line,
                    filled(text_of(row.hour)).map(|hour| parse_hour(&hour)).transpose(),
                )?,
                bad.check(line, filled(row.locale).map(|tag| parse_locale(&tag)).transpose())?,
            ) else {
                continue;
            };
            let fields = TeacherFields {
                name: name.map(Some),
                timezone: timezone.map(|zone| zone.name().to_string()),
                weekday: weekday.map(|day| day.number_from_monday() as i32),
                hour,
                locale,
            };
            let (_, taught) = teachers::teach(db, &course, email.as_str(), &fields, now)?;
            match taught {
                Taught::NewTeacher | Taught::NewCourse => tally.inserted += 1,
                Taught::Updated => tally.updated += 1,
                Taught::Unchanged => tally.unchanged += 1,
            }
        }
        Ok(tally)
    })?;
    db.analyze("teachers")?;
    db.analyze("teacher_courses")?;
    Ok(Outcome::success(output::Done(report(
        ("teacher", "teachers"),
        &tally,
        true,
        started,
    ))))
}
