//! The JSON contract (docs/json.md): every command's JSON shape, pinned in a
//! snapshot (`SNAPSHOTS=overwrite cargo test json_contract` accepts a
//! change), and the rules every shape keeps.

use crate::common::smtp::SmtpServer;
use crate::common::{Backend, NOW, TestEnv, at, hours};

/// A value's shape: objects with their keys, arrays as their first item,
/// and each scalar as its kind (`time` for RFC 3339 UTC).
fn shape(value: &serde_json::Value, indent: usize, out: &mut String) {
    use serde_json::Value;
    let pad = "  ".repeat(indent);
    match value {
        Value::Object(map) => {
            out.push_str("{\n");
            for (key, item) in map {
                out.push_str(&format!("{pad}  {key}: "));
                shape(item, indent + 1, out);
            }
            out.push_str(&format!("{pad}}}\n"));
        }
        Value::Array(items) => match items.first() {
            Some(first) => {
                out.push('[');
                shape(first, indent, out);
                out.insert(out.len() - 1, ']');
            }
            None => out.push_str("[]\n"),
        },
        Value::String(text) if is_time(text) => out.push_str("time\n"),
        Value::String(_) => out.push_str("string\n"),
        Value::Number(_) => out.push_str("number\n"),
        Value::Bool(_) => out.push_str("bool\n"),
        Value::Null => out.push_str("null\n"),
    }
}

fn is_time(text: &str) -> bool {
    text.len() >= 20 && text.as_bytes()[4] == b'-' && text.as_bytes()[10] == b'T' && text.ends_with('Z')
}

/// The rules of docs/json.md that a shape can show.
fn check_rules(label: &str, value: &serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                assert!(
                    key.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                    "{label}: key `{key}` is not snake_case"
                );
                check_rules(label, item);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| check_rules(label, item)),
        Value::String(text) if text.len() >= 20 && text.as_bytes()[4] == b'-' && text.as_bytes()[10] == b'T' => {
            // One fixed precision: to the second, in UTC.
            assert!(
                text.len() == 20 && text.ends_with('Z'),
                "{label}: time `{text}` is not RFC 3339 UTC to the second"
            );
        }
        _ => {}
    }
}

