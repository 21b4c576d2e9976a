//! Keeping secrets out of everything printed: URLs with their passwords
//! masked, and any text scrubbed of the secrets this run has seen.

use std::ops::Range;
use std::sync::{Mutex, PoisonError};

/// A URL with its secrets replaced by `***`, safe to print.
pub fn redact(url: &url::Url) -> String {
    mask_url(url.as_str())
}

/// [`redact`] for a URL as written, which may not parse.
pub fn mask_url(raw: &str) -> String {
    let mut shown = raw.to_string();
    // From the end, so that the earlier spans keep their place.
    for span in secret_spans(raw).into_iter().rev() {
        shown.replace_range(span, "***");
    }
    shown
}

/// Where a URL, parsed or not, holds a secret: the password of its user info,
/// and the value of any query parameter named like `password` (libpq reads
/// `?password=` and `?sslpassword=`).
fn secret_spans(raw: &str) -> Vec<Range<usize>> {
    let Some(scheme_end) = raw.find("://") else {
        return Vec::new();
    };
    let start = scheme_end + 3;
    // A URL that parses as written has its parts where the url crate finds
    // them. One that does not is read generously, since a password may hold
    // an unescaped `/`, `?` or `@`: its user info runs to the last `@`.
    let (password, query) = match url::Url::parse(raw) {
        Ok(url) if url.as_str() == raw => {
            // As written: `scheme://user:password@host…?query#fragment`.
            let password_start = start + url.username().len() + 1;
            let password = url
                .password()
                .map_or(0..0, |password| password_start..password_start + password.len());
            let query_end = url
                .fragment()
                .map_or(raw.len(), |fragment| raw.len() - fragment.len() - 1);
            (password, url.query().map(|query| query_end - query.len()))
        }
        _ => {
            let at = raw[start..].rfind('@').map(|at| start + at);
            let password = at
                .and_then(|at| raw[start..at].find(':').map(|colon| start + colon + 1..at))
                .unwrap_or_default();
            let after = at.unwrap_or(start);
            (password, raw[after..].find('?').map(|mark| after + mark + 1))
        }
    };
    let mut spans = vec![password];
    if let Some(query) = query {
        let end = raw[query..].find('#').map_or(raw.len(), |at| query + at);
        let mut pair_start = query;
        for pair in raw[query..end].split('&') {
            if let Some((key, _)) = pair.split_once('=')
                && percent_decode(key).to_lowercase().contains("password")
            {
                spans.push(pair_start + key.len() + 1..pair_start + pair.len());
            }
            pair_start += pair.len() + 1;
        }
    }
    spans.retain(|span| !span.is_empty());
    spans
}

pub fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// The secrets seen in the settings, longest first, as they may be quoted.
static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Remembers the secrets of a URL from the settings, so that [`scrub`] masks
/// them in any message, whoever wrote it: libpq, for one, quotes a password
/// whose percent-escape it cannot decode.
pub fn hide_secrets_of_url(raw: &str) {
    for span in secret_spans(raw) {
        hide(&raw[span]);
    }
}

/// A secret shorter than this is masked only where it stands (a URL's user
/// info), never by its value: a password `0` would otherwise mask every `0`
/// in a table or a JSON document, and say which character it is.
pub const SHORTEST_SECRET_MASKED_BY_VALUE: usize = 6;

/// Remembers a secret, as written and percent-decoded (and each as JSON
/// output escapes it), for [`scrub`].
pub fn hide(secret: &str) {
    let mut secrets = SECRETS.lock().unwrap_or_else(PoisonError::into_inner);
    for text in [secret.to_string(), percent_decode(secret)] {
        let quoted = serde_json::to_string(&text).unwrap_or_default();
        let in_json = quoted.trim_matches('"').to_string();
        for form in [text, in_json] {
            if form.chars().count() >= SHORTEST_SECRET_MASKED_BY_VALUE && !secrets.contains(&form) {
                secrets.push(form);
            }
        }
    }
    // A secret that holds another is masked whole.
    secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
}

/// Text safe to print: every remembered secret in it replaced by `***`.
/// Every line this program writes passes through here, and so does every
/// text it stores (a relay may quote the password in its refusal, and
/// `status`, which reads no mail settings, could not mask it later).
pub fn scrub(text: &str) -> String {
    let secrets = SECRETS.lock().unwrap_or_else(PoisonError::into_inner);
    secrets
        .iter()
        .fold(text.to_string(), |text, secret| text.replace(secret.as_str(), "***"))
}

/// Whether `text` holds a remembered secret, so that a caller can skip
/// copying what needs no scrubbing.
pub fn holds_secret(text: &str) -> bool {
    let secrets = SECRETS.lock().unwrap_or_else(PoisonError::into_inner);
    secrets.iter().any(|secret| text.contains(secret.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked_in_the_user_info_and_the_query() {
        assert_eq!(
            mask_url("postgres://alice:s3cret@db/app?sslmode=require&password=q%20pw&sslpassword=k#top"),
            "postgres://alice:***@db/app?sslmode=require&password=***&sslpassword=***#top"
        );
        assert_eq!(mask_url("postgres://alice@db/app"), "postgres://alice@db/app");
        assert_eq!(
            mask_url("postgres://alice:pa/ss@db:x/app"),
            "postgres://alice:***@db:x/app"
        );
        assert_eq!(mask_url("postgres://u:p?ss@h/db"), "postgres://u:***@h/db");
        assert_eq!(
            mask_url("postgres://u:pw@h/db?application_name=a@b&Password=x"),
            "postgres://u:***@h/db?application_name=a@b&Password=***"
        );
        assert_eq!(mask_url("reminders.db"), "reminders.db");
    }

    #[test]
    fn short_secrets_are_never_masked_by_value() {
        hide("0");
        hide("e");
        hide_secrets_of_url("smtp://mailer:0@relay.example");
        assert_eq!(scrub(r#"{"sent": 10, "failed": 0}"#), r#"{"sent": 10, "failed": 0}"#);
        assert_eq!(
            mask_url("smtp://mailer:0@relay.example"),
            "smtp://mailer:***@relay.example"
        );
    }

    #[test]
    fn remembered_secrets_are_scrubbed_from_any_text() {
        hide_secrets_of_url("postgres://u:Scrub%41Me@h/db?password=Other\"Secret");
        assert_eq!(
            scrub(r#"token "Scrub%41Me", decoded ScrubAMe, query Other"Secret, in JSON Other\"Secret"#),
            r#"token "***", decoded ***, query ***, in JSON ***"#
        );
    }
}
