//! OAuth 2.0 to the relay (issue 20): the test servers on their own (the
//! token server and the relay that speaks only XOAUTH2), then the binary's
//! runs against them for each provider, on both backends.

use std::sync::{Arc, Mutex};

use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};

use crate::common::oauth::{Grant, MICROSOFT_SCOPE, ServiceAccount, TokenServer, https_agent};
use crate::common::smtp::{Security, SmtpServer, Xoauth2};
use crate::common::tls::TestCa;
use crate::common::{NOW, TestEnv, at, hours, on_both_backends};

const MAILBOX: &str = "reminders@school.example";
const SECRET: &str = "right~secret";

fn client_credentials() -> Grant {
    Grant::ClientCredentials {
        client_id: "app-id".to_string(),
        client_secret: SECRET.to_string(),
        scope: MICROSOFT_SCOPE.to_string(),
    }
}

/// Posts `form` to the token server: the status and the JSON answer.
fn post(agent: &ureq::Agent, url: &str, form: &[(&str, &str)], basic: Option<&str>) -> (u16, serde_json::Value) {
    let mut request = agent.post(url);
    if let Some(basic) = basic {
        request = request.header("authorization", format!("Basic {basic}"));
    }
    let mut response = request.send_form(form.iter().copied()).unwrap();
    let body = response.body_mut().read_to_string().unwrap();
    (response.status().as_u16(), serde_json::from_str(&body).unwrap())
}

#[test]
fn the_token_server_checks_the_client_secret() {
    let ca = TestCa::new();
    let server = TokenServer::start(ca.server("localhost", false), client_credentials());
    let agent = https_agent(&ca);
    let form = |secret| {
        [
            ("grant_type", "client_credentials"),
            ("client_id", "app-id"),
            ("client_secret", secret),
            ("scope", MICROSOFT_SCOPE),
        ]
    };
    let (status, body) = post(&agent, &server.url(), &form(SECRET), None);
    assert_eq!((status, body["access_token"].as_str()), (200, Some("tok-1")));
    assert_eq!(
        (body["token_type"].as_str(), body["expires_in"].as_u64()),
        (Some("Bearer"), Some(3599))
    );

    // HTTP Basic, each part form-encoded: `~` may arrive as `%7E`.
    let basic = base64_of("app-id:right%7Esecret");
    let (status, body) = post(
        &agent,
        &server.url(),
        &[("grant_type", "client_credentials"), ("scope", MICROSOFT_SCOPE)],
        Some(&basic),
    );
    assert_eq!((status, body["access_token"].as_str()), (200, Some("tok-2")));

    let (status, body) = post(&agent, &server.url(), &form("wrong"), None);
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS7000215: ")
    );
    assert_eq!(body["error_codes"][0], 7000215);

    let mut wrong_scope = form(SECRET);
    wrong_scope[3].1 = "https://graph.microsoft.com/.default";
    assert_eq!(post(&agent, &server.url(), &wrong_scope, None).0, 400);

    assert_eq!(server.requests(), 4);
    assert_eq!(server.issued(), ["tok-1", "tok-2"]);
}

