//! Unforgeable tokens: the VERP token naming the message a report is about, and the student's unsubscribe token.
//!
//! A token is `payload || HMAC-SHA256(secret, domain || payload)[..10]`, written in
//! lowercase base32 without padding. Lowercase base32 survives mail systems that
//! fold the case of local parts, and uses only letters and digits, so it is safe
//! in an address and in a URL. Each kind of token has its own domain string in the
//! MAC input, so a token made for one use never verifies as the other.

use std::fmt;

use data_encoding::BASE32_NOPAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use uuid::Uuid;

type HmacSha256 = Hmac<Sha256>;

/// 80 bits of MAC: a forger has one chance in 2^80 per attempt, and every
/// attempt is a mail to us, so this is far beyond reach while keeping the
/// address under the 64-character local-part limit.
const MAC_LEN: usize = 10;
/// A Message-ID is not limited to 64 characters, and it must hold at least
/// 122 unguessable bits (as many as a v4 UUID), so it carries 128 bits of MAC.
const MESSAGE_ID_MAC_LEN: usize = 16;
const VERP_DOMAIN: &[u8] = b"reminders/verp/v1\0";
const UNSUBSCRIBE_DOMAIN: &[u8] = b"reminders/unsubscribe/v1\0";
const MESSAGE_ID_DOMAIN: &[u8] = b"reminders/message-id/v1\0";

/// Which of our messages a VERP token names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Reminder,
    Summary,
    /// A guardian's digest or escalation, or a teacher's report.
    Contact,
}

impl MessageKind {
    fn tag(self) -> u8 {
        match self {
            MessageKind::Reminder => b'r',
            MessageKind::Summary => b's',
            MessageKind::Contact => b'c',
        }
    }

    fn from_tag(tag: u8) -> Option<MessageKind> {
        match tag {
            b'r' => Some(MessageKind::Reminder),
            b's' => Some(MessageKind::Summary),
            b'c' => Some(MessageKind::Contact),
            _ => None,
        }
    }
}

/// The message a valid VERP token names: a reminder or a summary, by its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageRef {
    pub kind: MessageKind,
    pub id: Uuid,
}

/// Why a token was refused. Both mean "not ours"; they are told apart only for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Not base32, or the wrong length or kind for this use.
    Malformed,
    /// Well formed, but the MAC does not check: forged, altered, or made with another secret.
    BadSignature,
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::Malformed => f.write_str("malformed token"),
            TokenError::BadSignature => f.write_str("token signature does not match"),
        }
    }
}

impl std::error::Error for TokenError {}

fn keyed(secret: &[u8], domain: &[u8], payload: &[u8]) -> HmacSha256 {
    // HMAC takes a key of any length, so this cannot fail.
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(domain);
    mac.update(payload);
    mac
}

fn sign(secret: &[u8], domain: &[u8], payload: &[u8], mac_len: usize) -> String {
    let tag = keyed(secret, domain, payload).finalize().into_bytes();
    let mut bytes = payload.to_vec();
    bytes.extend_from_slice(&tag[..mac_len]);
    BASE32_NOPAD.encode(&bytes).to_ascii_lowercase()
}

/// Decodes a token of `payload_len` payload bytes and checks its MAC in constant time.
fn open(secret: &[u8], domain: &[u8], token: &str, payload_len: usize, mac_len: usize) -> Result<Vec<u8>, TokenError> {
    let bytes = BASE32_NOPAD
        .decode(token.trim().to_ascii_uppercase().as_bytes())
        .map_err(|_| TokenError::Malformed)?;
    if bytes.len() != payload_len + mac_len {
        return Err(TokenError::Malformed);
    }
    let (payload, tag) = bytes.split_at(payload_len);
    keyed(secret, domain, payload)
        .verify_truncated_left(tag)
        .map_err(|_| TokenError::BadSignature)?;
    Ok(payload.to_vec())
}

fn message_payload(message: MessageRef) -> Vec<u8> {
    let mut payload = vec![message.kind.tag()];
    payload.extend_from_slice(message.id.as_bytes());
    payload
}

fn message_from_payload(payload: &[u8]) -> Result<MessageRef, TokenError> {
    let (&tag, id) = payload.split_first().ok_or(TokenError::Malformed)?;
    let kind = MessageKind::from_tag(tag).ok_or(TokenError::Malformed)?;
    let id = Uuid::from_slice(id).map_err(|_| TokenError::Malformed)?;
    Ok(MessageRef { kind, id })
}

