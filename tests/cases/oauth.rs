//! The OAuth test servers (issue 20) on their own: the token server and the relay that speaks only XOAUTH2; the binary's runs against them come once it is wired.

use std::sync::{Arc, Mutex};

use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};

use crate::common::oauth::{Grant, MICROSOFT_SCOPE, ServiceAccount, TokenServer, https_agent};
use crate::common::smtp::{Security, SmtpServer, Xoauth2};
use crate::common::tls::TestCa;

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