#[test]
fn the_token_server_checks_the_service_accounts_jwt() {
    let ca = TestCa::new();
    let account = ServiceAccount::generate();
    let server = TokenServer::start(ca.server("localhost", false), account.grant(MAILBOX));
    let agent = https_agent(&ca);
    let exchange = |assertion: &str| {
        post(
            &agent,
            &server.url(),
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", assertion),
            ],
            None,
        )
    };
    let (status, body) = exchange(&account.sign(MAILBOX, &server.url()));
    assert_eq!((status, body["access_token"].as_str()), (200, Some("tok-1")));

    // Signed with another key: Google's answer.
    let (status, body) = exchange(&ServiceAccount::generate().sign(MAILBOX, &server.url()));
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_description"], "Invalid JWT Signature.");

    for wrong in [
        account.sign("someone@else.example", &server.url()),
        account.sign(MAILBOX, "https://oauth2.googleapis.com/token"),
    ] {
        let (status, body) = exchange(&wrong);
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    }
    assert_eq!((server.requests(), server.issued().len()), (4, 1));

    // The key file Google would issue names the account, the key and the endpoint.
    let dir = tempfile::tempdir().unwrap();
    account.write_key_file(&dir.path().join("key.json"), &server.url());
    let key: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("key.json")).unwrap()).unwrap();
    assert_eq!(key["token_uri"].as_str(), Some(server.url().as_str()));
    assert!(
        key["private_key"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// The relay, speaking only XOAUTH2 after STARTTLS, accepting `tokens`.
fn relay(ca: &TestCa, tokens: &[&str], refuse_first: bool, challenge: bool) -> SmtpServer {
    let smtp = SmtpServer::start_tls(Security::StartTls(ca.server("localhost", false)));
    smtp.require_xoauth2(Xoauth2 {
        user: MAILBOX.to_string(),
        tokens: Arc::new(Mutex::new(tokens.iter().map(|t| t.to_string()).collect())),
        refuse_first,
        challenge,
    });
    smtp
}

/// Sends one message through `smtp` as lettre does, with `mechanism`.
fn send(ca: &TestCa, smtp: &SmtpServer, user: &str, token: &str, mechanism: Mechanism) -> Result<(), String> {
    let tls = TlsParameters::builder("localhost".to_string())
        .certificate_store(CertificateStore::None)
        .add_root_certificate(Certificate::from_der(ca.certificate_der()).unwrap())
        .build_rustls()
        .unwrap();
    let mailer = SmtpTransport::builder_dangerous("localhost")
        .port(smtp.port)
        .tls(Tls::Required(tls))
        .credentials(Credentials::new(user.to_string(), token.to_string()))
        .authentication(vec![mechanism])
        .build();
    let message = Message::builder()
        .from(MAILBOX.parse().unwrap())
        .to("student@school.example".parse().unwrap())
        .subject("due soon")
        .body("hello".to_string())
        .unwrap();
    mailer.send(&message).map(|_| ()).map_err(|error| error.to_string())
}

#[test]
fn the_relay_accepts_exactly_the_issued_token() {
    let ca = TestCa::new();
    let smtp = relay(&ca, &["tok-1"], false, false);
    send(&ca, &smtp, MAILBOX, "tok-1", Mechanism::Xoauth2).unwrap();
    assert_eq!(smtp.received().len(), 1);

    for (user, token) in [(MAILBOX, "tok-2"), ("other@school.example", "tok-1"), (MAILBOX, "")] {
        let error = send(&ca, &smtp, user, token, Mechanism::Xoauth2).unwrap_err();
        assert!(error.contains("5.7.3"), "{error}");
    }
    assert_eq!(smtp.auth_attempts(), 4);

    // Only XOAUTH2 is offered: lettre finds no PLAIN and sends no AUTH.
    assert!(send(&ca, &smtp, MAILBOX, "tok-1", Mechanism::Plain).is_err());
    assert_eq!((smtp.auth_attempts(), smtp.received().len()), (4, 1));
}

#[test]
fn the_relay_can_refuse_the_first_token() {
    let ca = TestCa::new();
    let smtp = relay(&ca, &["tok-1", "tok-2"], true, false);
    let error = send(&ca, &smtp, MAILBOX, "tok-1", Mechanism::Xoauth2).unwrap_err();
    assert!(error.contains("535") && error.contains("5.7.3"), "{error}");
    // The refused token stays refused, as an expired one would.
    assert!(send(&ca, &smtp, MAILBOX, "tok-1", Mechanism::Xoauth2).is_err());
    send(&ca, &smtp, MAILBOX, "tok-2", Mechanism::Xoauth2).unwrap();
    assert_eq!((smtp.auth_attempts(), smtp.received().len()), (3, 1));
}

#[test]
fn the_relay_can_refuse_as_gmail_does() {
    let ca = TestCa::new();
    let smtp = relay(&ca, &["tok-1"], false, true);
    // 334 with a challenge first: lettre's XOAUTH2 gives up on the challenge
    // itself, before the 535, so the tool must treat that as AUTH refused too.
    let error = send(&ca, &smtp, MAILBOX, "tok-9", Mechanism::Xoauth2).unwrap_err();
    assert!(error.contains("does not expect a challenge"), "{error}");
    send(&ca, &smtp, MAILBOX, "tok-1", Mechanism::Xoauth2).unwrap();
    assert_eq!((smtp.auth_attempts(), smtp.received().len()), (2, 1));
}

/// The two grants the tool speaks.
#[derive(Clone, Copy, Debug)]
enum Provider {
    /// Client credentials, as for Microsoft 365.
    Microsoft,
    /// A service account's signed JWT, as for Google Workspace.
    Google,
}

const PROVIDERS: [Provider; 2] = [Provider::Microsoft, Provider::Google];

/// How the relay treats the tokens it is shown.
#[derive(Clone, Copy, PartialEq)]
enum Relay {
    /// Any token the token server issued.
    Accepts,
    /// Refuses the first token with `535 5.7.3` (as if expired), then accepts.
    RefusesFirst,
    /// Refuses the first token, and every later one too.
    RefusesAll,
}

/// One test's servers, and what must never be printed.
struct Servers {
    tokens: TokenServer,
    smtp: SmtpServer,
    /// The client secret, or lines of the private key.
    secrets: Vec<String>,
    _ca: TestCa,
}

impl Servers {
    /// Starts the token server and the relay for `provider`, and points
    /// `env` at them; `wrong` gives the tool a credential the endpoint refuses.
    fn start(env: &TestEnv, provider: Provider, relay: Relay, wrong: bool) -> Servers {
        Servers::start_with(env, provider, relay, wrong, false)
    }

    /// [`Servers::start`], with a relay on `smtps://` (TLS from the first byte) when `smtps`.
    fn start_with(env: &TestEnv, provider: Provider, relay: Relay, wrong: bool, smtps: bool) -> Servers {
        let ca = TestCa::new();
        ca.write_pem(&env.path("ca.pem"));
        env.set_var("REMINDERS_CA_FILE", &env.path("ca.pem").display().to_string());
        let (tokens, secrets) = match provider {
            Provider::Microsoft => {
                let tokens = TokenServer::start(ca.server("localhost", false), client_credentials());
                let secret = if wrong { "wrong~secret" } else { SECRET };
                // The tenant names Microsoft's endpoint; the override wins.
                env.set_var("SMTP_OAUTH_TENANT", "school.example");
                env.set_var("SMTP_OAUTH_CLIENT_ID", "app-id");
                env.set_var("SMTP_OAUTH_CLIENT_SECRET", secret);
                env.set_var("SMTP_OAUTH_TOKEN_URL", &tokens.url());
                (tokens, vec![secret.to_string()])
            }
            Provider::Google => {
                let account = ServiceAccount::generate();
                let tokens = TokenServer::start(ca.server("localhost", false), account.grant(MAILBOX));
                // Signed with another key: Google answers invalid_grant.
                let used = if wrong { ServiceAccount::generate() } else { account };
                used.write_key_file(&env.path("key.json"), &tokens.url());
                env.set_var("SMTP_OAUTH_SERVICE_ACCOUNT", "key.json");
                let key_lines = used
                    .private_key_pem
                    .lines()
                    .filter(|line| !line.starts_with("-----"))
                    .map(str::to_string)
                    .collect();
                (tokens, key_lines)
            }
        };
        let smtp = SmtpServer::start_tls(if smtps {
            Security::Implicit(ca.server("localhost", false))
        } else {
            Security::StartTls(ca.server("localhost", false))
        });
        smtp.require_xoauth2(Xoauth2 {
            user: MAILBOX.to_string(),
            tokens: match relay {
                Relay::RefusesAll => Arc::new(Mutex::new(vec!["tok-1".to_string()])),
                _ => tokens.issued_tokens(),
            },
            refuse_first: relay != Relay::Accepts,
            challenge: matches!(provider, Provider::Google),
        });
        env.use_smtp(&if smtps {
            format!(
                "smtps://reminders%40school.example@localhost:{}?auth=xoauth2",
                smtp.port
            )
        } else {
            format!(
                "smtp://reminders%40school.example@localhost:{}?tls=required&auth=xoauth2",
                smtp.port
            )
        });
        Servers {
            tokens,
            smtp,
            secrets,
            _ca: ca,
        }
    }

    /// Neither a secret nor an issued token appears in `text`.
    fn assert_hidden(&self, text: &str) {
        for secret in &self.secrets {
            assert!(!text.contains(secret.as_str()), "a secret leaked: {text}");
        }
        for token in self.tokens.issued() {
            assert!(!text.contains(&token), "the token `{token}` leaked: {text}");
        }
    }
}

/// A world of its own for each provider, on the scenario's backend.
fn fresh(env: &TestEnv) -> TestEnv {
    TestEnv::new(env.backend).unwrap()
}

/// Three reminders due, for three students.
fn three_due(env: &TestEnv) {
    for (n, student) in ["a@example.com", "b@example.com", "c@example.com"].iter().enumerate() {
        env.add_user(student, "UTC");
        env.add_assignment(student, &format!("Essay {n}"), &at(hours(24)));
    }
}

/// The run stopped on its one line: nothing sent, no attempt, nobody blamed.
fn assert_stopped_safely(env: &TestEnv, servers: &Servers, run: &crate::common::Run, needles: &[&str]) {
    assert_eq!(run.code(), 1, "{}", run.describe());
    let stderr = run.stderr();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "`{needle}` is missing from: {stderr}");
    }
    assert_eq!(
        env.count("SELECT count(*) AS n FROM reminders WHERE status = 'pending' AND attempts = 0"),
        3
    );
    assert_eq!(env.count("SELECT count(*) AS n FROM users WHERE contact_opt_out"), 0);
    assert!(servers.smtp.received().is_empty());
    servers.assert_hidden(&run.describe());
}

