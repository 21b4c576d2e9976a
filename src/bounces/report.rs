//! Reading one raw report (a DSN, an ARF complaint, an unsubscribe mail, an auto-reply) into what it says, never panicking.
//!
//! MIME is parsed by `mail-parser`; the per-recipient fields of a DSN
//! (RFC 3464) and of a feedback report (RFC 5965) are plain header blocks that
//! no crate models, so they are read here. What a report *means* for a student
//! is decided by [`severity`]; whether it can be *trusted* is for the caller
//! (`bounces::trust`), since that needs the tokens and the database.

use std::borrow::Cow;

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};

use super::cause;

/// MIME parts nested deeper than this are not looked into.
pub const MAX_DEPTH: usize = 20;
/// A message with more `message/…` or `multipart/…` Content-Type fields than
/// this is not parsed. Real reports have a handful.
pub const MAX_CONTAINERS: usize = 100;
/// At most this many per-recipient blocks are read from one DSN.
pub const MAX_RECIPIENT_BLOCKS: usize = 1000;
/// A header line longer than this is hostile, not mail (RFC 5322 allows 998).
const MAX_HEADER_LINE: usize = 64 * 1024;
/// How much human-readable text a best-effort bounce is searched in.
const MAX_TEXT_SCANNED: usize = 256 * 1024;
/// Diagnostics are kept for the log and the `error` column, not in full.
const MAX_DIAGNOSTIC: usize = 500;
/// How much of a report's human-readable text is kept to judge it by.
const MAX_EXPLANATION: usize = 16 * 1024;

/// What one message in the bounce mailbox is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedReport {
    /// The report's own Message-ID (without angle brackets), kept so a report is processed once.
    pub message_id: Option<String>,
    /// The address it was delivered to, from `Delivered-To` and `X-Original-To`
    /// (where a VERP token is found), in header order.
    pub envelope_recipients: Vec<String>,
    pub form: ReportForm,
}

/// The form a report takes, as read. What it comes to for a student (a hard
/// bounce, a complaint, …, stored as `db::types::ReportKind`) is judged later,
/// by `bounces::process`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportForm {
    /// A delivery report: a DSN, or a best-effort reading of a plain-text or Exchange NDR.
    Delivery {
        recipients: Vec<RecipientStatus>,
        /// The Message-ID of our message, from the returned headers or quoted text.
        original_message_id: Option<String>,
        /// True for an RFC 3464 DSN; false for one read from human text.
        standard: bool,
        /// The report's human-readable text, without the returned original:
        /// read with each status to tell whose fault a failure is (`bounces::cause`).
        explanation: String,
    },
    /// An ARF feedback report: a recipient marked our message as spam.
    Complaint {
        original_message_id: Option<String>,
        complained_address: Option<String>,
    },
    /// A mail to the unsubscribe address; `token` is from a Subject of `unsubscribe TOKEN`.
    Unsubscribe {
        token: Option<String>,
        from: Option<String>,
    },
    /// An ARF authentication-failure report (RFC 6591): our mail failed
    /// SPF or DKIM somewhere. Nobody complained; it is about our sending.
    AuthFailure {
        original_message_id: Option<String>,
    },
    /// A vacation notice or other RFC 3834 answer: not a bounce.
    AutoReply,
    Unrecognised {
        reason: String,
    },
}

/// One per-recipient block of a DSN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientStatus {
    pub final_recipient: Option<String>,
    /// The address as the sender gave it (`Original-Recipient`), which a
    /// forward or an alias may have changed into the final one.
    pub original_recipient: Option<String>,
    pub action: Action,
    /// The enhanced status code (RFC 3463), such as `5.1.1`.
    pub status: Option<String>,
    pub diagnostic: Option<String>,
}

