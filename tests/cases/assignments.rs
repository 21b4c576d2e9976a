//! `reminders assignment …`.

use crate::common::{TestEnv, on_both_backends};

on_both_backends! {
    fn add_reads_rfc3339_and_local_times(env: &TestEnv) {
        env.add_user("la@example.com", "America/Los_Angeles");
        // A due time in the past is accepted, with a warning.
        let past = env.run(&["assignment", "add", "--student", "la@example.com", "--title", "PS 0", "--due", "2001-01-01T00:00:00Z"]);
        assert_eq!(past.code(), 0, "{}", past.describe());
        assert_eq!(past.stderr(), "warning: the due time 2001-01-01T00:00:00Z is in the past: no reminder will go out for it\n");
        let utc = env.json(&["assignment", "add", "--student", "la@example.com", "--title", "PS 1", "--due", "2025-09-27T23:00:00Z", "--now", "2025-01-01T00:00:00Z"]);
        assert_eq!(utc["due_at"], "2025-09-27T23:00:00Z");
        assert_eq!(utc["title"], "PS 1");
        assert_eq!(utc["completed"], false);
        let local = env.json(&[
            "assignment", "add", "--student", "LA@example.com", "--title", "PS 2",
            "--due", "2025-12-01 09:30", "--description", "Chapter 4", "--metadata", r#"{"course":"CS101"}"#,
            "--now", "2025-01-01T00:00:00Z",
        ]);
        // 09:30 PST is 17:30 UTC.
        assert_eq!(local["due_at"], "2025-12-01T17:30:00Z");
        assert_eq!(local["metadata"]["course"], "CS101");
        assert_eq!(local["description"], "Chapter 4");
        assert_eq!(local["id"].as_str().unwrap().len(), 36);
    }

    fn add_refuses_bad_input_and_writes_nothing(env: &TestEnv) {
        env.add_user("ny@example.com", "America/New_York");
        let add = |due: &str, metadata: Option<&str>, student: &str| {
            let mut args = vec!["assignment", "add", "--student", student, "--title", "T", "--due", due];
            if let Some(metadata) = metadata {
                args.extend(["--metadata", metadata]);
            }
            args.into_iter().map(String::from).collect::<Vec<_>>()
        };
        let cases: Vec<(Vec<String>, &str)> = vec![
            (add("2025-03-09 02:30", None, "ny@example.com"), "does not exist in America/New_York"),
            (add("2025-11-02 01:30", None, "ny@example.com"), "is ambiguous in America/New_York"),
            (add("next tuesday", None, "ny@example.com"), "`next tuesday` is not a due time"),
            (add("2025-13-40 10:00", None, "ny@example.com"), "is not a due time"),
            (
                add("2030-12-05T17:00:00", None, "ny@example.com"),
                "`2030-12-05T17:00:00` has no UTC offset: add `Z` or one such as `+01:00`, or write `2030-12-05 17:00` for the student's local time",
            ),
            (add("2030-01-01 10:00", None, "nobody@example.com"), "no user has the email `nobody@example.com`"),
            (add("2030-01-01 10:00", None, "not an email"), "is not a valid email address"),
            (add("2030-01-01 10:00", Some("{oops"), "ny@example.com"), "is not valid JSON"),
            (add("2030-01-01 10:00", Some("[1, 2]"), "ny@example.com"), "must be a JSON object"),
            (add("2030-01-01 10:00", Some("\"text\""), "ny@example.com"), "must be a JSON object"),
        ];
        for (args, message) in cases {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            env.fails(&args, 2, message);
        }
        env.fails(&["assignment", "add", "--student", "ny@example.com", "--title", "  ", "--due", "2030-01-01 10:00"], 2, "the title is empty");
        assert_eq!(env.count("SELECT count(*) AS n FROM assignments"), 0);
    }

    fn list_shows_local_times_in_tables_and_utc_in_json(env: &TestEnv) {
        env.add_user("la@example.com", "America/Los_Angeles");
        env.add_user("tokyo@example.com", "Asia/Tokyo");
        env.add_assignment("la@example.com", "Late", "2025-09-28T23:00:00Z");
        env.add_assignment("tokyo@example.com", "Early", "2025-09-27T23:00:00Z");
        let table = env.ok(&["assignment", "list"]);
        assert!(table.contains("2025-09-28 16:00 PDT"), "{table}");
        assert!(table.contains("2025-09-28 08:00 JST"), "{table}");
        let all = env.json(&["assignment", "list"]);
        let titles: Vec<&str> = all.as_array().unwrap().iter().map(|a| a["title"].as_str().unwrap()).collect();
        assert_eq!(titles, ["Early", "Late"], "ordered by due time");
        assert_eq!(all[0]["due_at"], "2025-09-27T23:00:00Z");
        let mine = env.json(&["assignment", "list", "--student", "la@example.com"]);
        assert_eq!(mine.as_array().unwrap().len(), 1);
        assert_eq!(mine[0]["student_email"], "la@example.com");
        env.fails(&["assignment", "list", "--student", "nobody@example.com"], 2, "no user has the email");
    }

    fn complete_marks_done_and_rejects_unknown_ids(env: &TestEnv) {
        env.add_user("c@example.com", "UTC");
        let id = env.add_assignment("c@example.com", "T", "2030-01-01T00:00:00Z");
        let done = env.json(&["assignment", "complete", &id]);
        assert_eq!(done["completed"], true);
        assert_eq!(env.json(&["assignment", "list"])[0]["completed"], true);
        env.fails(&["assignment", "complete", "not-a-uuid"], 2, "`not-a-uuid` is not an assignment id");
        env.fails(&["assignment", "complete", "7c9028d5-5ed8-406d-b8f0-6375c56a8105"], 2, "no assignment has the id");
    }
}
