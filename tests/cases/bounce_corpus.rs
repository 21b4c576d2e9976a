//! `reminders bounces` against sisimai's public corpus of 629 real reports
//! (tests/data/set-of-emails): DSNs, non-standard NDRs, ARF complaints,
//! Amazon SES notices and auto-replies from some sixty mail systems.
//!
//! Each report is made about one of our messages, as a real one would be: its
//! failed recipient is our student, it quotes our Message-ID, and it reached
//! that message's VERP address. What Sisimai 4.25 reads in each
//! (manifest.tsv) is the reference: a bad address must count toward the
//! three-bounces rule, a refusal that is the sender's fault must cost the
//! student nothing, a complaint must opt the student out, and a delay or an
//! auto-reply must change nothing. The figures and every miss are printed
//! before the one assertion, because the list of misses is what the
//! classifier is worked from.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use base64::Engine;

use super::bounces::sending;
use crate::common::smtp::{Received, SmtpServer};
use crate::common::{Backend, TestEnv, on_both_backends};

const NOW: &str = "2030-03-01T12:00:00Z";
/// The reminders' assignments are due 24 hours after `NOW`.
const DUE: &str = "2030-03-02T12:00:00.000000Z";

/// Sisimai's reasons for an address that does not exist or takes no mail.
const BAD_ADDRESS: &[&str] = &["userunknown", "hostunknown", "hasmoved", "suspend", "notaccept"];
/// Sisimai's reasons for a refusal of the sender or of the message, not of the address.
const SENDERS_FAULT: &[&str] = &[
    "blocked",
    "securityerror",
    "spamdetected",
    "policyviolation",
    "rejected",
    "toomanyconn",
    "speeding",
    "norelaying",
    "mesgtoobig",
    "exceedlimit",
    "contenterror",
    "virusdetected",
    "mailererror",
    "syntaxerror",
];

/// Bad-address reports where we part from Sisimai on purpose, each with why.
/// They are recorded as failures that blame nobody (the safe side), printed
/// with the figures, and not counted as misses.
const DISAGREEMENTS: &[(&str, &str)] = &[
    (
        "lhost-postfix-80.eml",
        "the server says our MAIL FROM domain is listed in Spamhaus: our sending, not the address",
    ),
    (
        "lhost-trendmicro-03.eml",
        "\"Unable to deliver message\" names no cause",
    ),
    ("rhost-messagelabs-03.eml", "\"542 ... Rejected\" names no cause"),
    (
        "lhost-sendmail-14.eml",
        "a bounce that a person forwarded, quoted with '>': not a mail system's report",
    ),
    (
        "lhost-x5-01.eml",
        "its failed address is only inside a second report attached to the first",
    ),
];

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/set-of-emails")
}

/// What Sisimai reads in one report (its first record, for a report about
/// several recipients).
#[derive(Debug, Clone)]
struct Record {
    file: String,
    recipient: String,
    reason: String,
    status: String,
    action: String,
    feedback_type: String,
    message_id: String,
}

/// The first record of each report in manifest.tsv, in the manifest's order.
/// The file is read lossily: a few diagnostics quote ISO-2022-JP or Latin-1.
fn manifest() -> Vec<Record> {
    let raw = std::fs::read(corpus().join("manifest.tsv")).unwrap();
    let text = String::from_utf8_lossy(&raw);
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    assert_eq!(
        header[..9],
        [
            "file",
            "recipient",
            "reason",
            "status",
            "action",
            "softbounce",
            "feedbacktype",
            "smtpagent",
            "messageid"
        ]
    );
    let mut records: Vec<Record> = Vec::new();
    for line in lines.filter(|line| !line.is_empty()) {
        let fields: Vec<&str> = line.split('\t').collect();
        if records.iter().any(|record| record.file == fields[0]) {
            continue;
        }
        records.push(Record {
            file: fields[0].to_string(),
            recipient: fields[1].to_string(),
            reason: fields[2].to_string(),
            status: fields[3].to_string(),
            action: fields[4].to_string(),
            feedback_type: fields[6].to_string(),
            message_id: fields[8].to_string(),
        });
    }
    records
}

