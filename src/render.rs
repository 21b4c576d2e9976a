//! Message templates: built-in defaults, overridden file by file from a folder
//! (`--templates DIR` or `REMINDERS_TEMPLATES`), rendered with minijinja.
//!
//! | file | what |
//! |---|---|
//! | `reminder_subject.txt`, `reminder_body.txt`, `reminder_body.html` | the reminder |
//! | `overdue_subject.txt`, `overdue_body.txt`, `overdue_body.html` | an overdue notice (`send --overdue`) |
//! | `summary_subject.txt`, `summary_body.txt`, `summary_body.html` | the daily summary |
//! | `digest_subject.txt`, `digest_body.txt`, `digest_body.html` | several reminders in one message (`send --digest`) |
//! | `guardian_digest_subject.txt`, `guardian_digest_body.txt`, `guardian_digest_body.html` | a guardian's daily or weekly digest |
//! | `escalation_subject.txt`, `escalation_body.txt`, `escalation_body.html` | a student's overdue notice, to a guardian (`send --escalate-after`) |
//! | `teacher_report_subject.txt`, `teacher_report_body.txt`, `teacher_report_body.html` | a teacher's weekly course report |
//!
//! The `.html` bodies are optional; when present, the message gets a
//! `multipart/alternative` HTML part, and values inserted into it are escaped.
//!
//! Each file may have versions in other languages, named by BCP 47 tag before
//! the extension (`reminder_body.fr-CA.txt`, `reminder_body.fr.txt`): a person
//! whose locale is `fr-CA` gets the `fr-CA` file, else the `fr` one, else the
//! plain one. Spanish (`es`) and French (`fr`) are built in.

use std::path::{Path, PathBuf};

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use crate::error::invalid;

/// Every template file, with its built-in text (none for the optional HTML).
const FILES: [(&str, Option<&str>); 21] = [
    (
        "reminder_subject.txt",
        Some(include_str!("../templates/reminder_subject.txt")),
    ),
    (
        "reminder_body.txt",
        Some(include_str!("../templates/reminder_body.txt")),
    ),
    ("reminder_body.html", None),
    (
        "overdue_subject.txt",
        Some(include_str!("../templates/overdue_subject.txt")),
    ),
    ("overdue_body.txt", Some(include_str!("../templates/overdue_body.txt"))),
    ("overdue_body.html", None),
    (
        "summary_subject.txt",
        Some(include_str!("../templates/summary_subject.txt")),
    ),
    ("summary_body.txt", Some(include_str!("../templates/summary_body.txt"))),
    ("summary_body.html", None),
    (
        "digest_subject.txt",
        Some(include_str!("../templates/digest_subject.txt")),
    ),
    ("digest_body.txt", Some(include_str!("../templates/digest_body.txt"))),
    ("digest_body.html", None),
    (
        "guardian_digest_subject.txt",
        Some(include_str!("../templates/guardian_digest_subject.txt")),
    ),
    (
        "guardian_digest_body.txt",
        Some(include_str!("../templates/guardian_digest_body.txt")),
    ),
    ("guardian_digest_body.html", None),
    (
        "escalation_subject.txt",
        Some(include_str!("../templates/escalation_subject.txt")),
    ),
    (
        "escalation_body.txt",
        Some(include_str!("../templates/escalation_body.txt")),
    ),
    ("escalation_body.html", None),
    (
        "teacher_report_subject.txt",
        Some(include_str!("../templates/teacher_report_subject.txt")),
    ),
    (
        "teacher_report_body.txt",
        Some(include_str!("../templates/teacher_report_body.txt")),
    ),
    ("teacher_report_body.html", None),
];

