//! The mail part of the configuration: where mail goes, who it is from,
//! the keys of its tokens, and how a run paces its sends. A missing or
//! malformed mail setting is the machine's configuration, not the command's
//! input (exit 1); it is reported only when something is really to be sent.

use std::sync::Arc;

use anyhow::anyhow;
use lettre::Address;
use lettre::message::Mailbox;

use crate::cli::{DeliveryArgs, MailArgs, SecretArgs, SenderArgs};
use crate::error::{Failure, invalid};
use crate::mail::dkim::Dkim;
use crate::mail::{MailUrl, Mailer, OAuthSettings, Sender};
use crate::queue::pipeline::{Cap, DeliveryOptions};

/// Where mail goes and who it is from; both are required to send.
pub struct MailSettings {
    pub url: MailUrl,
    pub sender: Sender,
    /// How to get a token, when the URL asks for `auth=xoauth2`.
    pub oauth: Option<OAuthSettings>,
}

impl MailSettings {
    pub fn resolve(args: &MailArgs) -> anyhow::Result<MailSettings> {
        let url = args.smtp_url.as_deref().ok_or_else(|| {
            anyhow!("no mail server is set: set `--smtp-url` or `SMTP_URL` (e.g. smtp://localhost:25 or file://outbox)")
        })?;
        let url = MailUrl::with_password(url, password(args)?.as_deref())?;
        let oauth = super::oauth::resolve(args, &url)?;
        Ok(MailSettings {
            url,
            sender: sender(&args.sender)?,
            oauth,
        })
    }
}

/// `SMTP_PASSWORD`, or the content of `SMTP_PASSWORD_FILE` without its
/// last line break.
fn password(args: &MailArgs) -> anyhow::Result<Option<String>> {
    if let Some(password) = args.smtp_password.as_deref() {
        crate::redact::hide(password);
        return Ok(Some(password.to_string()));
    }
    let Some(path) = args.smtp_password_file.as_deref() else {
        return Ok(None);
    };
    let text =
        std::fs::read_to_string(path).map_err(|error| anyhow!("cannot read SMTP_PASSWORD_FILE `{path}`: {error}"))?;
    let password = text.strip_suffix('\n').unwrap_or(&text);
    let password = password.strip_suffix('\r').unwrap_or(password);
    crate::redact::hide(password);
    if password.is_empty() {
        return Err(anyhow!("SMTP_PASSWORD_FILE `{path}` is empty"));
    }
    Ok(Some(password.to_string()))
}

/// `MAIL_FROM` (required wherever a message is built) and the optional
/// `Reply-To`.
pub fn sender(args: &SenderArgs) -> anyhow::Result<Sender> {
    let from = args.mail_from.as_deref().ok_or_else(|| {
        anyhow!("no sender is set: set `--mail-from` or `MAIL_FROM` (e.g. Reminders <noreply@school.example>)")
    })?;
    let mailbox = |setting: &str, text: &str| -> anyhow::Result<Mailbox> {
        text.trim()
            .parse()
            .map_err(|error| anyhow!("{setting} `{text}` is not a mailbox: {error}"))
    };
    let bounce_address = optional_address("REMINDERS_BOUNCE_ADDRESS", args.bounce_address.as_deref())?;
    let unsubscribe_mailto = optional_address("REMINDERS_UNSUBSCRIBE_MAILTO", args.unsubscribe_mailto.as_deref())?;
    let unsubscribe_url = args.unsubscribe_url.clone();
    if let Some(url) = &unsubscribe_url
        && (!url.contains("{token}") || !url.starts_with("https://"))
    {
        return Err(anyhow!(
            "REMINDERS_UNSUBSCRIBE_URL `{url}` must be an https:// link with `{{token}}` where the student's token goes"
        ));
    }
    let preferences_url = args.preferences_url.clone();
    if let Some(url) = &preferences_url {
        if !url.contains("{token}") || !url.starts_with("https://") {
            return Err(anyhow!(
                "REMINDERS_PREFERENCES_URL `{url}` must be an https:// link with `{{token}}` where the reader's token goes"
            ));
        }
        // Both would be the one-click link: say which one is meant.
        if unsubscribe_url.is_some() {
            return Err(anyhow!(
                "set REMINDERS_PREFERENCES_URL or REMINDERS_UNSUBSCRIBE_URL, not both: the preferences page \
                 takes one-click unsubscribes too, so it is the List-Unsubscribe link when set"
            ));
        }
    }
    let needs_secret = bounce_address.is_some()
        || unsubscribe_mailto.is_some()
        || unsubscribe_url.is_some()
        || preferences_url.is_some();
    let secret = secret(
        &args.secret,
        needs_secret.then_some(
            "REMINDERS_BOUNCE_ADDRESS, REMINDERS_UNSUBSCRIBE_MAILTO, REMINDERS_UNSUBSCRIBE_URL and REMINDERS_PREFERENCES_URL",
        ),
    )?;
    let from = mailbox("MAIL_FROM", from)?;
    Ok(Sender {
        from: from.clone(),
        reply_to: args
            .reply_to
            .as_deref()
            .map(|text| mailbox("REMINDERS_REPLY_TO", text))
            .transpose()?,
        dkim: match (&args.dkim_key, &args.dkim_selector) {
            (Some(key), Some(selector)) => Some(Arc::new(Dkim::load(key, selector.trim(), from.email.domain())?)),
            _ => None,
        },
        bounce_address,
        unsubscribe_mailto,
        unsubscribe_url,
        preferences_url,
        secret,
    })
}

