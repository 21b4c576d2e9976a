//! Through PgBouncer in transaction mode (`TEST_PGBOUNCER_URL`, started by
//! `.ci/pgbouncer.sh`): with `?prepared_statements=false` every command works;
//! without it, the run stops with the one-line hint.

use std::process::Stdio;
use std::time::Duration;

use crate::common::smtp::SmtpServer;
use crate::common::{Backend, NOW, TestEnv, at, hours, minutes};

/// A fresh PostgreSQL database whose runs go through the pooler, with `query`
/// added to their `DATABASE_URL`. The harness's own reads and writes
/// (`env.count`, `env.execute`) still go straight to PostgreSQL.
fn through_pooler(query: &str) -> Option<TestEnv> {
    // These tests are ignored when built without it (build.rs).
    let pooler = std::env::var("TEST_PGBOUNCER_URL")
        .expect("TEST_PGBOUNCER_URL was set when the tests were built, but is not now: rebuild or set it");
    let env = TestEnv::unmigrated(Backend::Postgres)?;
    let direct = url::Url::parse(&env.database_url).unwrap();
    let mut pooled = url::Url::parse(&pooler).expect("TEST_PGBOUNCER_URL is a URL");
    pooled.set_path(direct.path());
    pooled.set_query(Some(query).filter(|query| !query.is_empty()));
    env.set_var("DATABASE_URL", pooled.as_str());
    Some(env)
}

fn send(env: &TestEnv, when: &str) -> crate::common::Run {
    env.run(&[
        "send",
        "--unit",
        "hours",
        "--targets",
        "24",
        "--now",
        when,
        "--max-attempts",
        "1",
    ])
}

#[test]
#[cfg_attr(
    not(reminders_pooler_tests),
    ignore = "needs TEST_DATABASE_URL and TEST_PGBOUNCER_URL"
)]
fn every_command_works_with_the_switch() {
    let Some(env) = through_pooler("prepared_statements=false") else {
        return;
    };
    env.ok(&["migrate"]);
    env.ok(&["migrate"]);

    // A CSV import (COPY through the pooler).
    env.add_user("s@example.com", "UTC");
    env.add_user("gone@example.com", "UTC");
    std::fs::write(
        env.path("assignments.csv"),
        format!(
            "student,title,due\ns@example.com,Essay,{}\ngone@example.com,Lab,{}\n",
            at(hours(24)),
            at(hours(24))
        ),
    )
    .unwrap();
    assert_eq!(env.json(&["assignment", "import", "assignments.csv"])["imported"], 2);

    // Two sends at once: each reminder goes out once.
    let smtp = SmtpServer::start();
    smtp.reply_to_rcpt("gone@", "451 4.3.0 try later");
    env.use_smtp(&smtp.url());
    env.seed_assignments(100, &at(hours(24)));
    let children: Vec<_> = (0..2)
        .map(|_| {
            env.command()
                .args([
                    "send",
                    "--unit",
                    "hours",
                    "--targets",
                    "24",
                    "--now",
                    NOW,
                    "--batch-size",
                    "10",
                ])
                .args(["--max-attempts", "1"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut codes = Vec::new();
    for child in children {
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("prepared statement"), "{stderr}");
        codes.push(output.status.code());
    }
    // Exit 3 from the run that claimed the deferred address (it failed at its
    // one attempt, as it should), 0 from the other.
    codes.sort();
    assert_eq!(codes, [Some(0), Some(3)]);
    assert_eq!(smtp.received().len(), 101);
    assert!(
        smtp.count_by_subject().values().all(|&n| n == 1),
        "one message per assignment"
    );
    assert_eq!(
        env.count("SELECT count(*) AS n FROM reminders WHERE status = 'sent'"),
        101
    );
    assert_eq!(
        env.count("SELECT count(*) AS n FROM reminders WHERE status = 'failed'"),
        1
    );

    // retry, then the requeued reminder goes out.
    smtp.clear_rules();
    assert_eq!(
        env.json(&["retry", "--failed", "--now", &at(minutes(10))])["requeued"],
        1
    );
    let run = send(&env, &at(minutes(11)));
    assert_eq!(run.code(), 0, "{}", run.describe());
    assert_eq!(
        env.count("SELECT count(*) AS n FROM reminders WHERE status = 'sent'"),
        102
    );

    env.in_use_since("2000-01-01T00:00:00Z");
    let run = env.run(&["summary", "--send", "--now", "2030-03-01T16:00:00Z"]);
    assert_eq!(run.code(), 0, "{}", run.describe());
    assert!(env.count("SELECT count(*) AS n FROM daily_summaries WHERE status = 'sent'") > 0);

    let status = env.json(&["status", "--now", &at(minutes(12))]);
    assert_eq!(status["by_status"]["sent"], 102, "{status}");
    let pruned = env.json(&["prune", "--older-than", "1d", "--now", &at(hours(24 * 30))]);
    assert!(pruned["deleted"]["reminders"].as_i64().unwrap() > 0, "{pruned}");
}

#[test]
#[cfg_attr(
    not(reminders_pooler_tests),
    ignore = "needs TEST_DATABASE_URL and TEST_PGBOUNCER_URL"
)]
fn a_killed_run_loses_nothing_with_the_switch() {
    let Some(env) = through_pooler("pgbouncer=true") else {
        return;
    };
    env.ok(&["migrate"]);
    let smtp = SmtpServer::start();
    smtp.delay_data(Duration::from_millis(200));
    env.use_smtp(&smtp.url());
    env.seed_assignments(30, &at(hours(24)));
    let mut child = env
        .command()
        .args([
            "send",
            "--unit",
            "hours",
            "--targets",
            "24",
            "--now",
            NOW,
            "--connections",
            "2",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    while smtp.received().len() < 6 {
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(smtp.received().len() < 30, "the run finished before the kill");

    // After the killed run's lease, a rerun delivers the rest.
    smtp.delay_data(Duration::ZERO);
    let rerun = send(&env, &at(minutes(6)));
    assert_eq!(rerun.code(), 0, "{}", rerun.describe());
    assert_eq!(
        env.count("SELECT count(*) AS n FROM reminders WHERE status = 'sent'"),
        30
    );
    assert_eq!(smtp.count_by_subject().len(), 30, "every assignment was reminded");
    assert!(smtp.received().len() <= 32, "at most one resend per connection");
}

#[test]
#[cfg_attr(
    not(reminders_pooler_tests),
    ignore = "needs TEST_DATABASE_URL and TEST_PGBOUNCER_URL"
)]
fn without_the_switch_the_error_says_what_to_do() {
    let Some(env) = through_pooler("") else {
        return;
    };
    // The first run's statements stay prepared on the pooled server
    // connection; the next run, on the same one, names its statements alike.
    env.ok(&["migrate"]);
    let run = env.fails(&["status"], 1, "add `?prepared_statements=false` to the database URL");
    assert!(
        run.stderr().contains("pooler in transaction mode"),
        "{}",
        run.describe()
    );
}
