//! `reminders user import` and `reminders assignment import`: bulk loading
//! from CSV (with a header row) or JSON Lines, streamed in batches inside one
//! transaction. Every row passes the same checks as `add`; every bad row is
//! reported with its line, and then nothing is written. With
//! `--upsert`, assignments are matched on (student, external_id) and updated
//! in place. iCalendar feeds are `feed`'s; guardians are `guardians.rs`'s,
//! teachers `teachers.rs`'s.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use serde::Deserialize;
use serde_json::json;

use self::rows::{BadRows, Columns, NumberedRow, at_line, input_format, open_rows};

use super::Outcome;
use crate::cli::{AssignmentImportArgs, ImportArgs, InputFormat, SummaryFrequency};
use crate::db::DatabaseUrl;
use crate::db::Db;
use crate::db::assignments::{self, Assignment, Incoming, Kept, Upserted};
use crate::db::summaries;
use crate::db::types::{Id, Json, Timestamp};
use crate::db::users::{self, User};
use crate::error::invalid;
use crate::input::{
    Email, check_cutoff, check_metadata, parse_course, parse_cutoff, parse_description, parse_due, parse_external_id,
    parse_locale, parse_max_per_day, parse_metadata, parse_name, parse_timezone, parse_title, parse_weekday, zone_of,
};
use crate::output;
use crate::schedule::TypeList;
use crate::schedule::window::SendWindow;
use clap::ValueEnum;

mod guardians;
mod rows;
mod teachers;

use guardians::{filled, text_of};
pub use guardians::{guardians, not_the_student};
pub use teachers::teachers;

/// Rows validated and written per round trip.
const BATCH_SIZE: usize = 1_000;

/// A row of a users file: the `user add` flags.
#[derive(Debug, Deserialize)]
struct UserRow {
    email: String,
    name: Option<String>,
    timezone: Option<String>,
    /// The `user set` preferences: `--types`, `--mute`, `--summary`,
    /// `--summary-weekday`; empty leaves the default.
    types: Option<String>,
    mute: Option<String>,
    summary: Option<String>,
    summary_weekday: Option<String>,
    /// As `user set --max-per-day`.
    max_per_day: Option<serde_json::Value>,
    /// BCP 47, as `user set --locale`.
    locale: Option<String>,
    /// As `user set --send-window`.
    send_window: Option<String>,
}

const USER_COLUMNS: Columns = Columns {
    required: &["email"],
    all: &[
        "email",
        "name",
        "timezone",
        "locale",
        "types",
        "mute",
        "summary",
        "summary_weekday",
        "max_per_day",
        "send_window",
    ],
};

/// A user row's preferences, or `None` when it sets none (the defaults).
fn row_preferences(row: &UserRow, user_id: Id, now: Timestamp) -> anyhow::Result<Option<summaries::Preferences>> {
    fn given(value: &Option<String>) -> Option<&str> {
        value.as_deref().map(str::trim).filter(|value| !value.is_empty())
    }
    let (types, mute, summary, weekday) = (
        given(&row.types),
        given(&row.mute),
        given(&row.summary),
        given(&row.summary_weekday),
    );
    let max_per_day = filled(text_of(row.max_per_day.clone()))
        .map(|text| parse_max_per_day(&text))
        .transpose()?
        .flatten();
    let send_window = given(&row.send_window)
        .map(SendWindow::parse_setting)
        .transpose()?
        .flatten();
    if types.is_none()
        && mute.is_none()
        && summary.is_none()
        && weekday.is_none()
        && max_per_day.is_none()
        && send_window.is_none()
    {
        return Ok(None);
    }
    let summary = summary
        .map(|text| {
            SummaryFrequency::from_str(text, true)
                .map_err(|_| invalid(format!("`{text}` is not a summary: use daily, weekly or off")))
        })
        .transpose()?;
    let weekday = weekday.map(parse_weekday).transpose()?;
    let summary_weekday = match (summary, weekday) {
        (Some(SummaryFrequency::Weekly), day) => Some(day.unwrap_or(chrono::Weekday::Mon)),
        (_, Some(_)) => {
            return Err(invalid(
                "`summary_weekday` is the day of a weekly summary: set `summary` to weekly",
            ));
        }
        _ => None,
    };
    Ok(Some(summaries::Preferences {
        user_id,
        daily_summary: summary != Some(SummaryFrequency::Off),
        summary_hour: summaries::DEFAULT_SUMMARY_HOUR,
        created_at: now,
        updated_at: now,
        reminder_types: types.map(TypeList::parse).transpose()?.map(|list| list.to_text()),
        muted_types: mute.map(TypeList::parse).transpose()?.map(|list| list.to_text()),
        summary_weekday: summary_weekday.map(|day| day.number_from_monday() as i32),
        max_per_day,
        send_window,
    }))
}

