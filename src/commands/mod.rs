//! The single match that hands each subcommand to its module. Each module has
//! one entry point, `run`, that takes the parsed arguments and returns an
//! [`Outcome`]; none of them prints.

use crate::cli::{Cli, Command, TemplateCommand};
use crate::db::DatabaseUrl;
use crate::db::types::Timestamp;
use crate::error::ExitStatus;
use crate::output::Report;
use crate::render::Templates;
use crate::time::Clock;

mod assignment;
mod bounces;
mod check;
mod due;
mod feed;
mod import;
mod migrate;
mod preview;
mod prune;
mod retry;
mod send;
mod status;
mod summary;
mod template;
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

pub fn run(cli: Cli, provenance: &crate::settings::Provenance) -> anyhow::Result<Outcome> {
    // These two describe the command line itself and need no settings at all.
    match &cli.command {
        Command::Completions { shell } => return Ok(Outcome::success(text_only(completions(*shell)))),
        Command::Man { dir: None } => return Ok(Outcome::success(text_only(man_page()?))),
        Command::Man { dir: Some(dir) } => return Ok(Outcome::success(man_pages(dir)?)),
        // Reports a malformed database URL as a failed check, not as an error.
        Command::Check { mail } => {
            let database = DatabaseUrl::parse(cli.global.database_url.as_deref());
            return check::run(
                database,
                mail,
                cli.global.templates.as_deref(),
                cli.global.ping_url.as_deref(),
                provenance,
            );
        }
        _ => {}
    }
    let database = DatabaseUrl::parse(cli.global.database_url.as_deref())?;
    let templates = cli.global.templates;
    let clock = Clock::new(cli.global.now);
    let now = Timestamp::now(&clock);
    match cli.command {
        Command::Migrate => migrate::run(&database),
        Command::User(command) => user::run(&database, command, now),
        Command::Assignment(command) => assignment::run(&database, command, now),
        Command::Due(args) => due::run(&database, args, clock),
        Command::Send(args) => send::run(&database, args, clock, load_templates(templates.as_deref())?),
        Command::Summary(args) => summary::run(&database, args, clock, load_templates(templates.as_deref())?),
        Command::Template(TemplateCommand::Check { dir }) => template::check(dir.or(templates).as_deref()),
        Command::Preview(args) => preview::run(&database, args, clock, load_templates(templates.as_deref())?),
        Command::Status => status::run(&database, clock),
        Command::Retry(args) => retry::run(&database, args, clock),
        Command::Prune(args) => prune::run(&database, args, clock),
        Command::Bounces(args) => bounces::run(&database, args, clock),
        Command::Completions { .. } | Command::Man { .. } | Command::Check { .. } => {
            unreachable!("handled before the database URL is read")
        }
    }
}

fn completions(shell: clap_complete::Shell) -> String {
    let mut script = Vec::new();
    clap_complete::generate(
        shell,
        &mut <Cli as clap::CommandFactory>::command(),
        "reminders",
        &mut script,
    );
    String::from_utf8_lossy(&script).into_owned()
}

/// One complete man page: the top level, then every command's synopsis,
/// description and options as sections of it, so that it refers to no page
/// that may not exist.
fn man_page() -> anyhow::Result<String> {
    let mut command = <Cli as clap::CommandFactory>::command().disable_help_subcommand(true);
    command.build();
    let top = clap_mangen::Man::new(command.clone());
    let mut page = Vec::new();
    top.render_title(&mut page)?;
    top.render_name_section(&mut page)?;
    top.render_synopsis_section(&mut page)?;
    top.render_description_section(&mut page)?;
    top.render_options_section(&mut page)?;
    fn commands(command: &clap::Command, path: &str, page: &mut Vec<u8>) -> anyhow::Result<()> {
        for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
            let name = format!("{path} {}", sub.get_name());
            if sub.has_subcommands() {
                commands(sub, &name, page)?;
                continue;
            }
            let man = clap_mangen::Man::new(sub.clone());
            let mut part = Vec::new();
            man.render_synopsis_section(&mut part)?;
            man.render_description_section(&mut part)?;
            man.render_options_section(&mut part)?;
            // Each command is a section; its own sections are subsections.
            let part = String::from_utf8_lossy(&part).replace(".SH ", ".SS ");
            page.extend_from_slice(format!(".SH \"{}\"\n", name.to_uppercase()).as_bytes());
            page.extend_from_slice(part.as_bytes());
        }
        Ok(())
    }
    commands(&command, "reminders", &mut page)?;
    top.render_extra_section(&mut page)?;
    top.render_version_section(&mut page)?;
    Ok(String::from_utf8_lossy(&page).into_owned())
}

/// `man --dir DIR`: a page per command, in DIR (created if need be).
fn man_pages(dir: &std::path::Path) -> anyhow::Result<crate::output::Message> {
    use anyhow::Context;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    clap_mangen::generate_to(<Cli as clap::CommandFactory>::command(), dir)
        .with_context(|| format!("cannot write the man pages into `{}`", dir.display()))?;
    let mut pages: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with("reminders") && name.ends_with(".1"))
        .collect();
    pages.sort();
    Ok(crate::output::Message {
        text: format!("wrote {} man pages into {}", pages.len(), dir.display()),
        json: serde_json::json!({ "dir": dir, "pages": pages }),
    })
}

/// Text printed as it is, whatever `--format` says.
fn text_only(text: String) -> crate::output::PlainText {
    crate::output::PlainText(text)
}

/// A sending run on a database without students is most likely pointed at
/// the wrong database (a mistyped DATABASE_URL falls back to the default
/// file): it says so, since cron would otherwise see a quiet success.
fn warn_if_no_students(db: &mut crate::db::Db, database: &DatabaseUrl) -> anyhow::Result<()> {
    if !crate::db::users::any(db)? {
        let note = database
            .default_note()
            .map(|note| format!(" ({note})"))
            .unwrap_or_default();
        crate::log::warning!("the database `{}` holds no students{note}", database.display());
    }
    Ok(())
}

/// The templates a sending command uses; a broken one stops it before it
/// touches the database or sends anything (exit 2). The built-in ones are
/// checked by the tests, not on every cron run.
fn load_templates(dir: Option<&std::path::Path>) -> anyhow::Result<Templates> {
    let templates = Templates::load(dir)?;
    if dir.is_some() {
        templates.check()?;
    }
    Ok(templates)
}
