//! `user forget` reaches every address a student had, the outbox files sent
//! to them, and names the raw reports it cannot reach; on SQLite, deleted
//! rows do not outlive a delete in the file.

use std::path::{Path, PathBuf};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;

use super::users::{full_dump, in_sqlite_files};
use crate::common::smtp::{Received, SmtpServer};
use crate::common::{Backend, TestEnv, on_both_backends};

const SECRET: &str = "0123456789abcdef0123456789abcdef-test-secret";
/// The VERP address, original Message-ID and student written in the sample.
const SAMPLE_VERP: &str = "bounces+obrg6ylfmjzw4ylmmfwwk3tpnfxgo2lsmnqxiyltfzxg@school.example";
const SAMPLE_MESSAGE_ID: &str = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b@school.example";
const SAMPLE_STUDENT: &str = "ghost@students.example";

/// A mail server, and a sender whose messages bounce to a VERP address.
fn sending(env: &TestEnv) -> SmtpServer {
    let smtp = SmtpServer::start();
    env.use_smtp(&smtp.url());
    env.set_var("REMINDERS_SECRET", SECRET);
    env.set_var("REMINDERS_BOUNCE_ADDRESS", "bounces@school.example");
    smtp
}

/// One reminder to `student` (added if new) about an assignment due a day after `at`.
fn send_one(env: &TestEnv, smtp: &SmtpServer, student: &str, title: &str, at: &str) -> Received {
    if env.count(&format!("SELECT count(*) AS n FROM users WHERE email = '{student}'")) == 0 {
        env.add_user(student, "UTC");
    }
    let at_time: chrono::DateTime<chrono::Utc> = at.parse().unwrap();
    let due = (at_time + chrono::Duration::hours(24)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    env.add_assignment(student, title, &due);
    let before = smtp.received().len();
    let run = env.send_24h(at, &[]);
    assert_eq!(run.code(), 0, "{}", run.describe());
    let received = smtp.received();
    assert_eq!(received.len(), before + 1);
    received.last().unwrap().clone()
}

/// A genuine Postfix DSN about `original`, with a Message-ID of its own.
fn dsn_about(original: &Received, serial: usize) -> String {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/bounces/postfix_dsn.eml");
    let message_id = original.header("Message-ID").unwrap();
    let text = std::fs::read_to_string(sample)
        .unwrap()
        .replace(SAMPLE_VERP, &original.from)
        .replace(SAMPLE_MESSAGE_ID, message_id.trim_matches(|c| c == '<' || c == '>'))
        .replace(SAMPLE_STUDENT, &original.to[0]);
    // Its own Message-ID in place of the sample's, so that each is a new report.
    let own = text
        .lines()
        .take_while(|line| !line.is_empty())
        .find(|line| line.to_ascii_lowercase().starts_with("message-id:"))
        .map(str::to_string);
    let mine = format!("Message-ID: <erasure-report-{serial}@mx.example>");
    match own {
        Some(line) => text.replacen(&line, &mine, 1),
        None => format!("{mine}\n{text}"),
    }
}

fn bounces(env: &TestEnv, source: &str) -> serde_json::Value {
    let run = env.run(&["bounces", source, "--format", "json"]);
    assert_eq!(run.code(), 0, "{}", run.describe());
    run.report()
}

fn strings(value: &serde_json::Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|item| item.as_str().unwrap().to_string())
        .collect()
}

