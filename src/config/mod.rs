//! Parse, resolve, run: the command line (with the environment and `.env`
//! behind its flags) resolved into one validated [`Config`], the settings
//! every command shares and a typed [`Job`] for the command run. Only main
//! and the commands import it.
//!
//! Adding a setting: a field in `cli.rs` (with `env = …` and a value
//! parser), and where the job that uses it is resolved below. Where it came
//! from is shown by `-v` and `check` without more.

use std::path::PathBuf;

use crate::cli::{
    AssignmentCommand, BouncesArgs, CgiArgs, Cli, Command, GuardianCommand, PruneArgs, ReportArgs, RetryArgs,
    SummaryArgs, TeacherCommand, TemplateCommand, UserCommand, WindowArgs,
};
use crate::db::DatabaseUrl;
use crate::db::types::Id;
use crate::error::Failure;
use crate::input::Email;
use crate::mail::Sender;
use crate::output::Format;
use crate::reminders::plan::Windows;
use crate::schedule::window::{SendWindow, SendWindows};
use crate::schedule::{Side, Target, TypeList, Unit, parse_targets};
use crate::time::Clock;

mod env;
mod mail;
mod oauth;
mod provenance;

pub use env::Env;
pub use mail::{Delivery, MailSettings};
pub use provenance::{Provenance, Source};

/// Everything a run needs to know before it starts.
pub struct Config {
    pub global: Global,
    pub job: Job,
}

/// The settings every command shares.
pub struct Global {
    pub format: Format,
    pub quiet: bool,
    pub verbose: bool,
    /// The database, for the commands that use one; `check` reports a
    /// malformed URL as a failed check, so it gets the error instead.
    pub database: Result<DatabaseUrl, Failure>,
    pub clock: Clock,
    /// The folder of templates that replace the built-in ones.
    pub templates: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    /// The URL this run pings, if it is a scheduled job (see [`ping_url`]).
    pub ping_url: Option<String>,
    /// This machine's time zone, for tables that concern no student.
    pub machine_zone: chrono_tz::Tz,
    pub provenance: Provenance,
    /// Names set in `.env` or the environment that no setting reads.
    pub unknown_settings: Vec<String>,
}

/// The command to run, with its own settings resolved.
pub enum Job {
    Migrate(MigrateJob),
    User(UserJob),
    Assignment(AssignmentCommand),
    Guardian(GuardianCommand),
    Teacher(TeacherCommand),
    Due(DueJob),
    Send(SendJob),
    Summary(SummaryJob),
    Status(StatusJob),
    Retry(RetryArgs),
    Prune(PruneArgs),
    Check(CheckJob),
    TemplateCheck(TemplateCheckJob),
    Preview(PreviewJob),
    Bounces(BouncesJob),
    Report(ReportJob),
    Completions(CompletionsJob),
    Man(ManJob),
    Cgi(CgiJob),
}

pub struct MigrateJob;

pub struct StatusJob;

pub struct DueJob {
    pub windows: Windows,
}

pub struct ReportJob {
    pub course: String,
    /// How far back the report looks for assignments that were due.
    pub since: chrono::Duration,
}

pub struct TemplateCheckJob {
    /// The folder to check, else the built-in set.
    pub dir: Option<PathBuf>,
}

pub struct CompletionsJob {
    pub shell: clap_complete::Shell,
}

pub struct ManJob {
    /// Write a page per command here, instead of one page to stdout.
    pub dir: Option<PathBuf>,
}

pub struct UserJob {
    pub command: UserCommand,
    /// The key of unsubscribe tokens, for `opt-out --token`.
    pub secret: Option<Vec<u8>>,
}

pub struct SendJob {
    pub windows: Windows,
    pub dry_run: bool,
    pub delivery_window: Option<chrono::Duration>,
    pub digest: bool,
    /// `--required-types`: types no student can mute.
    pub required_types: Option<TypeList>,
    /// `--escalate-after`, in time: overdue steps this far past the deadline
    /// or more are copied to the student's guardians.
    pub escalate_after: Option<chrono::Duration>,
    pub delivery: Delivery,
}

pub struct SummaryJob {
    pub student: Option<Email>,
    pub send: bool,
    pub dry_run: bool,
    /// `--send-window`: when summaries and digests may reach people.
    pub send_window: Option<SendWindow>,
    pub delivery: Delivery,
}

pub struct CheckJob {
    pub mail: Result<MailSettings, Failure>,
    /// The monitor's URL, whose TLS `check` tries.
    pub ping_url: Option<String>,
}

pub struct PreviewJob {
    pub assignment_id: Id,
    pub reminder_type: String,
    pub sender: Sender,
}

/// One web request to the preferences page, and what the page offers.
pub struct CgiJob {
    pub site: crate::web::Site,
    pub request: CgiRequest,
}

/// The request's meta-variables (RFC 3875 4.1); its body is on stdin.
pub struct CgiRequest {
    pub method: String,
    pub query: String,
    pub content_type: Option<String>,
    pub content_length: Option<String>,
}

pub struct BouncesJob {
    pub args: BouncesArgs,
    pub secret: Vec<u8>,
    pub bounce_address: Option<lettre::Address>,
}

