//! Mail: the transport (pooled SMTP, or a `file://` outbox of `.eml` files),
//! the reminder message, and the split of send errors into transient and
//! permanent.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::anyhow;
use chrono::{DateTime, Utc};
use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::PoolConfig;
use lettre::{FileTransport, Message, SmtpTransport, Transport};

use crate::db::reminders::Claimed;
use crate::db::types::Id;
use crate::input::zone_of;
use crate::time;

/// Where mail goes, from `SMTP_URL`.
#[derive(Debug, Clone)]
pub enum MailUrl {
    /// `smtp://host:port`, `smtp://user:pass@host:587?tls=required`, `smtps://…`
    Smtp(url::Url),
    /// `file://DIR`: each message becomes an `.eml` file in DIR.
    File(PathBuf),
}

impl MailUrl {
    pub fn parse(raw: &str) -> anyhow::Result<MailUrl> {
        let raw = raw.trim();
        if let Some(dir) = raw.strip_prefix("file://") {
            if dir.is_empty() {
                return Err(anyhow!("SMTP_URL `{raw}` names no directory"));
            }
            return Ok(MailUrl::File(PathBuf::from(dir)));
        }
        let url = url::Url::parse(raw).map_err(|error| anyhow!("SMTP_URL is malformed: {error}"))?;
        if !matches!(url.scheme(), "smtp" | "smtps") || url.host_str().is_none_or(str::is_empty) {
            return Err(anyhow!(
                "SMTP_URL `{}` is not smtp://host:port, smtps://host or file://DIR",
                crate::config::redact(&url)
            ));
        }
        // lettre parses it once more when building the transport; check it now.
        SmtpTransport::from_url(url.as_str())
            .map_err(|error| anyhow!("SMTP_URL `{}` is malformed: {error}", crate::config::redact(&url)))?;
        Ok(MailUrl::Smtp(url))
    }
}

/// Why a message did not go out.
#[derive(Debug, Clone)]
pub enum SendFailure {
    /// Worth retrying: a 4xx reply, a refused or dropped connection, a timeout.
    Transient(String),
    /// Not worth retrying: a 5xx reply, or a message that cannot be built.
    Permanent(String),
}

/// A transport shared by the sending threads.
#[derive(Clone)]
pub enum Mailer {
    Smtp(SmtpTransport),
    File(FileTransport),
}

impl Mailer {
    /// Pools up to `connections` SMTP connections, reused across messages.
    pub fn new(url: &MailUrl, connections: u32, timeout: Duration) -> anyhow::Result<Mailer> {
        match url {
            MailUrl::Smtp(url) => {
                let transport = SmtpTransport::from_url(url.as_str())
                    .map_err(|error| anyhow!("SMTP_URL `{}` is malformed: {error}", crate::config::redact(url)))?
                    .timeout(Some(timeout))
                    .pool_config(PoolConfig::new().max_size(connections))
                    .build();
                Ok(Mailer::Smtp(transport))
            }
            MailUrl::File(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|error| anyhow!("cannot create the outbox `{}`: {error}", dir.display()))?;
                Ok(Mailer::File(FileTransport::new(dir)))
            }
        }
    }

    pub fn send(&self, message: &Message) -> Result<(), SendFailure> {
        match self {
            Mailer::Smtp(transport) => transport.send(message).map(drop).map_err(|error| {
                // lettre calls 5xx permanent and 4xx transient; a network error or
                // timeout is neither, and a later run may well get through.
                if error.is_permanent() {
                    SendFailure::Permanent(one_line(&error.to_string()))
                } else {
                    SendFailure::Transient(one_line(&error.to_string()))
                }
            }),
            Mailer::File(transport) => transport
                .send(message)
                .map(drop)
                .map_err(|error| SendFailure::Transient(one_line(&error.to_string()))),
        }
    }
}

/// The Message-ID of a reminder: derived from its id, so that a resend after a
/// crash carries the same id and a mail system can drop the duplicate.
pub fn message_id(reminder_id: impl std::fmt::Display, from: &Mailbox) -> String {
    format!("<{reminder_id}@{}>", from.email.domain())
}

/// Builds the reminder email for a claimed reminder at `now`.
pub fn reminder_message(claimed: &Claimed, from: &Mailbox, now: DateTime<Utc>) -> Result<Message, SendFailure> {
    let zone = zone_of(claimed.student_timezone.as_deref());
    let due = claimed.due_at.instant();
    let title = header_safe(&claimed.title);
    let to = Mailbox::new(
        claimed
            .student_name
            .as_deref()
            .map(header_safe)
            .filter(|name| !name.is_empty()),
        claimed
            .student_email
            .parse()
            .map_err(|_| SendFailure::Permanent(format!("`{}` is not a valid address", claimed.student_email)))?,
    );
    let greeting = claimed
        .student_name
        .as_deref()
        .map(header_safe)
        .unwrap_or_else(|| claimed.student_email.clone());
    let mut body = format!(
        "Hi {greeting},\n\n\"{title}\" is due {} ({} from now).\n",
        time::local_long(due, zone),
        time::human_duration(due - now),
    );
    if let Some(description) = claimed.description.as_deref().filter(|d| !d.trim().is_empty()) {
        body.push_str(&format!("\n{description}\n"));
    }
    body.push_str("\nGood luck!\n");
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(format!("Reminder: {title} is due {}", time::local_short(due, zone)))
        .message_id(Some(message_id(claimed.reminder_id, from)))
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|error| SendFailure::Permanent(format!("cannot build the message: {error}")))
}