on_both_backends! {
    fn forget_after_an_email_edit_leaves_neither_address(env: &TestEnv) {
        let smtp = sending(env);
        let old = send_one(env, &smtp, "oldjill@students.example", "Essay", "2030-03-01T12:00:00Z");
        send_one(env, &smtp, "bob@students.example", "Essay", "2030-03-01T13:00:00Z");
        // A bounce about her old address: a report row and a `bounced` send log.
        let report = env.path("report.eml");
        std::fs::write(&report, dsn_about(&old, 1)).unwrap();
        assert_eq!(bounces(env, report.to_str().unwrap())["hard"], 1);
        env.json(&["user", "edit", "oldjill@students.example", "--email", "newjill@students.example"]);
        send_one(env, &smtp, "newjill@students.example", "Lab", "2030-03-02T12:00:00Z");
        assert!(full_dump(env).contains("oldjill@students.example"));

        let forgotten = env.json(&["user", "forget", "newjill@students.example", "--yes"]);
        assert_eq!(
            strings(&forgotten["addresses"]),
            ["newjill@students.example", "oldjill@students.example"],
            "{forgotten}"
        );
        assert_eq!(forgotten["send_logs"], 3, "two reminders and one bounce: {forgotten}");
        assert_eq!(forgotten["bounce_reports"], 1, "{forgotten}");
        let dump = full_dump(env);
        assert!(!dump.contains("jill"), "an address is still in the database:\n{dump}");
        assert!(dump.contains("bob@students.example"));
        assert_eq!(env.count("SELECT count(*) AS n FROM send_logs WHERE to_email LIKE 'forgotten-%'"), 3);
        if env.backend == Backend::Sqlite {
            assert_eq!(in_sqlite_files(env, "jill"), Vec::<&str>::new(), "left in a free page or the WAL");
        }
    }

    fn a_former_address_another_student_has_now_is_theirs_only_until_the_edit(env: &TestEnv) {
        let smtp = sending(env);
        send_one(env, &smtp, "shared@students.example", "Essay", "2030-03-01T12:00:00Z");
        env.json(&["user", "edit", "shared@students.example", "--email", "jill@students.example", "--now", "2030-03-01T18:00:00Z"]);
        send_one(env, &smtp, "shared@students.example", "Lab", "2030-03-02T12:00:00Z");
        assert_eq!(env.count("SELECT count(*) AS n FROM send_logs WHERE to_email = 'shared@students.example'"), 2);

        let forgotten = env.json(&["user", "forget", "jill@students.example", "--yes"]);
        assert_eq!(forgotten["send_logs"], 1, "{forgotten}");
        // The other student's log keeps the address they have now.
        let kept = env.texts("SELECT CAST(created_at AS TEXT) AS v FROM send_logs WHERE to_email = 'shared@students.example'");
        assert_eq!(kept.len(), 1);
        assert!(kept[0].as_deref().unwrap().starts_with("2030-03-02"), "{kept:?}");
        assert_eq!(env.count("SELECT count(*) AS n FROM users WHERE email = 'shared@students.example'"), 1);
    }

    fn forget_names_the_raw_reports_it_cannot_reach(env: &TestEnv) {
        let smtp = sending(env);
        let first = send_one(env, &smtp, "jill@students.example", "Essay", "2030-03-01T12:00:00Z");
        let second = send_one(env, &smtp, "jill@students.example", "Lab", "2030-03-02T12:00:00Z");
        let bob = send_one(env, &smtp, "bob@students.example", "Essay", "2030-03-03T12:00:00Z");
        let maildir = env.path("Maildir");
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(maildir.join(sub)).unwrap();
        }
        std::fs::write(maildir.join("new/1.report"), dsn_about(&first, 1)).unwrap();
        std::fs::write(maildir.join("new/2.report"), dsn_about(&bob, 2)).unwrap();
        assert_eq!(bounces(env, maildir.to_str().unwrap())["hard"], 2);
        // The second report in an mbox, behind one about Bob.
        let mbox = env.path("reports.mbox");
        let text: String = [dsn_about(&bob, 3), dsn_about(&second, 4)]
            .iter()
            .map(|report| format!("From MAILER-DAEMON Mon Nov 23 08:00:00 2026\n{report}\n"))
            .collect();
        std::fs::write(&mbox, text).unwrap();
        assert_eq!(bounces(env, mbox.to_str().unwrap())["hard"], 2);
        // A report piped in leaves no file behind.
        let run = env.run_with_stdin(&["bounces", "-", "--format", "json"], &dsn_about(&second, 5));
        assert_eq!(run.code(), 0, "{}", run.describe());

        let forgotten = env.json(&["user", "forget", "jill@students.example", "--yes"]);
        let absolute = |path: PathBuf| std::fs::canonicalize(path).unwrap().display().to_string();
        assert_eq!(
            strings(&forgotten["files_left"]),
            [
                absolute(maildir.join("cur/1.report:2,S")),
                format!("{}:2", absolute(mbox.clone())),
            ],
            "{forgotten}"
        );
        let table = env.ok(&["user", "forget", "bob@students.example", "--yes"]);
        assert!(table.contains(&absolute(maildir.join("cur/2.report:2,S"))), "{table}");
        assert!(table.contains(&format!("{}:1", absolute(mbox))), "{table}");
    }

    fn forget_removes_the_outbox_files_sent_to_any_of_her_addresses(env: &TestEnv) {
        let outbox = env.path("outbox");
        std::fs::create_dir(&outbox).unwrap();
        env.use_smtp(&format!("file://{}", outbox.display()));
        let send = |student: &str, title: &str, at: &str| {
            if env.count(&format!("SELECT count(*) AS n FROM users WHERE email = '{student}'")) == 0 {
                env.add_user(student, "UTC");
            }
            let at_time: chrono::DateTime<chrono::Utc> = at.parse().unwrap();
            let due = (at_time + chrono::Duration::hours(24)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            env.add_assignment(student, title, &due);
            let run = env.send_24h(at, &[]);
            assert_eq!(run.code(), 0, "{}", run.describe());
        };
        send("oldjill@students.example", "Essay", "2030-03-01T12:00:00Z");
        send("bob@students.example", "Essay", "2030-03-01T13:00:00Z");
        env.json(&["user", "edit", "oldjill@students.example", "--email", "newjill@students.example"]);
        send("newjill@students.example", "Lab", "2030-03-02T12:00:00Z");
        let files = || -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(&outbox)
                .unwrap()
                .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap())
                .collect();
            names.sort();
            names
        };
        assert_eq!(files().len(), 3);

        let forgotten = env.json(&["user", "forget", "newjill@students.example", "--yes"]);
        assert_eq!(forgotten["outbox_files_removed"], 2, "{forgotten}");
        let left = files();
        assert_eq!(left.len(), 1);
        assert!(left[0].contains("bob@students.example"));
        assert!(!left[0].contains("jill"));
    }

    fn removing_a_student_takes_their_former_addresses_with_them(env: &TestEnv) {
        env.add_user("oldzed@example.com", "UTC");
        env.add_user("amy@example.com", "UTC");
        env.json(&["user", "edit", "oldzed@example.com", "--email", "newzed@example.com"]);
        assert_eq!(env.count("SELECT count(*) AS n FROM former_emails"), 1);
        env.ok(&["user", "remove", "newzed@example.com"]);
        assert_eq!(env.count("SELECT count(*) AS n FROM former_emails"), 0);
        let dump = full_dump(env);
        assert!(!dump.contains("zed@"), "{dump}");
        if env.backend == Backend::Sqlite {
            // secure_delete is on for every connection, not only during a forget.
            assert_eq!(in_sqlite_files(env, "zed@"), Vec::<&str>::new(), "left in a free page or the WAL");
        }
    }
}