impl Config {
    /// `matches` are what `cli` was parsed from, with the source of each
    /// value; `command` is the command they were matched against.
    pub fn resolve(
        cli: Cli,
        command: &clap::Command,
        matches: &clap::ArgMatches,
        env: &Env,
    ) -> Result<Config, Failure> {
        let global = cli.global;
        let needs_no_database = matches!(
            cli.command,
            Command::Check { .. } | Command::Completions { .. } | Command::Man { .. }
        );
        let database = DatabaseUrl::parse(global.database_url.as_deref()).map_err(Failure::from);
        if !needs_no_database && let Err(failure) = &database {
            return Err(failure.clone());
        }
        let clock = Clock::new(global.now);
        let provenance = Provenance::read(command, matches, &env.dotenv);
        let ping_url = ping_url(&cli.command, global.ping_url.clone(), &provenance, env);
        let job = match cli.command {
            Command::Migrate => Job::Migrate(MigrateJob),
            Command::User(command) => {
                let secret = match &command {
                    UserCommand::OptOut {
                        token: Some(_), secret, ..
                    } => mail::secret(secret, Some("`user opt-out --token`"))?,
                    _ => None,
                };
                Job::User(UserJob { command, secret })
            }
            Command::Assignment(command) => Job::Assignment(command),
            Command::Guardian(command) => Job::Guardian(command),
            Command::Teacher(command) => Job::Teacher(command),
            Command::Due(args) => Job::Due(DueJob {
                windows: windows(&args, clock.clone())?,
            }),
            Command::Send(args) => Job::Send(SendJob {
                windows: windows(&args.window, clock.clone())?,
                dry_run: args.dry_run,
                delivery_window: args.delivery_window,
                digest: args.digest,
                required_types: args.required_types.as_deref().map(TypeList::parse).transpose()?,
                escalate_after: args.escalate_after.map(|n| match args.window.unit {
                    Unit::Minutes => chrono::Duration::minutes(n.into()),
                    Unit::Hours => chrono::Duration::hours(n.into()),
                }),
                delivery: Delivery::resolve(&args.delivery)?,
            }),
            Command::Summary(SummaryArgs {
                student,
                send,
                dry_run,
                send_window,
                delivery,
            }) => Job::Summary(SummaryJob {
                student,
                send,
                dry_run,
                send_window: send_window.default,
                delivery: Delivery::resolve(&delivery)?,
            }),
            Command::Status => Job::Status(StatusJob),
            Command::Retry(args) => Job::Retry(args),
            Command::Prune(args) => Job::Prune(args),
            Command::Check { mail } => Job::Check(CheckJob {
                mail: MailSettings::resolve(&mail).map_err(Failure::from),
                ping_url: global.ping_url.clone(),
            }),
            Command::Template(TemplateCommand::Check { dir }) => Job::TemplateCheck(TemplateCheckJob {
                dir: dir.or(global.templates.clone()),
            }),
            Command::Preview(args) => {
                if Target::from_reminder_type(&args.reminder_type).is_none() {
                    return Err(Failure::bad_input(format!(
                        "`{}` is not a reminder type such as `24h` or `2m`",
                        args.reminder_type
                    )));
                }
                Job::Preview(PreviewJob {
                    sender: mail::sender(&args.sender)?,
                    assignment_id: args.assignment_id,
                    reminder_type: args.reminder_type,
                })
            }
            Command::Bounces(args) => Job::Bounces(BouncesJob {
                secret: mail::secret(&args.secret, Some("`reminders bounces`"))?.unwrap_or_default(),
                bounce_address: mail::optional_address("REMINDERS_BOUNCE_ADDRESS", args.bounce_address.as_deref())?,
                args,
            }),
            Command::Report(ReportArgs { course, since }) => Job::Report(ReportJob { course, since }),
            Command::Completions { shell } => Job::Completions(CompletionsJob { shell }),
            Command::Man { dir } => Job::Man(ManJob { dir }),
            Command::Cgi(args) => Job::Cgi(cgi(args, env)?),
        };
        Ok(Config {
            global: Global {
                format: global.format,
                quiet: global.quiet,
                verbose: global.verbose,
                database,
                clock,
                templates: global.templates,
                ca_file: global.ca_file,
                ping_url,
                machine_zone: crate::time::machine_zone(env.var("TZ").as_deref()),
                provenance,
                unknown_settings: env.unknown.clone(),
            },
            job,
        })
    }
}

/// The page offers the types `send` sends, read from the same flags (or
/// `REMINDERS_OVERDUE` and `REMINDERS_REQUIRED_TYPES`), and needs the
/// secret that keys the tokens in the links.
fn cgi(args: CgiArgs, env: &Env) -> Result<CgiJob, Failure> {
    Ok(CgiJob {
        site: crate::web::Site {
            offered: targets(&args.targets, args.overdue.as_deref(), args.unit)?,
            required: args.required_types.as_deref().map(TypeList::parse).transpose()?,
            secret: mail::secret(&args.secret, Some("`reminders cgi`"))?.unwrap_or_default(),
        },
        request: CgiRequest {
            method: env
                .var("REQUEST_METHOD")
                .unwrap_or_default()
                .trim()
                .to_ascii_uppercase(),
            query: env.var("QUERY_STRING").unwrap_or_default(),
            content_type: env.var("CONTENT_TYPE"),
            content_length: env.var("CONTENT_LENGTH"),
        },
    })
}

