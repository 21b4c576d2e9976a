//! `reminders user …`: add, list, edit, remove, forget, opt out and opt in students.

use serde::Serialize;
use serde_json::json;

use super::{Context, Outcome, Run};
use crate::cli::{SummaryFrequency, Switch, UserAddArgs, UserCommand, UserEditArgs, UserSetArgs};
use crate::config::UserJob;
use crate::db::DatabaseUrl;
use crate::db::Db;
use crate::db::erasure::Erased;
use crate::db::types::Timestamp;
use crate::db::users::{self, User, UserChanges};
use crate::db::{contacts, summaries};
use crate::error::{ExitStatus, Failure, invalid};
use crate::input::{Email, parse_locale, parse_max_per_day, zone_of};
use crate::mail::token::{Subscriber, verify_unsubscribe_token};
use crate::mail::{MailUrl, outbox_file_stem};
use crate::output::{self, Report};
use crate::queue::OptOutReason;
use crate::queue::policy::REJECTIONS_BEFORE_OPT_OUT;
use crate::schedule::TypeList;
use crate::schedule::window::SendWindow;
use crate::time;

impl Run for UserJob {
    fn run(self, cx: &Context) -> Result<Outcome, Failure> {
        let now = Timestamp::now(&cx.clock());
        Ok(user(cx.database()?, self, now)?)
    }
}

fn user(database: &DatabaseUrl, job: UserJob, now: Timestamp) -> anyhow::Result<Outcome> {
    match job.command {
        UserCommand::Add(args) => add(database, args, now),
        UserCommand::List => {
            let mut db = Db::open(database)?;
            Ok(Outcome::success(UserList(users::list_users(&mut db)?)))
        }
        UserCommand::OptOut { email: Some(email), .. } => set_opt_out(database, &email, true, now),
        UserCommand::OptOut { token: Some(token), .. } => {
            unsubscribe(database, &token, &job.secret.unwrap_or_default(), now)
        }
        UserCommand::OptOut { .. } => unreachable!("clap requires an email or a token"),
        UserCommand::OptIn { email } => set_opt_out(database, &email, false, now),
        UserCommand::Set(args) => set_preferences(database, args, now),
        UserCommand::Edit(args) => edit(database, args, now),
        UserCommand::Forget {
            email,
            yes,
            smtp_url,
            keep_guardians,
        } => forget(database, &email, yes, smtp_url.as_deref(), keep_guardians),
        UserCommand::Remove { email } => {
            let mut db = Db::open(database)?;
            let user = users::remove_user(&mut db, email.as_str())?;
            Ok(Outcome::success(output::Done(output::Message {
                text: format!(
                    "removed `{}` with their assignments and reminders; their send logs stay, unlinked",
                    user.email
                ),
                json: json!({ "removed": user }),
            })))
        }
        UserCommand::Import(args) => super::import::users(database, args, now),
    }
}

fn add(database: &DatabaseUrl, args: UserAddArgs, now: Timestamp) -> anyhow::Result<Outcome> {
    let name = args.name;
    let timezone = args.timezone.unwrap_or(chrono_tz::UTC);
    let mut db = Db::open(database)?;
    let email = args.email.mailable(args.allow_local_domains)?;
    let user = User {
        locale: args.locale.as_deref().map(parse_locale).transpose()?.flatten(),
        ..User::new(email.as_str(), name, timezone.name(), now)
    };
    users::insert_user(&mut db, &user)?;
    Ok(Outcome::success(output::Single(UserList(vec![user]))))
}

/// How long `user forget` waits for readers of an older SQLite snapshot to
/// let the WAL be written through, before it says so.
const WRITE_THROUGH_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

