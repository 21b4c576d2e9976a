//! Guardians and teachers as people whose mail can bounce, who can
//! unsubscribe, and who can ask to be forgotten (issue 31, "Privacy" and
//! "Bounces, opt-outs and unsubscribes"): the real binary, a real SMTP
//! server on loopback, both backends.

use std::path::{Path, PathBuf};

use super::users::{assert_gone, full_dump};
use crate::common::smtp::{Received, SmtpServer};
use crate::common::{TestEnv, on_both_backends};

const SECRET: &str = "0123456789abcdef0123456789abcdef-test-secret";
/// The VERP address, original Message-ID and recipient written in the sample.
const SAMPLE_VERP: &str = "bounces+obrg6ylfmjzw4ylmmfwwk3tpnfxgo2lsmnqxiyltfzxg@school.example";
const SAMPLE_MESSAGE_ID: &str = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b@school.example";
const SAMPLE_STUDENT: &str = "ghost@students.example";

const STUDENT: &str = "jill@students.example";
const GUARDIAN: &str = "pat.guardian@family.example";
const TEACHER: &str = "lee.teacher@staff.example";

/// 2030-03-04 is a Monday: a guardian's daily digest goes out at 18:00 UTC
/// Monday to Friday, a teacher's report on Fridays at 16:00 UTC.
const MONDAY: &str = "2030-03-04";

/// A mail server, and a sender with a bounce address, the secret and both
/// kinds of List-Unsubscribe.
fn sending(env: &TestEnv) -> SmtpServer {
    let smtp = SmtpServer::start();
    env.use_smtp(&smtp.url());
    env.set_var("REMINDERS_SECRET", SECRET);
    env.set_var("REMINDERS_BOUNCE_ADDRESS", "bounces@school.example");
    env.set_var("REMINDERS_UNSUBSCRIBE_MAILTO", "unsubscribe@school.example");
    env.set_var(
        "REMINDERS_UNSUBSCRIBE_URL",
        "https://school.example/unsubscribe?t={token}",
    );
    smtp
}

/// Jill in CS101, with work due every week of March 2030, followed by the
/// guardian and taught by the teacher, all in UTC.
fn school(env: &TestEnv) {
    env.add_user(STUDENT, "UTC");
    for due in [
        "2030-03-08T12:00:00Z",
        "2030-03-12T12:00:00Z",
        "2030-03-20T12:00:00Z",
        "2030-03-27T12:00:00Z",
    ] {
        env.json(&[
            "assignment",
            "add",
            "--student",
            STUDENT,
            "--title",
            &format!("Essay due {due}"),
            "--due",
            due,
            "--course",
            "CS101",
            "--now",
            "2000-01-01T00:00:00Z",
        ]);
    }
    env.json(&[
        "guardian",
        "add",
        "--student",
        STUDENT,
        "--email",
        GUARDIAN,
        "--name",
        "Patricia Quill",
        "--timezone",
        "UTC",
    ]);
    env.json(&[
        "teacher",
        "add",
        "--course",
        "CS101",
        "--email",
        TEACHER,
        "--name",
        "Dr Leland",
        "--timezone",
        "UTC",
    ]);
    env.in_use_since("2030-03-01T00:00:00Z");
}

/// `summary --send` at `now`; the messages it sent to `to`.
fn summary_send(env: &TestEnv, smtp: &SmtpServer, now: &str, to: &str) -> Vec<Received> {
    let before = smtp.received().len();
    let run = env.run(&["summary", "--send", "--now", now, "--format", "json"]);
    assert_eq!(run.code(), 0, "{}", run.describe());
    smtp.received()[before..]
        .iter()
        .filter(|message| message.to == [to])
        .cloned()
        .collect()
}

/// The one message `summary --send` at `now` sent to `to`.
fn one_to(env: &TestEnv, smtp: &SmtpServer, now: &str, to: &str) -> Received {
    let mut sent = summary_send(env, smtp, now, to);
    assert_eq!(sent.len(), 1, "one message to {to} at {now}");
    sent.remove(0)
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
    let own = text
        .lines()
        .take_while(|line| !line.is_empty())
        .find(|line| line.to_ascii_lowercase().starts_with("message-id:"))
        .map(str::to_string)
        .unwrap();
    text.replacen(&own, &format!("Message-ID: <contact-report-{serial}@mx.example>"), 1)
}

/// A Maildir for reports, made on first use.
fn maildir(env: &TestEnv) -> PathBuf {
    let dir = env.path("Maildir");
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    dir
}