/// The VERP token for one message we send.
pub fn message_token(secret: &[u8], message: MessageRef) -> String {
    sign(secret, VERP_DOMAIN, &message_payload(message), MAC_LEN)
}

/// Which message a VERP token names, if it was made with `secret`.
pub fn verify_message_token(secret: &[u8], token: &str) -> Result<MessageRef, TokenError> {
    message_from_payload(&open(secret, VERP_DOMAIN, token, 17, MAC_LEN)?)
}

/// The left part of an unguessable Message-ID for one message (`<LEFT@domain>`).
///
/// Today's Message-IDs are `<uuid-v7@domain>`: a v7 UUID has only 74 random
/// bits beside its timestamp, short of the 122 a proof needs. This one
/// is deterministic (a resend keeps its Message-ID, as today) and carries a
/// 128-bit MAC, so a report quoting it can be checked without a lookup.
pub fn message_id_left(secret: &[u8], message: MessageRef) -> String {
    sign(secret, MESSAGE_ID_DOMAIN, &message_payload(message), MESSAGE_ID_MAC_LEN)
}

/// Which message a Message-ID (with or without `<>` and `@domain`, and with
/// or without its `.edition`) names, if we made it.
pub fn verify_message_id(secret: &[u8], message_id: &str) -> Result<MessageRef, TokenError> {
    let bare = message_id.trim().trim_start_matches('<').trim_end_matches('>');
    let left = bare.split_once('@').map_or(bare, |(left, _)| left);
    let left = left.split_once('.').map_or(left, |(token, _edition)| token);
    message_from_payload(&open(secret, MESSAGE_ID_DOMAIN, left, 17, MESSAGE_ID_MAC_LEN)?)
}

/// Whom an unsubscribe token names: each person we mail has their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subscriber {
    Student(Uuid),
    Guardian(Uuid),
    Teacher(Uuid),
}

/// The unsubscribe token for one person. A student's payload is their id
/// alone, as before guardians and teachers, so the tokens in mail already
/// sent keep working; the others carry a tag byte before the id.
pub fn unsubscribe_token(secret: &[u8], subscriber: Subscriber) -> String {
    let payload = match subscriber {
        Subscriber::Student(id) => id.as_bytes().to_vec(),
        Subscriber::Guardian(id) => [&[b'g'][..], id.as_bytes()].concat(),
        Subscriber::Teacher(id) => [&[b't'][..], id.as_bytes()].concat(),
    };
    sign(secret, UNSUBSCRIBE_DOMAIN, &payload, MAC_LEN)
}

/// Whom an unsubscribe token names, if it was made with `secret`.
pub fn verify_unsubscribe_token(secret: &[u8], token: &str) -> Result<Subscriber, TokenError> {
    let id = |bytes: &[u8]| Uuid::from_slice(bytes).map_err(|_| TokenError::Malformed);
    match open(secret, UNSUBSCRIBE_DOMAIN, token, 16, MAC_LEN) {
        Ok(payload) => Ok(Subscriber::Student(id(&payload)?)),
        Err(TokenError::Malformed) => {
            let payload = open(secret, UNSUBSCRIBE_DOMAIN, token, 17, MAC_LEN)?;
            match payload.split_first() {
                Some((b'g', rest)) => Ok(Subscriber::Guardian(id(rest)?)),
                Some((b't', rest)) => Ok(Subscriber::Teacher(id(rest)?)),
                _ => Err(TokenError::Malformed),
            }
        }
        Err(error) => Err(error),
    }
}

/// `bounces@school.example` + TOKEN → `bounces+TOKEN@school.example`, the envelope sender.
pub fn verp_address(bounce_addr: &str, token: &str) -> String {
    match bounce_addr.rsplit_once('@') {
        Some((local, domain)) => format!("{local}+{token}@{domain}"),
        None => format!("{bounce_addr}+{token}"),
    }
}