/// Erasure on request: asks first, on a terminal, unless `--yes`.
fn forget(
    database: &DatabaseUrl,
    email: &Email,
    yes: bool,
    smtp_url: Option<&str>,
    keep_guardians: bool,
) -> anyhow::Result<Outcome> {
    let outbox = outbox_of(smtp_url)?;
    let mut db = Db::open(database)?;
    users::require_user_by_email(&mut db, email.as_str())?;
    let question = format!(
        "forget `{}` and everything that names them? This cannot be undone.",
        email.as_str()
    );
    if !yes && !confirmed(&question)? {
        return Err(invalid(format!(
            "`user forget` erases `{}` for good: confirm on a terminal, or pass --yes",
            email.as_str()
        )));
    }
    let mut forgotten = users::forget_user(&mut db, email.as_str(), keep_guardians)?;
    let removed = match &outbox {
        Some(dir) => remove_outbox_files(dir, &forgotten.message_ids, &mut forgotten.files_left),
        None => 0,
    };
    forgotten.files_left.sort();
    let mut text = format!(
        "forgot `{}`: removed the student, {}, {}, {} and their preferences; kept {} with the address \
         replaced by `{}`, and {} without it",
        forgotten.email,
        output::count(forgotten.assignments, "assignment", "assignments"),
        output::count(forgotten.reminders, "reminder", "reminders"),
        output::count(forgotten.daily_summaries, "daily summary", "daily summaries"),
        output::count(forgotten.send_logs as i64, "send log", "send logs"),
        forgotten.stand_in,
        output::count(forgotten.bounce_reports as i64, "bounce report", "bounce reports"),
    );
    if let [_, former @ ..] = forgotten.addresses.as_slice()
        && !former.is_empty()
    {
        text.push_str(&format!("; also erased their former {}", backticked(former)));
    }
    if let Some(dir) = &outbox {
        text.push_str(&format!(
            "; removed {} from the outbox `{}`",
            output::count(removed as i64, ".eml file", ".eml files"),
            dir.display()
        ));
    }
    if forgotten.guardian_links > 0 {
        text.push_str(&format!(
            "; unlinked {}",
            output::count(forgotten.guardian_links, "guardian", "guardians")
        ));
        if !forgotten.guardians_forgotten.is_empty() {
            text.push_str(&format!(
                " and forgot {}, who followed no one else",
                backticked_list(&forgotten.guardians_forgotten)
            ));
        }
    }
    if !forgotten.files_left.is_empty() {
        text.push_str(&format!(
            "\nraw reports that name them stay in files this tool does not erase; delete them by hand:\n{}",
            forgotten.files_left.join("\n")
        ));
    }
    let mut json = json!(forgotten);
    json["outbox_files_removed"] = json!(removed);
    written_through(&mut db, database, &forgotten.email, output::Message { text, json })
}

/// The outbox folder of a `file://` SMTP_URL: only such an outbox is ours
/// to clean; any other SMTP_URL is a server's.
pub(super) fn outbox_of(smtp_url: Option<&str>) -> anyhow::Result<Option<std::path::PathBuf>> {
    Ok(match smtp_url.map(str::trim).filter(|url| url.starts_with("file://")) {
        Some(url) => match MailUrl::with_password(url, None)? {
            MailUrl::File(dir) => Some(dir),
            MailUrl::Smtp(_) => None,
        },
        None => None,
    })
}