impl RecipientStatus {
    /// The address by which this block names `to`, if it does: its final
    /// recipient, or the original one that was forwarded elsewhere.
    pub fn names(&self, to: &str) -> Option<&str> {
        [self.final_recipient.as_deref(), self.original_recipient.as_deref()]
            .into_iter()
            .flatten()
            .find(|address| address.eq_ignore_ascii_case(to))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Failed,
    Delayed,
    Delivered,
    Relayed,
    Expanded,
    Other,
}

/// Reads one raw message. Anything it cannot make sense of is `Unrecognised`.
pub fn parse(raw: &[u8]) -> ParsedReport {
    // mail-parser is fuzzed upstream, and ours below is too; this guard is the
    // last line so that one strange report can never stop a run.
    // mail-parser 0.11.9 does panic on some malformed multiparts (the fuzz
    // test finds them): caught here, and kept off stderr, where the default
    // hook would print a backtrace into cron's mail for one bad report.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let parsed = std::panic::catch_unwind(|| parse_unguarded(raw));
    std::panic::set_hook(hook);
    match parsed {
        Ok(report) => report,
        Err(_) => unrecognised("the MIME parser failed on this message"),
    }
}

fn unrecognised(reason: &str) -> ParsedReport {
    ParsedReport {
        message_id: None,
        envelope_recipients: Vec::new(),
        form: ReportForm::Unrecognised { reason: reason.into() },
    }
}

/// [`parse`] without the panic guard, for the fuzz test to call.
pub(crate) fn parse_unguarded(raw: &[u8]) -> ParsedReport {
    if let Err(reason) = check_top_headers(raw) {
        return unrecognised(reason);
    }
    if let Err(reason) = check_nesting(raw) {
        return unrecognised(reason);
    }
    let Some(message) = MessageParser::default().parse(raw) else {
        return unrecognised("not a MIME message");
    };
    if message.parts.is_empty() {
        return unrecognised("no MIME parts");
    }
    let envelope_recipients = message
        .headers_raw()
        .filter(|(name, _)| name.eq_ignore_ascii_case("Delivered-To") || name.eq_ignore_ascii_case("X-Original-To"))
        .filter_map(|(_, value)| bare_address(value))
        .collect();
    ParsedReport {
        message_id: message.message_id().map(str::to_owned),
        envelope_recipients,
        form: classify(&message),
    }
}

/// The checks made before any parsing: no empty input, and a
/// header section with no NUL, no invalid UTF-8 and no enormous line.
fn check_top_headers(raw: &[u8]) -> Result<(), &'static str> {
    if raw.iter().all(|b| b.is_ascii_whitespace()) {
        return Err("empty message");
    }
    let end = find_header_end(raw).unwrap_or(raw.len());
    let headers = &raw[..end];
    if headers.contains(&0) {
        return Err("NUL byte in the headers");
    }
    if std::str::from_utf8(headers).is_err() {
        return Err("invalid UTF-8 in the headers");
    }
    if headers.split(|&b| b == b'\n').any(|line| line.len() > MAX_HEADER_LINE) {
        return Err("a header line longer than 64 KiB");
    }
    Ok(())
}

/// Refuses, before mail-parser sees them, messages nested deeper than a
/// stack can hold. mail-parser builds nested messages in a loop, but drops
/// them, and copies a transfer-encoded one, recursively: 140,000 nested
/// `message/rfc822` parts (5.7 MB), or 10,000 behind one quoted-printable
/// layer, overflow the stack, which aborts the process past any panic guard.
///
/// The scan reads each line once and over-counts rather than under-counts:
/// - a nested message needs a `Content-Type` field of its own (or a
///   `multipart/digest` one above it, whose parts are messages by default),
///   so at most [`MAX_CONTAINERS`] fields that may name a container bound the
///   depth to about twice that;
/// - what is inside a base64 or quoted-printable part is hidden from a scan,
///   so a header block that both may name a container and carries such an
///   encoding is refused (RFC 2046 allows only 7bit, 8bit and binary for
///   messages and multiparts; real reports never encode them).
///
/// Parsing on a thread with a larger stack was the other way; its size would
/// have to grow with the message, since an encoded layer costs about a
/// kilobyte of stack per nested level.
pub(crate) fn check_nesting(raw: &[u8]) -> Result<(), &'static str> {
    let digest_anywhere = contains_ignore_case(raw, b"digest");
    let mut containers = 0usize;
    let mut block = Block::default();
    let mut in_encoding_field = false;
    for line in raw.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            in_encoding_field = false;
            if std::mem::take(&mut block).hides_nesting(digest_anywhere) {
                return Err(HIDDEN_NESTING);
            }
            continue;
        }
        // A folded line that looks like a field is counted too.
        let field = line.trim_ascii_start();
        let folded = field.len() < line.len();
        if !folded {
            in_encoding_field = false;
        }
        if let Some(value) = field_value(field, b"content-type") {
            block.typed = true;
            let value = value.trim_ascii_start();
            let leaf = [
                &b"text/"[..],
                b"image/",
                b"audio/",
                b"video/",
                b"application/",
                b"font/",
                b"model/",
            ]
            .iter()
            .any(|t| value.get(..t.len()).is_some_and(|v| v.eq_ignore_ascii_case(t)));
            if !leaf {
                block.container = true;
                containers += 1;
                if containers > MAX_CONTAINERS {
                    return Err("MIME parts nested too deep to read safely (over 100 message or multipart parts)");
                }
            }
        } else if field_value(field, b"content-transfer-encoding").is_some() {
            in_encoding_field = true;
        }
        // The value may be folded onto the next lines, or carry a comment.
        if in_encoding_field
            && (contains_ignore_case(line, b"base64") || contains_ignore_case(line, b"quoted-printable"))
        {
            block.encoded = true;
        }
    }
    if block.hides_nesting(digest_anywhere) {
        return Err(HIDDEN_NESTING);
    }
    Ok(())
}

