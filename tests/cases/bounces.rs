//! `reminders bounces`: reports in the formats real servers send, read from a
//! Maildir, an mbox, a file or stdin; only reports that prove themselves
//! change anything (issues 13 and 18).

use std::path::{Path, PathBuf};

use crate::common::smtp::{Received, SmtpServer};
use crate::common::{TestEnv, on_both_backends};

const SECRET: &str = "0123456789abcdef0123456789abcdef-test-secret";
const BOUNCES: &str = "bounces@school.example";
/// The VERP address and the original Message-ID written in the samples.
const SAMPLE_VERP: &str = "bounces+obrg6ylfmjzw4ylmmfwwk3tpnfxgo2lsmnqxiyltfzxg@school.example";
const SAMPLE_MESSAGE_ID: &str = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b@school.example";

fn sample_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/data/bounces/{name}.eml"))
}

/// The address each sample reports as failed (or complaining).
fn sample_student(name: &str) -> Option<&'static str> {
    match name {
        "postfix_dsn" | "postfix_real_dsn" | "postfix_plain" => Some("ghost@students.example"),
        "exim_dsn" => Some("nosuch@students.example"),
        "gmail_dsn" => Some("lost@gmail.example"),
        "office365_dsn" => Some("gone@students.example"),
        "qmail" => Some("nobody-here@students.example"),
        "delayed_dsn" => Some("slow@students.example"),
        "arf_complaint" => Some("annoyed@students.example"),
        "policy_block_dsn" => Some("real@students.example"),
        _ => None,
    }
}

/// A sample report made about one of our messages: its VERP address, its
/// original Message-ID and its student put in, and a Message-ID of its own.
fn report(name: &str, verp: &str, original: &Received, serial: usize) -> String {
    let text = std::fs::read_to_string(sample_path(name)).unwrap();
    let message_id = original.header("Message-ID").unwrap();
    let message_id = message_id.trim_matches(|c| c == '<' || c == '>');
    let mut text = text.replace(SAMPLE_VERP, verp).replace(SAMPLE_MESSAGE_ID, message_id);
    if let Some(student) = sample_student(name) {
        text = text.replace(student, &original.to[0]);
    }
    // Its own Message-ID, the first at the top level, made unique.
    let own = text
        .lines()
        .take_while(|line| !line.is_empty())
        .find(|line| line.to_ascii_lowercase().starts_with("message-id:"))
        .map(str::to_string);
    match own {
        Some(line) => text.replacen(&line, &format!("Message-ID: <report-{serial}-{name}@mx.example>"), 1),
        None => format!("Message-ID: <report-{serial}-{name}@mx.example>\n{text}"),
    }
}