/// What a report about our message must lead to, judged from Sisimai's reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Expect {
    /// A 'bounced' send log: it counts toward the three-in-a-row opt-out.
    BadAddress,
    /// No 'bounced' send log and no opt-out.
    SendersFault,
    /// The student is opted out.
    Complaint,
    /// No send log from the report and no opt-out.
    NotActedOn,
    /// Nothing asserted (a full mailbox, an expiry, a filter...), only counted.
    Other,
}

impl Expect {
    fn of(record: &Record) -> Expect {
        let reason = record.reason.as_str();
        // An auth-failure report (RFC 6591) says our mail failed SPF or DKIM
        // somewhere; nobody complained, so it is no reason to opt anyone out.
        if reason == "feedback" && record.feedback_type == "auth-failure" {
            Expect::SendersFault
        } else if reason == "feedback" {
            Expect::Complaint
        } else if reason == "vacation" || reason == "delivered" || record.action == "delayed" {
            Expect::NotActedOn
        } else if BAD_ADDRESS.contains(&reason) && record.status.starts_with("5.") {
            Expect::BadAddress
        } else if SENDERS_FAULT.contains(&reason) {
            Expect::SendersFault
        } else {
            Expect::Other
        }
    }
}

/// Whether `byte` can be part of an address or Message-ID next to a match,
/// so that `ann@x.example` is not found inside `joann@x.example`.
fn is_address_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"._+-".contains(&byte)
}

/// `text` with every whole occurrence of `needle` (ASCII case-insensitive)
/// replaced by `with`.
fn replace_whole(text: &[u8], needle: &str, with: &str) -> Vec<u8> {
    let needle = needle.as_bytes();
    if needle.is_empty() {
        return text.to_vec();
    }
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let end = i + needle.len();
        let whole = end <= text.len()
            && text[i..end].eq_ignore_ascii_case(needle)
            // "=3D" is an encoded "=" in quoted-printable text (`?e=3Dann@x.example`).
            && !(i > 0 && is_address_byte(text[i - 1]) && !text[..i].ends_with(b"=3D"))
            && !match text.get(end) {
                // A full stop ends a sentence, unless a domain goes on after it.
                Some(b'.') => text.get(end + 1).is_some_and(u8::is_ascii_alphanumeric),
                Some(&byte) => is_address_byte(byte),
                None => false,
            };
        if whole {
            out.extend_from_slice(with.as_bytes());
            i = end;
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
    out
}

/// `text` with every `(needle, replacement)` applied in order.
fn replace_all(text: &[u8], swaps: &[(&str, &str)]) -> Vec<u8> {
    swaps
        .iter()
        .fold(text.to_vec(), |text, (needle, with)| replace_whole(&text, needle, with))
}

/// A line without its line ending.
fn bare(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The line ending `line` uses (CRLF or LF).
fn ending(line: &[u8]) -> &'static [u8] {
    if line.ends_with(b"\r\n") { b"\r\n" } else { b"\n" }
}

/// A body transfer encoding that hides an address from a plain search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Base64,
    QuotedPrintable,
}

/// The encoding a `Content-Transfer-Encoding` header line declares, if it hides text.
fn declared_encoding(line: &[u8]) -> Option<Encoding> {
    let line = String::from_utf8_lossy(bare(line)).to_ascii_lowercase();
    let value = line.strip_prefix("content-transfer-encoding:")?.trim();
    match value {
        "base64" => Some(Encoding::Base64),
        "quoted-printable" => Some(Encoding::QuotedPrintable),
        _ => None,
    }
}

