//! Templates that operators edit, `template check`, and `preview`.

use crate::common::smtp::SmtpServer;
use crate::common::{NOW, TestEnv, at, hours, on_both_backends};

fn templates(env: &TestEnv, files: &[(&str, &str)]) -> String {
    let dir = env.path("templates");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    dir.display().to_string()
}

fn send(env: &TestEnv) -> crate::common::Run {
    env.run(&["send", "--unit", "hours", "--targets", "24", "--now", NOW])
}

on_both_backends! {
    fn an_override_changes_the_subject_and_body_and_html_is_escaped(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        env.json(&["user", "add", "--email", "t@example.com", "--name", "Tess"]);
        env.json(&["assignment", "add", "--student", "t@example.com", "--title", "<b>Essay</b> & co",
                   "--due", &at(hours(24)), "--metadata", r#"{"course": "CS101"}"#]);
        let dir = templates(env, &[
            ("reminder_subject.txt", "[{{ assignment.metadata.course }}] {{ assignment.title }}\n({{ reminder_type }})"),
            ("reminder_body.txt", "Dear {{ student.name }}: {{ assignment.title }} in {{ assignment.time_left }}."),
            ("reminder_body.html", "<p>Dear {{ student.name }}: {{ assignment.title }}</p>"),
        ]);
        env.set_var("REMINDERS_TEMPLATES", &dir);
        assert_eq!(send(env).code(), 0);
        let message = &smtp.received()[0];
        // One line, whatever the template or the data hold.
        assert_eq!(message.header("Subject").unwrap(), "[CS101] <b>Essay</b> & co (24h)");
        assert!(message.data.contains("multipart/alternative"), "{}", message.data);
        assert!(message.data.contains("Dear Tess: <b>Essay</b> & co in 1 day."), "{}", message.data);
        assert!(message.data.contains("<p>Dear Tess: &lt;b&gt;Essay&lt;&#x2f;b&gt; &amp; co</p>"), "{}", message.data);
    }

    fn a_broken_template_is_reported_and_stops_send(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        env.add_user("b@example.com", "UTC");
        env.add_assignment("b@example.com", "Essay", &at(hours(24)));
        let dir = templates(env, &[("reminder_body.txt", "Hi {{ student.email }},\n\n{% if assignment.title %}\nno end\n")]);
        env.fails(&["template", "check", &dir], 2, "reminder_body.txt` line");
        env.set_var("REMINDERS_TEMPLATES", &dir);
        let run = send(env);
        assert_eq!(run.code(), 2, "{}", run.describe());
        assert!(run.stderr().contains("reminder_body.txt"), "{}", run.describe());
        assert!(smtp.received().is_empty());
        assert_eq!(env.count("SELECT count(*) AS n FROM reminders"), 0, "nothing was even scheduled");
        // A misspelt variable is caught too.
        let typo = templates(env, &[("reminder_body.txt", "Hi {{ student.nmae }}")]);
        env.fails(&["template", "check", &typo], 2, "reminder_body.txt` line 1");
        // The built-in set passes (an empty folder overrides nothing).
        std::fs::create_dir_all(env.path("empty")).unwrap();
        env.set_var("REMINDERS_TEMPLATES", &env.path("empty").display().to_string());
        assert!(env.ok(&["template", "check"]).contains("all templates render"));
    }

    fn preview_matches_what_send_delivers(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        env.json(&["user", "add", "--email", "p@example.com", "--name", "Pat", "--timezone", "Asia/Tokyo"]);
        let id = env.add_assignment("p@example.com", "Lab report", &at(hours(24)));
        let preview = env.ok(&["preview", &id, "--type", "24h", "--now", NOW]);
        assert!(preview.contains("Subject: Reminder: Lab report is due 2030-03-02 21:00 JST"), "{preview}");
        assert!(preview.contains("Message-ID: <"), "{preview}");
        assert_eq!(env.count("SELECT count(*) AS n FROM reminders"), 0, "preview writes nothing");
        assert_eq!(send(env).code(), 0);
        let sent = smtp.received()[0].data.replace("\r\n", "\n");
        let same = |text: &str, header: &str| text.lines().find(|l| l.starts_with(header)).map(str::to_string);
        for header in ["From:", "To:", "Subject:", "Content-Type:"] {
            assert_eq!(same(&preview, header), same(&sent, header), "{header}");
        }
        let body = |text: &str| text.split_once("\n\n").map(|(_, body)| body.trim_end().to_string());
        assert_eq!(body(&preview), body(&sent));
        // Once scheduled, the preview carries the reminder's own Message-ID.
        let again = env.ok(&["preview", &id, "--now", NOW]);
        assert_eq!(same(&again, "Message-ID:"), same(&sent, "Message-ID:"));
        env.fails(&["preview", &id, "--type", "soon"], 2, "is not a reminder type");
    }
}

#[test]
fn a_missing_folder_a_misspelt_file_and_an_undefined_variable_are_named() {
    let env = TestEnv::new(crate::common::Backend::Sqlite).unwrap();
    env.fails(
        &["template", "check", "nosuchdir"],
        2,
        "the templates folder `nosuchdir` does not exist",
    );
    env.fails(
        &["--templates", "nosuchdir", "template", "check"],
        2,
        "the templates folder `nosuchdir` does not exist",
    );
    let dir = env.path("tpl");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("reminder_subjct.txt"), "Due: {{ assignment.title }}").unwrap();
    let run = env.run(&["template", "check", "tpl"]);
    assert_eq!(run.code(), 0, "{}", run.describe());
    assert!(
        run.stderr()
            .contains("`tpl/reminder_subjct.txt` in the templates folder is not a template")
            && run.stderr().contains("reminder_subject.txt"),
        "{}",
        run.describe()
    );
    std::fs::remove_file(dir.join("reminder_subjct.txt")).unwrap();
    std::fs::write(
        dir.join("reminder_body.txt"),
        "Hi {{ student.name }},\n\n{{ student.nme }} is due\n",
    )
    .unwrap();
    env.fails(
        &["template", "check", "tpl"],
        2,
        "template `tpl/reminder_body.txt` line 3: `student.nme` is undefined",
    );
}
