//! The command line, as clap derive types only. Doc comments are the help text.

use chrono::{DateTime, Duration, Utc};
use clap::{Args, Parser, Subcommand};

use crate::db::types::{DigestFrequency, Id};
use crate::input::{
    Email, Rate, duration_between, parse_course, parse_description, parse_external_id, parse_instant, parse_metadata,
    parse_name, parse_rate, parse_timezone, parse_title, parse_weekday,
};
use crate::output::Format;
use crate::queue::policy::DEFAULT_MAX_ATTEMPTS;
use crate::schedule::Unit;
use crate::schedule::window::SendWindow;

/// Email students before their assignments are due. Run it from cron.
#[derive(Debug, Parser)]
#[command(name = "reminders", version = crate::VERSION, after_help = top_level_after_help(), max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// A first run anyone can paste (SQLite in the current folder, mail
/// written as files), then the exit codes.
fn top_level_after_help() -> String {
    let first_run = "First run (a SQLite file here, mail written to ./outbox as .eml files):\n  \
         reminders migrate\n  \
         reminders user add --email ann@example.com --timezone Europe/Paris\n  \
         reminders assignment add --student ann@example.com --title Essay --due 2030-01-15T18:00:00Z\n  \
         reminders due --unit hours --targets 24 --now 2030-01-14T18:00:00Z\n  \
         SMTP_URL=file://outbox MAIL_FROM=noreply@school.example \\\n    \
         reminders send --unit hours --targets 24 --now 2030-01-14T18:00:00Z\n";
    format!("{first_run}\n{}", crate::error::exit_status_help())
}

/// A command's help as clap renders it, with its examples (and whatever
/// else follows the options) moved before the global options, so that
/// `send --help` shows what is about sending first. Works on plain and
/// coloured text alike: only whole lines move.
pub fn own_options_first(help: &str) -> String {
    let plain = |line: &str| {
        let mut text = String::new();
        let mut in_escape = false;
        for c in line.chars() {
            match (in_escape, c) {
                (false, '\u{1b}') => in_escape = true,
                (true, 'm') => in_escape = false,
                (false, _) => text.push(c),
                (true, _) => {}
            }
        }
        text
    };
    let lines: Vec<&str> = help.split_inclusive('\n').collect();
    let Some(global) = lines
        .iter()
        .position(|line| plain(line).trim_end() == "Global options:")
    else {
        return help.to_string();
    };
    // The global options run to the first line that is neither blank nor indented.
    let Some(after) = (global + 1..lines.len()).find(|&at| {
        let text = plain(lines[at]);
        !text.trim().is_empty() && !text.starts_with(' ')
    }) else {
        return help.to_string();
    };
    let mut reordered: Vec<&str> = lines[..global].to_vec();
    reordered.extend(&lines[after..]);
    if !reordered.last().is_some_and(|line| line.ends_with('\n')) {
        reordered.push("\n");
    }
    reordered.push("\n");
    reordered.extend(&lines[global..after]);
    reordered.concat().trim_end().to_string() + "\n"
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// The database: `postgres://…` for PostgreSQL, otherwise a SQLite file path [default: reminders.db]
    #[arg(
        long,
        env = "DATABASE_URL",
        global = true,
        hide_env_values = true,
        value_name = "URL",
        value_parser = non_empty
    )]
    pub database_url: Option<String>,

    /// How to print results
    #[arg(long, value_enum, default_value_t = Format::Table, global = true)]
    pub format: Format,

    /// Print only errors, and why sends failed: nothing for a job that did its work (for cron)
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Say more on stderr: the settings in use and where each came from, and how long each step took
    #[arg(short, long, global = true)]
    pub verbose: bool,

    /// A folder of templates that replace the built-in ones, file by file [default: built in]
    #[arg(
        long,
        hide_env_values = true,
        env = "REMINDERS_TEMPLATES",
        global = true,
        value_name = "DIR"
    )]
    pub templates: Option<std::path::PathBuf>,

    /// Request URL/start before and URL/EXIT_STATUS after a run of send, summary --send or bounces (healthchecks.io); REMINDERS_PING_URL_SEND and REMINDERS_PING_URL_SUMMARY set one per job
    #[arg(
        long,
        env = "REMINDERS_PING_URL",
        global = true,
        hide_env_values = true,
        value_name = "URL",
        value_parser = non_empty
    )]
    pub ping_url: Option<String>,

    /// Run as if the clock read this time (RFC 3339), to check a schedule or replay a day
    #[arg(long, global = true, value_name = "WHEN", value_parser = parse_instant)]
    pub now: Option<DateTime<Utc>>,

    /// Read settings from this file instead of `.env` in the current directory (so a cron line needs no `cd`)
    #[arg(
        long,
        hide_env_values = true,
        env = "REMINDERS_ENV_FILE",
        global = true,
        value_name = "FILE"
    )]
    pub env_file: Option<std::path::PathBuf>,

    /// A PEM file of CA certificates to trust for TLS, besides the system's store
    #[arg(
        long,
        hide_env_values = true,
        env = "REMINDERS_CA_FILE",
        global = true,
        value_name = "FILE"
    )]
    pub ca_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or update the database schema
    #[command(after_help = "Examples:\n  reminders migrate\n  reminders --env-file /etc/reminders/env migrate")]
    Migrate,
    /// Add, import, edit, list, opt out and forget students
    #[command(subcommand)]
    #[command(
        after_help = "Examples:\n  reminders user add --email alice@example.com --timezone America/Los_Angeles\n  reminders user list --format json"
    )]
    User(UserCommand),
    /// Add, list and complete assignments
    #[command(subcommand)]
    #[command(
        after_help = "Examples:\n  reminders assignment add --student alice@example.com --title \"Essay\" --due \"2025-10-01 23:59\"\n  reminders assignment import lms-export.csv --upsert"
    )]
    Assignment(AssignmentCommand),
    /// Add, import, list, unlink and forget guardians: the adults who follow students
    #[command(subcommand)]
    #[command(
        after_help = "Examples:\n  reminders guardian add --student alice@example.com --email pat@example.com --name \"Pat Smith\"\n  reminders guardian list --student alice@example.com --format json"
    )]
    Guardian(GuardianCommand),
    /// Add, import, list, unlink and forget teachers: who teaches which course
    #[command(subcommand)]
    #[command(
        after_help = "Examples:\n  reminders teacher add --course CS101 --email lee@example.com --name \"Dr Lee\"\n  reminders teacher list --course CS101 --format json"
    )]
    Teacher(TeacherCommand),
    /// List the assignments in the reminder windows now (read-only)
    #[command(
        after_help = "Examples:\n  reminders due --unit hours --targets 24,2\n  reminders due --unit minutes --targets 1,2 --now 2025-09-26T22:58:00Z --format json"
    )]
    Due(WindowArgs),
    /// Schedule, claim and email every due reminder
    #[command(
        after_help = "Examples:\n  reminders send --unit hours --targets 24,2\n  reminders -q send --unit hours --targets 24,2 --connections 8 --rate 20\n  reminders send --unit hours --targets 24 --dry-run"
    )]
    Send(SendArgs),
    /// Per-student counts; with --send, email each student's daily summary
    #[command(
        after_help = "Examples:\n  reminders summary --student alice@example.com\n  reminders -q summary --send\n  reminders summary --send --dry-run"
    )]
    Summary(SummaryArgs),
    /// The state of both queues (reminders, daily summaries): pending, retrying, failed, sent, bounced
    #[command(after_help = "Examples:\n  reminders status\n  reminders status --format json")]
    Status,
    /// Put failed reminders and daily summaries back in the queue, attempts reset
    #[command(
        after_help = "Examples:\n  reminders retry --failed --since 2025-09-26T00:00:00Z\n  reminders retry 429f87a3-d6ec-459a-8210-42efaf05d1e6"
    )]
    Retry(RetryArgs),
    /// Delete old send logs and finished reminders and summaries
    #[command(
        after_help = "Examples:\n  reminders prune --older-than 90d --dry-run\n  reminders -q prune --older-than 12w"
    )]
    Prune(PruneArgs),
    /// Check that tonight's cron runs will work: database, mail settings, mail server, templates
    #[command(after_help = "Examples:\n  reminders check\n  reminders --env-file /etc/reminders/env check")]
    Check {
        #[command(flatten)]
        mail: MailArgs,
    },
    /// Check the message templates
    #[command(subcommand)]
    #[command(
        after_help = "Examples:\n  reminders template check\n  reminders template check /etc/reminders/templates"
    )]
    Template(TemplateCommand),
    /// Print a reminder exactly as `send` would send it, headers included; writes nothing
    #[command(after_help = "Examples:\n  reminders preview 429f87a3-d6ec-459a-8210-42efaf05d1e6 --type 24h")]
    Preview(PreviewArgs),
    /// Read bounce reports, complaints and unsubscribe mails, and act on those that prove themselves
    #[command(
        after_help = "Examples:\n  reminders bounces /var/mail/bounces/Maildir\n  reminders -q bounces - --recipient bounces+TOKEN@school.example"
    )]
    Bounces(BouncesArgs),
    /// A course's report: who has not completed what was due lately, and what is due next week
    #[command(
        after_help = "Examples:\n  reminders report --course CS101\n  reminders report --course CS101 --since 14d --format csv > cs101.csv\n  reminders report --course CS101 --format json"
    )]
    Report(ReportArgs),
    /// Serve the preferences page as a CGI program (RFC 3875): the web server runs it once per request
    #[command(
        after_help = "Examples:\n  reminders --env-file /etc/reminders/env cgi --unit hours --targets 24,2 --overdue 24,72\n  REQUEST_METHOD=GET QUERY_STRING=token=TOKEN reminders cgi --unit hours --targets 24"
    )]
    Cgi(CgiArgs),
    /// Print a shell completion script
    #[command(
        after_help = "Examples:\n  reminders completions bash > /etc/bash_completion.d/reminders\n  reminders completions zsh > ~/.zfunc/_reminders"
    )]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print one complete man page (roff), or write a page per command into a folder
    #[command(after_help = "Examples:\n  reminders man | man -l -\n  reminders man --dir /usr/local/share/man/man1")]
    Man {
        /// Write reminders.1 and a page per subcommand (reminders-send.1, …) here, creating it
        #[arg(long, value_name = "DIR")]
        dir: Option<std::path::PathBuf>,
    },
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("which").required(true).args(["failed", "ids"]))]
pub struct RetryArgs {
    /// Every failed reminder and daily summary (narrow it with --since and --student)
    #[arg(long)]
    pub failed: bool,
    /// With --failed: only those that failed at or after this time
    #[arg(long, value_name = "WHEN", requires = "failed", value_parser = parse_instant)]
    pub since: Option<DateTime<Utc>>,
    /// With --failed: only this student's
    #[arg(long, value_name = "EMAIL", requires = "failed", value_parser = Email::parse)]
    pub student: Option<Email>,
    /// These reminders or daily summaries, by id
    #[arg(value_name = "ID", conflicts_with = "failed", value_parser = queue_id)]
    pub ids: Vec<Id>,
}