/// Whether a line is (part of) a base64 body.
fn is_base64_line(line: &[u8]) -> bool {
    let line = bare(line).trim_ascii_end();
    !line.is_empty() && line.iter().all(|&b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
}

/// A base64 body (its lines) with the swaps made in the decoded text,
/// re-encoded in 76-character lines; as it was if nothing changed or it
/// does not decode.
fn swap_in_base64(lines: &[&[u8]], swaps: &[(&str, &str)]) -> Vec<u8> {
    let engine = base64::engine::general_purpose::STANDARD;
    let joined: Vec<u8> = lines
        .iter()
        .flat_map(|line| bare(line).trim_ascii_end().to_vec())
        .collect();
    let Ok(decoded) = engine.decode(&joined) else {
        return lines.concat();
    };
    let swapped = replace_all(&decoded, swaps);
    if swapped == decoded {
        return lines.concat();
    }
    let eol = ending(lines[0]);
    let encoded = engine.encode(&swapped);
    let mut out = Vec::new();
    for chunk in encoded.as_bytes().chunks(76) {
        out.extend_from_slice(chunk);
        out.extend_from_slice(eol);
    }
    out
}

/// A quoted-printable body (its lines, up to the next delimiter line) with the
/// swaps made. A logical line that soft line breaks split an address or
/// Message-ID across is joined into one (the decoded text is the same);
/// every other line stays as it was.
fn swap_in_quoted_printable(lines: &[&[u8]], swaps: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < lines.len() {
        // One logical line: up to a line that does not end in a soft break.
        let mut end = start;
        while end + 1 < lines.len() && bare(lines[end]).ends_with(b"=") {
            end += 1;
        }
        let group = &lines[start..=end];
        let mut joined: Vec<u8> = group[..group.len() - 1]
            .iter()
            .flat_map(|line| bare(line).strip_suffix(b"=").unwrap().to_vec())
            .collect();
        joined.extend_from_slice(group[group.len() - 1]);
        let swapped = replace_all(&joined, swaps);
        if swapped != joined && group.len() > 1 {
            out.extend_from_slice(&swapped);
        } else {
            group
                .iter()
                .for_each(|line| out.extend_from_slice(&replace_all(line, swaps)));
        }
        start = end + 1;
    }
    out
}

/// The multipart boundary a header line declares (`boundary=...`, quoted or not), if any.
fn declared_boundary(line: &[u8]) -> Option<Vec<u8>> {
    let lower = line.to_ascii_lowercase();
    let at = lower.windows(9).position(|window| window == b"boundary=")? + 9;
    let value = &bare(line)[at..];
    let value = match value.strip_prefix(b"\"") {
        Some(quoted) => quoted.split(|&b| b == b'"').next().unwrap_or_default(),
        None => value
            .split(|&b| b == b';' || b.is_ascii_whitespace())
            .next()
            .unwrap_or_default(),
    };
    (!value.is_empty()).then(|| value.to_vec())
}

/// Whether `line` is a delimiter line of one of the `boundaries` seen so
/// far (a body line may start with `--` too: "----- Original message -----").
fn is_delimiter(line: &[u8], boundaries: &[Vec<u8>]) -> bool {
    let line = bare(line);
    line.starts_with(b"--") && boundaries.iter().any(|boundary| line[2..].starts_with(boundary))
}

/// `raw` with the swaps made everywhere a reader could find the text: in
/// plain lines, in base64 bodies and across quoted-printable soft breaks.
/// A MIME entity's encoding is the last `Content-Transfer-Encoding` seen
/// before the blank line that starts its body; a delimiter line forgets it.
fn swap_everywhere(raw: &[u8], swaps: &[(&str, &str)]) -> Vec<u8> {
    let lines: Vec<&[u8]> = raw.split_inclusive(|&b| b == b'\n').collect();
    let mut out = Vec::with_capacity(raw.len());
    let mut boundaries: Vec<Vec<u8>> = Vec::new();
    let mut declared = None;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        out.extend_from_slice(&replace_all(line, swaps));
        i += 1;
        if let Some(boundary) = declared_boundary(line) {
            boundaries.push(boundary);
        }
        if is_delimiter(line, &boundaries) {
            declared = None;
        } else if let Some(encoding) = declared_encoding(line) {
            declared = Some(encoding);
        } else if bare(line).is_empty()
            && let Some(encoding) = declared.take()
        {
            let body_end = match encoding {
                Encoding::Base64 => (i..lines.len()).find(|&n| !is_base64_line(lines[n])),
                Encoding::QuotedPrintable => (i..lines.len()).find(|&n| is_delimiter(lines[n], &boundaries)),
            }
            .unwrap_or(lines.len());
            if body_end > i {
                out.extend_from_slice(&match encoding {
                    Encoding::Base64 => swap_in_base64(&lines[i..body_end], swaps),
                    Encoding::QuotedPrintable => swap_in_quoted_printable(&lines[i..body_end], swaps),
                });
            }
            i = body_end;
        }
    }
    out
}

