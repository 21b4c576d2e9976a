//! Database URLs, runtime failures and the one-line error contract.

use crate::common::{Backend, Run, TestEnv};

#[test]
fn malformed_database_urls_are_bad_input() {
    let env = TestEnv::unmigrated(Backend::Sqlite).unwrap();
    for (url, message) in [
        ("postgres://alice:s3cret@db:notaport/app", "is malformed"),
        ("mysql://localhost/app", "scheme `mysql` is not supported"),
        ("postgres:///app", "names no host"),
    ] {
        let run = env.fails(&["user", "list", "--database-url", url], 2, message);
        assert!(!run.stderr().contains("s3cret"), "{}", run.describe());
    }
}

#[test]
fn an_unreachable_database_is_a_runtime_failure_without_the_password() {
    let env = TestEnv::unmigrated(Backend::Sqlite).unwrap();
    let run = env.fails(
        &[
            "user",
            "list",
            "--database-url",
            "postgres://alice:s3cret@127.0.0.1:1/app",
        ],
        1,
        "cannot connect to the database `postgres://alice:***@127.0.0.1:1/app`",
    );
    assert!(!run.stderr().contains("s3cret"));
    assert!(!run.stderr().contains("panicked"));
}

#[test]
fn the_database_url_comes_from_dot_env_when_not_in_the_environment() {
    let env = TestEnv::unmigrated(Backend::Sqlite).unwrap();
    std::fs::write(env.path(".env"), "DATABASE_URL=from-dotenv.db\n").unwrap();
    let mut command = env.command();
    command.env_remove("DATABASE_URL").arg("migrate");
    let output = command.output().unwrap();
    assert!(output.status.success());
    assert!(env.path("from-dotenv.db").exists());
}

#[test]
fn with_nothing_set_the_default_is_reminders_db_in_the_current_directory() {
    let env = TestEnv::unmigrated(Backend::Sqlite).unwrap();
    let output = env
        .command()
        .env_remove("DATABASE_URL")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(env.path("reminders.db").exists());
}

#[test]
fn the_flag_beats_the_environment() {
    let env = TestEnv::unmigrated(Backend::Sqlite).unwrap();
    let output = env
        .command()
        .args(["migrate", "--database-url", "flag.db"])
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(env.path("flag.db").exists());
    assert!(!env.path("test.db").exists());
}

#[test]
fn usage_errors_exit_2() {
    let env = TestEnv::unmigrated(Backend::Sqlite).unwrap();
    assert_eq!(env.run(&["user", "add"]).code(), 2);
    assert_eq!(env.run(&["frobnicate"]).code(), 2);
    assert_eq!(env.run(&["user", "list", "--format", "xml"]).code(), 2);
}

/// A mistyped setting must not pass silently for the default SQLite file.
#[test]
fn a_mistyped_setting_is_named_with_the_nearest_real_one() {
    let env = TestEnv::new(Backend::Sqlite).unwrap();
    std::fs::write(
        env.path(".env"),
        "DATABSE_URL=postgres://db/reminders\nMAIL_FROM=a@school.example\n",
    )
    .unwrap();
    let run = Run(env
        .command()
        .env("REMINDERS_RATTE", "5")
        .args(["user", "list"])
        .output()
        .unwrap());
    assert!(
        run.stderr()
            .contains("sets `DATABSE_URL`, which no setting of reminders reads: did you mean `DATABASE_URL`?"),
        "{}",
        run.describe()
    );
    assert!(
        run.stderr().contains("`REMINDERS_RATTE`") && run.stderr().contains("`REMINDERS_RATE`"),
        "{}",
        run.describe()
    );
    assert!(!run.stderr().contains("MAIL_FROM"), "{}", run.describe());
}

/// Every cron line has `-q`: a typo must still be heard there, and `check` fails on it.
#[test]
fn a_setting_nothing_reads_is_heard_under_quiet_and_fails_check() {
    let env = TestEnv::new(Backend::Sqlite).unwrap();
    let smtp = crate::common::smtp::SmtpServer::start();
    let settings = env.path("settings.env");
    std::fs::write(
        &settings,
        format!(
            "DATABASE_URL={}\nSMTP_URL={}\nMAIL_FROM=noreply@school.example\nREMINDERS_RAET=5\nREMINDERS_DIGST=1\n",
            env.database_url,
            smtp.url()
        ),
    )
    .unwrap();
    let env_file = settings.to_str().unwrap();
    let run = env.run(&[
        "-q",
        "send",
        "--env-file",
        env_file,
        "--unit",
        "hours",
        "--targets",
        "24",
        "--now",
        crate::common::NOW,
    ]);
    assert_eq!(run.code(), 0, "{}", run.describe());
    assert_eq!(run.stdout(), "", "{}", run.describe());
    let lines: Vec<String> = run.stderr().lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 2, "{}", run.describe());
    assert!(
        lines[0].starts_with("warning: ")
            && lines[0].contains("`REMINDERS_RAET`")
            && lines[0].contains("did you mean `REMINDERS_RATE`?"),
        "{lines:?}"
    );
    assert!(
        lines[1].contains("`REMINDERS_DIGST`") && lines[1].contains("did you mean `REMINDERS_DIGEST`?"),
        "{lines:?}"
    );

    let check = env.run(&["check", "--env-file", env_file]);
    assert_eq!(check.code(), 1, "{}", check.describe());
    assert!(
        check.stdout().contains("FAIL  settings: ") && check.stdout().contains("REMINDERS_RAET"),
        "{}",
        check.describe()
    );
}

