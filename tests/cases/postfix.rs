//! A real Postfix relays the reminders, delivers known students, and returns
//! real DSNs from bounce(8) for an unknown one; `reminders bounces` reads
//! them from a Maildir, or gets each through the pipe(8) transport that the
//! guide gives (docs/guide.md), run as written (issue 18).

use std::time::Duration;

use crate::common::postfix::{Bounces, Postfix};
use crate::common::{Backend, TestEnv, on_both_backends};

const SECRET: &str = "0123456789abcdef0123456789abcdef-postfix-test";

fn send_through(env: &TestEnv, postfix: &Postfix) {
    env.set_var("SMTP_URL", &postfix.smtp_url());
    env.set_var("MAIL_FROM", "Reminders <noreply@school.example>");
    env.set_var("REMINDERS_SECRET", SECRET);
    env.set_var("REMINDERS_BOUNCE_ADDRESS", "bounces@school.example");
    for student in ["known@students.example", "ghost@students.example"] {
        env.add_user(student, "UTC");
        env.add_assignment(student, "Essay", "2030-03-02T12:00:00Z");
    }
    let sent = env.send_24h("2030-03-01T12:00:00Z", &[]);
    assert_eq!(sent.code(), 0, "{}", sent.describe());
    assert_eq!(sent.report()["sent"], 2, "the relay accepts both: {}", sent.describe());
}

/// The pipe(8) lines of the guide's "Bounces and unsubscribes" section:
/// (master.cf, main.cf, transport map).
fn guide_pipe_lines() -> (String, String, String) {
    let guide = include_str!("../../docs/guide.md");
    let start = guide.find("# master.cf\n").expect("the guide's master.cf lines");
    let block = &guide[start..guide[start..].find("```").map(|end| start + end).unwrap()];
    let part = |from: &str, to: Option<&str>| {
        let begin = block.find(from).unwrap() + from.len();
        let rest = &block[begin..];
        let rest = &rest[rest.find('\n').unwrap() + 1..];
        match to {
            Some(to) => rest[..rest.find(to).unwrap()].to_string(),
            None => rest.to_string(),
        }
    };
    (
        part("# master.cf", Some("# main.cf")),
        part("# main.cf", Some("# /etc/postfix/transport")),
        part("# /etc/postfix/transport", None),
    )
}

on_both_backends! {
    fn real_dsns_from_a_maildir_are_recorded(env: &TestEnv) {
        let postfix = Postfix::start(&["known@students.example"], Bounces::Maildir);
        send_through(env, &postfix);
        postfix.wait_until("a DSN in the bounce Maildir", Duration::from_secs(20), || {
            !postfix.new_messages("bounces").is_empty()
        });
        assert_eq!(postfix.new_messages("known@students.example").len(), 1);
        let dsn = std::fs::read_to_string(&postfix.new_messages("bounces")[0]).unwrap();
        assert!(dsn.contains("report-type=delivery-status") && dsn.contains("5.1.1"), "{dsn}");
        let run = env.run(&["bounces", postfix.maildir("bounces").to_str().unwrap(), "--format", "json"]);
        assert_eq!(run.code(), 0, "{}", run.describe());
        assert_eq!(run.report()["hard"], 1, "{}", run.describe());
        assert_eq!(
            env.count("SELECT count(*) AS n FROM send_logs WHERE status = 'bounced' AND to_email = 'ghost@students.example'"),
            1
        );
        assert_eq!(env.count("SELECT count(*) AS n FROM send_logs WHERE status = 'bounced'"), 1);
    }
}

/// Through the pipe, as the guide writes it: the report reaches the tool on
/// stdin, as `nobody`, with the original recipient, and Postfix logs it as
/// delivered. PostgreSQL, which `nobody` reaches over TCP as the guide's
/// DATABASE_URL does.
#[test]
#[cfg_attr(not(reminders_postgres_tests), ignore = "needs TEST_DATABASE_URL")]
fn real_dsns_through_the_guides_pipe_transport_are_recorded() {
    let Some(env) = TestEnv::new(Backend::Postgres) else {
        return;
    };
    let (master_cf, main_cf, transport) = guide_pipe_lines();
    // The binary where `nobody` can run it, as /usr/local/bin/reminders would be.
    let staging = tempfile::tempdir().unwrap();
    let staged = staging.path().join("reminders");
    std::fs::copy(env!("CARGO_BIN_EXE_reminders"), &staged).unwrap();
    for path in [staging.path(), staged.as_path()] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let written = |text: &str| {
        text.replace("postgres://reminders@db/reminders", &env.database_url)
            .replace("REMINDERS_SECRET=...", &format!("REMINDERS_SECRET={SECRET}"))
            .replace("/usr/local/bin/reminders", staged.to_str().unwrap())
    };
    let postfix = Postfix::start(
        &["known@students.example"],
        Bounces::Pipe {
            master_cf: written(&master_cf),
            main_cf: written(&main_cf),
            transport: written(&transport),
        },
    );
    send_through(&env, &postfix);
    postfix.wait_until("the DSN piped to reminders", Duration::from_secs(30), || {
        postfix.maillog().contains("delivered via reminders-bounces service")
    });
    assert!(
        postfix.new_messages("bounces").is_empty(),
        "the pipe took it, not the Maildir"
    );
    assert_eq!(
        env.count(
            "SELECT count(*) AS n FROM send_logs WHERE status = 'bounced' AND to_email = 'ghost@students.example'"
        ),
        1,
        "{}",
        postfix.maillog()
    );
}
