//! `reminders due`: the windows, `--now`, `--tolerance`, and what is excluded.

use crate::common::{NOW, TestEnv, at, hours, minutes, on_both_backends};

fn due(env: &TestEnv, args: &[&str]) -> Vec<(String, String)> {
    let items = env.json(&[&["due"], args].concat());
    items
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            (
                item["title"].as_str().unwrap().to_string(),
                item["reminder_type"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

on_both_backends! {
    fn hours_windows_find_what_is_due_and_nothing_else(env: &TestEnv) {
        env.add_user("la@example.com", "America/Los_Angeles");
        env.add_user("tokyo@example.com", "Asia/Tokyo");
        env.add_user("gone@example.com", "UTC");
        env.add_assignment("la@example.com", "Day ahead", &at(hours(24)));
        env.add_assignment("tokyo@example.com", "Edge of window", &at(hours(24) + minutes(30)));
        env.add_assignment("tokyo@example.com", "Too far", &at(hours(24) + minutes(31)));
        env.add_assignment("la@example.com", "Two hours", &at(hours(2) - minutes(10)));
        let done = env.add_assignment("la@example.com", "Completed", &at(hours(24)));
        env.ok(&["assignment", "complete", &done]);
        env.add_assignment("gone@example.com", "Opted out", &at(hours(24)));
        env.ok(&["user", "opt-out", "gone@example.com"]);

        let found = due(env, &["--unit", "hours", "--targets", "24,2", "--now", NOW]);
        assert_eq!(found, [
            ("Day ahead".to_string(), "24h".to_string()),
            ("Edge of window".to_string(), "24h".to_string()),
            ("Two hours".to_string(), "2h".to_string()),
        ]);
        let items = env.json(&["due", "--unit", "hours", "--targets", "24,2", "--now", NOW]);
        let first = &items[0];
        assert_eq!(first["student_email"], "la@example.com");
        assert_eq!(first["due_at"], at(hours(24)));
        assert_eq!(first["assignment_id"].as_str().unwrap().len(), 36);
        // Read-only: nothing was scheduled.
        assert_eq!(env.count("SELECT count(*) AS n FROM reminders"), 0);
        // The table shows the student's local time.
        let table = env.ok(&["due", "--unit", "hours", "--targets", "24", "--now", NOW]);
        assert!(table.contains("2030-03-02 04:00 PST"), "{table}");
    }

    fn minutes_mode_uses_a_one_minute_tolerance_unless_told(env: &TestEnv) {
        env.add_user("m@example.com", "UTC");
        env.add_assignment("m@example.com", "In", &at(minutes(2) + chrono::Duration::seconds(50)));
        env.add_assignment("m@example.com", "Out", &at(minutes(3) + chrono::Duration::seconds(30)));
        assert_eq!(due(env, &["--unit", "minutes", "--targets", "2", "--now", NOW]), [("In".into(), "2m".into())]);
        let wider = due(env, &["--unit", "minutes", "--targets", "2", "--tolerance", "2", "--now", NOW]);
        assert_eq!(wider.len(), 2);
        // --now moves the window.
        let later = due(env, &["--unit", "minutes", "--targets", "2", "--now", &at(minutes(2))]);
        assert_eq!(later, [("Out".into(), "2m".into())]);
    }

    fn sent_skipped_and_failed_reminders_are_no_longer_due(env: &TestEnv) {
        env.add_user("s@example.com", "UTC");
        for title in ["Sent", "Skipped", "Failed", "Pending"] {
            env.add_assignment("s@example.com", title, &at(hours(24)));
        }
        for (title, status) in [("Sent", "sent"), ("Skipped", "skipped"), ("Failed", "failed"), ("Pending", "pending")] {
            env.execute(&format!(
                "INSERT INTO reminders (id, assignment_id, reminder_type, scheduled_for, status) \
                 SELECT '{}', id, '24h', '2030-03-01T12:00:00.000000Z', '{status}' FROM assignments WHERE title = '{title}'",
                uuid::Uuid::new_v4()
            ));
        }
        assert_eq!(due(env, &["--unit", "hours", "--targets", "24", "--now", NOW]), [("Pending".into(), "24h".into())]);
    }

    fn bad_windows_are_refused(env: &TestEnv) {
        for args in [
            vec!["--unit", "days", "--targets", "1"],
            vec!["--unit", "hours", "--targets", "1,,x"],
            vec!["--unit", "hours", "--targets", "0"],
            vec!["--unit", "hours", "--targets=-3"],
            vec!["--unit", "hours", "--targets", "24", "--now", "yesterday"],
        ] {
            for command in ["due", "send"] {
                let run = env.run(&[&[command][..], &args].concat());
                assert_eq!(run.code(), 2, "{command} {args:?}\n{}", run.describe());
            }
        }
    }
}

on_both_backends! {
    fn a_window_larger_than_a_page_is_walked_whole(env: &TestEnv) {
        // 10,000 rows a page: 10,050 due in one window take two pages, and
        // the second starts where the first ended (all share one due time).
        env.seed_assignments(10_050, &at(hours(24)));
        let items = env.json(&["due", "--unit", "hours", "--targets", "24", "--now", NOW]);
        let ids: std::collections::HashSet<&str> =
            items.as_array().unwrap().iter().map(|item| item["assignment_id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), 10_050);
        // Scheduling them all at once must fit a statement's parameter limit
        // (65,535 on PostgreSQL), and every one goes out once.
        env.use_smtp("file://outbox");
        let sent = env.json(&["send", "--unit", "hours", "--targets", "24", "--connections", "4", "--now", NOW]);
        assert_eq!(sent["sent"], 10_050, "{sent}");
        assert_eq!(std::fs::read_dir(env.path("outbox")).unwrap().count(), 10_050);
    }
}