/// Reads `report` through a Maildir, as the bounce address's pipe would.
fn bounces(env: &TestEnv, report: &str, serial: usize) -> serde_json::Value {
    let dir = maildir(env);
    std::fs::write(dir.join(format!("new/{serial}.report")), report).unwrap();
    let run = env.run(&["bounces", dir.to_str().unwrap(), "--format", "json"]);
    assert_eq!(run.code(), 0, "{}", run.describe());
    run.report()
}

/// Why someone of `table` is opted out (`manual` for no reason), or `None`.
fn opted_out(env: &TestEnv, table: &str, email: &str) -> Option<String> {
    env.texts(&format!(
        "SELECT COALESCE(opt_out_reason, 'manual') AS v FROM {table} WHERE email = '{email}' AND contact_opt_out"
    ))
    .into_iter()
    .flatten()
    .next()
}

/// The token of the https List-Unsubscribe link.
fn url_token(message: &Received) -> String {
    let header = message.header("List-Unsubscribe").unwrap();
    let start = header.find("unsubscribe?t=").unwrap() + "unsubscribe?t=".len();
    header[start..].split('>').next().unwrap().to_string()
}

/// The token of the mailto: List-Unsubscribe link, as a mail client sends it.
fn mailto_token(message: &Received) -> String {
    let header = message.header("List-Unsubscribe").unwrap();
    let start = header.find("unsubscribe%20").unwrap() + "unsubscribe%20".len();
    header[start..].split('>').next().unwrap().to_string()
}

fn strings(value: &serde_json::Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|item| item.as_str().unwrap().to_string())
        .collect()
}

/// A guardian's digest sent and bounced (a verified hard bounce, through a
/// Maildir); returns the digest.
fn digest_bounced(env: &TestEnv, smtp: &SmtpServer, day: &str, serial: usize) -> Received {
    let digest = one_to(env, smtp, &format!("{day}T18:00:00Z"), GUARDIAN);
    let read = bounces(env, &dsn_about(&digest, serial), serial);
    assert_eq!(read["hard"], 1, "{read}");
    digest
}