/// The token in `recipient` if it is a VERP form of `bounce_addr` (`bounces+TOKEN@school.example`).
///
/// The local part and the domain are compared without regard to case, since
/// relays may fold either. Angle brackets and surrounding spaces are ignored,
/// so a `Delivered-To` value can be passed as is.
pub fn parse_verp<'a>(recipient: &'a str, bounce_addr: &str) -> Option<&'a str> {
    let recipient = recipient.trim().trim_start_matches('<').trim_end_matches('>').trim();
    let (local, domain) = recipient.rsplit_once('@')?;
    let (base_local, base_domain) = bounce_addr.trim().rsplit_once('@')?;
    if !domain.eq_ignore_ascii_case(base_domain) {
        return None;
    }
    let (prefix, token) = local.split_once('+')?;
    if !prefix.eq_ignore_ascii_case(base_local) || token.is_empty() {
        return None;
    }
    Some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"a test secret, not a real one";
    const BOUNCES: &str = "bounces@school.example";

    fn reminder() -> MessageRef {
        MessageRef {
            kind: MessageKind::Reminder,
            id: Uuid::new_v4(),
        }
    }

    #[test]
    fn message_token_round_trips_through_the_verp_address() {
        for message in [
            reminder(),
            MessageRef {
                kind: MessageKind::Summary,
                id: Uuid::new_v4(),
            },
        ] {
            let token = message_token(SECRET, message);
            assert!(token.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
            let address = verp_address(BOUNCES, &token);
            assert!(
                address.split('@').next().is_some_and(|local| local.len() <= 64),
                "{address}"
            );
            let found = parse_verp(&address, BOUNCES).expect("a VERP address");
            assert_eq!(verify_message_token(SECRET, found), Ok(message));
        }
    }

    #[test]
    fn uppercased_address_and_token_are_accepted() {
        let message = reminder();
        let address = verp_address(BOUNCES, &message_token(SECRET, message)).to_ascii_uppercase();
        let bracketed = format!("<{address}>");
        let token = parse_verp(&bracketed, BOUNCES).expect("a VERP address");
        assert_eq!(verify_message_token(SECRET, token), Ok(message));
    }

    #[test]
    fn every_altered_character_is_rejected() {
        let token = message_token(SECRET, reminder());
        for at in 0..token.len() {
            let mut altered = token.clone().into_bytes();
            altered[at] = if altered[at] == b'a' { b'b' } else { b'a' };
            let altered = String::from_utf8(altered).expect("ascii");
            assert!(verify_message_token(SECRET, &altered).is_err(), "position {at}");
        }
        assert!(verify_message_token(SECRET, &token[..token.len() - 1]).is_err());
        assert!(verify_message_token(SECRET, "").is_err());
        assert!(verify_message_token(SECRET, "not base32!").is_err());
    }

    #[test]
    fn another_secret_does_not_verify() {
        let token = message_token(SECRET, reminder());
        assert_eq!(verify_message_token(b"other", &token), Err(TokenError::BadSignature));
    }

    #[test]
    fn tokens_are_not_valid_for_the_other_use() {
        let student = Subscriber::Student(Uuid::new_v4());
        let unsubscribe = unsubscribe_token(SECRET, student);
        assert_eq!(verify_unsubscribe_token(SECRET, &unsubscribe), Ok(student));
        let id = Uuid::new_v4();
        for adult in [Subscriber::Guardian(id), Subscriber::Teacher(id)] {
            let token = unsubscribe_token(SECRET, adult);
            assert_eq!(verify_unsubscribe_token(SECRET, &token), Ok(adult));
            assert!(verify_message_token(SECRET, &token).is_err());
        }
        assert_ne!(
            unsubscribe_token(SECRET, Subscriber::Guardian(id)),
            unsubscribe_token(SECRET, Subscriber::Teacher(id))
        );
        assert!(verify_message_token(SECRET, &unsubscribe).is_err());
        let verp = message_token(SECRET, reminder());
        assert!(verify_unsubscribe_token(SECRET, &verp).is_err());
    }

    #[test]
    fn message_ids_round_trip_and_are_not_tokens() {
        let message = reminder();
        let left = message_id_left(SECRET, message);
        assert_eq!(left.len(), 53);
        assert_eq!(
            verify_message_id(SECRET, &format!("<{left}@school.example>")),
            Ok(message)
        );
        assert_eq!(verify_message_id(SECRET, &left), Ok(message));
        assert!(verify_message_id(b"other", &left).is_err());
        assert!(verify_message_token(SECRET, &left).is_err());
        let verp = message_token(SECRET, message);
        assert!(verify_message_id(SECRET, &verp).is_err());
        let made_up = format!("<{}@school.example>", Uuid::new_v4());
        assert!(verify_message_id(SECRET, &made_up).is_err());
    }

    #[test]
    fn other_addresses_are_not_verp() {
        assert_eq!(parse_verp(BOUNCES, BOUNCES), None);
        assert_eq!(parse_verp("bounces+@school.example", BOUNCES), None);
        assert_eq!(parse_verp("bounces+abc@other.example", BOUNCES), None);
        assert_eq!(parse_verp("student+abc@school.example", BOUNCES), None);
        assert_eq!(parse_verp("no-at-sign", BOUNCES), None);
    }
}
