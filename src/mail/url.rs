//! `SMTP_URL`: where mail goes, checked before anything is sent.

use std::path::PathBuf;

use anyhow::anyhow;
use lettre::SmtpTransport;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

/// Where mail goes, from `SMTP_URL`.
#[derive(Debug, Clone)]
pub enum MailUrl {
    /// `smtp://host:port`, `smtp://user:pass@host:587?tls=required`, `smtps://…`
    Smtp(url::Url),
    /// `file://DIR`: each message becomes an `.eml` file in DIR.
    File(PathBuf),
}

impl MailUrl {
    #[cfg(test)]
    pub fn parse(raw: &str) -> anyhow::Result<MailUrl> {
        MailUrl::with_password(raw, None)
    }

    /// `SMTP_URL`, with the password from `SMTP_PASSWORD` or
    /// `SMTP_PASSWORD_FILE` when there is one (then the URL names only the user).
    pub fn with_password(raw: &str, password: Option<&str>) -> anyhow::Result<MailUrl> {
        let raw = raw.trim();
        crate::redact::hide_secrets_of_url(raw);
        if let Some(password) = password {
            crate::redact::hide(password);
        }
        if let Some(dir) = raw.strip_prefix("file://") {
            if dir.is_empty() {
                return Err(anyhow!("SMTP_URL `{raw}` names no directory"));
            }
            return Ok(MailUrl::File(PathBuf::from(dir)));
        }
        let mut url = url::Url::parse(raw).map_err(|error| match unencoded_in_password(raw) {
            Some(character) => anyhow!(
                "the password in SMTP_URL holds `{character}`, which a URL must percent-encode: write it as `{}` \
                 in the URL, or put the password in SMTP_PASSWORD_FILE (or SMTP_PASSWORD) and leave it out of the URL",
                utf8_percent_encode(&character.to_string(), NON_ALPHANUMERIC)
            ),
            None => anyhow!("SMTP_URL is malformed: {error}"),
        })?;
        if let Some(password) = password {
            if url.password().is_some() {
                return Err(anyhow!(
                    "SMTP_URL has a password and SMTP_PASSWORD (or SMTP_PASSWORD_FILE) is set too: keep one"
                ));
            }
            if url.username().is_empty() {
                return Err(anyhow!(
                    "SMTP_PASSWORD (or SMTP_PASSWORD_FILE) is set, but SMTP_URL names no user: smtp://USER@host:587?tls=required"
                ));
            }
            // The url crate percent-encodes what a password needs.
            url.set_password(Some(password))
                .map_err(|()| anyhow!("SMTP_URL `{}` cannot hold a password", crate::redact::redact(&url)))?;
        }
        crate::redact::hide_secrets_of_url(url.as_str());
        if !matches!(url.scheme(), "smtp" | "smtps") || url.host_str().is_none_or(str::is_empty) {
            return Err(anyhow!(
                "SMTP_URL `{}` is not smtp://host:port, smtps://host or file://DIR",
                crate::redact::redact(&url)
            ));
        }
        // AUTH PLAIN and LOGIN send the password as it is: over TLS only, or
        // to this very host. `tls=opportunistic` is not enough, since whoever
        // can read the traffic can also strip the server's STARTTLS offer.
        // The first `tls=` is the one the connection follows (SmtpServer::from_url).
        let tls = url.scheme() == "smtps"
            || url
                .query_pairs()
                .find(|(key, _)| key == "tls")
                .is_some_and(|(_, value)| value == "required");
        let loopback = match url.host() {
            // `smtp` is not a scheme the url crate knows, so an IPv4 address comes as a name.
            Some(url::Host::Domain(name)) => {
                name.eq_ignore_ascii_case("localhost")
                    || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
            }
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        let auth = url
            .query_pairs()
            .find(|(key, _)| key == "auth")
            .map(|(_, value)| value.into_owned());
        match auth.as_deref() {
            None => {}
            // The bearer token is as good as a password for an hour: TLS,
            // always (a loopback relay too, so the tests run what schools run).
            Some("xoauth2") if !tls => {
                return Err(anyhow!(
                    "SMTP_URL `{}` has `auth=xoauth2` but no TLS, so the token would cross the network in clear: \
                     add ?tls=required (smtp://USER@host:587?tls=required&auth=xoauth2) or use smtps://",
                    crate::redact::redact(&url)
                ));
            }
            Some("xoauth2") if url.password().is_some() => {
                return Err(anyhow!(
                    "SMTP_URL `{}` has `auth=xoauth2` and a password: the token replaces the password, \
                     so give only the mailbox (smtp://USER@host:587?tls=required&auth=xoauth2)",
                    crate::redact::redact(&url)
                ));
            }
            Some("xoauth2") if url.username().is_empty() => {
                return Err(anyhow!(
                    "SMTP_URL `{}` has `auth=xoauth2` but no mailbox: smtp://USER@host:587?tls=required&auth=xoauth2",
                    crate::redact::redact(&url)
                ));
            }
            Some("xoauth2") => {}
            Some(other) => {
                return Err(anyhow!(
                    "SMTP_URL `{}` has `auth={other}`: the only choice is `auth=xoauth2` (OAuth 2.0); \
                     a password goes in the URL as smtp://user:pass@host",
                    crate::redact::redact(&url)
                ));
            }
        }
        if url.password().is_some() && !tls && !loopback {
            return Err(anyhow!(
                "SMTP_URL `{}` has credentials but no TLS, so the password would cross the network in clear: \
                 use smtps://, add ?tls=required, or send through a server on this host",
                crate::redact::redact(&url)
            ));
        }
        // lettre parses it once more when building the transport; check it now.
        SmtpTransport::from_url(url.as_str())
            .map_err(|error| anyhow!("SMTP_URL `{}` is malformed: {error}", crate::redact::redact(&url)))?;
        Ok(MailUrl::Smtp(url))
    }
}

/// The first character of the password in a URL that the URL cannot hold as
/// written (`#`, `/`, `?`, a space, or a `%` that starts no escape).
fn unencoded_in_password(raw: &str) -> Option<char> {
    let rest = raw.split_once("://")?.1;
    let (_, password) = rest[..rest.rfind('@')?].split_once(':')?;
    let bytes = password.as_bytes();
    password.char_indices().find_map(|(at, character)| {
        let bad_escape = character == '%'
            && !(bytes.len() > at + 2 && bytes[at + 1].is_ascii_hexdigit() && bytes[at + 2].is_ascii_hexdigit());
        (matches!(character, '#' | '/' | '?' | ' ' | '[' | ']') || bad_escape).then_some(character)
    })
}

impl MailUrl {
    /// The sending mailbox when the URL asks for `auth=xoauth2` (its user,
    /// percent-decoded); `None` for any other URL.
    pub fn xoauth2_mailbox(&self) -> Option<String> {
        match self {
            MailUrl::Smtp(url)
                if url
                    .query_pairs()
                    .any(|(key, value)| key == "auth" && value == "xoauth2") =>
            {
                Some(crate::redact::percent_decode(url.username()))
            }
            _ => None,
        }
    }

