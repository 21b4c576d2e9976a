//! `reminders report --course`: per assignment of the course, exactly the
//! students who have not completed it, the coming week's counts, and CSV
//! that Python's csv module reads back as written.

use std::process::Command;

use crate::common::{NOW, TestEnv, at, hours, on_both_backends};

/// Three students of CS101 (one named with a comma and a quote), one of
/// another course. Essay was due yesterday, Quiz nine days ago (outside the
/// default week), Lab is due in three days and Final in ten (outside the
/// week to come).
fn course(env: &TestEnv) {
    for (email, name) in [
        ("ann@example.com", "Ann"),
        ("bo@example.com", "O'Neil, \"Bo\""),
        ("cy@example.com", "Cy"),
    ] {
        env.ok(&["user", "add", "--email", email, "--name", name, "--timezone", "UTC"]);
    }
    env.add_user("dee@example.com", "UTC");
    let add = |student: &str, title: &str, due: &str, course: &str| {
        let added = env.json(&[
            "assignment",
            "add",
            "--student",
            student,
            "--title",
            title,
            "--due",
            due,
            "--course",
            course,
            "--now",
            "2000-01-01T00:00:00Z",
        ]);
        added["id"].as_str().unwrap().to_string()
    };
    for student in ["ann@example.com", "bo@example.com", "cy@example.com"] {
        let essay = add(student, "Essay", &at(hours(-24)), "CS101");
        if student == "ann@example.com" {
            env.ok(&["assignment", "complete", &essay]);
        }
        add(student, "Quiz", &at(hours(-9 * 24)), "CS101");
        let lab = add(student, "Lab", &at(hours(3 * 24)), "CS101");
        if student == "cy@example.com" {
            env.ok(&["assignment", "complete", &lab]);
        }
        add(student, "Final", &at(hours(10 * 24)), "CS101");
    }
    add("dee@example.com", "Essay", &at(hours(-24)), "BIO2");
}

/// Each assignment's title with its emails (of the students not done) and counts.
fn summarized(part: &serde_json::Value) -> Vec<(String, Vec<String>, u64, u64)> {
    part.as_array()
        .unwrap()
        .iter()
        .map(|due| {
            let missing = due["not_completed"]
                .as_array()
                .unwrap()
                .iter()
                .map(|student| student["email"].as_str().unwrap().to_string())
                .collect();
            (
                due["title"].as_str().unwrap().to_string(),
                missing,
                due["students"].as_u64().unwrap(),
                due["completed"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| item.to_string()).collect()
}

/// Parses CSV with Python's csv module and prints each record as a JSON array.
const PARSE_CSV: &str = r#"
import csv, json, sys
with open(sys.argv[1], newline="", encoding="utf-8") as f:
    print(json.dumps(list(csv.reader(f))))
"#;

fn parsed_by_python(env: &TestEnv, csv: &str) -> Vec<Vec<String>> {
    let path = env.path("report.csv");
    std::fs::write(&path, csv).unwrap();
    let out = Command::new("/usr/bin/python3")
        .args(["-c", PARSE_CSV])
        .arg(&path)
        .output()
        .expect("python3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

on_both_backends! {
    fn lists_exactly_who_has_not_completed_and_the_coming_weeks_counts(env: &TestEnv) {
        course(env);
        let report = env.json(&["report", "--course", "CS101", "--now", NOW]);
        assert_eq!(report["known"], true);
        assert_eq!(
            summarized(&report["past"]),
            vec![("Essay".to_string(), strings(&["bo@example.com", "cy@example.com"]), 3, 1)]
        );
        let upcoming = summarized(&report["upcoming"]);
        assert_eq!(upcoming.len(), 1, "Final is due past the coming week: {upcoming:?}");
        assert_eq!((upcoming[0].0.as_str(), upcoming[0].2, upcoming[0].3), ("Lab", 3, 1));
        assert_eq!(report["past"][0]["not_completed"][0]["name"], "O'Neil, \"Bo\"");

        // A longer look back takes in the quiz nobody completed.
        let report = env.json(&["report", "--course", "CS101", "--since", "10d", "--now", NOW]);
        let past = summarized(&report["past"]);
        assert_eq!(past[0].0, "Quiz");
        assert_eq!(past[0].1, strings(&["ann@example.com", "bo@example.com", "cy@example.com"]));

        let table = env.ok(&["report", "--course", "CS101", "--now", NOW]);
        assert!(table.contains("Essay") && table.contains("1 of 3 completed"), "{table}");
        assert!(table.contains("cy@example.com") && !table.contains("ann@example.com"), "{table}");
        assert!(!table.contains("dee@example.com"), "another course's student: {table}");
    }

    fn csv_reads_back_in_python_with_a_comma_and_a_quote_in_a_name(env: &TestEnv) {
        course(env);
        let csv = env.ok(&["report", "--course", "CS101", "--now", NOW, "--format", "csv"]);
        let rows = parsed_by_python(env, &csv);
        assert_eq!(
            rows[0],
            strings(&["course", "part", "title", "due_at", "students", "completed", "student_name", "student_email"])
        );
        let essay = at(hours(-24));
        let lab = at(hours(3 * 24));
        assert_eq!(
            rows[1..].to_vec(),
            vec![
                strings(&["CS101", "past", "Essay", &essay, "3", "1", "O'Neil, \"Bo\"", "bo@example.com"]),
                strings(&["CS101", "past", "Essay", &essay, "3", "1", "Cy", "cy@example.com"]),
                strings(&["CS101", "upcoming", "Lab", &lab, "3", "1", "", ""]),
            ]
        );
    }

    fn an_unknown_course_is_an_empty_report_that_says_so(env: &TestEnv) {
        course(env);
        let report = env.json(&["report", "--course", "CS999", "--now", NOW]);
        assert_eq!(report["known"], false);
        assert_eq!(report["past"], serde_json::json!([]));
        assert_eq!(report["upcoming"], serde_json::json!([]));
        let table = env.ok(&["report", "--course", "CS999", "--now", NOW]);
        assert_eq!(table, "no assignment names the course CS999\n");
        let csv = env.ok(&["report", "--course", "CS999", "--now", NOW, "--format", "csv"]);
        assert_eq!(parsed_by_python(env, &csv).len(), 1, "the header only: {csv}");
    }

    fn other_commands_refuse_csv(env: &TestEnv) {
        env.fails(&["status", "--format", "csv"], 2, "`--format csv` is only for `reminders report`");
        let script = env.ok(&["completions", "bash"]);
        assert_eq!(env.ok(&["completions", "bash", "--format", "csv"]), script, "printed as it is");
    }
}
