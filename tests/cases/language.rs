//! Each person's language (issue 32): their templates (`NAME.fr-CA.txt`,
//! then `NAME.fr.txt`, then `NAME.txt`), dates in their words and clock,
//! `Content-Language`, and `lang` on the HTML part.

use crate::common::smtp::{Received, SmtpServer};
use crate::common::{TestEnv, on_both_backends};

const DUE: &str = "2030-01-22T17:00:00Z";
const DAY_BEFORE: &str = "2030-01-21T17:00:00Z";

/// The message each student got, by address.
fn by_student(smtp: &SmtpServer, student: &str) -> Received {
    smtp.received()
        .into_iter()
        .find(|message| message.to.iter().any(|to| to == student))
        .unwrap_or_else(|| panic!("nothing for {student}"))
}

/// The decoded subject and text of a message (the bodies are UTF-8, in
/// quoted-printable or base64 when they are not ASCII).
fn subject_and_text(message: &Received) -> (String, String) {
    let parsed = mailparse::parse_mail(message.data.as_bytes()).unwrap();
    let subject = parsed
        .headers
        .iter()
        .find(|h| h.get_key_ref().eq_ignore_ascii_case("subject"))
        .unwrap()
        .get_value();
    let text = if parsed.subparts.is_empty() {
        parsed.get_body().unwrap()
    } else {
        parsed.subparts[0].get_body().unwrap()
    };
    (subject, text)
}

on_both_backends! {
    fn each_student_reads_their_own_language(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        for (student, locale) in [("fr@x.test", "fr"), ("es@x.test", "es"), ("ca@x.test", "fr-CA"), ("de@x.test", "de"), ("en@x.test", "")] {
            env.ok(&["user", "add", "--email", student, "--name", "Sam", "--timezone", "Europe/Paris", "--locale", locale]);
            env.add_assignment(student, "Essai", DUE);
        }
        // Folder templates: a Canadian French subject, and an HTML body.
        let dir = env.path("templates");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("reminder_subject.fr-CA.txt"), "Rappel (Québec) : {{ assignment.title }}").unwrap();
        std::fs::write(dir.join("reminder_body.html"), "<html><body><p>{{ assignment.title }}</p></body></html>").unwrap();
        let run = env.run(&["--templates", dir.to_str().unwrap(), "send", "--unit", "hours", "--targets", "24", "--now", DAY_BEFORE]);
        assert_eq!(run.code(), 0, "{}", run.describe());
        assert_eq!(smtp.received().len(), 5);

        let (subject, text) = subject_and_text(&by_student(&smtp, "fr@x.test"));
        assert!(subject.starts_with("Rappel"), "{subject}");
        assert!(text.contains("mar. 22 janv. 2030 18:00 CET") && text.contains("dans 1 jour"), "{text}");
        let french = by_student(&smtp, "fr@x.test");
        assert_eq!(french.header("Content-Language").as_deref(), Some("fr"));
        assert!(french.data.contains("lang=\"fr\"") || french.data.contains("lang=3D\"fr\""), "{}", french.data);

        let (subject, text) = subject_and_text(&by_student(&smtp, "es@x.test"));
        assert_eq!(subject, "Recordatorio: Essai se entrega el 2030-01-22 18:00 CET");
        assert!(text.contains("mar 22 ene 2030 18:00 CET") && text.contains("1 día"), "{text}");

        // fr-CA: its own subject from the folder, the French body (fr) otherwise.
        let (subject, text) = subject_and_text(&by_student(&smtp, "ca@x.test"));
        assert_eq!(subject, "Rappel (Québec) : Essai");
        assert!(text.contains("dans 1 jour"), "{text}");
        assert_eq!(by_student(&smtp, "ca@x.test").header("Content-Language").as_deref(), Some("fr-CA"));

        // German: no German template, so English, without Content-Language.
        let german = by_student(&smtp, "de@x.test");
        let (subject, _) = subject_and_text(&german);
        assert!(subject.starts_with("Reminder"), "{subject}");
        assert_eq!(german.header("Content-Language"), None);

        let (subject, text) = subject_and_text(&by_student(&smtp, "en@x.test"));
        assert!(subject.starts_with("Reminder"), "{subject}");
        assert!(text.contains("Tue 22 Jan 2030 18:00 CET") && text.contains("1 day"), "{text}");

        // `template check` names the language no template is written in.
        let check = env.json(&["--templates", dir.to_str().unwrap(), "template", "check"]);
        assert_eq!(check["locales_without_templates"], serde_json::json!([{ "locale": "de", "people": 1 }]));
    }

    fn a_bad_language_exits_2_and_changes_nothing(env: &TestEnv) {
        env.add_user("sam@x.test", "UTC");
        env.fails(&["user", "set", "sam@x.test", "--locale", "french"], 2, "`french` is not a language tag");
        env.fails(&["user", "add", "--email", "kim@x.test", "--locale", "fr-C"], 2, "`fr-C` is not a language tag");
        assert_eq!(env.count("SELECT count(*) AS n FROM users WHERE locale IS NOT NULL"), 0);
        let file = env.path("students.csv");
        std::fs::write(&file, "email,locale\nana@x.test,es-419\nbad@x.test,espanol\n").unwrap();
        env.fails(&["user", "import", file.to_str().unwrap()], 2, "line 3");
        std::fs::write(&file, "email,locale\nana@x.test,ES_mx\n").unwrap();
        env.ok(&["user", "import", file.to_str().unwrap()]);
        assert_eq!(env.text("SELECT locale AS v FROM users WHERE email = 'ana@x.test'").as_deref(), Some("es-MX"));
        let set = env.json(&["user", "set", "ana@x.test", "--locale", "none"]);
        assert_eq!(set["locale"], serde_json::Value::Null);
    }

    fn a_guardian_reads_the_digest_in_their_language(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        env.add_user("ana@x.test", "Europe/Madrid");
        env.add_assignment("ana@x.test", "Ensayo", "2030-03-04T09:00:00Z");
        env.add_assignment("ana@x.test", "Proyecto", "2030-03-07T09:00:00Z");
        let file = env.path("guardians.csv");
        std::fs::write(&file, "student,email,locale\nana@x.test,mama@x.test,es\nana@x.test,bad@x.test,espanol\n").unwrap();
        env.fails(&["guardian", "import", file.to_str().unwrap()], 2, "line 3");
        std::fs::write(&file, "student,email,locale\nana@x.test,mama@x.test,es\n").unwrap();
        env.ok(&["guardian", "import", file.to_str().unwrap()]);
        env.in_use_since("2000-01-01T00:00:00Z");
        env.execute("UPDATE guardians SET created_at = '2000-01-01T00:00:00.000000Z'");
        // Tuesday 5 March 2030, 18:05 in Madrid.
        let run = env.run(&["summary", "--send", "--now", "2030-03-05T17:05:00Z"]);
        assert_eq!(run.code(), 0, "{}", run.describe());
        let digest = by_student(&smtp, "mama@x.test");
        let (subject, text) = subject_and_text(&digest);
        assert_eq!(subject, "1 sin entregar, 1 para esta semana: resumen diario del mar 05 mar 2030");
        assert!(text.contains("Ensayo") && text.contains("lun 04 mar 2030 10:00 CET"), "{text}");
        assert_eq!(digest.header("Content-Language").as_deref(), Some("es"));
    }
}
