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

    fn cutoff_and_course_are_added_edited_and_removed(env: &TestEnv) {
        env.add_user("la@example.com", "America/Los_Angeles");
        let added = env.json(&[
            "assignment", "add", "--student", "la@example.com", "--title", "Essay",
            "--due", "2030-12-01 09:00", "--cutoff", "2030-12-03 09:00", "--course", " CS101 ",
            "--now", "2030-01-01T00:00:00Z",
        ]);
        // Local times in the student's zone, as --due: 09:00 PST is 17:00 UTC.
        assert_eq!(added["cutoff"], "2030-12-03T17:00:00Z");
        assert_eq!(added["course"], "CS101");
        let id = added["id"].as_str().unwrap().to_string();
        let listed = env.json(&["assignment", "list"]);
        assert_eq!(listed[0]["cutoff"], "2030-12-03T17:00:00Z");
        assert_eq!(listed[0]["course"], "CS101");
        let table = env.ok(&["assignment", "list"]);
        assert!(table.contains("course") && table.contains("CS101"), "{table}");
        assert!(table.contains("cut-off") && table.contains("2030-12-03 09:00 PST"), "{table}");

        let edited = env.json(&["assignment", "edit", &id, "--cutoff", "2030-12-05T00:00:00Z", "--course", "MATH2"]);
        assert_eq!(edited["cutoff"], "2030-12-05T00:00:00Z");
        assert_eq!(edited["course"], "MATH2");
        assert_eq!(edited["due_at"], "2030-12-01T17:00:00Z", "the due time stays");
        // The cut-off may be the due time itself: no late work at all.
        let on_time = env.json(&["assignment", "edit", &id, "--cutoff", "2030-12-01 09:00"]);
        assert_eq!(on_time["cutoff"], "2030-12-01T17:00:00Z");

        let cleared = env.json(&["assignment", "edit", &id, "--cutoff", "", "--course", "  "]);
        assert!(cleared["cutoff"].is_null() && cleared["course"].is_null(), "{cleared}");
        assert_eq!(env.count("SELECT count(*) AS n FROM assignments WHERE cutoff IS NULL AND course IS NULL"), 1);
        // Without either, the table has its usual columns.
        let table = env.ok(&["assignment", "list"]);
        assert!(!table.contains("course") && !table.contains("cut-off"), "{table}");
    }

    fn a_cutoff_before_the_due_time_is_refused_and_nothing_written(env: &TestEnv) {
        env.add_user("ny@example.com", "America/New_York");
        let add = |cutoff: &str| env.fails(
            &["assignment", "add", "--student", "ny@example.com", "--title", "T", "--due", "2030-03-01 10:00", "--cutoff", cutoff],
            2,
            "",
        );
        let early = add("2030-03-01 09:59");
        assert!(
            early.stderr().contains("the cut-off 2030-03-01T14:59:00Z is before the due time 2030-03-01T15:00:00Z"),
            "{}",
            early.describe()
        );
        assert!(add("next tuesday").stderr().contains("the cut-off: `next tuesday` is not a due time"));
        assert!(add("2030-03-10 02:30").stderr().contains("the cut-off: `2030-03-10 02:30` does not exist in America/New_York"));
        env.fails(
            &["assignment", "add", "--student", "ny@example.com", "--title", "T", "--due", "2030-03-01 10:00", "--course", "CS\u{1b}[2J"],
            2,
            "the course holds the control character U+001B",
        );
        assert_eq!(env.count("SELECT count(*) AS n FROM assignments"), 0);

        let added = env.json(&[
            "assignment", "add", "--student", "ny@example.com", "--title", "T",
            "--due", "2030-03-01T15:00:00Z", "--cutoff", "2030-03-02T15:00:00Z", "--course", "CS101",
        ]);
        let id = added["id"].as_str().unwrap();
        let stored = || env.texts("SELECT CAST(due_at AS TEXT) AS v FROM assignments UNION ALL SELECT CAST(cutoff AS TEXT) AS v FROM assignments UNION ALL SELECT course AS v FROM assignments");
        let before = stored();
        // A cut-off before the stored due time, or a due time moved past the stored cut-off.
        env.fails(&["assignment", "edit", id, "--cutoff", "2030-03-01T14:00:00Z"], 2, "is before the due time 2030-03-01T15:00:00Z");
        env.fails(&["assignment", "edit", id, "--due", "2030-03-03T15:00:00Z"], 2, "the cut-off 2030-03-02T15:00:00Z is before the due time 2030-03-03T15:00:00Z");
        env.fails(&["assignment", "edit", id, "--course", "a\u{9b}b"], 2, "control character U+009B");
        assert_eq!(stored(), before, "nothing written");
        // Both moved together, or the cut-off removed, is fine.
        let moved = env.json(&["assignment", "edit", id, "--due", "2030-03-03T15:00:00Z", "--cutoff", "2030-03-04T15:00:00Z"]);
        assert_eq!((moved["due_at"].as_str(), moved["cutoff"].as_str()), (Some("2030-03-03T15:00:00Z"), Some("2030-03-04T15:00:00Z")));
        let later = env.json(&["assignment", "edit", id, "--due", "2030-03-09T15:00:00Z", "--cutoff", ""]);
        assert!(later["cutoff"].is_null(), "{later}");
    }
}