/// What [`check_nesting`] notes about one header block (a run of non-empty lines).
#[derive(Default)]
struct Block {
    typed: bool,
    container: bool,
    /// A Content-Transfer-Encoding of base64 or quoted-printable.
    encoded: bool,
}

impl Block {
    /// An encoded part that mail-parser would read as a message: one typed
    /// as a container, or an untyped one where a digest makes it a message.
    fn hides_nesting(&self, digest_anywhere: bool) -> bool {
        self.encoded && (self.container || (!self.typed && digest_anywhere))
    }
}

const HIDDEN_NESTING: &str = "a message or multipart part with a transfer encoding (RFC 2046 forbids it), which could hide parts nested too deep to read safely";

/// The value of header `field` if `line` is that field (`Name :` allowed).
fn field_value<'l>(line: &'l [u8], name: &[u8]) -> Option<&'l [u8]> {
    let head = line.get(..name.len())?;
    if !head.eq_ignore_ascii_case(name) {
        return None;
    }
    let rest = line[name.len()..].trim_ascii_start();
    rest.strip_prefix(b":")
}

fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    find_ignore_case(haystack, needle).is_some()
}

fn find_ignore_case(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

fn find_header_end(raw: &[u8]) -> Option<usize> {
    let lf = raw.windows(2).position(|w| w == b"\n\n");
    let crlf = raw.windows(4).position(|w| w == b"\r\n\r\n");
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// One MIME leaf found while walking the tree, with its lowercase type.
struct Leaf<'m> {
    mime: String,
    report_type: Option<String>,
    part: &'m mail_parser::MessagePart<'m>,
}

/// The leaves of `message` down to [`MAX_DEPTH`], multipart containers included
/// (their `report-type` matters), nested messages not entered: a returned
/// original is read as a whole, never searched for reports of its own.
fn leaves<'m>(message: &'m Message<'m>) -> Vec<Leaf<'m>> {
    let mut found = Vec::new();
    let mut stack = vec![(0u32, 0usize)];
    while let Some((id, depth)) = stack.pop() {
        let Some(part) = message.parts.get(id as usize) else {
            continue;
        };
        let (mime, report_type) = match part.content_type() {
            Some(ct) => (
                format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or("")).to_ascii_lowercase(),
                ct.attribute("report-type").map(|t| t.to_ascii_lowercase()),
            ),
            None => ("text/plain".to_owned(), None),
        };
        if let PartType::Multipart(children) = &part.body
            && depth < MAX_DEPTH
        {
            // Reversed so the stack visits children in order.
            stack.extend(children.iter().rev().map(|&child| (child, depth + 1)));
        }
        found.push(Leaf {
            mime,
            report_type,
            part,
        });
    }
    found
}