/// A row of an assignments file: the `assignment add` flags.
#[derive(Debug, Deserialize)]
struct AssignmentRow {
    student: String,
    title: String,
    due: String,
    description: Option<String>,
    /// A JSON object; in CSV, its text.
    metadata: Option<serde_json::Value>,
    /// The LMS's id for it: what `--upsert` matches on.
    external_id: Option<String>,
    /// true/false (also yes/no, 1/0); absent or empty leaves it as it is.
    completed: Option<serde_json::Value>,
    /// When work can no longer be handed in, read as `due` is.
    cutoff: Option<String>,
    course: Option<String>,
}

const ASSIGNMENT_COLUMNS: Columns = Columns {
    required: &["student", "title", "due"],
    all: &[
        "student",
        "title",
        "due",
        "description",
        "metadata",
        "external_id",
        "completed",
        "cutoff",
        "course",
    ],
};

/// What an import did with its rows.
#[derive(Debug, Default)]
struct Tally {
    inserted: usize,
    updated: usize,
    /// Rows that match what is stored: skipped with --skip-existing,
    /// unchanged with --upsert.
    unchanged: usize,
    /// Rows due before now.
    past_due: usize,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, other: Tally) {
        self.inserted += other.inserted;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
        self.past_due += other.past_due;
    }
}

pub fn users(database: &DatabaseUrl, args: ImportArgs, now: Timestamp) -> anyhow::Result<Outcome> {
    let format = input_format(&args.file, args.input_format)?;
    if format == InputFormat::Ics {
        return Err(invalid("students are imported from CSV or JSON Lines, not iCalendar"));
    }
    let rows = open_rows::<UserRow>(&args.file, format, &USER_COLUMNS)?;
    let mut db = Db::open(database)?;
    let started = Instant::now();
    let tally = import_in_batches(&mut db, rows, |db, batch, bad| {
        let read = batch.len();
        let emails: Vec<String> = batch.iter().map(|(_, row)| row.email.trim().to_lowercase()).collect();
        let mut taken: HashSet<String> = users::existing_emails(db, &emails)?.into_iter().collect();
        let mut fresh = Vec::with_capacity(batch.len());
        let mut preferences = Vec::new();
        for (line, row) in batch {
            let id = Id::new();
            let (Some(email), Some(name), Some(timezone), Some(locale), Some(chosen)) = (
                bad.check(
                    line,
                    Email::parse(&row.email).and_then(|email| email.mailable(args.allow_local_domains)),
                )?,
                bad.check(line, parse_name(row.name.as_deref()))?,
                bad.check(line, optional_timezone(row.timezone.as_deref()))?,
                bad.check(line, parse_locale(row.locale.as_deref().unwrap_or_default()))?,
                bad.check(line, row_preferences(&row, id, now))?,
            ) else {
                continue;
            };
            if !taken.insert(email.as_str().to_string()) {
                if !args.skip_existing {
                    bad.note(at_line(
                        line,
                        invalid(format!(
                            "a user with email `{}` already exists (use --skip-existing to skip such rows)",
                            email.as_str()
                        )),
                    ))?;
                }
                continue;
            }
            fresh.push(User {
                id,
                locale,
                ..User::new(email.as_str(), name, timezone.name(), now)
            });
            preferences.extend(chosen);
        }
        users::insert_users(db, &fresh)?;
        for chosen in &preferences {
            summaries::save_preferences(db, chosen)?;
        }
        Ok(Tally {
            inserted: fresh.len(),
            updated: 0,
            unchanged: read - fresh.len(),
            past_due: 0,
        })
    })?;
    db.analyze("users")?;
    Ok(Outcome::success(output::Done(report(
        ("user", "users"),
        &tally,
        false,
        started,
    ))))
}