/// The report as Postfix delivers it to the bounce mailbox: no mbox `From `
/// line (a Maildir file has none), `Delivered-To` the VERP address first, and
/// a Message-ID of its own in place of the report's (reports are told apart
/// by it, and the corpus repeats some, or has none).
fn as_delivered(raw: &[u8], verp: &str, own_message_id: &str) -> Vec<u8> {
    let raw = if raw.starts_with(b"From ") {
        raw.splitn(2, |&b| b == b'\n').nth(1).unwrap_or_default()
    } else {
        raw
    };
    let lines: Vec<&[u8]> = raw.split_inclusive(|&b| b == b'\n').collect();
    let eol = lines.first().map_or(&b"\n"[..], |line| ending(line));
    let mut out = Vec::with_capacity(raw.len() + 200);
    for header in [
        format!("Delivered-To: {verp}"),
        format!("Message-ID: <{own_message_id}>"),
    ] {
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(eol);
    }
    let head_end = lines
        .iter()
        .position(|line| bare(line).is_empty())
        .unwrap_or(lines.len());
    let mut dropping = false;
    for (n, line) in lines.iter().enumerate() {
        if n < head_end {
            let continuation = line.starts_with(b" ") || line.starts_with(b"\t");
            dropping = if continuation {
                dropping
            } else {
                line.len() >= 11 && line[..11].eq_ignore_ascii_case(b"message-id:")
            };
            if dropping {
                continue;
            }
        }
        out.extend_from_slice(line);
    }
    out
}

/// One corpus report made about our message `sent`: Sisimai's recipient
/// becomes the student, its Message-ID ours, and it reached the VERP address.
fn personalise(record: &Record, sent: &Received, serial: usize) -> Vec<u8> {
    let raw = std::fs::read(corpus().join("maildir/bsd").join(&record.file)).unwrap();
    let ours = sent.header("Message-ID").unwrap();
    let ours = ours.trim_matches(['<', '>']);
    // The Message-ID first: a few contain the recipient's address.
    let swaps = [
        (record.message_id.as_str(), ours),
        (record.recipient.as_str(), sent.to[0].as_str()),
    ];
    let swapped = swap_everywhere(&raw, &swaps);
    as_delivered(&swapped, &sent.from, &report_message_id(serial))
}

/// The Message-ID given to the report numbered `serial`.
fn report_message_id(serial: usize) -> String {
    format!("corpus-{serial:04}@mx.example")
}

/// The student the report numbered `serial` is about.
fn student(serial: usize) -> String {
    format!("s{serial:04}@students.example")
}

/// One reminder to each student, from one assignment each due 24 hours after
/// `NOW`, in one `send` run; the messages the server received, in the
/// students' order. The students and assignments go straight into the
/// database: 1,200 runs of `user add` and `assignment add` would be most of
/// the test's time.
fn send_one_each(env: &TestEnv, smtp: &SmtpServer, students: &[String]) -> Vec<Received> {
    let ids: Vec<String> = students.iter().map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let users: Vec<String> = students
        .iter()
        .zip(&ids)
        .map(|(email, id)| format!("('{id}', '{email}', 'UTC')"))
        .collect();
    env.execute(&format!(
        "INSERT INTO users (id, email, timezone) VALUES {}",
        users.join(", ")
    ));
    let assignments: Vec<String> = students
        .iter()
        .zip(&ids)
        .map(|(email, id)| format!("('{}', 'Essay for {email}', '{id}', '{DUE}')", uuid::Uuid::new_v4()))
        .collect();
    env.execute(&format!(
        "INSERT INTO assignments (id, title, student_id, due_at) VALUES {}",
        assignments.join(", ")
    ));
    let run = env.send_24h(NOW, &[]);
    assert_eq!(run.code(), 0, "{}", run.describe());
    let mut by_student: HashMap<String, Received> = smtp
        .received()
        .into_iter()
        .map(|message| (message.to[0].clone(), message))
        .collect();
    assert_eq!(by_student.len(), students.len());
    students
        .iter()
        .map(|student| by_student.remove(student).unwrap())
        .collect()
}

