//! Putting rendered text into an email: the headers mail systems expect and
//! act on, headers that fit, and the Message-ID.

use lettre::Message;
use lettre::address::{Address, Envelope};
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use super::dkim::Dkim;
use super::failure::{Blame, SendFailure};
use super::token::{self, MessageRef, Subscriber};
use crate::render::Rendered;

/// Who a run's messages are from, and where replies, bounces and unsubscribe
/// requests go: the same for every message of the run.
#[derive(Debug, Clone)]
pub struct Sender {
    pub from: Mailbox,
    /// The `Reply-To` header, when replies should reach a person.
    pub reply_to: Option<Mailbox>,
    /// `--bounce-address`: each message's envelope sender (Return-Path) is
    /// its own VERP address at it, `bounces+TOKEN@…`, so a bounce names it.
    pub bounce_address: Option<Address>,
    /// `--unsubscribe-mailto`: the `List-Unsubscribe` mail address.
    pub unsubscribe_mailto: Option<Address>,
    /// `--unsubscribe-url`: a one-click link (RFC 8058) with `{token}` in it.
    pub unsubscribe_url: Option<String>,
    /// `--preferences-url`: the preferences page, with `{token}` in it; every
    /// message's footer links to it, and it is the one-click link.
    pub preferences_url: Option<String>,
    /// `REMINDERS_SECRET`, which keys every token; required by the three above.
    /// With it, Message-IDs are keyed hashes that nobody can guess.
    pub secret: Option<Vec<u8>>,
    /// `--dkim-key` and `--dkim-selector`: every message is signed.
    pub dkim: Option<std::sync::Arc<Dkim>>,
}

/// Which message this is, and to whom, for its tokens.
#[derive(Debug, Clone)]
pub struct Identity {
    pub message: MessageRef,
    /// Tells apart two messages of one row: a reminder sent again for a
    /// moved deadline, or a digest of several reminders. `None` for most.
    pub edition: Option<String>,
    pub recipient: Subscriber,
}

/// The Message-ID of a message: derived from its row, so that a resend after
/// a crash carries the same id and a mail system can drop the duplicate.
/// With the secret it is a keyed hash (128 bits), which a forged bounce
/// report cannot quote; without, the row's id.
pub fn message_id(message: MessageRef, edition: Option<&str>, sender: &Sender) -> String {
    let left = match &sender.secret {
        Some(secret) => token::message_id_left(secret, message),
        None => message.id.to_string(),
    };
    let edition = edition.map(|edition| format!(".{edition}")).unwrap_or_default();
    format!("<{left}{edition}@{}>", sender.from.email.domain())
}

