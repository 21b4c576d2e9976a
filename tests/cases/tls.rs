//! TLS that trusts what the machine trusts: the system store (here
//! `SSL_CERT_FILE`, which replaces it as in OpenSSL), `--ca-file`, and a
//! refused certificate explained in one line, for SMTP with STARTTLS, SMTPS
//! and HTTPS (the ping URL, which stands in for any fetch).

use crate::common::smtp::{Security, SmtpServer};
use crate::common::tls::{CA_SUBJECT, HttpsServer, TestCa};
use crate::common::{Backend, NOW, Run, TestEnv, at, hours, minutes, on_both_backends};

/// A mail server on loopback with a certificate for `localhost` from `ca`,
/// and the SMTP_URL that reaches it by that name.
fn mail_server(ca: &TestCa, implicit: bool) -> (SmtpServer, String) {
    let config = ca.server("localhost", false);
    if implicit {
        let smtp = SmtpServer::start_tls(Security::Implicit(config));
        let url = format!("smtps://localhost:{}", smtp.port);
        (smtp, url)
    } else {
        let smtp = SmtpServer::start_tls(Security::StartTls(config));
        let url = format!("smtp://localhost:{}?tls=required", smtp.port);
        (smtp, url)
    }
}

/// A refusal of the test server's certificate as it should read: one line,
/// naming the server, the certificate's subject and issuer, and the remedies.
fn assert_unknown_issuer(reason: &str, port: u16) {
    for needle in [
        &format!("localhost:{port}"),
        "subject `CN=localhost`",
        &format!("issuer `{CA_SUBJECT}`"),
        "does not trust",
        "update-ca-certificates",
        "--ca-file",
    ] {
        assert!(reason.contains(needle), "`{needle}` is missing from: {reason}");
    }
    assert!(!reason.contains('\n'), "not one line: {reason}");
}

/// The path of the test's ping URL: like a real check's, long and unguessable.
const PING_SECRET: &str = "8f3a2c1e-5b7d-4e09-a6f1-2d9c0b4e7a13";

/// The three cases against one mail server: the CA unknown, then
/// named with `--ca-file`, then in the store that `SSL_CERT_FILE` names.
fn refused_then_trusted(env: &TestEnv, smtp: &SmtpServer, url: &str) {
    let ca_path = env.path("ca.pem").display().to_string();
    env.use_smtp(url);
    env.add_user("tls@example.com", "UTC");
    for title in ["Essay", "Lab", "Quiz"] {
        env.add_assignment("tls@example.com", title, &at(hours(24)));
    }

    // The CA is unknown: nothing goes; the run stops on the third refusal
    // with the reason in one line, burns no attempt and blames nobody.
    let refused = env.send_24h(NOW, &[]);
    assert_eq!(refused.code(), 1, "{}", refused.describe());
    let stderr = refused.stderr();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_unknown_issuer(stderr.trim_end(), smtp.port);
    let last_error = env.text("SELECT max(last_error) AS v FROM reminders").unwrap();
    assert_unknown_issuer(&last_error, smtp.port);
    let logged = env.text("SELECT max(error) AS v FROM send_logs").unwrap();
    assert_unknown_issuer(&logged, smtp.port);
    assert_eq!(
        env.count("SELECT count(*) AS n FROM reminders WHERE status = 'pending' AND attempts = 0"),
        3
    );
    assert_eq!(env.count("SELECT count(*) AS n FROM users WHERE contact_opt_out"), 0);
    assert!(smtp.received().is_empty());

    // --ca-file: the retries go through.
    let with_flag = env.send_24h(&at(minutes(3)), &["--ca-file", &ca_path]);
    assert_eq!(with_flag.code(), 0, "{}", with_flag.describe());
    assert_eq!(with_flag.report()["sent"], 3, "{}", with_flag.describe());
    assert_eq!(smtp.received().len(), 3);

    // SSL_CERT_FILE: a new reminder goes through too.
    env.add_assignment("tls@example.com", "Report", &at(hours(24) + minutes(10)));
    env.set_var("SSL_CERT_FILE", &ca_path);
    let with_store = env.send_24h(&at(minutes(10)), &[]);
    assert_eq!(with_store.code(), 0, "{}", with_store.describe());
    assert_eq!(with_store.report()["sent"], 1, "{}", with_store.describe());
    assert_eq!(smtp.received().len(), 4);
    assert_eq!(env.count("SELECT count(*) AS n FROM users WHERE contact_opt_out"), 0);
}