pub fn assignments(database: &DatabaseUrl, args: AssignmentImportArgs, now: Timestamp) -> anyhow::Result<Outcome> {
    let format = input_format(&args.file, args.input_format)?;
    if format == InputFormat::Ics {
        return super::feed::import(database, args, now);
    }
    if args.student.is_some() || args.remove_missing || args.feed.is_some() {
        return Err(invalid(
            "--student, --remove-missing and --feed are for iCalendar feeds; a CSV or JSON Lines row names its student",
        ));
    }
    let rows = open_rows::<AssignmentRow>(&args.file, format, &ASSIGNMENT_COLUMNS)?;
    let mut db = Db::open(database)?;
    let started = Instant::now();
    let mut students = Students::default();
    let tally = import_in_batches(&mut db, rows, |db, batch, bad| {
        let read = batch.len();
        let parsed = parse_assignments(db, &mut students, batch, args.upsert, now, bad)?;
        let past_due = parsed.iter().filter(|(_, row)| row.assignment.due_at <= now).count();
        if args.upsert {
            let incoming = parsed.into_iter().map(|(_, incoming)| incoming).collect();
            let Upserted {
                inserted,
                updated,
                unchanged,
            } = assignments::upsert_by_external_id(db, incoming, now)?;
            return Ok(Tally {
                inserted,
                updated,
                unchanged,
                past_due,
            });
        }
        let fresh = without_existing(db, parsed, args.skip_existing, bad)?;
        assignments::insert_assignments(db, &fresh)?;
        Ok(Tally {
            inserted: fresh.len(),
            updated: 0,
            unchanged: read - fresh.len(),
            past_due,
        })
    })?;
    db.analyze("assignments")?;
    if tally.past_due > 0 {
        crate::log::warning!(
            "{} in the past: no reminder will go out for them",
            output::count(tally.past_due as i64, "row is due", "rows are due")
        );
    }
    Ok(Outcome::success(output::Done(report(
        ("assignment", "assignments"),
        &tally,
        args.upsert,
        started,
    ))))
}

/// A time zone column: empty means UTC.
fn optional_timezone(raw: Option<&str>) -> anyhow::Result<chrono_tz::Tz> {
    match raw.filter(|tz| !tz.trim().is_empty()) {
        Some(raw) => parse_timezone(raw),
        None => Ok(chrono_tz::UTC),
    }
}

