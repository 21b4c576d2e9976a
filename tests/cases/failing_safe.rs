//! Failing safe: files holding student data are owner-only, every number and
//! duration has a range, bad input is refused with its line, messages are
//! always valid, and secrets are never printed.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;

use crate::common::{Backend, NOW, Run, TestEnv, at, hours, on_both_backends};

/// Runs the binary under umask 022, as a shell or cron may start it, so that
/// only the program itself can make its files private.
fn run_under_umask_022(env: &TestEnv, args: &[&str]) -> Run {
    let direct = env.command();
    let mut shell = std::process::Command::new("sh");
    shell
        .args(["-c", "umask 022 && exec \"$@\"", "sh"])
        .arg(direct.get_program())
        .args(args)
        .env_clear()
        .envs(direct.get_envs().filter_map(|(name, value)| Some((name, value?))))
        .current_dir(env.dir.path());
    Run(shell.output().expect("run reminders"))
}

/// A file's permission bits in octal, such as `600`.
fn mode(path: &Path) -> String {
    let metadata = std::fs::metadata(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    format!("{:o}", metadata.permissions().mode() & 0o777)
}

on_both_backends! {
    fn files_holding_student_data_are_owner_only(env: &TestEnv) {
        let database = env.path("private.db");
        if env.backend == Backend::Sqlite {
            env.set_var("DATABASE_URL", database.to_str().unwrap());
        }
        let migrated = run_under_umask_022(env, &["migrate"]);
        assert_eq!(migrated.code(), 0, "{}", migrated.describe());
        env.add_user("m@example.com", "UTC");
        env.add_assignment("m@example.com", "Modes", &at(hours(24)));
        // An open reader keeps the SQLite -wal and -shm files after the run ends.
        let _reader = (env.backend == Backend::Sqlite).then(|| {
            let mut reader = SqliteConnection::establish(database.to_str().unwrap()).unwrap();
            reader.batch_execute("SELECT count(*) FROM users").unwrap();
            reader
        });
        env.use_smtp("file://outbox");
        let sent = run_under_umask_022(env, &["send", "--unit", "hours", "--targets", "24", "--now", NOW]);
        assert_eq!(sent.code(), 0, "{}", sent.describe());

        assert_eq!(mode(&env.path("outbox")), "700");
        let messages: Vec<_> = std::fs::read_dir(env.path("outbox")).unwrap().map(|entry| entry.unwrap().path()).collect();
        assert_eq!(messages.len(), 1);
        for message in &messages {
            assert_eq!(mode(message), "600", "{}", message.display());
        }
        if env.backend == Backend::Sqlite {
            for suffix in ["", "-wal", "-shm"] {
                let file = env.path(&format!("private.db{suffix}"));
                assert_eq!(mode(&file), "600", "{}", file.display());
            }
        }
    }
}

/// `base` with `option` set to `value` (replacing any value it had), written
/// `--option=value` so that a value such as `-1` is not read as a flag.
fn with_option(base: &[&str], option: &str, value: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut rest = base.iter();
    while let Some(arg) = rest.next() {
        if *arg == option {
            rest.next();
        } else {
            args.push(arg.to_string());
        }
    }
    args.push(format!("{option}={value}"));
    args
}

on_both_backends! {
    fn extreme_values_never_panic(env: &TestEnv) {
        env.use_smtp("file://outbox");
        env.add_user("x@example.com", "UTC");
        let assignment = env.add_assignment("x@example.com", "Extreme", &at(hours(24)));
        let numbers = ["0", "-1", "1", "4000000000", "18446744073709551616", "99999999999999999999"];
        let durations = ["0s", "-1m", "1s", "99999999d", "100000000000d", "9223372036854775807s", "99999999999999999999s"];
        let times = ["0000-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "-1"];
        let targets = ["0", "-1", "525600", "525601", "4000000000", "1,4294967295", "99999999999999999999"];
        let types = ["0h", "-1h", "8760h", "4000000000h", "99999999999999999999m"];
        let delivery = ["--max-attempts", "--batch-size", "--connections", "--rate", "--limit"];
        let delivery_durations = ["--lease", "--backoff", "--smtp-timeout"];

        let due = ["due", "--unit", "minutes", "--targets", "1440", "--now", NOW];
        let send = ["send", "--unit", "minutes", "--targets", "1440", "--now", NOW];
        let summary = ["summary", "--send", "--now", NOW];
        let preview = ["preview", &assignment, "--mail-from", "n@school.example"];
        let mut cases: Vec<(&[&str], &str, &[&str])> = vec![
            (&due, "--targets", &targets),
            (&due, "--tolerance", &numbers),
            (&due, "--now", &times),
            (&send, "--targets", &targets),
            (&send, "--tolerance", &numbers),
            (&send, "--now", &times),
            (&send, "--delivery-window", &durations),
            (&summary, "--now", &times),
            (&["summary"], "--now", &times),
            (&["status"], "--now", &times),
            (&["retry", "--failed"], "--since", &times),
            (&["retry", "--failed"], "--now", &times),
            (&["prune", "--older-than", "90d"], "--older-than", &durations),
            (&["prune", "--older-than", "90d"], "--now", &times),
            (&preview, "--type", &types),
            (&preview, "--now", &times),
            (&["user", "set", "x@example.com"], "--summary-hour", &numbers),
        ];
        for base in [&send[..], &summary[..]] {
            cases.extend(delivery.iter().map(|option| (base, *option, &numbers[..])));
            cases.extend(delivery_durations.iter().map(|option| (base, *option, &durations[..])));
        }
        let many_v = format!("-{}", "v".repeat(300));
        let mut runs: Vec<Vec<String>> = vec![vec![many_v, "user".into(), "list".into()]];
        for (base, option, values) in cases {
            runs.extend(values.iter().map(|value| with_option(base, option, value)));
        }
        for args in runs {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let run = env.run(&args);
            assert!(
                [0, 1, 2].contains(&run.code()) && !run.stderr().contains("panicked"),
                "reminders {}\n{}",
                args.join(" "),
                run.describe()
            );
        }

        // The runs that panicked before are refused as bad input.
        for args in [
            &["due", "--unit", "hours", "--targets", "4000000000"][..],
            &["prune", "--older-than", "100000000000d"],
            &["send", "--unit", "hours", "--targets", "24", "--lease", "99999999d"],
        ] {
            assert_eq!(env.run(args).code(), 2, "reminders {}", args.join(" "));
        }
        // The longest of each range is accepted.
        for args in [
            &["due", "--unit", "hours", "--targets", "8760", "--tolerance", "1440"][..],
            &["prune", "--older-than", "36500d", "--dry-run"],
            &["send", "--unit", "hours", "--targets", "8760", "--lease", "1d", "--backoff", "1h",
              "--smtp-timeout", "1h", "--delivery-window", "365d", "--max-attempts", "100", "--rate", "100000"],
        ] {
            let run = env.run(args);
            assert_eq!(run.code(), 0, "reminders {}\n{}", args.join(" "), run.describe());
        }
    }
}

on_both_backends! {
    fn bad_encodings_and_control_characters_are_bad_input_at_their_line(env: &TestEnv) {
        let files: [(&str, &[u8], &str); 7] = [
            ("utf8.jsonl", b"{\"email\": \"a@example.com\"}\n{\"email\": \"b@example.com\", \"name\": \"B\xff\"}\n", "line 2: not valid UTF-8 text"),
            ("utf8.csv", b"email,name\na@example.com,A\nb@example.com,B\xff\n", "line 3: not valid UTF-8 text"),
            ("header.csv", b"\xffemail,name\n", "line 1: not valid UTF-8 text"),
            ("nul.csv", b"email,name\na@example.com,A\x00B\n", "line 2: the name holds the control character U+0000"),
            ("nul.jsonl", b"{\"email\": \"a@example.com\", \"name\": \"A\\u0000B\"}\n", "line 1: the name holds the control character U+0000"),
            ("escape.csv", b"email,name\na@example.com,\x1b[2J\n", "line 2: the name holds the control character U+001B"),
            ("crlf.jsonl", b"{\"email\": \"a@example.com\"}\r\n\r\n{\"email\": \"b@example.com\", \"name\": \"\\u001b]0;owned\\u0007\"}\r\n", "line 3: the name holds the control character U+001B"),
        ];
        for (name, bytes, message) in files {
            std::fs::write(env.path(name), bytes).unwrap();
            env.fails(&["user", "import", name], 2, message);
        }
        assert_eq!(env.count("SELECT count(*) AS n FROM users"), 0);

        env.add_user("s@example.com", "UTC");
        let files: [(&str, &[u8], &str); 5] = [
            ("utf8.jsonl", b"{\"student\": \"s@example.com\", \"title\": \"T\xff\", \"due\": \"2030-03-02T12:00:00Z\"}\n", "line 1: not valid UTF-8 text"),
            ("nul.csv", b"student,title,due\ns@example.com,A\x00B,2030-03-02T12:00:00Z\n", "line 2: the title holds the control character U+0000"),
            ("description.jsonl", b"{\"student\": \"s@example.com\", \"title\": \"T\", \"due\": \"2030-03-02T12:00:00Z\", \"description\": \"D\\u0000\"}\n", "line 1: the description holds the control character U+0000"),
            ("metadata.jsonl", b"{\"student\": \"s@example.com\", \"title\": \"T\", \"due\": \"2030-03-02T12:00:00Z\", \"metadata\": {\"x\": \"\\u0000\"}}\n", "line 1: metadata holds the control character U+0000"),
            ("metadata.csv", b"student,title,due,metadata\ns@example.com,T,2030-03-02T12:00:00Z,\"{\"\"x\"\": \"\"\\u0000\"\"}\"\n", "line 2: metadata holds the control character U+0000"),
        ];
        for (name, bytes, message) in files {
            std::fs::write(env.path(name), bytes).unwrap();
            env.fails(&["assignment", "import", name], 2, message);
        }
        assert_eq!(env.count("SELECT count(*) AS n FROM assignments"), 0);

        // The same checks as `add`, whose arguments cannot hold a NUL.
        env.fails(&["user", "add", "--email", "n@example.com", "--name", "\u{1b}[2J"], 2, "the name holds the control character U+001B");
        let add = ["assignment", "add", "--student", "s@example.com", "--due", "2030-03-02T12:00:00Z"];
        env.fails(&[&add[..], &["--title", "Tab\there"]].concat(), 2, "the title holds the control character U+0009");
        env.fails(&[&add[..], &["--title", "T", "--description", "Bell\u{7}"]].concat(), 2, "the description holds the control character U+0007");
        env.fails(&[&add[..], &["--title", "T", "--metadata", r#"{"x": "\u0000"}"#]].concat(), 2, "metadata holds the control character U+0000");
        env.ok(&[&add[..], &["--title", "T", "--description", "Two\nlines\tand a tab"]].concat());
        assert_eq!(env.count("SELECT count(*) AS n FROM assignments"), 1);
    }

    fn tables_show_control_characters_as_escapes(env: &TestEnv) {
        // As data stored before names were checked, or written by another tool.
        let esc = match env.backend {
            Backend::Sqlite => "char(27)",
            Backend::Postgres => "chr(27)",
        };
        let user = uuid::Uuid::new_v4();
        env.execute(&format!(
            "INSERT INTO users (id, email, name, timezone) VALUES ('{user}', 'eve@example.com', 'Eve' || {esc} || '[2J', 'UTC')"
        ));
        env.execute(&format!(
            "INSERT INTO assignments (id, title, student_id, due_at) \
             VALUES ('{}', 'Essay' || {esc} || ']0;owned', '{user}', '2030-03-02T12:00:00.000000Z')",
            uuid::Uuid::new_v4()
        ));
        for args in [
            &["user", "list"][..],
            &["assignment", "list"],
            &["summary", "--now", NOW],
            &["due", "--unit", "hours", "--targets", "24", "--now", NOW],
        ] {
            let table = env.ok(args);
            assert!(!table.contains('\u{1b}'), "{args:?}: {table:?}");
            assert!(table.contains(r"\u{1b}"), "{args:?}: {table}");
        }
        // JSON keeps the data exactly; its own escaping makes it safe.
        assert_eq!(env.json(&["user", "list"])[0]["name"], "Eve\u{1b}[2J");
    }
}

on_both_backends! {
    fn a_long_title_still_makes_a_valid_message(env: &TestEnv) {
        env.use_smtp("file://outbox");
        let templates = env.path("templates");
        std::fs::create_dir(&templates).unwrap();
        std::fs::write(templates.join("reminder_body.html"), "<p>{{ assignment.title }} is due</p>\n").unwrap();
        let name = "N".repeat(1_000);
        env.ok(&["user", "add", "--email", "long@example.com", "--name", &name]);
        let title = format!("https://example.com/{}", "x".repeat(1_100));
        env.add_assignment("long@example.com", &title, &at(hours(24)));
        let run = env.run(&["send", "--unit", "hours", "--targets", "24", "--now", NOW, "--templates", templates.to_str().unwrap()]);
        assert_eq!(run.code(), 0, "{}", run.describe());

        let files: Vec<_> = std::fs::read_dir(env.path("outbox")).unwrap().map(|entry| entry.unwrap().path()).collect();
        assert_eq!(files.len(), 1);
        let eml = std::fs::read_to_string(&files[0]).unwrap();
        // SMTP allows 998 characters a line; lettre folds these headers under 100.
        for line in eml.split("\r\n") {
            assert!(line.len() <= 998, "a line of {} characters", line.len());
        }
        let (head, body) = eml.split_once("\r\n\r\n").unwrap();
        assert!(head.split("\r\n").all(|line| line.len() < 100), "{head}");
        assert!(head.contains("Subject: Reminder: =?utf-8?b?"), "the subject's long word is shortened and encoded:\n{head}");
        // Both bodies (quoted-printable; the HTML one escapes the slashes) keep the full title.
        let body = body.replace("=\r\n", "");
        assert!(body.contains(&title), "{body}");
        assert_eq!(body.matches(&"x".repeat(1_100)).count(), 2, "{body}");
    }
}

/// Asserts that `secret` is in neither stdout nor stderr of `run`.
fn assert_hidden(run: &Run, secret: &str, what: &str) {
    assert!(
        !run.stdout().contains(secret) && !run.stderr().contains(secret),
        "{what} shows `{secret}`:\n{}",
        run.describe()
    );
    assert!(!run.stderr().contains("panicked"), "{what}:\n{}", run.describe());
}

on_both_backends! {
    fn secrets_never_appear_in_any_output(env: &TestEnv) {
        env.add_user("s@example.com", "UTC");
        env.add_assignment("s@example.com", "Secretive", &at(hours(24)));
        env.use_smtp("file://outbox");
        let closed = crate::common::smtp::closed_port();
        let smtp = crate::common::smtp::SmtpServer::start();
        // (setting, value, the text that must never show). The first five point
        // at a closed port, so every run also meets a failing connection.
        let mut forms = vec![
            ("DATABASE_URL", format!("postgres://alice:Userinfo-S3cret@127.0.0.1:{closed}/app"), "Userinfo-S3cret"),
            ("DATABASE_URL", format!("postgres://alice@127.0.0.1:{closed}/app?sslmode=disable&password=Query-S3cret"), "Query-S3cret"),
            ("DATABASE_URL", format!("postgres://alice:Bad%zzEscape-S3cret@127.0.0.1:{closed}/app"), "Escape-S3cret"),
            ("SMTP_URL", format!("smtp://alice:Smtp-S3cret@127.0.0.1:{closed}"), "Smtp-S3cret"),
            ("REMINDERS_PING_URL", format!("http://127.0.0.1:{closed}/ping/Ping-S3cret"), "Ping-S3cret"),
            // A live server, which takes the credentials.
            ("SMTP_URL", smtp.url().replace("smtp://", "smtp://alice:Live-Smtp-S3cret@"), "Live-Smtp-S3cret"),
        ];
        if env.backend == Backend::Postgres {
            // The live test server, which trusts and so ignores the password.
            let live = env.database_url.replacen("postgres://postgres@", "postgres://postgres:Live-S3cret@", 1);
            forms.push(("DATABASE_URL", live, "Live-S3cret"));
            forms.push(("DATABASE_URL", format!("{}?password=Live-Query-S3cret", env.database_url), "Live-Query-S3cret"));
            forms.push(("DATABASE_URL", env.database_url.replacen("postgres://postgres@", "postgres://postgres:Live%zzEscape-S3cret@", 1), "Escape-S3cret"));
        }
        let send = ["-v", "send", "--unit", "hours", "--targets", "24", "--now", NOW];
        for (name, value, secret) in &forms {
            let with_setting = |args: &[&str]| Run(env.command().env(name, value).args(args).output().unwrap());
            for args in [&["check"][..], &send, &["user", "list"], &["summary", "--send", "-v", "--now", NOW]] {
                let run = with_setting(args);
                assert_hidden(&run, secret, &format!("{name}: reminders {}", args.join(" ")));
            }
            // The same setting on a line of .env that does not parse.
            std::fs::write(env.path(".env"), format!("MAIL_FROM=noreply@school.example\n{name}={value} and more'\n")).unwrap();
            for args in [&["check"][..], &send] {
                let run = env.run(args);
                assert_hidden(&run, secret, &format!("{name} in .env: reminders {}", args.join(" ")));
                assert_eq!(run.code(), 1, "{}", run.describe());
                assert_eq!(run.stderr().trim(), "error: `.env` line 2 does not parse: a value with spaces or `#` needs quotes, KEY=\"a value\" (the line is not shown: it may hold a password)");
            }
            std::fs::remove_file(env.path(".env")).unwrap();
        }

        // What is shown instead: the masked URL, and a ping URL's scheme and host.
        let (_, query_url, _) = &forms[1];
        let run = Run(env.command().env("DATABASE_URL", query_url).arg("check").output().unwrap());
        assert!(run.stdout().contains("?sslmode=disable&password=***`"), "{}", run.describe());
        let (_, smtp_url, _) = &forms[3];
        let run = Run(env.command().env("SMTP_URL", smtp_url).arg("check").output().unwrap());
        assert!(run.stdout().contains("SMTP_URL `smtp://alice:***@127.0.0.1:") && run.stdout().contains("FAIL  mail server"), "{}", run.describe());
        let (_, live_smtp_url, _) = &forms[5];
        let run = Run(env.command().env("SMTP_URL", live_smtp_url).arg("check").output().unwrap());
        assert!(run.stdout().contains("credentials accepted"), "{}", run.describe());
        let (_, ping_url, _) = &forms[4];
        env.use_smtp("file://outbox");
        let run = env.run(&["send", "--unit", "hours", "--targets", "24", "--ping-url", ping_url]);
        assert!(run.stderr().contains("warning: the ping to `http://127.0.0.1` failed"), "{}", run.describe());
    }
}

#[test]
fn smtp_credentials_without_tls_are_refused_for_a_remote_server() {
    let env = TestEnv::new(Backend::Sqlite).unwrap();
    env.add_user("s@example.com", "UTC");
    env.add_assignment("s@example.com", "Clear", &at(hours(24)));
    env.set_var("MAIL_FROM", "noreply@school.example");
    let send = ["send", "--unit", "hours", "--targets", "24", "--now", NOW];
    for url in [
        "smtp://user:Clear-Pw-S3cret@mail.example.com:25",
        "smtp://user:Clear-Pw-S3cret@mail.example.com:587?tls=opportunistic",
    ] {
        env.set_var("SMTP_URL", url);
        let run = env.fails(&send, 1, "has credentials but no TLS");
        // Long enough that no temporary directory's random name holds it.
        assert_hidden(&run, "Clear-Pw-S3cret", url);
        assert!(
            run.stderr().contains("use smtps://, add ?tls=required"),
            "{}",
            run.describe()
        );
        let check = env.run(&["check"]);
        assert_eq!(check.code(), 1, "{}", check.describe());
        assert!(check.stdout().contains("FAIL  mail settings"), "{}", check.describe());
        assert_hidden(&check, "Clear-Pw-S3cret", url);
    }
    assert_eq!(env.count("SELECT count(*) AS n FROM send_logs"), 0, "nothing was sent");
    // TLS from the start, or STARTTLS required, is accepted (the check then
    // fails only for want of a server at that name).
    env.set_var(
        "SMTP_URL",
        "smtp://user:Clear-Pw-S3cret@mail.example.com:587?tls=required",
    );
    assert!(!env.run(&["check"]).stdout().contains("FAIL  mail settings"));
}

#[test]
fn dot_env_is_read_from_the_current_directory_only_and_a_bad_one_stops_the_run() {
    let env = TestEnv::unmigrated(Backend::Sqlite).unwrap();
    std::fs::write(env.path(".env"), "DATABASE_URL=parent.db\n").unwrap();
    let child = env.path("child");
    std::fs::create_dir(&child).unwrap();
    let run = Run(env
        .command()
        .env_remove("DATABASE_URL")
        .current_dir(&child)
        .arg("migrate")
        .output()
        .unwrap());
    assert_eq!(run.code(), 0, "{}", run.describe());
    assert!(
        child.join("reminders.db").exists(),
        "the default, not the parent's .env"
    );
    assert!(!env.path("parent.db").exists() && !child.join("parent.db").exists());

    // A line that does not parse is an error, not a silent fallback to reminders.db.
    let list_users_in_child = || {
        Run(env
            .command()
            .env_remove("DATABASE_URL")
            .current_dir(&child)
            .args(["user", "list"])
            .output()
            .unwrap())
    };
    std::fs::write(
        child.join(".env"),
        "# settings\nMAIL_FROM=noreply@school.example\n\nDATABASE_URL=\"unterminated\n",
    )
    .unwrap();
    let run = list_users_in_child();
    assert_eq!(run.code(), 1, "{}", run.describe());
    assert_eq!(
        run.stderr().trim(),
        "error: `.env` line 4 does not parse: its value opens a quote (\") that is not closed (the line is not shown: it may hold a password)"
    );
    assert_eq!(run.stdout(), "");

    std::fs::write(child.join(".env"), "MAIL_FROM=Reminders <noreply@school.example>\n").unwrap();
    let run = list_users_in_child();
    assert_eq!(run.code(), 1, "{}", run.describe());
    assert_eq!(
        run.stderr().trim(),
        "error: `.env` line 1 does not parse: a value with spaces or `#` needs quotes, KEY=\"a value\" (the line is not shown: it may hold a password)"
    );
}
