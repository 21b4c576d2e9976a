//! The shared harness: a fresh database per test (a SQLite file, or a fresh
//! PostgreSQL database when `TEST_DATABASE_URL` is set), a scrubbed environment,
//! and helpers that run the real binary and read the database afterwards.

#![allow(dead_code)]

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::Output;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};

pub mod oauth;
pub mod postfix;
pub mod proxy;
pub mod smtp;
pub mod tls;

/// Runs each scenario once on SQLite and once on PostgreSQL. The PostgreSQL
/// run is skipped, with a note on the terminal, when `TEST_DATABASE_URL` is unset.
macro_rules! on_both_backends {
    ($(fn $name:ident($env:ident: $env_type:ty) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                fn scenario($env: $env_type) $body

                #[test]
                fn sqlite() {
                    scenario(&$crate::common::TestEnv::new($crate::common::Backend::Sqlite).unwrap());
                }

                #[test]
                #[cfg_attr(not(reminders_postgres_tests), ignore = "needs TEST_DATABASE_URL")]
                fn postgres() {
                    scenario(&$crate::common::TestEnv::new($crate::common::Backend::Postgres).unwrap());
                }
            }
        )*
    };
}
pub(crate) use on_both_backends;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// One test's world: a temporary directory (the working directory of every
/// run) and a database of its own.
pub struct TestEnv {
    pub backend: Backend,
    pub dir: tempfile::TempDir,
    pub database_url: String,
    postgres: Option<PostgresDatabase>,
    /// Extra environment for every run, such as SMTP_URL.
    vars: RefCell<Vec<(String, String)>>,
}

struct PostgresDatabase {
    admin_url: String,
    name: String,
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        if let Ok(mut conn) = PgConnection::establish(&self.admin_url) {
            let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name));
        }
    }
}

impl TestEnv {
    /// A migrated database. `None` for PostgreSQL when `TEST_DATABASE_URL` is unset.
    pub fn new(backend: Backend) -> Option<TestEnv> {
        let env = TestEnv::unmigrated(backend)?;
        env.ok(&["migrate"]);
        Some(env)
    }

    /// A database that exists (PostgreSQL) or not at all (SQLite), with no schema.
    pub fn unmigrated(backend: Backend) -> Option<TestEnv> {
        let dir = tempfile::tempdir().expect("temporary directory");
        match backend {
            Backend::Sqlite => {
                let database_url = dir.path().join("test.db").display().to_string();
                Some(TestEnv {
                    backend,
                    dir,
                    database_url,
                    postgres: None,
                    vars: RefCell::default(),
                })
            }
            Backend::Postgres => {
                // The tests that need it are ignored when built without it
                // (build.rs); built with it, it must be there when they run.
                let admin_url = std::env::var("TEST_DATABASE_URL")
                    .expect("TEST_DATABASE_URL was set when the tests were built, but is not now: rebuild or set it");
                let name = format!("reminders_test_{}", uuid::Uuid::new_v4().simple());
                let mut admin = PgConnection::establish(&admin_url)
                    .unwrap_or_else(|error| panic!("TEST_DATABASE_URL is set but unreachable: {error}"));
                admin
                    .batch_execute(&format!("CREATE DATABASE \"{name}\""))
                    .expect("create test database");
                let mut url = url::Url::parse(&admin_url).expect("TEST_DATABASE_URL is a URL");
                url.set_path(&name);
                Some(TestEnv {
                    backend,
                    dir,
                    database_url: url.to_string(),
                    postgres: Some(PostgresDatabase { admin_url, name }),
                    vars: RefCell::default(),
                })
            }
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The binary, with a scrubbed environment, running in the test's directory.
    pub fn command(&self) -> std::process::Command {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_reminders"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", &self.database_url)
            .current_dir(self.dir.path());
        for (name, value) in self.vars.borrow().iter() {
            command.env(name, value);
        }
        command
    }

    /// `send` for the 24-hour reminder at `when`, with JSON on stdout, plus `extra`.
    pub fn send_24h(&self, when: &str, extra: &[&str]) -> Run {
        let args = [
            "send",
            "--unit",
            "hours",
            "--targets",
            "24",
            "--now",
            when,
            "--format",
            "json",
        ];
        self.run(&[&args[..], extra].concat())
    }

    /// Sets an environment variable for every later run.
    pub fn set_var(&self, name: &str, value: &str) {
        let mut vars = self.vars.borrow_mut();
        vars.retain(|(existing, _)| existing != name);
        vars.push((name.to_string(), value.to_string()));
    }

    /// Points later runs at a mail server, with a fixed sender.
    pub fn use_smtp(&self, url: &str) {
        self.set_var("SMTP_URL", url);
        self.set_var("MAIL_FROM", "Reminders <noreply@school.example>");
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run(self.command().args(args).output().expect("run reminders"))
    }

    /// Runs under GNU time (`/usr/bin/time`, installed by `scripts/test.sh`); also
    /// returns the run's peak resident memory in kilobytes.
    pub fn run_measured(&self, args: &[&str]) -> (Run, u64) {
        let binary = self.command();
        let report = self.path("time.out");
        let mut command = std::process::Command::new("/usr/bin/time");
        command
            .env_clear()
            .arg("-f")
            .arg("%M")
            .arg("-o")
            .arg(&report)
            .arg(binary.get_program())
            .args(args);
        for (name, value) in binary.get_envs() {
            if let Some(value) = value {
                command.env(name, value);
            }
        }
        command.current_dir(self.dir.path());
        let run = Run(command.output().expect("run reminders under /usr/bin/time"));
        let text = std::fs::read_to_string(&report).expect("GNU time's report");
        let peak = text
            .lines()
            .last()
            .and_then(|line| line.trim().parse().ok())
            .expect("a peak RSS");
        (run, peak)
    }

    /// Runs with `input` on stdin.
    pub fn run_with_stdin(&self, args: &[&str], input: &str) -> Run {
        use std::io::Write;
        let mut child = self
            .command()
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run reminders");
        // The binary may stop reading early (a bad setting); that is its answer.
        let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
        Run(child.wait_with_output().expect("run reminders"))
    }

    /// Runs and asserts exit 0; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let run = self.run(args);
        assert_eq!(
            run.code(),
            0,
            "`reminders {}` failed:\n{}",
            args.join(" "),
            run.describe()
        );
        // A command that succeeds says nothing on stderr, unless a test asks
        // for what it says there (with `run`).
        assert_eq!(
            run.stderr(),
            "",
            "`reminders {}` wrote to stderr:\n{}",
            args.join(" "),
            run.describe()
        );
        run.stdout()
    }

