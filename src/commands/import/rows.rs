//! The rows of an import file, streamed, each with the line it starts on,
//! and the bad rows collected so that one run reports them all.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read};
use std::path::Path;
use std::rc::Rc;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde::de::DeserializeOwned;

use crate::cli::InputFormat;
use crate::error::{InputError, invalid};

/// The most bad rows listed; the rest are counted.
const BAD_ROWS_SHOWN: usize = 100;

/// A row with its line number, or why the row could not be read (bad input,
/// with the line in front), or a failure to read the input at all.
pub type NumberedRow<R> = anyhow::Result<(u64, R)>;

/// The format of an input: as given, else from the file's extension; an
/// `https://` (or `http://`) URL is an iCalendar feed. A missing file is
/// named as missing, whatever its name.
pub fn input_format(file: &str, given: Option<InputFormat>) -> anyhow::Result<InputFormat> {
    let is_url = file.starts_with("https://") || file.starts_with("http://");
    if !is_url && file != "-" && !Path::new(file).exists() {
        return Err(invalid(format!("cannot read `{file}`: there is no such file")));
    }
    if let Some(format) = given {
        return Ok(format);
    }
    if is_url {
        return Ok(InputFormat::Ics);
    }
    match Path::new(file).extension().and_then(|ext| ext.to_str()) {
        Some("csv") => Ok(InputFormat::Csv),
        Some("jsonl" | "ndjson") => Ok(InputFormat::Jsonl),
        Some("ics" | "ical" | "ifb" | "icalendar") => Ok(InputFormat::Ics),
        _ => Err(invalid(format!(
            "cannot tell the format of `{file}`: name it .csv, .jsonl or .ics, or pass --input-format"
        ))),
    }
}

/// The columns of an import file: those a row must have, and all it may.
pub struct Columns {
    pub required: &'static [&'static str],
    pub all: &'static [&'static str],
}

