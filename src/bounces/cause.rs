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
//! 2. otherwise a specific status code (RFC 3463) decides;
//! 3. otherwise the report's human text, read the same way as in 1;
//! 4. otherwise nobody is blamed.
//!
//! Whatever names it, a refusal given before the server knew the recipient
//! (at connection, EHLO or MAIL FROM) is never about the address, nor is a
//! bare "user unknown" given after the end of DATA, which some filters say of
//! mail they dislike. A message that expired in a queue, like a delay or a
//! 4.x.x status, says nothing about anyone.

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

/// The reasons a cause is given with, as the send log and `status` show them.
const BLOCKLIST: &str = "the sending IP or domain is on a blocklist";
const REPUTATION: &str = "the sending IP's or domain's reputation";
const AUTHENTICATION: &str = "SPF, DKIM or DMARC";
const REVERSE_DNS: &str = "the sending IP has no reverse DNS";
const SENDING_IP: &str = "the sending IP was refused";
const SENDER_ADDRESS: &str = "the sender address was refused";
const MAILER_ERROR: &str = "a mailer error at the far end";
const CONTENT_FILTER: &str = "a spam or content filter";
const TOO_LARGE: &str = "the message is too large";
const RATE_LIMIT: &str = "a rate limit";
const RELAYING: &str = "relaying was refused";
const POLICY: &str = "a policy of the receiving server";
const NO_SUCH_USER: &str = "no such user";
const MOVED: &str = "the mailbox has moved";
const DISABLED: &str = "the mailbox is disabled";
const NO_SUCH_DOMAIN: &str = "no such domain";

/// Phrases, lowercase, with the reason they give. Checked in this order:
/// the first list that matches decides.
const OUR_SENDING: &[(&str, &str)] = &[
    ("blacklist", BLOCKLIST),
    ("blocklist", BLOCKLIST),
    ("block list", BLOCKLIST),
    ("black list", BLOCKLIST),
    ("spamhaus", BLOCKLIST),
    ("spamcop", BLOCKLIST),
    ("sorbs.net", BLOCKLIST),
    ("dnsbl", BLOCKLIST),
    ("blocked using", BLOCKLIST),
    ("listed at", BLOCKLIST),
    ("banned sending ip", BLOCKLIST),
    ("reputation", REPUTATION),
    ("adresse ip source bloquee", BLOCKLIST),
    ("dmarc", AUTHENTICATION),
    ("dkim", AUTHENTICATION),
    ("spf", AUTHENTICATION),
    ("unauthenticated email", AUTHENTICATION),
    ("authentication checks", AUTHENTICATION),
    ("authentication information", AUTHENTICATION),
    ("purported responsible address", AUTHENTICATION),
    ("mismatches client ip", AUTHENTICATION),
    ("not allowed to send from", AUTHENTICATION),
    ("ptr record", REVERSE_DNS),
    ("reverse dns", REVERSE_DNS),
    ("ip name lookup failed", REVERSE_DNS),
    ("may not be mail exchanger", REVERSE_DNS),
    ("client host rejected", SENDING_IP),
    ("invalid ip for sending", SENDING_IP),
    ("open relay", SENDING_IP),
    ("host network not allowed", SENDING_IP),
    ("sender address rejected", SENDER_ADDRESS),
    ("sender rejected", SENDER_ADDRESS),
    ("domain of sender address", SENDER_ADDRESS),
    ("sender domain", SENDER_ADDRESS),
    ("email address is not verified", SENDER_ADDRESS),
    ("sending to/from an address", SENDER_ADDRESS),
];

const ELSEWHERE: &[(&str, &str)] = &[
    ("procmail", MAILER_ERROR),
    ("pipe to |", MAILER_ERROR),
    ("mailer error", MAILER_ERROR),
    ("operating system error", MAILER_ERROR),
    ("spam", CONTENT_FILTER),
    ("virus", CONTENT_FILTER),
    ("malware", CONTENT_FILTER),
    ("content rejected", CONTENT_FILTER),
    ("security issue", CONTENT_FILTER),
    ("message filtered", CONTENT_FILTER),
    ("header error", CONTENT_FILTER),
    ("headers too large", CONTENT_FILTER),
    ("8-bit data", CONTENT_FILTER),
    ("multiple addresses in from", CONTENT_FILTER),
    ("is redundant", CONTENT_FILTER),
    ("message not allowed", CONTENT_FILTER),
    ("too large", TOO_LARGE),
    ("size limit", TOO_LARGE),
    ("size exceeds", TOO_LARGE),
    ("length exceeds", TOO_LARGE),
    ("recipsizelimit", TOO_LARGE),
    ("exceeds the maximum", TOO_LARGE),
    ("too many recipients", RATE_LIMIT),
    ("sent to too many", RATE_LIMIT),
    ("receiving mail at a rate", RATE_LIMIT),
    ("rate limit", RATE_LIMIT),
    ("too many messages", RATE_LIMIT),
    ("too many connections", RATE_LIMIT),
    ("too many errors", RATE_LIMIT),
    ("relay access denied", RELAYING),
    ("relaying denied", RELAYING),
    ("not permitted to relay", RELAYING),
    ("relay not permitted", RELAYING),
    ("insecure mail relay", RELAYING),
    ("not configured to relay", RELAYING),
    ("all recipient addresses rejected", POLICY),
    ("policy", POLICY),
    ("protocol violation", POLICY),
    ("not a member of", POLICY),
    ("group you tried to contact", POLICY),
    ("permission to post", POLICY),
    ("not a registered gateway user", POLICY),
];

