//! `reminders user import` and `reminders assignment import`: bulk loading
//! from CSV (with a header row) or JSON Lines, streamed in batches inside one
//! transaction. Every row passes the same checks as `add`; the first bad row
//! stops the import with its line number and nothing is written.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read};
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::Outcome;
use crate::cli::{ImportArgs, InputFormat};
use crate::db::DatabaseUrl;
use crate::db::Db;
use crate::db::assignments::{self, Assignment};
use crate::db::types::{Id, Json, Timestamp};
use crate::db::users::{self, User};
use crate::error::{InputError, invalid};
use crate::input::{
    Email, check_metadata, parse_description, parse_due, parse_metadata, parse_name, parse_timezone, parse_title,
    zone_of,
};
use crate::output;

/// Rows validated and written per round trip.
const BATCH_SIZE: usize = 1_000;

/// A row of a users file: the `user add` flags.
#[derive(Debug, Deserialize)]
struct UserRow {
    email: String,
    name: Option<String>,
    timezone: Option<String>,
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
}

pub fn users(database: &DatabaseUrl, args: ImportArgs, now: Timestamp) -> anyhow::Result<Outcome> {
    let rows = open_rows::<UserRow>(&args)?;
    let mut db = Db::open(database)?;
    let started = Instant::now();
    let (imported, skipped) = import_in_batches(&mut db, rows, |db, batch| {
        let emails: Vec<String> = batch.iter().map(|(_, row)| row.email.trim().to_lowercase()).collect();
        let mut taken: HashSet<String> = users::existing_emails(db, &emails)?.into_iter().collect();
        let mut fresh = Vec::with_capacity(batch.len());
        for (line, row) in batch {
            let at_line = |error: anyhow::Error| at_line(line, error);
            let email = Email::parse(&row.email).map_err(at_line)?;
            let name = parse_name(row.name.as_deref()).map_err(at_line)?;
            let timezone = match row.timezone.as_deref().filter(|tz| !tz.trim().is_empty()) {
                Some(raw) => parse_timezone(raw).map_err(at_line)?,
                None => chrono_tz::UTC,
            };
            if !taken.insert(email.as_str().to_string()) {
                if args.skip_existing {
                    continue;
                }
                return Err(at_line(invalid(format!(
                    "a user with email `{}` already exists (use --skip-existing to skip such rows)",
                    email.as_str()
                ))));
            }
            fresh.push(User::new(email.as_str(), name, timezone.name(), now));
        }
        users::insert_users(db, &fresh)?;
        Ok(fresh.len())
    })?;
    db.analyze("users")?;
    Ok(Outcome::success(report("users", imported, skipped, started)))
}

pub fn assignments(database: &DatabaseUrl, args: ImportArgs, now: Timestamp) -> anyhow::Result<Outcome> {
    let rows = open_rows::<AssignmentRow>(&args)?;
    let mut db = Db::open(database)?;
    let started = Instant::now();
    let (imported, skipped) = import_in_batches(&mut db, rows, |db, batch| {
        let mut emails = Vec::with_capacity(batch.len());
        for (line, row) in &batch {
            emails.push(
                Email::parse(&row.student)
                    .map_err(|error| at_line(*line, error))?
                    .as_str()
                    .to_string(),
            );
        }
        let students: HashMap<String, (Id, Option<String>)> = users::students_by_email(db, &emails)?
            .into_iter()
            .map(|(email, id, timezone)| (email, (id, timezone)))
            .collect();
        let mut parsed = Vec::with_capacity(batch.len());
        for ((line, row), email) in batch.into_iter().zip(emails) {
            let at_line = |error: anyhow::Error| at_line(line, error);
            let (student_id, timezone) = students
                .get(&email)
                .ok_or_else(|| at_line(invalid(format!("no user has the email `{email}`"))))?;
            let title = parse_title(&row.title).map_err(at_line)?;
            let description = parse_description(row.description.as_deref()).map_err(at_line)?;
            let due_at = Timestamp::new(parse_due(&row.due, zone_of(timezone.as_deref())).map_err(at_line)?);
            let metadata = match row.metadata {
                None | Some(serde_json::Value::Null) => None,
                Some(serde_json::Value::String(text)) if text.trim().is_empty() => None,
                Some(serde_json::Value::String(text)) => Some(parse_metadata(&text).map_err(at_line)?),
                Some(value) => Some(check_metadata(value).map_err(at_line)?),
            };
            parsed.push((
                line,
                Assignment {
                    id: Id::new(),
                    title,
                    description: description.filter(|d| !d.trim().is_empty()),
                    student_id: *student_id,
                    due_at,
                    completed: false,
                    created_at: now,
                    updated_at: now,
                    metadata: metadata.map(Json),
                },
            ));
        }
        // As with `assignment add`, a file may hold two assignments alike. With
        // --skip-existing, one that matches a stored assignment (same student,
        // title and due time) or an earlier row is skipped, so a re-run is a no-op.
        if !args.skip_existing {
            let fresh: Vec<Assignment> = parsed.into_iter().map(|(_, assignment)| assignment).collect();
            assignments::insert_assignments(db, &fresh)?;
            return Ok(fresh.len());
        }
        let students: Vec<Id> = parsed.iter().map(|(_, a)| a.student_id).collect();
        let mut seen: HashSet<(Id, String, Timestamp)> = match due_range(parsed.iter().map(|(_, a)| a.due_at)) {
            Some(range) => assignments::existing_keys(db, &students, range)?.into_iter().collect(),
            None => HashSet::new(),
        };
        let fresh: Vec<Assignment> = parsed
            .into_iter()
            .map(|(_, assignment)| assignment)
            .filter(|a| seen.insert((a.student_id, a.title.clone(), a.due_at)))
            .collect();
        assignments::insert_assignments(db, &fresh)?;
        Ok(fresh.len())
    })?;
    db.analyze("assignments")?;
    Ok(Outcome::success(report("assignments", imported, skipped, started)))
}