fn classify(message: &Message<'_>) -> ReportForm {
    let leaves = leaves(message);
    let returned_id = || leaves.iter().find_map(returned_message_id);

    let is_report = |kind: &str| leaves.iter().any(|l| l.report_type.as_deref() == Some(kind));
    let dsn_part = leaves
        .iter()
        .find(|l| l.mime == "message/delivery-status" || l.mime == "message/global-delivery-status");
    if let Some(dsn) = dsn_part {
        let recipients = parse_delivery_status(&decoded(dsn.part.contents()));
        if recipients.is_empty() {
            return ReportForm::Unrecognised {
                reason: "delivery-status part names no recipient".into(),
            };
        }
        return ReportForm::Delivery {
            recipients,
            original_message_id: returned_id(),
            standard: true,
            explanation: truncate(&readable_text(&leaves), MAX_EXPLANATION),
        };
    }
    // A DSN whose parts cannot be told apart (a boundary that does not
    // match, say) is read as text, if that text says what failed and why.
    if is_report("delivery-status") {
        let form = best_effort_bounce(message, &leaves);
        let says_why = matches!(&form, ReportForm::Delivery { recipients, .. }
            if recipients.iter().any(|r| r.status.is_some() || r.diagnostic.is_some()));
        return if says_why {
            form
        } else {
            ReportForm::Unrecognised {
                reason: "DSN without a readable delivery-status part".into(),
            }
        };
    }

    let subject = message.subject().unwrap_or("").trim();
    if let Some(notification) = amazon_ses_notification(&leaves) {
        return notification;
    }
    if let Some(complaint) = hotmail_complaint(&leaves, subject) {
        return complaint;
    }

    let feedback = leaves.iter().find(|l| l.mime == "message/feedback-report");
    if let Some(feedback) = feedback {
        let fields = header_blocks(&String::from_utf8_lossy(feedback.part.contents()));
        let field = |name: &str| fields.iter().find_map(|block| field(block, name));
        if field("Feedback-Type").is_some_and(|kind| kind.trim().eq_ignore_ascii_case("auth-failure")) {
            return ReportForm::AuthFailure {
                original_message_id: returned_id(),
            };
        }
        return ReportForm::Complaint {
            original_message_id: returned_id(),
            complained_address: field("Original-Rcpt-To").and_then(|a| bare_address(&a)),
        };
    }
    if is_report("feedback-report") {
        return ReportForm::Unrecognised {
            reason: "feedback report without a feedback-report part".into(),
        };
    }

    if let Some(token) = unsubscribe_subject(subject) {
        let from = message.from().and_then(|f| f.first()).and_then(|a| a.address());
        return ReportForm::Unsubscribe {
            token: token.map(str::to_owned),
            from: from.map(|a| a.to_ascii_lowercase()),
        };
    }

    if looks_like_bounce(message, subject) {
        return best_effort_bounce(message, &leaves);
    }

    if is_auto_reply(message, subject) {
        return ReportForm::AutoReply;
    }
    ReportForm::Unrecognised {
        reason: "neither a report nor a known kind of bounce".into(),
    }
}

/// The Message-ID of the original message returned in a report.
fn returned_message_id(leaf: &Leaf<'_>) -> Option<String> {
    match leaf.mime.as_str() {
        "message/rfc822" | "message/global" => match &leaf.part.body {
            // message_id() indexes the first part, so check there is one.
            PartType::Message(original) if !original.parts.is_empty() => original.message_id().map(str::to_owned),
            // Not parsed (too deep, or broken): read it as text.
            _ => message_id_in_text(&String::from_utf8_lossy(leaf.part.contents())),
        },
        "text/rfc822-headers" | "message/rfc822-headers" | "message/global-headers" => {
            message_id_in_text(&String::from_utf8_lossy(leaf.part.contents()))
        }
        _ => None,
    }
}

/// The first `Message-ID:` header line in `text` (quoted headers), without angle brackets.
fn message_id_in_text(text: &str) -> Option<String> {
    let mut lines = text.lines().take(10_000).peekable();
    while let Some(line) = lines.next() {
        let line = line.trim_start_matches(['>', ' ', '\t']);
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        if !name.trim().eq_ignore_ascii_case("message-id") {
            continue;
        }
        let mut value = rest.trim().to_owned();
        // A folded header puts the value on the next line.
        if value.is_empty()
            && let Some(next) = lines.peek()
        {
            value = next.trim().to_owned();
        }
        let id = match (value.find('<'), value.find('>')) {
            (Some(open), Some(close)) if open < close => value[open + 1..close].trim().to_owned(),
            _ => value.split_whitespace().next().unwrap_or("").to_owned(),
        };
        if !id.is_empty() {
            return Some(id);
        }
    }
    None
}

