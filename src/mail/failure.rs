//! Whom a failed send concerns, read from the SMTP reply (RFC 3463): the
//! recipient's mailbox, the message, the run or relay, or a passing fault.
//! What each costs (an attempt, the bounce rule, stopping) is `queue::policy`'s.
//!
//! A fault of the run or of the relay (no connection, TLS, AUTH, relaying
//! denied, a server going away) is never the recipient's.

/// Whom a failure concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The recipient's mailbox (a 5.1.x or 5.2.x reply, 550 "no such user"):
    /// the message fails, and it counts toward the bounce opt-out.
    Recipient,
    /// The message itself (content, size, a line too long: 5.6.x, 5.3.4,
    /// 500/501, or a message that cannot be built): it fails with the reason,
    /// without counting toward an opt-out, and the run warns.
    Message,
    /// The run or the relay (connection refused or broken before the server
    /// answered, TLS, AUTH, 421, relaying denied, a 5.7.x policy reply): no
    /// attempt counts and nobody is opted out; a few in a row stop the run.
    Run,
    /// Worth trying again later (a 4xx reply about this message, or no answer
    /// after the data was sent): counts an attempt, then backs off.
    Transient,
}

/// Why a message did not go out, and whom that concerns.
#[derive(Debug, Clone)]
pub struct SendFailure {
    pub blame: Blame,
    pub reason: String,
    /// A fault of the run that no later message can get past (the token
    /// endpoint refused, or the relay refused a renewed token): stop now
    /// rather than after a few in a row.
    pub stops_the_run: bool,
}

impl SendFailure {
    pub fn new(blame: Blame, reason: impl Into<String>) -> SendFailure {
        SendFailure {
            blame,
            reason: reason.into(),
            stops_the_run: false,
        }
    }

    /// The run's failure that ends it at once (see `stops_the_run`).
    pub fn final_for_the_run(reason: impl Into<String>) -> SendFailure {
        SendFailure {
            stops_the_run: true,
            ..SendFailure::new(Blame::Run, reason)
        }
    }
}

/// Classifies an SMTP reply to a message by its code and by the enhanced
/// status code (RFC 3463, `5.1.1`) in its text, when there is one.
pub fn blame_reply(code: u16, text: &str) -> Blame {
    if code == 421 {
        // The server is closing the session: nothing to do with this message.
        return Blame::Run;
    }
    let enhanced = enhanced_status(text);
    if code < 500 {
        return Blame::Transient;
    }
    if text.to_lowercase().contains("relay") {
        // "Relay access denied": the relay refuses us, whoever the recipient.
        return Blame::Run;
    }
    match enhanced {
        Some((1 | 2 | 4, _)) => Blame::Recipient,
        Some((3, 4)) | Some((5 | 6, _)) => Blame::Message,
        Some((3 | 7, _)) => Blame::Run,
        _ => match code {
            550 | 551 | 553 => Blame::Recipient,
            502..=504 | 530..=538 => Blame::Run,
            _ => Blame::Message,
        },
    }
}

/// The subject and detail of the first `5.x.y` enhanced status code in a
/// reply's text.
fn enhanced_status(text: &str) -> Option<(u16, u16)> {
    text.split(|c: char| c.is_whitespace() || matches!(c, ':' | '(' | ')' | ',' | ';'))
        .find_map(|word| {
            let mut parts = word.split('.');
            let class = parts.next()?;
            let subject: u16 = parts.next()?.parse().ok()?;
            let detail: u16 = parts.next()?.parse().ok()?;
            (parts.next().is_none() && class == "5").then_some((subject, detail))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailbox_replies_concern_the_recipient() {
        assert_eq!(blame_reply(550, "5.1.1 <a@b>: no such user"), Blame::Recipient);
        assert_eq!(
            blame_reply(550, "permanent error (550): 5.2.1 mailbox disabled"),
            Blame::Recipient
        );
        assert_eq!(blame_reply(550, "mailbox unavailable"), Blame::Recipient);
        assert_eq!(blame_reply(553, "mailbox name not allowed"), Blame::Recipient);
    }

    #[test]
    fn content_replies_concern_the_message() {
        assert_eq!(blame_reply(500, "Line too long"), Blame::Message);
        assert_eq!(blame_reply(552, "5.3.4 message too big"), Blame::Message);
        assert_eq!(blame_reply(554, "5.6.0 content rejected"), Blame::Message);
        assert_eq!(blame_reply(501, "5.5.2 syntax error"), Blame::Message);
    }

    #[test]
    fn relay_policy_and_session_replies_concern_the_run() {
        assert_eq!(blame_reply(554, "5.7.1 <a@b>: Relay access denied"), Blame::Run);
        assert_eq!(blame_reply(550, "relaying denied"), Blame::Run);
        assert_eq!(blame_reply(550, "5.7.1 sender not authorized"), Blame::Run);
        assert_eq!(blame_reply(535, "5.7.8 authentication failed"), Blame::Run);
        assert_eq!(blame_reply(530, "authentication required"), Blame::Run);
        assert_eq!(blame_reply(421, "4.7.0 too busy, closing"), Blame::Run);
    }

    #[test]
    fn other_4xx_replies_are_transient() {
        assert_eq!(blame_reply(451, "4.3.0 try again later"), Blame::Transient);
        assert_eq!(blame_reply(452, "4.2.2 mailbox full"), Blame::Transient);
    }

    #[test]
    fn enhanced_codes_are_found_among_punctuation() {
        assert_eq!(enhanced_status("(550): 5.1.1 <x>"), Some((1, 1)));
        assert_eq!(enhanced_status("version 5.1 of the server"), None);
        assert_eq!(enhanced_status("4.2.2 full"), None);
    }
}