/// Puts a rendered message into an email: plain text, plus an HTML
/// alternative when there is one, with `MIME-Version`, `Date`, `Message-ID`,
/// and `Auto-Submitted: auto-generated` (RFC 3834), which keeps vacation
/// replies from answering a robot.
pub fn build(
    sender: &Sender,
    to: &str,
    name: Option<String>,
    identity: Identity,
    rendered: Rendered,
) -> Result<Message, SendFailure> {
    let address: Address = to
        .parse()
        .map_err(|_| SendFailure::new(Blame::Recipient, format!("`{to}` is not a valid address")))?;
    let mut builder = Message::builder()
        .from(sender.from.clone())
        .to(Mailbox::new(name.map(|name| fit_header(&name)), address.clone()))
        .subject(fit_header(&rendered.subject))
        .message_id(Some(message_id(identity.message, identity.edition.as_deref(), sender)))
        .raw_header(raw("Auto-Submitted", "auto-generated".to_string()));
    if let Some(language) = &rendered.language {
        builder = builder.raw_header(raw("Content-Language", language.clone()));
    }
    if let Some(reply_to) = &sender.reply_to {
        builder = builder.reply_to(reply_to.clone());
    }
    if let (Some(bounces), Some(secret)) = (&sender.bounce_address, &sender.secret) {
        let verp = token::verp_address(bounces.as_ref(), &token::message_token(secret, identity.message));
        let verp: Address = verp.parse().map_err(|error| {
            SendFailure::new(Blame::Run, format!("the VERP address `{verp}` is not valid: {error}"))
        })?;
        let envelope = Envelope::new(Some(verp), vec![address])
            .map_err(|error| SendFailure::new(Blame::Message, format!("cannot build the envelope: {error}")))?;
        builder = builder.envelope(envelope);
    }
    let mut page = None;
    if let Some(secret) = &sender.secret {
        let token = token::unsubscribe_token(secret, identity.recipient);
        let with_token = |url: &str| url.replace("{token}", &utf8_percent_encode(&token, NON_ALPHANUMERIC).to_string());
        let mut links = Vec::new();
        if let Some(mailto) = &sender.unsubscribe_mailto {
            links.push(format!("<mailto:{mailto}?subject=unsubscribe%20{token}>"));
        }
        // Configuration allows one of the two: the page takes one-click POSTs too.
        if let Some(url) = sender.preferences_url.as_ref().or(sender.unsubscribe_url.as_ref()) {
            links.push(format!("<{}>", with_token(url)));
            builder = builder.raw_header(raw("List-Unsubscribe-Post", "List-Unsubscribe=One-Click".to_string()));
        }
        if !links.is_empty() {
            builder = builder.raw_header(raw("List-Unsubscribe", links.join(", ")));
        }
        page = sender.preferences_url.as_deref().map(with_token);
    }
    let (mut text, mut html) = (rendered.text, rendered.html);
    if let Some(url) = &page {
        let footer = crate::render::preferences_footer(rendered.language.as_deref(), url);
        text = format!("{}\n-- \n{}\n", text.trim_end_matches('\n'), footer.text);
        html = html.map(|html| with_html_footer(html, &footer.html));
    }
    let text = ends_with_newline(text);
    let mut message = match html {
        None => builder.singlepart(SinglePart::plain(text)),
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(text, ends_with_newline(html))),
    }
    .map_err(|error| SendFailure::new(Blame::Message, format!("cannot build the message: {error}")))?;
    if let Some(dkim) = &sender.dkim {
        dkim.sign(&mut message);
    }
    Ok(message)
}

/// The footer before `</body>`, or at the end of an HTML part without one.
fn with_html_footer(html: String, footer: &str) -> String {
    match html.to_ascii_lowercase().rfind("</body>") {
        Some(at) => format!("{}{footer}\n{}", &html[..at], &html[at..]),
        None => format!("{}\n{footer}\n", html.trim_end()),
    }
}

fn raw(name: &'static str, value: String) -> HeaderValue {
    HeaderValue::new(HeaderName::new_from_ascii_str(name), value)
}

/// A body whose last line ends: some mail tools drop or mangle a last line
/// without its newline.
fn ends_with_newline(mut body: String) -> String {
    if !body.ends_with('\n') {
        body.push('\n');
    }
    body
}

/// The longest word a header keeps, and the longest header text: lettre folds
/// a header line only at spaces, so one long word (a URL as a title) made a
/// Subject line longer than the 998 characters SMTP allows, and the server
/// refused the message. Within these, every line stays under 100 characters.
const HEADER_WORD_MAX: usize = 76;
const HEADER_TEXT_MAX: usize = 250;

/// One-line header text (see [`header_safe`]) cut to fit: each word longer
/// than [`HEADER_WORD_MAX`] characters, then the whole past [`HEADER_TEXT_MAX`],
/// ends in "…". The body is not cut: it always has the full title.
fn fit_header(text: &str) -> String {
    let words: Vec<String> = text.split(' ').map(|word| shorten(word, HEADER_WORD_MAX)).collect();
    shorten(&words.join(" "), HEADER_TEXT_MAX)
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut short: String = text.chars().take(max - 1).collect();
    short.push('…');
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_footer_goes_before_the_end_of_the_html_body() {
        let footer = "<p>f</p>";
        assert_eq!(
            with_html_footer("<html><body><p>x</p></BODY></html>".into(), footer),
            "<html><body><p>x</p><p>f</p>\n</BODY></html>"
        );
        assert_eq!(with_html_footer("<p>x</p>\n".into(), footer), "<p>x</p>\n<p>f</p>\n");
    }

    #[test]
    fn long_words_and_long_headers_are_cut() {
        assert_eq!(fit_header("Reminder: Essay is due"), "Reminder: Essay is due");
        assert_eq!(fit_header(&"y".repeat(80)), format!("{}…", "y".repeat(75)));
        assert_eq!(fit_header(&"ab ".repeat(100)).chars().count(), HEADER_TEXT_MAX);
    }
}