/// Splits RFC 822-style header blocks (separated by blank lines) into
/// unfolded `(name, value)` fields, reading at most one block beyond the
/// recipient limit.
fn header_blocks(text: &str) -> Vec<Vec<(String, String)>> {
    let mut blocks: Vec<Vec<(String, String)>> = Vec::new();
    let mut current: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            if !current.is_empty() {
                blocks.push(std::mem::take(&mut current));
                if blocks.len() > MAX_RECIPIENT_BLOCKS {
                    return blocks;
                }
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = current.last_mut()
                && value.len() < MAX_DIAGNOSTIC * 4
            {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            current.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    if !current.is_empty() {
        blocks.push(current);
    }
    blocks
}

fn field(block: &[(String, String)], name: &str) -> Option<String> {
    block
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
}

/// The per-recipient blocks of a `message/delivery-status` body (RFC 3464 §2.3).
fn parse_delivery_status(text: &str) -> Vec<RecipientStatus> {
    header_blocks(text)
        .iter()
        .filter(|block| field(block, "Final-Recipient").is_some() || field(block, "Action").is_some())
        .take(MAX_RECIPIENT_BLOCKS)
        .map(|block| {
            let diagnostic = field(block, "Diagnostic-Code").map(|code| {
                // "smtp; 550 5.1.1 ..." → "550 5.1.1 ..."
                let text = code.split_once(';').map_or(code.as_str(), |(_, rest)| rest).trim();
                diagnostic_text(text)
            });
            let address = |name: &str| {
                field(block, name).and_then(|value| bare_address(value.split_once(';').map_or(&value, |(_, a)| a)))
            };
            RecipientStatus {
                final_recipient: address("Final-Recipient"),
                original_recipient: address("Original-Recipient"),
                action: parse_action(field(block, "Action").as_deref().unwrap_or("")),
                status: field(block, "Status").and_then(|s| enhanced_code(&s)),
                diagnostic,
            }
        })
        .collect()
}

fn parse_action(value: &str) -> Action {
    // Some servers add a comment: "failed (bad destination mailbox address)".
    match value
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_lowercase()
        .as_str()
    {
        "failed" => Action::Failed,
        "delayed" => Action::Delayed,
        "delivered" => Action::Delivered,
        "relayed" => Action::Relayed,
        "expanded" => Action::Expanded,
        _ => Action::Other,
    }
}

/// The first enhanced status code (`class.subject.detail`, RFC 3463) in `text`.
pub(super) fn enhanced_code(text: &str) -> Option<String> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .find_map(|word| {
            let word = word.trim_matches('.');
            let mut pieces = word.split('.');
            let (class, subject, detail) = (pieces.next()?, pieces.next()?, pieces.next()?);
            let ok = pieces.next().is_none()
                && matches!(class, "2" | "4" | "5")
                && (1..=3).contains(&subject.len())
                && (1..=3).contains(&detail.len());
            ok.then(|| word.to_owned())
        })
}

/// A diagnostic as it is logged and stored: capped, on one line, and with no
/// control characters (PostgreSQL refuses a NUL in text, and a report that
/// cannot be recorded would be retried forever).
fn diagnostic_text(text: &str) -> String {
    let cleaned: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    truncate(cleaned.trim(), MAX_DIAGNOSTIC)
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => text[..at].to_owned(),
        None => text.to_owned(),
    }
}

/// The address alone, lowercase, of a header value such as
/// `<Student@School.Example>`, `jill@example.com (Jill Smith)` or
/// `"Jill" <jill@example.com>`: read by mail-parser's RFC 5322 address
/// parser (comments and display names dropped), then checked by lettre.
/// `None` when it holds no valid address.
fn bare_address(value: &str) -> Option<String> {
    // The parser reads a header value up to the end of its line.
    let line = format!("{}\n", value.trim());
    let parsed = mail_parser::parsers::MessageStream::new(line.as_bytes()).parse_address();
    let address = parsed.as_address()?.first()?.address()?.trim().to_ascii_lowercase();
    address.parse::<lettre::Address>().ok()?;
    Some(address)
}

/// `Some(token)` for a Subject of `unsubscribe` or `unsubscribe TOKEN` (also after `Re:`).
fn unsubscribe_subject(subject: &str) -> Option<Option<&str>> {
    let mut words = subject.split_whitespace();
    let mut first = words.next()?;
    if first.eq_ignore_ascii_case("re:") {
        first = words.next()?;
    }
    if !first.eq_ignore_ascii_case("unsubscribe") {
        return None;
    }
    Some(words.next().filter(|w| w.bytes().all(|b| b.is_ascii_alphanumeric())))
}