    /// Runs with `--format json`, asserts exit 0, and parses stdout.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut args = args.to_vec();
        args.extend(["--format", "json"]);
        let stdout = self.ok(&args);
        serde_json::from_str(&stdout).unwrap_or_else(|error| panic!("not JSON ({error}): {stdout}"))
    }

    /// Runs with `--format json`, asserts the exit status, and parses stdout.
    pub fn json_status(&self, args: &[&str], code: i32) -> serde_json::Value {
        let mut args = args.to_vec();
        args.extend(["--format", "json"]);
        let run = self.run(&args);
        assert_eq!(run.code(), code, "{}", run.describe());
        serde_json::from_str(&run.stdout()).unwrap_or_else(|error| panic!("not JSON ({error}): {}", run.describe()))
    }

    /// Runs and asserts the exit status and that stderr holds `needle`.
    pub fn fails(&self, args: &[&str], code: i32, needle: &str) -> Run {
        let run = self.run(args);
        assert_eq!(run.code(), code, "`reminders {}`:\n{}", args.join(" "), run.describe());
        assert!(
            run.stderr().contains(needle),
            "stderr lacks `{needle}`:\n{}",
            run.describe()
        );
        assert_eq!(
            run.stderr().trim().lines().count(),
            1,
            "the error is one line:\n{}",
            run.describe()
        );
        run
    }

    /// Adds a student; returns the id.
    pub fn add_user(&self, email: &str, timezone: &str) -> String {
        let user = self.json(&["user", "add", "--email", email, "--timezone", timezone]);
        user["id"].as_str().unwrap().to_string()
    }

    /// Adds an assignment (as if in 2000, so that no due time is in the
    /// past); returns the id.
    pub fn add_assignment(&self, student: &str, title: &str, due: &str) -> String {
        let assignment = self.json(&[
            "assignment",
            "add",
            "--student",
            student,
            "--title",
            title,
            "--due",
            due,
            "--now",
            "2000-01-01T00:00:00Z",
        ]);
        assignment["id"].as_str().unwrap().to_string()
    }

    /// Makes the database one in use since `at` (RFC 3339): `summary --send`
    /// running since then, and every student added by then. Without it, the
    /// go-live rule skips the summaries whose hour passed well before the
    /// first run or before the student was added.
    pub fn in_use_since(&self, at: &str) {
        let at = chrono::DateTime::parse_from_rfc3339(at)
            .unwrap()
            .with_timezone(&chrono::Utc);
        let at = at.format("%Y-%m-%dT%H:%M:%S%.6fZ");
        self.execute(&format!(
            "INSERT INTO milestones (name, at) VALUES ('summaries_began', '{at}')"
        ));
        self.execute(&format!("UPDATE users SET created_at = '{at}'"));
    }

    /// Runs SQL straight against the test database (set-up and inspection).
    pub fn execute(&self, sql: &str) {
        self.try_execute(sql).unwrap_or_else(|error| panic!("{sql}: {error}"));
    }

    pub fn try_execute(&self, sql: &str) -> Result<(), diesel::result::Error> {
        match self.backend {
            Backend::Sqlite => SqliteConnection::establish(&self.database_url)
                .unwrap()
                .batch_execute(sql),
            Backend::Postgres => PgConnection::establish(&self.database_url).unwrap().batch_execute(sql),
        }
    }

    /// The single text column `v` of every row of `sql`. Write `CAST(x AS TEXT) AS v`,
    /// which both backends read the same way.
    pub fn texts(&self, sql: &str) -> Vec<Option<String>> {
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = Nullable<Text>)]
            v: Option<String>,
        }
        let rows: Vec<Row> = match self.backend {
            Backend::Sqlite => {
                diesel::sql_query(sql).load(&mut SqliteConnection::establish(&self.database_url).unwrap())
            }
            Backend::Postgres => diesel::sql_query(sql).load(&mut PgConnection::establish(&self.database_url).unwrap()),
        }
        .unwrap_or_else(|error| panic!("{sql}: {error}"));
        rows.into_iter().map(|row| row.v).collect()
    }

    pub fn text(&self, sql: &str) -> Option<String> {
        let rows = self.texts(sql);
        assert_eq!(rows.len(), 1, "{sql} returned {} rows", rows.len());
        rows.into_iter().next().unwrap()
    }

    /// Delivered messages per (assignment title, reminder type), from the send log.
    pub fn delivered(&self) -> std::collections::BTreeMap<(String, String), i64> {
        let mut counts = std::collections::BTreeMap::new();
        let rows = self.texts(
            "SELECT CAST(a.title || ' ' || r.reminder_type AS TEXT) AS v FROM send_logs l \
             JOIN reminders r ON r.id = l.reminder_id JOIN assignments a ON a.id = r.assignment_id \
             WHERE l.status = 'delivered'",
        );
        for row in rows.into_iter().flatten() {
            let (title, kind) = row.rsplit_once(' ').unwrap();
            *counts.entry((title.to_string(), kind.to_string())).or_insert(0) += 1;
        }
        counts
    }

    /// `SELECT count(*) AS n …`
    pub fn count(&self, sql: &str) -> i64 {
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let row: Row = match self.backend {
            Backend::Sqlite => {
                diesel::sql_query(sql).get_result(&mut SqliteConnection::establish(&self.database_url).unwrap())
            }
            Backend::Postgres => {
                diesel::sql_query(sql).get_result(&mut PgConnection::establish(&self.database_url).unwrap())
            }
        }
        .unwrap_or_else(|error| panic!("{sql}: {error}"));
        row.n
    }
}