on_both_backends! {
    fn delivered_with_one_token_a_run(env: &TestEnv) {
        for provider in PROVIDERS {
            let env = &fresh(env);
            let servers = Servers::start(env, provider, Relay::Accepts, false);
            three_due(env);
            let run = env.send_24h(NOW, &["-v", "--connections", "2"]);
            assert_eq!(run.code(), 0, "{provider:?}: {}", run.describe());
            assert_eq!(run.report()["sent"], 3, "{}", run.describe());
            assert_eq!(servers.smtp.received().len(), 3);
            assert_eq!(servers.tokens.requests(), 1, "{provider:?}: one token a run");
            servers.assert_hidden(&run.describe());

            // The daily summaries go the same way, with a token of their own run.
            env.in_use_since("2000-01-01T00:00:00Z");
            let summaries = env.run(&["-v", "summary", "--send", "--now", NOW, "--format", "json"]);
            assert_eq!(summaries.code(), 0, "{provider:?}: {}", summaries.describe());
            assert_eq!(summaries.report()["sent"], 3, "{}", summaries.describe());
            assert_eq!(servers.tokens.requests(), 2, "{provider:?}");
            servers.assert_hidden(&summaries.describe());
        }
    }

    fn smtps_with_a_token_renewed_once(env: &TestEnv) {
        for provider in PROVIDERS {
            let env = &fresh(env);
            let servers = Servers::start_with(env, provider, Relay::RefusesFirst, false, true);
            three_due(env);
            let run = env.send_24h(NOW, &["--connections", "2"]);
            assert_eq!(run.code(), 0, "{provider:?}: {}", run.describe());
            assert_eq!(servers.smtp.received().len(), 3);
            assert_eq!(servers.tokens.requests(), 2, "{provider:?}");
            let check = env.run(&["check"]);
            assert_eq!(check.code(), 0, "{provider:?}: {}", check.describe());
            assert!(check.stdout().contains("ok    mail AUTH: AUTH XOAUTH2 accepted"), "{}", check.describe());
        }
    }

    fn a_refused_credential_stops_the_run_at_once(env: &TestEnv) {
        for (provider, code) in [(Provider::Microsoft, "AADSTS7000215"), (Provider::Google, "invalid_grant")] {
            let env = &fresh(env);
            let servers = Servers::start(env, provider, Relay::Accepts, true);
            three_due(env);
            let run = env.send_24h(NOW, &["--connections", "2"]);
            let endpoint = format!("`{}`", servers.tokens.url());
            assert_stopped_safely(env, &servers, &run, &[&endpoint, code]);
            // Asked once: the other connection took the same answer.
            assert_eq!(servers.tokens.requests(), 1, "{provider:?}");
            assert_eq!(servers.smtp.auth_attempts(), 0);
            env.in_use_since("2000-01-01T00:00:00Z");
            let summaries = env.run(&["summary", "--send", "--now", NOW]);
            assert_eq!(summaries.code(), 1, "{}", summaries.describe());
            assert_eq!(summaries.stderr().lines().count(), 1, "{}", summaries.describe());
            assert!(summaries.stderr().contains(code), "{}", summaries.describe());
            // With -vv, still nothing secret.
            let verbose = env.send_24h(NOW, &["-v"]);
            assert_eq!(verbose.code(), 1, "{}", verbose.describe());
            servers.assert_hidden(&verbose.describe());
        }
    }

    fn a_token_the_relay_refuses_is_renewed_once(env: &TestEnv) {
        for provider in PROVIDERS {
            let env = &fresh(env);
            let servers = Servers::start(env, provider, Relay::RefusesFirst, false);
            three_due(env);
            let run = env.send_24h(NOW, &["-v", "--connections", "2"]);
            assert_eq!(run.code(), 0, "{provider:?}: {}", run.describe());
            assert_eq!(servers.smtp.received().len(), 3);
            assert_eq!(servers.tokens.requests(), 2, "{provider:?}");
            servers.assert_hidden(&run.describe());
        }
    }

    fn a_relay_that_refuses_the_renewed_token_stops_the_run(env: &TestEnv) {
        for provider in PROVIDERS {
            let env = &fresh(env);
            let servers = Servers::start(env, provider, Relay::RefusesAll, false);
            three_due(env);
            let run = env.send_24h(NOW, &["--connections", "2"]);
            let relay = format!("localhost:{}", servers.smtp.port);
            let refusal = match provider {
                Provider::Microsoft => "5.7.3",
                Provider::Google => "334",
            };
            assert_stopped_safely(env, &servers, &run, &[&relay, "renewed token", refusal]);
            assert_eq!(servers.tokens.requests(), 2, "{provider:?}");
        }
    }

    fn check_reports_each_step(env: &TestEnv) {
        for provider in PROVIDERS {
            let env = &fresh(env);
            let servers = Servers::start(env, provider, Relay::Accepts, false);
            let run = env.run(&["check"]);
            assert_eq!(run.code(), 0, "{provider:?}: {}", run.describe());
            let stdout = run.stdout();
            for line in [
                format!("ok    mail token: fetched from `{}`", servers.tokens.url()),
                format!("ok    mail server: localhost:{} answers EHLO, STARTTLS done", servers.smtp.port),
                format!("ok    mail AUTH: AUTH XOAUTH2 accepted for `{MAILBOX}`"),
            ] {
                assert!(stdout.contains(&line), "`{line}` is missing from:\n{stdout}");
            }
            servers.assert_hidden(&run.describe());

            let env = &fresh(env);
            let servers = Servers::start(env, provider, Relay::Accepts, true);
            let run = env.run(&["check"]);
            assert_eq!(run.code(), 1, "{}", run.describe());
            let stdout = run.stdout();
            assert!(stdout.contains("FAIL  mail token: the token endpoint"), "{stdout}");
            assert!(stdout.contains("ok    mail server: "), "{stdout}");
            assert!(stdout.contains("FAIL  mail AUTH: not tried: no token"), "{stdout}");
            servers.assert_hidden(&run.describe());

            let env = &fresh(env);
            let servers = Servers::start(env, provider, Relay::RefusesAll, false);
            let run = env.run(&["check"]);
            assert_eq!(run.code(), 1, "{}", run.describe());
            let stdout = run.stdout();
            assert!(stdout.contains("ok    mail token: "), "{stdout}");
            assert!(stdout.contains("FAIL  mail AUTH: the relay localhost:"), "{stdout}");
            servers.assert_hidden(&run.describe());
        }
    }
}

