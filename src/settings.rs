//! Flags, environment and `.env` turned into validated settings: `.env`
//! itself, where each setting came from, the mail and delivery settings, and
//! the reminder windows. Only main and the commands import it.

use std::collections::HashSet;
use std::path::Path;

use anyhow::{Context, anyhow};

use crate::cli::{DeliveryArgs, MailArgs, WindowArgs};
use crate::error::invalid;
use crate::mail::MailUrl;
use crate::mail::Mailer;
use crate::mail::{OAuthSettings, OAuthValues};
use crate::queue::pipeline::DeliveryOptions;
use crate::reminders::plan::Windows;
use crate::schedule::parse_targets;
use crate::time::Clock;

/// Where each setting came from: a flag, the environment, `.env`, or the default.
pub struct Provenance {
    /// (setting, source), e.g. ("DATABASE_URL", "the environment").
    sources: Vec<(String, String)>,
}

impl Provenance {
    /// `from_dotenv` lists the variables that `.env` set (they were not in the
    /// environment before it was read).
    pub fn read(matches: &clap::ArgMatches, from_dotenv: &std::collections::HashSet<String>) -> Provenance {
        let settings = [
            ("database_url", "DATABASE_URL", "reminders.db"),
            ("smtp_url", "SMTP_URL", "none"),
            ("mail_from", "MAIL_FROM", "none"),
            ("templates", "REMINDERS_TEMPLATES", "built in"),
            ("ping_url", "REMINDERS_PING_URL", "none"),
            ("ca_file", "REMINDERS_CA_FILE", "none"),
        ];
        let (_, sub) = matches.subcommand().unwrap_or(("", matches));
        let sources = settings
            .iter()
            .map(|(id, variable, default)| {
                let source = [matches, sub]
                    .iter()
                    .find_map(|m| m.try_get_raw(id).ok().flatten().and_then(|_| m.value_source(id)));
                let from = match source {
                    Some(clap::parser::ValueSource::CommandLine) => format!("the --{} flag", id.replace('_', "-")),
                    Some(clap::parser::ValueSource::EnvVariable) if from_dotenv.contains(*variable) => {
                        "the .env file".to_string()
                    }
                    Some(clap::parser::ValueSource::EnvVariable) => "the environment".to_string(),
                    _ => format!("default ({default})"),
                };
                (variable.to_string(), from)
            })
            .collect();
        Provenance { sources }
    }

    pub fn describe(&self) -> Vec<(String, String)> {
        self.sources.clone()
    }
}

