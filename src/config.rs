//! Flags and environment turned into validated settings: the database URL,
//! the mail settings and the run's clock. The one place that reads settings.

use std::path::PathBuf;

use chrono::{DateTime, Utc};

use crate::cli::{DeliveryArgs, MailArgs, WindowArgs};
use crate::db::types::Timestamp;
use crate::delivery::DeliveryOptions;
use crate::error::invalid;
use crate::input::{parse_duration, parse_instant};
use crate::mail::MailUrl;
use crate::mail::Mailer;
use crate::schedule::{Target, parse_targets};

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

/// The SQLite file used when neither `--database-url` nor `DATABASE_URL` is set.
pub const DEFAULT_SQLITE_PATH: &str = "reminders.db";

/// Where the data lives, chosen by the URL's scheme.
#[derive(Debug, Clone)]
pub enum DatabaseUrl {
    Postgres(url::Url),
    Sqlite(PathBuf),
}

impl DatabaseUrl {
    /// `postgres://` or `postgresql://` is PostgreSQL; anything else is a SQLite
    /// path, with an optional `sqlite://` prefix.
    pub fn parse(raw: Option<&str>) -> anyhow::Result<DatabaseUrl> {
        let raw = raw
            .map(str::trim)
            .filter(|raw| !raw.is_empty())
            .unwrap_or(DEFAULT_SQLITE_PATH);
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            let url = url::Url::parse(raw)
                .map_err(|error| invalid(format!("database URL `{}` is malformed: {error}", redact_unparsed(raw))))?;
            if url.host_str().is_none_or(str::is_empty) {
                return Err(invalid(format!("database URL `{}` names no host", redact(&url))));
            }
            return Ok(DatabaseUrl::Postgres(url));
        }
        let path = raw.strip_prefix("sqlite://").unwrap_or(raw);
        if let Some((scheme, _)) = path.split_once("://") {
            return Err(invalid(format!(
                "database URL scheme `{scheme}` is not supported: use `postgres://…` or a SQLite file path"
            )));
        }
        if path.is_empty() {
            return Err(invalid("the SQLite database path is empty"));
        }
        Ok(DatabaseUrl::Sqlite(PathBuf::from(path)))
    }

    /// The URL with any password masked, safe to print.
    pub fn display(&self) -> String {
        match self {
            DatabaseUrl::Postgres(url) => redact(url),
            DatabaseUrl::Sqlite(path) => path.display().to_string(),
        }
    }
}

/// A URL with its password replaced by `***`.
pub fn redact(url: &url::Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some("***"));
    }
    shown.to_string()
}

/// Masks `user:password@` in a string that did not parse as a URL.
fn redact_unparsed(raw: &str) -> String {
    match (raw.find("://"), raw.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &raw[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &raw[..scheme_end + 3], &raw[at..])
        }
        _ => raw.to_string(),
    }
}

/// The run's clock: the system clock, or frozen at `--now` so that tests and
/// operators can place a run exactly anywhere in time.
#[derive(Debug, Clone)]
pub struct Clock {
    frozen: Option<DateTime<Utc>>,
    /// How far the database server's clock is ahead of this host's.
    offset: chrono::Duration,
}

impl Clock {
    pub fn new(now: Option<DateTime<Utc>>) -> Clock {
        Clock {
            frozen: now,
            offset: chrono::Duration::zero(),
        }
    }

    /// Reads time from the database server's clock from now on (unless
    /// `--now` froze it), so that cron hosts whose clocks disagree still agree
    /// on when a lease or a retry is due. `server_now` is `None` on SQLite,
    /// where every run reads the same host's clock anyway.
    pub fn follow(&mut self, server_now: Option<DateTime<Utc>>) {
        if let (None, Some(server_now)) = (self.frozen, server_now) {
            self.offset = server_now - Utc::now();
        }
    }

    pub fn now(&self) -> Timestamp {
        Timestamp::new(self.frozen.unwrap_or_else(|| Utc::now() + self.offset))
    }
}

/// The reminder windows of a `due` or `send` run.
pub struct Windows {
    pub targets: Vec<Target>,
    pub tolerance: chrono::Duration,
    pub clock: Clock,
}

impl Windows {
    pub fn from_args(args: &WindowArgs) -> anyhow::Result<Windows> {
        let targets = parse_targets(&args.targets, args.unit)?;
        let tolerance = match args.tolerance {
            Some(minutes) => chrono::Duration::minutes(minutes.into()),
            None => args.unit.default_tolerance(),
        };
        let now = args.now.as_deref().map(parse_instant).transpose()?;
        Ok(Windows {
            targets,
            tolerance,
            clock: Clock::new(now),
        })
    }
}

/// Where mail goes and who it is from; both are required to send.
pub struct MailSettings {
    pub url: MailUrl,
    pub from: lettre::message::Mailbox,
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
        let from = args
            .mail_from
            .as_deref()
            .filter(|from| !from.trim().is_empty())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "no sender is set: set `--mail-from` or `MAIL_FROM` (e.g. Reminders <noreply@school.example>)"
                )
            })?;
        Ok(MailSettings {
            url: MailUrl::parse(url)?,
            from: from
                .trim()
                .parse()
                .map_err(|error| anyhow::anyhow!("MAIL_FROM `{from}` is not a mailbox: {error}"))?,
        })
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
                lease: parse_lease(&args.lease)?,
                backoff: parse_duration(&args.backoff)?,
                rate: args.rate,
                limit: args.limit,
            },
            smtp_timeout: parse_duration(&args.smtp_timeout)?
                .to_std()
                .map_err(|_| invalid("`--smtp-timeout` must be positive"))?,
            mail: args.mail.clone(),
        })
    }

    /// The mail settings and a transport pooling `--connections` connections.
    pub fn mailer(&self) -> anyhow::Result<(MailSettings, Mailer)> {
        let mail = MailSettings::from_args(&self.mail)?;
        let mailer = Mailer::new(&mail.url, self.options.connections, self.smtp_timeout)?;
        Ok((mail, mailer))
    }
}

/// `--lease`: at least two seconds, so that renewing it every third of it
/// leaves room for the sends in between.
fn parse_lease(raw: &str) -> anyhow::Result<chrono::Duration> {
    let lease = parse_duration(raw)?;
    if lease < crate::delivery::MIN_LEASE {
        return Err(invalid(format!(
            "`--lease {raw}` is too short: a lease is at least `2s`"
        )));
    }
    Ok(lease)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_choose_the_backend() {
        assert!(matches!(DatabaseUrl::parse(None).unwrap(), DatabaseUrl::Sqlite(p) if p.as_os_str() == "reminders.db"));
        assert!(
            matches!(DatabaseUrl::parse(Some("sqlite://x.db")).unwrap(), DatabaseUrl::Sqlite(p) if p.as_os_str() == "x.db")
        );
        assert!(matches!(
            DatabaseUrl::parse(Some("postgresql://h/db")).unwrap(),
            DatabaseUrl::Postgres(_)
        ));
        assert!(DatabaseUrl::parse(Some("mysql://h/db")).is_err());
        assert!(DatabaseUrl::parse(Some("postgres://u:p@h:notaport/db")).is_err());
    }

    #[test]
    fn passwords_are_never_shown() {
        let url = DatabaseUrl::parse(Some("postgres://alice:s3cret@db.example/app")).unwrap();
        assert_eq!(url.display(), "postgres://alice:***@db.example/app");
        let error = DatabaseUrl::parse(Some("postgres://alice:s3cret@db:x/app")).unwrap_err();
        assert!(!error.to_string().contains("s3cret"), "{error}");
    }
}
