//! `reminders teacher …`: add, import, list, unlink and forget teachers, and
//! the courses they teach.

use serde_json::json;

use super::{Context, Outcome, Run};
use crate::cli::{TeacherAddArgs, TeacherCommand};
use crate::db::teachers::{self, TeacherFields, Teaching};
use crate::db::types::Timestamp;
use crate::db::{DatabaseUrl, Db};
use crate::error::{Failure, invalid};
use crate::input::{Email, parse_locale};
use crate::output::{self, Report};

impl Run for TeacherCommand {
    fn run(self, cx: &Context) -> Result<Outcome, Failure> {
        let now = Timestamp::now(&cx.clock());
        Ok(teacher(cx.database()?, self, now)?)
    }
}

fn teacher(database: &DatabaseUrl, command: TeacherCommand, now: Timestamp) -> anyhow::Result<Outcome> {
    match command {
        TeacherCommand::Add(args) => add(database, args, now),
        TeacherCommand::Import(args) => super::import::teachers(database, args, now),
        TeacherCommand::List { course } => list(database, course.as_deref()),
        TeacherCommand::Remove { course, email } => remove(database, &course, &email),
        TeacherCommand::Forget { email, yes, smtp_url } => forget(database, &email, yes, smtp_url.as_deref()),
    }
}

fn add(database: &DatabaseUrl, args: TeacherAddArgs, now: Timestamp) -> anyhow::Result<Outcome> {
    let email = args.email.mailable(args.allow_local_domains)?;
    let fields = TeacherFields {
        name: args.name.map(|name| Some(name).filter(|name| !name.trim().is_empty())),
        timezone: args.timezone.map(|zone| zone.name().to_string()),
        weekday: args.weekday.map(|day| day.number_from_monday() as i32),
        hour: args.hour,
        locale: args.locale.as_deref().map(parse_locale).transpose()?,
    };
    let mut db = Db::open(database)?;
    let teaching = db.in_write_transaction(|db| {
        let (teacher, _) = teachers::teach(db, &args.course, email.as_str(), &fields, now)?;
        teachers::teaching(db, teacher)
    })?;
    Ok(Outcome::success(output::Single(TeacherList(vec![teaching]))))
}

fn list(database: &DatabaseUrl, course: Option<&str>) -> anyhow::Result<Outcome> {
    let mut db = Db::open(database)?;
    Ok(Outcome::success(TeacherList(teachers::list(&mut db, course)?)))
}

fn remove(database: &DatabaseUrl, course: &str, email: &Email) -> anyhow::Result<Outcome> {
    let mut db = Db::open(database)?;
    let teacher = teachers::require_by_email(&mut db, email.as_str())?;
    if !teachers::stop_teaching(&mut db, teacher.id, course)? {
        return Err(invalid(format!("`{}` does not teach `{course}`", teacher.email)));
    }
    let teaching = teachers::teaching(&mut db, teacher)?;
    let still = match teaching.courses.as_slice() {
        [] => format!(
            "they teach nothing now, and stay listed until `reminders teacher forget {}`",
            teaching.teacher.email
        ),
        courses => {
            let quoted: Vec<String> = courses.iter().map(|course| format!("`{course}`")).collect();
            format!("they still teach {}", quoted.join(", "))
        }
    };
    let text = format!("`{}` no longer teaches `{course}`; {still}", teaching.teacher.email);
    Ok(Outcome::success(output::Done(output::Message {
        text,
        json: json!(teaching),
    })))
}

/// Erasure on request: asks first, on a terminal, unless `--yes`.
fn forget(database: &DatabaseUrl, email: &Email, yes: bool, smtp_url: Option<&str>) -> anyhow::Result<Outcome> {
    let outbox = super::user::outbox_of(smtp_url)?;
    let mut db = Db::open(database)?;
    let teacher = teachers::require_by_email(&mut db, email.as_str())?;
    let question = format!("forget the teacher `{}`? This cannot be undone.", teacher.email);
    if !yes && !super::user::confirmed(&question)? {
        return Err(invalid(format!(
            "`teacher forget` erases `{}` for good: confirm on a terminal, or pass --yes",
            teacher.email
        )));
    }
    let erased = teachers::forget(&mut db, &teacher)?;
    let links = format!("their links to {}", output::count(erased.links, "course", "courses"));
    let report = super::user::contact_forgotten(
        "teacher",
        &teacher.email,
        ("courses_unlinked", links),
        erased,
        outbox.as_deref(),
    );
    super::user::written_through(&mut db, database, &teacher.email, report)
}

/// Teachers as a table, or as a JSON array.
struct TeacherList(Vec<Teaching>);

impl Report for TeacherList {
    fn to_json(&self) -> serde_json::Value {
        json!(self.0)
    }

    fn to_table(&self) -> String {
        let rows = self.0.iter().map(|Teaching { teacher, courses }| {
            [
                teacher.email.clone(),
                teacher.name.clone().unwrap_or_default(),
                teacher.timezone.clone(),
                report_time(teacher.weekday, teacher.hour),
                if teacher.contact_opt_out { "opted out" } else { "yes" }.to_string(),
                courses.join(", "),
            ]
        });
        output::table(&["email", "name", "timezone", "report", "contact", "courses"], rows)
    }
}

/// When the weekly report goes out: `Fri 16:00`.
fn report_time(weekday: i32, hour: i32) -> String {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let day = usize::try_from(weekday - 1).ok().and_then(|index| DAYS.get(index));
    format!("{} {hour:02}:00", day.copied().unwrap_or("?"))
}
