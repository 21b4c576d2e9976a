//! Running a term: `status`, `retry`, `prune`, completions and the man page.

use crate::common::smtp::SmtpServer;
use crate::common::{NOW, TestEnv, at, hours, minutes, on_both_backends};

fn send(env: &TestEnv, when: &str) -> i32 {
    env.run(&[
        "send",
        "--unit",
        "hours",
        "--targets",
        "24,2",
        "--now",
        when,
        "--max-attempts",
        "2",
    ])
    .code()
}

on_both_backends! {
    fn status_shows_the_queue(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        smtp.reply_to_rcpt("flaky@", "451 4.3.0 later");
        smtp.reply_to_rcpt("gone@", "550 5.1.1 no such user");
        for email in ["ok@example.com", "flaky@example.com", "gone@example.com"] {
            env.add_user(email, "UTC");
            env.add_assignment(email, "Essay", &at(hours(24)));
        }
        for i in 0..3 {
            env.add_assignment("gone@example.com", &format!("More {i}"), &at(hours(24)));
        }
        assert_eq!(send(env, NOW), 3);
        let status = env.json(&["status", "--now", &at(minutes(1))]);
        assert_eq!(status["by_status"]["sent"], 1);
        assert_eq!(status["by_status"]["failed"], 4);
        assert_eq!(status["by_status"]["pending"], 1);
        assert_eq!(status["waiting_for_retry"], 1);
        assert!(status["next_retry_at"].as_str().unwrap() > NOW);
        assert_eq!(status["ready"], 0);
        assert_eq!(status["sent_last_24h"], 1);
        assert_eq!(status["bounced"], serde_json::json!(["gone@example.com"]));
        // A day later the sent one has aged out of the last 24 hours, and the retry is ready.
        let later = env.json(&["status", "--now", &at(hours(25))]);
        assert_eq!(later["sent_last_24h"], 0);
        assert_eq!(later["ready"], 1);
        // The most frequent failures of the last 7 days, with counts.
        let errors = &status["errors_last_7_days"];
        assert_eq!(errors[0]["count"], 3, "{errors}");
        assert!(errors[0]["error"].as_str().unwrap().contains("5.1.1 no such user"), "{errors}");
        assert_eq!(errors.as_array().unwrap().len(), 3, "{errors}");
        // Tables show times in this machine's zone.
        env.set_var("TZ", "America/New_York");
        let table = env.ok(&["status", "--now", &at(minutes(1))]);
        assert!(table.contains("waiting to retry") && table.contains("gone@example.com"), "{table}");
        assert!(table.contains("1 (next at 2030-03-01 07:0") && table.contains("EST)"), "{table}");
        assert!(table.contains("failed 3×, last 7 days") && table.contains("no such user"), "{table}");
    }

    fn retry_requeues_failed_reminders_once(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        smtp.reply_to_rcpt("@example.com", "451 4.3.0 down for maintenance");
        env.add_user("a@example.com", "UTC");
        env.add_user("b@example.com", "UTC");
        env.add_assignment("a@example.com", "A1", &at(hours(24)));
        env.add_assignment("b@example.com", "B1", &at(hours(24)));
        assert_eq!(send(env, NOW), 3);
        assert_eq!(send(env, &at(minutes(5))), 3);
        assert_eq!(env.count("SELECT count(*) AS n FROM reminders WHERE status = 'failed'"), 2);
        smtp.clear_rules();

        let one = env.json(&["retry", "--failed", "--student", "a@example.com", "--now", &at(minutes(10))]);
        assert_eq!(one["requeued"], 1);
        assert_eq!(env.text("SELECT CAST(attempts AS TEXT) AS v FROM reminders WHERE status = 'pending'").unwrap(), "0");
        assert_eq!(send(env, &at(minutes(11))), 0);
        assert_eq!(smtp.received().len(), 1);
        let rest = env.json(&["retry", "--failed", "--now", &at(minutes(12))]);
        assert_eq!(rest["requeued"], 1);
        assert_eq!(send(env, &at(minutes(13))), 0);
        assert_eq!(send(env, &at(minutes(14))), 0);
        assert_eq!(smtp.received().len(), 2, "each requeued reminder is delivered once");

        // A sent reminder is refused, as is an unknown one.
        let sent = env.text("SELECT CAST(id AS TEXT) AS v FROM reminders LIMIT 1").unwrap();
        env.fails(&["retry", &sent], 2, "is sent; only failed reminders can be retried");
        env.fails(&["retry", "7c9028d5-5ed8-406d-b8f0-6375c56a8105"], 2, "no reminder has the id");
        env.fails(&["retry", "not-an-id"], 2, "is not a reminder id");
        assert_eq!(env.run(&["retry"]).code(), 2, "--failed or ids are required");
        assert_eq!(env.json(&["retry", "--failed", "--since", &at(hours(1))])["requeued"], 0);
    }

    fn prune_keeps_pending_work_and_never_causes_a_second_reminder(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        env.add_user("p@example.com", "UTC");
        smtp.reply_to_rcpt("retrying@", "451 4.3.0 later");
        env.add_user("retrying@example.com", "UTC");
        env.add_assignment("p@example.com", "Past", &at(hours(24)));
        env.add_assignment("retrying@example.com", "Stuck", &at(hours(24) + minutes(10)));
        assert_eq!(send(env, NOW), 3);
        // A long-running assignment, reminded 24 hours ahead of a due time far off.
        env.add_assignment("p@example.com", "Still due", &at(hours(24 * 120)));
        assert_eq!(send(env, &at(hours(24 * 119))), 0);
        assert_eq!(smtp.received().len(), 2);

        // A reminder waiting for a retry, scheduled long ago: never pruned.
        env.execute(&format!(
            "INSERT INTO reminders (id, assignment_id, reminder_type, scheduled_for, status, attempts) \
             SELECT '{}', id, '2h', '2030-03-01T12:00:00.000000Z', 'pending', 1 FROM assignments WHERE title = 'Past'",
            uuid::Uuid::new_v4()
        ));
        // 100 days on: the first assignment is long past due, the second still due.
        let now = at(hours(24 * 119) + minutes(1));
        let dry = env.json(&["prune", "--older-than", "90d", "--now", &now, "--dry-run"]);
        assert_eq!(dry["dry_run"], true, "{dry}");
        assert_eq!(dry["deleted"]["send_logs"], 2, "{dry}");
        assert_eq!(env.count("SELECT count(*) AS n FROM send_logs"), 3);
        assert_eq!(dry["deleted"]["reminders"], 2, "{dry}");
        assert_eq!(env.count("SELECT count(*) AS n FROM send_logs"), 3, "a dry run deletes nothing");
        let pruned = env.json(&["prune", "--older-than", "90d", "--now", &now]);
        assert_eq!(pruned["deleted"]["send_logs"], 2, "{pruned}");
        assert_eq!(pruned["deleted"]["reminders"], 2, "{pruned}");
        let left = |env: &TestEnv| -> Vec<String> {
            env.texts(
                "SELECT CAST(a.title || ':' || r.status AS TEXT) AS v FROM reminders r \
                 JOIN assignments a ON a.id = r.assignment_id ORDER BY a.title",
            )
            .into_iter()
            .flatten()
            .collect()
        };
        // Past's 24h reminder (sent) and Stuck's (skipped once past due) are gone;
        // the pending one stays, as does the reminder of the assignment still due.
        assert_eq!(left(env), ["Past:pending", "Still due:sent"]);

        // Even with a cut-off of a minute, the reminder of an assignment that is
        // still due stays, so the next run, which still has it in its window,
        // finds it sent rather than missing.
        let soon = at(hours(24 * 119) + minutes(5));
        let short = env.json(&["prune", "--older-than", "1m", "--force", "--now", &soon]);
        assert_eq!(short["deleted"]["send_logs"], 1, "{short}");
        assert_eq!(short["deleted"]["reminders"], 0, "{short}");
        assert_eq!(left(env), ["Past:pending", "Still due:sent"]);
        assert_eq!(send(env, &soon), 0);
        assert_eq!(smtp.received().len(), 2);
        assert_eq!(env.run(&["prune", "--older-than", "ninety days"]).code(), 2);
        // A cut-off under a day (`1m` is a minute, not a month) needs --force.
        env.fails(&["prune", "--older-than", "1m"], 2, "is under a day");
        assert_eq!(env.json(&["prune", "--older-than", "2w", "--dry-run"])["dry_run"], true);
    }
}