/// The report of `guardian forget` or `teacher forget`: `unlinked` says what
/// links went (`their links to 2 students`); the outbox files of what was
/// sent to them are removed first.
pub(super) fn contact_forgotten(
    role: &str,
    email: &str,
    unlinked: (&str, String),
    mut erased: Erased,
    outbox: Option<&std::path::Path>,
) -> output::Message {
    let removed = match outbox {
        Some(dir) => remove_outbox_files(dir, &erased.scrubbed.message_ids, &mut erased.scrubbed.files_left),
        None => 0,
    };
    let mut files_left = erased.scrubbed.files_left;
    files_left.sort();
    files_left.dedup();
    let (key, links) = unlinked;
    let mut text = format!(
        "forgot the {role} `{email}` and {links}; kept {} with the address replaced by `{}`, and {} without it",
        output::count(erased.scrubbed.send_logs as i64, "send log", "send logs"),
        erased.stand_in,
        output::count(erased.scrubbed.bounce_reports as i64, "bounce report", "bounce reports"),
    );
    if let Some(dir) = outbox {
        text.push_str(&format!(
            "; removed {} from the outbox `{}`",
            output::count(removed as i64, ".eml file", ".eml files"),
            dir.display()
        ));
    }
    if !files_left.is_empty() {
        text.push_str(&format!(
            "\nraw reports that name them stay in files this tool does not erase; delete them by hand:\n{}",
            files_left.join("\n")
        ));
    }
    let json = json!({
        "email": email,
        key: erased.links,
        "send_logs": erased.scrubbed.send_logs,
        "bounce_reports": erased.scrubbed.bounce_reports,
        "stand_in": erased.stand_in,
        "files_left": files_left,
        "outbox_files_removed": removed,
    });
    output::Message { text, json }
}

/// The report of an erasure, once it has left no old copy of the address in
/// the database's files: on SQLite, the WAL is written back. While another
/// connection holds that up, exit 1 with what to do.
pub(super) fn written_through(
    db: &mut Db,
    database: &DatabaseUrl,
    email: &str,
    report: output::Message,
) -> anyhow::Result<Outcome> {
    if !db.write_wal_through(WRITE_THROUGH_PATIENCE)? {
        // Only SQLite has a WAL: this is the file's full path.
        let path = database.display();
        let reason = format!(
            "the erasure of `{email}` is committed, but another connection is reading the SQLite database, so old \
             copies of the address stay in `{path}` and `{path}-wal`: end that connection, then run \
             `sqlite3 {path} 'PRAGMA wal_checkpoint(TRUNCATE)'`"
        );
        return Ok(Outcome::unfinished(report, ExitStatus::Failure, vec![reason]));
    }
    Ok(Outcome::success(report))
}

/// Removes the outbox's `.eml` file of each of these messages; returns how
/// many there were. One that cannot be removed is named with the files left.
fn remove_outbox_files(dir: &std::path::Path, message_ids: &[String], files_left: &mut Vec<String>) -> usize {
    let mut removed = 0;
    let mut stems: Vec<String> = message_ids.iter().map(|id| outbox_file_stem(id)).collect();
    stems.sort();
    stems.dedup();
    for stem in stems {
        let path = dir.join(format!("{stem}.eml"));
        match std::fs::remove_file(&path) {
            Ok(()) => removed += 1,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                crate::log::warning!("cannot remove `{}`: {error}", path.display());
                files_left.push(path.display().to_string());
            }
        }
    }
    removed
}

/// `a`, or `a` and `b`, in backticks.
fn backticked(items: &[String]) -> String {
    match items {
        [_] => format!("address {}", backticked_list(items)),
        [_, ..] => format!("addresses {}", backticked_list(items)),
        [] => String::new(),
    }
}

/// `a`, `a` and `b`, or `a`, `b` and `c`, each in backticks.
fn backticked_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|item| format!("`{item}`")).collect();
    match quoted.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// Asks `question` on the terminal; `false` when there is none to ask on.
pub(super) fn confirmed(question: &str) -> anyhow::Result<bool> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Ok(false);
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

fn edit(database: &DatabaseUrl, args: UserEditArgs, now: Timestamp) -> anyhow::Result<Outcome> {
    let changes = UserChanges {
        email: match args.new_email {
            Some(email) => Some(email.mailable(args.allow_local_domains)?.as_str().to_string()),
            None => None,
        },
        name: args.name.map(|name| Some(name).filter(|name| !name.trim().is_empty())),
        timezone: args.timezone.map(|zone| zone.name().to_string()),
        updated_at: Some(now),
    };
    let mut db = Db::open(database)?;
    let user = users::update_user(&mut db, args.email.as_str(), &changes)?;
    Ok(Outcome::success(output::Single(UserList(vec![user]))))
}