/// A Maildir with these messages in `new/`.
fn maildir(env: &TestEnv, name: &str, messages: &[String]) -> PathBuf {
    let dir = env.path(name);
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    for (n, message) in messages.iter().enumerate() {
        std::fs::write(dir.join("new").join(format!("{n}.report")), message).unwrap();
    }
    dir
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A mail server and a sender with a bounce address and the secret.
pub(super) fn sending(env: &TestEnv) -> SmtpServer {
    let smtp = SmtpServer::start();
    env.use_smtp(&smtp.url());
    env.set_var("REMINDERS_SECRET", SECRET);
    env.set_var("REMINDERS_BOUNCE_ADDRESS", BOUNCES);
    env.set_var("REMINDERS_UNSUBSCRIBE_MAILTO", "unsubscribe@school.example");
    smtp
}

/// One reminder sent to each student (one assignment each, due in 24 hours);
/// the messages the server received, by recipient.
fn send_to(env: &TestEnv, smtp: &SmtpServer, students: &[&str], at: &str) -> Vec<Received> {
    for student in students {
        if env.count(&format!("SELECT count(*) AS n FROM users WHERE email = '{student}'")) == 0 {
            env.add_user(student, "UTC");
        }
        env.add_assignment(student, &format!("Essay for {student} at {at}"), &due_24h_after(at));
    }
    let before = smtp.received().len();
    let run = env.send_24h(at, &[]);
    assert_eq!(run.code(), 0, "{}", run.describe());
    let received = smtp.received()[before..].to_vec();
    assert_eq!(received.len(), students.len());
    students
        .iter()
        .map(|student| received.iter().find(|m| m.to[0] == *student).unwrap().clone())
        .collect()
}

fn due_24h_after(at: &str) -> String {
    let at: chrono::DateTime<chrono::Utc> = at.parse().unwrap();
    (at + chrono::Duration::hours(24)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn bounces(env: &TestEnv, args: &[&str]) -> serde_json::Value {
    let run = env.run(&[&["bounces", "--format", "json"][..], args].concat());
    assert_eq!(run.code(), 0, "{}", run.describe());
    assert!(!run.stderr().contains("panicked"), "{}", run.describe());
    // Shown when a test fails: which report was judged how.
    eprintln!("{}", run.stderr());
    run.report()
}

/// Why the student is opted out (`manual` for no reason), or `None`.
fn opted_out(env: &TestEnv, email: &str) -> Option<String> {
    env.texts(&format!(
        "SELECT COALESCE(opt_out_reason, 'manual') AS v FROM users WHERE email = '{email}' AND contact_opt_out"
    ))
    .into_iter()
    .flatten()
    .next()
}

on_both_backends! {
    fn messages_carry_a_verp_sender_and_unsubscribe_headers(env: &TestEnv) {
        let smtp = sending(env);
        env.set_var("REMINDERS_UNSUBSCRIBE_URL", "https://school.example/unsubscribe?t={token}");
        let sent = send_to(env, &smtp, &["a@students.example"], "2030-03-01T12:00:00Z");
        let message = &sent[0];
        assert!(message.from.starts_with("bounces+") && message.from.ends_with("@school.example"), "{}", message.from);
        assert_ne!(message.from, "bounces@school.example");
        assert_eq!(message.header("From").unwrap(), "Reminders <noreply@school.example>", "From does not change");
        let unsubscribe = message.header("List-Unsubscribe").unwrap();
        assert!(unsubscribe.contains("<mailto:unsubscribe@school.example?subject=unsubscribe%20"), "{unsubscribe}");
        assert!(unsubscribe.contains("<https://school.example/unsubscribe?t="), "{unsubscribe}");
        assert_eq!(message.header("List-Unsubscribe-Post").unwrap(), "List-Unsubscribe=One-Click");
        let message_id = message.header("Message-ID").unwrap();
        assert!(message_id.len() > 30 && !message_id.contains('-'), "a keyed hash, not the row id: {message_id}");
        // The send log keeps the same Message-ID.
        assert_eq!(env.text("SELECT message_id AS v FROM send_logs").unwrap(), message_id);

        // The features that need the secret refuse to start without it, naming neither it nor a value.
        env.set_var("REMINDERS_SECRET", "");
        env.fails(&["send", "--unit", "hours", "--targets", "24"], 1, "need REMINDERS_SECRET");
        env.fails(&["bounces", "-"], 1, "need REMINDERS_SECRET");
    }

    fn reports_in_every_format_are_recorded_once(env: &TestEnv) {
        let smtp = sending(env);
        let hard = ["postfix_dsn", "postfix_real_dsn", "postfix_plain", "exim_dsn", "gmail_dsn", "office365_dsn", "qmail"];
        let students: Vec<String> = (0..hard.len() + 3).map(|n| format!("s{n}@students.example")).collect();
        let names: Vec<&str> = students.iter().map(String::as_str).collect();
        let sent = send_to(env, &smtp, &names, "2030-03-01T12:00:00Z");
        let mut reports: Vec<String> = hard
            .iter()
            .enumerate()
            .map(|(n, sample)| report(sample, &sent[n].from, &sent[n], n))
            .collect();
        let delayed = &sent[hard.len()];
        reports.push(report("delayed_dsn", &delayed.from, delayed, 100));
        let complained = &sent[hard.len() + 1];
        reports.push(report("arf_complaint", &complained.from, complained, 101));
        reports.push(std::fs::read_to_string(sample_path("garbage")).unwrap());
        let dir = maildir(env, "Maildir", &reports);

        let counts = bounces(env, &[dir.to_str().unwrap()]);
        assert_eq!(counts["hard"], hard.len(), "{counts}");
        assert_eq!(counts["delayed"], 1, "{counts}");
        assert_eq!(counts["complaints"], 1, "{counts}");
        assert_eq!(counts["unrecognised"], 1, "{counts}");
        assert_eq!(counts["unverified"], 0, "{counts}");
        assert_eq!(
            env.count("SELECT count(*) AS n FROM send_logs WHERE status = 'bounced' AND reminder_id IS NOT NULL"),
            hard.len() as i64
        );
        for message in &sent[..hard.len()] {
            let error = env
                .text(&format!("SELECT error AS v FROM send_logs WHERE status = 'bounced' AND to_email = '{}'", message.to[0]))
                .unwrap();
            assert!(error.contains("5."), "the Status or Diagnostic-Code is kept: {error}");
            // One bounce is not three in a row.
            assert_eq!(opted_out(env, &message.to[0]), None);
        }
        assert_eq!(opted_out(env, &complained.to[0]).as_deref(), Some("complaint"));
        // Processed reports move to cur/ with the seen flag; the garbage with the flagged one.
        assert_eq!(files_in(&dir.join("new")).len(), 0);
        let cur = files_in(&dir.join("cur"));
        assert_eq!(cur.iter().filter(|name| name.ends_with(":2,S")).count(), reports.len() - 1, "{cur:?}");
        assert_eq!(cur.iter().filter(|name| name.ends_with(":2,F")).count(), 1, "{cur:?}");

        // The same reports again, from an mbox: recorded before, nothing changes.
        let mbox = env.path("again.mbox");
        let text: String = reports[..hard.len()]
            .iter()
            .map(|r| format!("From MAILER-DAEMON Mon Nov 23 08:00:00 2026\n{}\n", r.replace("\nFrom ", "\n>From ")))
            .collect();
        std::fs::write(&mbox, text).unwrap();
        let again = bounces(env, &[mbox.to_str().unwrap()]);
        assert_eq!(again["already_processed"], hard.len(), "{again}");
        assert_eq!(again["hard"], 0, "{again}");
        assert_eq!(env.count("SELECT count(*) AS n FROM send_logs WHERE status = 'bounced'"), hard.len() as i64);

        let status = env.json(&["status"]);
        assert_eq!(status["reports_last_7_days"]["hard_bounces"], hard.len(), "{status}");
        assert_eq!(status["reports_last_7_days"]["complaints"], 1, "{status}");
    }

    fn a_refusal_of_our_sending_blames_nobody_and_status_warns(env: &TestEnv) {
        let smtp = sending(env);
        let sent = send_to(env, &smtp, &["a@students.example"], "2030-03-01T12:00:00Z").remove(0);
        // Status 5.7.1 and "blocked using zen.spamhaus": the relay's IP is on a blocklist.
        let file = env.path("blocked.eml");
        std::fs::write(&file, report("policy_block_dsn", &sent.from, &sent, 0)).unwrap();
        let counts = bounces(env, &[file.to_str().unwrap(), "--now", "2030-03-01T13:00:00Z"]);
        assert_eq!(counts["refused"], 1, "{counts}");
        assert_eq!(counts["hard"], 0, "{counts}");
        assert_eq!(env.count("SELECT count(*) AS n FROM send_logs WHERE status = 'bounced'"), 0);
        let error = env
            .text("SELECT error AS v FROM send_logs WHERE status = 'failed' AND to_email = 'a@students.example'")
            .unwrap();
        assert!(error.contains("blocklist") && error.contains("5.7.1"), "{error}");
        assert_eq!(opted_out(env, "a@students.example"), None);

        let run = env.run(&["status", "--format", "json", "--now", "2030-03-02T12:00:00Z"]);
        assert_eq!(run.code(), 0, "{}", run.describe());
        assert_eq!(run.report()["reports_last_7_days"]["refused"], 1, "{}", run.describe());
        assert!(
            run.stderr().contains("refuses our sending") && run.stderr().contains("blocklist"),
            "{}",
            run.describe()
        );
        // A week later the warning is gone.
        let later = env.run(&["status", "--now", "2030-03-09T12:00:00Z"]);
        assert!(!later.stderr().contains("refuses our sending"), "{}", later.describe());
    }

    fn a_bounce_after_a_forward_names_the_student_as_the_original_recipient(env: &TestEnv) {
        let smtp = sending(env);
        let sent = send_to(env, &smtp, &["a@students.example"], "2030-03-01T12:00:00Z").remove(0);
        // The student's mailbox forwards to an address that no longer exists:
        // the report's final recipient is that one, the original is the student.
        let text = report("postfix_dsn", &sent.from, &sent, 0).replace(
            "Final-Recipient: rfc822; a@students.example",
            "Final-Recipient: rfc822; old-address@elsewhere.example",
        );
        assert!(text.contains("old-address@elsewhere.example") && text.contains("Original-Recipient: rfc822;a@students.example"));
        let file = env.path("forwarded.eml");
        std::fs::write(&file, text).unwrap();
        let counts = bounces(env, &[file.to_str().unwrap()]);
        assert_eq!(counts["hard"], 1, "{counts}");
        assert_eq!(
            env.count("SELECT count(*) AS n FROM send_logs WHERE status = 'bounced' AND to_email = 'a@students.example'"),
            1
        );
    }

    fn two_hosts_reading_one_maildir_count_each_report_once(env: &TestEnv) {
        let smtp = sending(env);
        let students: Vec<String> = (0..40).map(|n| format!("s{n}@students.example")).collect();
        let names: Vec<&str> = students.iter().map(String::as_str).collect();
        let sent = send_to(env, &smtp, &names, "2030-03-01T12:00:00Z");
        let reports: Vec<String> = sent.iter().enumerate().map(|(n, m)| report("postfix_dsn", &m.from, m, n)).collect();
        let dir = maildir(env, "Maildir", &reports);
        let runs: Vec<_> = (0..2)
            .map(|_| {
                let mut command = env.command();
                command
                    .args(["bounces", dir.to_str().unwrap(), "--format", "json"])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped());
                command.spawn().unwrap()
            })
            .collect();
        let mut hard = 0;
        for run in runs {
            let output = run.wait_with_output().unwrap();
            assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
            let counts: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
            hard += counts["hard"].as_u64().unwrap();
            // What the other run took first is skipped, not unrecognised.
            assert_eq!(counts["unrecognised"], 0, "{counts}");
            assert!(counts["skipped"].is_u64(), "{counts}");
        }
        assert_eq!(hard, 40, "each report counted by exactly one of the two runs");
        assert_eq!(env.count("SELECT count(*) AS n FROM send_logs WHERE status = 'bounced'"), 40);
        assert_eq!(files_in(&dir.join("cur")).len(), 40);
    }

    fn three_relayed_bounces_in_a_row_opt_the_student_out(env: &TestEnv) {
        let smtp = sending(env);
        let mut sent = Vec::new();
        for (n, at) in ["2030-03-01T12:00:00Z", "2030-03-02T12:00:00Z", "2030-03-03T12:00:00Z"].iter().enumerate() {
            let message = send_to(env, &smtp, &["a@students.example"], at).remove(0);
            sent.push((n, message));
        }
        // Each relayed, each bounced later: one report a time, from a file and from stdin.
        let first = env.path("first.eml");
        std::fs::write(&first, report("postfix_dsn", &sent[0].1.from, &sent[0].1, 0)).unwrap();
        assert_eq!(bounces(env, &[first.to_str().unwrap()])["hard"], 1);
        let second = report("exim_dsn", &sent[1].1.from, &sent[1].1, 1);
        let run = env.run_with_stdin(&["bounces", "-", "--format", "json"], &second);
        assert_eq!(run.code(), 0, "{}", run.describe());
        assert_eq!(opted_out(env, "a@students.example"), None, "two bounces are not three");
        // The third arrives piped, with the envelope recipient given as Postfix's pipe does.
        let third = report("gmail_dsn", BOUNCES, &sent[2].1, 2);
        let run = env.run_with_stdin(&["bounces", "-", "--recipient", &sent[2].1.from, "--format", "json"], &third);
        assert_eq!(run.code(), 0, "{}", run.describe());
        assert_eq!(run.report()["opted_out"], serde_json::json!(["a@students.example"]), "{}", run.describe());
        assert_eq!(opted_out(env, "a@students.example").as_deref(), Some("bounced"));
    }

    fn forged_reports_change_nothing(env: &TestEnv) {
        let smtp = sending(env);
        let mut a = Vec::new();
        let mut b = Vec::new();
        for at in ["2030-03-01T12:00:00Z", "2030-03-02T12:00:00Z", "2030-03-03T12:00:00Z"] {
            let sent = send_to(env, &smtp, &["a@students.example", "b@students.example"], at);
            a.push(sent[0].clone());
            b.push(sent[1].clone());
        }
        let mut forged = Vec::new();
        for n in 0..3 {
            // About A, to the plain bounce address, with a made-up Message-ID.
            let mut plain = a[n].clone();
            plain.data = plain.data.replace(&plain.header("Message-ID").unwrap(), "<made-up@school.example>");
            forged.push(report("postfix_dsn", BOUNCES, &plain, 10 + n));
            // To A's VERP address with a tampered token.
            let mut tampered = a[n].from.clone();
            let at = tampered.find('@').unwrap();
            let flipped = if tampered.as_bytes()[at - 1] == b'a' { "b" } else { "a" };
            tampered.replace_range(at - 1..at, flipped);
            forged.push(report("postfix_dsn", &tampered, &plain, 20 + n));
            // To B's genuine VERP address, naming A as the failed recipient.
            let mut about_a = b[n].clone();
            about_a.to = a[n].to.clone();
            about_a.data = plain.data.clone();
            forged.push(report("postfix_dsn", &b[n].from, &about_a, 30 + n));
            // An ARF complaint about A with a made-up Message-ID.
            forged.push(report("arf_complaint", BOUNCES, &plain, 40 + n));
        }
        // A bare "unsubscribe" from A's own address.
        forged.push(
            std::fs::read_to_string(sample_path("unsubscribe_bare"))
                .unwrap()
                .replace("unsub.2@students.example", "a@students.example"),
        );
        let dir = maildir(env, "Maildir", &forged);
        let counts = bounces(env, &[dir.to_str().unwrap()]);
        assert_eq!(counts["unverified"], forged.len(), "{counts}");
        assert_eq!(counts["hard"], 0, "{counts}");
        assert_eq!(counts["complaints"], 0, "{counts}");
        assert_eq!(opted_out(env, "a@students.example"), None, "{counts}");
        assert_eq!(env.count("SELECT count(*) AS n FROM send_logs WHERE status = 'bounced'"), 0);
        let status = env.json(&["status"]);
        assert_eq!(status["reports_last_7_days"]["unverified"], forged.len(), "{status}");

        // Three genuine reports, one to each of A's own VERP addresses, do opt A out.
        let genuine: Vec<String> = (0..3).map(|n| report("postfix_dsn", &a[n].from, &a[n], 50 + n)).collect();
        let dir = maildir(env, "Genuine", &genuine);
        let counts = bounces(env, &[dir.to_str().unwrap()]);
        assert_eq!(counts["hard"], 3, "{counts}");
        assert_eq!(opted_out(env, "a@students.example").as_deref(), Some("bounced"));
        assert_eq!(opted_out(env, "b@students.example"), None);
    }

    fn unsubscribing_takes_the_students_own_token(env: &TestEnv) {
        let smtp = sending(env);
        let sent = send_to(env, &smtp, &["a@students.example", "b@students.example"], "2030-03-01T12:00:00Z");
        let token_of = |message: &Received| {
            let header = message.header("List-Unsubscribe").unwrap();
            let start = header.find("unsubscribe%20").unwrap() + "unsubscribe%20".len();
            header[start..].split('>').next().unwrap().to_string()
        };
        // By mail, with the token in the subject.
        let mail = format!(
            "From: someone@else.example\nTo: unsubscribe@school.example\nSubject: unsubscribe {}\nMessage-ID: <u1@else.example>\n\nplease stop\n",
            token_of(&sent[0])
        );
        let run = env.run_with_stdin(&["bounces", "-", "--format", "json"], &mail);
        assert_eq!(run.report()["unsubscribes"], 1, "{}", run.describe());
        assert_eq!(opted_out(env, "a@students.example").as_deref(), Some("unsubscribed"));
        // By an endpoint calling the tool.
        env.ok(&["user", "opt-out", "--token", &token_of(&sent[1])]);
        assert_eq!(opted_out(env, "b@students.example").as_deref(), Some("unsubscribed"));
        env.fails(&["user", "opt-out", "--token", "not-a-token"], 2, "the unsubscribe token is not valid");
    }

    fn bad_sources_and_a_lost_database(env: &TestEnv) {
        sending(env);
        env.fails(&["bounces", "/nonexistent/Maildir"], 2, "does not exist");
        let stray = env.path("stray");
        std::fs::create_dir_all(&stray).unwrap();
        env.fails(&["bounces", stray.to_str().unwrap()], 2, "");
        // The database is away: the report is not recorded, and the mail server is told to try again.
        env.set_var("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none");
        let run = env.run_with_stdin(&["bounces", "-"], "From: a@b.example\nSubject: x\n\nhello\n");
        assert_eq!(run.code(), 75, "{}", run.describe());
    }

    fn hostile_mail_is_read_calmly(env: &TestEnv) {
        sending(env);
        let outside = env.path("outside.txt");
        std::fs::write(&outside, "not yours").unwrap();
        let hostile = ["garbage", "empty", "nul_in_header", "bad_utf8_header", "no_boundary", "empty_boundary", "bad_base64"];
        let dir = maildir(env, "Maildir", &[]);
        for name in hostile {
            std::fs::copy(sample_path(name), dir.join("new").join(format!("{name}.eml"))).unwrap();
        }
        let long_header = format!("Subject: {}\n\nlong header\n", "x".repeat(1 << 20));
        std::fs::write(dir.join("new/long_header.eml"), long_header).unwrap();
        // Over the 10 MB limit: not read whole.
        std::fs::write(dir.join("new/too_big.eml"), "x".repeat(11 << 20)).unwrap();
        // Under it: 8 MB of nested, unterminated report parts.
        let nested: String = (0..200_000).map(|n| format!("--b{n}\nContent-Type: multipart/report; boundary=b{}\n\n", n + 1)).collect();
        std::fs::write(dir.join("new/nested.eml"), format!("Content-Type: multipart/report; boundary=b0\n\n{nested}")).unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("new/link.eml")).unwrap();
        let started = std::time::Instant::now();
        let (run, peak_kb) = env.run_measured(&["bounces", dir.to_str().unwrap(), "--format", "json"]);
        println!("hostile Maildir: read in {:?}, peak RSS {} MB", started.elapsed(), peak_kb / 1024);
        assert!(peak_kb < 200 * 1024, "peak RSS {peak_kb} kB");
        assert_eq!(run.code(), 0, "{}", run.describe());
        assert!(!run.stderr().contains("panicked"), "{}", run.describe());
        assert_eq!(run.report()["unrecognised"], hostile.len() + 4, "{}", run.describe());
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "not yours");
        assert!(std::fs::symlink_metadata(dir.join("new/link.eml")).unwrap().file_type().is_symlink());
        // Read once: flagged in cur/; only the link, never touched, stays in new/.
        assert_eq!(files_in(&dir.join("new")), ["link.eml"]);
        let cur = files_in(&dir.join("cur"));
        assert_eq!(cur.len(), hostile.len() + 3, "{cur:?}");
        assert!(cur.iter().all(|name| name.ends_with(":2,F")), "{cur:?}");
    }
}