/// Loads `.env` from the current directory (only there: a parent's `.env`
/// belongs to something else), without overriding the environment. Returns
/// the names it set. A file that does not parse stops the run rather than
/// being skipped, and the message names the line but never shows it: it may
/// hold a password.
pub fn load_dotenv() -> anyhow::Result<HashSet<String>> {
    let path = Path::new(".env");
    let bytes = match std::fs::read(path) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(HashSet::new()),
        read => read.context("cannot read `.env`")?,
    };
    let text = String::from_utf8(bytes).map_err(|error| {
        let line = line_of(error.as_bytes(), error.utf8_error().valid_up_to());
        anyhow!("`.env` line {line} is not UTF-8 text")
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut names = HashSet::new();
    for entry in dotenvy::from_read_iter(text.as_bytes()) {
        match entry {
            Ok((name, _)) if std::env::var_os(&name).is_none() => {
                names.insert(name);
            }
            Ok(_) => {}
            Err(dotenvy::Error::LineParse(quoted, _)) => {
                let line = line_quoted(text, &quoted)
                    .map(|line| format!(" line {line}"))
                    .unwrap_or_default();
                return Err(anyhow!(
                    "`.env`{line} does not parse (the line is not shown: it may hold a password)"
                ));
            }
            Err(_) => return Err(anyhow!("`.env` cannot be read")),
        }
    }
    // Parsed above, so this only sets what the environment lacks.
    dotenvy::from_read(text.as_bytes()).map_err(|_| anyhow!("`.env` cannot be loaded"))?;
    Ok(names)
}

/// The line of `.env` that dotenvy quotes in an error: a whole entry (from
/// the start of a line, over several lines for a quoted value), or the value
/// alone, which is taken on the first line that is not a comment.
fn line_quoted(text: &str, quoted: &str) -> Option<usize> {
    let line_start = |at: usize| text[..at].rfind('\n').map_or(0, |newline| newline + 1);
    let found: Vec<usize> = text.match_indices(quoted).map(|(at, _)| at).collect();
    found
        .iter()
        .find(|&&at| line_start(at) == at)
        .or_else(|| {
            found
                .iter()
                .find(|&&at| !text[line_start(at)..].trim_start().starts_with('#'))
        })
        .map(|&at| line_of(text.as_bytes(), at))
}

/// The line, counted from 1, of byte `offset`.
fn line_of(bytes: &[u8], offset: usize) -> usize {
    bytes[..offset.min(bytes.len())]
        .iter()
        .filter(|&&byte| byte == b'\n')
        .count()
        + 1
}

/// The reminder windows of a `due` or `send` run, from its flags, on the run's clock.
pub fn windows(args: &WindowArgs, clock: Clock) -> anyhow::Result<Windows> {
    Ok(Windows {
        targets: parse_targets(&args.targets, args.unit)?,
        tolerance: match args.tolerance {
            Some(minutes) => chrono::Duration::minutes(minutes.into()),
            None => args.unit.default_tolerance(),
        },
        clock,
    })
}

/// Where mail goes and who it is from; both are required to send.
pub struct MailSettings {
    pub url: MailUrl,
    pub from: lettre::message::Mailbox,
    /// How to get a token, when the URL asks for `auth=xoauth2`.
    pub oauth: Option<OAuthSettings>,
}

impl MailSettings {
    /// A missing or malformed setting stops the run (exit 1): it is the
    /// machine's configuration, not the command's input.
    pub fn from_args(args: &MailArgs) -> anyhow::Result<MailSettings> {
        let url = args
            .smtp_url
            .as_deref()
            .filter(|url| !url.trim().is_empty())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "no mail server is set: set `--smtp-url` or `SMTP_URL` (e.g. smtp://localhost:25 or file://outbox)"
                )
            })?;
        let url = MailUrl::parse(url)?;
        let oauth = MailSettings::oauth(args, &url)?;
        Ok(MailSettings {
            url,
            from: MailSettings::sender(args.mail_from.as_deref())?,
            oauth,
        })
    }

    /// The `SMTP_OAUTH_*` settings, which go with `auth=xoauth2` and only
    /// with it. Every secret they hold is scrubbed from all output from here on.
    fn oauth(args: &MailArgs, url: &MailUrl) -> anyhow::Result<Option<OAuthSettings>> {
        let values = OAuthValues {
            tenant: args.smtp_oauth_tenant.clone(),
            client_id: args.smtp_oauth_client_id.clone(),
            client_secret: args.smtp_oauth_client_secret.clone(),
            client_secret_file: args.smtp_oauth_client_secret_file.as_deref().map(Into::into),
            service_account: args.smtp_oauth_service_account.as_deref().map(Into::into),
            token_url: args.smtp_oauth_token_url.clone(),
            scope: args.smtp_oauth_scope.clone(),
        };
        // Hidden before anything is checked, so no error line can show it.
        if let Some(secret) = &values.client_secret {
            crate::redact::hide(secret);
        }
        let mailbox = url.xoauth2_mailbox();
        let settings = OAuthSettings::from_values(values, mailbox.as_deref().unwrap_or_default())?;
        if let Some(settings) = &settings {
            for secret in settings.secrets() {
                crate::redact::hide(secret);
            }
        }
        match (mailbox, settings) {
            (Some(_), None) => Err(anyhow!(
                "SMTP_URL `{}` asks for `auth=xoauth2`: set `SMTP_OAUTH_TENANT`, `SMTP_OAUTH_CLIENT_ID` and \
                 `SMTP_OAUTH_CLIENT_SECRET` (Microsoft 365), or `SMTP_OAUTH_SERVICE_ACCOUNT` (Google Workspace)",
                url.display()
            )),
            (None, Some(_)) => Err(anyhow!(
                "the `SMTP_OAUTH_*` settings need `auth=xoauth2` in SMTP_URL `{}` \
                 (smtp://USER@host:587?tls=required&auth=xoauth2)",
                url.display()
            )),
            (_, settings) => Ok(settings),
        }
    }

    /// `MAIL_FROM`, required wherever a message is built.
    pub fn sender(mail_from: Option<&str>) -> anyhow::Result<lettre::message::Mailbox> {
        let from = mail_from.filter(|from| !from.trim().is_empty()).ok_or_else(|| {
            anyhow::anyhow!(
                "no sender is set: set `--mail-from` or `MAIL_FROM` (e.g. Reminders <noreply@school.example>)"
            )
        })?;
        from.trim()
            .parse()
            .map_err(|error| anyhow::anyhow!("MAIL_FROM `{from}` is not a mailbox: {error}"))
    }
}

/// How a run sends, validated: bad values are bad input (exit 2); the mail
/// settings are only read when something is really to be sent.
pub struct DeliverySettings {
    pub options: DeliveryOptions,
    smtp_timeout: std::time::Duration,
    mail: MailArgs,
}

impl DeliverySettings {
    pub fn from_args(args: &DeliveryArgs) -> anyhow::Result<DeliverySettings> {
        Ok(DeliverySettings {
            options: DeliveryOptions {
                max_attempts: args.max_attempts,
                batch_size: args.batch_size,
                connections: args.connections,
                lease: args.lease,
                backoff: args.backoff,
                rate: args.rate,
                limit: args.limit,
            },
            smtp_timeout: args
                .smtp_timeout
                .to_std()
                .map_err(|_| invalid("`--smtp-timeout` must be positive"))?,
            mail: args.mail.clone(),
        })
    }

    /// The mail settings and a transport pooling `--connections` connections.
    pub fn mailer(&self) -> anyhow::Result<(MailSettings, Mailer)> {
        let mail = MailSettings::from_args(&self.mail)?;
        let mailer = Mailer::new(
            &mail.url,
            mail.oauth.as_ref(),
            self.options.connections,
            self.smtp_timeout,
        )?;
        Ok((mail, mailer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dot_env_error_names_the_line_that_dotenvy_quotes() {
        let text = "A=1\n# B=x y\n\nB=x y\nC=\"open\nD=2\n";
        assert_eq!(line_quoted(text, "x y"), Some(4), "a value alone: not the comment");
        assert_eq!(line_quoted(text, "C=\"open\nD=2\n"), Some(5), "an entry over two lines");
        assert_eq!(line_quoted(text, "nowhere"), None);
    }
}
