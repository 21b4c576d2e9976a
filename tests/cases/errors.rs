//! Database URLs, runtime failures and the one-line error contract.

use crate::common::{Backend, TestEnv};

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