/// What a stranger controls (a Maildir file name, a From header) reaches
/// the terminal of whoever reads cron's mail: escapes are shown escaped, and a
/// line break cannot start a line of its own (a forged `error:`).
#[test]
fn text_from_outside_reaches_stderr_escaped_and_on_one_line() {
    let env = TestEnv::new(crate::common::Backend::Sqlite).unwrap();
    env.set_var("REMINDERS_SECRET", SECRET);
    env.set_var("REMINDERS_BOUNCE_ADDRESS", BOUNCES);
    let dir = maildir(&env, "Maildir", &[]);
    std::fs::write(
        dir.join("new/1.\u{1b}[2J\nerror: forged line"),
        "Subject: hello\n\nnot a report\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("new/2.unsubscribe"),
        "From: \"\u{1b}]0;owned\u{7}\" <someone@example.com>\nSubject: unsubscribe\n\nplease\n",
    )
    .unwrap();
    let run = env.run(&["bounces", dir.to_str().unwrap()]);
    assert_eq!(run.code(), 0, "{}", run.describe());
    let stderr = run.stderr();
    assert!(!stderr.contains('\u{1b}') && !stderr.contains('\u{7}'), "{stderr:?}");
    assert!(stderr.contains("\\u{1b}[2J error: forged line"), "{stderr:?}");
    assert!(stderr.lines().all(|line| line.starts_with("warning: ")), "{stderr:?}");
}

