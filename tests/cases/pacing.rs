//! Pacing to a relay's limits (issue 32): `--rate N/min` spaces messages
//! evenly, and `--daily-cap N` holds a day to N messages across runs and
//! processes, the nearest deadlines first, the rest the next day.

use std::time::Duration;

use crate::common::smtp::SmtpServer;
use crate::common::{Backend, NOW, TestEnv, at, hours, minutes, on_both_backends};

/// 90 messages at 30 a minute: 89 gaps of 2 seconds.
const PACED: usize = 90;
const EXPECTED_SPAN: Duration = Duration::from_secs(178);

/// One backend's paced run, started and left running.
fn start_paced_run(backend: Backend) -> Option<(TestEnv, SmtpServer, std::process::Child)> {
    let env = TestEnv::new(backend)?;
    let smtp = SmtpServer::start();
    env.use_smtp(&smtp.url());
    env.seed_assignments(PACED, &at(hours(24)));
    let child = env
        .command()
        .args([
            "send",
            "--unit",
            "hours",
            "--targets",
            "24",
            "--now",
            NOW,
            "--rate",
            "30/min",
        ])
        .args(["--connections", "4", "--format", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    Some((env, smtp, child))
}

/// The span of one paced run is about three minutes, so both backends run
/// at once, in one test: the pace is the sending threads', not the
/// database's, and each backend gets its own server and clock.
#[test]
fn rate_per_minute_spaces_the_messages_evenly() {
    let runs: Vec<_> = [Backend::Sqlite, Backend::Postgres]
        .into_iter()
        .filter_map(start_paced_run)
        .collect();
    for (env, smtp, child) in runs {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let mut times: Vec<std::time::Instant> = smtp.received().iter().map(|received| received.at).collect();
        assert_eq!(times.len(), PACED);
        times.sort();
        let span = times[PACED - 1] - times[0];
        let (low, high) = (EXPECTED_SPAN.mul_f64(0.9), EXPECTED_SPAN.mul_f64(1.1));
        assert!(
            low <= span && span <= high,
            "{:?}: 90 messages at 30/min took {span:?} first to last, not 178 s ± 10%",
            env.backend
        );
        // Evenly: no minute-long window holds more than 31 (30, and one at
        // each edge), where a first burst would have put 60 in the first.
        let most_in_a_minute = times
            .iter()
            .map(|start| {
                times
                    .iter()
                    .filter(|t| **t >= *start && **t - *start < Duration::from_secs(60))
                    .count()
            })
            .max()
            .unwrap();
        assert!(most_in_a_minute <= 31, "{most_in_a_minute} messages within one minute");
    }
}

/// `send` for the 48-hour window at `now`, with a daily cap of 50; the
/// delivery window is long, so held messages still go the next day.
fn capped_send(env: &TestEnv, now: &str) -> std::process::Command {
    let mut command = env.command();
    command
        .args(["send", "--unit", "hours", "--targets", "48", "--tolerance", "1440"])
        .args([
            "--delivery-window",
            "3d",
            "--daily-cap",
            "50",
            "--now",
            now,
            "--format",
            "json",
        ]);
    command
}

fn report(output: std::process::Output) -> serde_json::Value {
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

on_both_backends! {
    fn daily_cap_holds_the_day_to_n_across_runs_and_processes(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        // 80 students, one assignment each, due from 30 to 69 hours ahead in
        // half-hour steps: all in the window of a 48-hour reminder.
        for i in 0..80 {
            let student = format!("s{i:02}@example.com");
            env.add_user(&student, "UTC");
            env.add_assignment(&student, &format!("Work {i:02}"), &at(hours(30) + minutes(30 * i)));
        }
        // Two processes at once, then a third run later the same UTC day.
        let piped = |mut command: std::process::Command| {
            command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap()
        };
        let together: Vec<_> = (0..2).map(|_| piped(capped_send(env, NOW))).collect();
        let sent_together: u64 = together
            .into_iter()
            .map(|child| report(child.wait_with_output().unwrap())["sent"].as_u64().unwrap())
            .sum();
        assert_eq!(sent_together, 50);
        let later = report(capped_send(env, &at(hours(8))).output().unwrap());
        assert_eq!(later["sent"], 0);
        assert_eq!(later["held_back"], 30, "{later}");
        assert_eq!(smtp.received().len(), 50);
        // The nearest deadlines went first.
        let sent: Vec<String> = env
            .texts(
                "SELECT a.title AS v FROM reminders r JOIN assignments a ON a.id = r.assignment_id \
                 WHERE r.status = 'sent' ORDER BY a.title",
            )
            .into_iter()
            .flatten()
            .collect();
        let nearest: Vec<String> = (0..50).map(|i| format!("Work {i:02}")).collect();
        assert_eq!(sent, nearest);
        // Held, not attempted: no send log, no attempt counted.
        assert_eq!(env.count("SELECT count(*) AS n FROM reminders WHERE status = 'pending' AND attempts = 0"), 30);
        assert_eq!(env.count("SELECT count(*) AS n FROM send_logs"), 50);
        // The next UTC day: the other 30.
        let next_day = report(capped_send(env, &at(hours(13))).output().unwrap());
        assert_eq!(next_day["sent"], 30, "{next_day}");
        assert_eq!(next_day["held_back"], 0);
        assert_eq!(smtp.received().len(), 80);
        assert_eq!(env.count("SELECT count(*) AS n FROM send_logs"), 80);
    }
}

#[test]
fn a_rate_that_is_not_one_exits_2_with_one_line() {
    let env = TestEnv::new(Backend::Sqlite).unwrap();
    for rate in ["30/day", "0/min", "fast"] {
        let run = env.run(&["send", "--unit", "hours", "--targets", "24", "--rate", rate]);
        assert_eq!(run.code(), 2, "{}", run.describe());
        assert!(run.stderr().contains("is not a rate"), "{}", run.describe());
    }
}