on_both_backends! {
    fn starttls_trusts_the_system_store_and_the_ca_file_and_says_why_it_refuses(env: &TestEnv) {
        let ca = TestCa::new();
        ca.write_pem(&env.path("ca.pem"));
        let (smtp, url) = mail_server(&ca, false);
        refused_then_trusted(env, &smtp, &url);
    }

    fn smtps_trusts_the_system_store_and_the_ca_file_and_says_why_it_refuses(env: &TestEnv) {
        let ca = TestCa::new();
        ca.write_pem(&env.path("ca.pem"));
        let (smtp, url) = mail_server(&ca, true);
        refused_then_trusted(env, &smtp, &url);
    }
}

#[test]
fn an_https_ping_trusts_the_system_store_and_the_ca_file_and_says_why_it_refuses() {
    let env = TestEnv::new(Backend::Sqlite).unwrap();
    let ca = TestCa::new();
    let ca_path = env.path("ca.pem").display().to_string();
    ca.write_pem(&env.path("ca.pem"));
    let https = HttpsServer::start(ca.server("localhost", false));
    // The path of a ping URL is its secret: only the scheme and host are shown.
    let url = format!("https://localhost:{}/{PING_SECRET}", https.port);

    // The CA is unknown: each ping warns, in one line, and the run is not affected.
    env.use_smtp("file://outbox");
    env.add_user("s@example.com", "UTC");
    let work = ["send", "--unit", "hours", "--targets", "24"];
    let refused = env.run(&[&work[..], &["--ping-url", &url]].concat());
    assert_eq!(refused.code(), 0, "{}", refused.describe());
    let stderr = refused.stderr();
    let warnings: Vec<&str> = stderr.lines().collect();
    assert_eq!(warnings.len(), 2, "{}", refused.describe());
    assert!(
        warnings[0].starts_with("warning: the ping to `https://localhost` failed: "),
        "{}",
        refused.describe()
    );
    for warning in &warnings {
        assert_unknown_issuer(warning, https.port);
    }
    assert!(https.paths().is_empty());

    let with_flag = env.run(&[&work[..], &["--ping-url", &url, "--ca-file", &ca_path]].concat());
    assert_eq!(
        (with_flag.code(), with_flag.stderr().as_str()),
        (0, ""),
        "{}",
        with_flag.describe()
    );
    assert_eq!(
        https.paths(),
        [format!("/{PING_SECRET}/start"), format!("/{PING_SECRET}/0")]
    );

    env.set_var("REMINDERS_PING_URL", &url);
    env.set_var("SSL_CERT_FILE", &ca_path);
    let with_store = env.run(&work);
    assert_eq!(
        (with_store.code(), with_store.stderr().as_str()),
        (0, ""),
        "{}",
        with_store.describe()
    );
    assert_eq!(https.paths().len(), 4);

    // Only the commands that do scheduled work ping: a manual look never
    // tells the monitor that the cron job is fine.
    for look in [
        &["status"][..],
        &["user", "list"],
        &["check"],
        &["due", "--unit", "hours", "--targets", "24"],
        &["send", "--unit", "hours", "--targets", "24", "--dry-run"],
        &["summary"],
        &["summary", "--send", "--dry-run"],
    ] {
        env.run(look);
        assert_eq!(https.paths().len(), 4, "{look:?} pinged");
    }
    let csv = env.path("users.csv");
    std::fs::write(&csv, "email,name,timezone\nt@example.com,T,UTC\n").unwrap();
    env.ok(&["user", "import", csv.to_str().unwrap(), "--skip-existing"]);
    assert_eq!(
        https.paths().len(),
        4,
        "an import pings only with --ping-url on its line"
    );
    env.ok(&[
        "user",
        "import",
        csv.to_str().unwrap(),
        "--skip-existing",
        "--ping-url",
        &url,
    ]);
    assert_eq!(https.paths().len(), 6);
    // Each job its own check: summary --send pings REMINDERS_PING_URL_SUMMARY.
    let summary_url = format!("https://localhost:{}/summary-check", https.port);
    env.set_var("REMINDERS_PING_URL_SUMMARY", &summary_url);
    env.run(&["summary", "--send", "-q"]);
    assert_eq!(&https.paths()[6..], ["/summary-check/start", "/summary-check/0"]);
}

