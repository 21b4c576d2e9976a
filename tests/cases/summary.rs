//! `reminders summary`: counts, preferences, and the daily summary email.

use crate::common::smtp::SmtpServer;
use crate::common::{TestEnv, on_both_backends};

fn summary_send(env: &TestEnv, now: &str) -> crate::common::Run {
    env.run(&["summary", "--send", "--now", now, "--format", "json"])
}

fn sent_to(smtp: &SmtpServer) -> Vec<String> {
    let mut to: Vec<String> = smtp.received().iter().map(|m| m.to[0].clone()).collect();
    to.sort();
    to
}

fn summary_rows(env: &TestEnv) -> Vec<String> {
    env.texts(
        "SELECT CAST(u.email || ' ' || s.local_date || ' ' || s.status AS TEXT) AS v \
         FROM daily_summaries s JOIN users u ON u.id = s.user_id ORDER BY u.email, s.local_date",
    )
    .into_iter()
    .flatten()
    .collect()
}

on_both_backends! {
    fn going_live_in_the_evening_skips_the_mornings_already_past(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        // Added in the morning; the summaries begin at 20:00 UTC.
        for (email, zone, hour) in [
            ("utc@example.com", "UTC", "7"),
            ("la@example.com", "America/Los_Angeles", "7"),
            ("justpast@example.com", "UTC", "19"),
            ("tonight@example.com", "America/Los_Angeles", "18"),
        ] {
            env.ok(&["user", "add", "--email", email, "--timezone", zone, "--now", "2030-03-01T05:00:00Z"]);
            env.ok(&["user", "set", email, "--summary-hour", hour]);
            env.add_assignment(email, "Thesis", "2030-03-20T12:00:00Z");
        }
        // The dry run says who would get what, with the real run's keys, and writes nothing.
        let dry = env.json(&["summary", "--send", "--dry-run", "--now", "2030-03-01T20:00:00Z"]);
        assert_eq!((dry["dry_run"].as_bool(), dry["sent"].as_u64(), dry["skipped"].as_u64()), (Some(true), Some(1), Some(2)), "{dry}");
        let actions: Vec<String> = dry["due"].as_array().unwrap().iter().map(|d| format!("{} {}", d["student_email"].as_str().unwrap(), &d["action"].as_str().unwrap()[..4])).collect();
        assert_eq!(actions.len(), 3, "{dry}");
        assert!(actions.contains(&"justpast@example.com send".to_string()) && actions.contains(&"utc@example.com skip".to_string()), "{actions:?}");
        assert_eq!(env.count("SELECT count(*) AS n FROM daily_summaries"), 0);
        assert_eq!(env.count("SELECT count(*) AS n FROM milestones"), 0);
        let run = summary_send(env, "2030-03-01T20:00:00Z");
        assert_eq!(run.code(), 0, "{}", run.describe());
        assert_eq!(run.report()["skipped"], 2, "{}", run.describe());
        for key in ["sent", "failed", "retry_later", "skipped", "scheduled"] {
            assert!(dry.get(key).is_some() && run.report().get(key).is_some(), "{key}");
        }
        // 19:00 was an hour ago: within the grace, it goes.
        assert_eq!(sent_to(&smtp), ["justpast@example.com"]);
        let reasons = env.texts("SELECT last_error AS v FROM daily_summaries WHERE status = 'skipped'");
        assert!(reasons.iter().all(|r| r.as_deref().unwrap().starts_with("before go-live")), "{reasons:?}");
        // Later runs go by the clock as usual: 18:00 in Los Angeles is 02:00 UTC.
        summary_send(env, "2030-03-02T02:00:00Z");
        summary_send(env, "2030-03-02T07:00:00Z");
        assert_eq!(sent_to(&smtp), ["justpast@example.com", "tonight@example.com", "utc@example.com"]);
        // A student added at noon gets no summary for that morning, and the next one.
        env.ok(&["user", "add", "--email", "late@example.com", "--now", "2030-03-02T12:00:00Z"]);
        env.add_assignment("late@example.com", "Thesis", "2030-03-20T12:00:00Z");
        summary_send(env, "2030-03-02T12:05:00Z");
        summary_send(env, "2030-03-03T07:00:00Z");
        let late: Vec<String> = summary_rows(env).into_iter().filter(|row| row.starts_with("late@")).collect();
        assert_eq!(late, ["late@example.com 2030-03-02 skipped", "late@example.com 2030-03-03 sent"]);
    }

    fn counts_match_a_hand_built_fixture(env: &TestEnv) {
        env.json(&["user", "add", "--email", "a@example.com", "--name", "Ada", "--timezone", "Europe/London"]);
        env.add_user("b@example.com", "UTC");
        env.add_user("c@example.com", "UTC");
        // a: two current, one overdue, two completed (one of them due later).
        env.add_assignment("a@example.com", "Next", "2030-03-02T10:00:00Z");
        env.add_assignment("a@example.com", "Later", "2030-03-09T10:00:00Z");
        env.add_assignment("a@example.com", "Missed", "2030-02-20T10:00:00Z");
        let done_early = env.add_assignment("a@example.com", "Done early", "2030-02-10T10:00:00Z");
        let done_ahead = env.add_assignment("a@example.com", "Done ahead", "2030-03-05T10:00:00Z");
        // c: only completed work. b: nothing at all.
        let c_done = env.add_assignment("c@example.com", "Finished", "2030-02-01T10:00:00Z");
        for id in [&done_early, &done_ahead, &c_done] {
            env.ok(&["assignment", "complete", id]);
        }
        // An assignment due exactly now counts as current.
        env.add_assignment("b@example.com", "Due now", "2030-03-01T12:00:00Z");

        let counts = env.json(&["summary", "--now", "2030-03-01T12:00:00Z"]);
        let row = |email: &str| counts.as_array().unwrap().iter().find(|r| r["email"] == email).unwrap().clone();
        let a = row("a@example.com");
        assert_eq!((a["current"].as_i64(), a["overdue"].as_i64(), a["completed"].as_i64()), (Some(2), Some(1), Some(2)));
        assert_eq!(a["next_due"]["title"], "Next");
        assert_eq!(a["next_due"]["due_at"], "2030-03-02T10:00:00Z");
        assert_eq!(a["timezone"], "Europe/London");
        let b = row("b@example.com");
        assert_eq!((b["current"].as_i64(), b["overdue"].as_i64(), b["completed"].as_i64()), (Some(1), Some(0), Some(0)));
        let c = row("c@example.com");
        assert_eq!((c["current"].as_i64(), c["overdue"].as_i64(), c["completed"].as_i64()), (Some(0), Some(0), Some(1)));
        assert!(c["next_due"].is_null());

        // A minute later, "Due now" is overdue.
        let later = env.json(&["summary", "--now", "2030-03-01T12:01:00Z", "--student", "b@example.com"]);
        assert_eq!(later.as_array().unwrap().len(), 1);
        assert_eq!(later[0]["overdue"], 1);
        let table = env.ok(&["summary", "--now", "2030-03-01T12:00:00Z"]);
        assert!(table.contains("Next (2030-03-02 10:00 GMT)"), "{table}");
        env.fails(&["summary", "--student", "nobody@example.com"], 2, "no user has the email");
    }

    fn preferences_are_set_and_validated(env: &TestEnv) {
        env.add_user("p@example.com", "UTC");
        let set = env.json(&["user", "set", "p@example.com", "--summary-hour", "18", "--daily-summary", "off"]);
        assert_eq!(set["summary_hour"], 18);
        assert_eq!(set["daily_summary"], false);
        let unchanged_hour = env.json(&["user", "set", "p@example.com", "--daily-summary", "on"]);
        assert_eq!(unchanged_hour["summary_hour"], 18);
        assert_eq!(unchanged_hour["daily_summary"], true);
        for bad in ["24", "-1", "seven"] {
            let run = env.run(&["user", "set", "p@example.com", &format!("--summary-hour={bad}")]);
            assert_eq!(run.code(), 2, "{}", run.describe());
        }
        assert_eq!(env.run(&["user", "set", "p@example.com", "--daily-summary", "maybe"]).code(), 2);
        env.fails(&["user", "set", "nobody@example.com", "--summary-hour", "7"], 2, "no user has the email");
        assert_eq!(env.text("SELECT CAST(summary_hour AS TEXT) AS v FROM user_preferences").unwrap(), "18");
    }

    fn summaries_go_out_at_each_students_local_hour(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        for (email, zone) in [("la@example.com", "America/Los_Angeles"), ("london@example.com", "Europe/London"), ("tokyo@example.com", "Asia/Tokyo")] {
            env.add_user(email, zone);
            env.add_assignment(email, "Essay", "2030-03-08T12:00:00Z");
        }
        // 16:00 UTC: 08:00 in Los Angeles and 16:00 in London (both past 07:00),
        // 01:00 the next day in Tokyo (not yet).
        env.in_use_since("2000-01-01T00:00:00Z");
        let run = summary_send(env, "2030-03-01T16:00:00Z");
        assert_eq!(run.code(), 0, "{}", run.describe());
        assert_eq!(sent_to(&smtp), ["la@example.com", "london@example.com"]);
        // 22:00 UTC is 07:00 on 2 March in Tokyo; the others had theirs for today.
        assert_eq!(summary_send(env, "2030-03-01T22:00:00Z").code(), 0);
        assert_eq!(sent_to(&smtp), ["la@example.com", "london@example.com", "tokyo@example.com"]);
        assert_eq!(summary_rows(env), [
            "la@example.com 2030-03-01 sent",
            "london@example.com 2030-03-01 sent",
            "tokyo@example.com 2030-03-02 sent",
        ]);
        // 14:59 UTC on 2 March is 06:59 in Los Angeles: its 2 March summary is not due yet.
        assert_eq!(summary_send(env, "2030-03-02T14:59:00Z").code(), 0);
        assert!(!summary_rows(env).contains(&"la@example.com 2030-03-02 sent".to_string()));
        assert_eq!(summary_send(env, "2030-03-02T15:00:00Z").code(), 0);
        assert!(summary_rows(env).contains(&"la@example.com 2030-03-02 sent".to_string()));

        let message = smtp.received().into_iter().find(|m| m.to[0] == "tokyo@example.com").unwrap();
        assert!(message.header("Subject").unwrap().contains("1 current, 0 overdue"));
        assert!(message.body().contains("Essay (due Fri 08 Mar 2030 21:00 JST)"), "{}", message.body());
        assert_eq!(env.count("SELECT count(*) AS n FROM send_logs WHERE summary_id IS NOT NULL AND status = 'delivered'"), 5);
    }

    fn the_email_lists_overdue_and_upcoming_nearest_first(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        env.add_user("l@example.com", "UTC");
        for (title, due) in [("Old miss", "2030-02-01T09:00:00Z"), ("Recent miss", "2030-02-28T09:00:00Z"),
                             ("Far", "2030-04-01T09:00:00Z"), ("Near", "2030-03-02T09:00:00Z")] {
            env.add_assignment("l@example.com", title, due);
        }
        assert_eq!(summary_send(env, "2030-03-01T08:00:00Z").code(), 0);
        let body = smtp.received()[0].body();
        let position = |title: &str| body.find(title).unwrap_or_else(|| panic!("{title} missing: {body}"));
        assert!(position("Recent miss") < position("Old miss"), "{body}");
        assert!(position("Old miss") < position("Near") && position("Near") < position("Far"), "{body}");
        assert!(body.contains("current:   2") && body.contains("overdue:   2") && body.contains("completed: 0"), "{body}");
    }

    fn once_per_local_day_even_when_runs_overlap(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        for i in 0..20 {
            let email = format!("s{i}@example.com");
            env.add_user(&email, "America/New_York");
            env.add_assignment(&email, "Lab", "2030-03-05T12:00:00Z");
        }
        let runs: Vec<_> = (0..2)
            .map(|_| {
                env.command()
                    .args(["summary", "--send", "--now", "2030-03-01T13:00:00Z", "--batch-size", "3"])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for run in runs {
            let output = run.wait_with_output().unwrap();
            assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        }
        assert_eq!(smtp.received().len(), 20);
        // Every minute for the rest of the day: nothing more.
        for now in ["2030-03-01T13:01:00Z", "2030-03-01T20:00:00Z", "2030-03-02T04:59:00Z"] {
            assert_eq!(summary_send(env, now).code(), 0);
        }
        assert_eq!(smtp.received().len(), 20);
        assert_eq!(env.count("SELECT count(*) AS n FROM daily_summaries"), 20);
    }

    fn a_late_run_sends_today_but_never_a_past_day(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        env.add_user("late@example.com", "UTC");
        env.add_assignment("late@example.com", "Thesis", "2030-03-20T12:00:00Z");
        // Cron was down from before 07:00 on 1 March until 23:30: still today's.
        env.in_use_since("2000-01-01T00:00:00Z");
        assert_eq!(summary_send(env, "2030-03-01T23:30:00Z").code(), 0);
        assert_eq!(summary_rows(env), ["late@example.com 2030-03-01 sent"]);
        // Down again all of 2 March; at 06:00 on 3 March nothing is owed:
        // 2 March has passed, and 3 March's hour has not come.
        assert_eq!(summary_send(env, "2030-03-03T06:00:00Z").code(), 0);
        assert_eq!(smtp.received().len(), 1);
        assert_eq!(summary_send(env, "2030-03-03T07:00:00Z").code(), 0);
        assert_eq!(summary_rows(env), ["late@example.com 2030-03-01 sent", "late@example.com 2030-03-03 sent"]);
    }

    fn dst_days_keep_the_local_wall_clock_hour(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        // 2030-03-10: New York springs forward (02:00 EST -> 03:00 EDT).
        // 2030-11-03: it falls back (02:00 EDT -> 01:00 EST).
        for (email, hour) in [("skip@example.com", "2"), ("seven@example.com", "7"), ("twice@example.com", "1")] {
            env.add_user(email, "America/New_York");
            env.ok(&["user", "set", email, "--summary-hour", hour]);
            env.add_assignment(email, "Project", "2030-12-01T12:00:00Z");
        }
        let sent_on = |env: &TestEnv, email: &str, date: &str| {
            env.count(&format!(
                "SELECT count(*) AS n FROM daily_summaries s JOIN users u ON u.id = s.user_id \
                 WHERE u.email = '{email}' AND CAST(s.local_date AS TEXT) = '{date}' AND s.status = 'sent'"
            ))
        };
        // Spring forward. 06:59 UTC is 01:59 EST: the 02:00 hour has not come.
        summary_send(env, "2030-03-10T06:59:00Z");
        assert_eq!(sent_on(env, "skip@example.com", "2030-03-10"), 0);
        // 07:00 UTC is 03:00 EDT, the first instant after the skipped hour.
        summary_send(env, "2030-03-10T07:00:00Z");
        assert_eq!(sent_on(env, "skip@example.com", "2030-03-10"), 1);
        // 07:00 EDT is 11:00 UTC on that day, not 12:00 as in winter.
        summary_send(env, "2030-03-10T10:59:00Z");
        assert_eq!(sent_on(env, "seven@example.com", "2030-03-10"), 0);
        summary_send(env, "2030-03-10T11:00:00Z");
        assert_eq!(sent_on(env, "seven@example.com", "2030-03-10"), 1);

        // Fall back. 01:00 EDT (05:00 UTC) is the first 01:00; the second one,
        // 01:00 EST (06:00 UTC), sends nothing more.
        summary_send(env, "2030-11-03T04:59:00Z");
        assert_eq!(sent_on(env, "twice@example.com", "2030-11-03"), 0);
        summary_send(env, "2030-11-03T05:00:00Z");
        summary_send(env, "2030-11-03T06:30:00Z");
        assert_eq!(sent_on(env, "twice@example.com", "2030-11-03"), 1);
        // 07:00 EST is 12:00 UTC after the change.
        summary_send(env, "2030-11-03T11:30:00Z");
        assert_eq!(sent_on(env, "seven@example.com", "2030-11-03"), 0);
        summary_send(env, "2030-11-03T12:00:00Z");
        assert_eq!(sent_on(env, "seven@example.com", "2030-11-03"), 1);
        // Hour 1 had come by the first run on 10 March (01:59 EST), and once on 3 November.
        let twice = smtp.received().iter().filter(|m| m.to[0] == "twice@example.com").count();
        assert_eq!(twice, 2);
    }

    fn opted_out_turned_off_and_idle_students_get_none(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        for email in ["off@example.com", "out@example.com", "idle@example.com", "busy@example.com"] {
            env.add_user(email, "UTC");
        }
        env.ok(&["user", "set", "off@example.com", "--daily-summary", "off"]);
        env.ok(&["user", "opt-out", "out@example.com"]);
        for email in ["off@example.com", "out@example.com", "busy@example.com"] {
            env.add_assignment(email, "Work", "2030-03-05T12:00:00Z");
        }
        let done = env.add_assignment("idle@example.com", "All done", "2030-02-05T12:00:00Z");
        env.ok(&["assignment", "complete", &done]);
        env.in_use_since("2000-01-01T00:00:00Z");
        let run = summary_send(env, "2030-03-01T09:00:00Z");
        assert_eq!(run.code(), 0, "{}", run.describe());
        assert_eq!(sent_to(&smtp), ["busy@example.com"]);
        // The idle student's skip is recorded, so it is not retried all day.
        assert_eq!(summary_rows(env), ["busy@example.com 2030-03-01 sent", "idle@example.com 2030-03-01 skipped"]);
        let reason = env.text("SELECT CAST(last_error AS TEXT) AS v FROM daily_summaries WHERE status = 'skipped'");
        assert_eq!(reason.as_deref(), Some("nothing current or overdue"));
    }

    fn a_failed_summary_is_retried_the_same_day(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        smtp.reply_to_rcpt("retry@", "451 4.3.0 try later");
        env.add_user("retry@example.com", "UTC");
        env.add_assignment("retry@example.com", "Quiz", "2030-03-05T12:00:00Z");
        let first = summary_send(env, "2030-03-01T07:00:00Z");
        assert_eq!(first.code(), 3, "{}", first.describe());
        assert_eq!(summary_rows(env), ["retry@example.com 2030-03-01 pending"]);
        assert_eq!(env.count("SELECT count(*) AS n FROM send_logs WHERE status = 'failed' AND summary_id IS NOT NULL"), 1);
        smtp.clear_rules();
        assert_eq!(summary_send(env, "2030-03-01T07:00:30Z").code(), 0, "still backing off");
        assert!(smtp.received().is_empty());
        assert_eq!(summary_send(env, "2030-03-01T07:05:00Z").code(), 0);
        assert_eq!(smtp.received().len(), 1);
        assert_eq!(summary_rows(env), ["retry@example.com 2030-03-01 sent"]);
        // A retry that could only go out the next day is dropped: its day has passed.
        smtp.reply_to_rcpt("retry@", "451 4.3.0 try later");
        assert_eq!(summary_send(env, "2030-03-02T23:58:00Z").code(), 3);
        smtp.clear_rules();
        assert_eq!(summary_send(env, "2030-03-03T00:10:00Z").code(), 0);
        assert_eq!(summary_rows(env), ["retry@example.com 2030-03-01 sent", "retry@example.com 2030-03-02 skipped"]);
        assert_eq!(smtp.received().len(), 1);
    }

    fn status_and_retry_cover_failed_summaries(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        smtp.reply_to_rcpt("gone@", "550 5.1.1 no such user");
        env.add_user("gone@example.com", "UTC");
        env.add_assignment("gone@example.com", "Quiz", "2030-03-05T12:00:00Z");
        assert_eq!(summary_send(env, "2030-03-01T07:00:00Z").code(), 3);
        assert_eq!(summary_rows(env), ["gone@example.com 2030-03-01 failed"]);

        let status = env.json(&["status", "--now", "2030-03-01T07:01:00Z"]);
        assert_eq!(status["daily_summaries"]["by_status"]["failed"], 1, "{status}");
        assert_eq!(status["by_status"]["failed"], 0, "reminders are counted apart: {status}");

        let id = env.text("SELECT CAST(id AS TEXT) AS v FROM daily_summaries").unwrap();
        let retried = env.json(&["retry", &id, "--now", "2030-03-01T07:02:00Z"]);
        assert_eq!(retried["daily_summaries"], 1, "{retried}");
        env.fails(&["retry", &id], 2, "is pending; only failed daily summaries can be retried");
        smtp.clear_rules();
        assert_eq!(summary_send(env, "2030-03-01T07:03:00Z").code(), 0);
        assert_eq!(summary_rows(env), ["gone@example.com 2030-03-01 sent"]);
        assert_eq!(sent_to(&smtp), ["gone@example.com"]);
    }
}

on_both_backends! {
    fn a_database_upgraded_with_summaries_already_sent_went_live_when_they_began(env: &TestEnv) {
        // A database as it was before the milestones migration, with a summary sent long ago.
        env.add_user("old@example.com", "UTC");
        env.execute("DROP TABLE milestones");
        env.execute("DELETE FROM __diesel_schema_migrations WHERE version = '20250907000001'");
        let user = env.text("SELECT CAST(id AS TEXT) AS v FROM users").unwrap();
        env.execute(&format!(
            "INSERT INTO daily_summaries (id, user_id, local_date, scheduled_for, status, created_at, updated_at) \
             VALUES ('{}', '{user}', '2029-01-01', '2029-01-01T07:00:00.000000Z', 'sent', \
             '2029-01-01T07:00:00.000000Z', '2029-01-01T07:00:00.000000Z')",
            uuid::Uuid::new_v4()
        ));
        env.ok(&["migrate"]);
        let began = env.text("SELECT CAST(at AS TEXT) AS v FROM milestones WHERE name = 'summaries_began'").unwrap();
        assert!(began.starts_with("2029-01-01") && began.contains("07:00:00"), "{began}");
    }
}