/// The built-in translations, as `FILES` names them with a language tag.
const TRANSLATIONS: [(&str, &str); 28] = [
    ("digest_body.es.txt", include_str!("../templates/digest_body.es.txt")),
    ("digest_body.fr.txt", include_str!("../templates/digest_body.fr.txt")),
    (
        "digest_subject.es.txt",
        include_str!("../templates/digest_subject.es.txt"),
    ),
    (
        "digest_subject.fr.txt",
        include_str!("../templates/digest_subject.fr.txt"),
    ),
    (
        "escalation_body.es.txt",
        include_str!("../templates/escalation_body.es.txt"),
    ),
    (
        "escalation_body.fr.txt",
        include_str!("../templates/escalation_body.fr.txt"),
    ),
    (
        "escalation_subject.es.txt",
        include_str!("../templates/escalation_subject.es.txt"),
    ),
    (
        "escalation_subject.fr.txt",
        include_str!("../templates/escalation_subject.fr.txt"),
    ),
    (
        "guardian_digest_body.es.txt",
        include_str!("../templates/guardian_digest_body.es.txt"),
    ),
    (
        "guardian_digest_body.fr.txt",
        include_str!("../templates/guardian_digest_body.fr.txt"),
    ),
    (
        "guardian_digest_subject.es.txt",
        include_str!("../templates/guardian_digest_subject.es.txt"),
    ),
    (
        "guardian_digest_subject.fr.txt",
        include_str!("../templates/guardian_digest_subject.fr.txt"),
    ),
    ("overdue_body.es.txt", include_str!("../templates/overdue_body.es.txt")),
    ("overdue_body.fr.txt", include_str!("../templates/overdue_body.fr.txt")),
    (
        "overdue_subject.es.txt",
        include_str!("../templates/overdue_subject.es.txt"),
    ),
    (
        "overdue_subject.fr.txt",
        include_str!("../templates/overdue_subject.fr.txt"),
    ),
    (
        "reminder_body.es.txt",
        include_str!("../templates/reminder_body.es.txt"),
    ),
    (
        "reminder_body.fr.txt",
        include_str!("../templates/reminder_body.fr.txt"),
    ),
    (
        "reminder_subject.es.txt",
        include_str!("../templates/reminder_subject.es.txt"),
    ),
    (
        "reminder_subject.fr.txt",
        include_str!("../templates/reminder_subject.fr.txt"),
    ),
    ("summary_body.es.txt", include_str!("../templates/summary_body.es.txt")),
    ("summary_body.fr.txt", include_str!("../templates/summary_body.fr.txt")),
    (
        "summary_subject.es.txt",
        include_str!("../templates/summary_subject.es.txt"),
    ),
    (
        "summary_subject.fr.txt",
        include_str!("../templates/summary_subject.fr.txt"),
    ),
    (
        "teacher_report_body.es.txt",
        include_str!("../templates/teacher_report_body.es.txt"),
    ),
    (
        "teacher_report_body.fr.txt",
        include_str!("../templates/teacher_report_body.fr.txt"),
    ),
    (
        "teacher_report_subject.es.txt",
        include_str!("../templates/teacher_report_subject.es.txt"),
    ),
    (
        "teacher_report_subject.fr.txt",
        include_str!("../templates/teacher_report_subject.fr.txt"),
    ),
];

/// The kinds of message.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Reminder,
    Overdue,
    Summary,
    Digest,
    GuardianDigest,
    Escalation,
    TeacherReport,
}

impl Kind {
    fn prefix(self) -> &'static str {
        match self {
            Kind::Reminder => "reminder",
            Kind::Overdue => "overdue",
            Kind::Summary => "summary",
            Kind::Digest => "digest",
            Kind::GuardianDigest => "guardian_digest",
            Kind::Escalation => "escalation",
            Kind::TeacherReport => "teacher_report",
        }
    }
}

/// A rendered message: a one-line subject, a text body, maybe an HTML body.
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    /// The reader's language (BCP 47), for `Content-Language` and the HTML
    /// part's `lang`.
    pub language: Option<String>,
}

/// The loaded templates, shared by the sending threads.
pub struct Templates {
    env: Environment<'static>,
    /// Where overrides came from, for messages.
    dir: Option<PathBuf>,
}