on_both_backends! {
    fn a_guardian_whose_digests_bounce_is_opted_out_and_gets_no_more(env: &TestEnv) {
        let smtp = sending(env);
        school(env);
        // The bounce rule: three refusals in a row for the mailbox.
        for (serial, day) in ["2030-03-04", "2030-03-05"].into_iter().enumerate() {
            digest_bounced(env, &smtp, day, serial);
            assert_eq!(opted_out(env, "guardians", GUARDIAN), None, "not after one refusal");
        }
        digest_bounced(env, &smtp, "2030-03-06", 2);
        assert_eq!(opted_out(env, "guardians", GUARDIAN).as_deref(), Some("bounced"));
        assert_eq!(
            env.count("SELECT count(*) AS n FROM bounce_reports WHERE verified AND contact_message_id IS NOT NULL"),
            3
        );
        // The student is no one else's address: still mailable.
        assert_eq!(opted_out(env, "users", STUDENT), None);

        assert_eq!(summary_send(env, &smtp, "2030-03-07T18:00:00Z", GUARDIAN).len(), 0, "no digest after the opt-out");
        assert_eq!(env.count("SELECT count(*) AS n FROM contact_messages WHERE period = '2030-03-07' AND status = 'sent'"), 0);
    }

    fn a_teacher_whose_reports_bounce_is_opted_out_and_gets_no_more(env: &TestEnv) {
        let smtp = sending(env);
        school(env);
        for (serial, friday) in ["2030-03-08", "2030-03-15", "2030-03-22"].into_iter().enumerate() {
            assert_eq!(opted_out(env, "teachers", TEACHER), None);
            let report = one_to(env, &smtp, &format!("{friday}T16:00:00Z"), TEACHER);
            let read = bounces(env, &dsn_about(&report, serial), serial);
            assert_eq!(read["hard"], 1, "{read}");
        }
        assert_eq!(opted_out(env, "teachers", TEACHER).as_deref(), Some("bounced"));
        assert_eq!(summary_send(env, &smtp, "2030-03-29T16:00:00Z", TEACHER).len(), 0, "no report after the opt-out");
    }

    fn a_guardians_unsubscribe_link_opts_them_out_and_a_token_for_no_one_is_refused(env: &TestEnv) {
        let smtp = sending(env);
        school(env);
        let digest = one_to(env, &smtp, &format!("{MONDAY}T18:00:00Z"), GUARDIAN);
        let token = url_token(&digest);
        let opted = env.json(&["user", "opt-out", "--token", &token]);
        assert_eq!(opted["email"], GUARDIAN, "{opted}");
        assert_eq!(opted["role"], "guardian", "{opted}");
        assert_eq!(opted_out(env, "guardians", GUARDIAN).as_deref(), Some("unsubscribed"));
        assert_eq!(summary_send(env, &smtp, "2030-03-05T18:00:00Z", GUARDIAN).len(), 0);

        env.fails(&["user", "opt-out", "--token", "not-a-token"], 2, "the unsubscribe token is not valid");
        // A real token with one character of its middle changed (the last
        // one may carry only padding bits, and case is not significant).
        let middle = token.len() / 2;
        let swapped = if &token[middle..=middle] == "a" { "b" } else { "a" };
        let forged = format!("{}{swapped}{}", &token[..middle], &token[middle + 1..]);
        env.fails(&["user", "opt-out", "--token", &forged], 2, "the unsubscribe token is not valid");

        // A student's token, once the student is forgotten.
        env.add_user("bob@students.example", "UTC");
        env.add_assignment("bob@students.example", "Lab", "2030-03-06T12:00:00Z");
        let run = env.send_24h("2030-03-05T12:00:00Z", &[]);
        assert_eq!(run.code(), 0, "{}", run.describe());
        let reminder = smtp.received().into_iter().find(|m| m.to == ["bob@students.example"]).unwrap();
        let student_token = url_token(&reminder);
        env.json(&["user", "forget", "bob@students.example", "--yes"]);
        env.fails(&["user", "opt-out", "--token", &student_token], 2, "names a person who is no longer here");
        // And the guardian's own, once they are forgotten.
        env.json(&["guardian", "forget", GUARDIAN, "--yes"]);
        env.fails(&["user", "opt-out", "--token", &token], 2, "names a person who is no longer here");
    }

    fn an_unsubscribe_mail_with_a_teachers_token_opts_the_teacher_out(env: &TestEnv) {
        let smtp = sending(env);
        school(env);
        let report = one_to(env, &smtp, "2030-03-08T16:00:00Z", TEACHER);
        let mail = format!(
            "From: someone@else.example\nTo: unsubscribe@school.example\nSubject: unsubscribe {}\nMessage-ID: <u1@else.example>\n\nplease stop\n",
            mailto_token(&report)
        );
        let run = env.run_with_stdin(&["bounces", "-", "--format", "json"], &mail);
        assert_eq!(run.code(), 0, "{}", run.describe());
        assert_eq!(run.report()["unsubscribes"], 1, "{}", run.describe());
        assert_eq!(opted_out(env, "teachers", TEACHER).as_deref(), Some("unsubscribed"));
        assert_eq!(opted_out(env, "guardians", GUARDIAN), None);
        assert_eq!(opted_out(env, "users", STUDENT), None);
        assert_eq!(summary_send(env, &smtp, "2030-03-15T16:00:00Z", TEACHER).len(), 0);
    }

    fn guardian_forget_leaves_no_trace_of_the_address(env: &TestEnv) {
        let smtp = sending(env);
        school(env);
        digest_bounced(env, &smtp, "2030-03-04", 0);
        one_to(env, &smtp, "2030-03-05T18:00:00Z", GUARDIAN);
        assert!(full_dump(env).contains("pat.guardian@"));

        let forgotten = env.json(&["guardian", "forget", GUARDIAN, "--yes"]);
        assert_eq!(forgotten["email"], GUARDIAN, "{forgotten}");
        assert_eq!(forgotten["students_unlinked"], 1, "{forgotten}");
        assert_eq!(forgotten["send_logs"], 3, "two digests and the bounce: {forgotten}");
        assert_eq!(forgotten["bounce_reports"], 1, "{forgotten}");
        let stand_in = forgotten["stand_in"].as_str().unwrap();
        assert_eq!(env.count(&format!("SELECT count(*) AS n FROM send_logs WHERE to_email = '{stand_in}'")), 3);
        let report = std::fs::canonicalize(maildir(env).join("cur/0.report:2,S")).unwrap();
        assert_eq!(strings(&forgotten["files_left"]), [report.display().to_string()], "{forgotten}");
        assert_gone(env, "pat.guardian@");
        assert_gone(env, "patricia quill");
        assert!(full_dump(env).contains(STUDENT), "the student stays");
    }

    fn user_forget_erases_the_guardian_who_followed_only_that_student(env: &TestEnv) {
        let smtp = sending(env);
        school(env);
        digest_bounced(env, &smtp, "2030-03-04", 0);
        one_to(env, &smtp, "2030-03-05T18:00:00Z", GUARDIAN);

        let forgotten = env.json(&["user", "forget", STUDENT, "--yes"]);
        assert_eq!(forgotten["guardians_forgotten"], serde_json::json!([GUARDIAN]), "{forgotten}");
        // Her two daily summaries, and the guardian's two digests and the bounce.
        assert_eq!(forgotten["send_logs"], 5, "{forgotten}");
        assert_eq!(forgotten["daily_summaries"], 2, "{forgotten}");
        assert_eq!(forgotten["bounce_reports"], 1, "{forgotten}");
        assert_eq!(strings(&forgotten["files_left"]).len(), 1, "{forgotten}");
        assert_gone(env, "pat.guardian@");
        assert_gone(env, "patricia quill");
        assert_gone(env, "jill@");
    }

    fn teacher_forget_leaves_no_trace_of_the_address(env: &TestEnv) {
        let smtp = sending(env);
        school(env);
        let report = one_to(env, &smtp, "2030-03-08T16:00:00Z", TEACHER);
        let read = bounces(env, &dsn_about(&report, 0), 0);
        assert_eq!(read["hard"], 1, "{read}");
        one_to(env, &smtp, "2030-03-15T16:00:00Z", TEACHER);
        assert!(full_dump(env).contains("lee.teacher@"));

        let forgotten = env.json(&["teacher", "forget", TEACHER, "--yes"]);
        assert_eq!(forgotten["courses_unlinked"], 1, "{forgotten}");
        assert_eq!(forgotten["send_logs"], 3, "two reports and the bounce: {forgotten}");
        assert_eq!(forgotten["bounce_reports"], 1, "{forgotten}");
        assert_eq!(strings(&forgotten["files_left"]).len(), 1, "{forgotten}");
        assert_gone(env, "lee.teacher@");
        assert_gone(env, "dr leland");
    }

    fn guardian_and_teacher_forget_remove_their_outbox_files(env: &TestEnv) {
        let outbox = env.path("outbox");
        std::fs::create_dir(&outbox).unwrap();
        env.use_smtp(&format!("file://{}", outbox.display()));
        school(env);
        for now in ["2030-03-07T18:00:00Z", "2030-03-08T16:00:00Z", "2030-03-08T18:00:00Z"] {
            let run = env.run(&["summary", "--send", "--now", now]);
            assert_eq!(run.code(), 0, "{}", run.describe());
        }
        let files = || -> Vec<String> {
            std::fs::read_dir(&outbox)
                .unwrap()
                .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap().to_lowercase())
                .collect()
        };
        let to = |who: &str| files().iter().filter(|text| text.contains(who)).count();
        assert_eq!((to(GUARDIAN), to(TEACHER)), (2, 1), "{:?}", files());

        let forgotten = env.json(&["guardian", "forget", GUARDIAN, "--yes"]);
        assert_eq!(forgotten["outbox_files_removed"], 2, "{forgotten}");
        let forgotten = env.json(&["teacher", "forget", TEACHER, "--yes"]);
        assert_eq!(forgotten["outbox_files_removed"], 1, "{forgotten}");
        assert!(files().iter().all(|text| !text.contains("pat.guardian@") && !text.contains("lee.teacher@")), "{:?}", files());
    }

    fn forgetting_one_role_of_an_address_keeps_what_another_role_was_sent(env: &TestEnv) {
        let smtp = sending(env);
        school(env);
        // The guardian teaches CS101 too.
        env.json(&["teacher", "add", "--course", "CS101", "--email", GUARDIAN, "--timezone", "UTC"]);
        one_to(env, &smtp, "2030-03-07T18:00:00Z", GUARDIAN);
        assert_eq!(summary_send(env, &smtp, "2030-03-08T16:00:00Z", GUARDIAN).len(), 1, "the report");
        one_to(env, &smtp, "2030-03-08T18:00:00Z", GUARDIAN);

        let forgotten = env.json(&["guardian", "forget", GUARDIAN, "--yes"]);
        assert_eq!(forgotten["send_logs"], 2, "the two digests: {forgotten}");
        let logs = |to: &str| env.count(&format!("SELECT count(*) AS n FROM send_logs WHERE to_email = '{to}'"));
        assert_eq!(logs(GUARDIAN), 1, "the teacher's report keeps its address");
        assert_eq!(logs(forgotten["stand_in"].as_str().unwrap()), 2);
        assert_gone(env, "patricia quill");

        let forgotten = env.json(&["teacher", "forget", GUARDIAN, "--yes"]);
        assert_eq!(forgotten["send_logs"], 1, "{forgotten}");
        assert_gone(env, "pat.guardian@");
    }
}