    /// The URL with any password masked, safe to print.
    pub fn display(&self) -> String {
        match self {
            MailUrl::Smtp(url) => crate::redact::redact(url),
            MailUrl::File(dir) => format!("file://{}", dir.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_credentials_need_tls_or_this_host() {
        for refused in [
            "smtp://u:pw@mail.example.com:25",
            "smtp://u:pw@mail.example.com:587?tls=opportunistic",
            "smtp://u:pw@10.0.0.1",
            "smtp://u:pw@mail.example.com?tls=opportunistic&tls=required",
        ] {
            let error = MailUrl::parse(refused).unwrap_err().to_string();
            assert!(
                error.contains("credentials but no TLS") && !error.contains("pw"),
                "{error}"
            );
        }
        for allowed in [
            "smtps://u:pw@mail.example.com",
            "smtp://u:pw@mail.example.com:587?tls=required",
            "smtp://u:pw@localhost:2525",
            "smtp://u:pw@127.0.0.1:2525",
            "smtp://u:pw@[::1]:2525",
            "smtp://mail.example.com:25",
        ] {
            assert!(MailUrl::parse(allowed).is_ok(), "{allowed}");
        }
    }

    #[test]
    fn a_password_that_needs_encoding_says_how_without_showing_it() {
        for (raw, shown) in [
            ("smtp://u:se#cr:et@mail.example.com:587?tls=required", "`#`"),
            ("smtp://u:se/cr:et@mail.example.com:587?tls=required", "`/`"),
        ] {
            let error = MailUrl::parse(raw).unwrap_err().to_string();
            assert!(error.contains(shown) && error.contains("percent-encode"), "{error}");
            assert!(!error.contains("cr:et"), "{error}");
        }
        let error = MailUrl::parse("smtp://u:se#cr@x.example.com:587")
            .unwrap_err()
            .to_string();
        assert!(error.contains("`%23`"), "{error}");
        // Encoded, or given apart, it is the same password.
        let encoded = MailUrl::parse("smtp://u:se%23cr%3Aet@mail.example.com:587?tls=required").unwrap();
        let apart = MailUrl::with_password("smtp://u@mail.example.com:587?tls=required", Some("se#cr:et")).unwrap();
        match (encoded, apart) {
            (MailUrl::Smtp(a), MailUrl::Smtp(b)) => {
                assert_eq!(crate::redact::percent_decode(a.password().unwrap()), "se#cr:et");
                assert_eq!(crate::redact::percent_decode(b.password().unwrap()), "se#cr:et");
            }
            _ => panic!("not SMTP"),
        }
        assert!(MailUrl::with_password("smtp://u:pw@mail.example.com:587?tls=required", Some("x")).is_err());
        assert!(MailUrl::with_password("smtp://mail.example.com:587?tls=required", Some("x")).is_err());
        // A password apart still needs TLS.
        let error = MailUrl::with_password("smtp://u@mail.example.com:25", Some("x"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("credentials but no TLS"), "{error}");
    }

    #[test]
    fn xoauth2_needs_tls_a_mailbox_and_no_password() {
        let url =
            MailUrl::parse("smtp://office%40school.example@smtp.office365.com:587?tls=required&auth=xoauth2").unwrap();
        assert_eq!(url.xoauth2_mailbox().as_deref(), Some("office@school.example"));
        let url = MailUrl::parse("smtps://office%40school.example@smtp.example.com?auth=xoauth2").unwrap();
        assert_eq!(url.xoauth2_mailbox().as_deref(), Some("office@school.example"));
        assert_eq!(
            MailUrl::parse("smtp://u:pw@mail.example.com:587?tls=required")
                .unwrap()
                .xoauth2_mailbox(),
            None
        );
        for (refused, says) in [
            ("smtp://office%40school.example@localhost:587?auth=xoauth2", "no TLS"),
            (
                "smtp://office%40school.example@localhost:587?tls=opportunistic&auth=xoauth2",
                "no TLS",
            ),
            (
                "smtp://office:pw@mail.example.com:587?tls=required&auth=xoauth2",
                "a password",
            ),
            ("smtp://mail.example.com:587?tls=required&auth=xoauth2", "no mailbox"),
            ("smtp://u@mail.example.com:587?tls=required&auth=plain", "`auth=plain`"),
        ] {
            let error = MailUrl::parse(refused).unwrap_err().to_string();
            assert!(error.contains(says) && !error.contains("pw@"), "{error}");
        }
    }
}
