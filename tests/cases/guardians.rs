//! Guardians: added and updated, linked to several students, imported all or
//! nothing, listed, unlinked, and forgotten without leaving their address.

use super::users::{assert_gone, full_dump};
use crate::common::{TestEnv, on_both_backends};

fn count(env: &TestEnv, table: &str) -> i64 {
    env.count(&format!("SELECT count(*) AS n FROM {table}"))
}

/// Each guardian's email with the students they follow, as `guardian list` gives them.
fn listed(env: &TestEnv, args: &[&str]) -> Vec<(String, Vec<String>)> {
    let list = env.json(&[&["guardian", "list"], args].concat());
    list.as_array()
        .unwrap()
        .iter()
        .map(|guardian| {
            let students = guardian["students"]
                .as_array()
                .unwrap()
                .iter()
                .map(|student| student.as_str().unwrap().to_string())
                .collect();
            (guardian["email"].as_str().unwrap().to_string(), students)
        })
        .collect()
}

fn pair(email: &str, students: &[&str]) -> (String, Vec<String>) {
    (
        email.to_string(),
        students.iter().map(|student| student.to_string()).collect(),
    )
}

fn write(env: &TestEnv, name: &str, text: &str) -> String {
    std::fs::write(env.path(name), text).unwrap();
    env.path(name).to_str().unwrap().to_string()
}

