//! The single match that hands each subcommand to its module. Each module has
//! one entry point, `run`, that takes the parsed arguments and returns an
//! [`Outcome`]; none of them prints.

use crate::cli::{Cli, Command};
use crate::config::DatabaseUrl;
use crate::error::ExitStatus;
use crate::output::Report;

mod assignment;
mod due;
mod import;
mod migrate;
mod send;
mod summary;
mod user;

/// What a command produced and how the process should exit.
pub struct Outcome {
    pub report: Box<dyn Report>,
    pub status: ExitStatus,
}

impl Outcome {
    pub fn success(report: impl Report + 'static) -> Outcome {
        Outcome {
            report: Box::new(report),
            status: ExitStatus::Success,
        }
    }
}

pub fn run(cli: Cli) -> anyhow::Result<Outcome> {
    let database = DatabaseUrl::parse(cli.global.database_url.as_deref())?;
    match cli.command {
        Command::Migrate => migrate::run(&database),
        Command::User(command) => user::run(&database, command),
        Command::Assignment(command) => assignment::run(&database, command),
        Command::Due(args) => due::run(&database, args),
        Command::Send(args) => send::run(&database, args),
        Command::Summary(args) => summary::run(&database, args),
    }
}
