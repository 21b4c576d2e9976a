//! Flags, environment and `.env` turned into validated settings: the database
//! URL, the mail settings and the run's clock. The one place that reads
//! settings, and so the one that knows their secrets and masks them.

use std::collections::HashSet;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use anyhow::{Context, anyhow};
use chrono::{DateTime, Utc};

use crate::cli::{DeliveryArgs, MailArgs, WindowArgs};
use crate::db::types::Timestamp;
use crate::delivery::DeliveryOptions;
use crate::error::invalid;
use crate::input::parse_instant;
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
    /// `url` is what libpq gets: our own switches are taken out of it.
    Postgres {
        url: url::Url,
        prepared_statements: bool,
    },
    Sqlite(PathBuf),
}

/// The URL switches that turn Diesel's prepared-statement cache off, for a
/// pooler in transaction mode: `prepared_statements=false`, or its alias
/// `pgbouncer=true` (the name some tools use). Each with the value that keeps
/// the cache on.
const PREPARED_STATEMENT_SWITCHES: [(&str, bool); 2] = [("prepared_statements", true), ("pgbouncer", false)];

impl DatabaseUrl {
    /// `postgres://` or `postgresql://` is PostgreSQL; anything else is a SQLite
    /// path, with an optional `sqlite://` prefix.
    pub fn parse(raw: Option<&str>) -> anyhow::Result<DatabaseUrl> {
        let raw = raw
            .map(str::trim)
            .filter(|raw| !raw.is_empty())
            .unwrap_or(DEFAULT_SQLITE_PATH);
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            hide_secrets_of_url(raw);
            let url = url::Url::parse(raw)
                .map_err(|error| invalid(format!("database URL `{}` is malformed: {error}", mask_url(raw))))?;
            // libpq reads this form, which may escape the password differently.
            hide_secrets_of_url(url.as_str());
            if url.host_str().is_none_or(str::is_empty) {
                return Err(invalid(format!("database URL `{}` names no host", redact(&url))));
            }
            let (url, prepared_statements) = take_prepared_statement_switch(url)?;
            return Ok(DatabaseUrl::Postgres {
                url,
                prepared_statements,
            });
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
            DatabaseUrl::Postgres { url, .. } => redact(url),
            DatabaseUrl::Sqlite(path) => path.display().to_string(),
        }
    }
}

/// Takes `prepared_statements=` and `pgbouncer=` out of the query, since
/// libpq refuses parameters it does not know, and returns whether prepared
/// statements stay on (the default). The other parameters are kept byte for
/// byte: re-encoding them could change how libpq decodes a password.
fn take_prepared_statement_switch(mut url: url::Url) -> anyhow::Result<(url::Url, bool)> {
    let Some(query) = url.query().map(str::to_string) else {
        return Ok((url, true));
    };
    let mut prepared_statements = true;
    let mut kept = Vec::new();
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode(key);
        let Some((name, cache_on)) = PREPARED_STATEMENT_SWITCHES.iter().find(|(name, _)| *name == key) else {
            kept.push(pair);
            continue;
        };
        let value = match percent_decode(value).to_lowercase().as_str() {
            "true" | "1" | "on" | "yes" => true,
            "false" | "0" | "off" | "no" => false,
            other => {
                return Err(invalid(format!(
                    "database URL parameter `{name}={other}` is not understood: use `{name}=true` or `{name}=false`"
                )));
            }
        };
        prepared_statements &= value == *cache_on;
    }
    let kept = kept.join("&");
    url.set_query((!kept.is_empty()).then_some(kept.as_str()));
    Ok((url, prepared_statements))
}

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

