//! The time rules of issue 22, one test for each reproduction, and a cron-like
//! sweep that holds `send` to one message per reminder type.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, SecondsFormat, Utc};

use crate::common::smtp::SmtpServer;
use crate::common::{TestEnv, on_both_backends};

on_both_backends! {
    fn second_60_is_refused_wherever_a_time_is_read(env: &TestEnv) {
        env.add_user("a@x.test", "UTC");
        let refused = "does not exist: a minute has seconds 00 to 59";
        for due in ["2025-06-30T12:00:60Z", "2025-06-30 12:00:60"] {
            env.fails(&["assignment", "add", "--student", "a@x.test", "--title", "PS1", "--due", due], 2, refused);
        }
        std::fs::write(env.path("work.csv"), "student,title,due\na@x.test,One,2025-06-30T12:00:59Z\na@x.test,Two,2025-06-30T12:00:60Z\n").unwrap();
        env.fails(&["assignment", "import", "work.csv"], 2, &format!("line 3: `2025-06-30T12:00:60Z` {refused}"));
        assert_eq!(env.count("SELECT count(*) AS n FROM assignments"), 0);
        env.fails(&["due", "--unit", "hours", "--targets", "24", "--now", "2025-06-30T11:59:60Z"], 2, refused);
        env.fails(&["status", "--now", "2025-06-30T11:59:60Z"], 2, refused);
        // Second 59 is an ordinary time, stored as given on both backends.
        env.add_assignment("a@x.test", "PS1", "2025-06-30T12:00:59Z");
        let listed = env.json(&["assignment", "list"]);
        assert_eq!(listed[0]["due_at"], "2025-06-30T12:00:59Z");
    }
}

/// `send` in minutes mode (`--targets 1,2`) at `now`.
fn send_minutes(env: &TestEnv, now: &str) {
    env.ok(&["send", "--unit", "minutes", "--targets", "1,2", "--now", now]);
}

/// `send` in hours mode with overlapping windows (`--targets 2,1 --tolerance 45`) at `now`.
fn send_hours(env: &TestEnv, now: &str) {
    env.ok(&[
        "send",
        "--unit",
        "hours",
        "--targets",
        "2,1",
        "--tolerance",
        "45",
        "--now",
        now,
    ]);
}

/// Every reminder as `title type status`, in order.
fn reminder_rows(env: &TestEnv) -> Vec<String> {
    env.texts(
        "SELECT CAST(a.title || ' ' || r.reminder_type || ' ' || r.status AS TEXT) AS v \
         FROM reminders r JOIN assignments a ON a.id = r.assignment_id ORDER BY a.title, r.reminder_type",
    )
    .into_iter()
    .flatten()
    .collect()
}