/// What the preferences page offers: the reminder types `send` sends.
#[derive(Debug, Args)]
pub struct CgiArgs {
    /// Whether targets count minutes (test mode) or hours, as `send` is given
    #[arg(long, value_enum)]
    pub unit: Unit,
    /// The lead times `send` is given (`24,2`): each is a reminder type the page offers (`24h`, `2h`)
    #[arg(long, value_name = "N,N,…")]
    pub targets: String,
    /// The overdue steps `send` is given (`24,72`): each is a reminder type the page offers (`overdue-24h`)
    #[arg(long, value_name = "N,N,…", env = "REMINDERS_OVERDUE", hide_env_values = true, value_parser = non_empty)]
    pub overdue: Option<String>,
    /// The types `send --required-types` sends to everyone: the page shows them on, and they cannot be unticked
    #[arg(long, value_name = "TYPE,TYPE,…", env = "REMINDERS_REQUIRED_TYPES", hide_env_values = true, value_parser = non_empty)]
    pub required_types: Option<String>,
    #[command(flatten)]
    pub secret: SecretArgs,
}

#[derive(Debug, Args)]
pub struct BouncesArgs {
    /// A Maildir folder, an mbox file, one message file, or `-` for one message on stdin
    #[arg(value_name = "SOURCE", required = true)]
    pub sources: Vec<String>,
    /// The address a report on stdin was delivered to (Postfix pipe: `${original_recipient}`)
    #[arg(long, value_name = "ADDRESS")]
    pub recipient: Option<String>,
    /// Reports larger than this many bytes are not read (counted unrecognised)
    #[arg(long, value_name = "BYTES", default_value_t = crate::bounces::source::DEFAULT_MAX_MESSAGE_BYTES,
          value_parser = clap::value_parser!(u64).range(1_000..))]
    pub max_size: u64,
    /// The plain bounce address that `send` puts in the Return-Path (VERP)
    #[arg(
        long,
        hide_env_values = true,
        env = "REMINDERS_BOUNCE_ADDRESS",
        value_name = "ADDRESS",
        value_parser = non_empty
    )]
    pub bounce_address: Option<String>,
    #[command(flatten)]
    pub secret: SecretArgs,
}

