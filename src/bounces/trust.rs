//! Deciding whether a report proves it is about one of our messages: only a verified report may change anything.
//!
//! The bounce address is public, and every student holds valid VERP tokens of
//! their own, so neither a named address nor a valid token is proof alone. A
//! report is verified when
//! - it reached a VERP address whose token checks, and the recipient it names
//!   (if any) is the one that message went to; or
//! - it is a delivery report that names a recipient and quotes the exact
//!   Message-ID of a message we sent to that recipient.
//!
//! A Message-ID is not secret: it is in the `In-Reply-To` and `References` of
//! every reply the student sends, and in relay logs. So it never proves a
//! report alone, without the recipient it went to, and never a complaint,
//! which opts the student out at once: that takes the VERP token.
//!
//! The database lookups are the caller's, passed in as functions, so the rule
//! itself is pure and tested here.

use crate::mail::token::{MessageRef, parse_verp, verify_message_token};

/// How a report proved itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    VerpToken,
    QuotedMessageId,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    Verified {
        message: MessageRef,
        proof: Proof,
    },
    /// Counted and logged with the reason; changes nothing else.
    Unverified {
        reason: String,
    },
}

/// What a report claims, which decides what may prove it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// A delivery report (DSN or NDR).
    Delivery,
    /// A spam complaint (ARF).
    Complaint,
}

/// A message we sent, as the caller's lookup by Message-ID finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub message: MessageRef,
    /// The address it was sent to.
    pub to: String,
}

/// The VERP token of the address a report reached: `--recipient` (for `-`)
/// first, then the `Delivered-To` / `X-Original-To` values in order.
pub fn envelope_token<'a>(
    given_recipient: Option<&'a str>,
    envelope_recipients: &'a [String],
    bounce_addr: &str,
) -> Option<&'a str> {
    given_recipient
        .into_iter()
        .chain(envelope_recipients.iter().map(String::as_str))
        .find_map(|recipient| parse_verp(recipient, bounce_addr))
}

