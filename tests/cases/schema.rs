//! `migrate`, the schema on both backends, and lossless round trips.

use crate::common::{Backend, TestEnv, on_both_backends};

/// Every command but `migrate`, as run against a database without the schema.
const COMMANDS_NEEDING_SCHEMA: &[&[&str]] = &[
    &["user", "list"],
    &["user", "add", "--email", "a@example.com"],
    &["user", "opt-out", "a@example.com"],
    &["user", "opt-in", "a@example.com"],
    &["assignment", "list"],
    &[
        "assignment",
        "add",
        "--student",
        "a@example.com",
        "--title",
        "T",
        "--due",
        "2030-01-01T00:00:00Z",
    ],
    &["assignment", "complete", "7c9028d5-5ed8-406d-b8f0-6375c56a8105"],
];

fn assert_every_command_needs_migrate(env: &TestEnv) {
    for args in COMMANDS_NEEDING_SCHEMA {
        env.fails(args, 1, "reminders migrate");
    }
}

on_both_backends! {
    fn migrate_applies_once_then_says_nothing_to_do(env: &TestEnv) {
        let env = TestEnv::unmigrated(env.backend).unwrap();
        let first = env.ok(&["migrate"]);
        assert!(first.contains("applied 20250901000001"), "{first}");
        let second = env.ok(&["migrate"]);
        assert!(second.contains("nothing to apply"), "{second}");
        assert!(!second.contains("applied 2"), "{second}");
        let json = env.json(&["migrate"]);
        assert_eq!(json["applied"], serde_json::json!([]));
    }

    fn a_quiet_migrate_prints_nothing_but_json_still_prints_its_document(env: &TestEnv) {
        let env = TestEnv::unmigrated(env.backend).unwrap();
        assert_eq!(env.ok(&["-q", "migrate"]), "");
        assert_eq!(env.ok(&["-q", "migrate"]), "");
        let json = env.json(&["-q", "migrate"]);
        assert_eq!(json["applied"], serde_json::json!([]));
    }

    fn concurrent_migrations_take_turns(env: &TestEnv) {
        let env = TestEnv::unmigrated(env.backend).unwrap();
        let runs: Vec<_> = (0..3)
            .map(|_| {
                let mut command = env.command();
                command.arg("migrate").stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
                command.spawn().unwrap()
            })
            .collect();
        let outputs: Vec<_> = runs.into_iter().map(|run| run.wait_with_output().unwrap()).collect();
        let texts: Vec<String> = outputs.iter().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).collect();
        for (output, text) in outputs.iter().zip(&texts) {
            assert!(output.status.success(), "{text}\n{}", String::from_utf8_lossy(&output.stderr));
        }
        assert_eq!(texts.iter().filter(|text| text.contains("applied 2025")).count(), 1, "{texts:?}");
        assert_eq!(texts.iter().filter(|text| text.contains("nothing to apply")).count(), 2, "{texts:?}");
    }

    fn a_database_newer_than_the_binary_is_refused(env: &TestEnv) {
        env.use_smtp("file://outbox");
        env.execute("INSERT INTO __diesel_schema_migrations (version) VALUES ('29990101000001')");
        env.fails(
            &["send", "--unit", "hours", "--targets", "24"],
            1,
            "newer than this reminders knows",
        );
        let version = env.ok(&["--version"]);
        let newest = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .max()
            .unwrap();
        assert!(version.contains(&format!("schema {newest}")), "{version}");
    }

    fn commands_on_an_unmigrated_database_point_to_migrate(env: &TestEnv) {
        let env = TestEnv::unmigrated(env.backend).unwrap();
        assert_every_command_needs_migrate(&env);
        if env.backend == Backend::Sqlite {
            // The check never creates the file it complains about.
            assert!(!env.path("test.db").exists());
            // An existing but empty SQLite file is "not migrated" too.
            std::fs::write(env.path("test.db"), b"").unwrap();
            assert_every_command_needs_migrate(&env);
        }
    }

    fn uuids_instants_and_json_round_trip_losslessly(env: &TestEnv) {
        let user_id = env.add_user("round@example.com", "Asia/Kolkata");
        let metadata = r#"{"course":"CS101","weight":0.25,"tags":["é","日本"],"nested":{"n":null,"big":9007199254740991}}"#;
        let added = env.json(&[
            "assignment", "add", "--student", "round@example.com", "--title", "Essay",
            "--due", "2031-01-01T10:00:00.123456+02:00", "--metadata", metadata,
        ]);
        let listed = env.json(&["assignment", "list"]);
        assert_eq!(listed[0]["id"], added["id"]);
        // Stored to the microsecond; JSON shows every time to the second.
        assert_eq!(listed[0]["due_at"], "2031-01-01T08:00:00Z");
        let stored = env.text("SELECT CAST(due_at AS TEXT) AS v FROM assignments").unwrap();
        assert!(stored.contains("08:00:00.123456"), "{stored}");
        let expected: serde_json::Value = serde_json::from_str(metadata).unwrap();
        assert_eq!(listed[0]["metadata"], expected);
        let users = env.json(&["user", "list"]);
        assert_eq!(users[0]["id"], user_id.as_str());
        assert_eq!(
            env.text("SELECT CAST(student_id AS TEXT) AS v FROM assignments").unwrap(),
            user_id,
        );
    }

    fn updated_at_changes_on_every_update(env: &TestEnv) {
        env.add_user("upd@example.com", "UTC");
        // Stored to the microsecond (JSON shows the second).
        let stored = || env.text("SELECT CAST(updated_at AS TEXT) AS v FROM users").unwrap();
        let before = stored();
        std::thread::sleep(std::time::Duration::from_millis(5));
        env.ok(&["user", "opt-out", "upd@example.com"]);
        let after = stored();
        assert!(after > before, "{after} > {before}");
        // An operator's hand-written UPDATE moves it too (a trigger does it).
        std::thread::sleep(std::time::Duration::from_millis(5));
        env.execute("UPDATE users SET name = 'Renamed'");
        let by_hand = stored();
        assert!(by_hand > after, "{by_hand} > {after}");
    }

    fn deleting_a_user_cascades_to_assignments_and_reminders(env: &TestEnv) {
        env.add_user("gone@example.com", "UTC");
        let assignment = env.add_assignment("gone@example.com", "T", "2031-01-01T00:00:00Z");
        env.execute(&format!(
            "INSERT INTO reminders (id, assignment_id, reminder_type, scheduled_for) \
             VALUES ('00000000-0000-4000-8000-000000000001', '{assignment}', '24h', '2030-12-31T00:00:00.000000Z')"
        ));
        env.execute("DELETE FROM users");
        assert_eq!(env.count("SELECT count(*) AS n FROM assignments"), 0);
        assert_eq!(env.count("SELECT count(*) AS n FROM reminders"), 0);
    }

    fn reminders_are_unique_per_assignment_and_type(env: &TestEnv) {
        env.add_user("uniq@example.com", "UTC");
        let assignment = env.add_assignment("uniq@example.com", "T", "2031-01-01T00:00:00Z");
        let insert = |id: &str| format!(
            "INSERT INTO reminders (id, assignment_id, reminder_type, scheduled_for) \
             VALUES ('{id}', '{assignment}', '24h', '2030-12-31T00:00:00.000000Z')"
        );
        env.execute(&insert("00000000-0000-4000-8000-000000000001"));
        let duplicate = env.try_execute(&insert("00000000-0000-4000-8000-000000000002"));
        assert!(duplicate.is_err(), "a second 24h reminder for one assignment was accepted");
    }
}