/// 140,000 messages nested in each other (5.7 MB): the mail that overflowed
/// the MIME parser's stack.
fn deep_message() -> String {
    let mut raw = String::with_capacity(140_000 * 41 + 64);
    for _ in 0..140_000 {
        raw.push_str("Subject: x\nContent-Type: message/rfc822\n\n");
    }
    raw.push_str("Subject: the bottom\n\nbody\n");
    raw
}

on_both_backends! {
    fn a_message_nested_too_deep_is_unrecognised_and_the_next_is_read(env: &TestEnv) {
        let smtp = sending(env);
        let sent = send_to(env, &smtp, &["a@students.example"], "2030-03-01T12:00:00Z");
        let deep = env.path("deep.eml");
        std::fs::write(&deep, deep_message()).unwrap();
        let run = env.run(&["bounces", deep.to_str().unwrap(), "--format", "json"]);
        assert_eq!(run.code(), 0, "{}", run.describe());
        assert_eq!(run.report()["unrecognised"], 1, "{}", run.describe());
        assert!(run.stderr().contains("nested"), "{}", run.describe());

        // First in an mbox (another copy: the same one would be "processed
        // before"), with a genuine report behind it: that report is recorded.
        let genuine = report("postfix_dsn", &sent[0].from, &sent[0], 1);
        let mbox = env.path("reports.mbox");
        std::fs::write(
            &mbox,
            format!("From MAILER-DAEMON Mon Nov 23 08:00:00 2026\nX-Copy: 2\n{}\nFrom MAILER-DAEMON Mon Nov 23 08:00:01 2026\n{genuine}\n", deep_message()),
        )
        .unwrap();
        let run = env.run(&["bounces", mbox.to_str().unwrap(), "--format", "json"]);
        assert_eq!(run.code(), 0, "{}", run.describe());
        let counts = run.report();
        assert_eq!(counts["unrecognised"], 1, "{counts}");
        assert_eq!(counts["hard"], 1, "{counts}");
        assert_eq!(
            env.count("SELECT count(*) AS n FROM send_logs WHERE status = 'bounced' AND to_email = 'a@students.example'"),
            1
        );
        assert_eq!(env.count("SELECT count(*) AS n FROM bounce_reports WHERE kind = 'hard' AND verified"), 1);
    }
}