/// The OAuth settings are checked before anything is sent: exit 1, one line,
/// never the secret.
#[test]
fn oauth_settings_are_checked_first() {
    let env = TestEnv::new(crate::common::Backend::Sqlite).unwrap();
    three_due(&env);
    let xoauth2_url = "smtp://reminders%40school.example@localhost:2525?tls=required&auth=xoauth2";
    let send = ["send", "--unit", "hours", "--targets", "24", "--now", NOW];

    env.use_smtp(xoauth2_url);
    env.fails(&send, 1, "set `SMTP_OAUTH_TENANT`");
    env.set_var("SMTP_OAUTH_CLIENT_ID", "app-id");
    env.set_var("SMTP_OAUTH_CLIENT_SECRET", SECRET);
    env.set_var("SMTP_OAUTH_SERVICE_ACCOUNT", "key.json");
    // With -v, which also lists where each setting came from: still no secret.
    let both = env.run(&["-v", "send", "--unit", "hours", "--targets", "24", "--now", NOW]);
    assert_eq!(both.code(), 1, "{}", both.describe());
    assert!(
        both.stderr().lines().last().unwrap().contains("not both"),
        "{}",
        both.describe()
    );
    assert!(!both.describe().contains(SECRET), "{}", both.describe());
    env.set_var("SMTP_OAUTH_SERVICE_ACCOUNT", "");

    // The token endpoint is down: the run stops on its one line, nothing burnt.
    let port = crate::common::smtp::closed_port();
    env.set_var("SMTP_OAUTH_TOKEN_URL", &format!("http://127.0.0.1:{port}/token"));
    let smtp = SmtpServer::start();
    env.use_smtp(&format!(
        "smtp://reminders%40school.example@localhost:{}?tls=required&auth=xoauth2",
        smtp.port
    ));
    let down = env.fails(
        &send,
        1,
        &format!("cannot reach the token endpoint `http://127.0.0.1:{port}/token`"),
    );
    assert!(!down.describe().contains(SECRET));
    assert_eq!(
        env.count("SELECT count(*) AS n FROM reminders WHERE status = 'pending' AND attempts = 0"),
        3
    );
    assert_eq!(smtp.connections(), 0, "no token, no AUTH");

    // OAuth settings without `auth=xoauth2`, and a password with it.
    env.use_smtp(&format!("smtp://localhost:{}", smtp.port));
    env.fails(&send, 1, "need `auth=xoauth2`");
    env.use_smtp("smtp://reminders:pw@localhost:2525?tls=required&auth=xoauth2");
    env.fails(&send, 1, "has `auth=xoauth2` and a password");
    env.use_smtp("smtp://reminders@localhost:2525?auth=xoauth2");
    env.fails(&send, 1, "has `auth=xoauth2` but no TLS");
}