#[test]
fn completions_and_the_man_page_are_produced() {
    let env = TestEnv::unmigrated(crate::common::Backend::Sqlite).unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let script = env.ok(&["completions", shell]);
        assert!(
            script.contains("reminders") && script.contains("send"),
            "{shell}: {script}"
        );
    }
    let man = env.ok(&["man"]);
    assert!(man.starts_with(".ie") || man.contains(".TH reminders"), "{man}");
    assert!(man.contains("Exit status"), "the man page lists the exit codes");
    // One complete page: every command's options, and no page it cannot name.
    assert!(
        man.contains(".SH \"REMINDERS SEND\"") && man.contains("\\-\\-targets"),
        "{man}"
    );
    assert!(man.contains(".SH \"REMINDERS USER OPT-OUT\""), "{man}");
    assert!(!man.contains("(1)"), "the single page refers to other pages");
    // A page per command into a folder it creates, each page it names there.
    let dir = env.path("share/man/man1");
    let written = env.json(&["man", "--dir", dir.to_str().unwrap()]);
    let pages: Vec<&str> = written["pages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(
        pages.contains(&"reminders.1")
            && pages.contains(&"reminders-send.1")
            && pages.contains(&"reminders-user-opt-out.1"),
        "{pages:?}"
    );
    for page in &pages {
        let text = std::fs::read_to_string(dir.join(page)).unwrap();
        for named in text
            .split("(1)")
            .filter_map(|before| before.rsplit(|c: char| c.is_whitespace() || c == '"').next())
        {
            let named = named.replace("\\-", "-");
            if named.starts_with("reminders") {
                assert!(
                    dir.join(format!("{named}.1")).exists(),
                    "{page} names {named}(1), which was not written"
                );
            }
        }
    }
    assert_eq!(env.run(&["completions", "tcsh"]).code(), 2);
}

