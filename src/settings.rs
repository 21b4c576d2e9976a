//! Flags, environment and `.env` turned into validated settings: `.env`
//! itself, where each setting came from, the mail and delivery settings, and
//! the reminder windows. Only main and the commands import it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, anyhow};
use lettre::Address;
use lettre::message::Mailbox;

use crate::cli::{
    AssignmentCommand, Cli, Command, DeliveryArgs, MailArgs, SecretArgs, SenderArgs, UserCommand, WindowArgs,
};
use crate::error::invalid;
use crate::mail::dkim::Dkim;
use crate::mail::{MailUrl, Mailer, OAuthSettings, OAuthValues, Sender};
use crate::queue::pipeline::DeliveryOptions;
use crate::reminders::plan::Windows;
use crate::schedule::parse_targets;
use crate::time::Clock;

/// Where each setting came from: a flag, the environment, `.env`, or the default.
pub struct Provenance {
    /// (setting, source), e.g. ("DATABASE_URL", "the environment").
    sources: Vec<(String, String)>,
    /// Why each name set that no setting reads is a problem (see [`unknown_settings`]).
    pub unknown: Vec<String>,
}

impl Provenance {
    /// `dotenv` says which variables the `.env` file set (they were not in
    /// the environment before it was read).
    pub fn read(matches: &clap::ArgMatches, dotenv: &Dotenv) -> Provenance {
        let from_dotenv = &dotenv.set;
        let dotenv_name = format!("the .env file {}", dotenv.path.display());
        let settings = [
            ("database_url", "DATABASE_URL", "reminders.db"),
            ("smtp_url", "SMTP_URL", "none"),
            ("smtp_password_file", "SMTP_PASSWORD_FILE", "none"),
            ("mail_from", "MAIL_FROM", "none"),
            ("templates", "REMINDERS_TEMPLATES", "built in"),
            ("ping_url", "REMINDERS_PING_URL", "none"),
            ("ca_file", "REMINDERS_CA_FILE", "none"),
        ];
        let (_, sub) = matches.subcommand().unwrap_or(("", matches));
        let sources = settings
            .iter()
            // Only the settings this command reads.
            .filter(|(id, _, _)| [matches, sub].iter().any(|m| m.try_get_raw(id).is_ok()))
            .map(|(id, variable, default)| {
                let source = [matches, sub]
                    .iter()
                    .find_map(|m| m.try_get_raw(id).ok().flatten().and_then(|_| m.value_source(id)));
                let from = match source {
                    Some(clap::parser::ValueSource::CommandLine) => format!("the --{} flag", id.replace('_', "-")),
                    Some(clap::parser::ValueSource::EnvVariable) if from_dotenv.contains(*variable) => {
                        dotenv_name.clone()
                    }
                    Some(clap::parser::ValueSource::EnvVariable) => "the environment".to_string(),
                    _ => format!("default ({default})"),
                };
                (variable.to_string(), from)
            })
            .collect();
        Provenance {
            sources,
            unknown: Vec::new(),
        }
    }

    pub fn describe(&self) -> Vec<(String, String)> {
        self.sources.clone()
    }
}

/// What the `.env` file held.
#[derive(Debug, Default)]
pub struct Dotenv {
    pub path: PathBuf,
    /// Every name it has.
    pub names: Vec<String>,
    /// The names it set: those the environment did not have already.
    pub set: HashSet<String>,
}

/// The `.env` file to read: `--env-file PATH` or `REMINDERS_ENV_FILE` (so a
/// cron line works without `cd`), else `.env` in the current directory (only
/// there: a parent's `.env` belongs to something else). Read before the
/// command line is parsed, since the file supplies its defaults.
pub fn env_file(args: &[std::ffi::OsString]) -> (PathBuf, bool) {
    let mut given = None;
    for (n, arg) in args.iter().enumerate() {
        let arg = arg.to_string_lossy();
        if arg == "--" {
            break;
        }
        if let Some(path) = arg.strip_prefix("--env-file=") {
            given = Some(PathBuf::from(path));
        } else if arg == "--env-file" {
            given = args.get(n + 1).map(PathBuf::from);
        }
    }
    let given = given.or_else(|| {
        std::env::var_os("REMINDERS_ENV_FILE")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    });
    match given {
        Some(path) => (path, true),
        None => (PathBuf::from(".env"), false),
    }
}