impl Templates {
    /// The defaults, with every file found in `dir` in place of its default.
    /// A template that does not parse is bad input, reported with file and line.
    pub fn load(dir: Option<&Path>) -> anyhow::Result<Templates> {
        if let Some(dir) = dir {
            if !dir.is_dir() {
                return Err(invalid(format!(
                    "the templates folder `{}` does not exist (or is not a folder)",
                    dir.display()
                )));
            }
            warn_of_unknown_files(dir);
        }
        let mut env = Environment::new();
        // A misspelt variable is an error, not an empty string in a student's inbox.
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        let templates = Templates {
            env: Environment::new(),
            dir: dir.map(Path::to_path_buf),
        };
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|error| invalid(format!("cannot read `{}`: {error}", path.display())))
        };
        for (name, default) in FILES {
            let source = match dir.map(|dir| dir.join(name)).filter(|path| path.exists()) {
                Some(path) => Some(read(&path)?),
                None => default.map(str::to_string),
            };
            if let Some(source) = source {
                env.add_template_owned(name, source)
                    .map_err(|error| templates.describe(&error))?;
            }
        }
        // The built-in translations are compiled when a message first needs
        // one, not on every run (a unit test renders them all); the folder's,
        // which replace them, are compiled now, so a broken one stops the run.
        env.set_loader(|name| {
            Ok(TRANSLATIONS
                .iter()
                .find(|(known, _)| *known == name)
                .map(|(_, source)| source.to_string()))
        });
        for (name, path) in dir.map(translations_in).unwrap_or_default() {
            env.add_template_owned(name, read(&path)?)
                .map_err(|error| templates.describe(&error))?;
        }
        Ok(Templates { env, ..templates })
    }

    /// Renders every template against sample data: the first error, with file
    /// and line, is bad input.
    pub fn check(&self) -> anyhow::Result<()> {
        // Every language there is a template for, each in turn.
        let mut tags: Vec<String> = vec!["es".into(), "fr".into()];
        for (name, _) in self.dir.as_deref().map(translations_in).unwrap_or_default() {
            tags.extend(name.split('.').nth(1).map(str::to_string));
        }
        tags.sort();
        tags.dedup();
        let locales = std::iter::once(None).chain(tags.iter().map(|tag| Some(tag.as_str())));
        for locale in locales {
            self.render(Kind::Reminder, locale, &sample_reminder())?;
            self.render(Kind::Overdue, locale, &sample_overdue())?;
            self.render(Kind::Summary, locale, &sample_summary())?;
            self.render(Kind::Digest, locale, &sample_digest())?;
            self.render(Kind::GuardianDigest, locale, &sample_guardian_digest())?;
            self.render(Kind::Escalation, locale, &sample_escalation())?;
            self.render(Kind::TeacherReport, locale, &sample_teacher_report())?;
        }
        Ok(())
    }

    /// Renders one kind of message, in `locale`'s templates where there
    /// are some (see the module's notes).
    pub fn render(&self, kind: Kind, locale: Option<&str>, context: &impl Serialize) -> anyhow::Result<Rendered> {
        let render = |part: &str| -> anyhow::Result<Option<String>> {
            let (stem, extension) = part.split_once('.').unwrap_or((part, ""));
            let base = format!("{}_{stem}", kind.prefix());
            let mut names: Vec<String> = fallbacks(locale)
                .iter()
                .map(|tag| format!("{base}.{tag}.{extension}"))
                .collect();
            names.push(format!("{base}.{extension}"));
            match names.iter().find_map(|name| self.env.get_template(name).ok()) {
                Some(template) => template
                    .render(minijinja::value::Serde(context))
                    .map(Some)
                    .map_err(|error| self.describe(&error)),
                None => Ok(None),
            }
        };
        let subject = render("subject.txt")?.unwrap_or_default();
        // The language the body is written in: the reader's when a template
        // in it (or in its language, `fr` for `fr-CA`) was found, else English.
        let language = locale.filter(|locale| {
            let base = format!("{}_body", kind.prefix());
            fallbacks(Some(locale))
                .iter()
                .any(|tag| self.env.get_template(&format!("{base}.{tag}.txt")).is_ok())
        });
        Ok(Rendered {
            subject: header_safe(&subject),
            text: render("body.txt")?.unwrap_or_default(),
            html: render("body.html")?.map(|html| with_lang(html, language)),
            language: language.map(str::to_string),
        })
    }

    /// Whether any file of `kind` has a version for `locale` (or its language).
    pub fn speaks(&self, locale: &str) -> bool {
        fallbacks(Some(locale)).iter().any(|tag| {
            FILES.iter().any(|(name, _)| {
                let (stem, extension) = name.split_once('.').unwrap_or((name, ""));
                self.env.get_template(&format!("{stem}.{tag}.{extension}")).is_ok()
            })
        })
    }

    /// Which files are in use, and where each comes from.
    pub fn sources(&self) -> Vec<(String, String)> {
        FILES
            .iter()
            .filter(|(name, _)| self.env.get_template(name).is_ok())
            .map(|(name, _)| {
                let path = self.dir.as_ref().map(|dir| dir.join(name)).filter(|path| path.exists());
                (
                    name.to_string(),
                    path.map_or("built in".to_string(), |path| path.display().to_string()),
                )
            })
            .collect()
    }

    fn describe(&self, error: &minijinja::Error) -> anyhow::Error {
        let name = error.name().unwrap_or("template");
        let file = match &self.dir {
            Some(dir) if dir.join(name).exists() => dir.join(name).display().to_string(),
            _ => name.to_string(),
        };
        let line = error.line().map(|line| format!(" line {line}")).unwrap_or_default();
        let mut reason = error
            .detail()
            .map(str::to_string)
            .unwrap_or_else(|| error.kind().to_string());
        // Name what is undefined: the expression at the error, as written.
        if error.kind() == minijinja::ErrorKind::UndefinedError
            && let (Some(source), Some(range)) = (error.template_source(), error.range())
            && let Some(expression) = source.get(range)
        {
            reason = format!("`{}` is undefined", expression.trim());
        }
        invalid(format!("template `{file}`{line}: {reason}"))
    }
}

