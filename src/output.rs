//! Every write to stdout: results as comfy-table tables or as one JSON document.
//! Status and errors go to stderr elsewhere; data only comes through here.

use std::io::{IsTerminal, Write};

use clap::ValueEnum;
use comfy_table::{ContentArrangement, Table, presets};

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A table for people.
    Table,
    /// One JSON document, for scripts.
    Json,
    /// Comma-separated values with a header row, for a spreadsheet (only `report`).
    Csv,
}

/// A command's result, printable either way.
pub trait Report {
    fn to_json(&self) -> serde_json::Value;
    fn to_table(&self) -> String;

    /// Whether `-q` leaves this report out: a run that did its work with no
    /// failure. (Why anything failed goes to stderr even under `-q`, and data
    /// a command was asked for, such as a list, is always printed.)
    fn quiet_ok(&self) -> bool {
        false
    }

    /// Whether this is text for another program (a completion script, a man
    /// page), printed as it is whatever `--format` says.
    fn is_plain_text(&self) -> bool {
        false
    }

    /// The report as CSV, for the commands that offer `--format csv`.
    fn to_csv(&self) -> anyhow::Result<String> {
        anyhow::bail!("this command has no CSV output")
    }

    /// The JSON document as text. A report of many rows overrides it to
    /// serialize its rows directly, without a `Value` tree in between: the
    /// tree of a large report takes several times the memory of its rows
    /// (BENCHMARKS.md has the measurement).
    fn json_text(&self) -> serde_json::Result<String> {
        serde_json::to_string_pretty(&self.to_json())
    }
}

/// Prints a report to stdout in the chosen format.
pub fn print(format: Format, report: &dyn Report) -> anyhow::Result<()> {
    // A report may quote an error, such as `check`'s, and so a secret.
    let mut text = crate::redact::scrub(&match format {
        Format::Json if !report.is_plain_text() => report.json_text()?,
        Format::Csv if !report.is_plain_text() => report.to_csv()?,
        Format::Json | Format::Csv | Format::Table => report.to_table(),
    });
    if text.is_empty() {
        return Ok(());
    }
    if !text.ends_with('\n') {
        text.push('\n');
    }
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`reminders user list | head`) is not an error worth reporting.
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// Columns whose values are copied whole into other commands (ids,
/// addresses): a table never wraps them.
const UNBROKEN: [&str; 6] = ["id", "email", "student", "assignment", "field", "external id"];

/// The narrowest a wrapped column gets.
const MIN_WRAPPED_WIDTH: u16 = 12;

/// The width of a terminal that does not report one.
const DEFAULT_WIDTH: u16 = 100;

/// A table with box drawing on a terminal and plain aligned columns in a
/// pipe. On a terminal, long cells wrap to its width, but never an id or an
/// email address, so they can be copied into the next command.
pub fn table<R, C>(headers: &[&str], rows: R) -> String
where
    R: IntoIterator<Item = C>,
    C: IntoIterator<Item = String>,
{
    let mut table = Table::new();
    if std::io::stdout().is_terminal() {
        table
            .load_style(presets::UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic);
        if table.width().is_none_or(|width| width == 0) {
            table.set_width(DEFAULT_WIDTH);
        }
    } else {
        table.load_style(presets::NOTHING);
    }
    table.set_header(headers.iter().copied());
    for row in rows {
        table.add_row(row.into_iter().map(|cell| printable(&cell)).collect::<Vec<_>>());
    }
    for (index, header) in headers.iter().enumerate() {
        let Some(column) = table.column_mut(index) else {
            continue;
        };
        column.set_constraint(if UNBROKEN.contains(header) {
            comfy_table::ColumnConstraint::ContentWidth
        } else {
            // Narrower than this is unreadable: the table grows past the terminal instead.
            comfy_table::ColumnConstraint::LowerBoundary(comfy_table::Width::Fixed(MIN_WRAPPED_WIDTH))
        });
    }
    table
        .lines()
        .map(|line| line.trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The text with each control character shown as an escape (`\u{1b}`), so
/// that a student's name or a title can never drive the terminal (an escape
/// sequence) or break a table's lines.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A two-column key/value table, for one record or a run report.
pub fn key_values<'a>(pairs: impl IntoIterator<Item = (&'a str, String)>) -> String {
    table(
        &["field", "value"],
        pairs.into_iter().map(|(key, value)| [key.to_string(), value]),
    )
}

/// `1 reminder`, `2 reminders`: a count with its noun in the right number.
pub fn count(n: impl Into<i64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A report that is a plain message in a table and an object in JSON.
pub struct Message {
    pub text: String,
    pub json: serde_json::Value,
}

impl Report for Message {
    fn to_json(&self) -> serde_json::Value {
        self.json.clone()
    }

    fn to_table(&self) -> String {
        self.text.clone()
    }
}

/// Text for another program, printed as it is (see `Report::is_plain_text`).
pub struct PlainText(pub String);

impl Report for PlainText {
    fn to_json(&self) -> serde_json::Value {
        serde_json::Value::String(self.0.clone())
    }

    fn to_table(&self) -> String {
        self.0.clone()
    }

    fn is_plain_text(&self) -> bool {
        true
    }
}

/// One record that a command created or changed: the list's table, and in
/// JSON the object itself rather than an array of one. `-q` leaves it out:
/// the command did what was asked.
pub struct Single<R: Report>(pub R);

impl<R: Report> Report for Single<R> {
    fn to_json(&self) -> serde_json::Value {
        match self.0.to_json() {
            serde_json::Value::Array(mut items) if items.len() == 1 => items.remove(0),
            other => other,
        }
    }

    fn to_table(&self) -> String {
        self.0.to_table()
    }

    fn quiet_ok(&self) -> bool {
        true
    }
}

/// The report of a job that did its work (a prune, an import, a migration, a
/// removal): `-q` leaves it out, as it does a sending run's that had no failure.
pub struct Done(pub Message);

impl Report for Done {
    fn to_json(&self) -> serde_json::Value {
        self.0.to_json()
    }

    fn to_table(&self) -> String {
        self.0.to_table()
    }

    fn quiet_ok(&self) -> bool {
        true
    }
}