#[derive(Debug, Subcommand)]
pub enum TemplateCommand {
    /// Render every template against sample data; report the first error (exit 2)
    #[command(
        after_help = "Examples:\n  reminders template check\n  reminders template check /etc/reminders/templates"
    )]
    Check {
        /// The folder to check [default: --templates, REMINDERS_TEMPLATES, or the built-in set]
        dir: Option<std::path::PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// The assignment's id
    #[arg(value_parser = assignment_id)]
    pub assignment_id: Id,
    /// The reminder type, such as 24h, 2h or 2m
    #[arg(long = "type", default_value = "24h", value_name = "TYPE")]
    pub reminder_type: String,
    #[command(flatten)]
    pub sender: SenderArgs,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The course, as its assignments name it (such as CS101)
    #[arg(long, value_name = "CODE", value_parser = course, required = true)]
    pub course: String,
    /// Report the assignments due in this long before now: `7d`, `2w`, `36h` (1h to 365d)
    #[arg(long, default_value = "7d", value_name = "DURATION", value_parser = duration_between(Duration::hours(1), Duration::days(365)))]
    pub since: Duration,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Delete what is older than this: `90d`, `12w`, `36h` (0s to 36500d; under a day needs --force)
    #[arg(long, value_name = "DURATION", value_parser = duration_between(Duration::zero(), Duration::days(36_500)))]
    pub older_than: Duration,
    /// Count what would be deleted, and delete nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Allow a cut-off under a day (`30min` is easy to mistype for a month)
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct SummaryArgs {
    /// Only this student
    #[arg(long, value_name = "EMAIL", value_parser = Email::parse)]
    pub student: Option<Email>,
    /// Email today's summary to every student whose local summary hour has come
    #[arg(long)]
    pub send: bool,
    /// With --send: show who would get a summary, and write and send nothing
    #[arg(long, requires = "send")]
    pub dry_run: bool,
    #[command(flatten)]
    pub send_window: SendWindowArgs,
    #[command(flatten)]
    pub delivery: DeliveryArgs,
}

/// Which reminders are due: the windows `[now + N - T, now + N + T]`.
#[derive(Debug, Args)]
pub struct WindowArgs {
    /// Whether targets count minutes (test mode) or hours
    #[arg(long, value_enum)]
    pub unit: Unit,
    /// Lead times before the due time, such as `24,2`, each at most a year (8760 hours, 525600 minutes); each
    /// gives a reminder type (`24h`, `2h`)
    #[arg(long, value_name = "N,N,…")]
    pub targets: String,
    /// Overdue steps after the due time, such as `24,72`, for work not completed and before its cut-off; each
    /// gives a reminder type (`overdue-24h`) with its own templates (overdue_*.txt)
    #[arg(long, value_name = "N,N,…", env = "REMINDERS_OVERDUE", hide_env_values = true, value_parser = non_empty)]
    pub overdue: Option<String>,
    /// Half-width T of each window, in minutes, 0 to 1440 [default: 1 in minutes mode, 30 in hours mode]
    #[arg(long, value_name = "MINUTES", value_parser = clap::value_parser!(u32).range(0..=1440))]
    pub tolerance: Option<u32>,
    #[command(flatten)]
    pub send_window: SendWindowArgs,
}

/// When messages may reach people, on their own clocks.
#[derive(Debug, Args)]
pub struct SendWindowArgs {
    /// Hours, in each person's zone, in which messages may reach them, such as `mon-fri 07:00-21:00; sat,sun
    /// 09:00-20:00` (a person's own, from `user set --send-window`, wins) [default: always]
    #[arg(long = "send-window", value_name = "SPEC", env = "REMINDERS_SEND_WINDOW", hide_env_values = true,
          value_parser = SendWindow::parse)]
    pub default: Option<SendWindow>,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    #[command(flatten)]
    pub window: WindowArgs,
    /// Show what would be sent, and write and send nothing
    #[arg(long)]
    pub dry_run: bool,
    /// How late a reminder may still go out, 0s to 365d [default: half its lead time]
    #[arg(long, value_name = "DURATION", value_parser = duration_between(Duration::zero(), Duration::days(365)))]
    pub delivery_window: Option<Duration>,
    /// One message per student for all the reminders this run sends them (templates digest_*.txt)
    #[arg(long, hide_env_values = true, env = "REMINDERS_DIGEST")]
    pub digest: bool,
    /// Reminder types that reach every student whatever they muted, such as `overdue`
    #[arg(long, value_name = "TYPE,TYPE,…", env = "REMINDERS_REQUIRED_TYPES", hide_env_values = true, value_parser = non_empty)]
    pub required_types: Option<String>,
    /// Copy each overdue step of N or more (in --unit) to the student's guardians, as a message of its own
    /// (templates escalation_*.txt)
    #[arg(long, value_name = "N", env = "REMINDERS_ESCALATE_AFTER", hide_env_values = true, requires = "overdue",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub escalate_after: Option<u32>,
    #[command(flatten)]
    pub delivery: DeliveryArgs,
}

/// How messages go out; shared by `send` and `summary --send`.
#[derive(Debug, Args)]
pub struct DeliveryArgs {
    /// Attempts before a message that keeps failing is marked failed (1 to 100)
    #[arg(long, default_value_t = DEFAULT_MAX_ATTEMPTS, value_name = "N", value_parser = clap::value_parser!(i32).range(1..=100))]
    pub max_attempts: i32,
    /// Messages claimed per database round trip (1 to 10000)
    #[arg(long, default_value_t = 500, value_name = "N", value_parser = clap::value_parser!(i64).range(1..=10_000))]
    pub batch_size: i64,
    /// SMTP connections used in parallel (1 to 64)
    #[arg(long, default_value_t = 4, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub connections: u32,
    /// How long a claim lasts unless the run renews it, which it does every third of it (2s to 1d; at least 2s so renewals fit between sends)
    #[arg(long, default_value = "5m", value_name = "DURATION", value_parser = duration_between(Duration::seconds(2), Duration::days(1)))]
    pub lease: Duration,
    /// The first retry's wait after a transient failure; it doubles per attempt up to an hour (0s to 1h)
    #[arg(long, default_value = "1m", value_name = "DURATION", value_parser = duration_between(Duration::zero(), Duration::hours(1)))]
    pub backoff: Duration,
    /// How long to wait for the SMTP server before calling the attempt failed (1s to 1h)
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = duration_between(Duration::seconds(1), Duration::hours(1)))]
    pub smtp_timeout: Duration,
    /// At most this many messages across all connections: N a second, or N/min, N/h (1 to 100000; 30/min
    /// for Microsoft 365)
    #[arg(long, hide_env_values = true, env = "REMINDERS_RATE", value_name = "N[/s|/min|/h]", value_parser = parse_rate)]
    pub rate: Option<Rate>,
    /// At most N messages a UTC day (or --cap-window), counted across runs and hosts; the rest stay queued,
    /// nearest deadline first (10000 for Microsoft 365)
    #[arg(long, value_name = "N", env = "REMINDERS_DAILY_CAP", hide_env_values = true, value_parser = clap::value_parser!(u32).range(1..))]
    pub daily_cap: Option<u32>,
    /// The window --daily-cap counts in, from midnight UTC, 1m to 366d [default: 1d]
    #[arg(long, value_name = "DURATION", env = "REMINDERS_CAP_WINDOW", hide_env_values = true, requires = "daily_cap",
          value_parser = duration_between(Duration::minutes(1), Duration::days(366)))]
    pub cap_window: Option<Duration>,
    /// At most this many messages in this run (1 or more); the rest stay queued for the next
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: Option<u64>,
    #[command(flatten)]
    pub mail: MailArgs,
}

