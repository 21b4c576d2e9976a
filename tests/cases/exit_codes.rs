//! Each exit status the guide's table lists, from a real run that ends
//! with it: cron and scripts branch on these.

use crate::common::smtp::SmtpServer;
use crate::common::{Backend, NOW, TestEnv, at, hours};

#[test]
fn each_exit_status_comes_from_the_run_the_guide_says() {
    let env = TestEnv::new(Backend::Sqlite).unwrap();
    let smtp = SmtpServer::start();
    env.use_smtp(&smtp.url());
    env.add_user("ok@example.com", "UTC");
    env.add_user("busy@example.com", "UTC");
    env.add_assignment("ok@example.com", "Essay", &at(hours(24)));
    env.add_assignment("busy@example.com", "Essay", &at(hours(24)));
    let send = ["send", "--unit", "hours", "--targets", "24", "--now", NOW];

    // 0: done, everything due sent or deliberately skipped.
    assert_eq!(env.run(&["status"]).code(), 0);
    // 2: bad input, nothing written.
    assert_eq!(env.run(&["user", "add", "--email", "not an email"]).code(), 2);
    assert_eq!(env.run(&["prune", "--older-than", "1m"]).code(), 2);
    // 3: some sends failed (to be retried): the run went on.
    smtp.reply_to_rcpt("busy@", "451 4.2.1 mailbox busy");
    let partly = env.run(&send);
    assert_eq!(partly.code(), 3, "{}", partly.describe());
    assert_eq!(smtp.received().len(), 1);
    // 130 and 143: a sending run stopped by Ctrl-C or SIGTERM with work left.
    smtp.clear_rules();
    smtp.delay_data(std::time::Duration::from_millis(300));
    env.seed_assignments(20, &at(hours(24)));
    for (signal, code, name) in [("-INT", 130, "Ctrl-C (SIGINT)"), ("-TERM", 143, "SIGTERM")] {
        let child = env
            .command()
            .args(["-q", "send", "--unit", "hours", "--targets", "24", "--now", NOW])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let before = smtp.received().len();
        while smtp.received().len() < before + 2 {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(
            std::process::Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status()
                .unwrap()
                .success()
        );
        let run = crate::common::Run(child.wait_with_output().unwrap());
        assert_eq!(run.code(), code, "{}", run.describe());
        // The whole of stderr is the one line that says why (even under -q).
        let left: String = run
            .stderr()
            .trim_start_matches(&format!("interrupted by {name}: "))
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        let messages = if left == "1" { "message" } else { "messages" };
        assert_eq!(
            run.stderr(),
            format!("interrupted by {name}: {left} {messages} left for the next run; nothing was lost\n"),
            "{}",
            run.describe()
        );
    }
    smtp.delay_data(std::time::Duration::ZERO);
    // 1: could not run: no mail server set, or the database unreachable.
    env.set_var("SMTP_URL", "");
    assert_eq!(env.run(&send).code(), 1);
    env.set_var("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none");
    assert_eq!(env.run(&["status"]).code(), 1);
    // 75 (EX_TEMPFAIL): `bounces -` could not record a report; the mail server keeps it and tries again.
    env.set_var("REMINDERS_SECRET", "0123456789abcdef0123456789abcdef");
    let run = env.run_with_stdin(&["bounces", "-"], "From: a@b.example\nSubject: x\n\nhello\n");
    assert_eq!(run.code(), 75, "{}", run.describe());
}
