//! Every command implements [`Run`], and one exhaustive match hands each
//! job to its module. None of them prints: each returns an [`Outcome`] or
//! a [`Failure`], and main prints either.
//!
//! Adding a command: its arguments in `cli.rs`, its job in `config`, a
//! module here that implements `Run`, and its line in [`run_job`].

use crate::cli::Cli;
use crate::config::{CompletionsJob, Config, Global, Job, ManJob};
use crate::db::DatabaseUrl;
use crate::error::{ExitStatus, Failure};
use crate::output::Report;
use crate::render::Templates;
use crate::time::Clock;

mod assignment;
mod bounces;
mod cgi;
mod check;
mod due;
mod feed;
mod guardian;
mod import;
mod migrate;
mod preview;
mod prune;
mod report;
mod retry;
mod send;
mod status;
mod summary;
mod teacher;
mod template;
mod user;

/// A command: its job, run in the context of the run's shared settings.
pub trait Run {
    fn run(self, cx: &Context) -> Result<Outcome, Failure>;
}

/// What every command may use besides its own job.
pub struct Context<'a> {
    pub global: &'a Global,
}

impl Context<'_> {
    pub fn database(&self) -> Result<&DatabaseUrl, Failure> {
        self.global.database.as_ref().map_err(Clone::clone)
    }

    pub fn clock(&self) -> Clock {
        self.global.clock.clone()
    }

    /// The templates a sending command uses; a broken one stops it before it
    /// touches the database or sends anything (exit 2). The built-in ones are
    /// checked by the tests, not on every cron run.
    pub fn templates(&self) -> Result<Templates, Failure> {
        let dir = self.global.templates.as_deref();
        let templates = Templates::load(dir)?;
        if dir.is_some() {
            templates.check()?;
        }
        Ok(templates)
    }
}

/// What a command produced, and how the process should exit: 0, or 1, 3,
/// 130 or 143 for a command that did part of its work and has a report of
/// it, with the lines that say why.
pub struct Outcome {
    pub report: Box<dyn Report>,
    pub status: ExitStatus,
    /// Printed on stderr whatever `-q` says; there is one at least whenever
    /// the status is not 0.
    pub reasons: Vec<String>,
}

impl Outcome {
    pub fn success(report: impl Report + 'static) -> Outcome {
        Outcome {
            report: Box::new(report),
            status: ExitStatus::Success,
            reasons: Vec::new(),
        }
    }

    /// A report of work done in part: `status` is not 0, and `reasons` say why.
    pub fn unfinished(report: impl Report + 'static, status: ExitStatus, reasons: Vec<String>) -> Outcome {
        debug_assert!(status == ExitStatus::Success || !reasons.is_empty());
        Outcome {
            report: Box::new(report),
            status,
            reasons,
        }
    }
}

/// Runs the configured job: TLS trust first (the first connection may use
/// it), and the monitor pinged around a scheduled job.
pub fn run(config: Config) -> Result<Outcome, Failure> {
    let Config { global, job } = config;
    crate::log::set_level(global.quiet, global.verbose);
    // Only the course report is a table a spreadsheet wants; every other
    // command says so before it does anything (`completions` and `man`
    // print their text whatever `--format` says).
    let takes_csv = matches!(job, Job::Report(_) | Job::Completions(_) | Job::Man(_));
    if global.format == crate::output::Format::Csv && !takes_csv {
        return Err(Failure::bad_input(
            "`--format csv` is only for `reminders report`; use table or json",
        ));
    }
    for unknown in &global.unknown_settings {
        // Not hidden by -q: every cron line has it, and the setting meant is off.
        crate::log::explain!("warning: {unknown}");
    }
    for (setting, from) in global.provenance.describe() {
        crate::log::info!("setting {setting} from {from}");
    }
    crate::tls::configure(global.ca_file.as_deref())?;
    let pinger = crate::ping::Pinger::new(global.ping_url.as_deref());
    if let Some(pinger) = &pinger {
        pinger.start();
    }
    let result = run_job(job, &Context { global: &global }).map_err(crate::db::explain_pooler);
    if let Some(pinger) = &pinger {
        let status = result.as_ref().map_or_else(Failure::status, |outcome| outcome.status);
        pinger.finish(status.code());
    }
    result
}

fn run_job(job: Job, cx: &Context) -> Result<Outcome, Failure> {
    match job {
        Job::Migrate(job) => job.run(cx),
        Job::User(job) => job.run(cx),
        Job::Assignment(job) => job.run(cx),
        Job::Guardian(job) => job.run(cx),
        Job::Teacher(job) => job.run(cx),
        Job::Due(job) => job.run(cx),
        Job::Send(job) => job.run(cx),
        Job::Summary(job) => job.run(cx),
        Job::Status(job) => job.run(cx),
        Job::Retry(job) => job.run(cx),
        Job::Prune(job) => job.run(cx),
        Job::Check(job) => job.run(cx),
        Job::TemplateCheck(job) => job.run(cx),
        Job::Preview(job) => job.run(cx),
        Job::Bounces(job) => job.run(cx),
        Job::Report(job) => job.run(cx),
        Job::Completions(job) => job.run(cx),
        Job::Man(job) => job.run(cx),
        Job::Cgi(job) => job.run(cx),
    }
}

impl Run for CompletionsJob {
    fn run(self, _: &Context) -> Result<Outcome, Failure> {
        Ok(Outcome::success(text_only(completions(self.shell))))
    }
}

impl Run for ManJob {
    fn run(self, _: &Context) -> Result<Outcome, Failure> {
        match self.dir {
            None => Ok(Outcome::success(text_only(man_page()?))),
            Some(dir) => Ok(Outcome::success(man_pages(&dir)?)),
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