/// Where mail goes and who it is from.
#[derive(Debug, Clone, Args)]
pub struct MailArgs {
    /// smtp://host:port, smtp://user:pass@host:587?tls=required, smtps://host, or file://DIR
    #[arg(long, env = "SMTP_URL", hide_env_values = true, value_name = "URL", value_parser = non_empty)]
    pub smtp_url: Option<String>,
    /// The SMTP password, kept out of SMTP_URL (which then names only the user); prefer the file
    #[arg(
        long,
        env = "SMTP_PASSWORD",
        hide_env_values = true,
        value_name = "PASSWORD",
        hide = true,
        value_parser = non_empty
    )]
    pub smtp_password: Option<String>,
    /// A file holding the SMTP password (its last line break is not part of it)
    // Text, not a path: an empty value (`VAR=` in `.env`) means unset.
    #[arg(
        long,
        hide_env_values = true,
        env = "SMTP_PASSWORD_FILE",
        value_name = "FILE",
        conflicts_with = "smtp_password",
        value_parser = non_empty
    )]
    pub smtp_password_file: Option<String>,
    /// With `auth=xoauth2`, Microsoft 365: the tenant id or domain (its token endpoint)
    #[arg(long, hide_env_values = true, env = "SMTP_OAUTH_TENANT", value_name = "TENANT", value_parser = non_empty)]
    pub smtp_oauth_tenant: Option<String>,
    /// With `auth=xoauth2`: the application (client) id
    #[arg(long, hide_env_values = true, env = "SMTP_OAUTH_CLIENT_ID", value_name = "ID", value_parser = non_empty)]
    pub smtp_oauth_client_id: Option<String>,
    /// With `auth=xoauth2`: the application's client secret (prefer the file)
    #[arg(
        long,
        env = "SMTP_OAUTH_CLIENT_SECRET",
        hide_env_values = true,
        value_name = "SECRET",
        value_parser = non_empty
    )]
    pub smtp_oauth_client_secret: Option<String>,
    /// With `auth=xoauth2`: a file holding the client secret
    // Text, not a path: an empty value (`VAR=` in `.env`) means unset.
    #[arg(
        long,
        hide_env_values = true,
        env = "SMTP_OAUTH_CLIENT_SECRET_FILE",
        value_name = "FILE",
        value_parser = non_empty
    )]
    pub smtp_oauth_client_secret_file: Option<String>,
    /// With `auth=xoauth2`, Google Workspace: the service account's JSON key file
    #[arg(
        long,
        hide_env_values = true,
        env = "SMTP_OAUTH_SERVICE_ACCOUNT",
        value_name = "FILE",
        value_parser = non_empty
    )]
    pub smtp_oauth_service_account: Option<String>,
    /// With `auth=xoauth2`: the token endpoint, instead of the tenant's or the key file's
    #[arg(long, hide_env_values = true, env = "SMTP_OAUTH_TOKEN_URL", value_name = "URL", value_parser = non_empty)]
    pub smtp_oauth_token_url: Option<String>,
    /// With `auth=xoauth2`: the scope asked for, instead of the provider's
    #[arg(long, hide_env_values = true, env = "SMTP_OAUTH_SCOPE", value_name = "SCOPE", value_parser = non_empty)]
    pub smtp_oauth_scope: Option<String>,
    #[command(flatten)]
    pub sender: SenderArgs,
}

/// Who messages are from, and where replies go.
#[derive(Debug, Clone, Args)]
pub struct SenderArgs {
    /// The sender, such as `Reminders <noreply@school.example>`
    #[arg(long, hide_env_values = true, env = "MAIL_FROM", value_name = "MAILBOX", value_parser = non_empty)]
    pub mail_from: Option<String>,
    /// Where replies go (the Reply-To header), such as `School office <office@school.example>`
    #[arg(long, hide_env_values = true, env = "REMINDERS_REPLY_TO", value_name = "MAILBOX", value_parser = non_empty)]
    pub reply_to: Option<String>,
    /// Bounces come back here: each message's envelope sender becomes `LOCAL+TOKEN@DOMAIN` (VERP); needs REMINDERS_SECRET
    #[arg(
        long,
        hide_env_values = true,
        env = "REMINDERS_BOUNCE_ADDRESS",
        value_name = "ADDRESS",
        value_parser = non_empty
    )]
    pub bounce_address: Option<String>,
    /// Every message offers unsubscribing by mail to this address (List-Unsubscribe); needs REMINDERS_SECRET
    #[arg(
        long,
        hide_env_values = true,
        env = "REMINDERS_UNSUBSCRIBE_MAILTO",
        value_name = "ADDRESS",
        value_parser = non_empty
    )]
    pub unsubscribe_mailto: Option<String>,
    /// Every message offers this one-click unsubscribe link (RFC 8058); it must hold `{token}`; needs REMINDERS_SECRET
    #[arg(long, hide_env_values = true, env = "REMINDERS_UNSUBSCRIBE_URL", value_name = "URL", value_parser = non_empty)]
    pub unsubscribe_url: Option<String>,
    /// The preferences page (`reminders cgi`), with `{token}`: every message's footer links to it, and it is the
    /// one-click List-Unsubscribe link (RFC 8058); not with --unsubscribe-url; needs REMINDERS_SECRET
    #[arg(long, hide_env_values = true, env = "REMINDERS_PREFERENCES_URL", value_name = "URL", value_parser = non_empty)]
    pub preferences_url: Option<String>,
    /// Sign every message with DKIM, with this RSA private key (PEM)
    #[arg(
        long,
        hide_env_values = true,
        env = "REMINDERS_DKIM_KEY",
        value_name = "FILE",
        requires = "dkim_selector"
    )]
    pub dkim_key: Option<std::path::PathBuf>,
    /// The DKIM selector: the public key is published at SELECTOR._domainkey.DOMAIN (`check` prints it)
    #[arg(
        long,
        hide_env_values = true,
        env = "REMINDERS_DKIM_SELECTOR",
        value_name = "NAME",
        requires = "dkim_key",
        value_parser = non_empty
    )]
    pub dkim_selector: Option<String>,
    #[command(flatten)]
    pub secret: SecretArgs,
}

