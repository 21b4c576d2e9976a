//! What the adults around a student are sent, driven by cron-like sweeps of
//! `--now`: a guardian's daily digest (weekdays, at their local hour, across
//! a DST change) or weekly one, nothing when there is nothing to say, once
//! however runs overlap; copies of overdue steps to each guardian
//! (`send --escalate-after`); a teacher's weekly course report; and the
//! go-live rule for a guardian added after their hour.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration as Wait;

use chrono::{DateTime, Duration, SecondsFormat, Utc};

use crate::common::smtp::{Received, SmtpServer};
use crate::common::{TestEnv, on_both_backends};

fn plus(at: &str, minutes: i64) -> String {
    let at: DateTime<Utc> = at.parse().unwrap();
    (at + Duration::minutes(minutes)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Every `step` minutes from `from` to `to`, both included.
fn every(from: &str, to: &str, step: i64) -> Vec<String> {
    let (from, to): (DateTime<Utc>, DateTime<Utc>) = (from.parse().unwrap(), to.parse().unwrap());
    let mut times = Vec::new();
    let mut at = from;
    while at <= to {
        times.push(at.to_rfc3339_opts(SecondsFormat::Secs, true));
        at += Duration::minutes(step);
    }
    times
}

/// The instants of several sweeps, in order, each once.
fn merged(sweeps: &[Vec<String>]) -> Vec<String> {
    let all: BTreeSet<&String> = sweeps.iter().flatten().collect();
    all.into_iter().cloned().collect()
}

/// Runs `args` with `--now` at each instant in turn, each run exiting 0;
/// returns every message received, with the `--now` of the run that sent it.
fn sweep(env: &TestEnv, smtp: &SmtpServer, args: &[&str], times: &[String]) -> Vec<(String, Received)> {
    let mut got = Vec::new();
    for now in times {
        let before = smtp.received().len();
        let run = env.run(&[args, &["--now", now]].concat());
        assert_eq!(run.code(), 0, "`{}` at {now}:\n{}", args.join(" "), run.describe());
        got.extend(smtp.received().into_iter().skip(before).map(|m| (now.clone(), m)));
    }
    got
}

fn summary_sweep(env: &TestEnv, smtp: &SmtpServer, times: &[String]) -> Vec<(String, Received)> {
    sweep(env, smtp, &["summary", "--send"], times)
}

/// The messages to `email`, with the run that sent each.
fn to<'a>(got: &'a [(String, Received)], email: &str) -> Vec<&'a (String, Received)> {
    got.iter().filter(|(_, m)| m.to == [email]).collect()
}

/// When the messages to `email` were sent (the runs' `--now`).
fn sent_at(got: &[(String, Received)], email: &str) -> Vec<String> {
    to(got, email).into_iter().map(|(now, _)| now.clone()).collect()
}

/// A student whose own daily summary is off, so that only the adults' mail is seen.
fn add_student(env: &TestEnv, email: &str) {
    env.add_user(email, "UTC");
    env.ok(&["user", "set", email, "--daily-summary", "off"]);
}

/// An assignment added as if in 2000, with extra flags (`--cutoff`, `--course`).
fn add_work(env: &TestEnv, student: &str, title: &str, due: &str, extra: &[&str]) -> String {
    let args = [
        "assignment",
        "add",
        "--student",
        student,
        "--title",
        title,
        "--due",
        due,
        "--now",
        "2000-01-01T00:00:00Z",
    ];
    let added = env.json(&[&args[..], extra].concat());
    added["id"].as_str().unwrap().to_string()
}

/// Each message to a guardian or teacher as `email kind period status`.
fn contact_rows(env: &TestEnv) -> Vec<String> {
    env.texts(
        "SELECT CAST(COALESCE(g.email, t.email) || ' ' || m.kind || ' ' || m.period || ' ' || m.status AS TEXT) AS v \
         FROM contact_messages m LEFT JOIN guardians g ON g.id = m.guardian_id \
         LEFT JOIN teachers t ON t.id = m.teacher_id ORDER BY v",
    )
    .into_iter()
    .flatten()
    .collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| item.to_string()).collect()
}

/// Where `needle` is in `body`, which must hold it.
fn position(body: &str, needle: &str) -> usize {
    body.find(needle).unwrap_or_else(|| panic!("no `{needle}` in:\n{body}"))
}

