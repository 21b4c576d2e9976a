//! After the deadline: overdue steps (`send --overdue`), each sent once per
//! assignment, only for work not completed, re-armed by a moved deadline, and
//! never twice however runs overlap or die.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration as Wait;

use chrono::{DateTime, Duration, SecondsFormat, Utc};

use crate::common::smtp::SmtpServer;
use crate::common::{TestEnv, on_both_backends};

/// The deadline every assignment here starts with.
const DUE: &str = "2025-06-10T12:00:00Z";

fn plus(at: &str, minutes: i64) -> String {
    let at: DateTime<Utc> = at.parse().unwrap();
    (at + Duration::minutes(minutes)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `send` with the reminders before the deadline and three overdue steps.
fn send(env: &TestEnv, now: &str) {
    let run = env.run(&[
        "send",
        "--unit",
        "hours",
        "--targets",
        "24,2",
        "--overdue",
        "2,24,72",
        "--now",
        now,
    ]);
    assert_eq!(run.code(), 0, "{}", run.describe());
}

/// A run every 5 minutes through the hour around `center`.
fn sweep_around(env: &TestEnv, center: &str) {
    for step in -7..=7 {
        send(env, &plus(center, step * 5));
    }
}

on_both_backends! {
    fn each_overdue_step_goes_once_and_not_for_completed_work(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        env.add_user("late@x.test", "UTC");
        env.add_assignment("late@x.test", "Late", DUE);
        let finished = env.add_assignment("late@x.test", "Finished", DUE);
        let moved = env.add_assignment("late@x.test", "Moved", DUE);
        // Late work accepted for 30 hours: the 72-hour step never comes.
        let cutoff = plus(DUE, 30 * 60);
        let args = ["assignment", "add", "--student", "late@x.test", "--title", "Cut", "--due", DUE, "--cutoff", &cutoff];
        env.ok(&[&args[..], &["--now", &plus(DUE, -60)]].concat());

        sweep_around(env, &plus(DUE, 2 * 60));
        // Handed in after the first step: no more steps for it.
        env.ok(&["assignment", "complete", &finished]);
        // Moved later after the first step: the 2-hour step is due again, 2 hours after the new deadline.
        let new_due = plus(DUE, 10 * 60);
        env.ok(&["assignment", "edit", &moved, "--due", &new_due, "--now", &plus(DUE, 3 * 60)]);
        sweep_around(env, &plus(&new_due, 2 * 60));
        sweep_around(env, &plus(DUE, 24 * 60));
        sweep_around(env, &plus(DUE, 72 * 60));

        // The moved deadline's steps count from it: its 2-hour step went once for
        // each deadline, and its later steps fall after the sweeps.
        let expected: BTreeMap<(String, String), i64> = [
            ("Late", "overdue-2h", 1),
            ("Late", "overdue-24h", 1),
            ("Late", "overdue-72h", 1),
            ("Finished", "overdue-2h", 1),
            ("Cut", "overdue-2h", 1),
            ("Cut", "overdue-24h", 1),
            ("Moved", "overdue-2h", 2),
        ]
        .into_iter()
        .map(|(title, kind, count)| ((title.to_string(), kind.to_string()), count))
        .collect();
        assert_eq!(env.delivered(), expected);
        assert_eq!(smtp.received().len(), 8);
        // The notice says how long ago the work was due, in the student's words.
        let notice = smtp.received().into_iter().find(|m| m.header("Subject").unwrap().contains("Late")).unwrap();
        assert!(notice.header("Subject").unwrap().starts_with("Overdue: Late was due"), "{:?}", notice.header("Subject"));
        let with_cutoff = smtp.received().into_iter().find(|m| m.header("Subject").unwrap().contains("Cut")).unwrap();
        assert!(with_cutoff.body().contains("It can still be handed in until Wed 11 Jun 2025 18:00 UTC."), "{}", with_cutoff.body());
        // The first run whose window holds the deadline sends it: 1h30 after it, at the window's edge.
        assert!(notice.body().contains("was due Tue 10 Jun 2025 12:00 UTC, 1 hour 30 minutes ago"), "{}", notice.body());
        assert_eq!(env.count("SELECT count(*) AS n FROM reminders WHERE status NOT IN ('sent', 'skipped')"), 0);
    }

    fn due_and_dry_run_show_the_steps_and_a_digest_carries_them(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        env.add_user("late@x.test", "UTC");
        env.add_assignment("late@x.test", "Late", DUE);
        env.add_assignment("late@x.test", "Soon", &plus(DUE, 26 * 60));
        let now = plus(DUE, 2 * 60);
        let due = env.json(&["due", "--unit", "hours", "--targets", "24", "--overdue", "2", "--now", &now]);
        let types: Vec<&str> = due.as_array().unwrap().iter().map(|item| item["reminder_type"].as_str().unwrap()).collect();
        assert_eq!(types, ["24h", "overdue-2h"], "{due}");
        let dry = env.json(&["send", "--unit", "hours", "--targets", "24", "--overdue", "2", "--dry-run", "--now", &now]);
        assert_eq!(dry["sent"], 2, "{dry}");
        assert_eq!(env.count("SELECT count(*) AS n FROM reminders"), 0, "a dry run writes nothing");
        // REMINDERS_OVERDUE sets the steps as the flag does; --digest puts both in one message.
        env.set_var("REMINDERS_OVERDUE", "2");
        let run = env.run(&["send", "--unit", "hours", "--targets", "24", "--digest", "--now", &now]);
        assert_eq!(run.code(), 0, "{}", run.describe());
        let received = smtp.received();
        assert_eq!(received.len(), 1);
        let body = received[0].body();
        assert!(body.contains("\"Late\": was due") && body.contains("2 hours ago"), "{body}");
        assert!(body.contains("\"Soon\": due") && body.contains("from now"), "{body}");
        assert_eq!(env.count("SELECT count(*) AS n FROM reminders WHERE status = 'sent'"), 2);
    }

    fn overlapping_and_killed_runs_send_no_step_twice(env: &TestEnv) {
        let smtp = SmtpServer::start();
        smtp.delay_data(Wait::from_millis(100));
        env.use_smtp(&smtp.url());
        env.seed_assignments(20, DUE);
        let now = plus(DUE, 24 * 60);
        let args = ["send", "--unit", "hours", "--targets", "2", "--overdue", "24", "--now", &now, "--connections", "2"];
        let mut killed = env.command().args(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        while smtp.received().len() < 4 {
            std::thread::sleep(Wait::from_millis(10));
        }
        killed.kill().unwrap();
        killed.wait().unwrap();
        std::thread::sleep(Wait::from_millis(300));
        let in_flight = smtp.received().len() as i64 - env.count("SELECT count(*) AS n FROM reminders WHERE status = 'sent'");
        // Two runs side by side once the dead run's lease is over.
        smtp.delay_data(Wait::ZERO);
        let later = plus(&now, 6);
        let overlapping: Vec<_> = (0..2)
            .map(|_| {
                let args = ["send", "--unit", "hours", "--targets", "2", "--overdue", "24", "--now", &later];
                env.command().args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
            })
            .collect();
        for run in overlapping {
            let output = run.wait_with_output().unwrap();
            assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        }
        assert_eq!(env.count("SELECT count(*) AS n FROM reminders WHERE reminder_type = 'overdue-24h' AND status = 'sent'"), 20);
        let per_subject = smtp.count_by_subject();
        assert_eq!(per_subject.len(), 20, "every assignment got its notice");
        let duplicates = smtp.received().len() as i64 - 20;
        assert!(duplicates <= in_flight, "{duplicates} duplicates, but only {in_flight} were in flight when killed");
    }
}