/// The key of every token (VERP, unsubscribe, Message-ID).
#[derive(Debug, Clone, Args)]
pub struct SecretArgs {
    /// A long random string that keys the bounce and unsubscribe tokens; keep it in .env, never on a command line
    #[arg(
        long = "secret",
        env = "REMINDERS_SECRET",
        hide_env_values = true,
        value_name = "SECRET",
        hide = true,
        value_parser = non_empty
    )]
    pub value: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a student
    #[command(
        after_help = "Examples:\n  reminders user add --email alice@example.com --name Alice --timezone America/Los_Angeles"
    )]
    Add(UserAddArgs),
    /// List students
    #[command(after_help = "Examples:\n  reminders user list\n  reminders user list --format json")]
    List,
    /// Stop all email to a student
    #[command(group = clap::ArgGroup::new("who").required(true).args(["email", "token"]))]
    #[command(
        after_help = "Examples:\n  reminders user opt-out alice@example.com\n  reminders user opt-out --token TOKEN"
    )]
    OptOut {
        /// The student's email
        #[arg(value_parser = Email::parse)]
        email: Option<Email>,
        /// The student's unsubscribe token (from their List-Unsubscribe link), for an unsubscribe endpoint
        #[arg(long, value_name = "TOKEN")]
        token: Option<String>,
        #[command(flatten)]
        secret: SecretArgs,
    },
    /// Resume email to a student
    #[command(after_help = "Examples:\n  reminders user opt-in alice@example.com")]
    OptIn {
        /// The student's email
        #[arg(value_parser = Email::parse)]
        email: Email,
    },
    /// Set a student's daily-summary preferences
    #[command(
        after_help = "Examples:\n  reminders user set alice@example.com --summary-hour 18\n  reminders user set bob@example.com --daily-summary off"
    )]
    Set(UserSetArgs),
    /// Change a student's email, name or time zone
    #[command(
        after_help = "Examples:\n  reminders user edit alice@example.com --email alice.b@example.com\n  reminders user edit alice@example.com --timezone Europe/Paris --name \"Alice B\""
    )]
    Edit(UserEditArgs),
    /// Remove a student with their assignments and reminders (their send logs stay, unlinked)
    #[command(after_help = "Examples:\n  reminders user remove alice@example.com")]
    Remove {
        /// The student's email
        #[arg(value_parser = Email::parse)]
        email: Email,
    },
    /// Erase a student on request: everything that names them, and their address from the logs
    #[command(
        after_help = "Examples:\n  reminders user forget alice@example.com\n  reminders user forget alice@example.com --yes"
    )]
    Forget {
        /// The student's email
        #[arg(value_parser = Email::parse)]
        email: Email,
        /// Do not ask for confirmation (needed when not on a terminal)
        #[arg(long)]
        yes: bool,
        /// With file://DIR, the student's .eml files in that outbox are removed too
        #[arg(long, env = "SMTP_URL", hide_env_values = true, value_name = "URL", value_parser = non_empty)]
        smtp_url: Option<String>,
        /// Keep their guardians who follow no one else (by default they are erased too)
        #[arg(long)]
        keep_guardians: bool,
    },
    /// Add students in bulk from CSV (email,name,timezone; optional locale,types,mute,summary,summary_weekday,max_per_day) or JSON Lines
    #[command(
        after_help = "Examples:\n  reminders user import students.csv\n  cat students.jsonl | reminders user import - --input-format jsonl"
    )]
    Import(ImportArgs),
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("change").required(true).multiple(true).args(["new_email", "name", "timezone"]))]
pub struct UserEditArgs {
    /// The student's current email
    #[arg(value_parser = Email::parse)]
    pub email: Email,
    /// A new email address
    #[arg(long = "email", value_name = "EMAIL", value_parser = Email::parse)]
    pub new_email: Option<Email>,
    /// A new name (`''` removes it)
    #[arg(long, value_parser = name)]
    pub name: Option<String>,
    /// A new IANA time zone
    #[arg(long, value_name = "TZ", value_parser = parse_timezone)]
    pub timezone: Option<chrono_tz::Tz>,
    /// Accept an address whose domain has no dot (`frank@school`), for mail delivered inside the school
    #[arg(long)]
    pub allow_local_domains: bool,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The file to read, or `-` for stdin
    pub file: String,
    /// The file's format [default: from the extension: .csv, or .jsonl/.ndjson]
    #[arg(long, value_enum)]
    pub input_format: Option<InputFormat>,
    /// Skip rows that exist already, so a re-run of the same file changes nothing
    #[arg(long)]
    pub skip_existing: bool,
    /// Accept an address whose domain has no dot (`frank@school`), for mail delivered inside the school
    #[arg(long)]
    pub allow_local_domains: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    /// Comma-separated values with a header row
    Csv,
    /// One JSON object per line
    Jsonl,
    /// An iCalendar feed (.ics), for one student (`--student`)
    Ics,
}

#[derive(Debug, Args)]
pub struct AssignmentImportArgs {
    /// The file to read, `-` for stdin, or an iCalendar feed's https:// URL
    pub file: String,
    /// The file's format [default: from the extension: .csv, .jsonl/.ndjson or .ics; ics for a URL]
    #[arg(long, value_enum)]
    pub input_format: Option<InputFormat>,
    /// Skip rows that exist already, so a re-run of the same file changes nothing
    #[arg(long, conflicts_with = "upsert")]
    pub skip_existing: bool,
    /// Match each row on (student, external_id): update a match, insert the rest
    #[arg(long)]
    pub upsert: bool,
    /// Whose feed it is (iCalendar only; a feed is always upserted on its UIDs)
    #[arg(long, value_name = "EMAIL", value_parser = Email::parse)]
    pub student: Option<Email>,
    /// Remove the student's assignments from the same feed that it no longer lists (iCalendar only)
    #[arg(long, requires = "student")]
    pub remove_missing: bool,
    /// The name the feed is known by for --remove-missing (iCalendar only) [default: the file's canonical path, or the URL with its secret part hashed; required for stdin]
    #[arg(long, value_name = "NAME", requires = "student")]
    pub feed: Option<String>,
    /// How far ahead a recurring event's occurrences are read (iCalendar only): `180d`, `26w` (1d to 3660d)
    #[arg(long, default_value = "180d", value_name = "DURATION",
          value_parser = duration_between(Duration::days(1), Duration::days(3_660)))]
    pub horizon: Duration,
}