/// `at` moved by `seconds`, as RFC 3339.
fn plus(at: &str, seconds: i64) -> String {
    let at: DateTime<Utc> = at.parse().unwrap();
    (at + Duration::seconds(seconds)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Imports one assignment per (title, due) for `student`, in one run.
fn import_assignments(env: &TestEnv, student: &str, rows: &[(String, String)]) {
    let mut csv = String::from("student,title,due\n");
    for (title, due) in rows {
        csv.push_str(&format!("{student},{title},{due}\n"));
    }
    std::fs::write(env.path("work.csv"), csv).unwrap();
    let imported = env.run(&["assignment", "import", "work.csv"]);
    assert_eq!(imported.code(), 0, "{}", imported.describe());
}

on_both_backends! {
    fn a_nearer_reminder_sent_earlier_does_not_swallow_the_next(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        env.add_user("a@x.test", "UTC");
        env.add_assignment("a@x.test", "PS1", "2025-06-10T12:00:00Z");
        for minute in 56..=57 {
            send_minutes(env, &format!("2025-06-10T11:{minute}:00Z"));
        }
        // `due` says what `send` will do.
        let due = env.json(&["due", "--unit", "minutes", "--targets", "1,2", "--now", "2025-06-10T11:58:00Z"]);
        let actions: Vec<String> = due.as_array().unwrap().iter()
            .map(|item| format!("{} {}", item["reminder_type"].as_str().unwrap(), item["action"].as_str().unwrap()))
            .collect();
        assert_eq!(actions, ["1m send"], "{due}");
        for minute in 58..=59 {
            send_minutes(env, &format!("2025-06-10T11:{minute}:00Z"));
        }
        // 2m goes at 11:57; at 11:58 the assignment is in both windows, but 2m
        // was an earlier run's, so 1m goes now.
        assert_eq!(reminder_rows(env), ["PS1 1m sent", "PS1 2m sent"]);
        assert_eq!(smtp.received().len(), 2);
    }

    fn hours_mode_sends_the_1h_reminder_after_the_2h_one(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        env.add_user("a@x.test", "UTC");
        env.add_assignment("a@x.test", "PS1", "2025-06-10T12:00:00Z");
        // 09:15 is 2h45 ahead: the 2h window's far edge. 10:15 is 1h45 ahead:
        // both windows hold it from then on.
        for now in ["09:10", "09:15", "09:20", "10:10", "10:15", "10:20", "11:00"] {
            send_hours(env, &format!("2025-06-10T{now}:00Z"));
        }
        assert_eq!(reminder_rows(env), ["PS1 1h sent", "PS1 2h sent"]);
        assert_eq!(smtp.received().len(), 2);
    }

    fn one_run_in_two_windows_still_sends_only_the_nearest(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        env.add_user("a@x.test", "UTC");
        // Both found first by the run at 11:58, in both windows, with no reminder yet.
        env.add_assignment("a@x.test", "Near 1m", "2025-06-10T11:59:20Z");
        env.add_assignment("a@x.test", "Near 2m", "2025-06-10T11:59:40Z");
        let report = env.json(&["send", "--unit", "minutes", "--targets", "1,2", "--now", "2025-06-10T11:58:00Z"]);
        assert_eq!((report["sent"].as_i64(), report["skipped"].as_i64()), (Some(2), Some(2)), "{report}");
        send_minutes(env, "2025-06-10T11:59:00Z");
        assert_eq!(reminder_rows(env), ["Near 1m 1m sent", "Near 1m 2m skipped", "Near 2m 1m skipped", "Near 2m 2m sent"]);
        let reason = env.text("SELECT CAST(last_error AS TEXT) AS v FROM reminders r JOIN assignments a ON a.id = r.assignment_id WHERE a.title = 'Near 2m' AND r.status = 'skipped'");
        assert_eq!(reason.as_deref(), Some("superseded by the nearer 2m reminder"));
        assert_eq!(smtp.received().len(), 2);
    }

    fn a_cron_sweep_sends_each_reminder_type_once(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        env.add_user("sweep@x.test", "UTC");
        let seconds_past = [0, 1, 17, 29, 30, 31, 44, 59];

        // Minutes mode, a run every minute from `start`. Deadlines 1 to 9
        // minutes on, at varied seconds.
        let start = "2025-06-10T10:00:00Z";
        let mut minutes_mode = Vec::new();
        for minute in 1..=9 {
            for second in seconds_past {
                minutes_mode.push(minute * 60 + second);
            }
        }
        // Hours mode (`--targets 2,1 --tolerance 45`), a run every 5 minutes
        // from `start_hours`. Deadlines 1h15 to 3h35 on.
        let start_hours = "2025-06-11T08:00:00Z";
        let hours_mode: Vec<i64> = (0..21).map(|j| 75 * 60 + j * 7 * 60 + seconds_past[j as usize % 8]).collect();

        let title = |mode: &str, lead: i64| format!("{mode} +{lead}s");
        let mut rows: Vec<(String, String)> = minutes_mode.iter().map(|&d| (title("m", d), plus(start, d))).collect();
        rows.extend(hours_mode.iter().map(|&d| (title("h", d), plus(start_hours, d))));
        import_assignments(env, "sweep@x.test", &rows);

        for minute in 0..12 {
            send_minutes(env, &plus(start, minute * 60));
        }
        for step in 0..27 {
            send_hours(env, &plus(start_hours, step * 5 * 60));
        }

        // The expectation, from the design's rule alone. A run every minute (or
        // every 5 minutes with a 45-minute tolerance) first meets a deadline in
        // the far target's window only, and meets it again in the near one's
        // later: each target goes once. The exception is the very first run of
        // the sweep, which finds the deadlines that lie in the overlap of the
        // two windows in both at once, with no reminder yet: only the target
        // nearer to the time left goes (ties to the shorter). No deadline is
        // nearer than that overlap, so none is too late for its delivery window.
        let expect = |mode: &str, lead: i64, (near, far): (i64, i64), overlap: (i64, i64), names: (&str, &str)| {
            let mut expected = Vec::new();
            if overlap.0 <= lead && lead <= overlap.1 {
                let nearer = if (lead - near).abs() <= (lead - far).abs() { names.0 } else { names.1 };
                expected.push(((title(mode, lead), nearer.to_string()), 1));
            } else {
                expected.push(((title(mode, lead), names.0.to_string()), 1));
                expected.push(((title(mode, lead), names.1.to_string()), 1));
            }
            expected
        };
        let mut expected = BTreeMap::new();
        for &lead in &minutes_mode {
            // Windows at the first run: 1m holds [0, 2m], 2m holds [1m, 3m].
            expected.extend(expect("m", lead, (60, 120), (60, 120), ("1m", "2m")));
        }
        for &lead in &hours_mode {
            // 1h holds [15m, 1h45], 2h holds [1h15, 2h45].
            expected.extend(expect("h", lead, (3600, 7200), (75 * 60, 105 * 60), ("1h", "2h")));
        }
        let got = env.delivered();
        let missing: Vec<_> = expected.keys().filter(|key| !got.contains_key(key)).collect();
        assert!(missing.is_empty(), "never sent: {missing:?}");
        assert_eq!(got, expected);
        assert_eq!(smtp.received().len() as i64, expected.values().sum::<i64>());
        // Both kinds of outcome were exercised.
        assert!(expected.len() > rows.len() && expected.len() < 2 * rows.len(), "{}", expected.len());
        assert_eq!(env.count("SELECT count(*) AS n FROM reminders WHERE status NOT IN ('sent', 'skipped')"), 0);
    }
}

/// `summary --send --now NOW`, which must exit `code`.
fn summary_send(env: &TestEnv, now: &str, code: i32) {
    let run = env.run(&["summary", "--send", "--now", now]);
    assert_eq!(run.code(), code, "summary --send at {now}:\n{}", run.describe());
}

/// Every daily summary as `local_date status`, by date.
fn summary_rows(env: &TestEnv) -> Vec<String> {
    env.texts(
        "SELECT CAST(CAST(local_date AS TEXT) || ' ' || status AS TEXT) AS v FROM daily_summaries ORDER BY local_date",
    )
    .into_iter()
    .flatten()
    .collect()
}

/// The date line of each summary received, in order.
fn summary_dates(smtp: &SmtpServer) -> Vec<String> {
    smtp.received()
        .iter()
        .map(|message| {
            let body = message.body();
            let line = body
                .lines()
                .find(|line| line.starts_with("Your assignments on"))
                .unwrap_or_default();
            line.trim_start_matches("Your assignments on ")
                .trim_end_matches(':')
                .to_string()
        })
        .collect()
}

on_both_backends! {
    fn a_summary_hour_in_a_dst_gap_to_midnight_is_not_lost(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        // America/Nuuk skips 23:00-23:59 on Saturday 2025-03-29.
        env.add_user("nuuk@x.test", "America/Nuuk");
        env.ok(&["user", "set", "nuuk@x.test", "--summary-hour", "23"]);
        env.add_assignment("nuuk@x.test", "Thesis", "2025-04-10T12:00:00Z");
        let start: DateTime<Utc> = "2025-03-28T12:00:00Z".parse().unwrap();
        let end: DateTime<Utc> = "2025-03-31T06:00:00Z".parse().unwrap();
        let mut now = start;
        env.in_use_since("2000-01-01T00:00:00Z");
        while now <= end {
            summary_send(env, &now.to_rfc3339_opts(SecondsFormat::Secs, true), 0);
            now += Duration::minutes(15);
        }
        assert_eq!(summary_rows(env), ["2025-03-28 sent", "2025-03-29 sent", "2025-03-30 sent"]);
        assert_eq!(summary_dates(&smtp), ["Fri 28 Mar 2025", "Sat 29 Mar 2025", "Sun 30 Mar 2025"]);
        // The 29th's summary went at its instant: 00:00 on the 30th, 01:00 UTC.
        let sent_at = env.text("SELECT CAST(sent_at AS TEXT) AS v FROM daily_summaries WHERE CAST(local_date AS TEXT) = '2025-03-29'").unwrap();
        assert!(sent_at.starts_with("2025-03-30") && sent_at.contains("01:00:00"), "{sent_at}");
    }

    fn the_gap_days_summary_is_retried_on_the_day_it_fell_on(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        env.add_user("nuuk@x.test", "America/Nuuk");
        env.ok(&["user", "set", "nuuk@x.test", "--summary-hour", "23"]);
        env.add_assignment("nuuk@x.test", "Thesis", "2025-04-10T12:00:00Z");
        smtp.reply_to_rcpt("nuuk@", "451 4.3.0 try later");
        env.in_use_since("2000-01-01T00:00:00Z");
        summary_send(env, "2025-03-30T01:00:00Z", 3);
        assert_eq!(summary_rows(env), ["2025-03-29 pending"]);
        smtp.clear_rules();
        // Ten minutes later is still the day the summary's hour fell on: a retry, not "its day has passed".
        summary_send(env, "2025-03-30T01:10:00Z", 0);
        assert_eq!(summary_rows(env), ["2025-03-29 sent"]);
        assert_eq!(summary_dates(&smtp), ["Sat 29 Mar 2025"]);

        // A late run on the 30th (cron down since before midnight) still sends the 29th's.
        env.execute("DELETE FROM send_logs");
        env.execute("DELETE FROM daily_summaries");
        summary_send(env, "2025-03-30T20:00:00Z", 0);
        assert_eq!(summary_rows(env), ["2025-03-29 sent"]);
        // But on the 31st both have passed: neither the 29th's nor (before 23:00) the 30th's is owed.
        env.execute("DELETE FROM send_logs");
        env.execute("DELETE FROM daily_summaries");
        summary_send(env, "2025-03-31T06:00:00Z", 0);
        assert!(summary_rows(env).is_empty(), "{:?}", summary_rows(env));
    }
}

on_both_backends! {
    fn prune_with_a_short_horizon_keeps_todays_summary(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        env.add_user("la@x.test", "America/Los_Angeles");
        env.add_assignment("la@x.test", "Essay", "2025-06-10T12:00:00Z");
        env.in_use_since("2000-01-01T00:00:00Z");
        summary_send(env, "2025-06-01T15:00:00Z", 0);
        // 02:00 UTC on 2 June is 19:00 on 1 June in Los Angeles: still today there.
        let pruned = env.json(&["prune", "--older-than", "30m", "--force", "--now", "2025-06-02T02:00:00Z"]);
        assert_eq!(pruned["deleted"]["daily_summaries"], 0, "{pruned}");
        summary_send(env, "2025-06-02T02:05:00Z", 0);
        assert_eq!(summary_dates(&smtp), ["Sun 01 Jun 2025"]);
        assert_eq!(summary_rows(env), ["2025-06-01 sent"]);
        // Once no zone can owe it any more, it goes.
        let dry = env.json(&["prune", "--older-than", "30m", "--force", "--now", "2025-06-03T02:00:00Z", "--dry-run"]);
        assert_eq!(dry["deleted"]["daily_summaries"], 0, "{dry}");
        let later = env.json(&["prune", "--older-than", "30m", "--force", "--now", "2025-06-04T00:30:00Z"]);
        assert_eq!(later["deleted"]["daily_summaries"], 1, "{later}");
        assert!(summary_rows(env).is_empty());
    }

    fn prune_keeps_a_summary_owed_the_day_after_its_date(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        env.add_user("nuuk@x.test", "America/Nuuk");
        env.ok(&["user", "set", "nuuk@x.test", "--summary-hour", "23"]);
        env.add_assignment("nuuk@x.test", "Thesis", "2025-04-10T12:00:00Z");
        // The 29th's summary goes at 00:00 on the 30th and may go until the 30th
        // ends, which in Nuuk (UTC-1) is 01:00 UTC on the 31st.
        env.in_use_since("2000-01-01T00:00:00Z");
        summary_send(env, "2025-03-30T01:00:00Z", 0);
        let pruned = env.json(&["prune", "--older-than", "30m", "--force", "--now", "2025-03-31T00:30:00Z"]);
        assert_eq!(pruned["deleted"]["daily_summaries"], 0, "{pruned}");
        summary_send(env, "2025-03-31T00:40:00Z", 0);
        assert_eq!(summary_dates(&smtp), ["Sat 29 Mar 2025", "Sun 30 Mar 2025"]);
    }
}

on_both_backends! {
    fn claims_go_by_due_time_not_by_planned_slot(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        env.add_user("a@x.test", "UTC");
        // At 10:00 the 2h reminder of today's 12:00 is planned for 10:00, and the
        // 24h reminder of tomorrow's 09:40 for 09:40, earlier. Today's is due first.
        env.add_assignment("a@x.test", "due-today-12:00", "2025-06-10T12:00:00Z");
        env.add_assignment("a@x.test", "due-tomorrow-09:40", "2025-06-11T09:40:00Z");
        let send = |limit: &str| {
            env.ok(&["send", "--unit", "hours", "--targets", "24,2", "--now", "2025-06-10T10:00:00Z", "--limit", limit]);
        };
        send("1");
        let subjects = || -> Vec<String> { smtp.received().iter().map(|m| m.header("Subject").unwrap()).collect() };
        assert_eq!(subjects().len(), 1);
        assert!(subjects()[0].contains("due-today-12:00"), "{:?}", subjects());
        send("1");
        assert!(subjects()[1].contains("due-tomorrow-09:40"), "{:?}", subjects());
    }

    fn the_due_time_copied_for_claims_is_the_deadline_it_was_scheduled_for(env: &TestEnv) {
        env.add_user("a@x.test", "UTC");
        let id = env.add_assignment("a@x.test", "Lab", "2025-06-10T12:00:00Z");
        // A reminder written by hand, without the copy, gets it.
        env.execute(&format!(
            "INSERT INTO reminders (id, assignment_id, reminder_type, scheduled_for) \
             VALUES ('{}', '{id}', '2h', '2025-06-10T10:00:00.000000Z')",
            uuid::Uuid::new_v4()
        ));
        let copied = "SELECT count(*) AS n FROM reminders r JOIN assignments a ON a.id = r.assignment_id WHERE r.due_at = a.due_at";
        assert_eq!(env.count(copied), 1);
        // A due time moved by hand leaves the reminder with the deadline it was
        // scheduled for (the next run schedules it again), and the old one is kept.
        env.execute("UPDATE assignments SET due_at = '2025-06-11T12:00:00.000000Z'");
        assert_eq!(env.count(copied), 0);
        let previous = env.text("SELECT CAST(previous_due_at AS TEXT) AS v FROM assignments").unwrap();
        assert!(previous.starts_with("2025-06-10"), "{previous}");
    }
}