#[test]
fn every_command_keeps_the_json_contract() {
    let env = TestEnv::new(Backend::Sqlite).unwrap();
    let smtp = SmtpServer::start();
    env.use_smtp(&smtp.url());
    env.in_use_since("2000-01-01T00:00:00Z");
    let csv = env.path("students.csv");
    std::fs::write(&csv, "email,name,timezone\nb@example.com,Bo,UTC\n").unwrap();
    let work = env.path("work.csv");
    std::fs::write(
        &work,
        "student,title,due,external_id\nb@example.com,Lab,2030-03-02T12:00:00Z,lab-1\n",
    )
    .unwrap();
    let due = at(hours(24));
    let mut snapshot = String::new();
    let mut record = |label: &str, value: serde_json::Value| {
        check_rules(label, &value);
        snapshot.push_str(&format!("## {label}\n"));
        shape(&value, 0, &mut snapshot);
        snapshot.push('\n');
    };
    let user = env.json(&["user", "add", "--email", "a@example.com", "--timezone", "UTC"]);
    assert!(user.is_object(), "a command that creates one record returns the object");
    record("user add", user);
    record("user list", env.json(&["user", "list"]));
    record(
        "user set",
        env.json(&["user", "set", "a@example.com", "--summary-hour", "7"]),
    );
    record(
        "user edit",
        env.json(&["user", "edit", "a@example.com", "--name", "Ann"]),
    );
    record("user opt-out", env.json(&["user", "opt-out", "a@example.com"]));
    record("user opt-in", env.json(&["user", "opt-in", "a@example.com"]));
    record("user import", env.json(&["user", "import", csv.to_str().unwrap()]));
    let added = env.json(&[
        "assignment",
        "add",
        "--student",
        "a@example.com",
        "--title",
        "Essay",
        "--due",
        &due,
        "--cutoff",
        &at(hours(48)),
        "--course",
        "CS101",
        "--now",
        NOW,
    ]);
    let id = added["id"].as_str().unwrap().to_string();
    record("assignment add", added);
    record(
        "assignment edit",
        env.json(&["assignment", "edit", &id, "--title", "Essay 2", "--now", NOW]),
    );
    record("assignment list", env.json(&["assignment", "list"]));
    record(
        "assignment import",
        env.json(&["assignment", "import", work.to_str().unwrap(), "--now", NOW]),
    );
    record(
        "assignment import --upsert",
        env.json(&["assignment", "import", work.to_str().unwrap(), "--upsert", "--now", NOW]),
    );
    record(
        "due",
        env.json(&["due", "--unit", "hours", "--targets", "24", "--now", NOW]),
    );
    let dry = env.json(&["send", "--unit", "hours", "--targets", "24", "--now", NOW, "--dry-run"]);
    let real = env.json(&["send", "--unit", "hours", "--targets", "24", "--now", NOW]);
    for key in real.as_object().unwrap().keys() {
        assert!(dry.get(key).is_some(), "send --dry-run lacks the real run's `{key}`");
    }
    assert_eq!(dry["dry_run"], true);
    record("send --dry-run", dry);
    record("send", real);
    let summary_dry = env.json(&["summary", "--send", "--dry-run", "--now", NOW]);
    let summary_real = env.json(&["summary", "--send", "--now", NOW]);
    for key in summary_real.as_object().unwrap().keys() {
        assert!(summary_dry.get(key).is_some(), "summary --send --dry-run lacks `{key}`");
    }
    record("summary --send --dry-run", summary_dry);
    record("summary --send", summary_real);
    record("summary", env.json(&["summary", "--now", NOW]));
    record("status", env.json(&["status", "--now", NOW]));
    record("retry --failed", env.json(&["retry", "--failed"]));
    let prune_dry = env.json(&["prune", "--older-than", "90d", "--dry-run"]);
    let prune = env.json(&["prune", "--older-than", "90d"]);
    assert_eq!(
        prune_dry.as_object().unwrap().keys().collect::<Vec<_>>(),
        prune.as_object().unwrap().keys().collect::<Vec<_>>()
    );
    record("prune --dry-run", prune_dry);
    record("prune", prune);
    record("template check", env.json(&["template", "check"]));
    record("check", env.json(&["check"]));
    let guardians = env.path("guardians.csv");
    std::fs::write(
        &guardians,
        "student,email,name,timezone,frequency,weekday,hour\nb@example.com,kim@example.com,Kim,UTC,weekly,fri,17\n",
    )
    .unwrap();
    let guardian = env.json(&[
        "guardian",
        "add",
        "--student",
        "a@example.com",
        "--email",
        "pat@example.com",
        "--name",
        "Pat",
    ]);
    assert!(
        guardian.is_object(),
        "a command that creates one record returns the object"
    );
    record("guardian add", guardian);
    record(
        "guardian import",
        env.json(&["guardian", "import", guardians.to_str().unwrap()]),
    );
    record("guardian list", env.json(&["guardian", "list"]));
    record(
        "guardian remove",
        env.json(&[
            "guardian",
            "remove",
            "--student",
            "b@example.com",
            "--email",
            "kim@example.com",
        ]),
    );
    record(
        "guardian forget",
        env.json(&["guardian", "forget", "kim@example.com", "--yes"]),
    );
    env.json(&[
        "assignment",
        "add",
        "--student",
        "a@example.com",
        "--title",
        "Lab",
        "--due",
        &at(hours(72)),
        "--course",
        "CS101",
        "--now",
        NOW,
    ]);
    record(
        "report",
        env.json(&["report", "--course", "CS101", "--now", &at(hours(25))]),
    );
    let teachers = env.path("teachers.csv");
    std::fs::write(
        &teachers,
        "course,email,name,timezone,weekday,hour\nMA200,ray@example.com,Ray,UTC,thu,9\n",
    )
    .unwrap();
    let teacher = env.json(&[
        "teacher",
        "add",
        "--course",
        "CS101",
        "--email",
        "lee@example.com",
        "--name",
        "Lee",
    ]);
    assert!(
        teacher.is_object(),
        "a command that creates one record returns the object"
    );
    record("teacher add", teacher);
    record(
        "teacher import",
        env.json(&["teacher", "import", teachers.to_str().unwrap()]),
    );
    record("teacher list", env.json(&["teacher", "list"]));
    record(
        "teacher remove",
        env.json(&["teacher", "remove", "--course", "MA200", "--email", "ray@example.com"]),
    );
    record(
        "teacher forget",
        env.json(&["teacher", "forget", "ray@example.com", "--yes"]),
    );
    record("assignment complete", env.json(&["assignment", "complete", &id]));
    record("assignment remove", env.json(&["assignment", "remove", &id]));
    record("user remove", env.json(&["user", "remove", "b@example.com"]));
    record("user forget", env.json(&["user", "forget", "a@example.com", "--yes"]));
    record("migrate", env.json(&["migrate"]));
    // `completions` and `man` print what they print, whatever --format says.
    for args in [&["completions", "bash"][..], &["man"]] {
        let json = env.run(&[args, &["--format", "json"]].concat());
        assert!(
            json.stdout() == env.ok(args),
            "{args:?} --format json prints something else"
        );
    }
    // The snapshot first, so that `SNAPSHOTS=overwrite` writes it even when
    // the document is behind; then paste it into docs/json.md.
    snapbox::assert_data_eq!(snapshot.clone(), snapbox::file!["../snapshots/json_shapes.txt"]);
    let documented = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/json.md")).unwrap();
    assert!(
        documented.contains(&snapshot),
        "docs/json.md shows other shapes than the commands print"
    );
}
