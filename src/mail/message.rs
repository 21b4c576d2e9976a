//! Putting rendered text into an email: headers that fit, and the Message-ID.

use lettre::Message;
use lettre::message::{Mailbox, MultiPart, header::ContentType};

use super::failure::{Blame, SendFailure};
use crate::render::Rendered;

/// The Message-ID of a reminder: derived from its id, so that a resend after a
/// crash carries the same id and a mail system can drop the duplicate.
pub fn message_id(reminder_id: impl std::fmt::Display, from: &Mailbox) -> String {
    format!("<{reminder_id}@{}>", from.email.domain())
}

/// Puts a rendered message into an email: plain text, plus an HTML
/// alternative when there is one.
pub fn build(
    from: &Mailbox,
    to: &str,
    name: Option<String>,
    id: String,
    rendered: Rendered,
) -> Result<Message, SendFailure> {
    let address = to
        .parse()
        .map_err(|_| SendFailure::new(Blame::Recipient, format!("`{to}` is not a valid address")))?;
    let builder = Message::builder()
        .from(from.clone())
        .to(Mailbox::new(name.map(|name| fit_header(&name)), address))
        .subject(fit_header(&rendered.subject))
        .message_id(Some(id));
    match rendered.html {
        None => builder.header(ContentType::TEXT_PLAIN).body(rendered.text),
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(rendered.text, html)),
    }
    .map_err(|error| SendFailure::new(Blame::Message, format!("cannot build the message: {error}")))
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
    fn long_words_and_long_headers_are_cut() {
        assert_eq!(fit_header("Reminder: Essay is due"), "Reminder: Essay is due");
        assert_eq!(fit_header(&"y".repeat(80)), format!("{}…", "y".repeat(75)));
        assert_eq!(fit_header(&"ab ".repeat(100)).chars().count(), HEADER_TEXT_MAX);
    }
}