on_both_backends! {
    fn a_complaint_proved_by_a_message_id_alone_changes_nothing(env: &TestEnv) {
        let smtp = sending(env);
        let sent = send_to(env, &smtp, &["a@students.example"], "2030-03-01T12:00:00Z");
        let message_id = sent[0].header("Message-ID").unwrap();
        // An ARF report to the plain bounce address, naming no recipient,
        // quoting only the Message-ID of our message.
        let arf = report("arf_complaint", BOUNCES, &sent[0], 1);
        let arf: String = arf
            .lines()
            .filter(|line| !line.starts_with("Original-Rcpt-To:"))
            .map(|line| format!("{line}\n"))
            .collect();
        assert!(arf.contains(message_id.trim_matches(['<', '>'])) && !arf.contains("Original-Rcpt-To"));
        let run = env.run_with_stdin(&["bounces", "-", "--format", "json"], &arf);
        assert_eq!(run.code(), 0, "{}", run.describe());
        let counts = run.report();
        assert_eq!(counts["complaints"], 0, "{}", run.describe());
        assert_eq!(counts["unverified"], 1, "{}", run.describe());
        assert_eq!(opted_out(env, "a@students.example"), None);
        assert_eq!(env.count("SELECT count(*) AS n FROM bounce_reports WHERE kind = 'complaint' AND NOT verified"), 1);

        // Naming the student as well does not make a Message-ID proof of a complaint.
        let named = report("arf_complaint", BOUNCES, &sent[0], 2);
        let run = env.run_with_stdin(&["bounces", "-", "--format", "json"], &named);
        assert_eq!(run.report()["unverified"], 1, "{}", run.describe());
        assert_eq!(opted_out(env, "a@students.example"), None);

        // To the VERP address of that message, it is proof.
        let genuine = report("arf_complaint", &sent[0].from, &sent[0], 3);
        let run = env.run_with_stdin(&["bounces", "-", "--format", "json"], &genuine);
        assert_eq!(run.report()["complaints"], 1, "{}", run.describe());
        assert_eq!(opted_out(env, "a@students.example").as_deref(), Some("complaint"));
        let status = env.json(&["status"]);
        assert_eq!(status["reports_last_7_days"]["unverified"], 2, "{status}");
        assert_eq!(status["reports_last_7_days"]["complaints"], 1, "{status}");
    }
}