const RECIPIENT: &[(&str, &str)] = &[
    ("user unknown", NO_SUCH_USER),
    ("unknown user", NO_SUCH_USER),
    (NO_SUCH_USER, NO_SUCH_USER),
    ("user not found", NO_SUCH_USER),
    ("user not exist", NO_SUCH_USER),
    ("user does not exist", NO_SUCH_USER),
    ("user doesn't exist", NO_SUCH_USER),
    ("unknown recipient", NO_SUCH_USER),
    ("invalid recipient", NO_SUCH_USER),
    ("recipient not found", NO_SUCH_USER),
    ("recipnotfound", NO_SUCH_USER),
    ("no such mailbox", NO_SUCH_USER),
    ("no mailbox here", NO_SUCH_USER),
    ("mailbox unavailable", NO_SUCH_USER),
    ("mailbox not found", NO_SUCH_USER),
    ("mailbox does not exist", NO_SUCH_USER),
    ("mailbox not available", NO_SUCH_USER),
    ("account that you tried to reach does not exist", NO_SUCH_USER),
    ("doesn't have a", NO_SUCH_USER),
    ("does not have an account", NO_SUCH_USER),
    ("address not found", NO_SUCH_USER),
    ("address couldn't be found", NO_SUCH_USER),
    ("invalid address", NO_SUCH_USER),
    ("address rejected", NO_SUCH_USER),
    ("bad address", NO_SUCH_USER),
    ("not listed in", NO_SUCH_USER),
    ("not our user", NO_SUCH_USER),
    ("not our customer", NO_SUCH_USER),
    ("no longer on server", MOVED),
    ("no longer valid", MOVED),
    ("has moved", MOVED),
    ("account is disabled", DISABLED),
    ("account has been disabled", DISABLED),
    ("account that you tried to reach is disabled", DISABLED),
    ("account that you tried to reach is inactive", DISABLED),
    ("disabled recipient", DISABLED),
    ("account is locked", DISABLED),
    ("temporary locked", DISABLED),
    ("mailbox is frozen", DISABLED),
    ("recipient account is blocked", DISABLED),
    ("mailbox disabled", DISABLED),
    ("host unknown", NO_SUCH_DOMAIN),
    ("host not found", NO_SUCH_DOMAIN),
    ("domain not found", NO_SUCH_DOMAIN),
    (NO_SUCH_DOMAIN, NO_SUCH_DOMAIN),
    ("invalid domain", NO_SUCH_DOMAIN),
    ("domain does not exist", NO_SUCH_DOMAIN),
    ("domain is not reachable", NO_SUCH_DOMAIN),
    ("couldn't find a mail exchanger", NO_SUCH_DOMAIN),
    ("unrouteable address", NO_SUCH_DOMAIN),
    ("name service error", NO_SUCH_DOMAIN),
    ("no mx record", NO_SUCH_DOMAIN),
    ("does not accept mail", NO_SUCH_DOMAIN),
    ("no smtp service", NO_SUCH_DOMAIN),
    ("delivery userid", NO_SUCH_USER),
    ("if address is correct", NO_SUCH_USER),
    ("no valid recipients", NO_SUCH_USER),
    ("unknown host", NO_SUCH_DOMAIN),
    ("ディレクトリには見つかりません", NO_SUCH_USER),
    ("ディレクトリのリストにありません", NO_SUCH_USER),
    ("does not exist", NO_SUCH_USER),
    ("may not exist", NO_SUCH_USER),
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

/// The bare NO_SUCH_USER phrases such filters use.
const FILTERS_SAY: &[&str] = &["user unknown", "unknown user", NO_SUCH_USER];

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
        ("1", "1" | "2" | "3" | "0") => Cause::Recipient(NO_SUCH_USER),
        ("1", "6") => Cause::Recipient(MOVED),
        ("1", "10") => Cause::Recipient(NO_SUCH_DOMAIN),
        ("4", "4") => Cause::Recipient(NO_SUCH_DOMAIN),
        ("2", "1") | ("7", "13") => Cause::Recipient(DISABLED),
        ("1", "7" | "8") => Cause::OurSending(SENDER_ADDRESS),
        ("7", "8" | "20" | "21" | "22" | "23" | "24" | "25" | "26") => Cause::OurSending(AUTHENTICATION),
        ("2", "3") | ("3", "4") => Cause::Elsewhere(TOO_LARGE),
        ("6", _) => Cause::Elsewhere(CONTENT_FILTER),
        ("7", _) => Cause::Elsewhere(POLICY),
        _ => return None,
    })
}

/// Lowercase, with runs of whitespace as one space, so phrases folded
/// across lines still match.
pub(super) fn normalise(text: &str) -> String {
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
            original_recipient: None,
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