fn set_opt_out(database: &DatabaseUrl, email: &Email, opt_out: bool, now: Timestamp) -> anyhow::Result<Outcome> {
    let mut db = Db::open(database)?;
    let before = users::require_user_by_email(&mut db, email.as_str())?;
    let user = users::set_contact_opt_out(&mut db, email.as_str(), opt_out, now)?;
    if !opt_out && before.opt_out_reason == Some(OptOutReason::Bounced) {
        crate::log::warning!(
            "`{}` had been opted out for bounces (its mail was rejected {REJECTIONS_BEFORE_OPT_OUT} times in a row); mail to it is on again",
            user.email
        );
    }
    Ok(Outcome::success(output::Single(UserList(vec![user]))))
}

/// `opt-out --token`: what a school's unsubscribe endpoint calls with the
/// token from a List-Unsubscribe link: a student's, a guardian's or a
/// teacher's. The address is opted out in every role it has.
fn unsubscribe(database: &DatabaseUrl, token: &str, secret: &[u8], now: Timestamp) -> anyhow::Result<Outcome> {
    let subscriber = verify_unsubscribe_token(secret, token.trim())
        .map_err(|error| invalid(format!("the unsubscribe token is not valid: {error}")))?;
    let mut db = Db::open(database)?;
    let email = contacts::subscriber_email(&mut db, subscriber)?
        .ok_or_else(|| invalid("the unsubscribe token names a person who is no longer here"))?;
    contacts::opt_out_everywhere(&mut db, &email, OptOutReason::Unsubscribed, now)?;
    let role = match subscriber {
        Subscriber::Student(_) => {
            let user = users::opt_out_for(&mut db, &email, OptOutReason::Unsubscribed, now)?;
            return Ok(Outcome::success(output::Single(UserList(vec![user]))));
        }
        Subscriber::Guardian(_) => "guardian",
        Subscriber::Teacher(_) => "teacher",
    };
    Ok(Outcome::success(OptedOut { email, role }))
}

/// A guardian or teacher opted out by their token (docs/json.md).
#[derive(Serialize)]
struct OptedOut {
    email: String,
    role: &'static str,
}

impl Report for OptedOut {
    fn to_json(&self) -> serde_json::Value {
        json!({
            "email": self.email,
            "role": self.role,
            "contact_opt_out": true,
            "opt_out_reason": OptOutReason::Unsubscribed,
        })
    }

    fn to_table(&self) -> String {
        format!("{} ({}) opted out: unsubscribed", self.email, self.role)
    }
}