/// The line at the foot of every message when the preferences page is set,
/// as text and as HTML.
pub struct Footer {
    pub text: String,
    pub html: String,
}

/// The footer in the message's language (`language` is the one its body
/// was written in), with the link to the reader's own page.
pub fn preferences_footer(language: Option<&str>, url: &str) -> Footer {
    let base = language.and_then(|tag| tag.split('-').next()).unwrap_or_default();
    let sentence = match base {
        "es" => "Elija qué correos recibe, o deje de recibirlos:",
        "fr" => "Choisissez les courriels que vous recevez, ou arrêtez-les :",
        _ => "Choose which emails you get, or stop them:",
    };
    let escaped = minijinja::HtmlEscape(url).to_string();
    Footer {
        text: format!("{sentence} {url}"),
        html: format!(
            "<p style=\"font-size:small\">{} <a href=\"{escaped}\">{escaped}</a></p>",
            minijinja::HtmlEscape(sentence)
        ),
    }
}

/// The HTML with `lang` on its `<html>` element, when it has one without:
/// screen readers then speak it in the reader's language.
fn with_lang(html: String, locale: Option<&str>) -> String {
    let Some(tag) = locale else { return html };
    let lower = html.to_ascii_lowercase();
    let Some(at) = lower.find("<html") else { return html };
    let end = lower[at..].find('>').map_or(lower.len(), |end| at + end);
    if lower[at..end].contains("lang=") {
        return html;
    }
    format!("{} lang=\"{tag}\"{}", &html[..at + 5], &html[at + 5..])
}

/// The tags to look for, most specific first: `fr-CA` gives `fr-CA`, `fr`.
fn fallbacks(locale: Option<&str>) -> Vec<String> {
    let Some(tag) = locale else { return Vec::new() };
    let parts: Vec<&str> = tag.split('-').collect();
    (1..=parts.len()).rev().map(|n| parts[..n].join("-")).collect()
}

