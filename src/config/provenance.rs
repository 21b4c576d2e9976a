//! Where each setting came from: a flag, the environment, the `.env` file,
//! or its default. Read from clap's own record of each value's source, for
//! every setting the command reads, so a new setting needs nothing here.

use clap::parser::ValueSource;

use super::env::Dotenv;

/// (setting, source), e.g. ("DATABASE_URL", "the environment"), in the
/// order the command's help lists them.
pub struct Provenance(Vec<(String, Source)>);

/// Where one setting came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `--NAME` on the command line.
    Flag(String),
    Environment,
    /// The `.env` file (or `--env-file`), by its path.
    DotEnv(String),
    /// Not set: its default, as its help gives it.
    Default(String),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Flag(long) => write!(f, "the --{long} flag"),
            Source::Environment => f.write_str("the environment"),
            Source::DotEnv(path) => write!(f, "the .env file {path}"),
            Source::Default(default) => write!(f, "default ({default})"),
        }
    }
}

impl Provenance {
    /// Every setting with a variable that the command's own arguments (and
    /// the global ones) read.
    pub fn read(command: &clap::Command, matches: &clap::ArgMatches, dotenv: &Dotenv) -> Provenance {
        let mut sources = Vec::new();
        let (mut command, mut matches) = (command, matches);
        loop {
            for arg in command.get_arguments() {
                let Some(variable) = arg.get_env().map(|env| env.to_string_lossy().into_owned()) else {
                    continue;
                };
                if sources.iter().any(|(name, _)| *name == variable) {
                    continue;
                }
                let from = match matches.value_source(arg.get_id().as_str()) {
                    Some(ValueSource::CommandLine) => Source::Flag(arg.get_long().unwrap_or_default().to_string()),
                    Some(ValueSource::EnvVariable) if dotenv.set.contains(&variable) => {
                        Source::DotEnv(dotenv.path.display().to_string())
                    }
                    Some(ValueSource::EnvVariable) => Source::Environment,
                    _ => Source::Default(default_of(arg)),
                };
                sources.push((variable, from));
            }
            match (command.get_subcommands().next(), matches.subcommand()) {
                (Some(_), Some((name, sub))) => {
                    let Some(sub_command) = command.find_subcommand(name) else {
                        break;
                    };
                    (command, matches) = (sub_command, sub);
                }
                _ => break,
            }
        }
        Provenance(sources)
    }

    /// (setting, where it came from), for people.
    pub fn describe(&self) -> Vec<(String, String)> {
        self.0
            .iter()
            .map(|(setting, source)| (setting.clone(), source.to_string()))
            .collect()
    }

    /// Where a setting that the command reads came from.
    pub fn source(&self, setting: &str) -> Option<&Source> {
        self.0
            .iter()
            .find(|(name, _)| name == setting)
            .map(|(_, source)| source)
    }
}

/// A setting's default as its help gives it: clap's own, or the
/// `[default: …]` its text ends with, or none.
fn default_of(arg: &clap::Arg) -> String {
    if let Some(value) = arg.get_default_values().first() {
        return value.to_string_lossy().into_owned();
    }
    let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
    help.rsplit_once("[default: ")
        .and_then(|(_, rest)| rest.strip_suffix(']'))
        .unwrap_or("none")
        .to_string()
}
