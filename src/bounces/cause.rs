//! Whose fault a failed delivery is: the student's address, our sending, or
//! something else. The one rule that decides whether a report counts against
//! a student.
//!
//! Read, as Sisimai (the reference classifier) reads it, from the status, the
//! server's own words (`Diagnostic-Code`, or the SMTP reply quoted in a
//! plain-text bounce) and the report's human-readable text together:
//! 1. what the server said names a cause: our sending (a blocklist, the sending
//!    IP's reputation, SPF/DKIM/DMARC), something else that is not the
//!    address (content, spam or virus filters, size, rate, relaying, a mailer
//!    error at the far end, a policy), or the address (no such user or domain,
//!    a disabled or moved mailbox), in that order: a `5.1.1` whose words say
//!    the sending IP is blacklisted is the sender's fault;
//! 2. a refusal given before the server knew the recipient (at connection,
//!    EHLO or MAIL FROM) or after it had accepted it (at the end of DATA, where
//!    filters answer "user unknown" for mail they dislike) is never about the
//!    address;
//! 3. otherwise a specific status code (RFC 3463) decides;
//! 4. otherwise the report's human text, read the same way as in 1;
//! 5. otherwise nobody is blamed.

use super::report::{Action, RecipientStatus, enhanced_code};

/// What one per-recipient status means for the student.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// A permanent failure, with whose fault it is.
    Hard(Cause),
    /// Delayed, or a final failure with a 4.x.x status (expired in a queue):
    /// says nothing about anyone.
    Soft,
    /// Delivered, relayed or expanded.
    NotABounce,
}

