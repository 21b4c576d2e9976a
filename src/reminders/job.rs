//! One claimed reminder: the rules that stop it at the last moment (opted
//! out, completed, too late), and the message it becomes.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use lettre::Message;

use crate::db::Db;
use crate::db::reminders::{self, Claimed};
use crate::db::types::{Id, Timestamp};
use crate::input::zone_of;
use crate::mail::token::{MessageKind, MessageRef, Subscriber};
use crate::mail::{self, Blame, Identity, SendFailure, Sender};
use crate::queue::pipeline::{JobInfo, Queue, RowInfo, Withheld, wait_for_window};
use crate::render::{AssignmentView, Kind, ReminderContext, StudentView, Templates, header_safe};
use crate::schedule::window::SendWindow;
use crate::schedule::{Target, TypeList, muted_reason, stale_reason};
use crate::time::{self, Writing};

/// The `reminders` table as a send queue.
pub struct Reminders {
    /// How late a reminder may still go out (`--delivery-window`).
    pub delivery_window: Option<chrono::Duration>,
    /// `--required-types`: types that reach a student whatever their preferences.
    pub required_types: Option<TypeList>,
    /// `--send-window`: when students without their own may be mailed.
    pub send_window: Option<SendWindow>,
    pub templates: Templates,
}

impl Reminders {
    /// Why a claimed reminder must not go out now, checked on the row as
    /// last read: never (skipped), or not before its student's send window
    /// opens.
    pub fn withheld(&self, claimed: &Claimed, now: DateTime<Utc>) -> Option<Withheld> {
        if let Some(reason) = skip_reason(claimed, now, self.required_types.as_ref()) {
            return Some(Withheld::Skip(reason));
        }
        let zone = zone_of(claimed.student_timezone.as_deref());
        let own_or_default = SendWindow::own_or(claimed.send_window.as_deref(), self.send_window.as_ref());
        let send_window = own_or_default.as_ref();
        let target = Target::from_reminder_type(&claimed.reminder_type);
        let overdue = target.as_ref().is_some_and(Target::is_overdue);
        let before_deadline = |opens| overdue || opens < claimed.due_at.instant();
        let too_late = "the send window stays closed until after the deadline";
        if let Some(wait) = wait_for_window(send_window, zone, now, before_deadline, too_late) {
            return Some(wait);
        }
        stale_reason(
            target.as_ref(),
            claimed.due_at.instant(),
            now,
            self.delivery_window,
            send_window.map(|window| (window, zone)),
        )
        .map(Withheld::Skip)
    }
}

/// Why a claimed reminder must never go out, whatever the hour: the rules
/// of the student, the assignment and its deadline.
fn skip_reason(claimed: &Claimed, now: DateTime<Utc>, required_types: Option<&TypeList>) -> Option<String> {
    if claimed.contact_opt_out {
        return Some("the student opted out".to_string());
    }
    if claimed.completed {
        return Some("the assignment is completed".to_string());
    }
    let preference = |stored: &Option<String>| stored.as_deref().and_then(|text| TypeList::parse(text).ok());
    if let Some(reason) = muted_reason(
        &claimed.reminder_type,
        preference(&claimed.reminder_types).as_ref(),
        preference(&claimed.muted_types).as_ref(),
        required_types,
    ) {
        return Some(reason);
    }
    if claimed.scheduled_due_at != claimed.due_at {
        // Scheduled for the old deadline; the next run schedules it again for the new one.
        return Some(format!(
            "the deadline moved to {} after it was scheduled",
            time::utc(claimed.due_at.instant())
        ));
    }
    let target = Target::from_reminder_type(&claimed.reminder_type);
    if let (Some(target), Some(cutoff)) = (&target, claimed.cutoff)
        && target.is_overdue()
        && cutoff.instant() <= now
    {
        return Some("the cut-off has passed: the work can no longer be handed in".to_string());
    }
    None
}

/// The student as templates see them.
pub fn student_view(claimed: &Claimed, zone: Tz) -> StudentView {
    StudentView {
        email: claimed.student_email.clone(),
        name: claimed
            .student_name
            .as_deref()
            .map(header_safe)
            .filter(|name| !name.is_empty()),
        timezone: zone.name().to_string(),
    }
}