/// The translations in a templates folder: `NAME.TAG.EXT` for each `NAME.EXT`
/// of `FILES`, by template name.
fn translations_in(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            is_translation(&name).then(|| (name, entry.path()))
        })
        .collect()
}

/// Whether `name` is a translated template's: `reminder_body.fr-CA.txt`.
fn is_translation(name: &str) -> bool {
    let mut parts = name.splitn(3, '.');
    let (Some(stem), Some(tag), Some(extension)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let plain = format!("{stem}.{extension}");
    FILES.iter().any(|(known, _)| *known == plain) && crate::input::parse_locale(tag).is_ok_and(|t| t.is_some())
}

/// Warns of each file in a templates folder that is not a template's name
/// (a misspelt one would be ignored), naming the ones that are.
fn warn_of_unknown_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || FILES.iter().any(|(known, _)| *known == name) || is_translation(&name) {
            continue;
        }
        let expected: Vec<&str> = FILES.iter().map(|(known, _)| *known).collect();
        crate::log::warning!(
            "`{}` in the templates folder is not a template, and is ignored; the names are {}",
            entry.path().display(),
            expected.join(", ")
        );
    }
}

/// The student, as templates see them.
#[derive(Debug, Serialize)]
pub struct StudentView {
    pub email: String,
    pub name: Option<String>,
    pub timezone: String,
}

/// The assignment, as a reminder template sees it.
#[derive(Debug, Serialize)]
pub struct AssignmentView {
    /// On one line, whatever the stored title holds.
    pub title: String,
    pub description: Option<String>,
    /// RFC 3339, UTC.
    pub due_utc: String,
    /// `Sat 27 Sep 2025 16:00 PDT`, in the student's zone.
    pub due_local: String,
    /// `2025-09-27 16:00 PDT`.
    pub due_local_short: String,
    /// `1 day 2 hours`.
    pub time_left: String,
    /// How long ago it was due, `1 day 2 hours`, once it is past due.
    pub overdue_by: Option<String>,
    /// Until when late work is accepted, `Sat 27 Sep 2025 16:00 PDT`, if the
    /// assignment has a cut-off.
    pub cutoff_local: Option<String>,
    /// When the deadline moved: the old one, `Fri 17 Jan` (with the time
    /// when the day is the same).
    pub moved_from: Option<String>,
    pub metadata: serde_json::Value,
}

/// What a reminder template sees.
#[derive(Debug, Serialize)]
pub struct ReminderContext {
    pub student: StudentView,
    pub assignment: AssignmentView,
    pub reminder_type: String,
}

/// What a digest template sees: the assignments nearest first.
#[derive(Debug, Serialize)]
pub struct DigestContext {
    pub student: StudentView,
    pub count: usize,
    /// Whether any of them is past due (an overdue step).
    pub overdue: bool,
    pub assignments: Vec<DigestItem>,
}

/// One reminder of a digest.
#[derive(Debug, Serialize)]
pub struct DigestItem {
    #[serde(flatten)]
    pub assignment: AssignmentView,
    pub reminder_type: String,
}

/// An assignment in a summary list.
#[derive(Debug, Serialize)]
pub struct ItemView {
    pub title: String,
    pub due_utc: String,
    pub due_local: String,
}

#[derive(Debug, Serialize)]
pub struct Counts {
    pub current: i64,
    pub overdue: i64,
    pub completed: i64,
}

/// What a summary template sees. The lists are nearest first and at most ten
/// long; `*_more` counts the rest.
#[derive(Debug, Serialize)]
pub struct SummaryContext {
    pub student: StudentView,
    /// The student's local date, `Thu 25 Sep 2025`.
    pub date: String,
    pub counts: Counts,
    pub overdue: Vec<ItemView>,
    pub overdue_more: usize,
    pub upcoming: Vec<ItemView>,
    pub upcoming_more: usize,
}

/// A guardian or a teacher, as templates see them.
#[derive(Debug, Serialize)]
pub struct PersonView {
    pub email: String,
    pub name: Option<String>,
    pub timezone: String,
}