/// Loads the `.env` file without overriding the environment. A file that
/// does not parse stops the run rather than being skipped, and the message
/// names the line but never shows it: it may hold a password. A file named
/// with `--env-file` must exist.
pub fn load_dotenv((path, named): (PathBuf, bool)) -> anyhow::Result<Dotenv> {
    let bytes = match std::fs::read(&path) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound && !named => return Ok(Dotenv::default()),
        read => read.with_context(|| format!("cannot read the env file `{}`", path.display()))?,
    };
    let file = path.display();
    let text = String::from_utf8(bytes).map_err(|error| {
        let line = line_of(error.as_bytes(), error.utf8_error().valid_up_to());
        anyhow!("`{file}` line {line} is not UTF-8 text")
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut dotenv = Dotenv {
        path: path.clone(),
        ..Dotenv::default()
    };
    for entry in dotenvy::from_read_iter(text.as_bytes()) {
        match entry {
            Ok((name, _)) => {
                if std::env::var_os(&name).is_none() {
                    dotenv.set.insert(name.clone());
                }
                dotenv.names.push(name);
            }
            Err(dotenvy::Error::LineParse(quoted, _)) => {
                let line = line_quoted(text, &quoted)
                    .map(|line| format!(" line {line}"))
                    .unwrap_or_default();
                let why = match unclosed_quote(&quoted) {
                    Some(quote) => format!("its value opens a quote ({quote}) that is not closed"),
                    None => "a value with spaces or `#` needs quotes, KEY=\"a value\"".to_string(),
                };
                return Err(anyhow!(
                    "`{file}`{line} does not parse: {why} (the line is not shown: it may hold a password)"
                ));
            }
            Err(_) => return Err(anyhow!("`{file}` cannot be read")),
        }
    }
    // Parsed above, so every entry is well formed; only what the
    // environment lacks is set.
    let folder = std::path::absolute(&path)
        .ok()
        .and_then(|file| file.parent().map(Path::to_path_buf))
        .unwrap_or_default();
    let mut loaded = HashSet::new();
    for (name, value) in dotenvy::from_read_iter(text.as_bytes()).flatten() {
        // The first of a name given twice wins, as in dotenvy's own loading.
        if dotenv.set.contains(&name) && loaded.insert(name.clone()) {
            let value = resolve_relative_path(&name, &value, &folder);
            // SAFETY: main calls this first, before any other thread exists.
            unsafe { std::env::set_var(&name, value) };
        }
    }
    Ok(dotenv)
}

/// The settings that name a file or folder.
const PATH_SETTINGS: [&str; 6] = [
    "SMTP_PASSWORD_FILE",
    "SMTP_OAUTH_CLIENT_SECRET_FILE",
    "SMTP_OAUTH_SERVICE_ACCOUNT",
    "REMINDERS_CA_FILE",
    "REMINDERS_DKIM_KEY",
    "REMINDERS_TEMPLATES",
];

/// A relative path in a settings file is read from the file's folder, not
/// from wherever cron happens to run: `DATABASE_URL=reminders.db` in
/// `/etc/reminders/env` is `/etc/reminders/reminders.db`, and so is every
/// path setting and a `file://` outbox.
fn resolve_relative_path(name: &str, value: &str, folder: &Path) -> String {
    let absolute = |path: &str| -> Option<String> {
        let trimmed = path.trim();
        (!trimmed.is_empty() && Path::new(trimmed).is_relative()).then(|| folder.join(trimmed).display().to_string())
    };
    let resolved = match name {
        "DATABASE_URL" if !value.contains("://") || value.starts_with("sqlite://") => {
            let path = value.strip_prefix("sqlite://").unwrap_or(value);
            // A libpq keyword string is no path; the database URL's parser refuses it.
            (!path.contains('=')).then(|| absolute(path)).flatten()
        }
        "SMTP_URL" => value
            .strip_prefix("file://")
            .and_then(absolute)
            .map(|dir| format!("file://{dir}")),
        _ if PATH_SETTINGS.contains(&name) => absolute(value),
        _ => None,
    };
    resolved.unwrap_or_else(|| value.to_string())
}

/// Settings read from the environment besides the flags' own variables.
const OTHER_SETTINGS: [&str; 2] = ["REMINDERS_PING_URL_SEND", "REMINDERS_PING_URL_SUMMARY"];

/// Every name in the `.env` file, and every `REMINDERS_*` variable in the
/// environment, that no setting reads, each with the nearest real name: a
/// typo there would otherwise switch a setting off without a word
/// (`REMINDERS_RAET=5` leaves the rate unlimited; a mistyped DATABASE_URL
/// means the default SQLite file).
pub fn unknown_settings(command: &clap::Command, dotenv: &Dotenv) -> Vec<String> {
    let mut known: Vec<String> = OTHER_SETTINGS.iter().map(|name| name.to_string()).collect();
    let mut commands = vec![command];
    while let Some(command) = commands.pop() {
        known.extend(
            command
                .get_arguments()
                .filter_map(|arg| arg.get_env())
                .map(|env| env.to_string_lossy().into_owned()),
        );
        commands.extend(command.get_subcommands());
    }
    let suggestion = |name: &str| {
        known
            .iter()
            .map(|known| (strsim::levenshtein(name, known), known))
            .filter(|(distance, _)| *distance <= 3)
            .min()
            .map(|(_, known)| format!(": did you mean `{known}`?"))
            .unwrap_or_default()
    };
    let mut unknown = Vec::new();
    for name in &dotenv.names {
        if !known.contains(name) {
            unknown.push(format!(
                "`{}` sets `{name}`, which no setting of reminders reads{}",
                dotenv.path.display(),
                suggestion(name)
            ));
        }
    }
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("REMINDERS_")
            && !known.iter().any(|known| *known == name)
            && !dotenv.names.iter().any(|n| *n == name)
        {
            unknown.push(format!(
                "the environment sets `{name}`, which no setting of reminders reads{}",
                suggestion(&name)
            ));
        }
    }
    unknown
}