on_both_backends! {
    fn report_addresses_are_stored_bare(env: &TestEnv) {
        let smtp = sending(env);
        let sent = send_to(env, &smtp, &["jill@students.example", "jack@students.example"], "2030-03-01T12:00:00Z");
        // A genuine DSN whose Final-Recipient carries a comment.
        let genuine = report("postfix_dsn", &sent[0].from, &sent[0], 1)
            .replace("rfc822; jill@students.example", "rfc822; jill@students.example (Jill Smith)");
        assert!(genuine.contains("(Jill Smith)"));
        // A complaint to the plain address naming Jack by name and address: unverified.
        let named = report("arf_complaint", BOUNCES, &sent[1], 2)
            .replace("Original-Rcpt-To: <jack@students.example>", "Original-Rcpt-To: \"Jack Jones\" <jack@students.example>");
        assert!(named.contains("Jack Jones"));
        let dir = maildir(env, "Maildir", &[genuine, named]);
        let counts = bounces(env, &[dir.to_str().unwrap()]);
        assert_eq!(counts["hard"], 1, "{counts}");
        assert_eq!(counts["unverified"], 1, "{counts}");
        let stored: Vec<Option<String>> =
            env.texts("SELECT to_email AS v FROM bounce_reports ORDER BY to_email");
        assert_eq!(
            stored,
            [Some("jack@students.example".to_string()), Some("jill@students.example".to_string())]
        );
        let everything = env.texts(
            "SELECT COALESCE(to_email, '') || ' ' || COALESCE(reason, '') AS v FROM bounce_reports",
        );
        assert!(
            everything.iter().flatten().all(|row| !row.contains("Smith") && !row.contains("Jones")),
            "{everything:?}"
        );
    }
}