#[derive(Debug, Args)]
pub struct UserSetArgs {
    /// The student's email
    #[arg(value_parser = Email::parse)]
    pub email: Email,
    /// The local hour (0-23) at which the daily summary goes out [default: 7]
    #[arg(long, value_name = "HOUR", value_parser = clap::value_parser!(i32).range(0..=23))]
    pub summary_hour: Option<i32>,
    /// Whether the student gets a daily summary [default: on]
    #[arg(long, value_enum, value_name = "on|off", conflicts_with = "summary")]
    pub daily_summary: Option<Switch>,
    /// How often the summary goes out: every day, once a week (on --summary-weekday), or never [default: daily]
    #[arg(long, value_enum)]
    pub summary: Option<SummaryFrequency>,
    /// The day of a weekly summary: mon to sun [default: mon]
    #[arg(long, value_name = "DAY", value_parser = parse_weekday)]
    pub summary_weekday: Option<chrono::Weekday>,
    /// Only these reminder types reach the student, such as `24h,overdue` (`overdue`: every overdue step;
    /// `all` for every type again)
    #[arg(long, value_name = "TYPE,TYPE,…")]
    pub types: Option<String>,
    /// At most N messages a local day: past it, a run's reminders for the student go as one digest (0: no limit)
    #[arg(long, value_name = "N")]
    pub max_per_day: Option<String>,
    /// These reminder types do not reach the student, such as `2h` (`none` to mute nothing again)
    #[arg(long, value_name = "TYPE,TYPE,…")]
    pub mute: Option<String>,
    /// Their language, BCP 47 (`fr`, `fr-CA`, `es`): the templates and the dates of their messages (`none`: English)
    #[arg(long, value_name = "LANG")]
    pub locale: Option<String>,
    /// Their own send window, on their clock, such as `mon-fri 16:00-20:00` (`always`: the run's
    /// --send-window again)
    #[arg(long, value_name = "SPEC")]
    pub send_window: Option<String>,
}

/// `user set --summary`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SummaryFrequency {
    Daily,
    Weekly,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    On,
    Off,
}

#[derive(Debug, Args)]
pub struct UserAddArgs {
    /// The student's email address (stored trimmed and lower-cased)
    #[arg(long, value_parser = Email::parse)]
    pub email: Email,
    /// The student's name
    #[arg(long, value_parser = name)]
    pub name: Option<String>,
    /// An IANA time zone, such as America/Los_Angeles [default: UTC]
    #[arg(long, value_name = "TZ", value_parser = parse_timezone)]
    pub timezone: Option<chrono_tz::Tz>,
    /// Their language, BCP 47 (`fr`, `fr-CA`, `es`): the templates and the dates of their messages [default:
    /// English]
    #[arg(long, value_name = "LANG")]
    pub locale: Option<String>,
    /// Accept an address whose domain has no dot (`frank@school`), for mail delivered inside the school
    #[arg(long)]
    pub allow_local_domains: bool,
}