/// The quote character a value opens and never closes (`KEY="abc`), in
/// the text dotenvy quotes: the entry, or its value alone.
fn unclosed_quote(quoted: &str) -> Option<char> {
    let value = quoted.split_once('=').map_or(quoted, |(_, value)| value).trim_start();
    let quote = value.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let rest = &value[1..];
    let closed = if quote == '"' {
        let mut escaped = false;
        rest.chars().any(|c| {
            let closes = c == '"' && !escaped;
            escaped = c == '\\' && !escaped;
            closes
        })
    } else {
        rest.contains('\'')
    };
    (!closed).then_some(quote)
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
    pub sender: Sender,
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
        let url = MailUrl::with_password(url, MailSettings::password(args)?.as_deref())?;
        let oauth = MailSettings::oauth(args, &url)?;
        Ok(MailSettings {
            url,
            sender: MailSettings::sender(&args.sender)?,
            oauth,
        })
    }

    /// `SMTP_PASSWORD`, or the content of `SMTP_PASSWORD_FILE` without its
    /// last line break; an empty value is no value.
    fn password(args: &MailArgs) -> anyhow::Result<Option<String>> {
        if let Some(password) = args.smtp_password.as_deref().filter(|p| !p.is_empty()) {
            crate::redact::hide(password);
            return Ok(Some(password.to_string()));
        }
        let Some(path) = args.smtp_password_file.as_deref().filter(|p| !p.trim().is_empty()) else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .map_err(|error| anyhow::anyhow!("cannot read SMTP_PASSWORD_FILE `{path}`: {error}"))?;
        let password = text.strip_suffix('\n').unwrap_or(&text);
        let password = password.strip_suffix('\r').unwrap_or(password);
        crate::redact::hide(password);
        if password.is_empty() {
            return Err(anyhow::anyhow!("SMTP_PASSWORD_FILE `{path}` is empty"));
        }
        Ok(Some(password.to_string()))
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

    /// `MAIL_FROM` (required wherever a message is built) and the optional
    /// `Reply-To`.
    pub fn sender(args: &SenderArgs) -> anyhow::Result<Sender> {
        let from = args
            .mail_from
            .as_deref()
            .filter(|from| !from.trim().is_empty())
            .ok_or_else(|| {
                anyhow!("no sender is set: set `--mail-from` or `MAIL_FROM` (e.g. Reminders <noreply@school.example>)")
            })?;
        let mailbox = |setting: &str, text: &str| -> anyhow::Result<Mailbox> {
            text.trim()
                .parse()
                .map_err(|error| anyhow!("{setting} `{text}` is not a mailbox: {error}"))
        };
        let bounce_address = optional_address("REMINDERS_BOUNCE_ADDRESS", args.bounce_address.as_deref())?;
        let unsubscribe_mailto = optional_address("REMINDERS_UNSUBSCRIBE_MAILTO", args.unsubscribe_mailto.as_deref())?;
        let unsubscribe_url = args.unsubscribe_url.clone().filter(|url| !url.trim().is_empty());
        if let Some(url) = &unsubscribe_url
            && (!url.contains("{token}") || !url.starts_with("https://"))
        {
            return Err(anyhow!(
                "REMINDERS_UNSUBSCRIBE_URL `{url}` must be an https:// link with `{{token}}` where the student's token goes"
            ));
        }
        let needs_secret = bounce_address.is_some() || unsubscribe_mailto.is_some() || unsubscribe_url.is_some();
        let secret = secret(
            &args.secret,
            needs_secret
                .then_some("REMINDERS_BOUNCE_ADDRESS, REMINDERS_UNSUBSCRIBE_MAILTO and REMINDERS_UNSUBSCRIBE_URL"),
        )?;
        let from = mailbox("MAIL_FROM", from)?;
        Ok(Sender {
            from: from.clone(),
            reply_to: args
                .reply_to
                .as_deref()
                .filter(|text| !text.trim().is_empty())
                .map(|text| mailbox("REMINDERS_REPLY_TO", text))
                .transpose()?,
            dkim: match (&args.dkim_key, &args.dkim_selector) {
                (Some(key), Some(selector)) => Some(Arc::new(Dkim::load(key, selector.trim(), from.email.domain())?)),
                _ => None,
            },
            bounce_address,
            unsubscribe_mailto,
            unsubscribe_url,
            secret,
        })
    }
}