/// One assignment of a teacher's report: its title, "N of M completed",
/// and the emails of those who have not completed it, sorted.
type ReportItem = (String, String, Vec<String>);

/// A section of a course report ("Due in the last 7 days:" or "Due in the
/// next 7 days:"), read back from the mail's text.
fn report_section(body: &str, heading: &str) -> Vec<ReportItem> {
    let mut items: Vec<ReportItem> = Vec::new();
    let mut inside = false;
    for line in body.lines() {
        if line.starts_with("Due in the ") {
            inside = line == heading;
            continue;
        }
        if !inside {
            continue;
        }
        if let Some(item) = line.strip_prefix("  - ") {
            let (title, rest) = item.split_once(" (due ").unwrap_or_else(|| panic!("{line}"));
            let counts = rest.rsplit_once("): ").unwrap_or_else(|| panic!("{line}")).1;
            items.push((title.to_string(), counts.to_string(), Vec::new()));
        } else if let Some((_, student)) = line.split_once("not completed:") {
            let email = student.trim().rsplit_once('<').unwrap().1.trim_end_matches('>');
            let item = items
                .last_mut()
                .unwrap_or_else(|| panic!("a student before any item: {line}"));
            item.2.push(email.to_string());
            item.2.sort();
        }
    }
    items
}

fn item(title: &str, counts: &str, not_completed: &[&str]) -> ReportItem {
    (title.to_string(), counts.to_string(), strings(not_completed))
}