/// Checks a batch of rows as `assignment add` would; a bad row is noted with
/// its line and left out.
fn parse_assignments(
    db: &mut Db,
    students: &mut Students,
    batch: Vec<(u64, AssignmentRow)>,
    upsert: bool,
    now: Timestamp,
    bad: &mut BadRows,
) -> anyhow::Result<Vec<(u64, Incoming)>> {
    let emails: Vec<String> = batch
        .iter()
        .filter_map(|(_, row)| Email::parse(&row.student).ok())
        .map(|email| email.as_str().to_string())
        .collect();
    students.look_up(db, emails)?;
    let students = &students.known;
    let mut parsed = Vec::with_capacity(batch.len());
    for (line, row) in batch {
        let Some(email) = bad.check(line, Email::parse(&row.student))? else {
            continue;
        };
        let Some((student_id, timezone)) = bad.check(
            line,
            students
                .get(email.as_str())
                .ok_or_else(|| invalid(format!("no user has the email `{}`", email.as_str()))),
        )?
        else {
            continue;
        };
        let metadata = match row.metadata {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(text)) if text.trim().is_empty() => Ok(None),
            Some(serde_json::Value::String(text)) => parse_metadata(&text).map(Some),
            Some(value) => check_metadata(value).map(Some),
        };
        let external_id = match row.external_id.as_deref().filter(|id| !id.trim().is_empty()) {
            Some(raw) => parse_external_id(raw).map(Some),
            None if upsert => Err(invalid("--upsert needs an external_id in every row")),
            None => Ok(None),
        };
        let zone = zone_of(timezone.as_deref());
        let (
            Some(title),
            Some(description),
            Some(due_at),
            Some(metadata),
            Some(external_id),
            Some(completed),
            Some(cutoff),
            Some(course),
        ) = (
            bad.check(line, parse_title(&row.title))?,
            bad.check(line, parse_description(row.description.as_deref()))?,
            bad.check(line, parse_due(&row.due, zone))?,
            bad.check(line, metadata)?,
            bad.check(line, external_id)?,
            bad.check(line, parse_completed(row.completed))?,
            bad.check(line, parse_cutoff(row.cutoff.as_deref(), zone))?,
            bad.check(line, parse_course(row.course.as_deref()))?,
        )
        else {
            continue;
        };
        if let Some(cutoff) = cutoff
            && bad.check(line, check_cutoff(cutoff, due_at))?.is_none()
        {
            continue;
        }
        parsed.push((
            line,
            Incoming {
                assignment: Assignment {
                    id: Id::new(),
                    title,
                    description: description.filter(|d| !d.trim().is_empty()),
                    student_id: *student_id,
                    due_at: Timestamp::new(due_at),
                    completed: completed.unwrap_or(false),
                    created_at: now,
                    updated_at: now,
                    metadata: metadata.map(Json),
                    external_id,
                    feed: None,
                    previous_due_at: None,
                    cutoff: cutoff.map(Timestamp::new),
                    course,
                },
                completed,
                // A row says what its cut-off and course are: empty clears them.
                keeps: Kept::default(),
            },
        ));
    }
    Ok(parsed)
}

/// The students an import has looked up, kept across batches: a file lists
/// each student's assignments in many batches.
#[derive(Default)]
struct Students {
    known: HashMap<String, (Id, Option<String>)>,
}

impl Students {
    /// Beyond this many the map is emptied, so memory stays bounded
    /// (about 100 bytes a student) however many students a school has.
    const MOST: usize = 200_000;

    /// Reads those of `emails` not known yet.
    fn look_up(&mut self, db: &mut Db, mut emails: Vec<String>) -> anyhow::Result<()> {
        emails.sort_unstable();
        emails.dedup();
        if self.known.len() + emails.len() > Self::MOST {
            self.known.clear();
        }
        emails.retain(|email| !self.known.contains_key(email));
        for (email, id, timezone) in users::students_by_email(db, &emails)? {
            self.known.insert(email, (id, timezone));
        }
        Ok(())
    }
}

/// The `completed` column: absent or empty says nothing.
fn parse_completed(raw: Option<serde_json::Value>) -> anyhow::Result<Option<bool>> {
    use serde_json::Value;
    match raw {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(flag)) => Ok(Some(flag)),
        Some(Value::String(text)) => match text.trim().to_ascii_lowercase().as_str() {
            "" => Ok(None),
            "true" | "yes" | "1" => Ok(Some(true)),
            "false" | "no" | "0" => Ok(Some(false)),
            other => Err(invalid(format!("completed is `{other}`: use true or false"))),
        },
        Some(Value::Number(n)) if n.as_u64() == Some(0) || n.as_u64() == Some(1) => Ok(Some(n.as_u64() == Some(1))),
        Some(other) => Err(invalid(format!("completed is `{other}`: use true or false"))),
    }
}

