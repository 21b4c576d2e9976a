//! Teachers: added and updated, teaching several courses, imported all or
//! nothing, listed by course, unlinked, and forgotten without leaving their
//! address.

use super::users::{assert_gone, full_dump};
use crate::common::{TestEnv, on_both_backends};

fn count(env: &TestEnv, table: &str) -> i64 {
    env.count(&format!("SELECT count(*) AS n FROM {table}"))
}

/// Each teacher's email with the courses they teach, as `teacher list` gives them.
fn listed(env: &TestEnv, args: &[&str]) -> Vec<(String, Vec<String>)> {
    let list = env.json(&[&["teacher", "list"], args].concat());
    list.as_array()
        .unwrap()
        .iter()
        .map(|teacher| {
            let courses = teacher["courses"]
                .as_array()
                .unwrap()
                .iter()
                .map(|course| course.as_str().unwrap().to_string())
                .collect();
            (teacher["email"].as_str().unwrap().to_string(), courses)
        })
        .collect()
}

fn pair(email: &str, courses: &[&str]) -> (String, Vec<String>) {
    (
        email.to_string(),
        courses.iter().map(|course| course.to_string()).collect(),
    )
}

fn write(env: &TestEnv, name: &str, text: &str) -> String {
    std::fs::write(env.path(name), text).unwrap();
    env.path(name).to_str().unwrap().to_string()
}