fn percent_decode(text: &str) -> String {
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

/// Remembers a secret, as written and percent-decoded (and each as JSON
/// output escapes it), for [`scrub`].
pub fn hide(secret: &str) {
    let mut secrets = SECRETS.lock().unwrap_or_else(PoisonError::into_inner);
    for text in [secret.to_string(), percent_decode(secret)] {
        let quoted = serde_json::to_string(&text).unwrap_or_default();
        let in_json = quoted.trim_matches('"').to_string();
        for form in [text, in_json] {
            if !form.is_empty() && !secrets.contains(&form) {
                secrets.push(form);
            }
        }
    }
    // A secret that holds another is masked whole.
    secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
}

/// Text safe to print: every remembered secret in it replaced by `***`.
/// Every line this program writes passes through here.
pub fn scrub(text: &str) -> String {
    let secrets = SECRETS.lock().unwrap_or_else(PoisonError::into_inner);
    secrets
        .iter()
        .fold(text.to_string(), |text, secret| text.replace(secret.as_str(), "***"))
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
        let mailer = Mailer::new(&mail.url, self.options.connections, self.smtp_timeout)?;
        Ok((mail, mailer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_follows_the_database_server_unless_now_is_given() {
        let ahead = Utc::now() + chrono::Duration::hours(1);
        let mut clock = Clock::new(None);
        clock.follow(Some(ahead));
        let skew = clock.now().instant() - Utc::now();
        assert!(
            (skew - chrono::Duration::hours(1)).abs() < chrono::Duration::seconds(5),
            "{skew}"
        );

        let given: DateTime<Utc> = "2030-03-01T12:00:00Z".parse().unwrap();
        let mut frozen = Clock::new(Some(given));
        frozen.follow(Some(ahead));
        assert_eq!(frozen.now().instant(), given);

        let mut sqlite = Clock::new(None);
        sqlite.follow(None);
        assert!((sqlite.now().instant() - Utc::now()).abs() < chrono::Duration::seconds(5));
    }

    #[test]
    fn urls_choose_the_backend() {
        assert!(matches!(DatabaseUrl::parse(None).unwrap(), DatabaseUrl::Sqlite(p) if p.as_os_str() == "reminders.db"));
        assert!(
            matches!(DatabaseUrl::parse(Some("sqlite://x.db")).unwrap(), DatabaseUrl::Sqlite(p) if p.as_os_str() == "x.db")
        );
        assert!(matches!(
            DatabaseUrl::parse(Some("postgresql://h/db")).unwrap(),
            DatabaseUrl::Postgres {
                prepared_statements: true,
                ..
            }
        ));
        assert!(DatabaseUrl::parse(Some("mysql://h/db")).is_err());
        assert!(DatabaseUrl::parse(Some("postgres://u:p@h:notaport/db")).is_err());
    }

    #[test]
    fn the_prepared_statement_switch_is_taken_out_of_the_url() {
        let parse = |raw| match DatabaseUrl::parse(Some(raw)).unwrap() {
            DatabaseUrl::Postgres {
                url,
                prepared_statements,
            } => (url.to_string(), prepared_statements),
            DatabaseUrl::Sqlite(_) => unreachable!(),
        };
        assert_eq!(
            parse("postgres://h/db?prepared_statements=false"),
            ("postgres://h/db".into(), false)
        );
        assert_eq!(
            parse("postgres://h/db?pgbouncer=true"),
            ("postgres://h/db".into(), false)
        );
        assert_eq!(
            parse("postgres://h/db?pgbouncer=false"),
            ("postgres://h/db".into(), true)
        );
        assert_eq!(
            parse("postgres://u:p@h/db?sslmode=require&prepared_statements=false&password=a%2Bb"),
            ("postgres://u:p@h/db?sslmode=require&password=a%2Bb".into(), false)
        );
        assert_eq!(
            parse("postgres://h/db?sslmode=disable"),
            ("postgres://h/db?sslmode=disable".into(), true)
        );
        assert!(DatabaseUrl::parse(Some("postgres://h/db?prepared_statements=maybe")).is_err());
    }

    #[test]
    fn passwords_are_never_shown() {
        let url = DatabaseUrl::parse(Some("postgres://alice:s3cret@db.example/app")).unwrap();
        assert_eq!(url.display(), "postgres://alice:***@db.example/app");
        let error = DatabaseUrl::parse(Some("postgres://alice:s3cret@db:x/app")).unwrap_err();
        assert!(!error.to_string().contains("s3cret"), "{error}");
    }

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
    fn remembered_secrets_are_scrubbed_from_any_text() {
        hide_secrets_of_url("postgres://u:Scrub%41Me@h/db?password=Other\"Secret");
        assert_eq!(
            scrub(r#"token "Scrub%41Me", decoded ScrubAMe, query Other"Secret, in JSON Other\"Secret"#),
            r#"token "***", decoded ***, query ***, in JSON ***"#
        );
    }

    #[test]
    fn a_dot_env_error_names_the_line_that_dotenvy_quotes() {
        let text = "A=1\n# B=x y\n\nB=x y\nC=\"open\nD=2\n";
        assert_eq!(line_quoted(text, "x y"), Some(4), "a value alone: not the comment");
        assert_eq!(line_quoted(text, "C=\"open\nD=2\n"), Some(5), "an entry over two lines");
        assert_eq!(line_quoted(text, "nowhere"), None);
    }
}