on_both_backends! {
    fn junk_is_read_once_flagged_and_counted(env: &TestEnv) {
        sending(env);
        let junk = std::fs::read_to_string(sample_path("garbage")).unwrap();
        let dir = maildir(env, "Maildir", &[junk, "Subject: hello\n\nnot a report\n".to_string()]);
        let first = bounces(env, &[dir.to_str().unwrap(), "--now", "2030-03-01T12:00:00Z"]);
        assert_eq!(first["unrecognised"], 2, "{first}");
        assert_eq!(files_in(&dir.join("new")).len(), 0);
        assert_eq!(files_in(&dir.join("cur")), ["0.report:2,F", "1.report:2,F"]);
        // The next run does not read them again.
        let second = bounces(env, &[dir.to_str().unwrap(), "--now", "2030-03-01T12:10:00Z"]);
        assert_eq!(second["unrecognised"], 0, "{second}");
        assert_eq!(second["already_processed"], 0, "{second}");
        assert_eq!(files_in(&dir.join("cur")), ["0.report:2,F", "1.report:2,F"]);
        // Recorded without an address, and counted in `status`.
        assert_eq!(
            env.count("SELECT count(*) AS n FROM bounce_reports WHERE kind = 'unrecognised' AND to_email IS NULL"),
            2
        );
        let status = env.json(&["status", "--now", "2030-03-02T12:00:00Z"]);
        assert_eq!(status["reports_last_7_days"]["unrecognised"], 2, "{status}");
        let table = env.ok(&["status", "--now", "2030-03-02T12:00:00Z"]);
        assert!(table.contains("unrecognised mail"), "{table}");
    }

    fn prune_removes_old_bounce_reports(env: &TestEnv) {
        let smtp = sending(env);
        let sent = send_to(env, &smtp, &["a@students.example"], "2030-03-01T12:00:00Z");
        let old = env.path("old.eml");
        std::fs::write(&old, report("postfix_dsn", &sent[0].from, &sent[0], 1)).unwrap();
        bounces(env, &[old.to_str().unwrap(), "--now", "2030-03-01T13:00:00Z"]);
        let recent = env.path("recent.eml");
        std::fs::write(&recent, report("arf_complaint", BOUNCES, &sent[0], 2)).unwrap();
        bounces(env, &[recent.to_str().unwrap(), "--now", "2030-05-20T13:00:00Z"]);
        assert_eq!(env.count("SELECT count(*) AS n FROM bounce_reports"), 2);

        let args = ["prune", "--older-than", "30d", "--now", "2030-06-01T00:00:00Z"];
        let dry = env.json(&[&args[..], &["--dry-run"]].concat());
        assert_eq!(dry["deleted"]["bounce_reports"], 1, "{dry}");
        assert_eq!(env.count("SELECT count(*) AS n FROM bounce_reports"), 2);
        let pruned = env.json(&args);
        assert_eq!(pruned["deleted"]["bounce_reports"], 1, "{pruned}");
        // The old one, which held the address, is gone; the recent one stays.
        assert_eq!(
            env.texts("SELECT kind AS v FROM bounce_reports"),
            [Some("complaint".to_string())]
        );
        let table = env.ok(&args);
        assert!(table.contains("bounce_reports"), "{table}");
    }
}