on_both_backends! {
    fn add_creates_a_teacher_with_the_defaults_then_updates_only_what_is_given(env: &TestEnv) {
        let added = env.json(&["teacher", "add", "--course", " CS101 ", "--email", " Lee@Example.com ", "--name", "Dr Lee"]);
        assert_eq!(added["email"], "lee@example.com");
        assert_eq!(added["name"], "Dr Lee");
        assert_eq!(added["timezone"], "UTC");
        assert_eq!(added["weekday"], 5, "Friday");
        assert_eq!(added["hour"], 16);
        assert_eq!(added["contact_opt_out"], false);
        assert!(added["opt_out_reason"].is_null());
        assert_eq!(added["courses"], serde_json::json!(["CS101"]));

        let updated = env.json(&[
            "teacher", "add", "--course", "CS101", "--email", "lee@example.com",
            "--weekday", "Thursday", "--hour", "9", "--timezone", "europe/paris",
        ]);
        assert_eq!(updated["id"], added["id"]);
        assert_eq!(updated["name"], "Dr Lee", "a field left out stays as it is");
        assert_eq!(updated["timezone"], "Europe/Paris");
        assert_eq!(updated["weekday"], 4);
        assert_eq!(updated["hour"], 9);
        assert_eq!(count(env, "teachers"), 1);
        assert_eq!(count(env, "teacher_courses"), 1);

        let unnamed = env.json(&["teacher", "add", "--course", "CS101", "--email", "lee@example.com", "--name", ""]);
        assert!(unnamed["name"].is_null(), "{unnamed}");
        let table = env.ok(&["teacher", "list"]);
        assert!(table.contains("Thu 09:00"), "{table}");
    }

    fn a_teacher_of_two_courses_and_a_course_with_two_teachers(env: &TestEnv) {
        for (course, teacher) in [
            ("CS101", "lee@example.com"),
            ("MA200", "lee@example.com"),
            ("CS101", "kim@example.com"),
            ("PH300", "ray@example.com"),
        ] {
            env.json(&["teacher", "add", "--course", course, "--email", teacher]);
        }
        assert_eq!(
            listed(env, &[]),
            [
                pair("kim@example.com", &["CS101"]),
                pair("lee@example.com", &["CS101", "MA200"]),
                pair("ray@example.com", &["PH300"]),
            ]
        );
        // A course's teachers, each with every course they teach.
        assert_eq!(
            listed(env, &["--course", "MA200"]),
            [pair("lee@example.com", &["CS101", "MA200"])]
        );
        assert_eq!(
            listed(env, &["--course", "CS101"]),
            [pair("kim@example.com", &["CS101"]), pair("lee@example.com", &["CS101", "MA200"])]
        );
        assert_eq!(listed(env, &["--course", "XX999"]), []);
    }

    fn bad_input_exits_2_with_one_line_and_writes_nothing(env: &TestEnv) {
        fn add<'a>(extra: &[&'a str]) -> Vec<&'a str> {
            let mut args = vec!["teacher", "add", "--course", "CS101", "--email", "lee@example.com"];
            args.extend(extra);
            args
        }
        env.fails(&["teacher", "add", "--course", " ", "--email", "lee@example.com"], 2, "a course code cannot be blank");
        env.fails(&["teacher", "add", "--course", "CS101", "--email", "not an email"], 2, "is not a valid email address");
        env.fails(&["teacher", "add", "--course", "CS101", "--email", "lee@school"], 2, "is not an internet address");
        env.fails(&add(&["--timezone", "Europe/Londn"]), 2, "did you mean `Europe/London`?");
        env.fails(&add(&["--weekday", "8"]), 2, "is not a day of the week");
        env.fails(&add(&["--hour", "24"]), 2, "24 is not in 0..=23");
        assert_eq!(count(env, "teachers"), 0);
        assert_eq!(count(env, "teacher_courses"), 0);
    }

    fn import_adds_and_updates_all_or_nothing_with_line_numbers(env: &TestEnv) {
        let csv = write(env, "teachers.csv", "course,email,name,timezone,weekday,hour\r\n\
            CS101,lee@example.com,Dr Lee,,,\r\n\
            MA200,lee@example.com,,Europe/Paris,mon,8\r\n\
            CS101,kim@example.com,Kim,,,\r\n");
        let report = env.json(&["teacher", "import", &csv]);
        assert_eq!((report["inserted"].as_i64(), report["updated"].as_i64(), report["unchanged"].as_i64()), (Some(3), Some(0), Some(0)), "{report}");
        let list = env.json(&["teacher", "list"]);
        assert_eq!(list[1]["email"], "lee@example.com");
        assert_eq!(list[1]["name"], "Dr Lee", "an empty column leaves the name");
        assert_eq!((list[1]["timezone"].as_str(), list[1]["weekday"].as_i64(), list[1]["hour"].as_i64()), (Some("Europe/Paris"), Some(1), Some(8)));
        assert_eq!(list[1]["courses"], serde_json::json!(["CS101", "MA200"]));
        assert_eq!((list[0]["weekday"].as_i64(), list[0]["hour"].as_i64()), (Some(5), Some(16)));

        // The same file again changes nothing; a changed row is updated.
        let again = env.json(&["teacher", "import", &csv]);
        assert_eq!((again["inserted"].as_i64(), again["unchanged"].as_i64()), (Some(0), Some(3)), "{again}");
        let jsonl = write(env, "teachers.jsonl", "{\"course\": \"CS101\", \"email\": \"kim@example.com\", \"hour\": 10, \"weekday\": 3}\n\n\
            {\"course\": \"PH300\", \"email\": \"kim@example.com\"}\n");
        let report = env.json(&["teacher", "import", &jsonl]);
        assert_eq!((report["inserted"].as_i64(), report["updated"].as_i64()), (Some(1), Some(1)), "{report}");
        let kim = &env.json(&["teacher", "list"])[0];
        assert_eq!((kim["hour"].as_i64(), kim["weekday"].as_i64()), (Some(10), Some(3)));
        assert_eq!(kim["courses"], serde_json::json!(["CS101", "PH300"]));

        // One bad row: the good ones before it are not written either.
        let (teachers, links) = (count(env, "teachers"), count(env, "teacher_courses"));
        let bad = write(env, "bad.csv", "course,email,name,timezone,weekday,hour\n\
            CS101,new@example.com,New,,,\n\
            CS101,not an email,,,,\n");
        env.fails(&["teacher", "import", &bad], 2, "line 3: `not an email` is not a valid email address");
        assert_eq!((count(env, "teachers"), count(env, "teacher_courses")), (teachers, links));
        // Every bad row is named by its line.
        let worse = write(env, "worse.csv", "course,email,name,timezone,weekday,hour\n\
            CS101,lee@example.com,,Mars/Base,,\n\
            ,lee@example.com,,,,\n\
            CS101,lee@example.com,,,someday,\n\
            CS101,lee@example.com,,,,25\n");
        let run = env.run(&["teacher", "import", &worse]);
        assert_eq!(run.code(), 2, "{}", run.describe());
        for line in ["line 2:", "line 3: the course is blank", "line 4: `someday` is not a day", "line 5: `25` is not an hour"] {
            assert!(run.stderr().contains(line), "no `{line}`:\n{}", run.describe());
        }
        assert!(run.stderr().contains("4 bad rows"), "{}", run.describe());
        assert_eq!((count(env, "teachers"), count(env, "teacher_courses")), (teachers, links));
        let header = write(env, "header.csv", "Course;Email\nCS101;new@example.com\n");
        env.fails(&["teacher", "import", &header], 2, "line 1: the header is `Course;Email`");
    }

    fn remove_unlinks_and_a_teacher_of_nothing_stays_listed(env: &TestEnv) {
        env.json(&["teacher", "add", "--course", "CS101", "--email", "lee@example.com"]);
        env.json(&["teacher", "add", "--course", "MA200", "--email", "lee@example.com"]);
        let removed = env.json(&["teacher", "remove", "--course", "CS101", "--email", "lee@example.com"]);
        assert_eq!(removed["courses"], serde_json::json!(["MA200"]));
        let text = env.ok(&["teacher", "remove", "--course", "MA200", "--email", "lee@example.com"]);
        assert!(text.contains("teach nothing now"), "{text}");
        assert_eq!(listed(env, &[]), [pair("lee@example.com", &[])]);
        env.fails(&["teacher", "remove", "--course", "MA200", "--email", "lee@example.com"], 2, "`lee@example.com` does not teach `MA200`");
        env.fails(&["teacher", "remove", "--course", "MA200", "--email", "kim@example.com"], 2, "no teacher has the email `kim@example.com`");
    }

    fn teacher_forget_erases_the_teacher_and_every_link(env: &TestEnv) {
        for course in ["CS101", "MA200"] {
            env.json(&["teacher", "add", "--course", course, "--email", "lee.teacher@example.com", "--name", "Leonora Quill"]);
        }
        env.json(&["teacher", "add", "--course", "CS101", "--email", "kim@example.com"]);
        assert!(full_dump(env).contains("lee.teacher@example.com"));

        // Not on a terminal and no --yes: nothing happens.
        env.fails(&["teacher", "forget", "lee.teacher@example.com"], 2, "confirm on a terminal, or pass --yes");
        assert_eq!(count(env, "teachers"), 2);

        let forgotten = env.json(&["teacher", "forget", "lee.teacher@example.com", "--yes"]);
        assert_eq!(forgotten["email"], "lee.teacher@example.com");
        assert_eq!(forgotten["courses_unlinked"], 2);
        assert_eq!(listed(env, &[]), [pair("kim@example.com", &["CS101"])]);
        assert_eq!(count(env, "teacher_courses"), 1);
        assert_gone(env, "lee.teacher@");
        assert_gone(env, "leonora quill");
        env.fails(&["teacher", "forget", "lee.teacher@example.com", "--yes"], 2, "no teacher has the email");
    }
}