/// Whose fault a permanent failure is, with a short reason for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The address or its domain does not exist, or the mailbox is disabled
    /// or has moved: recorded `bounced`, counts toward the opt-out rule.
    Recipient(&'static str),
    /// Our sending: a blocklist, the sending IP's or domain's reputation,
    /// SPF/DKIM/DMARC, the sender address. Blames nobody; `status` warns the operator.
    OurSending(&'static str),
    /// Content, spam or virus filters, size, rate limits, relaying, a mailer
    /// error at the far end, a policy: blames nobody.
    Elsewhere(&'static str),
    /// Nothing says whose fault it is: blames nobody.
    Unclear,
}

impl Cause {
    /// Whether this counts toward the student's opt-out rule.
    pub fn blames_recipient(self) -> bool {
        matches!(self, Cause::Recipient(_))
    }

    pub fn label(self) -> &'static str {
        match self {
            Cause::Recipient(why) | Cause::OurSending(why) | Cause::Elsewhere(why) => why,
            Cause::Unclear => "no cause given",
        }
    }
}

/// Phrases, lowercase, with the reason they give. Checked in this order:
/// the first list that matches decides.
const OUR_SENDING: &[(&str, &str)] = &[
    ("blacklist", "the sending IP or domain is on a blocklist"),
    ("blocklist", "the sending IP or domain is on a blocklist"),
    ("block list", "the sending IP or domain is on a blocklist"),
    ("black list", "the sending IP or domain is on a blocklist"),
    ("spamhaus", "the sending IP or domain is on a blocklist"),
    ("spamcop", "the sending IP or domain is on a blocklist"),
    ("sorbs.net", "the sending IP or domain is on a blocklist"),
    ("dnsbl", "the sending IP or domain is on a blocklist"),
    ("blocked using", "the sending IP or domain is on a blocklist"),
    ("listed at", "the sending IP or domain is on a blocklist"),
    ("banned sending ip", "the sending IP or domain is on a blocklist"),
    ("reputation", "the sending IP's or domain's reputation"),
    (
        "adresse ip source bloquee",
        "the sending IP or domain is on a blocklist",
    ),
    ("dmarc", "SPF, DKIM or DMARC"),
    ("dkim", "SPF, DKIM or DMARC"),
    ("spf", "SPF, DKIM or DMARC"),
    ("unauthenticated email", "SPF, DKIM or DMARC"),
    ("authentication checks", "SPF, DKIM or DMARC"),
    ("authentication information", "SPF, DKIM or DMARC"),
    ("purported responsible address", "SPF, DKIM or DMARC"),
    ("mismatches client ip", "SPF, DKIM or DMARC"),
    ("not allowed to send from", "SPF, DKIM or DMARC"),
    ("ptr record", "the sending IP has no reverse DNS"),
    ("reverse dns", "the sending IP has no reverse DNS"),
    ("ip name lookup failed", "the sending IP has no reverse DNS"),
    ("may not be mail exchanger", "the sending IP has no reverse DNS"),
    ("client host rejected", "the sending IP was refused"),
    ("invalid ip for sending", "the sending IP was refused"),
    ("open relay", "the sending IP was refused"),
    ("host network not allowed", "the sending IP was refused"),
    ("sender address rejected", "the sender address was refused"),
    ("sender rejected", "the sender address was refused"),
    ("domain of sender address", "the sender address was refused"),
    ("sender domain", "the sender address was refused"),
    ("email address is not verified", "the sender address was refused"),
    ("sending to/from an address", "the sender address was refused"),
];

const ELSEWHERE: &[(&str, &str)] = &[
    ("procmail", "a mailer error at the far end"),
    ("pipe to |", "a mailer error at the far end"),
    ("mailer error", "a mailer error at the far end"),
    ("operating system error", "a mailer error at the far end"),
    ("spam", "a spam or content filter"),
    ("virus", "a spam or content filter"),
    ("malware", "a spam or content filter"),
    ("content rejected", "a spam or content filter"),
    ("security issue", "a spam or content filter"),
    ("message filtered", "a spam or content filter"),
    ("header error", "a spam or content filter"),
    ("headers too large", "a spam or content filter"),
    ("8-bit data", "a spam or content filter"),
    ("multiple addresses in from", "a spam or content filter"),
    ("is redundant", "a spam or content filter"),
    ("message not allowed", "a spam or content filter"),
    ("too large", "the message is too large"),
    ("size limit", "the message is too large"),
    ("size exceeds", "the message is too large"),
    ("length exceeds", "the message is too large"),
    ("recipsizelimit", "the message is too large"),
    ("exceeds the maximum", "the message is too large"),
    ("too many recipients", "a rate limit"),
    ("sent to too many", "a rate limit"),
    ("receiving mail at a rate", "a rate limit"),
    ("rate limit", "a rate limit"),
    ("too many messages", "a rate limit"),
    ("too many connections", "a rate limit"),
    ("too many errors", "a rate limit"),
    ("relay access denied", "relaying was refused"),
    ("relaying denied", "relaying was refused"),
    ("not permitted to relay", "relaying was refused"),
    ("relay not permitted", "relaying was refused"),
    ("insecure mail relay", "relaying was refused"),
    ("not configured to relay", "relaying was refused"),
    ("all recipient addresses rejected", "a policy of the receiving server"),
    ("policy", "a policy of the receiving server"),
    ("protocol violation", "a policy of the receiving server"),
    ("not a member of", "a policy of the receiving server"),
    ("group you tried to contact", "a policy of the receiving server"),
    ("permission to post", "a policy of the receiving server"),
    ("not a registered gateway user", "a policy of the receiving server"),
];

const RECIPIENT: &[(&str, &str)] = &[
    ("user unknown", "no such user"),
    ("unknown user", "no such user"),
    ("no such user", "no such user"),
    ("user not found", "no such user"),
    ("user not exist", "no such user"),
    ("user does not exist", "no such user"),
    ("user doesn't exist", "no such user"),
    ("unknown recipient", "no such user"),
    ("invalid recipient", "no such user"),
    ("recipient not found", "no such user"),
    ("recipnotfound", "no such user"),
    ("no such mailbox", "no such user"),
    ("no mailbox here", "no such user"),
    ("mailbox unavailable", "no such user"),
    ("mailbox not found", "no such user"),
    ("mailbox does not exist", "no such user"),
    ("mailbox not available", "no such user"),
    ("account that you tried to reach does not exist", "no such user"),
    ("doesn't have a", "no such user"),
    ("does not have an account", "no such user"),
    ("address not found", "no such user"),
    ("address couldn't be found", "no such user"),
    ("invalid address", "no such user"),
    ("address rejected", "no such user"),
    ("bad address", "no such user"),
    ("not listed in", "no such user"),
    ("not our user", "no such user"),
    ("not our customer", "no such user"),
    ("no longer on server", "the mailbox has moved"),
    ("no longer valid", "the mailbox has moved"),
    ("has moved", "the mailbox has moved"),
    ("account is disabled", "the mailbox is disabled"),
    ("account has been disabled", "the mailbox is disabled"),
    ("account that you tried to reach is disabled", "the mailbox is disabled"),
    ("account that you tried to reach is inactive", "the mailbox is disabled"),
    ("disabled recipient", "the mailbox is disabled"),
    ("account is locked", "the mailbox is disabled"),
    ("temporary locked", "the mailbox is disabled"),
    ("mailbox is frozen", "the mailbox is disabled"),
    ("recipient account is blocked", "the mailbox is disabled"),
    ("mailbox disabled", "the mailbox is disabled"),
    ("host unknown", "no such domain"),
    ("host not found", "no such domain"),
    ("domain not found", "no such domain"),
    ("no such domain", "no such domain"),
    ("invalid domain", "no such domain"),
    ("domain does not exist", "no such domain"),
    ("domain is not reachable", "no such domain"),
    ("couldn't find a mail exchanger", "no such domain"),
    ("unrouteable address", "no such domain"),
    ("name service error", "no such domain"),
    ("no mx record", "no such domain"),
    ("does not accept mail", "no such domain"),
    ("no smtp service", "no such domain"),
    ("delivery userid", "no such user"),
    ("if address is correct", "no such user"),
    ("no valid recipients", "no such user"),
    ("unknown host", "no such domain"),
    ("ディレクトリには見つかりません", "no such user"),
    ("ディレクトリのリストにありません", "no such user"),
    ("does not exist", "no such user"),
    ("may not exist", "no such user"),
];

/// Words that say a refusal came before the server knew the recipient.
const BEFORE_RCPT: &[&str] = &[
    "after mail from",
    "in reply to mail from",
    "after initial connection",
    "refused to talk to me",
    "after ehlo",
    "after helo",
    "in reply to ehlo",
    "in reply to helo",
    "my name was rejected",
    "sender was rejected",
];

/// Words that say a refusal came after the server had accepted the
/// recipient, where some filters answer "unknown user" for mail they dislike.
const AFTER_DATA: &[&str] = &[
    "in reply to end of data",
    "after end of data",
    "failed after i sent the message",
];

/// The bare "no such user" phrases such filters use.
const FILTERS_SAY: &[&str] = &["user unknown", "unknown user", "no such user"];

/// A message that expired in a queue: final, but about nobody.
const EXPIRED: &[&str] = &[
    "retry timeout exceeded",
    "envelope expired",
    "not delivered within",
    "could not be delivered within",
    "message expired",
    "did not accept our requests to connect",
    "host not reachable",
    "delivery failed 20 attempts",
    "too many retries",
    "have been failing for a long time",
];

/// Hedged boilerplate that names causes it does not claim.
const HEDGES: &[&str] = &["they may be blacklisted"];

/// What a report's human-readable text (the DSN or NDR explanation, without
/// the returned original) says, read once for all its recipients.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReportText {
    named: Option<(Cause, &'static str)>,
    before_rcpt: bool,
    after_data: bool,
    expired: bool,
}

impl ReportText {
    pub fn read(text: &str) -> ReportText {
        let words = normalise(text);
        let (before_rcpt, after_data, expired) = stages(&words);
        ReportText {
            named: named_cause(&words),
            before_rcpt,
            after_data,
            expired,
        }
    }
}

/// Whether the words say the refusal came before RCPT, after DATA, or that
/// the message expired.
fn stages(words: &str) -> (bool, bool, bool) {
    let any = |phrases: &[&str]| phrases.iter().any(|phrase| words.contains(phrase));
    (any(BEFORE_RCPT), any(AFTER_DATA), any(EXPIRED))
}

/// What one per-recipient status means, read with its report's text.
pub fn severity(status: &RecipientStatus, text: &ReportText) -> Severity {
    match status.action {
        Action::Delayed => return Severity::Soft,
        Action::Delivered | Action::Relayed | Action::Expanded => return Severity::NotABounce,
        Action::Failed | Action::Other => {}
    }
    let said = normalise(status.diagnostic.as_deref().unwrap_or(""));
    let code = status.status.clone().or_else(|| enhanced_code(&said));
    match code.as_deref().and_then(|c| c.split('.').next()) {
        Some("2") => return Severity::NotABounce,
        // A message that expired in a queue says nothing about anyone.
        Some("4") => return Severity::Soft,
        // No enhanced code: a 4xx SMTP reply is temporary.
        None if said.starts_with('4') => return Severity::Soft,
        _ => {}
    }
    let (before_rcpt, after_data, expired) = stages(&said);
    if expired || text.expired {
        return Severity::Soft;
    }
    let found = named_cause(&said)
        .or_else(|| code.as_deref().and_then(cause_of_code).map(|cause| (cause, "")))
        .or(text.named);
    Severity::Hard(match found {
        None => Cause::Unclear,
        Some((Cause::Recipient(_), _)) if before_rcpt || text.before_rcpt => {
            Cause::Elsewhere("refused before the recipient was known")
        }
        Some((Cause::Recipient(_), phrase)) if (after_data || text.after_data) && FILTERS_SAY.contains(&phrase) => {
            Cause::Elsewhere("refused by a filter after the recipient was accepted")
        }
        Some((cause, _)) => cause,
    })
}

/// The cause the words name, if any, with the phrase that named it.
fn named_cause(words: &str) -> Option<(Cause, &'static str)> {
    let mut unhedged;
    let mut words = words;
    if HEDGES.iter().any(|hedge| words.contains(hedge)) {
        unhedged = words.to_owned();
        for hedge in HEDGES {
            unhedged = unhedged.replace(hedge, "");
        }
        words = &unhedged;
    }
    let find = |list: &'static [(&'static str, &'static str)]| list.iter().find(|(phrase, _)| words.contains(phrase));
    find(OUR_SENDING)
        .map(|(phrase, why)| (Cause::OurSending(why), *phrase))
        .or_else(|| find(ELSEWHERE).map(|(phrase, why)| (Cause::Elsewhere(why), *phrase)))
        .or_else(|| find(RECIPIENT).map(|(phrase, why)| (Cause::Recipient(why), *phrase)))
}

/// Status codes specific enough to decide alone (RFC 3463, RFC 7372).
fn cause_of_code(code: &str) -> Option<Cause> {
    let mut pieces = code.split('.');
    let (class, subject, detail) = (pieces.next()?, pieces.next()?, pieces.next()?);
    if class != "5" {
        return None;
    }
    Some(match (subject, detail) {
        ("1", "1" | "2" | "3" | "0") => Cause::Recipient("no such user"),
        ("1", "6") => Cause::Recipient("the mailbox has moved"),
        ("1", "10") => Cause::Recipient("no such domain"),
        ("4", "4") => Cause::Recipient("no such domain"),
        ("2", "1") | ("7", "13") => Cause::Recipient("the mailbox is disabled"),
        ("1", "7" | "8") => Cause::OurSending("the sender address was refused"),
        ("7", "8" | "20" | "21" | "22" | "23" | "24" | "25" | "26") => Cause::OurSending("SPF, DKIM or DMARC"),
        ("2", "3") | ("3", "4") => Cause::Elsewhere("the message is too large"),
        ("6", _) => Cause::Elsewhere("a spam or content filter"),
        ("7", _) => Cause::Elsewhere("a policy of the receiving server"),
        _ => return None,
    })
}

/// Lowercase, with runs of whitespace as one space, so phrases folded
/// across lines still match.
fn normalise(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

/// Whether a line of a plain-text bounce names a cause, for picking the
/// line to keep as its diagnostic.
pub fn names_a_cause(line: &str) -> bool {
    named_cause(&normalise(line)).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(status: Option<&str>, diagnostic: Option<&str>) -> RecipientStatus {
        RecipientStatus {
            final_recipient: None,
            action: Action::Failed,
            status: status.map(str::to_owned),
            diagnostic: diagnostic.map(str::to_owned),
        }
    }

    fn whose(status: Option<&str>, diagnostic: Option<&str>, text: &str) -> &'static str {
        match severity(&failed(status, diagnostic), &ReportText::read(text)) {
            Severity::Hard(Cause::Recipient(_)) => "recipient",
            Severity::Hard(Cause::OurSending(_)) => "our sending",
            Severity::Hard(Cause::Elsewhere(_)) => "elsewhere",
            Severity::Hard(Cause::Unclear) => "unclear",
            Severity::Soft => "soft",
            Severity::NotABounce => "not a bounce",
        }
    }

    #[test]
    fn a_specific_status_decides_when_the_words_name_no_cause() {
        assert_eq!(whose(Some("5.1.1"), None, ""), "recipient");
        assert_eq!(whose(Some("5.2.1"), None, ""), "recipient");
        assert_eq!(whose(Some("5.4.4"), None, ""), "recipient");
        assert_eq!(whose(Some("5.7.13"), None, ""), "recipient");
        assert_eq!(whose(Some("5.1.7"), None, ""), "our sending");
        assert_eq!(whose(Some("5.1.8"), None, ""), "our sending");
        assert_eq!(whose(Some("5.7.26"), None, ""), "our sending");
        assert_eq!(whose(Some("5.7.1"), None, ""), "elsewhere");
        assert_eq!(whose(Some("5.3.4"), None, ""), "elsewhere");
        assert_eq!(whose(Some("5.2.2"), Some("mailbox full"), ""), "unclear");
        assert_eq!(whose(Some("5.0.0"), None, ""), "unclear");
        assert_eq!(whose(None, None, ""), "unclear");
    }

    #[test]
    fn the_words_that_name_a_cause_win_over_the_status() {
        assert_eq!(whose(Some("5.0.0"), Some("550 User unknown"), ""), "recipient");
        assert_eq!(whose(None, Some("550 no such user"), ""), "recipient");
        assert_eq!(whose(None, Some("550 5.1.1 unknown"), ""), "recipient");
        assert_eq!(
            whose(
                Some("5.5.0"),
                Some("554 This user doesn't have a yahoo.com account"),
                ""
            ),
            "recipient"
        );
        assert_eq!(
            whose(Some("5.4.4"), Some("Host or domain name not found"), ""),
            "recipient"
        );
        assert_eq!(whose(Some("5.7.1"), Some("550 5.7.1 User Unknown"), ""), "recipient");
        assert_eq!(
            whose(Some("5.1.1"), Some("550 5.7.1 IP address blacklisted by recipient"), ""),
            "our sending"
        );
        assert_eq!(
            whose(
                Some("5.1.3"),
                Some("553 http://www.spamhaus.org/query/bl?ip=192.0.2.222"),
                ""
            ),
            "our sending"
        );
        assert_eq!(
            whose(
                Some("5.1.0"),
                Some("550 5.1.0 192.0.2.222 is not allowed to send from <example.net>"),
                ""
            ),
            "our sending"
        );
        assert_eq!(
            whose(
                Some("5.1.1"),
                Some("550 5.1.1 <a@b> - 203.0.113.222 has sent to too many recipients"),
                ""
            ),
            "elsewhere"
        );
        assert_eq!(
            whose(
                Some("5.1.1"),
                Some("procmail: Couldn't create \"/var/spool/mail/neko\": No such user"),
                ""
            ),
            "elsewhere"
        );
        assert_eq!(whose(Some("5.0.0"), Some("550 blocked: spam"), ""), "elsewhere");
    }

    #[test]
    fn a_refusal_before_or_after_the_recipient_is_never_about_it() {
        let text = "SMTP error from remote mail server after MAIL FROM:<us@school.example>";
        assert_eq!(
            whose(Some("5.1.0"), Some("553 5.1.0 school.example does not exist"), text),
            "elsewhere"
        );
        let after_data = "host mx.example[192.0.2.1] said: 550 Unknown user (in reply to end of DATA command)";
        assert_eq!(whose(Some("5.0.0"), Some("550 Unknown user"), after_data), "elsewhere");
    }

    #[test]
    fn the_human_text_decides_last() {
        let text = "The email account that you tried to reach does not exist.";
        assert_eq!(whose(Some("5.0.0"), None, text), "recipient");
        assert_eq!(
            whose(Some("5.1.1"), None, "Your IP is listed at zen.spamhaus.org"),
            "recipient"
        );
    }

    #[test]
    fn delays_and_temporary_failures_say_nothing() {
        assert_eq!(whose(None, Some("451 try later"), ""), "soft");
        assert_eq!(whose(Some("4.2.2"), None, ""), "soft");
        let delayed = RecipientStatus {
            action: Action::Delayed,
            ..failed(Some("5.1.1"), None)
        };
        assert_eq!(severity(&delayed, &ReportText::default()), Severity::Soft);
        let delivered = RecipientStatus {
            action: Action::Delivered,
            ..failed(Some("2.0.0"), None)
        };
        assert_eq!(severity(&delivered, &ReportText::default()), Severity::NotABounce);
    }
}