/// What the database holds about one report's student after `bounces`.
#[derive(Debug, Default, Clone)]
struct Outcome {
    /// The report's row: kind, verified or not, and its reason.
    report: Option<String>,
    /// (status, error) of the send logs the report wrote.
    logs: Vec<(String, String)>,
    /// Why the student is opted out.
    opted_out: Option<String>,
    /// What `bounces` said of the report on stderr (why it was set aside or
    /// not believed), if anything.
    warning: Option<String>,
}

impl Outcome {
    fn bounced(&self) -> bool {
        self.logs.iter().any(|(status, _)| status == "bounced")
    }

    /// A send log written from the report: bounced, or failed "reported later".
    fn acted_on(&self) -> bool {
        self.bounced()
            || self
                .logs
                .iter()
                .any(|(status, error)| status == "failed" && error.starts_with("reported later"))
    }

    fn describe(&self) -> String {
        let logs = if self.logs.is_empty() {
            "no send log".to_string()
        } else {
            let logs: Vec<String> = self
                .logs
                .iter()
                .map(|(status, error)| format!("{status}: {error}"))
                .collect();
            format!("send log {}", logs.join(" / "))
        };
        let report = self.report.as_deref().unwrap_or("row not found under its Message-ID");
        let opted_out = self
            .opted_out
            .as_deref()
            .map_or(String::new(), |why| format!("; opted out ({why})"));
        let warning = self
            .warning
            .as_deref()
            .map_or(String::new(), |said| format!("; said: {said}"));
        one_line(&format!("report {report}; {logs}{opted_out}{warning}"), 400)
    }
}

/// `text` on one line, cut to `max` characters.
fn one_line(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &flat[..cut]),
        None => flat,
    }
}

/// Each report's outcome, by serial, read in three queries (not three per
/// report), with what the run said of it on `stderr` (a warning names the
/// Maildir file, which starts with the serial).
fn outcomes(env: &TestEnv, count: usize, stderr: &str) -> Vec<Outcome> {
    let mut outcomes = vec![Outcome::default(); count];
    for line in stderr.lines() {
        let Some(rest) = line.strip_prefix("warning: ") else {
            continue;
        };
        let serial = rest
            .get(..4)
            .and_then(|digits| digits.parse::<usize>().ok())
            .filter(|&n| n < count);
        if let (Some(serial), Some((_, said))) = (serial, rest.split_once(": ")) {
            outcomes[serial].warning = Some(said.to_string());
        }
    }
    let serial_of_student = |email: &str| {
        email
            .strip_prefix('s')?
            .strip_suffix("@students.example")?
            .parse::<usize>()
            .ok()
            .filter(|&n| n < count)
    };
    let rows = env.texts(
        "SELECT CAST(to_email || '\t' || status || '\t' || COALESCE(error, '') AS TEXT) AS v FROM send_logs \
         WHERE status = 'bounced' OR error LIKE 'reported later%'",
    );
    for row in rows.into_iter().flatten() {
        let mut fields = row.splitn(3, '\t');
        let (email, status, error) = (fields.next().unwrap(), fields.next().unwrap(), fields.next().unwrap());
        if let Some(serial) = serial_of_student(email) {
            outcomes[serial].logs.push((status.to_string(), error.to_string()));
        }
    }
    let rows = env.texts(
        "SELECT CAST(email || '\t' || COALESCE(opt_out_reason, 'manual') AS TEXT) AS v FROM users WHERE contact_opt_out",
    );
    for row in rows.into_iter().flatten() {
        let (email, why) = row.split_once('\t').unwrap();
        if let Some(serial) = serial_of_student(email) {
            outcomes[serial].opted_out = Some(why.to_string());
        }
    }
    let rows = env.texts(
        "SELECT CAST(report_key || '\t' || kind || ' ' || CASE WHEN verified THEN 'verified' ELSE 'unverified' END \
         || ' (' || COALESCE(reason, '') || ')' AS TEXT) AS v FROM bounce_reports",
    );
    for row in rows.into_iter().flatten() {
        let (key, what) = row.split_once('\t').unwrap();
        let serial = key
            .find("corpus-")
            .and_then(|at| key.get(at + 7..at + 11))
            .and_then(|digits| digits.parse::<usize>().ok())
            .filter(|&n| n < count);
        if let Some(serial) = serial {
            outcomes[serial].report = Some(what.to_string());
        }
    }
    outcomes
}

