//! The environment and the `.env` file: the one place that reads either.
//! clap reads each flag's own variable; everything else asks [`Env`].

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};

/// The process environment once `.env` has filled in what it lacked, and
/// the command line, with every blank setting removed: `SMTP_URL=` (in
/// `.env` or the environment) or `--smtp-url ''` means the setting is not
/// set, one rule for every setting, so no value a setting parses is blank.
pub struct Env {
    pub args: Vec<OsString>,
    pub dotenv: Dotenv,
    /// Why each name set that no setting reads is a problem (see [`unknown_settings`]).
    pub unknown: Vec<String>,
}

impl Env {
    /// Reads `.env` (or `--env-file`), before the command line is parsed,
    /// since it supplies the flags' defaults. `command` names every setting.
    pub fn load(args: Vec<OsString>, command: &clap::Command) -> anyhow::Result<Env> {
        let dotenv = load_dotenv(env_file(&args))?;
        let known = known_settings(command);
        for name in &known {
            if std::env::var_os(name).is_some_and(|value| value.to_string_lossy().trim().is_empty()) {
                // SAFETY: main calls this first, before any other thread exists.
                unsafe { std::env::remove_var(name) };
            }
        }
        let unknown = unknown_settings(&known, &dotenv);
        Ok(Env {
            args: without_blank_settings(args, command),
            dotenv,
            unknown,
        })
    }

    /// A setting that no flag reads, if it is set.
    pub fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|value| !value.trim().is_empty())
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
fn env_file(args: &[std::ffi::OsString]) -> (PathBuf, bool) {
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
fn load_dotenv((path, named): (PathBuf, bool)) -> anyhow::Result<Dotenv> {
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

/// The command line without a setting's flag given a blank value
/// (`--bounce-address ''`, `--smtp-url=`): as in the environment, that
/// leaves the setting unset.
fn without_blank_settings(args: Vec<OsString>, command: &clap::Command) -> Vec<OsString> {
    let mut flags = Vec::new();
    let mut commands = vec![command];
    while let Some(command) = commands.pop() {
        flags.extend(
            command
                .get_arguments()
                .filter(|arg| arg.get_env().is_some() && arg.get_action().takes_values())
                .filter_map(|arg| arg.get_long())
                .map(|long| format!("--{long}")),
        );
        commands.extend(command.get_subcommands());
    }
    let blank = |arg: Option<&OsString>| arg.is_some_and(|arg| arg.to_string_lossy().trim().is_empty());
    let mut kept = Vec::with_capacity(args.len());
    let mut at = 0;
    while at < args.len() {
        let text = args[at].to_string_lossy();
        if text == "--" {
            kept.extend_from_slice(&args[at..]);
            break;
        }
        match text.split_once('=') {
            Some((flag, value)) if flags.iter().any(|f| f == flag) && value.trim().is_empty() => at += 1,
            None if flags.iter().any(|f| *f == text) && blank(args.get(at + 1)) => at += 2,
            _ => {
                kept.push(args[at].clone());
                at += 1;
            }
        }
    }
    kept
}

/// Settings read from the environment besides the flags' own variables.
const OTHER_SETTINGS: [&str; 3] = ["REMINDERS_PING_URL_SEND", "REMINDERS_PING_URL_SUMMARY", "TZ"];

/// Every variable a setting reads: each flag's, and the others.
fn known_settings(command: &clap::Command) -> Vec<String> {
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
    known.sort();
    known.dedup();
    known
}

/// Every name in the `.env` file, and every `REMINDERS_*` variable in the
/// environment, that no setting reads, each with the nearest real name: a
/// typo there would otherwise switch a setting off without a word
/// (`REMINDERS_RAET=5` leaves the rate unlimited; a mistyped DATABASE_URL
/// means the default SQLite file).
fn unknown_settings(known: &[String], dotenv: &Dotenv) -> Vec<String> {
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn a_dot_env_error_names_the_line_that_dotenvy_quotes() {
        let text = "A=1\n# B=x y\n\nB=x y\nC=\"open\nD=2\n";
        assert_eq!(line_quoted(text, "x y"), Some(4), "a value alone: not the comment");
        assert_eq!(line_quoted(text, "C=\"open\nD=2\n"), Some(5), "an entry over two lines");
        assert_eq!(line_quoted(text, "nowhere"), None);
    }

    #[test]
    fn a_setting_flag_given_a_blank_value_is_left_out_and_nothing_else_is() {
        let args = [
            "reminders",
            "send",
            "--smtp-url",
            " ",
            "--mail-from=",
            "--digest",
            "--unit",
            "hours",
            "--",
            "--smtp-url",
            "",
        ];
        let kept = super::without_blank_settings(args.iter().map(Into::into).collect(), &crate::cli::Cli::command());
        let kept: Vec<String> = kept.iter().map(|arg| arg.to_string_lossy().into_owned()).collect();
        assert_eq!(
            kept,
            [
                "reminders",
                "send",
                "--digest",
                "--unit",
                "hours",
                "--",
                "--smtp-url",
                ""
            ]
        );
    }
}
