//! `reminders send` over a real SMTP server on loopback.

use crate::common::smtp::{SmtpServer, closed_port};
use crate::common::{NOW, TestEnv, at, hours, minutes, on_both_backends};

/// `send --unit hours --targets 24,2 --now WHEN` plus `extra`.
fn send(env: &TestEnv, when: &str, extra: &[&str]) -> crate::common::Run {
    env.run(
        &[
            &[
                "send",
                "--unit",
                "hours",
                "--targets",
                "24,2",
                "--now",
                when,
                "--format",
                "json",
            ][..],
            extra,
        ]
        .concat(),
    )
}

fn reminder_field(env: &TestEnv, title: &str, field: &str) -> Option<String> {
    env.text(&format!(
        "SELECT CAST(r.{field} AS TEXT) AS v FROM reminders r JOIN assignments a ON a.id = r.assignment_id \
         WHERE a.title = '{title}'"
    ))
}

on_both_backends! {
    fn a_due_reminder_is_delivered_once_and_recorded(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        env.json(&["user", "add", "--email", "alice@example.com", "--name", "Alice", "--timezone", "America/Los_Angeles"]);
        env.add_assignment("alice@example.com", "Problem set 1", &at(hours(24)));

        let run = send(env, NOW, &[]);
        assert_eq!(run.code(), 0, "{}", run.describe());
        assert_eq!(run.report()["sent"], 1);
        let received = smtp.received();
        assert_eq!(received.len(), 1);
        let message = &received[0];
        assert_eq!(message.to, ["alice@example.com"]);
        assert_eq!(message.from, "noreply@school.example");
        assert!(message.header("Subject").unwrap().contains("Problem set 1"));
        // 2030-03-02T12:00Z is 04:00 PST, a day ahead.
        assert!(message.body().contains("Sat 02 Mar 2030 04:00 PST"), "{}", message.body());
        assert!(message.body().contains("1 day from now"), "{}", message.body());

        let reminder_id = reminder_field(env, "Problem set 1", "id").unwrap();
        assert_eq!(message.header("Message-ID").unwrap(), format!("<{reminder_id}@school.example>"));
        assert_eq!(reminder_field(env, "Problem set 1", "status").unwrap(), "sent");
        assert_eq!(reminder_field(env, "Problem set 1", "attempts").unwrap(), "1");
        assert_eq!(reminder_field(env, "Problem set 1", "reminder_type").unwrap(), "24h");
        assert!(reminder_field(env, "Problem set 1", "sent_at").is_some());
        assert!(reminder_field(env, "Problem set 1", "last_error").is_none());
        let log = env.texts(
            "SELECT CAST(to_email || '|' || from_inbox || '|' || message_id || '|' || status AS TEXT) AS v FROM send_logs",
        );
        assert_eq!(log, [Some(format!("alice@example.com|noreply@school.example|<{reminder_id}@school.example>|delivered"))]);

        // The next cron run finds it already sent.
        let again = send(env, &at(minutes(5)), &[]);
        assert_eq!(again.code(), 0);
        assert_eq!(again.report()["already_sent"], 1);
        assert_eq!(again.report()["sent"], 0);
        assert_eq!(smtp.received().len(), 1);
    }

    fn the_table_report_counts_what_the_run_did(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        env.add_user("t@example.com", "UTC");
        env.add_assignment("t@example.com", "T", &at(hours(2)));
        let run = env.run(&["send", "--unit", "hours", "--targets", "24,2", "--now", NOW]);
        assert_eq!(run.code(), 0);
        for row in ["sent", "failed", "retry later", "skipped", "already sent"] {
            assert!(run.stdout().contains(row), "{}", run.stdout());
        }
    }

    fn nearby_targets_send_one_email_for_the_nearest(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        env.add_user("n@example.com", "UTC");
        // 100 s ahead: inside both the 1m window [0, 2m] and the 2m window [1m, 3m]; 2m is nearer.
        env.add_assignment("n@example.com", "Quiz", &at(chrono::Duration::seconds(100)));
        let run = env.run(&["send", "--unit", "minutes", "--targets", "1,2", "--now", NOW, "--format", "json"]);
        assert_eq!(run.code(), 0, "{}", run.describe());
        assert_eq!(run.report()["sent"], 1);
        assert_eq!(run.report()["skipped"], 1);
        assert_eq!(smtp.received().len(), 1);
        let statuses = env.texts("SELECT CAST(reminder_type || ':' || status AS TEXT) AS v FROM reminders ORDER BY reminder_type");
        assert_eq!(statuses, [Some("1m:skipped".into()), Some("2m:sent".into())]);
        // A minute later the 1m window holds it, but its reminder is already settled.
        let later = env.run(&["send", "--unit", "minutes", "--targets", "1,2", "--now", &at(minutes(1))]);
        assert_eq!(later.code(), 0);
        assert_eq!(smtp.received().len(), 1);
    }

    fn transient_failures_back_off_then_fail_after_max_attempts(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        smtp.reply_to_rcpt("flaky@", "451 4.3.0 mailbox busy, try again later");
        env.add_user("flaky@example.com", "UTC");
        env.add_assignment("flaky@example.com", "Essay", &at(hours(24)));
        let limits = ["--max-attempts", "3"];

        let first = send(env, NOW, &limits);
        assert_eq!(first.code(), 3, "{}", first.describe());
        assert_eq!(first.report()["retry_later"], 1);
        assert_eq!(reminder_field(env, "Essay", "status").unwrap(), "pending");
        assert_eq!(reminder_field(env, "Essay", "attempts").unwrap(), "1");
        assert!(reminder_field(env, "Essay", "last_error").unwrap().contains("451"));
        let log = env.text("SELECT CAST(status || '|' || error AS TEXT) AS v FROM send_logs").unwrap();
        assert!(log.starts_with("failed|") && log.contains("451"), "{log}");

        // Within the first backoff (1 minute): not tried again.
        let early = send(env, &at(chrono::Duration::seconds(30)), &limits);
        assert_eq!(early.code(), 0, "{}", early.describe());
        assert_eq!(reminder_field(env, "Essay", "attempts").unwrap(), "1");

        // After it: tried again; the next wait doubles to 2 minutes.
        assert_eq!(send(env, &at(minutes(2)), &limits).code(), 3);
        assert_eq!(reminder_field(env, "Essay", "attempts").unwrap(), "2");
        assert_eq!(send(env, &at(minutes(3)), &limits).code(), 0);
        assert_eq!(reminder_field(env, "Essay", "attempts").unwrap(), "2");

        // The third attempt is the last.
        assert_eq!(send(env, &at(minutes(6)), &limits).code(), 3);
        assert_eq!(reminder_field(env, "Essay", "status").unwrap(), "failed");
        assert_eq!(reminder_field(env, "Essay", "attempts").unwrap(), "3");
        assert!(reminder_field(env, "Essay", "last_error").unwrap().contains("gave up after 3 attempts"));
        assert_eq!(env.count("SELECT count(*) AS n FROM send_logs WHERE status = 'failed'"), 3);

        // A failed reminder is never tried again, even when the server recovers.
        smtp.clear_rules();
        assert_eq!(send(env, &at(minutes(20)), &limits).code(), 0);
        assert!(smtp.received().is_empty());
        assert_eq!(env.count("SELECT count(*) AS n FROM send_logs"), 3);
    }

    fn a_retry_goes_out_after_the_window_has_passed(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        smtp.reply_to_rcpt("r@", "451 4.3.0 try again later");
        env.add_user("r@example.com", "UTC");
        env.add_assignment("r@example.com", "Lab", &at(hours(24)));
        assert_eq!(send(env, NOW, &[]).code(), 3);
        smtp.clear_rules();
        // 45 minutes on, the assignment is out of the ±30 minute window, but within
        // the 24h reminder's 12 hour delivery window.
        let retry = send(env, &at(minutes(45)), &[]);
        assert_eq!(retry.code(), 0, "{}", retry.describe());
        assert_eq!(retry.report()["sent"], 1);
        assert_eq!(smtp.received().len(), 1);
        assert_eq!(reminder_field(env, "Lab", "status").unwrap(), "sent");
        assert_eq!(reminder_field(env, "Lab", "attempts").unwrap(), "2");
    }

    fn a_mail_server_that_is_down_loses_nothing(env: &TestEnv) {
        let port = closed_port();
        env.use_smtp(&format!("smtp://127.0.0.1:{port}"));
        env.add_user("down@example.com", "UTC");
        env.add_assignment("down@example.com", "Report", &at(hours(24)));
        let refused = send(env, NOW, &[]);
        assert_eq!(refused.code(), 3, "{}", refused.describe());
        assert_eq!(refused.report()["retry_later"], 1);
        assert_eq!(reminder_field(env, "Report", "status").unwrap(), "pending");
        assert!(reminder_field(env, "Report", "last_error").is_some());

        let smtp = SmtpServer::start_on(port);
        let back = send(env, &at(minutes(3)), &[]);
        assert_eq!(back.code(), 0, "{}", back.describe());
        assert_eq!(smtp.received().len(), 1);
        assert_eq!(env.count("SELECT count(*) AS n FROM send_logs WHERE status = 'delivered'"), 1);
        assert_eq!(env.count("SELECT count(*) AS n FROM send_logs WHERE status = 'failed'"), 1);
    }

    fn a_slow_server_times_out_as_a_transient_failure(env: &TestEnv) {
        let smtp = SmtpServer::start();
        smtp.delay_data(std::time::Duration::from_secs(3));
        env.use_smtp(&smtp.url());
        env.add_user("slow@example.com", "UTC");
        env.add_assignment("slow@example.com", "Slow", &at(hours(24)));
        let run = send(env, NOW, &["--smtp-timeout", "1s"]);
        assert_eq!(run.code(), 3, "{}", run.describe());
        assert_eq!(run.report()["retry_later"], 1);
        assert_eq!(reminder_field(env, "Slow", "status").unwrap(), "pending");
    }

    fn permanent_rejections_fail_at_once_and_three_in_a_row_opt_out(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        smtp.reply_to_rcpt("bounce@", "550 5.1.1 no such user");
        env.add_user("bounce@example.com", "UTC");
        env.add_assignment("bounce@example.com", "One", &at(hours(24)));
        env.add_assignment("bounce@example.com", "Two", &at(hours(24)));

        let run = send(env, NOW, &[]);
        assert_eq!(run.code(), 3, "{}", run.describe());
        assert_eq!(run.report()["failed"], 2);
        assert_eq!(reminder_field(env, "One", "status").unwrap(), "failed");
        assert_eq!(reminder_field(env, "One", "attempts").unwrap(), "1");
        assert_eq!(env.count("SELECT count(*) AS n FROM send_logs WHERE status = 'rejected'"), 2);
        // Two rejections are not yet three.
        assert_eq!(env.json(&["user", "list"])[0]["contact_opt_out"], false);

        env.add_assignment("bounce@example.com", "Three", &at(hours(2)));
        let third = send(env, NOW, &[]);
        assert_eq!(third.code(), 3);
        assert_eq!(third.report()["opted_out"], serde_json::json!(["bounce@example.com"]));
        assert!(third.stderr().contains("now opted out"), "{}", third.describe());
        let user = &env.json(&["user", "list"])[0];
        assert_eq!(user["contact_opt_out"], true);
        assert_eq!(user["opt_out_reason"], "bounced");
        let noted = env.count("SELECT count(*) AS n FROM send_logs WHERE error LIKE '%now opted out%'");
        assert_eq!(noted, 1, "the log says so");
        assert!(smtp.received().is_empty());
    }

    fn opt_outs_and_completions_are_checked_at_send_time(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        smtp.reply_to_rcpt("@example.com", "451 4.3.0 later");
        env.add_user("quits@example.com", "UTC");
        env.add_user("done@example.com", "UTC");
        env.add_assignment("quits@example.com", "Quitter", &at(hours(24)));
        let finished = env.add_assignment("done@example.com", "Finished", &at(hours(24)));
        assert_eq!(send(env, NOW, &[]).code(), 3);
        // Both are queued for a retry; meanwhile one student opts out and the
        // other completes the assignment.
        env.ok(&["user", "opt-out", "quits@example.com"]);
        env.ok(&["assignment", "complete", &finished]);
        smtp.clear_rules();
        let run = send(env, &at(minutes(3)), &[]);
        assert_eq!(run.code(), 0, "{}", run.describe());
        assert_eq!(run.report()["skipped"], 2);
        assert!(smtp.received().is_empty());
        assert_eq!(reminder_field(env, "Quitter", "status").unwrap(), "skipped");
        assert!(reminder_field(env, "Quitter", "last_error").unwrap().contains("opted out"));
        assert_eq!(reminder_field(env, "Finished", "status").unwrap(), "skipped");
        assert!(reminder_field(env, "Finished", "last_error").unwrap().contains("completed"));
    }

    fn late_and_past_due_reminders_are_skipped(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        smtp.reply_to_rcpt("@example.com", "451 4.3.0 later");
        env.add_user("late@example.com", "UTC");
        env.add_assignment("late@example.com", "Planned now", &at(hours(24)));
        env.add_assignment("late@example.com", "Planned later", &at(hours(24) + minutes(20)));
        env.add_assignment("late@example.com", "Soon due", &at(hours(2)));
        assert_eq!(send(env, NOW, &[]).code(), 3);
        smtp.clear_rules();
        // 12h10m on: "Planned now" is 10 minutes past its 12 hour delivery window,
        // "Planned later" 10 minutes inside it, and "Soon due" is past due.
        let run = send(env, &at(hours(12) + minutes(10)), &[]);
        assert_eq!(run.code(), 0, "{}", run.describe());
        assert_eq!(run.report()["sent"], 1);
        assert_eq!(run.report()["skipped"], 2);
        assert_eq!(reminder_field(env, "Planned later", "status").unwrap(), "sent");
        assert!(reminder_field(env, "Planned now", "last_error").unwrap().contains("delivery window"));
        assert!(reminder_field(env, "Soon due", "last_error").unwrap().contains("past due"));
    }

    fn the_delivery_window_can_be_widened(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        smtp.reply_to_rcpt("@example.com", "451 4.3.0 later");
        env.add_user("w@example.com", "UTC");
        env.add_assignment("w@example.com", "Wide", &at(hours(24)));
        assert_eq!(send(env, NOW, &[]).code(), 3);
        smtp.clear_rules();
        let run = send(env, &at(hours(13)), &["--delivery-window", "14h"]);
        assert_eq!(run.report()["sent"], 1, "{}", run.describe());
    }

    fn titles_and_names_cannot_inject_headers_or_recipients(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        // `add` refuses such text now; rows stored before, or by another tool, still cannot inject.
        env.fails(&["user", "add", "--email", "victim@example.com", "--name", "Vic\r\nBcc: spy@evil.example"], 2, "control character");
        let crlf = match env.backend {
            crate::common::Backend::Sqlite => "char(13, 10)",
            crate::common::Backend::Postgres => "chr(13) || chr(10)",
        };
        let user = uuid::Uuid::new_v4();
        env.execute(&format!(
            "INSERT INTO users (id, email, name, timezone) \
             VALUES ('{user}', 'victim@example.com', 'Vic' || {crlf} || 'Bcc: spy@evil.example', 'UTC')"
        ));
        env.execute(&format!(
            "INSERT INTO assignments (id, title, student_id, due_at) \
             VALUES ('{}', 'Essay' || {crlf} || 'Bcc: evil@evil.example' || {crlf} || 'X-Injected: yes', '{user}', '2030-03-02T12:00:00.000000Z')",
            uuid::Uuid::new_v4()
        ));
        assert_eq!(send(env, NOW, &[]).code(), 0);
        let received = smtp.received();
        assert_eq!(received.len(), 1);
        assert_eq!(received[0].to, ["victim@example.com"]);
        let head = received[0].data.split("\r\n\r\n").next().unwrap().to_string();
        for line in head.lines() {
            assert!(!line.starts_with("Bcc") && !line.starts_with("X-Injected"), "injected header: {head}");
        }
    }

    fn dry_run_shows_and_writes_nothing(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        env.add_user("dry@example.com", "UTC");
        env.add_assignment("dry@example.com", "Dry", &at(hours(24)));
        let run = env.run(&["send", "--unit", "hours", "--targets", "24,2", "--now", NOW, "--dry-run"]);
        assert_eq!(run.code(), 0, "{}", run.describe());
        assert!(run.stdout().contains("Dry") && run.stdout().contains("dry run"), "{}", run.stdout());
        assert_eq!(env.count("SELECT count(*) AS n FROM reminders"), 0);
        assert_eq!(env.count("SELECT count(*) AS n FROM send_logs"), 0);
        assert!(smtp.received().is_empty());
    }

    fn missing_or_malformed_mail_settings_stop_the_run(env: &TestEnv) {
        env.add_user("x@example.com", "UTC");
        let base = ["send", "--unit", "hours", "--targets", "24"];
        env.fails(&base, 1, "set `--smtp-url` or `SMTP_URL`");
        env.set_var("SMTP_URL", "smtp://127.0.0.1:2525");
        env.fails(&base, 1, "set `--mail-from` or `MAIL_FROM`");
        env.set_var("MAIL_FROM", "not a mailbox");
        env.fails(&base, 1, "MAIL_FROM `not a mailbox` is not a mailbox");
        env.set_var("MAIL_FROM", "noreply@school.example");
        env.set_var("SMTP_URL", "gopher://mail.example");
        env.fails(&base, 1, "is not smtp://host:port");
        env.set_var("SMTP_URL", "smtp://alice:s3cret@[bad/");
        let run = env.fails(&base, 1, "SMTP_URL is malformed");
        assert!(!run.stderr().contains("s3cret"));
        assert_eq!(env.count("SELECT count(*) AS n FROM reminders"), 0);
    }

    fn connections_are_pooled_and_reused(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        env.add_user("p@example.com", "UTC");
        for i in 0..30 {
            env.add_assignment("p@example.com", &format!("A{i}"), &at(hours(24)));
        }
        let run = send(env, NOW, &["--connections", "2", "--batch-size", "7"]);
        assert_eq!(run.code(), 0, "{}", run.describe());
        assert_eq!(smtp.received().len(), 30);
        assert!(smtp.connections() <= 2, "{} connections for 30 messages", smtp.connections());
        assert_eq!(env.count("SELECT count(*) AS n FROM reminders WHERE status = 'sent'"), 30);
    }

    fn earlier_due_times_go_first(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        env.add_user("o@example.com", "UTC");
        for offset in [20, -10, 5, -25, 0] {
            env.add_assignment("o@example.com", &format!("T{offset}"), &at(hours(24) + minutes(offset)));
        }
        assert_eq!(send(env, NOW, &["--connections", "1"]).code(), 0);
        let subjects: Vec<String> = smtp.received().iter().map(|m| m.header("Subject").unwrap()).collect();
        let order: Vec<&str> = subjects.iter().map(|s| s.split_whitespace().nth(1).unwrap()).collect();
        assert_eq!(order, ["T-25", "T-10", "T0", "T5", "T20"]);
    }

    fn a_file_outbox_gets_an_eml_per_message(env: &TestEnv) {
        env.use_smtp("file://outbox");
        env.add_user("f@example.com", "UTC");
        env.add_assignment("f@example.com", "Outbox", &at(hours(24)));
        assert_eq!(send(env, NOW, &[]).code(), 0);
        let files: Vec<_> = std::fs::read_dir(env.path("outbox")).unwrap().collect();
        assert_eq!(files.len(), 1);
        let path = files[0].as_ref().unwrap().path();
        let eml = std::fs::read_to_string(&path).unwrap();
        assert!(eml.contains("Subject: Reminder: Outbox is due"), "{eml}");
        assert_eq!(reminder_field(env, "Outbox", "status").unwrap(), "sent");
        // Named after its Message-ID, which the send log has too.
        let message_id = env.text("SELECT message_id AS v FROM send_logs").unwrap();
        let name = path.file_name().unwrap().to_str().unwrap();
        assert_eq!(format!("<{}>", name.trim_end_matches(".eml")), message_id);
        assert!(eml.contains(&format!("Message-ID: {message_id}")), "{eml}");
    }
}