/// Whether `outcome` meets `expect`; `None` when nothing is asserted.
fn met(expect: Expect, outcome: &Outcome) -> Option<bool> {
    match expect {
        Expect::BadAddress => Some(outcome.bounced()),
        Expect::SendersFault => Some(!outcome.bounced() && outcome.opted_out.is_none()),
        Expect::Complaint => Some(matches!(
            outcome.opted_out.as_deref(),
            Some("complaint" | "unsubscribed")
        )),
        Expect::NotActedOn => Some(!outcome.acted_on() && outcome.opted_out.is_none()),
        Expect::Other => None,
    }
}

on_both_backends! {
    fn sisimai_corpus_reports_about_our_messages(env: &TestEnv) {
        let records = manifest();
        assert_eq!(records.len(), 629, "one record per report in the corpus");
        let smtp = sending(env);
        let students: Vec<String> = (0..records.len()).map(student).collect();
        let sent = send_one_each(env, &smtp, &students);

        let dir = env.path("Maildir");
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        for (serial, (record, message)) in records.iter().zip(&sent).enumerate() {
            let name = format!("{serial:04}.{}", record.file.trim_end_matches(".eml"));
            std::fs::write(dir.join("new").join(name), personalise(record, message, serial)).unwrap();
        }
        let run = env.run(&["bounces", dir.to_str().unwrap(), "--format", "json"]);
        assert_eq!(run.code(), 0, "{}", run.describe());
        let counts = run.report();
        let outcomes = outcomes(env, records.len(), &run.stderr());

        // The figures, then every miss, whatever the assertion below says.
        let backend = match env.backend {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        };
        let judged: Vec<(Expect, Option<bool>)> = records
            .iter()
            .zip(&outcomes)
            .map(|(record, outcome)| (Expect::of(record), met(Expect::of(record), outcome)))
            .collect();
        let tally = |expect: Expect| {
            let of: Vec<bool> = judged.iter().filter(|(e, _)| *e == expect).filter_map(|(_, m)| *m).collect();
            (of.iter().filter(|&&m| m).count(), of.len())
        };
        let (bad_met, bad) = tally(Expect::BadAddress);
        let (fault_met, fault) = tally(Expect::SendersFault);
        let (complaint_met, complaint) = tally(Expect::Complaint);
        let (quiet_met, quiet) = tally(Expect::NotActedOn);
        println!("sisimai corpus on {backend}: bounces counted {counts}");
        println!("bad addresses (Sisimai, 5.x.x) recorded as bounces: {bad_met} of {bad} ({backend})");
        println!("sender's faults that cost the student: {} of {fault} ({backend})", fault - fault_met);
        println!("complaints that opted out: {complaint_met} of {complaint} ({backend})");
        println!("delays and auto-replies acted on: {} of {quiet} ({backend})", quiet - quiet_met);
        println!(
            "reports not read (set aside as unrecognised): {} of {} ({backend})",
            counts["unrecognised"],
            records.len()
        );
        // The rest, asserted nothing: what became of each of Sisimai's reasons.
        let mut others: BTreeMap<String, BTreeMap<&str, usize>> = BTreeMap::new();
        for (record, outcome) in records.iter().zip(&outcomes) {
            if Expect::of(record) == Expect::Other {
                let what = if outcome.opted_out.is_some() {
                    "opted out"
                } else if outcome.bounced() {
                    "bounced"
                } else if outcome.acted_on() {
                    "failed"
                } else {
                    "nothing"
                };
                let reason = if record.reason.is_empty() { "(none)" } else { &record.reason };
                *others.entry(format!("{reason}/{}{}", record.action, record.feedback_type)).or_default().entry(what).or_default() += 1;
            }
        }
        for (reason, what) in &others {
            let what: Vec<String> = what.iter().map(|(what, n)| format!("{what} {n}")).collect();
            println!("  not asserted, Sisimai {reason}: {}", what.join(", "));
        }
        for (file, why) in DISAGREEMENTS {
            println!("  not counted as a miss, {file}: {why}");
        }
        let mut misses: Vec<(Expect, String)> = records
            .iter()
            .zip(&outcomes)
            .zip(&judged)
            .filter(|(_, (_, met))| *met == Some(false))
            .filter(|((record, _), _)| !DISAGREEMENTS.iter().any(|(file, _)| *file == record.file))
            .map(|((record, outcome), (expect, _))| {
                let sisimai = format!(
                    "{} {} {} {}",
                    record.reason, record.status, record.action, record.feedback_type
                );
                (*expect, format!("{} [Sisimai: {}]: {}", record.file, one_line(&sisimai, 80), outcome.describe()))
            })
            .collect();
        misses.sort();
        println!("misses ({} on {backend}):", misses.len());
        for (expect, miss) in &misses {
            println!("  {expect:?}: {miss}");
        }

        assert!(!run.stderr().contains("panicked"), "{}", run.describe());
        let list: Vec<String> = misses.iter().map(|(expect, miss)| format!("{expect:?}: {miss}")).collect();
        assert!(misses.is_empty(), "{} reports miss what Sisimai's reading asks:\n{}", misses.len(), list.join("\n"));
    }
}