/// The earliest and latest of some due times.
fn due_range(due_times: impl Iterator<Item = Timestamp>) -> Option<(Timestamp, Timestamp)> {
    due_times.fold(None, |range, due| match range {
        None => Some((due, due)),
        Some((from, to)) => Some((from.min(due), to.max(due))),
    })
}

/// A numbered row, or the reason it could not be read.
type NumberedRow<R> = anyhow::Result<(u64, R)>;

/// Feeds the rows to `write_batch` a batch at a time, all in one transaction.
/// Returns (rows written, rows skipped).
fn import_in_batches<R>(
    db: &mut Db,
    rows: Box<dyn Iterator<Item = NumberedRow<R>>>,
    mut write_batch: impl FnMut(&mut Db, Vec<(u64, R)>) -> anyhow::Result<usize>,
) -> anyhow::Result<(usize, usize)> {
    db.tune_for_bulk_load()?;
    db.in_write_transaction(|db| {
        let (mut read, mut written) = (0, 0);
        let mut batch = Vec::with_capacity(BATCH_SIZE);
        for row in rows {
            batch.push(row?);
            if batch.len() == BATCH_SIZE {
                read += batch.len();
                written += write_batch(db, std::mem::replace(&mut batch, Vec::with_capacity(BATCH_SIZE)))?;
            }
        }
        if !batch.is_empty() {
            read += batch.len();
            written += write_batch(db, batch)?;
        }
        Ok((written, read - written))
    })
}

/// Opens the input and yields its rows with their line numbers, streaming.
fn open_rows<R: DeserializeOwned + 'static>(
    args: &ImportArgs,
) -> anyhow::Result<Box<dyn Iterator<Item = NumberedRow<R>>>> {
    let format = match args.input_format {
        Some(format) => format,
        None => match Path::new(&args.file).extension().and_then(|ext| ext.to_str()) {
            Some("csv") => InputFormat::Csv,
            Some("jsonl" | "ndjson") => InputFormat::Jsonl,
            _ => {
                return Err(invalid(format!(
                    "cannot tell the format of `{}`: name it .csv or .jsonl, or pass --input-format",
                    args.file
                )));
            }
        },
    };
    let progress = progress_bar();
    let input: Box<dyn Read> = if args.file == "-" {
        Box::new(progress.wrap_read(std::io::stdin()))
    } else {
        let file = File::open(&args.file).map_err(|error| invalid(format!("cannot read `{}`: {error}", args.file)))?;
        progress.set_length(file.metadata().map(|m| m.len()).unwrap_or(0));
        Box::new(progress.wrap_read(file))
    };
    Ok(match format {
        InputFormat::Csv => {
            let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::Headers).from_reader(input);
            let headers = reader
                .headers()
                .map_err(|error| invalid(format!("line 1: {}", csv_reason(&error))))?
                .clone();
            Box::new(reader.into_records().map(move |record| {
                let record = record
                    .map_err(|error| at_line(error.position().map_or(0, |p| p.line()), invalid(csv_reason(&error))))?;
                let line = record.position().map_or(0, |p| p.line());
                let row = record
                    .deserialize(Some(&headers))
                    .map_err(|error| at_line(line, invalid(csv_reason(&error))))?;
                Ok((line, row))
            }))
        }
        // Split on bytes, not with `lines()`, so that text that is not UTF-8 is
        // bad input at its line rather than a failure to read.
        InputFormat::Jsonl => Box::new(
            BufReader::new(input)
                .split(b'\n')
                .enumerate()
                .map(|(index, bytes)| {
                    let line = index as u64 + 1;
                    let bytes = bytes.with_context(|| format!("cannot read line {line} of the input"))?;
                    let text = String::from_utf8(bytes).map_err(|_| at_line(line, invalid("not valid UTF-8 text")))?;
                    if text.trim().is_empty() {
                        return Ok(None);
                    }
                    let row = serde_json::from_str::<R>(&text)
                        .map_err(|error| at_line(line, invalid(format!("not a valid row: {error}"))))?;
                    Ok(Some((line, row)))
                })
                .filter_map(Result::transpose),
        ),
    })
}

fn csv_reason(error: &csv::Error) -> String {
    match error.kind() {
        csv::ErrorKind::Deserialize { err, .. } => format!("not a valid row: {err}"),
        csv::ErrorKind::Utf8 { .. } => "not valid UTF-8 text".to_string(),
        _ => format!("not valid CSV: {error}"),
    }
}

/// Puts the line number in front of a bad-input message.
fn at_line(line: u64, error: anyhow::Error) -> anyhow::Error {
    if error.chain().any(|cause| cause.is::<InputError>()) {
        invalid(format!("line {line}: {error:#}"))
    } else {
        error.context(format!("at line {line}"))
    }
}

/// A progress bar on a terminal; nothing when stderr is redirected.
fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

fn report(what: &str, imported: usize, skipped: usize, started: Instant) -> output::Message {
    let seconds = started.elapsed().as_secs_f64();
    let rate = if seconds > 0.0 { imported as f64 / seconds } else { 0.0 };
    output::Message {
        text: format!("imported {imported} {what}, skipped {skipped} existing, in {seconds:.2} s ({rate:.0} rows/s)"),
        json: json!({ "imported": imported, "skipped": skipped, "seconds": seconds }),
    }
}