#[test]
fn the_default_database_is_named_wherever_it_matters() {
    let env = TestEnv::unmigrated(Backend::Sqlite).unwrap();
    let run = Run(env
        .command()
        .env_remove("DATABASE_URL")
        .args(["status"])
        .output()
        .unwrap());
    let default = env.path("reminders.db");
    let expected = format!(
        "no DATABASE_URL is set, so this is the default SQLite file {}",
        default.display()
    );
    assert!(run.stderr().contains(&expected), "{}", run.describe());
    let migrated = Run(env
        .command()
        .env_remove("DATABASE_URL")
        .args(["migrate"])
        .output()
        .unwrap());
    assert!(
        migrated
            .stdout()
            .contains("created a new SQLite database `reminders.db`"),
        "{}",
        migrated.describe()
    );
    assert!(migrated.stdout().contains(&expected), "{}", migrated.describe());
    // A sending run on a database without students says so.
    let sent = Run(env
        .command()
        .env_remove("DATABASE_URL")
        .env("SMTP_URL", "file://outbox")
        .env("MAIL_FROM", "a@school.example")
        .args(["send", "--unit", "hours", "--targets", "24"])
        .output()
        .unwrap());
    assert!(
        sent.stderr().contains("holds no students") && sent.stderr().contains(&expected),
        "{}",
        sent.describe()
    );
}

/// Cron runs with an almost empty environment and another directory.
#[test]
fn an_env_file_works_from_anywhere_in_an_empty_environment() {
    let env = TestEnv::new(Backend::Sqlite).unwrap();
    let settings = env.path("settings.env");
    std::fs::write(&settings, format!("DATABASE_URL={}\n", env.database_url)).unwrap();
    env.ok(&["user", "add", "--email", "a@example.com"]);
    let elsewhere = tempfile::tempdir().unwrap();
    let run = |args: &[&str], var: Option<&str>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_reminders"));
        command.env_clear().current_dir(elsewhere.path()).args(args);
        if let Some(path) = var {
            command.env("REMINDERS_ENV_FILE", path);
        }
        Run(command.output().unwrap())
    };
    let listed = run(&["user", "list", "--env-file", settings.to_str().unwrap()], None);
    assert!(listed.stdout().contains("a@example.com"), "{}", listed.describe());
    let listed = run(&["user", "list"], Some(settings.to_str().unwrap()));
    assert!(listed.stdout().contains("a@example.com"), "{}", listed.describe());
    let missing = run(&["user", "list", "--env-file", "/nonexistent.env"], None);
    assert_eq!(missing.code(), 1, "{}", missing.describe());
    assert!(
        missing.stderr().contains("cannot read the env file `/nonexistent.env`"),
        "{}",
        missing.describe()
    );
}

#[test]
fn a_password_with_hash_and_colon_is_explained_or_kept_out_of_the_url() {
    use base64::Engine as _;
    let env = TestEnv::new(Backend::Sqlite).unwrap();
    let smtp = crate::common::smtp::SmtpServer::start();
    env.add_user("a@example.com", "UTC");
    env.add_assignment("a@example.com", "Essay", &crate::common::at(crate::common::hours(24)));
    let port = smtp.url().rsplit(':').next().unwrap().to_string();
    let send = [
        "send",
        "--unit",
        "hours",
        "--targets",
        "24",
        "--now",
        crate::common::NOW,
    ];

    // As typed: the `#` ends the URL early. The error says how to write it.
    env.set_var("MAIL_FROM", "noreply@school.example");
    env.set_var("SMTP_URL", &format!("smtp://mailer:pa#ss:word@127.0.0.1:{port}"));
    let run = env.run(&send);
    assert_eq!(run.code(), 1, "{}", run.describe());
    assert!(
        run.stderr().contains("holds `#`") && run.stderr().contains("`%23`"),
        "{}",
        run.stderr()
    );
    assert!(!run.stderr().contains("ss:word"), "{}", run.stderr());

    // Percent-encoded in the URL, or apart in a file: the server gets the password as it is.
    let expected = base64::engine::general_purpose::STANDARD.encode("\0mailer\0pa#ss:word");
    env.set_var("SMTP_URL", &format!("smtp://mailer:pa%23ss%3Aword@127.0.0.1:{port}"));
    assert_eq!(env.run(&send).code(), 0);
    std::fs::write(env.path("smtp-password"), "pa#ss:word\n").unwrap();
    env.set_var("SMTP_URL", &format!("smtp://mailer@127.0.0.1:{port}"));
    env.set_var("SMTP_PASSWORD_FILE", "smtp-password");
    env.ok(&["user", "add", "--email", "b@example.com"]);
    env.add_assignment("b@example.com", "Lab", &crate::common::at(crate::common::hours(24)));
    let run = env.run(&send);
    assert_eq!(run.code(), 0, "{}", run.describe());
    assert_eq!(smtp.received().len(), 2);
    let auth = smtp.auth_lines();
    assert_eq!(auth.len(), 2, "{auth:?}");
    assert!(
        auth.iter().all(|line| line == &format!("AUTH PLAIN {expected}")),
        "{auth:?}"
    );
    let check = env.run(&["check"]);
    assert!(
        !check.stdout().contains("pa#ss") && !check.stderr().contains("pa#ss"),
        "{}",
        check.describe()
    );
}