/// A finished run of the binary.
pub struct Run(pub Output);

impl Run {
    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }

    /// Stdout as JSON (a run with `--format json`).
    pub fn report(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout()).unwrap_or_else(|_| panic!("not JSON:\n{}", self.describe()))
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }

    pub fn describe(&self) -> String {
        format!(
            "status: {:?}\nstdout:\n{}\nstderr:\n{}",
            self.0.status,
            self.stdout(),
            self.stderr()
        )
    }
}

pub fn exists(path: &Path) -> bool {
    path.exists()
}

/// The fixed "now" of the sending tests.
pub const NOW: &str = "2030-03-01T12:00:00Z";

/// `NOW` moved by `offset`, as RFC 3339.
pub fn at(offset: chrono::Duration) -> String {
    let now: chrono::DateTime<chrono::Utc> = NOW.parse().unwrap();
    (now + offset).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub fn minutes(n: i64) -> chrono::Duration {
    chrono::Duration::minutes(n)
}

pub fn hours(n: i64) -> chrono::Duration {
    chrono::Duration::hours(n)
}

impl TestEnv {
    /// `count` assignments due `due` (RFC 3339), spread over one student per
    /// ten assignments, inserted straight into the database for speed.
    pub fn seed_assignments(&self, count: usize, due: &str) {
        let due = chrono::DateTime::parse_from_rfc3339(due)
            .unwrap()
            .with_timezone(&chrono::Utc);
        let due = due.format("%Y-%m-%dT%H:%M:%S%.6fZ");
        let mut users = Vec::new();
        let mut assignments = Vec::new();
        for i in 0..count {
            if i % 10 == 0 {
                users.push((uuid::Uuid::new_v4(), format!("student{}@example.com", i / 10)));
            }
            let student = users.last().unwrap().0;
            assignments.push(format!(
                "('{}', 'Assignment {i}', '{student}', '{due}')",
                uuid::Uuid::new_v4()
            ));
        }
        let users: Vec<String> = users
            .iter()
            .map(|(id, email)| format!("('{id}', '{email}', 'UTC')"))
            .collect();
        self.execute(&format!(
            "INSERT INTO users (id, email, timezone) VALUES {}",
            users.join(", ")
        ));
        self.execute(&format!(
            "INSERT INTO assignments (id, title, student_id, due_at) VALUES {}",
            assignments.join(", ")
        ));
    }
}