#[derive(Debug, Subcommand)]
pub enum GuardianCommand {
    /// Make someone a guardian of a student; a guardian already here is linked, and the fields given are set
    #[command(
        after_help = "Examples:\n  reminders guardian add --student alice@example.com --email pat@example.com --name \"Pat Smith\"\n  reminders guardian add --student alice@example.com --email pat@example.com --frequency weekly --weekday fri --hour 17"
    )]
    Add(GuardianAddArgs),
    /// Add or update guardians in bulk from CSV (student,email,name,timezone,frequency,weekday,hour,locale) or JSON Lines
    #[command(
        after_help = "Examples:\n  reminders guardian import guardians.csv\n  cat guardians.jsonl | reminders guardian import - --input-format jsonl"
    )]
    Import(GuardianImportArgs),
    /// List guardians with the students they follow
    #[command(
        after_help = "Examples:\n  reminders guardian list\n  reminders guardian list --student alice@example.com --format json"
    )]
    List {
        /// Only the guardians of this student
        #[arg(long, value_name = "EMAIL", value_parser = Email::parse)]
        student: Option<Email>,
    },
    /// Stop a guardian following a student (a guardian who then follows no one stays, listed)
    #[command(
        after_help = "Examples:\n  reminders guardian remove --student alice@example.com --email pat@example.com"
    )]
    Remove {
        /// The student's email
        #[arg(long, value_name = "EMAIL", value_parser = Email::parse)]
        student: Email,
        /// The guardian's email
        #[arg(long, value_name = "EMAIL", value_parser = Email::parse)]
        email: Email,
    },
    /// Erase a guardian on request, with every link to a student
    #[command(
        after_help = "Examples:\n  reminders guardian forget pat@example.com\n  reminders guardian forget pat@example.com --yes"
    )]
    Forget {
        /// The guardian's email
        #[arg(value_parser = Email::parse)]
        email: Email,
        /// Do not ask for confirmation (needed when not on a terminal)
        #[arg(long)]
        yes: bool,
        /// With file://DIR, the guardian's .eml files in that outbox are removed too
        #[arg(long, env = "SMTP_URL", hide_env_values = true, value_name = "URL", value_parser = non_empty)]
        smtp_url: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct GuardianAddArgs {
    /// The email of the student they follow
    #[arg(long, value_name = "EMAIL", value_parser = Email::parse)]
    pub student: Email,
    /// The guardian's email address (stored trimmed and lower-cased)
    #[arg(long, value_parser = Email::parse)]
    pub email: Email,
    /// The guardian's name (`''` removes it)
    #[arg(long, value_parser = name)]
    pub name: Option<String>,
    /// An IANA time zone, such as Europe/Paris [default: the student's]
    #[arg(long, value_name = "TZ", value_parser = parse_timezone)]
    pub timezone: Option<chrono_tz::Tz>,
    /// How often they want to hear about the student's work [default: daily]
    #[arg(long, value_name = "daily|weekly|off", value_parser = frequency())]
    pub frequency: Option<DigestFrequency>,
    /// The day for `weekly`: mon, tue, wed, thu, fri, sat or sun [default: mon]
    #[arg(long, value_name = "DAY", value_parser = parse_weekday)]
    pub weekday: Option<chrono::Weekday>,
    /// The local hour (0-23), in their time zone [default: 18]
    #[arg(long, value_name = "HOUR", value_parser = clap::value_parser!(i32).range(0..=23))]
    pub hour: Option<i32>,
    /// Their language, BCP 47 (`fr`, `fr-CA`, `es`): the templates and the dates of their messages (`''` removes it) [default:
    /// English]
    #[arg(long, value_name = "LANG")]
    pub locale: Option<String>,
    /// Their own send window, on their clock, such as `mon-fri 17:00-21:00` (`always`: the run's
    /// --send-window again)
    #[arg(long, value_name = "SPEC")]
    pub send_window: Option<String>,
    /// Accept an address whose domain has no dot (`frank@school`), for mail delivered inside the school
    #[arg(long)]
    pub allow_local_domains: bool,
}

#[derive(Debug, Args)]
pub struct GuardianImportArgs {
    /// The file to read, or `-` for stdin
    pub file: String,
    /// The file's format [default: from the extension: .csv, or .jsonl/.ndjson]
    #[arg(long, value_enum)]
    pub input_format: Option<InputFormat>,
    /// Accept an address whose domain has no dot (`frank@school`), for mail delivered inside the school
    #[arg(long)]
    pub allow_local_domains: bool,
}

#[derive(Debug, Subcommand)]
pub enum TeacherCommand {
    /// Make someone a teacher of a course; a teacher already here is linked, and the fields given are set
    #[command(
        after_help = "Examples:\n  reminders teacher add --course CS101 --email lee@example.com --name \"Dr Lee\"\n  reminders teacher add --course CS101 --email lee@example.com --timezone Europe/Paris --weekday thu --hour 9"
    )]
    Add(TeacherAddArgs),
    /// Add or update teachers in bulk from CSV (course,email,name,timezone,weekday,hour,locale) or JSON Lines
    #[command(
        after_help = "Examples:\n  reminders teacher import teachers.csv\n  cat teachers.jsonl | reminders teacher import - --input-format jsonl"
    )]
    Import(TeacherImportArgs),
    /// List teachers with the courses they teach
    #[command(
        after_help = "Examples:\n  reminders teacher list\n  reminders teacher list --course CS101 --format json"
    )]
    List {
        /// Only the teachers of this course
        #[arg(long, value_name = "CODE", value_parser = required_course)]
        course: Option<String>,
    },
    /// Stop a teacher teaching a course (a teacher who then teaches nothing stays, listed)
    #[command(after_help = "Examples:\n  reminders teacher remove --course CS101 --email lee@example.com")]
    Remove {
        /// The course's code
        #[arg(long, value_name = "CODE", value_parser = required_course)]
        course: String,
        /// The teacher's email
        #[arg(long, value_name = "EMAIL", value_parser = Email::parse)]
        email: Email,
    },
    /// Erase a teacher on request, with every link to a course
    #[command(
        after_help = "Examples:\n  reminders teacher forget lee@example.com\n  reminders teacher forget lee@example.com --yes"
    )]
    Forget {
        /// The teacher's email
        #[arg(value_parser = Email::parse)]
        email: Email,
        /// Do not ask for confirmation (needed when not on a terminal)
        #[arg(long)]
        yes: bool,
        /// With file://DIR, the teacher's .eml files in that outbox are removed too
        #[arg(long, env = "SMTP_URL", hide_env_values = true, value_name = "URL", value_parser = non_empty)]
        smtp_url: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct TeacherAddArgs {
    /// The code of the course they teach, as assignments name it (such as CS101)
    #[arg(long, value_name = "CODE", value_parser = required_course)]
    pub course: String,
    /// The teacher's email address (stored trimmed and lower-cased)
    #[arg(long, value_parser = Email::parse)]
    pub email: Email,
    /// The teacher's name (`''` removes it)
    #[arg(long, value_parser = name)]
    pub name: Option<String>,
    /// An IANA time zone, such as Europe/Paris [default: UTC]
    #[arg(long, value_name = "TZ", value_parser = parse_timezone)]
    pub timezone: Option<chrono_tz::Tz>,
    /// The day of their weekly report: mon, tue, wed, thu, fri, sat or sun [default: fri]
    #[arg(long, value_name = "DAY", value_parser = parse_weekday)]
    pub weekday: Option<chrono::Weekday>,
    /// The local hour (0-23) of their weekly report, in their time zone [default: 16]
    #[arg(long, value_name = "HOUR", value_parser = clap::value_parser!(i32).range(0..=23))]
    pub hour: Option<i32>,
    /// Their language, BCP 47 (`fr`, `fr-CA`, `es`): the templates and the dates of their messages (`''` removes it) [default:
    /// English]
    #[arg(long, value_name = "LANG")]
    pub locale: Option<String>,
    /// Accept an address whose domain has no dot (`frank@school`), for mail delivered inside the school
    #[arg(long)]
    pub allow_local_domains: bool,
}

#[derive(Debug, Args)]
pub struct TeacherImportArgs {
    /// The file to read, or `-` for stdin
    pub file: String,
    /// The file's format [default: from the extension: .csv, or .jsonl/.ndjson]
    #[arg(long, value_enum)]
    pub input_format: Option<InputFormat>,
    /// Accept an address whose domain has no dot (`frank@school`), for mail delivered inside the school
    #[arg(long)]
    pub allow_local_domains: bool,
}

#[derive(Debug, Subcommand)]
pub enum AssignmentCommand {
    /// Add an assignment for a student
    #[command(
        after_help = "Examples:\n  reminders assignment add --student alice@example.com --title \"Problem set 1\" --due \"2025-09-27 16:00\"\n  reminders assignment add --student alice@example.com --title Lab --due 2025-10-02T12:00:00Z --external-id canvas-345"
    )]
    Add(AssignmentAddArgs),
    /// List assignments, due times in each student's zone
    #[command(
        after_help = "Examples:\n  reminders assignment list\n  reminders assignment list --student alice@example.com --format json"
    )]
    List {
        /// Only this student's assignments
        #[arg(long, value_name = "EMAIL", value_parser = Email::parse)]
        student: Option<Email>,
    },
    /// Mark an assignment completed, which stops its reminders
    #[command(after_help = "Examples:\n  reminders assignment complete 429f87a3-d6ec-459a-8210-42efaf05d1e6")]
    Complete {
        /// The assignment's id
        #[arg(value_parser = assignment_id)]
        id: Id,
    },
    /// Change an assignment; a new due time reschedules its reminders
    #[command(
        after_help = "Examples:\n  reminders assignment edit 429f87a3-d6ec-459a-8210-42efaf05d1e6 --due \"2025-09-29 16:00\"\n  reminders assignment edit 429f87a3-d6ec-459a-8210-42efaf05d1e6 --metadata null"
    )]
    Edit(AssignmentEditArgs),
    /// Remove an assignment and its reminders (its send logs stay, unlinked)
    #[command(after_help = "Examples:\n  reminders assignment remove 429f87a3-d6ec-459a-8210-42efaf05d1e6")]
    Remove {
        /// The assignment's id
        #[arg(value_parser = assignment_id)]
        id: Id,
    },
    /// Add or update assignments in bulk from CSV (student,title,due,description,metadata,external_id,completed,cutoff,course),
    /// JSON Lines, or a student's iCalendar feed
    #[command(
        after_help = "Examples:\n  reminders assignment import work.csv --skip-existing\n  reminders assignment import lms-export.csv --upsert\n  reminders assignment import \"https://canvas.school.edu/feeds/calendars/user_….ics\" --student alice@example.com --remove-missing"
    )]
    Import(AssignmentImportArgs),
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("change").required(true).multiple(true)
    .args(["title", "due", "description", "metadata", "external_id", "cutoff", "course"]))]