on_both_backends! {
    fn rate_and_limit_cap_a_run(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        env.seed_assignments(200, &at(hours(24)));
        // --limit: 120 now, the other 80 stay queued for the next run.
        let limited = env.json(&["send", "--unit", "hours", "--targets", "24", "--now", NOW, "--limit", "120"]);
        assert_eq!(limited["sent"], 120);
        assert_eq!(env.count("SELECT count(*) AS n FROM reminders WHERE status = 'pending'"), 80);
        // --rate 50: after a first burst of 50, 50 a second; 80 take at least 0.6 s,
        // and 200 (below) at least 2.5 s.
        let started = std::time::Instant::now();
        let rest = env.json(&["send", "--unit", "hours", "--targets", "24", "--now", &at(minutes(1)), "--rate", "50"]);
        assert_eq!(rest["sent"], 80);
        assert!(started.elapsed() >= std::time::Duration::from_millis(600), "{:?}", started.elapsed());
        assert_eq!(smtp.received().len(), 200);
    }

    fn a_failed_run_says_why_even_when_quiet(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        smtp.reply_to_rcpt("@example.com", "451 4.3.0 mailbox busy, try later");
        smtp.reply_to_rcpt("gone@", "550 5.1.1 no such user");
        for student in ["a@example.com", "b@example.com", "gone@example.net"] {
            env.add_user(student, "UTC");
            env.add_assignment(student, "Work", &at(hours(24)));
        }
        let run = env.run(&["send", "--unit", "hours", "--targets", "24", "--now", NOW, "-q", "--format", "json"]);
        assert_eq!(run.code(), 3, "{}", run.describe());
        let stderr = run.stderr();
        assert!(stderr.contains("2 sends will be retried: ") && stderr.contains("4.3.0 mailbox busy, try later (first: "), "{stderr}");
        assert!(stderr.contains("1 send failed for good: ") && stderr.contains("(first: gone@example.net)"), "{stderr}");
        assert_eq!(stderr.lines().count(), 2, "{stderr}");
        let failures = &run.report()["failures"];
        assert_eq!(failures.as_array().unwrap().len(), 2, "{failures}");
    }

    fn a_quiet_command_that_did_what_was_asked_prints_nothing(env: &TestEnv) {
        assert_eq!(env.ok(&["-q", "user", "add", "--email", "quiet@example.com"]), "");
        let added = env.ok(&["-q", "assignment", "add", "--student", "quiet@example.com", "--title", "Essay", "--due", &at(hours(24)), "--format", "json"]);
        let id = serde_json::from_str::<serde_json::Value>(&added).unwrap()["id"].as_str().unwrap().to_string();
        assert_eq!(env.ok(&["-q", "assignment", "edit", &id, "--title", "Long essay"]), "");
        assert_eq!(env.ok(&["-q", "assignment", "complete", &id]), "");
        assert_eq!(env.ok(&["-q", "retry", "--failed"]), "");
        assert_eq!(env.ok(&["-q", "assignment", "remove", &id]), "");
        assert_eq!(env.ok(&["-q", "user", "set", "quiet@example.com", "--summary-hour", "18"]), "");
        assert_eq!(env.ok(&["-q", "user", "opt-out", "quiet@example.com"]), "");
        // What was asked for is still printed.
        assert!(env.ok(&["-q", "user", "list"]).contains("quiet@example.com"));
        assert_eq!(env.ok(&["-q", "user", "remove", "quiet@example.com"]), "");
    }

    fn a_quiet_run_with_nothing_to_do_prints_nothing(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        let run = env.run(&["send", "--unit", "hours", "--targets", "24,2", "--now", NOW, "-q"]);
        assert_eq!(run.code(), 0);
        assert_eq!(run.stdout(), "");
        assert_eq!(run.stderr(), "");
        // `-q due` says nothing when nothing is due; JSON, asked for by a script, is still printed.
        assert_eq!(env.ok(&["-q", "due", "--unit", "hours", "--targets", "24", "--now", NOW]), "");
        assert_eq!(env.ok(&["-q", "due", "--unit", "hours", "--targets", "24", "--now", NOW, "--format", "json"]).trim(), "[]");
        // With work done and nothing failed, -q prints nothing either: cron
        // mails only what needs a look.
        env.add_user("q@example.com", "UTC");
        env.add_assignment("q@example.com", "Work", &at(hours(24)));
        let busy = env.run(&["send", "--unit", "hours", "--targets", "24,2", "--now", NOW, "-q"]);
        assert_eq!((busy.code(), busy.stdout(), busy.stderr()), (0, String::new(), String::new()), "{}", busy.describe());
        assert_eq!(smtp.received().len(), 1);
        for args in [&["prune", "--older-than", "90d", "-q"][..], &["user", "import", "-", "--input-format", "jsonl", "-q"]] {
            let run = env.run_with_stdin(args, "{\"email\": \"new@example.com\"}\n");
            assert_eq!((run.code(), run.stdout()), (0, String::new()), "{args:?}: {}", run.describe());
        }
    }
}

