//! `reminders guardian …`: add, import, list, unlink and forget guardians,
//! the adults who follow students.

use serde_json::json;

use super::{Context, Outcome, Run};
use crate::cli::{GuardianAddArgs, GuardianCommand};
use crate::db::guardians::{self, Following, GuardianFields};
use crate::db::types::{DigestFrequency, Timestamp};
use crate::db::users;
use crate::db::{DatabaseUrl, Db};
use crate::error::{Failure, invalid};
use crate::input::{Email, parse_locale, zone_of};
use crate::output::{self, Report};
use crate::schedule::window::SendWindow;

impl Run for GuardianCommand {
    fn run(self, cx: &Context) -> Result<Outcome, Failure> {
        let now = Timestamp::now(&cx.clock());
        Ok(guardian(cx.database()?, self, now)?)
    }
}

fn guardian(database: &DatabaseUrl, command: GuardianCommand, now: Timestamp) -> anyhow::Result<Outcome> {
    match command {
        GuardianCommand::Add(args) => add(database, args, now),
        GuardianCommand::Import(args) => super::import::guardians(database, args, now),
        GuardianCommand::List { student } => list(database, student.as_ref()),
        GuardianCommand::Remove { student, email } => remove(database, &student, &email),
        GuardianCommand::Forget { email, yes, smtp_url } => forget(database, &email, yes, smtp_url.as_deref()),
    }
}

fn add(database: &DatabaseUrl, args: GuardianAddArgs, now: Timestamp) -> anyhow::Result<Outcome> {
    let email = super::import::not_the_student(args.email.mailable(args.allow_local_domains)?, &args.student)?;
    let fields = GuardianFields {
        name: args.name.map(|name| Some(name).filter(|name| !name.trim().is_empty())),
        timezone: args.timezone.map(|zone| zone.name().to_string()),
        frequency: args.frequency,
        weekday: args.weekday.map(|day| day.number_from_monday() as i32),
        hour: args.hour,
        locale: args.locale.as_deref().map(parse_locale).transpose()?,
        send_window: args.send_window.as_deref().map(SendWindow::parse_setting).transpose()?,
    };
    let mut db = Db::open(database)?;
    let following = db.in_write_transaction(|db| {
        let student = users::require_user_by_email(db, args.student.as_str())?;
        // A guardian most often lives where the student does.
        let default_zone = zone_of(student.timezone.as_deref());
        let (guardian, _) = guardians::follow(db, student.id, email.as_str(), &fields, default_zone.name(), now)?;
        guardians::following(db, guardian)
    })?;
    Ok(Outcome::success(output::Single(GuardianList(vec![following]))))
}

fn list(database: &DatabaseUrl, student: Option<&Email>) -> anyhow::Result<Outcome> {
    let mut db = Db::open(database)?;
    let student = match student {
        Some(email) => Some(users::require_user_by_email(&mut db, email.as_str())?.id),
        None => None,
    };
    Ok(Outcome::success(GuardianList(guardians::list(&mut db, student)?)))
}

fn remove(database: &DatabaseUrl, student: &Email, email: &Email) -> anyhow::Result<Outcome> {
    let mut db = Db::open(database)?;
    let student = users::require_user_by_email(&mut db, student.as_str())?;
    let guardian = guardians::require_by_email(&mut db, email.as_str())?;
    if !guardians::unfollow(&mut db, guardian.id, student.id)? {
        return Err(invalid(format!(
            "`{}` is not a guardian of `{}`",
            guardian.email, student.email
        )));
    }
    let following = guardians::following(&mut db, guardian)?;
    let still = match following.students.as_slice() {
        [] => format!(
            "they follow no one now, and stay listed until `reminders guardian forget {}`",
            following.guardian.email
        ),
        students => {
            let quoted: Vec<String> = students.iter().map(|student| format!("`{student}`")).collect();
            format!("they still follow {}", quoted.join(", "))
        }
    };
    let text = format!(
        "`{}` no longer follows `{}`; {still}",
        following.guardian.email, student.email
    );
    Ok(Outcome::success(output::Done(output::Message {
        text,
        json: json!(following),
    })))
}

/// Erasure on request: asks first, on a terminal, unless `--yes`.
fn forget(database: &DatabaseUrl, email: &Email, yes: bool, smtp_url: Option<&str>) -> anyhow::Result<Outcome> {
    let outbox = super::user::outbox_of(smtp_url)?;
    let mut db = Db::open(database)?;
    let guardian = guardians::require_by_email(&mut db, email.as_str())?;
    let question = format!("forget the guardian `{}`? This cannot be undone.", guardian.email);
    if !yes && !super::user::confirmed(&question)? {
        return Err(invalid(format!(
            "`guardian forget` erases `{}` for good: confirm on a terminal, or pass --yes",
            guardian.email
        )));
    }
    let erased = guardians::forget(&mut db, &guardian)?;
    let links = format!("their links to {}", output::count(erased.links, "student", "students"));
    let report = super::user::contact_forgotten(
        "guardian",
        &guardian.email,
        ("students_unlinked", links),
        erased,
        outbox.as_deref(),
    );
    super::user::written_through(&mut db, database, &guardian.email, report)
}

/// Guardians as a table, or as a JSON array.
struct GuardianList(Vec<Following>);

impl Report for GuardianList {
    fn to_json(&self) -> serde_json::Value {
        json!(self.0)
    }

    fn to_table(&self) -> String {
        let rows = self.0.iter().map(|Following { guardian, students }| {
            [
                guardian.email.clone(),
                guardian.name.clone().unwrap_or_default(),
                guardian.timezone.clone(),
                when(guardian.frequency, guardian.weekday, guardian.hour),
                if guardian.contact_opt_out { "opted out" } else { "yes" }.to_string(),
                students.join(", "),
            ]
        });
        output::table(&["email", "name", "timezone", "when", "contact", "students"], rows)
    }
}

/// `daily 18:00`, `weekly Fri 17:00` or `off`.
fn when(frequency: DigestFrequency, weekday: i32, hour: i32) -> String {
    match frequency {
        DigestFrequency::Daily => format!("daily {hour:02}:00"),
        DigestFrequency::Weekly => {
            const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
            let day = usize::try_from(weekday - 1).ok().and_then(|index| DAYS.get(index));
            format!("weekly {} {hour:02}:00", day.copied().unwrap_or("?"))
        }
        DigestFrequency::Off => "off".to_string(),
    }
}