on_both_backends! {
    fn quiet_bounces_says_why_it_defers_in_one_line(env: &TestEnv) {
        sending(env);
        // The database is away: nothing listens there, or the file cannot be made.
        let away = match env.backend {
            crate::common::Backend::Postgres => "postgres://nobody@127.0.0.1:1/none".to_string(),
            crate::common::Backend::Sqlite => env.path("no/such/folder/reminders.db").display().to_string(),
        };
        env.set_var("DATABASE_URL", &away);
        let run = env.run_with_stdin(&["-q", "bounces", "-"], "From: a@b.example\nSubject: x\n\nhello\n");
        assert_eq!(run.code(), 75, "{}", run.describe());
        let stderr = run.stderr();
        assert_eq!(stderr.lines().count(), 1, "{}", run.describe());
        assert!(stderr.contains("try again later"), "{}", run.describe());
    }

    fn bounces_without_the_bounce_address_says_so_once(env: &TestEnv) {
        let smtp = sending(env);
        let sent = send_to(env, &smtp, &["a@students.example", "b@students.example"], "2030-03-01T12:00:00Z");
        let reports: Vec<String> = sent
            .iter()
            .enumerate()
            .map(|(n, message)| report("arf_complaint", &message.from, message, n))
            .collect();
        let dir = maildir(env, "Maildir", &reports);
        env.set_var("REMINDERS_BOUNCE_ADDRESS", "");
        let run = env.run(&["bounces", dir.to_str().unwrap(), "--format", "json"]);
        assert_eq!(run.code(), 0, "{}", run.describe());
        assert_eq!(run.report()["unverified"], 2, "{}", run.describe());
        let stderr = run.stderr();
        let about: Vec<&str> = stderr.lines().filter(|line| line.contains("REMINDERS_BOUNCE_ADDRESS")).collect();
        assert_eq!(about.len(), 1, "{}", run.describe());
        assert!(about[0].contains("--bounce-address") && about[0].contains("bounces@school.example"), "{}", run.describe());
        // With the setting, the same reports prove themselves, and nothing is said of it.
        env.set_var("REMINDERS_BOUNCE_ADDRESS", BOUNCES);
        let dir = maildir(env, "Again", &[report("arf_complaint", &sent[0].from, &sent[0], 10)]);
        let run = env.run(&["bounces", dir.to_str().unwrap(), "--format", "json"]);
        assert_eq!(run.report()["complaints"], 1, "{}", run.describe());
        assert!(!run.stderr().contains("REMINDERS_BOUNCE_ADDRESS"), "{}", run.describe());
    }
}