#[test]
fn rate_50_makes_200_messages_take_at_least_2_5_seconds() {
    let env = TestEnv::new(crate::common::Backend::Sqlite).unwrap();
    let smtp = SmtpServer::start();
    env.use_smtp(&smtp.url());
    env.seed_assignments(200, &at(hours(24)));
    let started = std::time::Instant::now();
    let run = env.json(&[
        "send",
        "--unit",
        "hours",
        "--targets",
        "24",
        "--now",
        NOW,
        "--rate",
        "50",
    ]);
    assert_eq!(run["sent"], 200);
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(2_500),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn version_names_the_git_commit() {
    let env = TestEnv::unmigrated(crate::common::Backend::Sqlite).unwrap();
    let version = env.ok(&["--version"]);
    assert!(
        version.starts_with(&format!("reminders {}", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .unwrap();
    let commit = String::from_utf8_lossy(&commit.stdout).trim().to_string();
    assert!(version.contains(&commit), "{version} lacks {commit}");
}

on_both_backends! {
    fn sigterm_finishes_in_flight_hands_back_the_rest_and_the_next_run_sends_them_once(env: &TestEnv) {
        let smtp = SmtpServer::start();
        smtp.delay_data(std::time::Duration::from_millis(200));
        env.use_smtp(&smtp.url());
        env.seed_assignments(30, &at(hours(24)));
        let child = env
            .command()
            .args(["send", "--unit", "hours", "--targets", "24", "--now", NOW, "--connections", "2", "--format", "json"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        while smtp.received().len() < 4 {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let killed = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        assert!(killed.success());
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(143), "{stderr}");
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let sent = report["sent"].as_u64().unwrap();
        assert_eq!(
            stderr.trim(),
            format!("interrupted by SIGTERM: {} messages left for the next run; nothing was lost", 30 - sent),
            "one line says why the run ended early"
        );
        // Stopped with work left: claimed rows handed back, or rows not claimed yet.
        assert_eq!(report["interrupted"], true, "{report}");
        // Everything the server accepted was recorded; nothing stays claimed.
        assert_eq!(smtp.received().len() as u64, sent);
        assert_eq!(env.count("SELECT count(*) AS n FROM reminders WHERE status = 'sent'") as u64, sent);
        assert_eq!(env.count("SELECT count(*) AS n FROM reminders WHERE claimed_until IS NOT NULL"), 0);
        // The next run, at the same moment (no lease to wait out), sends the rest once.
        smtp.delay_data(std::time::Duration::ZERO);
        let rest = env.json(&["send", "--unit", "hours", "--targets", "24", "--now", NOW]);
        assert_eq!(rest["sent"].as_u64().unwrap(), 30 - sent);
        assert_eq!(smtp.received().len(), 30);
    }

    fn opting_in_after_a_bounce_opt_out_says_so(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        smtp.reply_to_rcpt("bounce@", "550 5.1.1 no such user");
        env.add_user("bounce@example.com", "UTC");
        for i in 0..3 {
            env.add_assignment("bounce@example.com", &format!("A{i}"), &at(hours(24)));
        }
        assert_eq!(send(env, NOW), 3);
        let run = env.run(&["user", "opt-in", "bounce@example.com"]);
        assert_eq!(run.code(), 0);
        assert!(run.stderr().contains("had been opted out for bounces"), "{}", run.describe());
        assert_eq!(env.json(&["user", "list"])[0]["contact_opt_out"], false);
        // A plain opt-out and opt-in says nothing of bounces.
        env.ok(&["user", "opt-out", "bounce@example.com"]);
        let plain = env.run(&["user", "opt-in", "bounce@example.com"]);
        assert!(!plain.stderr().contains("bounces"), "{}", plain.describe());
    }
}

/// A loopback HTTP listener that records the paths it is asked for.
fn ping_listener() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/ping/abc", listener.local_addr().unwrap());
    let paths = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = paths.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut line = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            reader.read_line(&mut line).unwrap();
            seen.lock()
                .unwrap()
                .push(line.split_whitespace().nth(1).unwrap_or_default().to_string());
            let mut stream = stream;
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nOK");
        }
    });
    (url, paths)
}

#[test]
fn ping_url_reports_start_and_the_exit_status() {
    let env = TestEnv::new(crate::common::Backend::Sqlite).unwrap();
    let smtp = SmtpServer::start();
    env.use_smtp(&smtp.url());
    let (url, paths) = ping_listener();
    env.add_user("p@example.com", "UTC");
    env.ok(&[
        "send",
        "--unit",
        "hours",
        "--targets",
        "24",
        "--now",
        NOW,
        "--ping-url",
        &url,
    ]);
    assert_eq!(*paths.lock().unwrap(), ["/ping/abc/start", "/ping/abc/0"]);

    paths.lock().unwrap().clear();
    smtp.reply_to_rcpt("@example.com", "451 4.3.0 later");
    env.add_assignment("p@example.com", "Work", &at(hours(24)));
    env.set_var("REMINDERS_PING_URL", &url);
    assert_eq!(
        env.run(&["send", "--unit", "hours", "--targets", "24", "--now", NOW])
            .code(),
        3
    );
    assert_eq!(*paths.lock().unwrap(), ["/ping/abc/start", "/ping/abc/3"]);

    // A check URL with a query keeps it after the suffix.
    paths.lock().unwrap().clear();
    env.set_var("REMINDERS_PING_URL", &format!("{url}?create=1"));
    smtp.clear_rules();
    env.ok(&["send", "--unit", "hours", "--targets", "24", "--now", NOW]);
    assert_eq!(
        *paths.lock().unwrap(),
        ["/ping/abc/start?create=1", "/ping/abc/0?create=1"]
    );

    // A ping that fails is reported and changes nothing.
    let closed = crate::common::smtp::closed_port();
    env.set_var("REMINDERS_PING_URL", &format!("http://127.0.0.1:{closed}/x"));
    smtp.clear_rules();
    let run = env.run(&["send", "--unit", "hours", "--targets", "24", "--now", NOW]);
    assert_eq!(run.code(), 0, "{}", run.describe());
    assert!(run.stderr().contains("the ping to"), "{}", run.describe());
}

#[test]
fn check_passes_a_good_setup_and_names_each_failing_part() {
    let env = TestEnv::new(crate::common::Backend::Sqlite).unwrap();
    let smtp = SmtpServer::start();
    env.set_var("SMTP_URL", &smtp.url().replace("smtp://", "smtp://alice:s3cret@"));
    std::fs::write(env.path(".env"), "MAIL_FROM=\"Reminders <noreply@school.example>\"\n").unwrap();
    let good = env.run(&["check"]);
    assert_eq!(good.code(), 0, "{}", good.describe());
    for line in [
        "ok    database",
        "ok    mail settings",
        "ok    mail server",
        "ok    templates",
    ] {
        assert!(good.stdout().contains(line), "{}", good.describe());
    }
    assert!(
        !good.stdout().contains("s3cret") && good.stdout().contains("alice:***@"),
        "{}",
        good.stdout()
    );
    // Every setting the command reads has a row: its name, then its source.
    let row = |setting: &str| {
        good.stdout()
            .lines()
            .find(|line| line.split_whitespace().next() == Some(setting))
            .map(|line| line.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
    };
    assert!(
        row("MAIL_FROM").is_some_and(|from| from.starts_with("the .env file")),
        "{}",
        good.stdout()
    );
    assert_eq!(row("SMTP_URL").as_deref(), Some("the environment"), "{}", good.stdout());
    assert_eq!(
        row("REMINDERS_DKIM_KEY").as_deref(),
        Some("default (none)"),
        "{}",
        good.stdout()
    );
    let flagged = env.json(&["check", "--database-url", &env.database_url]);
    assert_eq!(flagged["ok"], true);
    assert_eq!(flagged["settings"][0]["from"], "the --database-url flag");

    // The mail server refuses connections.
    smtp.stop();
    let refused = env.json_status(&["check"], 1);
    assert_eq!(refused["checks"][2]["check"], "mail server");
    assert_eq!(refused["checks"][2]["ok"], false);
    assert_eq!(refused["checks"][0]["ok"], true);

    // The database is not migrated, or down.
    let fresh = TestEnv::unmigrated(crate::common::Backend::Sqlite).unwrap();
    std::fs::write(fresh.path("test.db"), b"").unwrap();
    let unmigrated = fresh.run(&["check"]);
    assert_eq!(unmigrated.code(), 1);
    assert!(
        unmigrated.stdout().contains("FAIL  database") && unmigrated.stdout().contains("reminders migrate"),
        "{}",
        unmigrated.describe()
    );
    let down = env.run(&["check", "--database-url", "postgres://bob:pw@127.0.0.1:1/app"]);
    assert_eq!(down.code(), 1);
    assert!(
        down.stdout().contains("FAIL  database: cannot connect"),
        "{}",
        down.describe()
    );
    assert!(!down.stdout().contains(":pw@"), "{}", down.describe());
}

#[test]
fn verbose_says_more_and_quiet_says_nothing_on_stderr() {
    let env = TestEnv::new(crate::common::Backend::Sqlite).unwrap();
    env.use_smtp("file://outbox");
    env.add_user("s@example.com", "UTC");
    let verbose = env.run(&["-v", "send", "--unit", "hours", "--targets", "24", "--now", NOW]);
    assert!(
        verbose.stderr().contains("scheduled the due windows"),
        "{}",
        verbose.describe()
    );
    // Where each setting came from, the password's file included, and no secret.
    for line in [
        "setting SMTP_URL from the environment",
        "setting DATABASE_URL from the environment",
        "setting SMTP_PASSWORD_FILE from default (none)",
    ] {
        assert!(verbose.stderr().contains(line), "{line}: {}", verbose.describe());
    }
    let normal = env.run(&["send", "--unit", "hours", "--targets", "24", "--now", NOW]);
    assert_eq!(normal.stderr(), "");
    // A failing ping warns, except under -q.
    let closed = crate::common::smtp::closed_port();
    let url = format!("http://127.0.0.1:{closed}/x");
    assert!(
        env.run(&["send", "--unit", "hours", "--targets", "24", "--ping-url", &url])
            .stderr()
            .contains("warning: the ping")
    );
    assert_eq!(
        env.run(&["send", "--unit", "hours", "--targets", "24", "--ping-url", &url, "-q"])
            .stderr(),
        ""
    );
    assert_eq!(env.run(&["-q", "-v", "user", "list"]).code(), 2, "-q and -v conflict");
}

/// Runs `reminders ARGS` on a terminal `columns` wide (a pty from `script`).
fn on_a_terminal(env: &TestEnv, columns: u16, args: &str) -> String {
    let command = format!(
        "stty cols {columns} rows 40; {} {args}",
        env!("CARGO_BIN_EXE_reminders")
    );
    let output = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &env.database_url)
        .current_dir(env.dir.path())
        .output()
        .expect("script (util-linux) runs a command on a pty");
    String::from_utf8_lossy(&output.stdout).to_string()
}

#[test]
fn tables_on_a_terminal_never_split_an_id_or_an_email() {
    let env = TestEnv::new(crate::common::Backend::Sqlite).unwrap();
    let email = "a.rather.long.student.address@example-school.edu";
    env.ok(&[
        "user",
        "add",
        "--email",
        email,
        "--name",
        "A Student With A Rather Long Name",
        "--timezone",
        "America/Los_Angeles",
    ]);
    let id = env.add_assignment(
        email,
        "A long assignment title that goes on about chapters and exercises",
        "2030-01-01T00:00:00Z",
    );
    let user_id = env.text("SELECT CAST(id AS TEXT) AS v FROM users").unwrap();
    for (columns, args, whole) in [
        (80, "assignment list", vec![id.as_str(), email]),
        (80, "user list", vec![user_id.as_str(), email]),
        (120, "user list", vec![user_id.as_str(), email]),
        (0, "status", vec![]),
    ] {
        let screen = on_a_terminal(&env, columns, args);
        for whole in whole {
            assert!(
                screen.contains(whole),
                "`{whole}` is split on {columns} columns:\n{screen}"
            );
        }
        // Without a reported width, 100 columns: never one letter per line.
        let widest = screen.lines().map(|line| line.chars().count()).max().unwrap_or(0);
        assert!(widest > 30, "{columns} columns:\n{screen}");
        if columns == 0 {
            assert!(widest <= 100, "{screen}");
        }
    }
}