/// The personalisation helpers, on small made-up messages.
#[test]
fn personalising_finds_the_address_in_plain_base64_and_quoted_printable_text() {
    let swaps = [("old@x.example", "new@students.example")];
    // Whole addresses only, in any case.
    assert_eq!(
        replace_all(
            b"To: <OLD@x.example>, joold@x.example, old@x.example.co, ?e=3Dold@x.example.\n",
            &swaps
        ),
        b"To: <new@students.example>, joold@x.example, old@x.example.co, ?e=3Dnew@students.example.\n"
    );
    // In a base64 body: decoded, replaced, re-encoded.
    let engine = base64::engine::general_purpose::STANDARD;
    let body = engine.encode("Your message to old@x.example could not be delivered.\r\n".repeat(3));
    let lines: Vec<String> = body
        .as_bytes()
        .chunks(60)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    let raw = format!(
        "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--b--\r\n",
        lines.join("\r\n")
    );
    let swapped = String::from_utf8(swap_everywhere(raw.as_bytes(), &swaps)).unwrap();
    let encoded: String = swapped
        .split("\r\n\r\n")
        .nth(2)
        .unwrap()
        .split("\r\n--b--")
        .next()
        .unwrap()
        .replace("\r\n", "");
    let decoded = String::from_utf8(engine.decode(encoded).unwrap()).unwrap();
    assert_eq!(decoded.matches("new@students.example").count(), 3, "{decoded}");
    assert!(swapped.lines().all(|line| line.len() <= 76), "{swapped}");
    // Across a quoted-printable soft break: that line is joined.
    // A body line may start with "--" without ending the part.
    let raw = "Content-Type: multipart/mixed; boundary=\"b\"\n\n--b\nContent-Transfer-Encoding: quoted-printable\n\n\
               ----- Original message -----\nDelivery to old@x.exa=\nmple failed.\nOther=\n line.\n--b--\n";
    assert_eq!(
        String::from_utf8(swap_everywhere(raw.as_bytes(), &swaps)).unwrap(),
        raw.replace("old@x.exa=\nmple", "new@students.example")
    );
    // Delivered as Postfix would: no mbox line, the VERP address, a Message-ID of its own.
    let delivered = as_delivered(
        b"From MAILER-DAEMON Mon Nov 23 08:00:00 2026\r\nMessage-ID:\r\n <old@mx>\r\nSubject: x\r\n\r\nMessage-ID: <kept>\r\n",
        "bounces+t@school.example",
        "corpus-0001@mx.example",
    );
    assert_eq!(
        String::from_utf8(delivered).unwrap(),
        "Delivered-To: bounces+t@school.example\r\nMessage-ID: <corpus-0001@mx.example>\r\nSubject: x\r\n\r\nMessage-ID: <kept>\r\n"
    );
}