/// What a guardian's digest template sees: each student they follow, with
/// the missing work (past due, not completed, still accepted), most recent
/// first, and the work due in the next 7 days, soonest first, in the
/// guardian's zone.
#[derive(Debug, Serialize)]
pub struct GuardianDigestContext {
    pub guardian: PersonView,
    /// The guardian's local date, `Thu 25 Sep 2025`.
    pub date: String,
    /// Whether this is the weekly digest (else the daily one).
    pub weekly: bool,
    pub missing: usize,
    pub upcoming: usize,
    pub students: Vec<FollowedStudentView>,
}

#[derive(Debug, Serialize)]
pub struct FollowedStudentView {
    pub email: String,
    pub name: Option<String>,
    pub missing: Vec<ItemView>,
    pub upcoming: Vec<ItemView>,
}

/// What an escalation template sees: the guardian, the student, and the
/// assignment as the student's overdue notice has it, in the guardian's zone.
#[derive(Debug, Serialize)]
pub struct EscalationContext {
    pub guardian: PersonView,
    pub student: PersonView,
    pub assignment: AssignmentView,
    pub reminder_type: String,
}

/// What a teacher's report template sees: for each course, the assignments
/// due in the last 7 days with who has not completed them, then those due
/// in the next 7 days, in the teacher's zone.
#[derive(Debug, Serialize)]
pub struct TeacherReportContext {
    pub teacher: PersonView,
    /// The teacher's local date, `Fri 26 Sep 2025`.
    pub date: String,
    pub courses: Vec<CourseView>,
}

#[derive(Debug, Serialize)]
pub struct CourseView {
    pub course: String,
    pub past: Vec<CourseItemView>,
    pub upcoming: Vec<CourseItemView>,
}

/// One assignment of a course: each student has a copy of it.
#[derive(Debug, Serialize)]
pub struct CourseItemView {
    pub title: String,
    pub due_local: String,
    pub students: usize,
    pub completed: usize,
    /// Those who have not completed it (empty for work still to come).
    pub not_completed: Vec<PersonView>,
}

fn sample_person(name: &str, email: &str) -> PersonView {
    PersonView {
        email: email.into(),
        name: Some(name.into()),
        timezone: "Europe/London".into(),
    }
}

fn sample_item(title: &str) -> ItemView {
    ItemView {
        title: title.into(),
        due_utc: "2025-09-27T15:00:00Z".into(),
        due_local: "Sat 27 Sep 2025 16:00 BST".into(),
    }
}

fn sample_guardian_digest() -> GuardianDigestContext {
    GuardianDigestContext {
        guardian: sample_person("Grace", "grace@example.org"),
        date: "Fri 26 Sep 2025".into(),
        weekly: false,
        missing: 1,
        upcoming: 1,
        students: vec![FollowedStudentView {
            email: "ada@example.edu".into(),
            name: Some("Ada".into()),
            missing: vec![sample_item("Essay draft")],
            upcoming: vec![sample_item("Problem set 1")],
        }],
    }
}

fn sample_escalation() -> EscalationContext {
    let overdue = sample_overdue();
    EscalationContext {
        guardian: sample_person("Grace", "grace@example.org"),
        student: sample_person("Ada", "ada@example.edu"),
        assignment: overdue.assignment,
        reminder_type: overdue.reminder_type,
    }
}

fn sample_teacher_report() -> TeacherReportContext {
    TeacherReportContext {
        teacher: sample_person("Alan", "alan@example.edu"),
        date: "Fri 26 Sep 2025".into(),
        courses: vec![CourseView {
            course: "CS101".into(),
            past: vec![CourseItemView {
                title: "Problem set 1".into(),
                due_local: "Wed 24 Sep 2025 16:00 BST".into(),
                students: 2,
                completed: 1,
                not_completed: vec![sample_person("Ada", "ada@example.edu")],
            }],
            upcoming: vec![CourseItemView {
                title: "Lab report".into(),
                due_local: "Wed 1 Oct 2025 16:00 BST".into(),
                students: 2,
                completed: 0,
                not_completed: Vec::new(),
            }],
        }],
    }
}