/// A reader that keeps an old snapshot keeps the old pages in the WAL: the
/// erasure is committed but not through, and `user forget` says so.
#[test]
fn forget_fails_while_a_reader_holds_the_old_pages() {
    let env = TestEnv::new(Backend::Sqlite).unwrap();
    env.add_user("jill@example.com", "UTC");
    env.add_user("bob@example.com", "UTC");
    let mut reader = SqliteConnection::establish(&env.database_url).unwrap();
    reader.batch_execute("BEGIN; SELECT count(*) FROM users;").unwrap();

    let started = std::time::Instant::now();
    let run = env.fails(
        &["user", "forget", "jill@example.com", "--yes"],
        1,
        "another connection is reading",
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(run.stderr().contains("committed"), "{}", run.describe());
    assert!(
        run.stderr().contains("PRAGMA wal_checkpoint(TRUNCATE)"),
        "{}",
        run.describe()
    );
    assert_eq!(
        env.count("SELECT count(*) AS n FROM users WHERE email = 'jill@example.com'"),
        0
    );
    assert!(
        !in_sqlite_files(&env, "jill@").is_empty(),
        "the old page is still on disk"
    );

    // What the line says to do, once the reader is gone.
    reader.batch_execute("COMMIT").unwrap();
    drop(reader);
    let output = std::process::Command::new("sqlite3")
        .arg(&env.database_url)
        .arg("PRAGMA wal_checkpoint(TRUNCATE)")
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(in_sqlite_files(&env, "jill@"), Vec::<&str>::new());
}
