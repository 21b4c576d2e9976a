//! Exactly once under faults: runs slower than their lease, frozen runs, late
//! results, changes during a run, and a database that goes away mid-run.
//! These runs use the real clock (no `--now`), since leases are about time passing.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::common::proxy::TcpProxy;
use crate::common::smtp::SmtpServer;
use crate::common::{Backend, TestEnv, on_both_backends};

/// An instant `hours` from the real now, as RFC 3339.
fn in_hours(hours: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::hours(hours)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `send` for the 24-hour reminder, in the background, with JSON on stdout.
fn spawn_send(env: &TestEnv, extra: &[&str]) -> Child {
    env.command()
        .args(["send", "--unit", "hours", "--targets", "24", "--format", "json"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for a run; returns its exit code, its JSON report and its stderr.
fn finish(child: Child) -> (i32, serde_json::Value, String) {
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    let report = serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null);
    (output.status.code().unwrap_or(-1), report, stderr)
}

fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn signal(child: &Child, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Lets a frozen run go once `other` has finished, or after 15 seconds: on
/// SQLite the frozen run may hold the write lock, and then `other` waits for it.
fn resume_after(frozen: &Child, other: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while other.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(frozen, "CONT");
}

fn sent_rows(env: &TestEnv) -> i64 {
    env.count("SELECT count(*) AS n FROM reminders WHERE status = 'sent'")
}

on_both_backends! {
    fn an_assignment_removed_while_its_reminder_is_on_the_wire_leaves_an_unlinked_log(env: &TestEnv) {
        let smtp = SmtpServer::start();
        smtp.delay_data(Duration::from_millis(1_500));
        env.use_smtp(&smtp.url());
        env.add_user("ann@example.com", "UTC");
        env.add_user("bo@example.com", "UTC");
        let essay = env.add_assignment("ann@example.com", "Essay", &in_hours(24));
        env.add_assignment("bo@example.com", "Lab", &in_hours(24));
        let run = spawn_send(env, &["--connections", "2"]);
        wait_until("both messages are on the wire", || smtp.data_seen() >= 2);
        env.ok(&["assignment", "remove", &essay]);
        let (code, report, stderr) = finish(run);
        // The run records what it sent; the removed one's log has no links.
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(report["sent"], 1, "{report}");
        assert_eq!(sent_rows(env), 1);
        assert_eq!(env.count("SELECT count(*) AS n FROM send_logs WHERE status = 'delivered'"), 2);
        assert_eq!(env.count("SELECT count(*) AS n FROM send_logs WHERE to_email = 'ann@example.com' AND reminder_id IS NULL AND assignment_id IS NULL"), 1);
        let (code, report, _) = finish(spawn_send(env, &[]));
        assert_eq!((code, report["sent"].as_u64()), (0, Some(0)), "nothing goes twice");
        assert_eq!(smtp.received().len(), 2);
    }

    fn a_digest_cut_off_after_the_server_took_it_goes_again_as_the_same_message(env: &TestEnv) {
        let smtp = SmtpServer::start();
        smtp.delay_data(Duration::from_millis(1_500));
        env.use_smtp(&smtp.url());
        env.add_user("ann@example.com", "UTC");
        for part in ["Part one", "Part two", "Part three"] {
            env.add_assignment("ann@example.com", part, &in_hours(24));
        }
        let args = ["--digest", "--lease", "2s"];
        let crashed = spawn_send(env, &args);
        wait_until("the server has the digest's data", || smtp.data_seen() >= 1);
        signal(&crashed, "KILL");
        finish(crashed);
        // The server takes the message after its delay, though the run is
        // gone: delivered, and recorded nowhere.
        wait_until("the server accepted it", || smtp.received().len() == 1);
        assert_eq!(sent_rows(env), 0);
        smtp.delay_data(Duration::ZERO);
        std::thread::sleep(Duration::from_millis(2_100));
        let (code, report, stderr) = finish(spawn_send(env, &args));
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(report["sent"], 3, "{report}");
        assert_eq!(sent_rows(env), 3);
        let (code, report, _) = finish(spawn_send(env, &args));
        assert_eq!((code, report["sent"].as_u64()), (0, Some(0)));
        // Only the message on the wire went twice, as itself: the same
        // Message-ID, so a mail system can drop the copy.
        let received = smtp.received();
        assert_eq!(received.len(), 2);
        assert_eq!(received[0].header("Message-ID"), received[1].header("Message-ID"));
        for part in ["Part one", "Part two", "Part three"] {
            assert!(received[1].body().contains(part), "{}", received[1].body());
        }
    }

    fn a_run_slower_than_its_lease_renews_it_and_an_overlapping_run_takes_nothing_of_it(env: &TestEnv) {
        // Each message takes longer than the whole lease: without renewal, the
        // second run would take the first run's rows while they are on the wire.
        let smtp = SmtpServer::start();
        smtp.delay_data(Duration::from_millis(2_500));
        env.use_smtp(&smtp.url());
        env.seed_assignments(8, &in_hours(24));
        let args = ["--lease", "2s", "--connections", "2"];
        let first = spawn_send(env, &args);
        std::thread::sleep(Duration::from_millis(1_000));
        let second = spawn_send(env, &args);
        for (code, report, stderr) in [finish(first), finish(second)] {
            assert_eq!(code, 0, "{stderr}");
            assert_eq!(report["lost_lease"], 0, "{report}");
        }
        let per_subject = smtp.count_by_subject();
        assert_eq!(per_subject.len(), 8, "every assignment was reminded");
        assert!(per_subject.values().all(|&n| n == 1), "a message went twice: {per_subject:?}");
        assert_eq!(sent_rows(env), 8);
    }

    fn a_run_frozen_past_its_lease_sends_nothing_more_when_it_wakes(env: &TestEnv) {
        const CONNECTIONS: usize = 2;
        let smtp = SmtpServer::start();
        smtp.delay_data(Duration::from_millis(300));
        env.use_smtp(&smtp.url());
        env.seed_assignments(20, &in_hours(24));
        let args = ["--lease", "2s", "--connections", "2"];
        let frozen = spawn_send(env, &args);
        wait_until("the first run has delivered some", || smtp.received().len() >= 4);
        // Mid-message, when the run is waiting on the server rather than
        // holding SQLite's write lock (then the second run would wait for it).
        std::thread::sleep(Duration::from_millis(100));
        signal(&frozen, "STOP");
        // Past its lease, then another run takes over and delivers the rest.
        std::thread::sleep(Duration::from_millis(2_500));
        smtp.delay_data(Duration::ZERO);
        let mut second = spawn_send(env, &args);
        resume_after(&frozen, &mut second);
        let (code, _, stderr) = finish(second);
        assert_eq!(code, 0, "{stderr}");
        let (code, _, stderr) = finish(frozen);
        assert_eq!(code, 0, "{stderr}");

        let per_subject = smtp.count_by_subject();
        assert_eq!(per_subject.len(), 20, "every assignment was reminded");
        // Had the frozen run sent what it held after waking, each of its
        // claimed rows would be a duplicate; only those on the wire may be.
        let duplicates = smtp.received().len() - 20;
        assert!(duplicates <= CONNECTIONS, "{duplicates} duplicates from a frozen run with {CONNECTIONS} connections");
        assert_eq!(sent_rows(env), 20);
    }

    fn a_late_result_never_overwrites_what_another_run_recorded(env: &TestEnv) {
        // The first run's message is on the wire when it freezes; the server
        // will refuse it, but only after another run has delivered it again.
        let smtp = SmtpServer::start();
        smtp.delay_data(Duration::from_secs(6));
        smtp.reply_to_next_data("550 5.1.1 no such user");
        env.use_smtp(&smtp.url());
        env.add_user("late@example.com", "UTC");
        env.add_assignment("late@example.com", "Essay", &in_hours(24));
        let args = ["--lease", "2s", "--connections", "1"];
        let late = spawn_send(env, &args);
        wait_until("the message is on the wire", || smtp.data_seen() == 1);
        signal(&late, "STOP");
        smtp.delay_data(Duration::ZERO);
        std::thread::sleep(Duration::from_millis(2_500));
        let mut second = spawn_send(env, &args);
        resume_after(&late, &mut second);
        let (code, report, stderr) = finish(second);
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(report["sent"], 1, "{report}");
        let (code, report, stderr) = finish(late);
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(report["lost_lease"], 1, "{report}");
        assert_eq!(report["failed"], 0, "{report}");
        assert!(stderr.contains("taken over by another run"), "{stderr}");

        assert_eq!(smtp.received().len(), 1);
        assert_eq!(env.text("SELECT status AS v FROM reminders").as_deref(), Some("sent"));
        assert_eq!(env.text("SELECT last_error AS v FROM reminders"), None);
        assert_eq!(env.count("SELECT count(*) AS n FROM reminders WHERE attempts = 1"), 1);
        assert_eq!(env.count("SELECT count(*) AS n FROM users WHERE contact_opt_out"), 0);
        // The log keeps both attempts: the refusal happened.
        assert_eq!(env.count("SELECT count(*) AS n FROM send_logs WHERE status = 'rejected'"), 1);
        assert_eq!(env.count("SELECT count(*) AS n FROM send_logs WHERE status = 'delivered'"), 1);
    }

    fn an_opt_out_or_completion_during_a_slow_run_is_honoured(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        let mut assignment_ids = Vec::new();
        for i in 1..=6 {
            let email = format!("s{i}@example.com");
            env.add_user(&email, "UTC");
            // Due in this order, so s5 and s6 are sent last, about 4 and 5 seconds in.
            let due = (chrono::Utc::now() + chrono::Duration::hours(24) + chrono::Duration::minutes(i))
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            assignment_ids.push(env.add_assignment(&email, &format!("Work {i}"), &due));
        }
        // Three connections claim all six at once; the rate spreads the sends.
        let run = spawn_send(env, &["--rate", "1", "--connections", "3"]);
        wait_until("the first message went", || !smtp.received().is_empty());
        env.ok(&["user", "opt-out", "s5@example.com"]);
        env.ok(&["assignment", "complete", &assignment_ids[5]]);
        let (code, report, stderr) = finish(run);
        assert_eq!(code, 0, "{stderr}");
        assert_eq!((report["sent"].as_u64(), report["skipped"].as_u64()), (Some(4), Some(2)), "{report}");
        let mailed: Vec<String> = smtp.received().iter().flat_map(|m| m.to.clone()).collect();
        assert!(!mailed.iter().any(|to| to == "s5@example.com" || to == "s6@example.com"), "{mailed:?}");
        assert_eq!(env.count("SELECT count(*) AS n FROM reminders WHERE status = 'skipped'"), 2);
    }

    fn a_daily_summary_run_slower_than_its_lease_sends_each_summary_once(env: &TestEnv) {
        let smtp = SmtpServer::start();
        smtp.delay_data(Duration::from_millis(2_500));
        env.use_smtp(&smtp.url());
        // Four students with open work, each wanting the summary from midnight on.
        env.seed_assignments(40, &in_hours(24));
        for i in 0..4 {
            env.ok(&["user", "set", &format!("student{i}@example.com"), "--summary-hour", "0"]);
        }
        env.in_use_since("2000-01-01T00:00:00Z");
        let args = ["summary", "--send", "--lease", "2s", "--connections", "1", "--format", "json"];
        let spawn = || env.command().args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let first = spawn();
        std::thread::sleep(Duration::from_millis(1_000));
        let second = spawn();
        for (code, report, stderr) in [finish(first), finish(second)] {
            assert_eq!(code, 0, "{stderr}");
            assert_eq!(report["lost_lease"], 0, "{report}");
        }
        let mut recipients: Vec<String> = smtp.received().iter().flat_map(|m| m.to.clone()).collect();
        recipients.sort();
        assert_eq!(recipients.len(), 4, "one summary each: {recipients:?}");
        recipients.dedup();
        assert_eq!(recipients.len(), 4, "one summary each");
    }

    fn a_lease_under_two_seconds_is_refused(env: &TestEnv) {
        env.use_smtp("file://outbox");
        let run = env.run(&["send", "--unit", "hours", "--targets", "24", "--lease", "1s"]);
        assert_eq!(run.code(), 2, "{}", run.describe());
        assert!(run.stderr().contains("use 2s to 1d"), "{}", run.describe());
    }
}

/// The test database's URL with its port replaced.
fn through_port(env: &TestEnv, port: u16) -> String {
    let mut url = url::Url::parse(&env.database_url).unwrap();
    url.set_port(Some(port)).unwrap();
    url.to_string()
}

#[test]
#[cfg_attr(not(reminders_postgres_tests), ignore = "needs TEST_DATABASE_URL")]
fn a_run_whose_database_connection_is_killed_reconnects_and_records() {
    let Some(env) = TestEnv::new(Backend::Postgres) else {
        return;
    };
    const CONNECTIONS: usize = 2;
    let smtp = SmtpServer::start();
    smtp.delay_data(Duration::from_millis(200));
    env.use_smtp(&smtp.url());
    env.seed_assignments(30, &in_hours(24));
    let run = spawn_send(&env, &["--connections", "2"]);
    wait_until("some were delivered", || smtp.received().len() >= 6);
    env.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    );
    let (code, report, stderr) = finish(run);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("reconnected"), "{stderr}");
    assert_eq!(report["sent"], 30, "{report}");
    assert_eq!(sent_rows(&env), 30);
    // A rerun finds nothing left: what was delivered was recorded.
    let rerun = spawn_send(&env, &[]);
    let (code, report, stderr) = finish(rerun);
    assert_eq!((code, report["sent"].as_u64()), (0, Some(0)), "{stderr}");
    assert_eq!(smtp.count_by_subject().len(), 30);
    assert!(smtp.received().len() - 30 <= CONNECTIONS);
}

#[test]
#[cfg_attr(not(reminders_postgres_tests), ignore = "needs TEST_DATABASE_URL")]
fn a_run_that_cannot_reach_its_database_again_stops_with_one_line() {
    let Some(env) = TestEnv::new(Backend::Postgres) else {
        return;
    };
    const CONNECTIONS: usize = 2;
    let smtp = SmtpServer::start();
    smtp.delay_data(Duration::from_millis(200));
    env.use_smtp(&smtp.url());
    env.seed_assignments(30, &in_hours(24));
    let target = url::Url::parse(&env.database_url).unwrap().port().unwrap_or(5432);
    let proxy = TcpProxy::start(target);
    let mut command = env.command();
    command
        .env("DATABASE_URL", through_port(&env, proxy.port))
        .args([
            "send",
            "--unit",
            "hours",
            "--targets",
            "24",
            "--connections",
            "2",
            "--lease",
            "2s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let run = command.spawn().unwrap();
    wait_until("some were delivered", || smtp.received().len() >= 6);
    proxy.cut();
    let at_cut = smtp.received().len();
    let (code, _, stderr) = finish(run);
    assert_eq!(code, 1, "{stderr}");
    // Nothing more was handed out: only the messages in flight finished.
    let after = smtp.received().len();
    assert!(
        after - at_cut <= CONNECTIONS,
        "{} went out after the cut",
        after - at_cut
    );
    let line = stderr
        .lines()
        .find(|line| line.starts_with("error:"))
        .expect("an error line");
    assert!(line.contains("could not reconnect within 30s"), "{stderr}");
    let unrecorded: usize = line
        .split("s: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in `{line}`"));
    assert!(unrecorded <= CONNECTIONS, "{line}");

    // The database is back and the lost run's lease has run out: a later run
    // delivers the rest, repeating at most the unrecorded deliveries.
    proxy.restore();
    let rerun = spawn_send(&env, &[]);
    let (code, _, stderr) = finish(rerun);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(smtp.count_by_subject().len(), 30);
    assert_eq!(sent_rows(&env), 30);
    assert!(
        smtp.received().len() - 30 <= unrecorded,
        "more duplicates than unrecorded deliveries"
    );
}
