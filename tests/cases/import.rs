//! `user import` and `assignment import`: CSV and JSON Lines, all or nothing.

use std::io::Write;
use std::process::Stdio;

use crate::common::{TestEnv, on_both_backends};

fn write(env: &TestEnv, name: &str, text: &str) -> String {
    std::fs::write(env.path(name), text).unwrap();
    name.to_string()
}

fn imported(env: &TestEnv, args: &[&str]) -> (i64, i64) {
    let report = env.json(args);
    (
        report["imported"].as_i64().unwrap(),
        report["skipped"].as_i64().unwrap(),
    )
}

on_both_backends! {
    fn users_import_from_csv_and_json_lines(env: &TestEnv) {
        let csv = write(env, "users.csv", "email,name,timezone\n Ada@Example.com ,Ada,Europe/London\nbob@example.com,,\n\"c@example.com\",\"Lovelace, C\",Asia/Tokyo\n");
        assert_eq!(imported(env, &["user", "import", &csv]), (3, 0));
        let jsonl = write(env, "more.jsonl", "{\"email\": \"d@example.com\", \"timezone\": \"America/New_York\"}\n\n{\"email\": \"e@example.com\", \"name\": \"Eve\"}\n");
        assert_eq!(imported(env, &["user", "import", &jsonl]), (2, 0));
        let users = env.json(&["user", "list"]);
        let list: Vec<(String, String)> = users.as_array().unwrap().iter()
            .map(|u| (u["email"].as_str().unwrap().to_string(), u["timezone"].as_str().unwrap().to_string()))
            .collect();
        assert_eq!(list, [
            ("ada@example.com".into(), "Europe/London".into()),
            ("bob@example.com".into(), "UTC".into()),
            ("c@example.com".into(), "Asia/Tokyo".into()),
            ("d@example.com".into(), "America/New_York".into()),
            ("e@example.com".into(), "UTC".into()),
        ]);
        assert_eq!(users[2]["name"], "Lovelace, C");
        assert!(users[1]["name"].is_null());
    }

    fn a_bad_row_stops_the_import_and_writes_nothing(env: &TestEnv) {
        let csv = write(env, "users.csv", "email,name,timezone\na@example.com,A,UTC\nb@example.com,B,UTC\nnot-an-email,C,UTC\nd@example.com,D,UTC\n");
        env.fails(&["user", "import", &csv], 2, "line 4: `not-an-email` is not a valid email address");
        let tz = write(env, "tz.jsonl", "{\"email\": \"a@example.com\"}\n{\"email\": \"b@example.com\", \"timezone\": \"Mars/Base\"}\n");
        env.fails(&["user", "import", &tz], 2, "line 2: `Mars/Base` is not an IANA time zone");
        let broken = write(env, "broken.jsonl", "{\"email\": \"a@example.com\"}\n{\"email\": \n");
        env.fails(&["user", "import", &broken], 2, "line 2: not a valid row");
        let missing = write(env, "missing.csv", "name,timezone\nA,UTC\n");
        env.fails(&["user", "import", &missing], 2, "line 1: the header is `name,timezone`, but a header with `email` is expected: `email,name,timezone,locale,types,mute,summary,summary_weekday,max_per_day,send_window`");
        let spreadsheet = write(env, "spreadsheet.csv", "Email,Name,Time Zone\na@example.com,A,UTC\n");
        env.fails(
            &["user", "import", &spreadsheet],
            2,
            "line 1: the header is `Email,Name,Time Zone`, but a header with `email` is expected: `email,name,timezone,locale,types,mute,summary,summary_weekday,max_per_day,send_window` (column names are lower case, as shown)",
        );
        let semicolons = write(env, "semicolons.csv", "email;name;timezone\na@example.com;A;UTC\n");
        env.fails(&["user", "import", &semicolons], 2, "(the columns must be separated by commas, not `;`)");
        let short = write(env, "short.csv", "email,name,timezone\na@example.com,A,UTC\nb@example.com,B\n");
        let run = env.fails(&["user", "import", &short], 2, "line 3: this row has 2 fields where the header has 3");
        assert_eq!(run.stderr().matches("CSV").count(), 0, "{}", run.describe());
        let assignments = write(env, "assignments.csv", "email,title,due\na@example.com,Essay,2030-01-01 10:00\n");
        env.fails(
            &["assignment", "import", &assignments],
            2,
            "line 1: the header is `email,title,due`, but a header with `student` is expected: `student,title,due,description,metadata,external_id,completed,cutoff,course`",
        );
        assert_eq!(env.count("SELECT count(*) AS n FROM users"), 0);

        env.add_user("s@example.com", "America/New_York");
        let rows = "student,title,due,description,metadata\n\
                    s@example.com,One,2030-03-01 10:00,,\n\
                    s@example.com,Two,2030-03-10 02:30,,\n";
        let gap = write(env, "gap.csv", rows);
        env.fails(&["assignment", "import", &gap], 2, "line 3: `2030-03-10 02:30` does not exist in America/New_York");
        let unknown = write(env, "unknown.csv", "student,title,due\ns@example.com,One,2030-03-01 10:00\nx@example.com,Two,2030-03-01 10:00\n");
        env.fails(&["assignment", "import", &unknown], 2, "line 3: no user has the email `x@example.com`");
        let metadata = write(env, "meta.csv", "student,title,due,metadata\ns@example.com,One,2030-03-01 10:00,\"[1,2]\"\n");
        env.fails(&["assignment", "import", &metadata], 2, "line 2: metadata `[1,2]` must be a JSON object");
        let title = write(env, "title.jsonl", "{\"student\": \"s@example.com\", \"title\": \" \", \"due\": \"2030-03-01T10:00:00Z\"}\n");
        env.fails(&["assignment", "import", &title], 2, "line 1: the title is empty");
        assert_eq!(env.count("SELECT count(*) AS n FROM assignments"), 0);
    }

    fn duplicate_users_are_refused_unless_skipped(env: &TestEnv) {
        env.add_user("old@example.com", "UTC");
        let twice = write(env, "twice.csv", "email\nnew@example.com\nNEW@example.com\n");
        env.fails(&["user", "import", &twice], 2, "line 3: a user with email `new@example.com` already exists");
        let existing = write(env, "existing.csv", "email\nnew@example.com\nold@example.com\n");
        env.fails(&["user", "import", &existing], 2, "line 3: a user with email `old@example.com` already exists");
        assert_eq!(env.count("SELECT count(*) AS n FROM users"), 1);
        assert_eq!(imported(env, &["user", "import", &existing, "--skip-existing"]), (1, 1));
        assert_eq!(imported(env, &["user", "import", &existing, "--skip-existing"]), (0, 2));
        assert_eq!(env.count("SELECT count(*) AS n FROM users"), 2);
    }

    fn assignments_import_with_local_times_and_metadata(env: &TestEnv) {
        env.add_user("la@example.com", "America/Los_Angeles");
        env.add_user("utc@example.com", "UTC");
        let csv = write(env, "a.csv", "student,title,due,description,metadata\n\
            la@example.com,Essay,2030-03-01 16:00,Chapter 4,\"{\"\"course\"\": \"\"CS101\"\"}\"\n\
            UTC@example.com,Lab,2030-03-02T09:00:00+01:00,,\n");
        assert_eq!(imported(env, &["assignment", "import", &csv]), (2, 0));
        let jsonl = write(env, "a.jsonl", "{\"student\": \"utc@example.com\", \"title\": \"Quiz\", \"due\": \"2030-03-03 08:00\", \"metadata\": {\"points\": 10}}\n");
        assert_eq!(imported(env, &["assignment", "import", &jsonl]), (1, 0));
        let all = env.json(&["assignment", "list"]);
        let rows: Vec<(String, String)> = all.as_array().unwrap().iter()
            .map(|a| (a["title"].as_str().unwrap().to_string(), a["due_at"].as_str().unwrap().to_string()))
            .collect();
        assert_eq!(rows, [
            ("Essay".into(), "2030-03-02T00:00:00Z".into()),
            ("Lab".into(), "2030-03-02T08:00:00Z".into()),
            ("Quiz".into(), "2030-03-03T08:00:00Z".into()),
        ]);
        assert_eq!(all[0]["metadata"]["course"], "CS101");
        assert_eq!(all[0]["description"], "Chapter 4");
        assert_eq!(all[2]["metadata"]["points"], 10);
    }

    fn skip_existing_makes_a_rerun_a_no_op(env: &TestEnv) {
        env.add_user("s@example.com", "UTC");
        let csv = write(env, "a.csv", "student,title,due\ns@example.com,One,2030-03-01 10:00\ns@example.com,Two,2030-03-02 10:00\n");
        assert_eq!(imported(env, &["assignment", "import", &csv, "--skip-existing"]), (2, 0));
        assert_eq!(imported(env, &["assignment", "import", &csv, "--skip-existing"]), (0, 2));
        let grown = write(env, "b.csv", "student,title,due\ns@example.com,One,2030-03-01 10:00\ns@example.com,Three,2030-03-03 10:00\n");
        assert_eq!(imported(env, &["assignment", "import", &grown, "--skip-existing"]), (1, 1));
        assert_eq!(env.count("SELECT count(*) AS n FROM assignments"), 3);
        // Without the flag a file is taken as it is, as `assignment add` would.
        assert_eq!(imported(env, &["assignment", "import", &csv]), (2, 0));
        assert_eq!(env.count("SELECT count(*) AS n FROM assignments"), 5);
    }

    fn stdin_is_read_with_a_dash(env: &TestEnv) {
        let mut child = env.command()
            .args(["user", "import", "-", "--input-format", "jsonl", "--format", "json"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"{\"email\": \"in@example.com\"}\n").unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success());
        assert_eq!(env.count("SELECT count(*) AS n FROM users"), 1);
        env.fails(&["user", "import", "-"], 2, "cannot tell the format of `-`");
        env.fails(&["user", "import", "users.txt"], 2, "cannot read `users.txt`: there is no such file");
        std::fs::write(env.path("users.txt"), "email\n").unwrap();
        env.fails(&["user", "import", "users.txt"], 2, "cannot tell the format of `users.txt`");
        env.fails(&["user", "import", "nothing.csv"], 2, "cannot read `nothing.csv`");
    }

    fn crlf_files_report_the_right_lines_and_every_bad_row_at_once(env: &TestEnv) {
        env.add_user("a@example.com", "UTC");
        // What Excel writes: CRLF, a quoted field over two lines.
        let file = env.path("excel.csv");
        std::fs::write(&file, "student,title,due,description\r\n\
            a@example.com,Essay,2030-01-01T00:00:00Z,\"Part 1\r\npart 2\"\r\n\
            a@example.com,Lab,not a time,\r\n\
            a@example.com,Quiz,2030-01-02T00:00:00Z,\r\n\
            nobody@example.com,Quiz,2030-01-02T00:00:00Z,\r\n\
            a@example.com,,2030-01-02T00:00:00Z,\r\n").unwrap();
        let run = env.run(&["-q", "assignment", "import", file.to_str().unwrap()]);
        assert_eq!(run.code(), 2, "{}", run.describe());
        let stderr = run.stderr();
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 4, "{stderr}");
        assert!(lines[0].starts_with("line 4: `not a time` is not a due time"), "{stderr}");
        assert_eq!(lines[1], "line 6: no user has the email `nobody@example.com`");
        assert_eq!(lines[2], "line 7: the title is empty");
        assert_eq!(lines[3], "error: 3 bad rows (listed above); nothing was written");
        assert_eq!(env.count("SELECT count(*) AS n FROM assignments"), 0);

        // Over a hundred bad rows: a hundred shown, the rest counted.
        let mut many = String::from("email\r\n");
        for n in 0..150 {
            many.push_str(&format!("bad{n}\r\n"));
        }
        std::fs::write(env.path("many.csv"), many).unwrap();
        let run = env.run(&["user", "import", "many.csv"]);
        assert_eq!(run.code(), 2);
        let stderr = run.stderr();
        assert_eq!(stderr.lines().count(), 102, "{stderr}");
        assert!(stderr.contains("\nline 101: `bad99` is not a valid email address\n… and 50 more\n"), "{stderr}");
        assert!(stderr.ends_with("error: 150 bad rows (listed above); nothing was written\n"), "{stderr}");
        assert_eq!(env.count("SELECT count(*) AS n FROM users"), 1);
    }

    fn course_and_cutoff_columns_are_imported_and_upserted_all_or_nothing(env: &TestEnv) {
        env.add_user("la@example.com", "America/Los_Angeles");
        env.add_user("utc@example.com", "UTC");
        let csv = write(env, "a.csv", "student,title,due,external_id,course,cutoff\n\
            la@example.com,Essay,2030-03-01 16:00,e-1, CS101 ,2030-03-03 16:00\n\
            utc@example.com,Lab,2030-03-02T09:00:00Z,l-1,,\n");
        assert_eq!(imported(env, &["assignment", "import", &csv, "--upsert"]), (2, 0));
        let listed = || env.json(&["assignment", "list"]);
        let all = listed();
        assert_eq!((all[0]["title"].as_str(), all[0]["course"].as_str()), (Some("Essay"), Some("CS101")));
        // Read in the student's zone, as `due` is: 16:00 PST is 00:00 UTC.
        assert_eq!(all[0]["cutoff"], "2030-03-04T00:00:00Z");
        assert!(all[1]["course"].is_null() && all[1]["cutoff"].is_null(), "{}", all[1]);

        // An upsert sets both from the row: a row without them clears them.
        let jsonl = write(env, "b.jsonl", concat!(
            r#"{"student":"la@example.com","title":"Essay","due":"2030-03-01 16:00","external_id":"e-1","course":"CS102"}"#, "\n",
            r#"{"student":"utc@example.com","title":"Lab","due":"2030-03-02T09:00:00Z","external_id":"l-1","cutoff":"2030-03-05T09:00:00Z","course":"BIO1"}"#, "\n",
        ));
        let report = env.json(&["assignment", "import", &jsonl, "--upsert"]);
        assert_eq!(report["updated"], 2, "{report}");
        let all = listed();
        assert_eq!((all[0]["course"].as_str(), all[0]["cutoff"].as_str()), (Some("CS102"), None));
        assert_eq!((all[1]["course"].as_str(), all[1]["cutoff"].as_str()), (Some("BIO1"), Some("2030-03-05T09:00:00Z")));
        let again = env.json(&["assignment", "import", &jsonl, "--upsert"]);
        assert_eq!(again["unchanged"], 2, "{again}");

        // A bad cut-off on line 3 refuses the whole file, line 2's change too.
        let before = listed();
        let early = write(env, "early.csv", "student,title,due,external_id,course,cutoff\n\
            la@example.com,Essay,2030-03-01 16:00,e-1,CS103,\n\
            utc@example.com,Lab,2030-03-02T09:00:00Z,l-1,BIO1,2030-03-02T08:59:00Z\n\
            utc@example.com,Quiz,2030-03-06T09:00:00Z,q-1,BIO1,\n");
        env.fails(
            &["assignment", "import", &early, "--upsert"],
            2,
            "line 3: the cut-off 2030-03-02T08:59:00Z is before the due time 2030-03-02T09:00:00Z: \
             give a cut-off at or after the due time; nothing was written",
        );
        let unreadable = write(env, "unreadable.jsonl", concat!(
            r#"{"student":"la@example.com","title":"New","due":"2030-03-08T09:00:00Z"}"#, "\n",
            "\n",
            r#"{"student":"utc@example.com","title":"Quiz","due":"2030-03-06T09:00:00Z","cutoff":"soon"}"#, "\n",
        ));
        env.fails(&["assignment", "import", &unreadable], 2, "line 3: the cut-off: `soon` is not a due time");
        let control = write(env, "control.csv", "student,title,due,course\nutc@example.com,Quiz,2030-03-06T09:00:00Z,\"BIO\u{7}\"\n");
        env.fails(&["assignment", "import", &control], 2, "line 2: the course holds the control character U+0007");
        assert_eq!(listed(), before, "nothing was written");
    }
}