pub struct AssignmentEditArgs {
    /// The assignment's id
    #[arg(value_parser = assignment_id)]
    pub id: Id,
    /// A new title
    #[arg(long, value_parser = parse_title)]
    pub title: Option<String>,
    /// A new due time: RFC 3339 or local `YYYY-MM-DD HH:MM` in the student's zone
    #[arg(long, value_name = "WHEN")]
    pub due: Option<String>,
    /// A new description (`''` removes it)
    #[arg(long, value_parser = description)]
    pub description: Option<String>,
    /// A new JSON object, in place of the old (`null` removes it)
    #[arg(long, value_name = "JSON", value_parser = metadata_or_null)]
    pub metadata: Option<serde_json::Value>,
    /// A new external id (`''` removes it)
    #[arg(long, value_name = "ID", value_parser = external_id_or_empty)]
    pub external_id: Option<String>,
    /// A new cut-off, read as --due, at or after the due time (`''` removes it)
    #[arg(long, value_name = "WHEN")]
    pub cutoff: Option<String>,
    /// A new course (`''` removes it)
    #[arg(long, value_name = "CODE", value_parser = course)]
    pub course: Option<String>,
}

#[derive(Debug, Args)]
pub struct AssignmentAddArgs {
    /// The student's email
    #[arg(long, value_name = "EMAIL", value_parser = Email::parse)]
    pub student: Email,
    /// The assignment's title
    #[arg(long, value_parser = parse_title)]
    pub title: String,
    /// When it is due: RFC 3339 (2025-09-27T23:00:00Z) or local `YYYY-MM-DD HH:MM` in the student's zone
    #[arg(long, value_name = "WHEN")]
    pub due: String,
    /// A longer description
    #[arg(long, value_parser = description)]
    pub description: Option<String>,
    /// A JSON object, such as '{"course": "CS101"}'
    #[arg(long, value_name = "JSON", value_parser = parse_metadata)]
    pub metadata: Option<serde_json::Value>,
    /// The LMS's id for it, unique per student: what `import --upsert` matches on
    #[arg(long, value_name = "ID", value_parser = parse_external_id)]
    pub external_id: Option<String>,
    /// When work can no longer be handed in, read as --due; at or after the due time
    #[arg(long, value_name = "WHEN")]
    pub cutoff: Option<String>,
    /// The course it belongs to, such as CS101
    #[arg(long, value_name = "CODE", value_parser = course)]
    pub course: Option<String>,
}

/// A setting's value, never blank: `config::Env` removes a blank setting
/// (from a flag, the environment or `.env`) before parsing, since blank
/// means "not set", so a blank value reaching here was not read through it.
fn non_empty(raw: &str) -> anyhow::Result<String> {
    if raw.trim().is_empty() {
        return Err(crate::error::invalid("a blank value sets nothing: leave the flag out"));
    }
    Ok(raw.to_string())
}

/// A guardian's frequency, one of its stored words.
fn frequency() -> impl clap::builder::TypedValueParser<Value = DigestFrequency> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(DigestFrequency::ALL.iter().map(|frequency| frequency.as_str()))
        .map(|word| word.parse::<DigestFrequency>().expect("one of the possible values"))
}

/// A metadata object, or `null` for none.
fn metadata_or_null(raw: &str) -> anyhow::Result<serde_json::Value> {
    if raw.trim() == "null" {
        return Ok(serde_json::Value::Null);
    }
    parse_metadata(raw)
}

/// An external id, or `''` for none.
fn external_id_or_empty(raw: &str) -> anyhow::Result<String> {
    if raw.trim().is_empty() {
        return Ok(String::new());
    }
    parse_external_id(raw)
}

/// A student's name: one line (a blank one is no name).
fn name(raw: &str) -> anyhow::Result<String> {
    Ok(parse_name(Some(raw))?.unwrap_or_default())
}

/// An assignment's course: one line (a blank one is no course).
fn course(raw: &str) -> anyhow::Result<String> {
    Ok(parse_course(Some(raw))?.unwrap_or_default())
}

/// A teacher's course: one line, and not blank.
fn required_course(raw: &str) -> anyhow::Result<String> {
    parse_course(Some(raw))?.ok_or_else(|| crate::error::invalid("a course code cannot be blank"))
}

/// An assignment's description: free text without control characters but line breaks and tabs.
fn description(raw: &str) -> anyhow::Result<String> {
    Ok(parse_description(Some(raw))?.unwrap_or_default())
}

/// An assignment id (a UUID) from the command line.
fn assignment_id(raw: &str) -> anyhow::Result<Id> {
    uuid_of(raw, "an assignment id")
}

/// A reminder's or a daily summary's id (a UUID) from the command line.
fn queue_id(raw: &str) -> anyhow::Result<Id> {
    uuid_of(raw, "a reminder id or a summary id")
}

fn uuid_of(raw: &str, what: &str) -> anyhow::Result<Id> {
    raw.trim()
        .parse()
        .map(Id)
        .map_err(|_| crate::error::invalid(format!("`{raw}` is not {what} (a UUID)")))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        super::Cli::command().debug_assert();
    }

    #[test]
    fn a_commands_examples_come_before_the_global_options() {
        let mut command = super::Cli::command();
        let help = command
            .try_get_matches_from_mut(["reminders", "send", "--help"])
            .expect_err("help");
        for text in [help.render().to_string(), help.render().ansi().to_string()] {
            let reordered = super::own_options_first(&text);
            let at = |needle: &str| {
                reordered
                    .find(needle)
                    .unwrap_or_else(|| panic!("{needle} in {reordered}"))
            };
            assert!(at("--connections") < at("Examples:") && at("Examples:") < at("Global options:"));
            assert!(at("Global options:") < at("--database-url"));
            assert_eq!(
                reordered.lines().count(),
                text.trim_end().lines().count(),
                "lines are only moved"
            );
        }
    }
}