const BOUNCE_SUBJECTS: &[&str] = &[
    "undelivered mail",
    "undeliverable",
    "delivery status notification",
    "returned mail",
    "failure notice",
    "delivery failure",
    "delivery has failed",
    "mail delivery failed",
    "mail delivery failure",
    "non remis",
    "nicht zustellbar",
    "there was an error sending your mail",
    "delivery notification",
    "mail could not be delivered",
];

fn looks_like_bounce(message: &Message<'_>, subject: &str) -> bool {
    let subject = subject.to_ascii_lowercase();
    let from = message
        .from()
        .and_then(|f| f.first())
        .and_then(|a| a.address())
        .unwrap_or("")
        .to_ascii_lowercase();
    let local = from.split('@').next().unwrap_or("");
    BOUNCE_SUBJECTS.iter().any(|s| subject.contains(s))
        || ["mailer-daemon", "postmaster", "post_master"].contains(&local)
}

/// An Amazon SES bounce, complaint or delivery notification that arrived by
/// mail (through SNS): JSON in the text, sometimes wrapped in SNS's own
/// envelope, with its long lines folded.
fn amazon_ses_notification(leaves: &[Leaf<'_>]) -> Option<ReportForm> {
    let body = leaves
        .iter()
        .filter(|l| l.mime == "text/plain")
        .map(|l| String::from_utf8_lossy(l.part.contents()))
        .find(|text| text.contains("notificationType"))?;
    let json = &body[body.find('{')?..=body.rfind('}')?];
    let value: serde_json::Value = serde_json::from_str(json)
        .or_else(|_| serde_json::from_str(&json.replace("\r\n ", "").replace("\n ", "")))
        .ok()?;
    let value = match value.get("Message").and_then(serde_json::Value::as_str) {
        Some(inner) => serde_json::from_str(inner).ok()?,
        None => value,
    };
    let text = |v: &serde_json::Value| v.as_str().map(str::to_owned);
    let mail = &value["mail"];
    let original_message_id = mail["headers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|h| h["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case("message-id")))
        .and_then(|h| text(&h["value"]))
        .or_else(|| text(&mail["commonHeaders"]["messageId"]))
        .and_then(|id| message_id_in_text(&format!("Message-ID: {id}")));
    let address = |v: &serde_json::Value| v["emailAddress"].as_str().and_then(bare_address);
    match value["notificationType"].as_str()? {
        "Complaint" => Some(ReportForm::Complaint {
            original_message_id,
            complained_address: value["complaint"]["complainedRecipients"]
                .as_array()
                .and_then(|all| all.first())
                .and_then(address),
        }),
        kind @ ("Bounce" | "Delivery") => {
            let permanent = value["bounce"]["bounceType"].as_str() != Some("Transient");
            let listed = if kind == "Bounce" {
                &value["bounce"]["bouncedRecipients"]
            } else {
                &value["delivery"]["recipients"]
            };
            let recipients: Vec<RecipientStatus> = listed
                .as_array()
                .into_iter()
                .flatten()
                .take(MAX_RECIPIENT_BLOCKS)
                .map(|r| RecipientStatus {
                    // A delivery lists plain addresses.
                    final_recipient: address(r).or_else(|| r.as_str().and_then(bare_address)),
                    original_recipient: None,
                    action: match (kind, permanent) {
                        ("Delivery", _) => Action::Delivered,
                        (_, false) => Action::Delayed,
                        _ => Action::Failed,
                    },
                    status: r["status"].as_str().and_then(enhanced_code),
                    diagnostic: r["diagnosticCode"]
                        .as_str()
                        .map(|code| diagnostic_text(code.split_once(';').map_or(code, |(_, rest)| rest).trim())),
                })
                .collect();
            (!recipients.is_empty()).then(|| ReportForm::Delivery {
                recipients,
                original_message_id,
                standard: false,
                explanation: String::new(),
            })
        }
        _ => None,
    }
}