/// The assignment as templates see it at `now`, in the student's zone and language.
pub fn assignment_view(claimed: &Claimed, zone: Tz, now: DateTime<Utc>) -> AssignmentView {
    let due = claimed.due_at.instant();
    let writing = Writing::for_locale(claimed.student_locale.as_deref());
    AssignmentView {
        title: header_safe(&claimed.title),
        description: claimed.description.clone().filter(|d| !d.trim().is_empty()),
        due_utc: time::utc(due),
        due_local: writing.long(due, zone),
        due_local_short: writing.short(due, zone),
        time_left: writing.duration(due - now),
        overdue_by: (due <= now).then(|| writing.duration(now - due)),
        cutoff_local: claimed.cutoff.map(|cutoff| writing.long(cutoff.instant(), zone)),
        moved_from: claimed
            .previous_due_at
            .map(|previous| writing.moved_from(previous.instant(), due, zone)),
        metadata: claimed.metadata.clone().map(|m| m.0).unwrap_or(serde_json::Value::Null),
    }
}

/// The reminder email for a claimed reminder at `now`, from the templates.
pub fn compose(
    claimed: &Claimed,
    sender: &Sender,
    now: DateTime<Utc>,
    templates: &Templates,
) -> Result<Message, SendFailure> {
    let zone = zone_of(claimed.student_timezone.as_deref());
    let context = ReminderContext {
        student: student_view(claimed, zone),
        assignment: assignment_view(claimed, zone, now),
        reminder_type: claimed.reminder_type.clone(),
    };
    let kind = match Target::from_reminder_type(&claimed.reminder_type) {
        Some(target) if target.is_overdue() => Kind::Overdue,
        _ => Kind::Reminder,
    };
    let rendered = templates
        .render(kind, claimed.student_locale.as_deref(), &context)
        .map_err(|e| SendFailure::new(Blame::Message, format!("{e:#}")))?;
    let identity = Identity {
        message: message_of(claimed),
        edition: edition(claimed),
        recipient: Subscriber::Student(claimed.student_id.0),
    };
    mail::build(sender, &claimed.student_email, context.student.name, identity, rendered)
}

/// The message a reminder is, for its tokens and its Message-ID.
pub fn message_of(claimed: &Claimed) -> MessageRef {
    MessageRef {
        kind: MessageKind::Reminder,
        id: claimed.reminder_id.0,
    }
}

/// A reminder as a row the pipeline records.
pub fn row_of(claimed: &Claimed) -> RowInfo {
    RowInfo {
        id: claimed.reminder_id,
        attempts: claimed.attempts,
        reminder_id: Some(claimed.reminder_id),
        assignment_id: Some(claimed.assignment_id),
        summary_id: None,
        contact_message_id: None,
    }
}

/// A reminder sent again for a moved deadline is a new message: its
/// Message-ID names the deadline, so that no mail system drops it as a
/// duplicate of the one sent for the old deadline.
pub fn edition(claimed: &Claimed) -> Option<String> {
    claimed
        .previous_due_at
        .map(|_| claimed.due_at.instant().timestamp().to_string())
}

impl Queue for Reminders {
    type Table = reminders::Table;
    type Job = Claimed;

    fn jobs(&self, _db: &mut Db, rows: Vec<Claimed>, _now: Timestamp) -> anyhow::Result<Vec<Claimed>> {
        Ok(rows)
    }

    fn info(&self, claimed: &Claimed) -> JobInfo {
        JobInfo {
            to_email: claimed.student_email.clone(),
            message: message_of(claimed),
            edition: edition(claimed),
            rows: vec![row_of(claimed)],
        }
    }

    fn check(&self, claimed: Claimed, now: Timestamp) -> (Option<Claimed>, Vec<(Id, Withheld)>) {
        match self.withheld(&claimed, now.instant()) {
            Some(withheld) => (None, vec![(claimed.reminder_id, withheld)]),
            None => (Some(claimed), Vec::new()),
        }
    }

