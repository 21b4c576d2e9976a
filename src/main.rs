//! `reminders`: email students before their assignments are due.
//!
//! main is thin: parse the command line (over the environment and `.env`),
//! resolve it into one configuration, run the command, print its result,
//! and exit. Only here is the reason for a failure printed, as one line.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

mod bounces;
mod cli;
mod commands;
mod config;
mod contacts;
mod db;
mod error;
#[cfg(test)]
mod fuzz;
mod ics;
mod input;
mod log;
mod mail;
mod output;
mod ping;
mod queue;
mod redact;
mod reminders;
mod render;
mod schedule;
mod summaries;
mod time;
mod tls;
mod web;

/// The version, with the git commit when built from a checkout (see build.rs).
pub const VERSION: &str = match option_env!("BUILT_FROM_COMMIT") {
    Some(_) => concat!(
        env!("CARGO_PKG_VERSION"),
        " (",
        env!("BUILT_FROM_COMMIT"),
        "), schema ",
        env!("BUILT_WITH_NEWEST_MIGRATION")
    ),
    None => concat!(
        env!("CARGO_PKG_VERSION"),
        ", schema ",
        env!("BUILT_WITH_NEWEST_MIGRATION")
    ),
};

fn main() -> ExitCode {
    create_files_owner_only();
    let env = match config::Env::load(std::env::args_os().collect(), &cli::Cli::command()) {
        Ok(env) => env,
        Err(error) => return exit_with(error::Failure::from(error)),
    };
    // Built again now that `.env` is loaded: each flag reads its variable here.
    let mut command = cli::Cli::command();
    let matches = match command.try_get_matches_from_mut(&env.args) {
        Ok(matches) => matches,
        Err(error) if error.use_stderr() => return exit_with(error::Failure::bad_input(one_line_usage_error(&error))),
        Err(help) if help.kind() == clap::error::ErrorKind::DisplayHelp => {
            let rendered = help.render();
            let text = match std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                true => rendered.ansi().to_string(),
                false => rendered.to_string(),
            };
            print!("{}", cli::own_options_first(&text));
            return ExitCode::SUCCESS;
        }
        Err(version) => version.exit(),
    };
    let cli = match cli::Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    let config = match config::Config::resolve(cli, &command, &matches, &env) {
        Ok(config) => config,
        Err(failure) => return exit_with(failure),
    };
    let (format, quiet) = (config.global.format, config.global.quiet);
    let outcome = match commands::run(config) {
        Ok(outcome) => outcome,
        Err(failure) => return exit_with(failure),
    };
    // JSON is asked for by a script, which gets its document even with -q.
    if !(quiet && format == output::Format::Table && outcome.report.quiet_ok())
        && let Err(error) = output::print(format, outcome.report.as_ref())
    {
        return exit_with(error::Failure::from(error));
    }
    for reason in &outcome.reasons {
        eprintln!("{}", log::line(reason));
    }
    ExitCode::from(outcome.status.code())
}

/// Prints why the run failed, as one line, whatever `-q` says.
fn exit_with(failure: error::Failure) -> ExitCode {
    eprintln!("error: {}", log::line(&failure.reason));
    ExitCode::from(failure.status().code())
}

/// A command-line error as one line, like every other error: clap's message
/// and its list of what is missing, without the usage and the pointer to `--help`.
fn one_line_usage_error(error: &clap::Error) -> String {
    let rendered = error.render().to_string();
    let message: Vec<&str> = rendered
        .lines()
        .take_while(|line| !line.starts_with("Usage:") && !line.starts_with("For more information"))
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    let message = message.join(" ");
    output::printable(message.strip_prefix("error: ").unwrap_or(&message))
}

/// Everything this process creates may hold student data: the SQLite database
/// with its `-wal` and `-shm` files, the outbox and its `.eml` files. Whatever
/// umask cron or the shell gave us, they are readable by their owner only
/// (0600 files, 0700 directories).
fn create_files_owner_only() {
    // SAFETY: umask only swaps the process's file-creation mask; it cannot
    // fail, and no other thread is running yet to create files meanwhile.
    unsafe {
        libc::umask(0o077);
    }
}