/// Outlook.com's complaint (its Junk Mail Reporting Program): not ARF, but
/// the reported message attached, with the complaining address in
/// `X-HmXmrOriginalRecipient`.
fn hotmail_complaint(leaves: &[Leaf<'_>], subject: &str) -> Option<ReportForm> {
    if !subject.to_ascii_lowercase().contains("complaint about message from") {
        return None;
    }
    let original = leaves.iter().find(|l| l.mime == "message/rfc822")?;
    let PartType::Message(reported) = &original.part.body else {
        return None;
    };
    let header = |name: &str| {
        reported
            .headers_raw()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| bare_address(v))
    };
    Some(ReportForm::Complaint {
        original_message_id: returned_message_id(original),
        complained_address: header("X-HmXmrOriginalRecipient").or_else(|| header("To")),
    })
}

fn is_auto_reply(message: &Message<'_>, subject: &str) -> bool {
    let header = |name: &str| {
        message
            .headers_raw()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    };
    let auto_submitted = header("Auto-Submitted").is_some_and(|v| !v.eq_ignore_ascii_case("no"));
    let subject = subject.to_ascii_lowercase();
    auto_submitted
        || header("X-Autoreply").is_some()
        || header("X-Autorespond").is_some()
        || header("Precedence").is_some_and(|v| v.eq_ignore_ascii_case("auto_reply"))
        || subject.starts_with("out of office")
        || subject.starts_with("automatic reply")
        || subject.starts_with("auto:")
}

/// The human-readable text of a report: text parts, HTML with tags removed,
/// capped. Returned originals are left out except for their Message-ID.
fn readable_text(leaves: &[Leaf<'_>]) -> String {
    let mut text = String::new();
    for leaf in leaves {
        let piece: Cow<'_, str> = match leaf.mime.as_str() {
            "text/plain" => decoded(leaf.part.contents()),
            "text/html" => strip_tags(&decoded(leaf.part.contents())).into(),
            _ => continue,
        };
        let room = MAX_TEXT_SCANNED.saturating_sub(text.len());
        text.push_str(&truncate(&piece, room));
        text.push('\n');
        if text.len() >= MAX_TEXT_SCANNED {
            break;
        }
    }
    text
}

/// Text as UTF-8; Japanese mail systems write ISO-2022-JP (7-bit, with
/// escape sequences) without always declaring it, so that is read too.
fn decoded(bytes: &[u8]) -> Cow<'_, str> {
    let text = String::from_utf8_lossy(bytes);
    if !text.contains("\x1b$B") {
        return text;
    }
    match mail_parser::decoders::charsets::map::charset_decoder(b"iso-2022-jp") {
        Some(decode) => decode(bytes).into(),
        None => text,
    }
}

fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len().min(MAX_TEXT_SCANNED));
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
}

