//! `reminders`: email students before their assignments are due.
//!
//! main is thin: load `.env`, parse the command line, run the command, print
//! its result, and turn the outcome into the exit status. Only here is the
//! fatal error printed, as one line.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

mod bounces;
mod cli;
mod commands;
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
mod settings;
mod summaries;
mod time;
mod tls;

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
    keep_memory_flat();
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let dotenv = match settings::load_dotenv(settings::env_file(&args)) {
        Ok(names) => names,
        Err(error) => return ExitCode::from(fail(&error).code()),
    };
    let mut command = cli::Cli::command();
    let matches = match command.try_get_matches_from_mut(&args) {
        Ok(matches) => matches,
        Err(error) if error.use_stderr() => {
            eprintln!("{}", one_line_usage_error(&error));
            return ExitCode::from(error::ExitStatus::BadInput.code());
        }
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
    let mut provenance = settings::Provenance::read(&matches, &dotenv);
    let cli = match cli::Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    let (format, quiet) = (cli.global.format, cli.global.quiet);
    log::set_level(quiet, cli.global.verbose);
    provenance.unknown = settings::unknown_settings(&command, &dotenv);
    for unknown in &provenance.unknown {
        // Not hidden by -q: every cron line has it, and the setting meant is off.
        log::explain!("warning: {unknown}");
    }
    for (setting, from) in provenance.describe() {
        log::info!("setting {setting} from {from}");
    }
    // Before the first ping: it is the first connection that may use TLS.
    if let Err(error) = tls::configure(cli.global.ca_file.as_deref()) {
        return ExitCode::from(fail(&error).code());
    }
    let pinger = ping::Pinger::new(settings::ping_url(&cli, &matches).as_deref());
    if let Some(pinger) = &pinger {
        pinger.start();
    }
    let result = commands::run(cli, &provenance).and_then(|outcome| {
        // JSON is asked for by a script, which gets its document even with -q.
        if !(quiet && format == output::Format::Table && outcome.report.quiet_ok()) {
            output::print(format, outcome.report.as_ref())?;
        }
        Ok(outcome.status)
    });
    let status = match result {
        Ok(status) => status,
        Err(error) => fail(&error),
    };
    if let Some(pinger) = &pinger {
        pinger.finish(status.code());
    }
    ExitCode::from(status.code())
}

/// Prints the error that ended the run and returns its exit status.
fn fail(error: &anyhow::Error) -> error::ExitStatus {
    // One line, whatever the layers below put in their messages, and no
    // secret, whatever they quote.
    let message = format!("{error:#}").split_whitespace().collect::<Vec<_>>().join(" ");
    let message = match behind_a_transaction_pooler(&message) {
        true => format!(
            "the database is probably behind a connection pooler in transaction mode, where prepared \
             statements do not survive; add `?prepared_statements=false` to the database URL ({message})"
        ),
        false => message,
    };
    eprintln!("error: {}", log::line(&message));
    error::exit_status_of(error)
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
    output::printable(&message.join(" "))
}

/// Diesel names the statements it caches `__diesel_stmt_N`. Such a name that
/// the server already has, or has lost, means that this session's statements
/// share server connections with others': a pooler in transaction mode. This
/// can only be told from the server's message, wherever the query was made,
/// so it is recognised here, where every fatal error passes.
fn behind_a_transaction_pooler(message: &str) -> bool {
    message.contains("prepared statement \"__diesel_stmt")
        && (message.contains("already exists") || message.contains("does not exist"))
}

/// glibc serves a large allocation (a page of 10,000 due rows) from mmap, and
/// after freeing one raises its threshold so that later ones come from the
/// heap, which then keeps growing: a run of 100,000 due peaked 1.22x higher
/// than a run of 10,000. A fixed threshold keeps them within 1.05x.
fn keep_memory_flat() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets a tuning parameter of the allocator; it is
    // called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
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