/// The rows to insert without --upsert. An external id the student has
/// already (stored, or in an earlier row) is bad input, or skipped with
/// --skip-existing; so is, with --skip-existing, an assignment with the
/// same student, title and due time, so a re-run is a no-op.
fn without_existing(
    db: &mut Db,
    parsed: Vec<(u64, Incoming)>,
    skip_existing: bool,
    bad: &mut BadRows,
) -> anyhow::Result<Vec<Assignment>> {
    let students: Vec<Id> = parsed.iter().map(|(_, row)| row.assignment.student_id).collect();
    let external_ids: Vec<String> = parsed
        .iter()
        .filter_map(|(_, row)| row.assignment.external_id.clone())
        .collect();
    let mut ids_taken: HashSet<(Id, String)> = if external_ids.is_empty() {
        HashSet::new()
    } else {
        assignments::existing_external_ids(db, &students, &external_ids)?
            .into_iter()
            .collect()
    };
    let mut seen: HashSet<(Id, String, Timestamp)> = match (
        skip_existing,
        due_range(parsed.iter().map(|(_, row)| row.assignment.due_at)),
    ) {
        (true, Some(range)) => assignments::existing_keys(db, &students, range)?.into_iter().collect(),
        _ => HashSet::new(),
    };
    let mut fresh = Vec::with_capacity(parsed.len());
    for (line, row) in parsed {
        let a = row.assignment;
        if let Some(external_id) = &a.external_id
            && !ids_taken.insert((a.student_id, external_id.clone()))
        {
            if !skip_existing {
                bad.note(at_line(
                    line,
                    invalid(format!(
                        "the student already has an assignment with the external id `{external_id}` \
                         (use --upsert to update it, or --skip-existing to skip such rows)"
                    )),
                ))?;
            }
            continue;
        }
        if skip_existing && !seen.insert((a.student_id, a.title.clone(), a.due_at)) {
            continue;
        }
        fresh.push(a);
    }
    Ok(fresh)
}

/// The earliest and latest of some due times.
fn due_range(due_times: impl Iterator<Item = Timestamp>) -> Option<(Timestamp, Timestamp)> {
    due_times.fold(None, |range, due| match range {
        None => Some((due, due)),
        Some((from, to)) => Some((from.min(due), to.max(due))),
    })
}

/// Feeds the rows to `write_batch` a batch at a time, all in one transaction.
/// Bad rows are noted (by `write_batch` too) and the rest go on being
/// checked, so that one run reports them all; then nothing is written.
fn import_in_batches<R>(
    db: &mut Db,
    rows: Box<dyn Iterator<Item = NumberedRow<R>>>,
    mut write_batch: impl FnMut(&mut Db, Vec<(u64, R)>, &mut BadRows) -> anyhow::Result<Tally>,
) -> anyhow::Result<Tally> {
    db.tune_for_bulk_load()?;
    db.in_write_transaction(|db| {
        let mut tally = Tally::default();
        let mut bad = BadRows::default();
        let mut batch = Vec::with_capacity(BATCH_SIZE);
        for row in rows {
            match row {
                Ok(row) => batch.push(row),
                Err(error) => bad.note(error)?,
            }
            if batch.len() == BATCH_SIZE {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_SIZE));
                tally += write_batch(db, full, &mut bad)?;
            }
        }
        if !batch.is_empty() {
            tally += write_batch(db, batch, &mut bad)?;
        }
        if !bad.is_empty() {
            return Err(bad.into_error());
        }
        Ok(tally)
    })
}

/// `what` names one row and many (`("user", "users")`).
fn report(what: (&str, &str), tally: &Tally, upsert: bool, started: Instant) -> output::Message {
    let seconds = started.elapsed().as_secs_f64();
    let rows = tally.inserted + tally.updated;
    let rate = if seconds > 0.0 { rows as f64 / seconds } else { 0.0 };
    let text = if upsert {
        let nothing = if rows == 0 { "; nothing changed" } else { "" };
        format!(
            "upserted {}: inserted {}, updated {}, unchanged {}{nothing}, in {seconds:.2} s ({rate:.0} rows/s)",
            what.1, tally.inserted, tally.updated, tally.unchanged
        )
    } else {
        let (one, many) = what;
        format!(
            "imported {}, skipped {} existing, in {seconds:.2} s ({rate:.0} rows/s)",
            output::count(tally.inserted as i64, one, many),
            tally.unchanged
        )
    };
    output::Message {
        text,
        json: json!({
            "imported": tally.inserted,
            "inserted": tally.inserted,
            "updated": tally.updated,
            "unchanged": tally.unchanged,
            "skipped": tally.unchanged,
            "seconds": seconds,
        }),
    }
}