on_both_backends! {
    fn add_creates_a_guardian_with_the_defaults_then_updates_only_what_is_given(env: &TestEnv) {
        env.add_user("alice@example.com", "Europe/Paris");
        let added = env.json(&["guardian", "add", "--student", "alice@example.com", "--email", " Pat@Example.com ", "--name", "Pat"]);
        assert_eq!(added["email"], "pat@example.com");
        assert_eq!(added["name"], "Pat");
        // Where the student lives, unless told otherwise.
        assert_eq!(added["timezone"], "Europe/Paris");
        assert_eq!(added["frequency"], "daily");
        assert_eq!(added["weekday"], 1);
        assert_eq!(added["hour"], 18);
        assert_eq!(added["contact_opt_out"], false);
        assert!(added["opt_out_reason"].is_null());
        assert_eq!(added["students"], serde_json::json!(["alice@example.com"]));

        let updated = env.json(&[
            "guardian", "add", "--student", "alice@example.com", "--email", "pat@example.com",
            "--frequency", "weekly", "--weekday", "Friday", "--hour", "7", "--timezone", "europe/london",
        ]);
        assert_eq!(updated["id"], added["id"]);
        assert_eq!(updated["name"], "Pat", "a field left out stays as it is");
        assert_eq!(updated["timezone"], "Europe/London");
        assert_eq!(updated["frequency"], "weekly");
        assert_eq!(updated["weekday"], 5);
        assert_eq!(updated["hour"], 7);
        assert_eq!(count(env, "guardians"), 1);
        assert_eq!(count(env, "guardian_students"), 1);

        let unnamed = env.json(&["guardian", "add", "--student", "alice@example.com", "--email", "pat@example.com", "--name", ""]);
        assert!(unnamed["name"].is_null(), "{unnamed}");
        let table = env.ok(&["guardian", "list"]);
        assert!(table.contains("weekly Fri 07:00"), "{table}");
    }

    fn a_student_has_two_guardians_and_a_guardian_follows_two_students(env: &TestEnv) {
        env.add_user("alice@example.com", "UTC");
        env.add_user("bob@example.com", "UTC");
        env.add_user("carol@example.com", "UTC");
        for (student, guardian) in [
            ("alice@example.com", "pat@example.com"),
            ("alice@example.com", "sam@example.com"),
            ("bob@example.com", "pat@example.com"),
        ] {
            env.json(&["guardian", "add", "--student", student, "--email", guardian]);
        }
        assert_eq!(
            listed(env, &[]),
            [
                pair("pat@example.com", &["alice@example.com", "bob@example.com"]),
                pair("sam@example.com", &["alice@example.com"]),
            ]
        );
        // A student's guardians, each with every student they follow.
        assert_eq!(
            listed(env, &["--student", "bob@example.com"]),
            [pair("pat@example.com", &["alice@example.com", "bob@example.com"])]
        );
        assert_eq!(listed(env, &["--student", "carol@example.com"]), []);
        env.fails(&["guardian", "list", "--student", "nobody@example.com"], 2, "no user has the email");
    }

    fn bad_input_exits_2_with_one_line_and_writes_nothing(env: &TestEnv) {
        env.add_user("alice@example.com", "UTC");
        fn add<'a>(extra: &[&'a str]) -> Vec<&'a str> {
            let mut args = vec!["guardian", "add", "--student", "alice@example.com", "--email", "pat@example.com"];
            args.extend(extra);
            args
        }
        env.fails(&["guardian", "add", "--student", "nobody@example.com", "--email", "pat@example.com"], 2, "no user has the email `nobody@example.com`");
        env.fails(&["guardian", "add", "--student", "alice@example.com", "--email", "not an email"], 2, "is not a valid email address");
        env.fails(&["guardian", "add", "--student", "alice@example.com", "--email", "pat@school"], 2, "is not an internet address");
        env.fails(&["guardian", "add", "--student", "alice@example.com", "--email", "alice@example.com"], 2, "the student's own address");
        env.fails(&add(&["--timezone", "Europe/Londn"]), 2, "did you mean `Europe/London`?");
        env.fails(&add(&["--weekday", "funday"]), 2, "is not a day of the week");
        env.fails(&add(&["--weekday", "8"]), 2, "is not a day of the week");
        env.fails(&add(&["--hour", "24"]), 2, "24 is not in 0..=23");
        env.fails(&add(&["--frequency", "hourly"]), 2, "[possible values: daily, weekly, off]");
        assert_eq!(count(env, "guardians"), 0);
        assert_eq!(count(env, "guardian_students"), 0);
        env.ok(&add(&["--weekday", "7", "--frequency", "off"]));
        assert_eq!(listed(env, &[]), [pair("pat@example.com", &["alice@example.com"])]);
    }

    fn import_adds_and_updates_pairs_all_or_nothing_with_line_numbers(env: &TestEnv) {
        env.add_user("alice@example.com", "Asia/Tokyo");
        env.add_user("bob@example.com", "UTC");
        let csv = write(env, "guardians.csv", "student,email,name,timezone,frequency,weekday,hour\r\n\
            alice@example.com,pat@example.com,Pat,,,,\r\n\
            bob@example.com,pat@example.com,,,weekly,fri,17\r\n\
            bob@example.com,kim@example.com,Kim,America/New_York,off,,\r\n");
        let report = env.json(&["guardian", "import", &csv]);
        assert_eq!((report["inserted"].as_i64(), report["updated"].as_i64(), report["unchanged"].as_i64()), (Some(3), Some(0), Some(0)), "{report}");
        let list = env.json(&["guardian", "list"]);
        assert_eq!(list[1]["email"], "pat@example.com");
        assert_eq!(list[1]["name"], "Pat", "an empty column leaves the name");
        assert_eq!(list[1]["timezone"], "Asia/Tokyo", "a new guardian takes the student's zone");
        assert_eq!((list[1]["frequency"].as_str(), list[1]["weekday"].as_i64(), list[1]["hour"].as_i64()), (Some("weekly"), Some(5), Some(17)));
        assert_eq!(list[0]["timezone"], "America/New_York");

        // The same file again changes nothing; a changed pair is updated.
        let again = env.json(&["guardian", "import", &csv]);
        assert_eq!((again["inserted"].as_i64(), again["unchanged"].as_i64()), (Some(0), Some(3)), "{again}");
        let jsonl = write(env, "guardians.jsonl", "{\"student\": \"bob@example.com\", \"email\": \"kim@example.com\", \"hour\": 8, \"weekday\": 2}\n\n\
            {\"student\": \"alice@example.com\", \"email\": \"kim@example.com\", \"frequency\": \"daily\"}\n");
        let report = env.json(&["guardian", "import", &jsonl]);
        assert_eq!((report["inserted"].as_i64(), report["updated"].as_i64()), (Some(1), Some(1)), "{report}");
        let kim = &env.json(&["guardian", "list"])[0];
        assert_eq!((kim["hour"].as_i64(), kim["weekday"].as_i64(), kim["frequency"].as_str()), (Some(8), Some(2), Some("daily")));
        assert_eq!(kim["students"], serde_json::json!(["alice@example.com", "bob@example.com"]));

        // One bad row: the good ones before it are not written either.
        let (guardians, links) = (count(env, "guardians"), count(env, "guardian_students"));
        let bad = write(env, "bad.csv", "student,email,name,timezone,frequency,weekday,hour\n\
            alice@example.com,new@example.com,New,,,,\n\
            nobody@example.com,kim@example.com,,,,,\n");
        env.fails(&["guardian", "import", &bad], 2, "line 3: no user has the email `nobody@example.com`; nothing was written");
        assert_eq!((count(env, "guardians"), count(env, "guardian_students")), (guardians, links));
        // Every bad row is named by its line.
        let worse = write(env, "worse.csv", "student,email,name,timezone,frequency,weekday,hour\n\
            alice@example.com,pat@example.com,,Mars/Base,,,\n\
            alice@example.com,pat@example.com,,,sometimes,,\n\
            alice@example.com,pat@example.com,,,,someday,\n\
            alice@example.com,pat@example.com,,,,,25\n\
            alice@example.com,alice@example.com,,,,,\n");
        let run = env.run(&["guardian", "import", &worse]);
        assert_eq!(run.code(), 2, "{}", run.describe());
        for line in ["line 2:", "line 3: `sometimes` is not a frequency", "line 4: `someday` is not a day", "line 5: `25` is not an hour", "line 6:"] {
            assert!(run.stderr().contains(line), "no `{line}`:\n{}", run.describe());
        }
        assert!(run.stderr().contains("5 bad rows"), "{}", run.describe());
        assert_eq!((count(env, "guardians"), count(env, "guardian_students")), (guardians, links));
        let header = write(env, "header.csv", "Student;Email\nalice@example.com;new@example.com\n");
        env.fails(&["guardian", "import", &header], 2, "line 1: the header is `Student;Email`");
    }

    fn remove_unlinks_and_a_guardian_following_no_one_stays_listed(env: &TestEnv) {
        env.add_user("alice@example.com", "UTC");
        env.add_user("bob@example.com", "UTC");
        env.json(&["guardian", "add", "--student", "alice@example.com", "--email", "pat@example.com"]);
        env.json(&["guardian", "add", "--student", "bob@example.com", "--email", "pat@example.com"]);
        let removed = env.json(&["guardian", "remove", "--student", "alice@example.com", "--email", "pat@example.com"]);
        assert_eq!(removed["students"], serde_json::json!(["bob@example.com"]));
        let text = env.ok(&["guardian", "remove", "--student", "bob@example.com", "--email", "pat@example.com"]);
        assert!(text.contains("follow no one now"), "{text}");
        assert_eq!(listed(env, &[]), [pair("pat@example.com", &[])]);
        env.fails(&["guardian", "remove", "--student", "bob@example.com", "--email", "pat@example.com"], 2, "`pat@example.com` is not a guardian of `bob@example.com`");
        env.fails(&["guardian", "remove", "--student", "bob@example.com", "--email", "kim@example.com"], 2, "no guardian has the email `kim@example.com`");
    }

    fn guardian_forget_erases_the_guardian_and_every_link(env: &TestEnv) {
        env.add_user("alice@example.com", "UTC");
        env.add_user("bob@example.com", "UTC");
        for student in ["alice@example.com", "bob@example.com"] {
            env.json(&["guardian", "add", "--student", student, "--email", "pat.guardian@example.com", "--name", "Patricia Quill"]);
        }
        env.json(&["guardian", "add", "--student", "alice@example.com", "--email", "sam@example.com"]);
        assert!(full_dump(env).contains("pat.guardian@example.com"));

        // Not on a terminal and no --yes: nothing happens.
        env.fails(&["guardian", "forget", "pat.guardian@example.com"], 2, "confirm on a terminal, or pass --yes");
        assert_eq!(count(env, "guardians"), 2);

        let forgotten = env.json(&["guardian", "forget", "pat.guardian@example.com", "--yes"]);
        assert_eq!(forgotten["email"], "pat.guardian@example.com");
        assert_eq!(forgotten["students_unlinked"], 2);
        assert_eq!(listed(env, &[]), [pair("sam@example.com", &["alice@example.com"])]);
        assert_gone(env, "pat.guardian@");
        assert_gone(env, "patricia quill");
        env.fails(&["guardian", "forget", "pat.guardian@example.com", "--yes"], 2, "no guardian has the email");
    }

    fn user_forget_unlinks_and_erases_the_guardians_who_followed_only_that_student(env: &TestEnv) {
        env.add_user("alice@example.com", "UTC");
        env.add_user("bob@example.com", "UTC");
        env.json(&["guardian", "add", "--student", "alice@example.com", "--email", "pat.guardian@example.com", "--name", "Patricia Quill"]);
        env.json(&["guardian", "add", "--student", "alice@example.com", "--email", "sam@example.com"]);
        env.json(&["guardian", "add", "--student", "bob@example.com", "--email", "sam@example.com"]);
        // Following no one already: not this erasure's to take.
        env.json(&["guardian", "add", "--student", "bob@example.com", "--email", "lee@example.com"]);
        env.json(&["guardian", "remove", "--student", "bob@example.com", "--email", "lee@example.com"]);

        let forgotten = env.json(&["user", "forget", "alice@example.com", "--yes"]);
        assert_eq!(forgotten["guardian_links"], 2, "{forgotten}");
        assert_eq!(forgotten["guardians_forgotten"], serde_json::json!(["pat.guardian@example.com"]), "{forgotten}");
        assert_eq!(
            listed(env, &[]),
            [pair("lee@example.com", &[]), pair("sam@example.com", &["bob@example.com"])]
        );
        assert_gone(env, "alice@");
        assert_gone(env, "pat.guardian@");
        assert_gone(env, "patricia quill");

        let text = env.ok(&["user", "forget", "bob@example.com", "--yes"]);
        assert!(text.contains("unlinked 1 guardian and forgot `sam@example.com`, who followed no one else"), "{text}");
        assert_eq!(listed(env, &[]), [pair("lee@example.com", &[])]);
    }

    fn user_forget_keep_guardians_keeps_them_listed_with_no_student(env: &TestEnv) {
        env.add_user("alice@example.com", "UTC");
        env.json(&["guardian", "add", "--student", "alice@example.com", "--email", "pat@example.com"]);
        let forgotten = env.json(&["user", "forget", "alice@example.com", "--yes", "--keep-guardians"]);
        assert_eq!(forgotten["guardian_links"], 1, "{forgotten}");
        assert_eq!(forgotten["guardians_forgotten"], serde_json::json!([]), "{forgotten}");
        assert_eq!(listed(env, &[]), [pair("pat@example.com", &[])]);
        assert_gone(env, "alice@");
        // A student without guardians: the report says nothing of them.
        env.add_user("bob@example.com", "UTC");
        let text = env.ok(&["user", "forget", "bob@example.com", "--yes"]);
        assert!(!text.contains("guardian"), "{text}");
    }

    fn user_remove_unlinks_the_students_guardians_and_keeps_them(env: &TestEnv) {
        env.add_user("alice@example.com", "UTC");
        env.json(&["guardian", "add", "--student", "alice@example.com", "--email", "pat@example.com"]);
        env.json(&["user", "remove", "alice@example.com"]);
        assert_eq!(listed(env, &[]), [pair("pat@example.com", &[])]);
    }
}
