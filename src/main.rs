//! `reminders`: email students before their assignments are due.
//!
//! main is thin: load `.env`, parse the command line, run the command, print
//! its result, and turn the outcome into the exit status. Only here is the
//! fatal error printed, as one line.

use std::process::ExitCode;

use std::collections::HashSet;

use clap::{CommandFactory, FromArgMatches};

mod cli;
mod commands;
mod config;
mod db;
mod delivery;
mod error;
mod input;
mod log;
mod mail;
mod output;
mod ping;
mod render;
mod schedule;
mod time;
mod tls;

/// The version, with the git commit when built from a checkout (see build.rs).
pub const VERSION: &str = match option_env!("REMINDERS_GIT_COMMIT") {
    Some(_) => concat!(env!("CARGO_PKG_VERSION"), " (", env!("REMINDERS_GIT_COMMIT"), ")"),
    None => env!("CARGO_PKG_VERSION"),
};

fn main() -> ExitCode {
    // A missing .env is normal; the environment proper wins over it.
    let before: HashSet<String> = std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .collect();
    if let Err(error) = dotenvy::dotenv()
        && !error.not_found()
    {
        eprintln!("warning: the .env file was not read: {error}");
    }
    let from_dotenv: HashSet<String> = std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .filter(|name| !before.contains(name))
        .collect();
    let matches = cli::Cli::command().get_matches();
    let provenance = config::Provenance::read(&matches, &from_dotenv);
    let cli = match cli::Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    let (format, quiet) = (cli.global.format, cli.global.quiet);
    log::set_level(quiet, cli.global.verbose);
    // Before the first ping: it is the first connection that may use TLS.
    if let Err(error) = tls::configure(cli.global.ca_file.as_deref()) {
        return ExitCode::from(fatal(&error).code());
    }
    let pinger = ping::Pinger::new(cli.global.ping_url.as_deref());
    if let Some(pinger) = &pinger {
        pinger.start();
    }
    let result = commands::run(cli, &provenance).and_then(|outcome| {
        if !(quiet && outcome.report.is_idle()) {
            output::print(format, outcome.report.as_ref())?;
        }
        Ok(outcome.status)
    });
    let status = match result {
        Ok(status) => status,
        Err(error) => fatal(&error),
    };
    if let Some(pinger) = &pinger {
        pinger.finish(status.code());
    }
    ExitCode::from(status.code())
}

/// Prints the error that ended the run, and gives its exit status.
fn fatal(error: &anyhow::Error) -> error::ExitStatus {
    // One line, whatever the layers below put in their messages.
    let message = format!("{error:#}").split_whitespace().collect::<Vec<_>>().join(" ");
    eprintln!("error: {message}");
    error::exit_status_of(error)
}
