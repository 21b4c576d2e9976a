//! Whom a failed send concerns: the recipient, the message, or the run. A
//! broken relay or a long outage must never burn attempts or opt students out.

use crate::common::smtp::{SmtpServer, closed_port};
use crate::common::{NOW, TestEnv, at, hours, minutes, on_both_backends};

/// Five students with two assignments each, due in a day.
fn five_students(env: &TestEnv) {
    for i in 0..5 {
        let email = format!("s{i}@example.com");
        env.add_user(&email, "UTC");
        for title in ["Essay", "Lab"] {
            env.add_assignment(&email, &format!("{title} {i}"), &at(hours(24)));
        }
    }
}

fn opted_out(env: &TestEnv) -> i64 {
    env.count("SELECT count(*) AS n FROM users WHERE contact_opt_out")
}

fn attempts_burnt(env: &TestEnv) -> i64 {
    env.count("SELECT count(*) AS n FROM reminders WHERE attempts > 0")
        + env.count("SELECT count(*) AS n FROM daily_summaries WHERE attempts > 0")
}

/// The one `error:` line of a run, asserting there is exactly one line on stderr.
fn error_line(run: &crate::common::Run) -> String {
    let stderr = run.stderr();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    lines[0].to_string()
}

on_both_backends! {
    fn a_relay_that_denies_everyone_blames_nobody_and_stops_the_run(env: &TestEnv) {
        let smtp = SmtpServer::start();
        smtp.reply_to_rcpt("@", "554 5.7.1 <x@example.com>: Relay access denied");
        env.use_smtp(&smtp.url());
        five_students(env);

        let run = env.send_24h(NOW, &[]);
        assert_eq!(run.code(), 1, "{}", run.describe());
        let line = error_line(&run);
        assert!(line.contains("stopped after 3 failures in a row") && line.contains("Relay access denied"), "{line}");
        env.in_use_since("2000-01-01T00:00:00Z");
        let summaries = env.run(&["summary", "--send", "--now", NOW]);
        assert_eq!(summaries.code(), 1, "{}", summaries.describe());
        assert!(error_line(&summaries).contains("Relay access denied"));

        assert_eq!(opted_out(env), 0, "nobody is blamed for the relay");
        assert_eq!(attempts_burnt(env), 0, "no attempt counts");
        assert_eq!(env.count("SELECT count(*) AS n FROM reminders WHERE status <> 'pending'"), 0);
        assert_eq!(env.count("SELECT count(*) AS n FROM reminders WHERE claimed_by IS NOT NULL"), 0, "claims handed back");
        assert!(env.text("SELECT max(last_error) AS v FROM reminders").unwrap().contains("Relay access denied"));

        // Once the relay is fixed, the next run sends everything.
        smtp.clear_rules();
        let fixed = env.send_24h(&at(minutes(5)), &[]);
        assert_eq!(fixed.code(), 0, "{}", fixed.describe());
        assert_eq!(env.count("SELECT count(*) AS n FROM reminders WHERE status = 'sent'"), 10);
        assert_eq!(env.count("SELECT count(*) AS n FROM reminders WHERE attempts = 1"), 10);
    }

    fn failed_authentication_blames_nobody(env: &TestEnv) {
        let smtp = SmtpServer::start();
        smtp.reply_to_auth("535 5.7.8 authentication failed");
        env.use_smtp(&format!("smtp://mailer:s3cret-pass@127.0.0.1:{}", smtp.port));
        five_students(env);
        let run = env.send_24h(NOW, &[]);
        assert_eq!(run.code(), 1, "{}", run.describe());
        let line = error_line(&run);
        assert!(line.contains("535"), "{line}");
        assert!(!run.stdout().contains("s3cret-pass") && !line.contains("s3cret-pass"));
        assert_eq!((opted_out(env), attempts_burnt(env)), (0, 0));
        assert!(smtp.received().is_empty());
    }

    fn one_unknown_mailbox_fails_alone_and_the_rest_go(env: &TestEnv) {
        // A relay that pipelines gets each message's MAIL, RCPT and DATA as
        // one group; an older one, one command at a time. Same outcome.
        for pipelining in [true, false] {
            let env = &TestEnv::new(env.backend).unwrap();
            let smtp = SmtpServer::start();
            if !pipelining {
                smtp.without_pipelining();
            }
            smtp.reply_to_rcpt("s2@", "550 5.1.1 <s2@example.com>: no such user");
            env.use_smtp(&smtp.url());
            five_students(env);
            let run = env.send_24h(NOW, &[]);
            assert_eq!(run.code(), 3, "{}", run.describe());
            assert_eq!(smtp.received().len(), 8);
            let failed = env.texts("SELECT u.email AS v FROM reminders r JOIN assignments a ON a.id = r.assignment_id \
                                    JOIN users u ON u.id = a.student_id WHERE r.status = 'failed'");
            assert_eq!(failed, [Some("s2@example.com".to_string()), Some("s2@example.com".to_string())]);
            assert_eq!(env.count("SELECT count(*) AS n FROM send_logs WHERE status = 'rejected'"), 2);
            assert_eq!(smtp.pipelined_groups(), if pipelining { 10 } else { 0 }, "pipelining {pipelining}");
        }
    }

    fn a_refused_sender_inside_a_pipelined_group_is_the_runs_fault(env: &TestEnv) {
        // 5.1.x names a mailbox, but in reply to MAIL FROM it is ours, not the
        // student's: no bounce, no attempt, and the run stops.
        let smtp = SmtpServer::start();
        smtp.reply_to_mail("553 5.1.8 <noreply@school.example>: Sender address rejected: Domain not found");
        env.use_smtp(&smtp.url());
        five_students(env);
        let run = env.send_24h(NOW, &[]);
        assert_eq!(run.code(), 1, "{}", run.describe());
        let line = error_line(&run);
        assert!(line.contains("stopped after 3 failures in a row") && line.contains("MAIL FROM"), "{line}");
        assert!(smtp.pipelined_groups() >= 3, "the attempts came as groups");
        assert_eq!((opted_out(env), attempts_burnt(env)), (0, 0));
        assert_eq!(env.count("SELECT count(*) AS n FROM send_logs WHERE status = 'rejected'"), 0);
        assert!(smtp.received().is_empty());
    }

    fn a_message_refused_for_its_content_fails_without_blaming_the_student(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        env.add_user("long@example.com", "UTC");
        for i in 0..3 {
            env.add_assignment("long@example.com", &format!("Work {i}"), &at(hours(24)));
            smtp.reply_to_next_data("500 5.5.0 Line too long");
        }
        let run = env.send_24h(NOW, &[]);
        assert_eq!(run.code(), 3, "{}", run.describe());
        assert_eq!(env.count("SELECT count(*) AS n FROM reminders WHERE status = 'failed'"), 3);
        assert!(env.text("SELECT max(last_error) AS v FROM reminders").unwrap().contains("Line too long"));
        assert_eq!(opted_out(env), 0, "three refusals of the message are not a bounce");
        assert_eq!(env.count("SELECT count(*) AS n FROM send_logs WHERE status = 'rejected'"), 0);
        assert_eq!(run.stderr().matches("refused a message for its content").count(), 1, "warned once: {}", run.describe());
    }

    fn a_mail_server_down_for_an_hour_costs_nothing(env: &TestEnv) {
        let port = closed_port();
        env.use_smtp(&format!("smtp://127.0.0.1:{port}"));
        five_students(env);
        // A cron run every five minutes for an hour, each refused.
        for step in 0..12 {
            let run = env.send_24h(&at(minutes(5 * step)), &[]);
            assert_eq!(run.code(), 1, "{}", run.describe());
            assert!(error_line(&run).contains("cannot connect"), "{}", run.describe());
        }
        assert_eq!((opted_out(env), attempts_burnt(env)), (0, 0));
        assert_eq!(env.count("SELECT count(*) AS n FROM reminders WHERE status = 'pending'"), 10);

        let smtp = SmtpServer::start_on(port);
        let back = env.send_24h(&at(minutes(65)), &[]);
        assert_eq!(back.code(), 0, "{}", back.describe());
        assert_eq!(smtp.count_by_subject().len(), 10, "every reminder still in its delivery window went out");
        assert_eq!(env.count("SELECT count(*) AS n FROM reminders WHERE status = 'sent' AND attempts = 1"), 10);
    }

    fn a_line_dropped_after_the_data_costs_no_attempt(env: &TestEnv) {
        let smtp = SmtpServer::start();
        smtp.reply_to_next_data("DROP");
        env.use_smtp(&smtp.url());
        env.add_user("drop@example.com", "UTC");
        env.add_assignment("drop@example.com", "Essay", &at(hours(24)));
        let run = env.send_24h(NOW, &[]);
        assert_eq!(run.code(), 3, "{}", run.describe());
        assert_eq!(attempts_burnt(env), 0);
        assert_eq!(env.text("SELECT status AS v FROM reminders").as_deref(), Some("pending"));
        let again = env.send_24h(&at(minutes(1)), &[]);
        assert_eq!(again.code(), 0, "{}", again.describe());
        assert_eq!(smtp.received().len(), 1);
    }
}