fn set_preferences(database: &DatabaseUrl, args: UserSetArgs, now: Timestamp) -> anyhow::Result<Outcome> {
    let mut db = Db::open(database)?;
    let user = users::require_user_by_email(&mut db, args.email.as_str())?;
    let mut preferences = summaries::preferences(&mut db, user.id, now)?;
    if let Some(hour) = args.summary_hour {
        preferences.summary_hour = hour;
    }
    if let Some(switch) = args.daily_summary {
        preferences.daily_summary = switch == Switch::On;
    }
    let monday = chrono::Weekday::Mon.number_from_monday() as i32;
    match args.summary {
        Some(SummaryFrequency::Off) => preferences.daily_summary = false,
        Some(SummaryFrequency::Daily) => (preferences.daily_summary, preferences.summary_weekday) = (true, None),
        Some(SummaryFrequency::Weekly) => {
            preferences.daily_summary = true;
            preferences.summary_weekday = preferences.summary_weekday.or(Some(monday));
        }
        None => {}
    }
    if let Some(day) = args.summary_weekday {
        if args.summary.is_none() && preferences.summary_weekday.is_none() {
            return Err(invalid(
                "`--summary-weekday` is the day of a weekly summary: add `--summary weekly`",
            ));
        }
        preferences.summary_weekday = Some(day.number_from_monday() as i32);
    }
    let type_list = |raw: &str, reset: &str| match raw.trim() {
        word if word.eq_ignore_ascii_case(reset) => Ok(None),
        list => TypeList::parse(list).map(|list| Some(list.to_text())),
    };
    if let Some(types) = &args.types {
        preferences.reminder_types = type_list(types, "all")?;
    }
    if let Some(muted) = &args.mute {
        preferences.muted_types = type_list(muted, "none")?;
    }
    if let Some(limit) = &args.max_per_day {
        preferences.max_per_day = parse_max_per_day(limit)?;
    }
    if let Some(spec) = &args.send_window {
        preferences.send_window = SendWindow::parse_setting(spec)?;
    }
    preferences.updated_at = now;
    summaries::save_preferences(&mut db, &preferences)?;
    let locale = match &args.locale {
        Some(raw) => users::set_locale(&mut db, user.id, parse_locale(raw)?, now)?,
        None => user.locale.clone(),
    };
    let summary = match (preferences.daily_summary, preferences.summary_weekday) {
        (false, _) => "off",
        (true, None) => "daily",
        (true, Some(_)) => "weekly",
    };
    let weekday = preferences
        .summary_weekday
        .and_then(|n| chrono::Weekday::try_from(u8::try_from(n - 1).ok()?).ok());
    let text = output::key_values([
        ("email", user.email.clone()),
        (
            "daily summary",
            if preferences.daily_summary { "on" } else { "off" }.to_string(),
        ),
        (
            "summary",
            match weekday {
                Some(day) if preferences.daily_summary => format!("weekly, on {day}"),
                _ => summary.to_string(),
            },
        ),
        (
            "reminder types",
            preferences.reminder_types.clone().unwrap_or_else(|| "all".to_string()),
        ),
        (
            "muted",
            preferences.muted_types.clone().unwrap_or_else(|| "none".to_string()),
        ),
        (
            "max per day",
            preferences
                .max_per_day
                .map_or_else(|| "no limit".to_string(), |n| n.to_string()),
        ),
        (
            "language",
            locale.clone().unwrap_or_else(|| "English (none set)".to_string()),
        ),
        (
            "send window",
            preferences
                .send_window
                .clone()
                .unwrap_or_else(|| "the run's --send-window (none set)".to_string()),
        ),
        (
            "summary hour",
            format!(
                "{:02}:00 {}",
                preferences.summary_hour,
                zone_of(user.timezone.as_deref()).name()
            ),
        ),
    ]);
    let json = json!({
        "email": user.email,
        "daily_summary": preferences.daily_summary,
        "summary": summary,
        "summary_weekday": preferences.summary_weekday,
        "reminder_types": preferences.reminder_types.as_deref().map(|types| types.split(',').collect::<Vec<_>>()),
        "muted_types": preferences.muted_types.as_deref().map(|types| types.split(',').collect::<Vec<_>>()),
        "summary_hour": preferences.summary_hour,
        "max_per_day": preferences.max_per_day,
        "locale": locale,
        "send_window": preferences.send_window,
        "timezone": zone_of(user.timezone.as_deref()).name(),
    });
    Ok(Outcome::success(output::Done(output::Message { text, json })))
}

/// Users as a table, or as a JSON array.
struct UserList(Vec<User>);

impl Report for UserList {
    fn to_json(&self) -> serde_json::Value {
        json!(self.0)
    }

    fn to_table(&self) -> String {
        let rows = self.0.iter().map(|user| {
            [
                user.id.to_string(),
                user.email.clone(),
                user.name.clone().unwrap_or_default(),
                zone_of(user.timezone.as_deref()).name().to_string(),
                if user.contact_opt_out { "opted out" } else { "yes" }.to_string(),
                time::local_short(user.created_at.instant(), zone_of(user.timezone.as_deref())),
            ]
        });
        output::table(&["id", "email", "name", "timezone", "contact", "created"], rows)
    }
}