on_both_backends! {
    fn a_daily_digest_each_weekday_at_the_guardians_hour_names_only_their_students(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        for student in ["alice@x.test", "bob@x.test", "carol@x.test"] {
            add_student(env, student);
        }
        // Pat follows Alice and Bob; Kim follows Carol only. Europe/London is UTC in early March.
        for (student, guardian) in [("alice@x.test", "pat@x.test"), ("bob@x.test", "pat@x.test"), ("carol@x.test", "kim@x.test")] {
            env.ok(&["guardian", "add", "--student", student, "--email", guardian, "--timezone", "Europe/London", "--now", "2030-02-28T12:00:00Z"]);
        }
        add_work(env, "alice@x.test", "Alice missing", "2030-02-25T09:00:00Z", &[]);
        add_work(env, "alice@x.test", "Alice still accepted", "2030-02-26T09:00:00Z", &["--cutoff", "2030-03-15T09:00:00Z"]);
        add_work(env, "alice@x.test", "Alice cut off", "2030-02-20T09:00:00Z", &["--cutoff", "2030-02-27T09:00:00Z"]);
        let handed_in = add_work(env, "alice@x.test", "Alice handed in", "2030-02-27T09:00:00Z", &[]);
        add_work(env, "bob@x.test", "Bob missing", "2030-02-28T09:00:00Z", &[]);
        add_work(env, "bob@x.test", "Bob soon", "2030-03-07T09:00:00Z", &[]);
        let done_ahead = add_work(env, "bob@x.test", "Bob done ahead", "2030-03-06T09:00:00Z", &[]);
        add_work(env, "bob@x.test", "Bob far", "2030-03-20T09:00:00Z", &[]);
        add_work(env, "carol@x.test", "Carol missing", "2030-02-25T09:00:00Z", &[]);
        for id in [&handed_in, &done_ahead] {
            env.ok(&["assignment", "complete", id]);
        }

        // Every 30 minutes from Friday 1 March noon to Tuesday 5 March 21:00, through the weekend.
        let got = summary_sweep(env, &smtp, &every("2030-03-01T12:00:00Z", "2030-03-05T21:00:00Z", 30));
        let weekdays = strings(&["2030-03-01T18:00:00Z", "2030-03-04T18:00:00Z", "2030-03-05T18:00:00Z"]);
        assert_eq!(sent_at(&got, "pat@x.test"), weekdays, "one digest a weekday, at 18:00, none on Saturday or Sunday");
        assert_eq!(sent_at(&got, "kim@x.test"), weekdays);
        assert_eq!(got.len(), 6, "no other mail: {:?}", got.iter().map(|(now, m)| (now, &m.to)).collect::<Vec<_>>());
        assert_eq!(contact_rows(env), [
            "kim@x.test guardian-digest 2030-03-01 sent",
            "kim@x.test guardian-digest 2030-03-04 sent",
            "kim@x.test guardian-digest 2030-03-05 sent",
            "pat@x.test guardian-digest 2030-03-01 sent",
            "pat@x.test guardian-digest 2030-03-04 sent",
            "pat@x.test guardian-digest 2030-03-05 sent",
        ]);

        let friday = &to(&got, "pat@x.test")[0].1;
        assert_eq!(friday.header("Subject").unwrap(), "3 missing, 1 due this week: daily update for Fri 01 Mar 2030");
        let body = friday.body();
        // Both students, each with their own work: missing (most recent first), then due this week.
        let order = [
            "alice@x.test:",
            "- Alice still accepted (was due",
            "- Alice missing (was due",
            "bob@x.test:",
            "- Bob missing (was due",
            "- Bob soon (due",
        ];
        let positions: Vec<usize> = order.iter().map(|needle| position(&body, needle)).collect();
        assert!(positions.windows(2).all(|pair| pair[0] < pair[1]), "{order:?} out of order:\n{body}");
        for absent in ["carol", "Carol", "Alice cut off", "Alice handed in", "Bob done ahead", "Bob far"] {
            assert!(!body.contains(absent), "`{absent}` in Pat's digest:\n{body}");
        }
        let monday = to(&got, "pat@x.test")[1].1.body();
        assert!(monday.contains("daily update for Mon 04 Mar 2030") && monday.contains("- Bob soon (due"), "{monday}");
        let kims = to(&got, "kim@x.test")[0].1.body();
        assert!(kims.contains("carol@x.test:") && kims.contains("- Carol missing (was due"), "{kims}");
        assert!(!kims.contains("alice") && !kims.contains("bob") && !kims.contains("Alice") && !kims.contains("Bob"), "{kims}");
    }

    fn a_weekly_digest_goes_once_per_iso_week_on_its_weekday(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        add_student(env, "sam@x.test");
        add_work(env, "sam@x.test", "Sam missing", "2030-03-01T09:00:00Z", &[]);
        env.ok(&["guardian", "add", "--student", "sam@x.test", "--email", "wes@x.test", "--timezone", "UTC",
                 "--frequency", "weekly", "--weekday", "3", "--now", "2030-03-01T00:00:00Z"]);
        // Cron every 3 hours for eleven days, and every 15 minutes through both Wednesday evenings.
        let times = merged(&[
            every("2030-03-04T00:00:00Z", "2030-03-14T21:00:00Z", 180),
            every("2030-03-06T17:00:00Z", "2030-03-06T23:45:00Z", 15),
            every("2030-03-13T17:00:00Z", "2030-03-13T23:45:00Z", 15),
        ]);
        let got = summary_sweep(env, &smtp, &times);
        assert_eq!(sent_at(&got, "wes@x.test"), ["2030-03-06T18:00:00Z", "2030-03-13T18:00:00Z"]);
        assert_eq!(got.len(), 2);
        assert_eq!(contact_rows(env), [
            "wes@x.test guardian-digest 2030-W10 sent",
            "wes@x.test guardian-digest 2030-W11 sent",
        ]);
        let first = &got[0].1;
        assert_eq!(first.header("Subject").unwrap(), "1 missing: weekly update for Wed 06 Mar 2030");
        assert!(first.body().contains("Here is your weekly update") && first.body().contains("- Sam missing (was due"), "{}", first.body());
    }

    fn across_a_dst_change_the_digest_stays_at_18_local(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        add_student(env, "dst@x.test");
        add_work(env, "dst@x.test", "Project", "2026-10-28T12:00:00Z", &[]);
        for (guardian, zone) in [("lon@x.test", "Europe/London"), ("ny@x.test", "America/New_York")] {
            env.ok(&["guardian", "add", "--student", "dst@x.test", "--email", guardian, "--timezone", zone, "--now", "2026-10-20T00:00:00Z"]);
        }
        // Europe/London leaves BST on Sunday 25 October 2026, America/New_York leaves EDT on Sunday 1 November:
        // hourly from Friday noon to Monday night across each, every 30 minutes in the evenings.
        let times = merged(&[
            every("2026-10-23T12:00:00Z", "2026-10-27T00:00:00Z", 60),
            every("2026-10-30T12:00:00Z", "2026-11-03T00:00:00Z", 60),
            every("2026-10-23T16:00:00Z", "2026-10-23T23:30:00Z", 30),
            every("2026-10-26T16:00:00Z", "2026-10-26T23:30:00Z", 30),
            every("2026-10-30T16:00:00Z", "2026-10-30T23:30:00Z", 30),
            every("2026-11-02T16:00:00Z", "2026-11-02T23:30:00Z", 30),
        ]);
        let got = summary_sweep(env, &smtp, &times);
        // 18:00 BST is 17:00 UTC, 18:00 GMT is 18:00 UTC.
        assert_eq!(sent_at(&got, "lon@x.test"), [
            "2026-10-23T17:00:00Z", "2026-10-26T18:00:00Z", "2026-10-30T18:00:00Z", "2026-11-02T18:00:00Z",
        ]);
        // 18:00 EDT is 22:00 UTC, 18:00 EST is 23:00 UTC.
        assert_eq!(sent_at(&got, "ny@x.test"), [
            "2026-10-23T22:00:00Z", "2026-10-26T22:00:00Z", "2026-10-30T22:00:00Z", "2026-11-02T23:00:00Z",
        ]);
        assert_eq!(got.len(), 8);
        let periods: Vec<String> = contact_rows(env).into_iter().filter(|row| row.starts_with("ny@")).collect();
        assert_eq!(periods, [
            "ny@x.test guardian-digest 2026-10-23 sent",
            "ny@x.test guardian-digest 2026-10-26 sent",
            "ny@x.test guardian-digest 2026-10-30 sent",
            "ny@x.test guardian-digest 2026-11-02 sent",
        ]);
    }

    fn nothing_missing_or_due_sends_nothing_and_records_why(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        add_student(env, "idle@x.test");
        let done = add_work(env, "idle@x.test", "Handed in", "2030-02-25T09:00:00Z", &[]);
        env.ok(&["assignment", "complete", &done]);
        add_work(env, "idle@x.test", "Too late now", "2030-02-20T09:00:00Z", &["--cutoff", "2030-02-27T09:00:00Z"]);
        add_work(env, "idle@x.test", "Next month", "2030-04-01T09:00:00Z", &[]);
        env.ok(&["guardian", "add", "--student", "idle@x.test", "--email", "quiet@x.test", "--timezone", "UTC", "--now", "2030-02-28T00:00:00Z"]);
        let run = env.run(&["summary", "--send", "--now", "2030-03-01T18:00:00Z", "--format", "json"]);
        assert_eq!(run.code(), 0, "{}", run.describe());
        assert_eq!((run.report()["sent"].as_u64(), run.report()["skipped"].as_u64()), (Some(0), Some(1)), "{}", run.describe());
        summary_sweep(env, &smtp, &every("2030-03-01T18:30:00Z", "2030-03-01T20:00:00Z", 30));
        assert!(smtp.received().is_empty());
        assert_eq!(contact_rows(env), ["quiet@x.test guardian-digest 2030-03-01 skipped"]);
        assert_eq!(env.text("SELECT last_error AS v FROM contact_messages").as_deref(), Some("nothing missing or due"));
        assert_eq!(env.count("SELECT count(*) AS n FROM send_logs"), 0);
    }

    fn overlapping_runs_send_each_digest_once(env: &TestEnv) {
        let smtp = SmtpServer::start();
        smtp.delay_data(Wait::from_millis(30));
        env.use_smtp(&smtp.url());
        add_student(env, "kid@x.test");
        add_work(env, "kid@x.test", "Essay", "2030-03-04T09:00:00Z", &[]);
        let guardians: Vec<String> = (0..12).map(|i| format!("g{i}@x.test")).collect();
        for guardian in &guardians {
            env.ok(&["guardian", "add", "--student", "kid@x.test", "--email", guardian, "--timezone", "UTC", "--now", "2030-02-28T00:00:00Z"]);
        }
        let runs: Vec<_> = (0..2)
            .map(|_| {
                env.command()
                    .args(["summary", "--send", "--now", "2030-03-01T18:05:00Z", "--batch-size", "3"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for run in runs {
            let output = run.wait_with_output().unwrap();
            assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        }
        let mut to: Vec<String> = smtp.received().iter().map(|m| m.to[0].clone()).collect();
        to.sort();
        let mut expected = guardians.clone();
        expected.sort();
        assert_eq!(to, expected, "each guardian once");
        assert_eq!(env.count("SELECT count(*) AS n FROM contact_messages WHERE status = 'sent'"), 12);
        assert_eq!(env.count("SELECT count(*) AS n FROM send_logs WHERE contact_message_id IS NOT NULL AND status = 'delivered'"), 12);
    }

    fn escalation_copies_each_step_from_24h_to_each_guardian_once(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        add_student(env, "late@x.test");
        for guardian in ["mum@x.test", "dad@x.test"] {
            env.ok(&["guardian", "add", "--student", "late@x.test", "--email", guardian, "--timezone", "UTC", "--now", "2030-03-01T00:00:00Z"]);
        }
        let due = "2030-03-04T12:00:00Z";
        add_work(env, "late@x.test", "Late", due, &[]);
        let handed = add_work(env, "late@x.test", "Handed", due, &[]);
        let send = ["send", "--unit", "hours", "--targets", "24", "--overdue", "2,24,72", "--escalate-after", "24"];
        // Every 5 minutes through the hour around each step, hourly in between, over four days.
        let around = |hours: i64| every(&plus(due, hours * 60 - 35), &plus(due, hours * 60 + 35), 5);
        let first = merged(&[every(&plus(due, -26 * 60), &plus(due, 30 * 60), 60), around(-24), around(2), around(24)]);
        let mut got = sweep(env, &smtp, &send, &first);
        // Handed in after its 24-hour step: no 72-hour step, for the student or the guardians.
        env.ok(&["assignment", "complete", &handed]);
        let second = merged(&[every(&plus(due, 31 * 60), &plus(due, 74 * 60), 60), around(72)]);
        got.extend(sweep(env, &smtp, &send, &second));

        let student: BTreeSet<(String, String)> = env.delivered().into_iter().map(|(key, count)| {
            assert_eq!(count, 1, "{key:?} sent {count} times");
            key
        }).collect();
        let expected: BTreeSet<(String, String)> = [
            ("Handed", "24h"), ("Handed", "overdue-2h"), ("Handed", "overdue-24h"),
            ("Late", "24h"), ("Late", "overdue-2h"), ("Late", "overdue-24h"), ("Late", "overdue-72h"),
        ].into_iter().map(|(title, kind)| (title.to_string(), kind.to_string())).collect();
        assert_eq!(student, expected);
        assert_eq!(to(&got, "late@x.test").len(), 7);

        // Each guardian: a message of its own for each step at or after 24 hours, once.
        let copies = env.texts(
            "SELECT CAST(g.email || ' ' || a.title || ' ' || r.reminder_type AS TEXT) AS v FROM send_logs l \
             JOIN contact_messages m ON m.id = l.contact_message_id JOIN guardians g ON g.id = m.guardian_id \
             JOIN reminders r ON r.id = m.reminder_id JOIN assignments a ON a.id = r.assignment_id \
             WHERE l.status = 'delivered' ORDER BY v",
        );
        assert_eq!(copies.into_iter().flatten().collect::<Vec<_>>(), [
            "dad@x.test Handed overdue-24h", "dad@x.test Late overdue-24h", "dad@x.test Late overdue-72h",
            "mum@x.test Handed overdue-24h", "mum@x.test Late overdue-24h", "mum@x.test Late overdue-72h",
        ]);
        for guardian in ["mum@x.test", "dad@x.test"] {
            let theirs = to(&got, guardian);
            assert_eq!(theirs.len(), 3, "{guardian}");
            // Sent by the run that sent the student's step.
            let students_runs: BTreeSet<String> = sent_at(&got, "late@x.test").into_iter().collect();
            assert!(theirs.iter().all(|(now, _)| students_runs.contains(now)), "{guardian}'s copies came apart from the steps");
            let subject = theirs[0].1.header("Subject").unwrap();
            assert!(subject.starts_with("Overdue: late@x.test has not handed in"), "{subject}");
        }
        let ids: Vec<String> = got.iter().map(|(_, m)| m.header("Message-ID").expect("a Message-ID")).collect();
        assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), ids.len(), "every message has its own Message-ID: {ids:?}");
        assert_eq!(got.len(), 13);
    }

    fn a_teachers_weekly_report_lists_who_has_not_completed_in_their_course(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        for student in ["alice@x.test", "bob@x.test", "carol@x.test", "dave@x.test"] {
            add_student(env, student);
        }
        // Europe/Paris is UTC+1 in early March: Friday 16:00 local is 15:00 UTC.
        env.ok(&["teacher", "add", "--course", "CS101", "--email", "lee@x.test", "--timezone", "Europe/Paris",
                 "--weekday", "5", "--hour", "16", "--now", "2030-03-01T00:00:00Z"]);
        let cs = ["--course", "CS101"];
        let mut done = Vec::new();
        for student in ["alice@x.test", "bob@x.test", "carol@x.test"] {
            let lab1 = add_work(env, student, "Lab 1", "2030-03-04T09:00:00Z", &cs);
            let lab3 = add_work(env, student, "Lab 3", "2030-03-12T09:00:00Z", &cs);
            if student == "alice@x.test" {
                done.extend([lab1, lab3]);
            }
        }
        for student in ["alice@x.test", "bob@x.test"] {
            let lab2 = add_work(env, student, "Lab 2", "2030-03-06T09:00:00Z", &cs);
            if student == "bob@x.test" {
                done.push(lab2);
            }
        }
        // Older than a week, another course, and no course at all: not in Lee's report.
        add_work(env, "carol@x.test", "Old lab", "2030-02-20T09:00:00Z", &cs);
        add_work(env, "dave@x.test", "Proof", "2030-03-05T09:00:00Z", &["--course", "MATH101"]);
        add_work(env, "carol@x.test", "Proof", "2030-03-05T09:00:00Z", &["--course", "MATH101"]);
        add_work(env, "dave@x.test", "Reading", "2030-03-05T09:00:00Z", &[]);
        for id in &done {
            env.ok(&["assignment", "complete", id]);
        }

        let times = merged(&[
            every("2030-03-07T12:00:00Z", "2030-03-09T00:00:00Z", 30),
            every("2030-03-15T13:00:00Z", "2030-03-15T18:00:00Z", 30),
        ]);
        let got = summary_sweep(env, &smtp, &times);
        assert_eq!(sent_at(&got, "lee@x.test"), ["2030-03-08T15:00:00Z", "2030-03-15T15:00:00Z"]);
        assert_eq!(got.len(), 2);
        assert_eq!(contact_rows(env), [
            "lee@x.test teacher-report 2030-W10 sent",
            "lee@x.test teacher-report 2030-W11 sent",
        ]);

        let report = &got[0].1;
        assert_eq!(report.header("Subject").unwrap(), "Course report for Fri 08 Mar 2030: CS101");
        let body = report.body();
        // A line ending in `=` reads as a soft line break to `body()`: the raw text has it whole.
        assert!(report.data.contains("\r\n== CS101 ==\r\n"), "{body}");
        assert_eq!(report_section(&body, "Due in the last 7 days:"), [
            item("Lab 1", "1 of 3 completed", &["bob@x.test", "carol@x.test"]),
            item("Lab 2", "1 of 2 completed", &["alice@x.test"]),
        ], "{body}");
        assert_eq!(report_section(&body, "Due in the next 7 days:"), [item("Lab 3", "1 of 3 completed", &[])], "{body}");
        for absent in ["dave", "Proof", "Old lab", "Reading", "MATH101"] {
            assert!(!body.contains(absent), "`{absent}` in the report:\n{body}");
        }
        let next = got[1].1.body();
        assert_eq!(report_section(&next, "Due in the last 7 days:"), [
            item("Lab 3", "1 of 3 completed", &["bob@x.test", "carol@x.test"]),
        ], "{next}");
    }

    fn a_guardian_added_after_their_hour_gets_the_next_weekdays_digest(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        add_student(env, "eve@x.test");
        add_work(env, "eve@x.test", "Poster", "2030-03-08T09:00:00Z", &[]);
        // Summaries have been running since Monday.
        summary_sweep(env, &smtp, &["2030-03-04T08:00:00Z".to_string()]);
        // Added on Tuesday at 20:00 London time (UTC in March), two hours after 18:00.
        env.ok(&["guardian", "add", "--student", "eve@x.test", "--email", "gus@x.test", "--timezone", "Europe/London", "--now", "2030-03-05T20:00:00Z"]);
        let got = summary_sweep(env, &smtp, &every("2030-03-05T20:00:00Z", "2030-03-06T19:00:00Z", 30));
        assert_eq!(sent_at(&got, "gus@x.test"), ["2030-03-06T18:00:00Z"]);
        assert_eq!(got.len(), 1);
        assert_eq!(contact_rows(env), [
            "gus@x.test guardian-digest 2030-03-05 skipped",
            "gus@x.test guardian-digest 2030-03-06 sent",
        ]);
        let why = env.text("SELECT last_error AS v FROM contact_messages WHERE status = 'skipped'").unwrap();
        assert!(why.starts_with("before go-live") && why.contains("the person was added"), "{why}");
    }
}
