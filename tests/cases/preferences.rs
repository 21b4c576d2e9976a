//! What each student chooses to get (issue 32): reminder types they get or
//! muted, types the school requires, and a weekly summary.

use chrono::{DateTime, Datelike, Duration, SecondsFormat, Utc};

use crate::common::smtp::SmtpServer;
use crate::common::{TestEnv, on_both_backends};

const DUE: &str = "2025-06-10T12:00:00Z";

fn plus(at: &str, minutes: i64) -> String {
    let at: DateTime<Utc> = at.parse().unwrap();
    (at + Duration::minutes(minutes)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Who got which reminder type, from the send logs and reminders.
fn received(env: &TestEnv) -> Vec<(String, String)> {
    let rows = env.texts(
        "SELECT l.to_email || ' ' || r.reminder_type AS v FROM send_logs l JOIN reminders r ON r.id = l.reminder_id \
         WHERE l.status = 'delivered' ORDER BY l.to_email, r.reminder_type",
    );
    rows.into_iter()
        .flatten()
        .map(|row| {
            let (to, kind) = row.split_once(' ').unwrap();
            (to.to_string(), kind.to_string())
        })
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(to, kind)| (to.to_string(), kind.to_string()))
        .collect()
}

on_both_backends! {
    fn muted_types_never_go_and_required_ones_always_do(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        for student in ["muted@x.test", "only@x.test", "all@x.test"] {
            env.add_user(student, "UTC");
            env.add_assignment(student, "Essay", DUE);
        }
        env.ok(&["user", "set", "muted@x.test", "--mute", "2h,overdue-2h"]);
        env.ok(&["user", "set", "only@x.test", "--types", "24h"]);
        let bad = env.run(&["user", "set", "all@x.test", "--mute", "soon"]);
        assert_eq!(bad.code(), 2, "{}", bad.describe());
        assert!(bad.stderr().contains("`soon` is not a reminder type"), "{}", bad.describe());
        // Every 10 minutes around each planned time; the overdue steps are required.
        for center in [-24 * 60, -2 * 60, 2 * 60] {
            for step in -3..=3 {
                let now = plus(DUE, center + step * 10);
                let args = ["send", "--unit", "hours", "--targets", "24,2", "--overdue", "2", "--required-types", "overdue", "--now", &now];
                let run = env.run(&args);
                assert_eq!(run.code(), 0, "{}", run.describe());
            }
        }
        assert_eq!(
            received(env),
            pairs(&[
                ("all@x.test", "24h"),
                ("all@x.test", "2h"),
                ("all@x.test", "overdue-2h"),
                ("muted@x.test", "24h"),
                // Muted, but the school requires overdue notices.
                ("muted@x.test", "overdue-2h"),
                ("only@x.test", "24h"),
                ("only@x.test", "overdue-2h"),
            ])
        );
        assert_eq!(smtp.received().len(), 7);
        let reasons = env.texts("SELECT last_error AS v FROM reminders WHERE status = 'skipped' ORDER BY last_error");
        assert_eq!(
            reasons.into_iter().flatten().collect::<Vec<_>>(),
            ["the student gets only 24h reminders", "the student muted 2h reminders"]
        );
        // `--types all` and `--mute none` give every type back.
        let json = env.json(&["user", "set", "only@x.test", "--types", "all", "--mute", "none"]);
        assert_eq!((json["reminder_types"].clone(), json["muted_types"].clone()), (serde_json::Value::Null, serde_json::Value::Null));
    }

    fn a_weekly_summary_goes_once_a_week_on_its_day(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        for student in ["weekly@x.test", "daily@x.test"] {
            env.add_user(student, "Europe/Paris");
            env.add_assignment(student, "Project", "2025-07-31T12:00:00Z");
        }
        env.in_use_since("2000-01-01T00:00:00Z");
        let set = env.json(&["user", "set", "weekly@x.test", "--summary", "weekly", "--summary-weekday", "wed"]);
        assert_eq!((set["summary"].as_str(), set["summary_weekday"].as_i64()), (Some("weekly"), Some(3)));
        let lone = env.run(&["user", "set", "daily@x.test", "--summary-weekday", "fri"]);
        assert_eq!(lone.code(), 2, "{}", lone.describe());
        // Two weeks from Monday 2 June 2025, every 3 hours: 07:00 Paris is 05:00 UTC.
        for hour in (0..14 * 24).step_by(3) {
            let run = env.run(&["summary", "--send", "--now", &plus("2025-06-02T00:00:00Z", hour * 60)]);
            assert_eq!(run.code(), 0, "{}", run.describe());
        }
        let dates = |email: &str| -> Vec<chrono::Weekday> {
            env.texts(&format!(
                "SELECT CAST(s.local_date AS TEXT) AS v FROM daily_summaries s JOIN users u ON u.id = s.user_id \
                 WHERE u.email = '{email}' AND s.status = 'sent' ORDER BY s.local_date"
            ))
            .into_iter()
            .flatten()
            .map(|date| date.parse::<chrono::NaiveDate>().unwrap().weekday())
            .collect()
        };
        assert_eq!(dates("weekly@x.test"), [chrono::Weekday::Wed, chrono::Weekday::Wed]);
        assert_eq!(dates("daily@x.test").len(), 14);
        assert_eq!(smtp.received().len(), 16);
    }

    fn an_import_sets_the_same_preferences_all_or_nothing(env: &TestEnv) {
        let file = env.path("students.csv");
        let bad = "email,types,mute,summary,summary_weekday\n\
                   a@x.test,24h,,weekly,fri\n\
                   b@x.test,,2h,,\n\
                   c@x.test,,,monthly,\n\
                   d@x.test,soon,,,\n";
        std::fs::write(&file, bad).unwrap();
        let run = env.run(&["user", "import", file.to_str().unwrap()]);
        assert_eq!(run.code(), 2, "{}", run.describe());
        assert!(run.stderr().contains("line 4") && run.stderr().contains("`monthly` is not a summary"), "{}", run.describe());
        assert!(run.stderr().contains("line 5") && run.stderr().contains("`soon` is not a reminder type"), "{}", run.describe());
        assert_eq!(env.count("SELECT count(*) AS n FROM users"), 0);
        let good = "email,types,mute,summary,summary_weekday\n\
                    a@x.test,24h,,weekly,fri\n\
                    b@x.test,,\"2h,overdue-2h\",,\n\
                    c@x.test,,,off,\n\
                    d@x.test,,,,\n";
        std::fs::write(&file, good).unwrap();
        env.ok(&["user", "import", file.to_str().unwrap()]);
        let stored = env.texts(
            "SELECT u.email || ' ' || COALESCE(p.reminder_types, '-') || ' ' || COALESCE(p.muted_types, '-') || ' ' || \
             CASE WHEN p.daily_summary THEN 'on' ELSE 'off' END || ' ' || COALESCE(CAST(p.summary_weekday AS TEXT), '-') AS v \
             FROM users u JOIN user_preferences p ON p.user_id = u.id ORDER BY u.email",
        );
        assert_eq!(
            stored.into_iter().flatten().collect::<Vec<_>>(),
            ["a@x.test 24h - on 5", "b@x.test - 2h,overdue-2h on -", "c@x.test - - off -"]
        );
        assert_eq!(env.count("SELECT count(*) AS n FROM users"), 4);
    }

    fn past_the_daily_limit_the_rest_fold_into_one_digest(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        for student in ["cap@x.test", "free@x.test"] {
            env.add_user(student, "UTC");
            for i in 1..=4 {
                env.add_assignment(student, &format!("Work {i}"), &plus(DUE, i * 5));
            }
        }
        let set = env.json(&["user", "set", "cap@x.test", "--max-per-day", "2"]);
        assert_eq!(set["max_per_day"], 2);
        env.fails(&["user", "set", "free@x.test", "--max-per-day", "many"], 2, "`many` is not a daily limit");
        let run = env.run(&["send", "--unit", "hours", "--targets", "24", "--now", &plus(DUE, -24 * 60), "--format", "json"]);
        assert_eq!(run.code(), 0, "{}", run.describe());
        let to = |student: &str| -> Vec<String> {
            smtp.received()
                .into_iter()
                .filter(|message| message.to.iter().any(|to| to == student))
                .map(|message| message.header("Subject").unwrap_or_default())
                .collect()
        };
        assert_eq!(to("free@x.test").len(), 4);
        // Two messages: the nearest on its own, then the other three in one.
        let capped = to("cap@x.test");
        assert_eq!(capped.len(), 2, "{capped:?}");
        assert!(capped.iter().any(|subject| subject.contains("Work 1")), "{capped:?}");
        assert!(capped.iter().any(|subject| subject.contains("3 assignments")), "{capped:?}");
        // None is dropped: every reminder is sent.
        assert_eq!(env.count("SELECT count(*) AS n FROM reminders WHERE status = 'sent'"), 8);
        // A later reminder the same day, past the limit, still goes, alone.
        env.add_assignment("cap@x.test", "Work 5", &plus(DUE, 6 * 60));
        env.ok(&["send", "--unit", "hours", "--targets", "24", "--now", &plus(DUE, -18 * 60)]);
        assert_eq!(to("cap@x.test").len(), 3);
    }
}