/// What a daily summary says.
pub struct SummaryContent<'a> {
    pub summary_id: Id,
    pub email: &'a str,
    pub name: Option<&'a str>,
    pub timezone: Option<&'a str>,
    pub local_date: chrono::NaiveDate,
    pub current: i64,
    pub overdue: i64,
    pub completed: i64,
    /// Open assignments, by due time.
    pub open: &'a [(String, DateTime<Utc>)],
}

/// How many assignments of each kind a summary lists by name.
const SUMMARY_LIST_LIMIT: usize = 10;

/// Builds a daily summary: the three counts, then the overdue and upcoming
/// assignments, nearest first, in the student's zone.
pub fn summary_message(content: &SummaryContent, from: &Mailbox, now: DateTime<Utc>) -> Result<Message, SendFailure> {
    let zone = zone_of(content.timezone);
    let name = content.name.map(header_safe).filter(|name| !name.is_empty());
    let to = Mailbox::new(
        name.clone(),
        content
            .email
            .parse()
            .map_err(|_| SendFailure::Permanent(format!("`{}` is not a valid address", content.email)))?,
    );
    let mut body = format!(
        "Hi {},\n\nYour assignments on {}:\n  current:   {}\n  overdue:   {}\n  completed: {}\n",
        name.unwrap_or_else(|| content.email.to_string()),
        content.local_date.format("%a %d %b %Y"),
        content.current,
        content.overdue,
        content.completed,
    );
    // Nearest first: the most recently missed, and the soonest due.
    let overdue: Vec<_> = content.open.iter().filter(|(_, due)| *due < now).rev().collect();
    let upcoming: Vec<_> = content.open.iter().filter(|(_, due)| *due >= now).collect();
    for (heading, items) in [("Overdue", overdue), ("Coming up", upcoming)] {
        if items.is_empty() {
            continue;
        }
        body.push_str(&format!("\n{heading}:\n"));
        for (title, due) in items.iter().take(SUMMARY_LIST_LIMIT) {
            body.push_str(&format!(
                "  - {} (due {})\n",
                header_safe(title),
                time::local_long(*due, zone)
            ));
        }
        if items.len() > SUMMARY_LIST_LIMIT {
            body.push_str(&format!("  … and {} more\n", items.len() - SUMMARY_LIST_LIMIT));
        }
    }
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(format!(
            "Your assignments today: {} current, {} overdue",
            content.current, content.overdue
        ))
        .message_id(Some(message_id(content.summary_id, from)))
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|error| SendFailure::Permanent(format!("cannot build the message: {error}")))
}

/// A header value on one line: CR, LF and other control characters become
/// spaces, so data can never start a header or add a recipient.
pub fn header_safe(text: &str) -> String {
    let spaced: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    spaced.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::types::Timestamp;

    fn claimed(title: &str, name: Option<&str>) -> Claimed {
        Claimed {
            reminder_id: Id("3f0c9a52-8d2e-4c4b-9b1e-2a7d5c6e8f90".parse().unwrap()),
            reminder_type: "24h".into(),
            attempts: 0,
            assignment_id: Id::new(),
            title: title.into(),
            description: None,
            due_at: Timestamp::new("2025-09-27T23:00:00Z".parse().unwrap()),
            completed: false,
            student_email: "alice@example.com".into(),
            student_name: name.map(String::from),
            student_timezone: Some("America/Los_Angeles".into()),
            contact_opt_out: false,
        }
    }

    #[test]
    fn the_message_names_the_title_and_the_local_due_time() {
        let from: Mailbox = "Reminders <noreply@school.example>".parse().unwrap();
        let now = "2025-09-26T23:00:00Z".parse().unwrap();
        let message = reminder_message(&claimed("Problem set 1", Some("Alice")), &from, now).unwrap();
        let text = String::from_utf8(message.formatted()).unwrap();
        assert!(
            text.contains("Message-ID: <3f0c9a52-8d2e-4c4b-9b1e-2a7d5c6e8f90@school.example>"),
            "{text}"
        );
        assert!(text.contains("Subject: Reminder: Problem set 1 is due"), "{text}");
        assert!(text.contains("Sat 27 Sep 2025 16:00 PDT"), "{text}");
        assert!(text.contains("1 day from now"), "{text}");
    }

    #[test]
    fn control_characters_never_reach_a_header() {
        let from: Mailbox = "noreply@school.example".parse().unwrap();
        let now = "2025-09-26T23:00:00Z".parse().unwrap();
        let evil = claimed("Essay\r\nBcc: evil@example.com", Some("Eve\r\nCc: x@example.com"));
        let message = reminder_message(&evil, &from, now).unwrap();
        let text = String::from_utf8(message.formatted()).unwrap();
        assert!(
            !text
                .lines()
                .any(|line| line.starts_with("Bcc:") || line.starts_with("Cc:")),
            "{text}"
        );
        assert_eq!(message.envelope().to().len(), 1);
    }
}