/// Opens a CSV or JSON Lines input and yields its rows with their line
/// numbers, streaming. A CSV header that lacks a required column is bad
/// input at line 1, shown beside the header expected.
pub fn open_rows<R: DeserializeOwned + 'static>(
    file: &str,
    format: InputFormat,
    columns: &Columns,
) -> anyhow::Result<Box<dyn Iterator<Item = NumberedRow<R>>>> {
    let progress = progress_bar();
    let input: Box<dyn Read> = if file == "-" {
        Box::new(progress.wrap_read(std::io::stdin()))
    } else {
        let file = File::open(file).map_err(|error| invalid(format!("cannot read `{file}`: {error}")))?;
        progress.set_length(file.metadata().map(|m| m.len()).unwrap_or(0));
        Box::new(progress.wrap_read(file))
    };
    Ok(match format {
        InputFormat::Csv => {
            let newlines = Rc::new(RefCell::new(Newlines::default()));
            let counted = CountingReader {
                inner: input,
                newlines: Rc::clone(&newlines),
            };
            let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::Headers).from_reader(counted);
            let headers = reader
                .headers()
                .map_err(|error| invalid(format!("line 1: {}", csv_reason(&error))))?
                .clone();
            check_header(&headers, columns)?;
            let line_of = move |position: Option<&csv::Position>| {
                newlines.borrow_mut().line_at(position.map_or(0, csv::Position::byte))
            };
            Box::new(reader.into_records().map(move |record| {
                let record = record.map_err(|error| at_line(line_of(error.position()), invalid(csv_reason(&error))))?;
                let line = line_of(record.position());
                let row = record
                    .deserialize(Some(&headers))
                    .map_err(|error| at_line(line, invalid(csv_reason(&error))))?;
                Ok((line, row))
            }))
        }
        InputFormat::Ics => unreachable!("iCalendar feeds are read whole, by `feed`"),
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

/// The newlines read so far and not yet passed, to number CSV records by
/// line. The csv crate's own count puts a record that follows a CRLF (what
/// Excel and most LMS exports write) on the line before: its position is
/// the LF that ends the previous line.
#[derive(Default)]
struct Newlines {
    /// Byte offsets of the newlines read and not yet passed.
    ahead: VecDeque<u64>,
    read: u64,
    passed: u64,
}

impl Newlines {
    /// The line a record starting at byte `start` is on.
    fn line_at(&mut self, start: u64) -> u64 {
        while self.ahead.front().is_some_and(|&newline| newline <= start) {
            self.ahead.pop_front();
            self.passed += 1;
        }
        self.passed + 1
    }
}

struct CountingReader<R> {
    inner: R,
    newlines: Rc<RefCell<Newlines>>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let count = self.inner.read(buffer)?;
        let mut newlines = self.newlines.borrow_mut();
        let base = newlines.read;
        newlines.ahead.extend(
            buffer[..count]
                .iter()
                .enumerate()
                .filter(|(_, byte)| **byte == b'\n')
                .map(|(at, _)| base + at as u64),
        );
        newlines.read += count as u64;
        Ok(count)
    }
}

fn csv_reason(error: &csv::Error) -> String {
    match error.kind() {
        csv::ErrorKind::Deserialize { err, .. } => format!("not a valid row: {err}"),
        csv::ErrorKind::Utf8 { .. } => "not valid UTF-8 text".to_string(),
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => format!(
            "this row has {} where the header has {expected_len}",
            match len {
                1 => "1 field".to_string(),
                n => format!("{n} fields"),
            }
        ),
        _ => format!("not valid CSV: {error}"),
    }
}

/// Refuses a header that lacks a required column, naming what was found and
/// what is expected: otherwise every row would be blamed, from line 2 on,
/// for a missing field.
fn check_header(headers: &csv::StringRecord, columns: &Columns) -> anyhow::Result<()> {
    let found: Vec<&str> = headers.iter().collect();
    let missing: Vec<&str> = columns
        .required
        .iter()
        .copied()
        .filter(|column| !found.contains(column))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let separator = match (found.as_slice(), [';', '\t', '|']) {
        ([only], candidates) => candidates.into_iter().find(|c| only.contains(*c)),
        _ => None,
    };
    let hint = match separator {
        Some(separator) => format!(
            " (the columns must be separated by commas, not `{}`)",
            separator.escape_default()
        ),
        None => " (column names are lower case, as shown)".to_string(),
    };
    Err(invalid(format!(
        "line 1: the header is `{}`, but a header with {} is expected: `{}`{hint}",
        found.join(","),
        missing
            .iter()
            .map(|column| format!("`{column}`"))
            .collect::<Vec<_>>()
            .join(" and "),
        columns.all.join(","),
    )))
}

/// Puts the line number in front of a bad-input message.
pub fn at_line(line: u64, error: anyhow::Error) -> anyhow::Error {
    if error.chain().any(|cause| cause.is::<InputError>()) {
        invalid(format!("line {line}: {error:#}"))
    } else {
        error.context(format!("at line {line}"))
    }
}

/// The bad rows of an import: every one is reported (up to a hundred), and
/// nothing is written.
#[derive(Default)]
pub struct BadRows {
    shown: Vec<String>,
    more: usize,
}

impl BadRows {
    /// The value, or `None` when it is bad input at `line` (noted); a failure
    /// that is not bad input stops the import.
    pub fn check<T>(&mut self, line: u64, value: anyhow::Result<T>) -> anyhow::Result<Option<T>> {
        match value {
            Ok(value) => Ok(Some(value)),
            Err(error) => {
                self.note(at_line(line, error))?;
                Ok(None)
            }
        }
    }

    /// Notes a row that could not be read; a failure that is not bad input
    /// stops the import.
    pub fn note(&mut self, error: anyhow::Error) -> anyhow::Result<()> {
        if !error.chain().any(|cause| cause.is::<InputError>()) {
            return Err(error);
        }
        if self.shown.len() < BAD_ROWS_SHOWN {
            self.shown.push(format!("{error:#}"));
        } else {
            self.more += 1;
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.shown.is_empty()
    }

    /// All the bad rows: each on a line of stderr (even with `-q`: they are
    /// what to fix), and one error that says how many.
    pub fn into_error(self) -> anyhow::Error {
        let total = self.shown.len() + self.more;
        if total == 1 {
            return invalid(format!("{}; nothing was written", self.shown[0]));
        }
        for row in &self.shown {
            crate::log::explain!("{}", crate::output::printable(row));
        }
        if self.more > 0 {
            crate::log::explain!("… and {} more", self.more);
        }
        invalid(format!("{total} bad rows (listed above); nothing was written"))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(text: &str) -> Vec<u64> {
        let path = std::env::temp_dir().join(format!("rows-{}.csv", uuid::Uuid::new_v4()));
        std::fs::write(&path, text).unwrap();
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        struct Row {
            a: String,
        }
        let columns = Columns {
            required: &["a"],
            all: &["a"],
        };
        let lines = open_rows::<Row>(path.to_str().unwrap(), InputFormat::Csv, &columns)
            .unwrap()
            .map(|row| row.unwrap().0)
            .collect();
        std::fs::remove_file(path).unwrap();
        lines
    }

    #[test]
    fn csv_lines_are_right_for_lf_crlf_and_quoted_line_breaks() {
        assert_eq!(lines_of("a\nx\ny\nz\n"), [2, 3, 4]);
        assert_eq!(lines_of("a\r\nx\r\ny\r\nz\r\n"), [2, 3, 4]);
        assert_eq!(lines_of("a\r\n\"x\r\nstill x\"\r\ny\r\n"), [2, 4]);
        assert_eq!(lines_of("a\n\"x\nstill x\"\ny"), [2, 4]);
    }
}