/// `\d reminders` on PostgreSQL: the spec's types, unique constraint and indexes.
#[test]
#[cfg_attr(not(reminders_postgres_tests), ignore = "needs TEST_DATABASE_URL")]
fn postgres_schema_matches_the_spec() {
    let Some(env) = TestEnv::new(Backend::Postgres) else {
        return;
    };
    let column_type = |table: &str, column: &str| {
        env.text(&format!(
            "SELECT CAST(data_type AS TEXT) AS v FROM information_schema.columns \
             WHERE table_name = '{table}' AND column_name = '{column}'"
        ))
        .unwrap()
    };
    assert_eq!(column_type("users", "id"), "uuid");
    assert_eq!(column_type("users", "contact_opt_out"), "boolean");
    assert_eq!(column_type("assignments", "due_at"), "timestamp with time zone");
    assert_eq!(column_type("assignments", "metadata"), "jsonb");
    assert_eq!(column_type("assignments", "cutoff"), "timestamp with time zone");
    assert_eq!(column_type("assignments", "course"), "text");
    assert_eq!(column_type("reminders", "attempts"), "integer");
    let indexes: Vec<String> = env
        .texts("SELECT CAST(indexdef AS TEXT) AS v FROM pg_indexes WHERE schemaname = 'public'")
        .into_iter()
        .flatten()
        .collect();
    for expected in [
        "UNIQUE INDEX reminders_assignment_id_reminder_type_key ON public.reminders USING btree (assignment_id, reminder_type)",
        "INDEX reminders_scheduled_idx ON public.reminders USING btree (scheduled_for, status)",
        // Carries `completed` for the summary's counts (INCLUDE: not a key column).
        "INDEX assignments_student_due_idx ON public.assignments USING btree (student_id, due_at) INCLUDE (completed)",
        "INDEX assignments_due_idx ON public.assignments USING btree (due_at)",
        // For per-course reports over due times; only assignments that name a course.
        "INDEX assignments_course_due_idx ON public.assignments USING btree (course, due_at) WHERE (course IS NOT NULL)",
        "UNIQUE INDEX users_email_key ON public.users USING btree (email)",
        "INDEX send_logs_reminder_created_idx ON public.send_logs USING btree (reminder_id, created_at)",
    ] {
        assert!(
            indexes.iter().any(|index| index.ends_with(expected)),
            "missing `{expected}` in {indexes:#?}"
        );
    }
    for constraint in ["assignments_student_id_fkey", "reminders_assignment_id_fkey"] {
        let rule = env.text(&format!(
            "SELECT CAST(delete_rule AS TEXT) AS v FROM information_schema.referential_constraints \
             WHERE constraint_name = '{constraint}'"
        ));
        assert_eq!(rule.as_deref(), Some("CASCADE"), "{constraint}");
    }
}

#[test]
fn sqlite_schema_has_the_spec_indexes() {
    let env = TestEnv::new(Backend::Sqlite).unwrap();
    let indexes: Vec<String> = env
        .texts("SELECT CAST(sql AS TEXT) AS v FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
        .into_iter()
        .flatten()
        .collect();
    for expected in [
        "reminders_scheduled_idx ON reminders (scheduled_for, status)",
        // `completed` last, for the summary's counts: (student_id, due_at) still leads.
        "assignments_student_due_idx ON assignments (student_id, due_at, completed)",
        "assignments_due_idx ON assignments (due_at)",
        "assignments_course_due_idx ON assignments (course, due_at) WHERE course IS NOT NULL",
        "send_logs_reminder_created_idx ON send_logs (reminder_id, created_at)",
    ] {
        assert!(
            indexes.iter().any(|index| index.contains(expected)),
            "missing `{expected}` in {indexes:#?}"
        );
    }
    let unique = env.count(
        "SELECT count(*) AS n FROM pragma_index_list('reminders') AS l \
         WHERE l.\"unique\" = 1 AND (SELECT group_concat(name) FROM pragma_index_info(l.name)) = 'assignment_id,reminder_type'",
    );
    assert_eq!(unique, 1);
}
