//! The command line, as clap derive types only. Doc comments are the help text.

use clap::{Args, Parser, Subcommand};

use crate::output::Format;

const AFTER_HELP: &str = "\
Exit status:
  0  done: everything due was sent or deliberately skipped
  1  could not run: database unreachable or not migrated, mail settings missing
  2  bad input: nothing was written
  3  some sends failed; they are recorded for retry or as failed

Settings come from flags, then the environment, then a .env file in the current directory.";

/// Email students before their assignments are due. Run it from cron.
#[derive(Debug, Parser)]
#[command(name = "reminders", version, after_help = AFTER_HELP, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The database: `postgres://…` for PostgreSQL, otherwise a SQLite file path [default: reminders.db]
    #[arg(
        long,
        env = "DATABASE_URL",
        global = true,
        hide_env_values = true,
        value_name = "URL"
    )]
    pub database_url: Option<String>,

    /// How to print results
    #[arg(long, value_enum, default_value_t = Format::Table, global = true)]
    pub format: Format,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or update the database schema
    Migrate,
    /// Add, list and opt students in or out
    #[command(subcommand)]
    User(UserCommand),
    /// Add, list and complete assignments
    #[command(subcommand)]
    Assignment(AssignmentCommand),
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a student
    Add(UserAddArgs),
    /// List students
    List,
    /// Stop all email to a student
    OptOut {
        /// The student's email
        email: String,
    },
    /// Resume email to a student
    OptIn {
        /// The student's email
        email: String,
    },
}

#[derive(Debug, Args)]
pub struct UserAddArgs {
    /// The student's email address (stored trimmed and lower-cased)
    #[arg(long)]
    pub email: String,
    /// The student's name
    #[arg(long)]
    pub name: Option<String>,
    /// An IANA time zone, such as America/Los_Angeles [default: UTC]
    #[arg(long, value_name = "TZ")]
    pub timezone: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AssignmentCommand {
    /// Add an assignment for a student
    Add(AssignmentAddArgs),
    /// List assignments, due times in each student's zone
    List {
        /// Only this student's assignments
        #[arg(long, value_name = "EMAIL")]
        student: Option<String>,
    },
    /// Mark an assignment completed, which stops its reminders
    Complete {
        /// The assignment's id
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct AssignmentAddArgs {
    /// The student's email
    #[arg(long, value_name = "EMAIL")]
    pub student: String,
    /// The assignment's title
    #[arg(long)]
    pub title: String,
    /// When it is due: RFC 3339 (2025-09-27T23:00:00Z) or local `YYYY-MM-DD HH:MM` in the student's zone
    #[arg(long, value_name = "WHEN")]
    pub due: String,
    /// A longer description
    #[arg(long)]
    pub description: Option<String>,
    /// A JSON object, such as '{"course": "CS101"}'
    #[arg(long, value_name = "JSON")]
    pub metadata: Option<String>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
