//! `SMTP_URL`: where mail goes, checked before anything is sent.

use std::path::PathBuf;

use anyhow::anyhow;
use lettre::SmtpTransport;

/// Where mail goes, from `SMTP_URL`.
#[derive(Debug, Clone)]
pub enum MailUrl {
    /// `smtp://host:port`, `smtp://user:pass@host:587?tls=required`, `smtps://…`
    Smtp(url::Url),
    /// `file://DIR`: each message becomes an `.eml` file in DIR.
    File(PathBuf),
}

impl MailUrl {
    pub fn parse(raw: &str) -> anyhow::Result<MailUrl> {
        let raw = raw.trim();
        crate::redact::hide_secrets_of_url(raw);
        if let Some(dir) = raw.strip_prefix("file://") {
            if dir.is_empty() {
                return Err(anyhow!("SMTP_URL `{raw}` names no directory"));
            }
            return Ok(MailUrl::File(PathBuf::from(dir)));
        }
        let url = url::Url::parse(raw).map_err(|error| anyhow!("SMTP_URL is malformed: {error}"))?;
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
