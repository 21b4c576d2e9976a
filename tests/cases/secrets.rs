//! Secrets stay out of what is stored as well as what is printed: a relay
//! that quotes the password in its refusal, a password of one character, a
//! keyword connection string.

use crate::common::smtp::SmtpServer;
use crate::common::{Backend, NOW, TestEnv, at, hours, on_both_backends};

const PASSWORD: &str = "Sup3rS3cretPw";

on_both_backends! {
    fn a_password_quoted_by_the_relay_is_never_stored(env: &TestEnv) {
        let smtp = SmtpServer::start();
        smtp.reply_to_auth(&format!("535 5.7.8 Authentication failed for user mailer, password {PASSWORD}"));
        env.use_smtp(&format!("smtp://mailer:{PASSWORD}@127.0.0.1:{}", smtp.port));
        env.add_user("a@example.com", "UTC");
        env.add_assignment("a@example.com", "Essay", &at(hours(24)));

        // Left for the next run: the relay's fault, not the student's.
        let run = env.send_24h(NOW, &[]);
        assert_eq!(run.code(), 3, "{}", run.describe());
        assert!(run.stdout().contains("535"), "{}", run.describe());
        assert!(!run.stdout().contains(PASSWORD), "{}", run.describe());
        assert!(!run.stderr().contains(PASSWORD), "{}", run.describe());

        let stored: Vec<String> = env
            .texts("SELECT last_error AS v FROM reminders")
            .into_iter()
            .chain(env.texts("SELECT error AS v FROM send_logs"))
            .flatten()
            .collect();
        assert!(stored.iter().any(|text| text.contains("535")), "the refusal is kept: {stored:?}");
        assert!(stored.iter().all(|text| !text.contains(PASSWORD)), "{stored:?}");

        // `status` reads no mail settings, so it could not mask the password.
        env.set_var("SMTP_URL", "");
        for format in ["table", "json"] {
            let status = env.run(&["status", "--format", format]);
            assert_eq!(status.code(), 0, "{}", status.describe());
            assert!(!status.stdout().contains(PASSWORD), "{}", status.describe());
        }
    }

    fn a_one_character_password_masks_only_itself(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&format!("smtp://mailer:0@127.0.0.1:{}", smtp.port));
        if env.backend == Backend::Postgres {
            // Trust authentication ignores the password, and every command holds it.
            let url = env.database_url.replacen("postgres://postgres@", "postgres://postgres:0@", 1);
            assert_ne!(url, env.database_url, "the test URL names the user postgres");
            env.set_var("DATABASE_URL", &url);
        }
        for i in 0..10 {
            let email = format!("s{i}@example.com");
            env.add_user(&email, "UTC");
            env.add_assignment(&email, "Essay", &at(hours(24)));
        }
        let run = env.send_24h(NOW, &[]);
        assert_eq!(run.code(), 0, "{}", run.describe());
        assert_eq!(run.report()["sent"], 10, "{}", run.describe());
        assert_eq!(smtp.received().len(), 10);

        let status = env.run(&["status", "--format", "json"]);
        assert_eq!(status.code(), 0, "{}", status.describe());
        assert!(!status.stdout().contains("***"), "{}", status.describe());
        status.report();

        let check = env.run(&["check"]);
        assert!(check.stdout().contains("mailer:***@"), "masked where it stands: {}", check.describe());
    }
}

#[test]
fn a_keyword_connection_string_is_refused_and_never_printed() {
    let env = TestEnv::unmigrated(Backend::Sqlite).unwrap();
    let keywords = "host=db.example port=5432 dbname=school user=reminders password=Kw0rdSecret";
    env.set_var("DATABASE_URL", keywords);
    for (command, code) in [(&["migrate"][..], 2), (&["user", "list"], 2), (&["check"], 1)] {
        let run = env.run(command);
        assert_eq!(run.code(), code, "{command:?}: {}", run.describe());
        let said = run.stdout() + &run.stderr();
        assert!(
            said.contains("postgres://USER:PASSWORD@HOST:PORT/DBNAME"),
            "{}",
            run.describe()
        );
        assert!(!said.contains("Kw0rdSecret"), "{}", run.describe());
    }
    let created: Vec<_> = std::fs::read_dir(env.path("."))
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name())
        .filter(|name| name.to_string_lossy().contains("host="))
        .collect();
    assert!(created.is_empty(), "no SQLite file named after it: {created:?}");
}