    fn compose(&self, claimed: &Claimed, sender: &Sender, now: DateTime<Utc>) -> Result<Message, SendFailure> {
        compose(claimed, sender, now, &self.templates)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sender(from: &str) -> Sender {
        Sender {
            from: from.parse().unwrap(),
            reply_to: None,
            bounce_address: None,
            unsubscribe_mailto: None,
            unsubscribe_url: None,
            preferences_url: None,
            secret: None,
            dkim: None,
        }
    }

    fn claimed(title: &str, name: Option<&str>) -> Claimed {
        Claimed {
            reminder_id: Id("3f0c9a52-8d2e-4c4b-9b1e-2a7d5c6e8f90".parse().unwrap()),
            reminder_type: "24h".into(),
            attempts: 0,
            assignment_id: Id::new(),
            title: title.into(),
            description: None,
            due_at: Timestamp::new("2025-09-27T23:00:00Z".parse().unwrap()),
            scheduled_due_at: Timestamp::new("2025-09-27T23:00:00Z".parse().unwrap()),
            previous_due_at: None,
            completed: false,
            cutoff: None,
            metadata: None,
            student_id: Id::new(),
            student_email: "alice@example.com".into(),
            student_name: name.map(String::from),
            student_timezone: Some("America/Los_Angeles".into()),
            contact_opt_out: false,
            student_locale: None,
            reminder_types: None,
            muted_types: None,
            max_per_day: None,
            send_window: None,
        }
    }

    #[test]
    fn an_overdue_notice_is_skipped_once_the_cut_off_has_passed() {
        let mut late = claimed("Essay", None);
        late.reminder_type = "overdue-24h".into();
        let (due, day) = (late.due_at.instant(), chrono::Duration::hours(24));
        let queue = Reminders {
            delivery_window: None,
            required_types: None,
            send_window: None,
            templates: Templates::load(None).unwrap(),
        };
        assert_eq!(queue.withheld(&late, due + day), None);
        late.cutoff = Some(Timestamp::new(due + day - chrono::Duration::minutes(1)));
        let reason = skip_reason(&late, due + day, None).expect("skipped");
        assert!(reason.contains("cut-off has passed"), "{reason}");
        // A reminder before the deadline does not care about the cut-off.
        late.reminder_type = "24h".into();
        assert_eq!(queue.withheld(&late, due - day), None);
    }

    #[test]
    fn the_message_names_the_title_and_the_local_due_time() {
        let from = sender("Reminders <noreply@school.example>");
        let now = "2025-09-26T23:00:00Z".parse().unwrap();
        let message = compose(
            &claimed("Problem set 1", Some("Alice")),
            &from,
            now,
            &Templates::load(None).unwrap(),
        )
        .unwrap();
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
    fn no_header_line_is_too_long_whatever_the_title() {
        let from = sender("noreply@school.example");
        let now = "2025-09-26T23:00:00Z".parse().unwrap();
        let url = format!("https://example.com/{}", "x".repeat(1_100));
        let long_name = "N".repeat(2_000);
        let spaced = "word ".repeat(400);
        for (title, name) in [
            (url.as_str(), "Ann"),
            (spaced.as_str(), long_name.as_str()),
            ("Ünïcødé ".repeat(300).as_str(), "Zoë"),
        ] {
            let message = compose(&claimed(title, Some(name)), &from, now, &Templates::load(None).unwrap()).unwrap();
            let text = String::from_utf8(message.formatted()).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            let longest = head.split("\r\n").map(str::len).max().unwrap();
            assert!(longest < 100, "a header line of {longest} characters:\n{head}");
            assert!(body.split("\r\n").all(|line| line.len() <= 998), "{body}");
            if title == url {
                assert!(
                    body.replace("=\r\n", "").contains(&url),
                    "the body keeps the full title:\n{body}"
                );
            }
        }
    }

    #[test]
    fn control_characters_never_reach_a_header() {
        let from = sender("noreply@school.example");
        let now = "2025-09-26T23:00:00Z".parse().unwrap();
        let evil = claimed("Essay\r\nBcc: evil@example.com", Some("Eve\r\nCc: x@example.com"));
        let message = compose(&evil, &from, now, &Templates::load(None).unwrap()).unwrap();
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