/// An optional address setting; the bounce address must be a plain one,
/// since its `+TOKEN` forms are what name each message.
pub fn optional_address(setting: &str, text: Option<&str>) -> anyhow::Result<Option<Address>> {
    let Some(text) = text.map(str::trim).filter(|text| !text.is_empty()) else {
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

/// The URL a run pings, if any. Only the commands that do scheduled work
/// ping, so that a manual `status` or `check` never reports "all well" to a
/// monitor watching the cron jobs: `send` (`REMINDERS_PING_URL_SEND`, else
/// `--ping-url`/`REMINDERS_PING_URL`), `summary --send`
/// (`REMINDERS_PING_URL_SUMMARY`, else the same), `bounces`, and an import
/// given `--ping-url` on its own command line (a nightly sync).
pub fn ping_url(cli: &Cli, matches: &clap::ArgMatches) -> Option<String> {
    let own = |name: &str| std::env::var(name).ok().filter(|url| !url.trim().is_empty());
    let general = cli.global.ping_url.clone();
    match &cli.command {
        Command::Send(args) if !args.dry_run => own("REMINDERS_PING_URL_SEND").or(general),
        Command::Summary(args) if args.send && !args.dry_run => own("REMINDERS_PING_URL_SUMMARY").or(general),
        Command::Bounces(_) => general,
        Command::User(UserCommand::Import(_)) | Command::Assignment(AssignmentCommand::Import(_)) => {
            let (_, sub) = matches.subcommand()?;
            let (_, import) = sub.subcommand()?;
            (import.value_source("ping_url") == Some(clap::parser::ValueSource::CommandLine)).then_some(general)?
        }
        _ => None,
    }
}

/// The shortest `REMINDERS_SECRET` accepted: 128 bits written as hex, or
/// about that much in any text.
const SECRET_MIN_LEN: usize = 32;

/// `REMINDERS_SECRET`, hidden from every output from here on. `needed_by`
/// names the settings that cannot work without it: then it must be set.
pub fn secret(args: &SecretArgs, needed_by: Option<&str>) -> anyhow::Result<Option<Vec<u8>>> {
    let secret = args.value.as_deref().map(str::trim).filter(|secret| !secret.is_empty());
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