fn sample_student() -> StudentView {
    StudentView {
        email: "ada@example.edu".into(),
        name: Some("Ada".into()),
        timezone: "Europe/London".into(),
    }
}

fn sample_digest() -> DigestContext {
    let reminder = sample_reminder();
    DigestContext {
        student: reminder.student,
        count: 1,
        overdue: false,
        assignments: vec![DigestItem {
            assignment: reminder.assignment,
            reminder_type: reminder.reminder_type,
        }],
    }
}

fn sample_reminder() -> ReminderContext {
    ReminderContext {
        student: sample_student(),
        assignment: AssignmentView {
            title: "Problem set 1".into(),
            description: Some("Chapter 4, exercises 1-10".into()),
            due_utc: "2025-09-27T15:00:00Z".into(),
            due_local: "Sat 27 Sep 2025 16:00 BST".into(),
            due_local_short: "2025-09-27 16:00 BST".into(),
            time_left: "1 day".into(),
            overdue_by: None,
            cutoff_local: None,
            moved_from: None,
            metadata: serde_json::json!({ "course": "CS101" }),
        },
        reminder_type: "24h".into(),
    }
}

fn sample_overdue() -> ReminderContext {
    let mut overdue = sample_reminder();
    overdue.assignment.time_left = "less than a minute".into();
    overdue.assignment.overdue_by = Some("1 day".into());
    overdue.assignment.cutoff_local = Some("Mon 29 Sep 2025 16:00 BST".into());
    overdue.reminder_type = "overdue-24h".into();
    overdue
}

fn sample_summary() -> SummaryContext {
    let item = |title: &str| ItemView {
        title: title.into(),
        due_utc: "2025-09-27T15:00:00Z".into(),
        due_local: "Sat 27 Sep 2025 16:00 BST".into(),
    };
    SummaryContext {
        student: sample_student(),
        date: "Fri 26 Sep 2025".into(),
        counts: Counts {
            current: 2,
            overdue: 1,
            completed: 3,
        },
        overdue: vec![item("Essay draft")],
        overdue_more: 0,
        upcoming: vec![item("Problem set 1"), item("Lab report")],
        upcoming_more: 0,
    }
}
/// A header value on one line: CR, LF and other control characters become
/// spaces, so data can never start a header or add a recipient.
pub fn header_safe(text: &str) -> String {
    let spaced: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    spaced.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_preferences_footer_speaks_the_readers_language_and_escapes_the_link() {
        let url = "https://school.example/p?token=abc&x=<1>";
        let french = super::preferences_footer(Some("fr-CA"), url);
        assert!(french.text.starts_with("Choisissez") && french.text.ends_with(url));
        assert!(french.html.contains("token=abc&amp;x=&lt;1&gt;") && !french.html.contains("<1>"));
        assert!(super::preferences_footer(Some("es"), url).text.starts_with("Elija"));
        assert!(
            super::preferences_footer(None, url)
                .text
                .starts_with("Choose which emails")
        );
    }

    use super::*;

    /// Runs without a templates folder skip the check, so it lives here.
    #[test]
    fn the_built_in_templates_render_every_kind() {
        Templates::load(None).unwrap().check().unwrap();
    }

    #[test]
    fn a_folder_translation_replaces_the_built_in_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("reminder_subject.fr.txt"),
            "Ici : {{ assignment.title }}",
        )
        .unwrap();
        let templates = Templates::load(Some(dir.path())).unwrap();
        let french = templates
            .render(Kind::Reminder, Some("fr-CA"), &sample_reminder())
            .unwrap();
        assert_eq!(french.subject, "Ici : Problem set 1");
        assert!(french.text.starts_with("Bonjour"), "{}", french.text);
        let spanish = templates
            .render(Kind::Reminder, Some("es"), &sample_reminder())
            .unwrap();
        assert!(spanish.subject.starts_with("Recordatorio"), "{}", spanish.subject);
    }
}