#[test]
fn check_shows_each_servers_certificate_and_whether_it_is_trusted() {
    let env = TestEnv::new(Backend::Sqlite).unwrap();
    let ca = TestCa::new();
    let ca_path = env.path("ca.pem").display().to_string();
    ca.write_pem(&env.path("ca.pem"));
    let https = HttpsServer::start(ca.server("localhost", false));
    env.set_var(
        "REMINDERS_PING_URL",
        &format!("https://localhost:{}/{PING_SECRET}", https.port),
    );
    for implicit in [false, true] {
        let (smtp, url) = mail_server(&ca, implicit);
        env.use_smtp(&url);

        let untrusted = env.run(&["check"]);
        assert_eq!(untrusted.code(), 1, "{}", untrusted.describe());
        let line = |run: &Run, name: &str| {
            run.stdout()
                .lines()
                .find(|line| line.get(6..).is_some_and(|rest| rest.starts_with(name)))
                .unwrap_or_else(|| panic!("no `{name}` line:\n{}", run.describe()))
                .to_string()
        };
        let server = line(&untrusted, "mail server:");
        assert!(server.starts_with("FAIL"), "{server}");
        assert_unknown_issuer(&server, smtp.port);
        let tls = line(&untrusted, "mail TLS:");
        assert!(
            tls.starts_with("FAIL  mail TLS: TLS 1.3, subject `CN=localhost`"),
            "{tls}"
        );
        assert!(tls.contains(&format!("issuer `{CA_SUBJECT}`, expires ")), "{tls}");
        assert!(
            tls.contains("NOT trusted: ") && tls.contains("update-ca-certificates"),
            "{tls}"
        );
        assert!(
            line(&untrusted, "ping TLS:").contains("NOT trusted"),
            "{}",
            untrusted.describe()
        );

        let trusted = env.run(&["check", "--ca-file", &ca_path]);
        assert_eq!(trusted.code(), 0, "{}", trusted.describe());
        let tls = line(&trusted, "mail TLS:");
        assert!(
            tls.starts_with("ok    mail TLS: TLS 1.3, subject `CN=localhost`"),
            "{tls}"
        );
        assert!(tls.ends_with(", trusted"), "{tls}");
        assert!(
            line(&trusted, "ping TLS:").ends_with(", trusted"),
            "{}",
            trusted.describe()
        );
        assert!(
            line(&trusted, "TLS trust:").contains(&format!("1 from the CA file `{ca_path}`")),
            "{}",
            trusted.describe()
        );
        // `check` sends nothing.
        assert!(smtp.received().is_empty());
    }
    assert!(
        https
            .paths()
            .iter()
            .all(|path| path.starts_with(&format!("/{PING_SECRET}/"))),
        "only pings: {:?}",
        https.paths()
    );
}

#[test]
fn an_expired_or_wrong_name_certificate_says_so() {
    let env = TestEnv::new(Backend::Sqlite).unwrap();
    let ca = TestCa::new();
    let ca_path = env.path("ca.pem").display().to_string();
    ca.write_pem(&env.path("ca.pem"));
    env.set_var("REMINDERS_CA_FILE", &ca_path);

    let expired = SmtpServer::start_tls(Security::StartTls(ca.server("localhost", true)));
    env.use_smtp(&format!("smtp://localhost:{}?tls=required", expired.port));
    let run = env.run(&["check"]);
    assert_eq!(run.code(), 1, "{}", run.describe());
    assert!(
        run.stdout().contains(&format!(
            "FAIL  mail server: the TLS certificate of localhost:{} (subject `CN=localhost`, issuer `{CA_SUBJECT}`) \
             expired on 2021-01-01 00:00 UTC",
            expired.port
        )),
        "{}",
        run.describe()
    );

    // The certificate covers `localhost`; the URL names the server by its address.
    let elsewhere = SmtpServer::start_tls(Security::StartTls(ca.server("localhost", false)));
    env.use_smtp(&format!("smtp://127.0.0.1:{}?tls=required", elsewhere.port));
    let run = env.run(&["check"]);
    assert_eq!(run.code(), 1, "{}", run.describe());
    assert!(
        run.stdout()
            .contains("is for localhost, not for `127.0.0.1`: connect by a name the certificate covers"),
        "{}",
        run.describe()
    );
}

#[test]
fn a_ca_file_that_cannot_be_used_is_bad_input() {
    let env = TestEnv::new(Backend::Sqlite).unwrap();
    env.fails(
        &["user", "list", "--ca-file", "missing.pem"],
        2,
        "cannot read the CA file `missing.pem`",
    );
    std::fs::write(env.path("notes.txt"), "not a certificate\n").unwrap();
    env.fails(&["user", "list", "--ca-file", "notes.txt"], 2, "holds no certificate");
    std::fs::write(
        env.path("broken.pem"),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    env.set_var("REMINDERS_CA_FILE", "broken.pem");
    env.fails(
        &["user", "list"],
        2,
        "certificate 1 in the CA file `broken.pem` cannot be trusted as a CA",
    );
}