/// The reminder types of `--targets` and `--overdue`: what `send` sends,
/// and what the preferences page offers.
fn targets(before: &str, overdue: Option<&str>, unit: Unit) -> anyhow::Result<Vec<Target>> {
    let mut targets = parse_targets(before, unit, Side::Before)?;
    if let Some(steps) = overdue {
        targets.extend(parse_targets(steps, unit, Side::Overdue)?);
    }
    Ok(targets)
}

/// The reminder windows of a `due` or `send` run, on the run's clock.
fn windows(args: &WindowArgs, clock: Clock) -> anyhow::Result<Windows> {
    Ok(Windows {
        targets: targets(&args.targets, args.overdue.as_deref(), args.unit)?,
        tolerance: match args.tolerance {
            Some(minutes) => chrono::Duration::minutes(minutes.into()),
            None => args.unit.default_tolerance(),
        },
        clock,
        // Each student's own window is read from the database by the run.
        send_windows: SendWindows {
            default: args.send_window.default.clone(),
            own: Default::default(),
        },
    })
}

/// The URL a run pings, if any. Only the commands that do scheduled work
/// ping, so that a manual `status` or `check` never reports "all well" to a
/// monitor watching the cron jobs: `send` (`REMINDERS_PING_URL_SEND`, else
/// `--ping-url`/`REMINDERS_PING_URL`), `summary --send`
/// (`REMINDERS_PING_URL_SUMMARY`, else the same), `bounces`, and an import
/// given `--ping-url` on its own command line (a nightly sync).
fn ping_url(command: &Command, general: Option<String>, provenance: &Provenance, env: &Env) -> Option<String> {
    match command {
        Command::Send(args) if !args.dry_run => env.var("REMINDERS_PING_URL_SEND").or(general),
        Command::Summary(args) if args.send && !args.dry_run => env.var("REMINDERS_PING_URL_SUMMARY").or(general),
        Command::Bounces(_) => general,
        Command::User(UserCommand::Import(_))
        | Command::Assignment(AssignmentCommand::Import(_))
        | Command::Guardian(GuardianCommand::Import(_))
        | Command::Teacher(TeacherCommand::Import(_)) => {
            matches!(provenance.source("REMINDERS_PING_URL"), Some(Source::Flag(_))).then_some(general)?
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, FromArgMatches};

    use super::*;
    use crate::error::FailureKind;

    fn resolve(args: &[&str]) -> Result<Config, Failure> {
        let mut command = Cli::command();
        let matches = command.try_get_matches_from_mut(args).expect("parses");
        let cli = Cli::from_arg_matches(&matches).expect("parses");
        let env = Env {
            args: Vec::new(),
            dotenv: env::Dotenv::default(),
            unknown: Vec::new(),
        };
        Config::resolve(cli, &command, &matches, &env)
    }

    #[test]
    fn a_dry_run_resolves_without_mail_settings_and_a_real_run_meets_their_error_when_it_sends() {
        let args = [
            "reminders",
            "--database-url",
            "x.db",
            "send",
            "--unit",
            "hours",
            "--targets",
            "24,2",
        ];
        let Job::Send(job) = resolve(&args).expect("resolves").job else {
            panic!("a send job");
        };
        assert_eq!(job.windows.targets.len(), 2);
        let failure = job.delivery.mailer().err().expect("no mail server is set");
        assert_eq!(failure.kind, FailureKind::Runtime);
        assert!(failure.reason.starts_with("no mail server is set"), "{failure}");
    }

    #[test]
    fn bad_input_is_refused_while_resolving_and_a_bad_database_url_only_where_one_is_used() {
        let targets = resolve(&["reminders", "due", "--unit", "hours", "--targets", "0"]);
        assert_eq!(targets.err().map(|failure| failure.kind), Some(FailureKind::BadInput));
        let url = "postgres://";
        let status = resolve(&["reminders", "--database-url", url, "status"]);
        assert_eq!(status.err().map(|failure| failure.kind), Some(FailureKind::BadInput));
        let check = resolve(&["reminders", "--database-url", url, "check"]).expect("check reports it");
        assert!(check.global.database.is_err());
    }

    #[test]
    fn where_each_setting_came_from_is_read_from_clap() {
        let config = resolve(&["reminders", "--database-url", "x.db", "check"]).expect("resolves");
        let sources = config.global.provenance.describe();
        let from = |name: &str| {
            sources
                .iter()
                .find(|(setting, _)| setting == name)
                .map(|(_, from)| from.as_str())
        };
        assert_eq!(from("DATABASE_URL"), Some("the --database-url flag"));
        assert_eq!(from("REMINDERS_TEMPLATES"), Some("default (built in)"));
        assert_eq!(from("REMINDERS_RATE"), None, "check sends nothing, so it reads no rate");
    }
}