/// Judges one report, or one recipient of a DSN.
///
/// - `token`: from [`envelope_token`];
/// - `named_recipient`: the failed or complaining address the report names;
/// - `sent_to(message)`: the address that message was sent to, if we sent it;
/// - `sent_with_id(message_id)`: the message we sent with that Message-ID
///   (a lookup, or, once Message-IDs come from `token::message_id_left`,
///   `token::verify_message_id` followed by `sent_to`).
pub fn judge(
    secret: &[u8],
    claim: Claim,
    token: Option<&str>,
    named_recipient: Option<&str>,
    original_message_id: Option<&str>,
    sent_to: impl Fn(MessageRef) -> Option<String>,
    sent_with_id: impl Fn(&str) -> Option<Sent>,
) -> Trust {
    let same = |a: &str, b: &str| a.trim().eq_ignore_ascii_case(b.trim());
    let mut reasons = Vec::new();
    match token.map(|token| verify_message_token(secret, token)) {
        None => reasons.push("not sent to a VERP address".to_owned()),
        Some(Err(error)) => reasons.push(format!("VERP token refused: {error}")),
        Some(Ok(message)) => match sent_to(message) {
            None => reasons.push("the VERP token names a message we have no record of".into()),
            Some(to) if named_recipient.is_none_or(|named| same(named, &to)) => {
                return Trust::Verified {
                    message,
                    proof: Proof::VerpToken,
                };
            }
            Some(_) => reasons.push("the VERP token's message went to another address than the one reported".into()),
        },
    }
    match (claim, original_message_id.map(|id| (id, sent_with_id(id)))) {
        (Claim::Complaint, _) => reasons.push("a complaint is proved only by a VERP token".into()),
        (_, None) => reasons.push("quotes no original Message-ID".into()),
        (_, Some((_, None))) => reasons.push("quotes a Message-ID we did not send".into()),
        (_, Some((_, Some(sent)))) => match named_recipient {
            None => reasons.push("quotes our Message-ID but names no recipient".into()),
            Some(named) if same(named, &sent.to) => {
                return Trust::Verified {
                    message: sent.message,
                    proof: Proof::QuotedMessageId,
                };
            }
            Some(_) => reasons.push("the quoted Message-ID was sent to another address".into()),
        },
    }
    Trust::Unverified {
        reason: reasons.join("; "),
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::mail::token::{MessageKind, message_token, verp_address};

    const SECRET: &[u8] = b"test secret";
    const BOUNCES: &str = "bounces@school.example";
    const A: &str = "a@students.example";
    const B: &str = "b@students.example";

    struct Sends {
        to_a: MessageRef,
        to_b: MessageRef,
    }

    impl Sends {
        fn new() -> Sends {
            let reminder = || MessageRef {
                kind: MessageKind::Reminder,
                id: Uuid::new_v4(),
            };
            Sends {
                to_a: reminder(),
                to_b: reminder(),
            }
        }

        fn sent_to(&self, message: MessageRef) -> Option<String> {
            [(self.to_a, A), (self.to_b, B)]
                .into_iter()
                .find(|(m, _)| *m == message)
                .map(|(_, to)| to.to_owned())
        }

        fn message_id(message: MessageRef) -> String {
            format!("{}@school.example", message.id)
        }

        fn sent_with_id(&self, id: &str) -> Option<Sent> {
            [self.to_a, self.to_b]
                .into_iter()
                .find(|m| Sends::message_id(*m) == id)
                .and_then(|message| {
                    Some(Sent {
                        message,
                        to: self.sent_to(message)?,
                    })
                })
        }

        fn judge(&self, delivered_to: &str, named: Option<&str>, quoted_id: Option<&str>) -> Trust {
            self.judge_claim(Claim::Delivery, delivered_to, named, quoted_id)
        }

        fn judge_claim(&self, claim: Claim, delivered_to: &str, named: Option<&str>, quoted_id: Option<&str>) -> Trust {
            let envelope = [delivered_to.to_owned()];
            let token = envelope_token(None, &envelope, BOUNCES);
            judge(
                SECRET,
                claim,
                token,
                named,
                quoted_id,
                |m| self.sent_to(m),
                |id| self.sent_with_id(id),
            )
        }
    }

    fn verp(message: MessageRef) -> String {
        verp_address(BOUNCES, &message_token(SECRET, message))
    }

    #[test]
    fn genuine_reports_are_verified() {
        let sends = Sends::new();
        assert_eq!(
            sends.judge(&verp(sends.to_a), Some(A), None),
            Trust::Verified {
                message: sends.to_a,
                proof: Proof::VerpToken
            }
        );
        assert_eq!(
            sends.judge(&verp(sends.to_a), None, None),
            Trust::Verified {
                message: sends.to_a,
                proof: Proof::VerpToken
            }
        );
        let id = Sends::message_id(sends.to_a);
        assert_eq!(
            sends.judge(BOUNCES, Some(A), Some(&id)),
            Trust::Verified {
                message: sends.to_a,
                proof: Proof::QuotedMessageId
            }
        );
    }

    #[test]
    fn forged_reports_of_issue_18_are_unverified() {
        let sends = Sends::new();
        let made_up = format!("{}@school.example", Uuid::new_v4());
        let mut tampered = verp(sends.to_a).into_bytes();
        let at = "bounces+".len() + 3;
        tampered[at] = if tampered[at] == b'a' { b'b' } else { b'a' };
        let tampered = String::from_utf8(tampered).expect("ascii");
        let b_id = Sends::message_id(sends.to_b);
        for (delivered_to, quoted) in [
            // to the plain bounce address, naming A
            (BOUNCES.to_owned(), None),
            // to A's VERP address with a tampered token
            (tampered, None),
            // to B's valid VERP address, naming A
            (verp(sends.to_b), None),
            // a made-up Message-ID
            (BOUNCES.to_owned(), Some(made_up.as_str())),
            // B's real Message-ID, naming A
            (BOUNCES.to_owned(), Some(b_id.as_str())),
        ] {
            let trust = sends.judge(&delivered_to, Some(A), quoted);
            assert!(
                matches!(trust, Trust::Unverified { .. }),
                "{delivered_to} {quoted:?}: {trust:?}"
            );
        }
    }

    #[test]
    fn a_message_id_proves_nothing_without_the_recipient_it_went_to() {
        let sends = Sends::new();
        let a_id = Sends::message_id(sends.to_a);
        // Quoted in every reply the student sends: not a secret.
        let trust = sends.judge(BOUNCES, None, Some(&a_id));
        assert!(matches!(trust, Trust::Unverified { .. }), "{trust:?}");
    }

    #[test]
    fn a_complaint_takes_the_verp_token() {
        let sends = Sends::new();
        let a_id = Sends::message_id(sends.to_a);
        for named in [None, Some(A)] {
            let trust = sends.judge_claim(Claim::Complaint, BOUNCES, named, Some(&a_id));
            assert!(matches!(trust, Trust::Unverified { .. }), "{named:?}: {trust:?}");
            assert_eq!(
                sends.judge_claim(Claim::Complaint, &verp(sends.to_a), named, Some(&a_id)),
                Trust::Verified {
                    message: sends.to_a,
                    proof: Proof::VerpToken
                }
            );
        }
    }

    #[test]
    fn given_recipient_comes_before_the_headers() {
        let envelope = [
            "other@school.example".to_owned(),
            "bounces+xyz@school.example".to_owned(),
        ];
        assert_eq!(envelope_token(None, &envelope, BOUNCES), Some("xyz"));
        assert_eq!(
            envelope_token(Some("bounces+abc@school.example"), &envelope, BOUNCES),
            Some("abc")
        );
        assert_eq!(envelope_token(None, &[], BOUNCES), None);
    }
}