/// Reads a bounce that has no delivery-status part (qmail, old Exim, Postfix
/// plain text, an Exchange NDR): the failed addresses, a status code and the
/// line that explains it, and a quoted Message-ID, as best it can; such a
/// report is marked `standard: false`.
fn best_effort_bounce(message: &Message<'_>, leaves: &[Leaf<'_>]) -> ReportForm {
    let mut text = readable_text(leaves);
    // A multipart whose boundaries do not match has no readable part: its
    // body is read as it is.
    if text.trim().is_empty() {
        let raw = message.raw_message();
        let body = find_header_end(raw).map_or(&raw[..0], |end| &raw[end..]);
        text = truncate(&decoded(body), MAX_TEXT_SCANNED);
    }
    // The quoted original starts at its first header-like line; addresses
    // after that (its From, To) are not failed recipients.
    // split_inclusive keeps each line's own ending (LF or CRLF), so the
    // offsets stay on character boundaries.
    let quoted_start = text
        .split_inclusive('\n')
        .scan(0usize, |offset, line| {
            let start = *offset;
            *offset += line.len();
            Some((start, line))
        })
        .find(|(_, line)| {
            let lower = line.trim_start_matches(['>', ' ']).to_ascii_lowercase();
            lower.starts_with("message-id:")
                || lower.starts_with("received:")
                || lower.starts_with("return-path:")
                || lower.starts_with("dkim-signature:")
                || lower.starts_with("x-google-dkim-signature:")
                || lower.starts_with("authentication-results:")
                || lower.contains("original message follows")
                || lower.contains("message text follows")
                || lower.contains("original message headers")
                || lower.starts_with("--- below this line is a copy")
        })
        .map_or(text.len(), |(start, _)| start);
    let explanation = &text[..quoted_start.min(text.len())];
    let original_message_id = message_id_in_text(&text[quoted_start.min(text.len())..])
        .or_else(|| leaves.iter().find_map(returned_message_id));
    // Delivery-status fields in the text: a DSN whose parts were lost.
    let fields = find_ignore_case(explanation.as_bytes(), b"final-recipient:")
        .map(|at| parse_delivery_status(&explanation[at..]));
    if let Some(recipients) = fields.filter(|blocks| !blocks.is_empty()) {
        return ReportForm::Delivery {
            recipients,
            original_message_id,
            standard: false,
            explanation: truncate(explanation, MAX_EXPLANATION),
        };
    }

    let own: Vec<String> = [message.from(), message.to()]
        .into_iter()
        .flatten()
        .flat_map(|list| list.iter())
        .filter_map(|a| a.address())
        .map(str::to_ascii_lowercase)
        .collect();
    let mut addresses: Vec<String> = Vec::new();
    for word in explanation.split(|c: char| c.is_whitespace() || "<>()[]\"',;".contains(c)) {
        let word = word.trim_end_matches([':', '.']).to_ascii_lowercase();
        let plausible = word
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.') && !domain.contains('@'));
        if plausible
            && !own.contains(&word)
            && !word.starts_with("mailer-daemon@")
            && !word.starts_with("postmaster@")
            && !addresses.contains(&word)
        {
            addresses.push(word);
            if addresses.len() >= MAX_RECIPIENT_BLOCKS {
                break;
            }
        }
    }
    let status = enhanced_code(explanation);
    // The server's own words: the line with the status or an SMTP reply, else
    // one that names a cause.
    let lines: Vec<&str> = explanation.lines().map(str::trim).collect();
    let diagnostic = lines
        .iter()
        .position(|line| status.as_deref().is_some_and(|s| line.contains(s)) || has_smtp_reply(line))
        .or_else(|| lines.iter().position(|line| cause::names_a_cause(line)))
        .map(|at| {
            // A reply folded over the next lines of its paragraph.
            let paragraph = lines[at..]
                .iter()
                .take(4)
                .take_while(|line| !line.is_empty() && !line.starts_with("--"));
            diagnostic_text(&paragraph.copied().collect::<Vec<_>>().join(" "))
        });
    let action = if is_delay_notice(explanation) {
        Action::Delayed
    } else {
        Action::Failed
    };
    if addresses.is_empty() && original_message_id.is_none() {
        return ReportForm::Unrecognised {
            reason: "looks like a bounce but names no recipient or Message-ID".into(),
        };
    }
    let recipients = if addresses.is_empty() {
        vec![RecipientStatus {
            final_recipient: None,
            original_recipient: None,
            action,
            status,
            diagnostic,
        }]
    } else {
        addresses
            .into_iter()
            .map(|address| RecipientStatus {
                final_recipient: Some(address),
                original_recipient: None,
                action,
                status: status.clone(),
                diagnostic: diagnostic.clone(),
            })
            .collect()
    };
    ReportForm::Delivery {
        recipients,
        original_message_id,
        standard: false,
        explanation: truncate(explanation, MAX_EXPLANATION),
    }
}

/// A warning that a message is still queued ("will keep trying"), which is
/// no failure: said without a final verdict.
fn is_delay_notice(text: &str) -> bool {
    const DELAYED: &[&str] = &[
        "not yet been delivered",
        "has not been delivered yet",
        "will retry",
        "will keep trying",
        "will continue trying",
        "will be retried",
        "still trying",
        "still undelivered",
        "delivery attempts will continue",
        "delivery is delayed",
        "delivery has been delayed",
        "message delayed",
        "(delay)",
        "warning: could not send",
        "retry time not reached",
    ];
    const FINAL: &[&str] = &[
        "permanent",
        "giving up",
        "gave up",
        "has been returned",
        "could not be delivered to",
    ];
    let lower = cause::normalise(text);
    DELAYED.iter().any(|p| lower.contains(p)) && !FINAL.iter().any(|p| lower.contains(p))
}

/// A line that carries an SMTP reply such as `550 ...` or `said: 550`.
fn has_smtp_reply(line: &str) -> bool {
    line.split_whitespace().any(|word| {
        let word = word.trim_start_matches(['\'', '"', '(']).trim_end_matches(['-', ' ']);
        word.len() == 3 && matches!(word.as_bytes()[0], b'4' | b'5') && word.bytes().all(|b| b.is_ascii_digit())
    })
}

#[cfg(test)]
mod tests;