/// An optional address setting; the bounce address must be a plain one,
/// since its `+TOKEN` forms are what name each message.
pub fn optional_address(setting: &str, text: Option<&str>) -> anyhow::Result<Option<Address>> {
    let Some(text) = text.map(str::trim) else {
        return Ok(None);
    };
    let address: Address = text
        .parse()
        .map_err(|error| anyhow!("{setting} `{text}` is not an email address: {error}"))?;
    if address.user().contains('+') {
        return Err(anyhow!(
            "{setting} `{address}` already holds a `+`; give the plain address, such as bounces@school.example"
        ));
    }
    Ok(Some(address))
}

/// The shortest `REMINDERS_SECRET` accepted: 128 bits written as hex, or
/// about that much in any text.
const SECRET_MIN_LEN: usize = 32;

/// `REMINDERS_SECRET`, hidden from every output from here on. `needed_by`
/// names the settings that cannot work without it: then it must be set.
pub fn secret(args: &SecretArgs, needed_by: Option<&str>) -> anyhow::Result<Option<Vec<u8>>> {
    let secret = args.value.as_deref().map(str::trim);
    match (secret, needed_by) {
        (None, Some(features)) => Err(anyhow!(
            "{features} need REMINDERS_SECRET, a long random string that keys their tokens \
             (e.g. the output of `openssl rand -hex 32`, in .env)"
        )),
        (Some(secret), _) if secret.len() < SECRET_MIN_LEN => {
            crate::redact::hide(secret);
            Err(anyhow!(
                "REMINDERS_SECRET is too short to keep tokens unguessable: use at least {SECRET_MIN_LEN} characters \
                 (e.g. `openssl rand -hex 32`)"
            ))
        }
        (Some(secret), _) => {
            crate::redact::hide(secret);
            Ok(Some(secret.as_bytes().to_vec()))
        }
        (None, None) => Ok(None),
    }
}

/// How a run sends. The mail settings are resolved with the rest, but their
/// error is only reported when something is really to be sent (a dry run
/// needs none).
pub struct Delivery {
    pub options: DeliveryOptions,
    smtp_timeout: std::time::Duration,
    mail: Result<MailSettings, Failure>,
}

impl Delivery {
    pub fn resolve(args: &DeliveryArgs) -> Result<Delivery, Failure> {
        Ok(Delivery {
            options: DeliveryOptions {
                max_attempts: args.max_attempts,
                batch_size: args.batch_size,
                // A slow rate needs no more connections than messages a
                // second: more would only sit idle, and idle ones get closed.
                connections: match args.rate {
                    Some(rate) => args.connections.min(rate.per_second().ceil().max(1.0) as u32),
                    None => args.connections,
                },
                lease: args.lease,
                backoff: args.backoff,
                rate: args.rate,
                limit: args.limit,
                cap: args.daily_cap.map(|messages| Cap {
                    messages,
                    window: args.cap_window.unwrap_or(chrono::Duration::days(1)),
                }),
            },
            smtp_timeout: args
                .smtp_timeout
                .to_std()
                .map_err(|_| invalid("`--smtp-timeout` must be positive"))?,
            mail: MailSettings::resolve(&args.mail).map_err(Failure::from),
        })
    }

    /// The mail settings and the transport.
    pub fn mailer(&self) -> Result<(&MailSettings, Mailer), Failure> {
        let mail = self.mail.as_ref().map_err(Clone::clone)?;
        let mailer = Mailer::new(&mail.url, mail.oauth.as_ref(), self.smtp_timeout)?;
        Ok((mail, mailer))
    }
}
