//! Overlapping runs and killed runs: every reminder goes out once.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use crate::common::smtp::SmtpServer;
use crate::common::{Backend, NOW, TestEnv, at, hours, minutes, on_both_backends};

on_both_backends! {
    fn overlapping_runs_send_each_reminder_exactly_once(env: &TestEnv) {
        // The two scenarios: ten runs on one PostgreSQL with 300 due
        // assignments, four runs on one SQLite file with 100.
        let (runs, assignments) = match env.backend {
            Backend::Postgres => (10, 300),
            Backend::Sqlite => (4, 100),
        };
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        env.seed_assignments(assignments, &at(hours(24)));
        let children: Vec<_> = (0..runs)
            .map(|_| {
                env.command()
                    .args(["send", "--unit", "hours", "--targets", "24,2", "--now", NOW, "--batch-size", "20"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let output = child.wait_with_output().unwrap();
            assert!(
                output.status.success(),
                "a run failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let per_subject = smtp.count_by_subject();
        assert_eq!(smtp.received().len(), assignments);
        assert_eq!(per_subject.len(), assignments, "one message per assignment");
        assert!(per_subject.values().all(|&n| n == 1));
        assert_eq!(env.count("SELECT count(*) AS n FROM reminders WHERE status = 'sent'"), assignments as i64);
        assert_eq!(env.count("SELECT count(*) AS n FROM send_logs WHERE status = 'delivered'"), assignments as i64);
    }

    fn a_killed_run_loses_nothing_and_repeats_only_what_was_in_flight(env: &TestEnv) {
        const CONNECTIONS: usize = 2;
        let smtp = SmtpServer::start();
        // 200 ms a message per connection: deliveries land far apart compared with
        // the few-millisecond group commit, even on a loaded machine.
        smtp.delay_data(Duration::from_millis(200));
        env.use_smtp(&smtp.url());
        env.seed_assignments(30, &at(hours(24)));
        let mut child = env
            .command()
            .args(["send", "--unit", "hours", "--targets", "24", "--now", NOW, "--connections", "2"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Let it deliver some, then kill -9 in the middle.
        while smtp.received().len() < 6 {
            std::thread::sleep(Duration::from_millis(10));
        }
        // Kill half-way through the next pair of messages, well after the group
        // commit of the last ones: then exactly the messages in flight are unrecorded.
        std::thread::sleep(Duration::from_millis(100));
        child.kill().unwrap();
        child.wait().unwrap();
        // Messages already handed to the server finish arriving.
        std::thread::sleep(Duration::from_millis(300));
        let before = smtp.received().len();
        let recorded = env.count("SELECT count(*) AS n FROM reminders WHERE status = 'sent'") as usize;
        assert!(before < 30, "the run finished before the kill; slow the server down");
        let unrecorded = before - recorded;
        // In flight: at most one message per connection.
        assert!(unrecorded <= CONNECTIONS, "{unrecorded} deliveries were not recorded");
        assert!(
            env.count("SELECT count(*) AS n FROM reminders WHERE claimed_until IS NOT NULL") > 0,
            "the killed run held claims"
        );

        // Within the lease, another run leaves the claimed rows alone...
        smtp.delay_data(Duration::ZERO);
        let early = env.run(&["send", "--unit", "hours", "--targets", "24", "--now", &at(minutes(1))]);
        assert_eq!(early.code(), 0, "{}", early.describe());
        let claimed_left = env.count("SELECT count(*) AS n FROM reminders WHERE status = 'pending'");
        assert!(claimed_left > 0);
        // ...and after it, delivers every one of them.
        let later = env.run(&["send", "--unit", "hours", "--targets", "24", "--now", &at(minutes(6))]);
        assert_eq!(later.code(), 0, "{}", later.describe());
        assert_eq!(env.count("SELECT count(*) AS n FROM reminders WHERE status = 'sent'"), 30);

        let per_subject = smtp.count_by_subject();
        assert_eq!(per_subject.len(), 30, "every assignment was reminded");
        let duplicates = smtp.received().len() - 30;
        assert!(duplicates <= unrecorded, "{duplicates} duplicates, but only {unrecorded} were in flight");
        // A resent message carries the Message-ID of the first copy.
        let mut ids_by_subject: HashMap<String, Vec<String>> = HashMap::new();
        for message in smtp.received() {
            ids_by_subject.entry(message.header("Subject").unwrap()).or_default().push(message.header("Message-ID").unwrap());
        }
        for ids in ids_by_subject.values() {
            assert!(ids.iter().all(|id| id == &ids[0]), "a resend changed its Message-ID: {ids:?}");
        }
    }
}
