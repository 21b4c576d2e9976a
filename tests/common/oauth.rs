//! An OAuth token server on loopback over HTTPS (the test CA), as Microsoft (client credentials) or Google (a service account's JWT) answer, issuing `tok-1`, `tok-2`, … and counting requests; and a service account's RSA key and key file.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use base64::Engine;
use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// Microsoft 365's scope, which the tool asks for by default.
pub const MICROSOFT_SCOPE: &str = "https://outlook.office365.com/.default";
/// Google's scope for SMTP.
pub const GOOGLE_SCOPE: &str = "https://mail.google.com/";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// What the token server checks before it issues a token.
#[derive(Clone)]
pub enum Grant {
    /// The form's (or HTTP Basic's) client id and secret, and the scope.
    ClientCredentials {
        client_id: String,
        client_secret: String,
        scope: String,
    },
    /// A JWT signed with the key whose public half is `public_key_pem`, with
    /// `iss` = `client_email`, `sub` = `subject`, `scope` and `aud` = this server's URL.
    ServiceAccount {
        public_key_pem: String,
        client_email: String,
        subject: String,
        scope: String,
    },
}

/// The tokens issued so far, shared with the SMTP server that accepts them.
pub type Issued = Arc<Mutex<Vec<String>>>;

pub struct TokenServer {
    pub port: u16,
    requests: Arc<Mutex<usize>>,
    issued: Issued,
}

impl TokenServer {
    /// Serves `https://localhost:PORT/token` with `config` (from `TestCa::server("localhost", false)`).
    pub fn start(config: Arc<ServerConfig>, grant: Grant) -> TokenServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the test token server");
        let port = listener.local_addr().unwrap().port();
        let (requests, issued) = (Arc::new(Mutex::new(0)), Issued::default());
        let (counted, tokens) = (requests.clone(), issued.clone());
        let url = token_url(port);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (config, grant, counted, tokens, url) = (
                    config.clone(),
                    grant.clone(),
                    counted.clone(),
                    tokens.clone(),
                    url.clone(),
                );
                std::thread::spawn(move || {
                    let Ok(connection) = ServerConnection::new(config) else {
                        return;
                    };
                    let mut reader = BufReader::new(StreamOwned::new(connection, stream));
                    let Some(request) = read_request(&mut reader) else {
                        return;
                    };
                    *counted.lock().unwrap() += 1;
                    let (status, body) = match check(&grant, &request, &url) {
                        Ok(()) => {
                            let mut tokens = tokens.lock().unwrap();
                            let token = format!("tok-{}", tokens.len() + 1);
                            tokens.push(token.clone());
                            let body =
                                serde_json::json!({"access_token": token, "token_type": "Bearer", "expires_in": 3599});
                            (200, body)
                        }
                        Err(refusal) => refusal,
                    };
                    let body = body.to_string();
                    let mut tls = reader.into_inner();
                    let _ = write!(
                        tls,
                        "HTTP/1.1 {status} {}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        if status == 200 { "OK" } else { "Refused" },
                        body.len()
                    );
                    let _ = tls.flush();
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                });
            }
        });
        TokenServer { port, requests, issued }
    }

    /// The token endpoint (for `SMTP_OAUTH_TOKEN_URL` or a key file's `token_uri`).
    pub fn url(&self) -> String {
        token_url(self.port)
    }

    /// How many requests arrived, answered with a token or not.
    pub fn requests(&self) -> usize {
        *self.requests.lock().unwrap()
    }

    /// The tokens issued so far, in order.
    pub fn issued(&self) -> Vec<String> {
        self.issued.lock().unwrap().clone()
    }

    /// The live list of issued tokens, for `smtp::Xoauth2::tokens`.
    pub fn issued_tokens(&self) -> Issued {
        self.issued.clone()
    }
}

fn token_url(port: u16) -> String {
    format!("https://localhost:{port}/token")
}

/// What the server read of one request.
struct Request {
    authorization: Option<String>,
    form: HashMap<String, String>,
}

fn read_request(reader: &mut impl BufRead) -> Option<Request> {
    let mut line = String::new();
    // A refused handshake, or a client that only looks at the certificate, sends nothing.
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return None;
    }
    let (mut length, mut authorization) = (0, None);
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim_end().is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        match name.trim().to_lowercase().as_str() {
            "content-length" => length = value.trim().parse().ok()?,
            "authorization" => authorization = Some(value.trim().to_string()),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let form = url::form_urlencoded::parse(&body).into_owned().collect();
    Some(Request { authorization, form })
}

type Refusal = (u16, serde_json::Value);

fn refuse(status: u16, error: &str, description: &str) -> Refusal {
    (
        status,
        serde_json::json!({"error": error, "error_description": description}),
    )
}

fn check(grant: &Grant, request: &Request, url: &str) -> Result<(), Refusal> {
    let field = |name: &str| request.form.get(name).map(String::as_str);
    match grant {
        Grant::ClientCredentials {
            client_id,
            client_secret,
            scope,
        } => {
            if field("grant_type") != Some("client_credentials") {
                return Err(refuse(
                    400,
                    "unsupported_grant_type",
                    "AADSTS70003: unsupported grant type.",
                ));
            }
            let (id, secret) = client_of(request).ok_or_else(|| {
                refuse(
                    400,
                    "invalid_request",
                    "AADSTS900144: The request body must contain client_id.",
                )
            })?;
            if id != *client_id {
                return Err(refuse(
                    400,
                    "unauthorized_client",
                    "AADSTS700016: Application not found.",
                ));
            }
            if secret != *client_secret {
                // Microsoft's answer to a wrong secret, word for word up to the trace.
                return Err((
                    401,
                    serde_json::json!({
                        "error": "invalid_client",
                        "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID. Trace ID: 0000",
                        "error_codes": [7000215],
                    }),
                ));
            }
            if field("scope") != Some(scope.as_str()) {
                return Err(refuse(
                    400,
                    "invalid_scope",
                    "AADSTS70011: The provided value for scope is not valid.",
                ));
            }
            Ok(())
        }
        Grant::ServiceAccount {
            public_key_pem,
            client_email,
            subject,
            scope,
        } => {
            if field("grant_type") != Some(JWT_BEARER) {
                return Err(refuse(400, "unsupported_grant_type", "Invalid grant_type."));
            }
            let assertion = field("assertion").ok_or_else(|| refuse(400, "invalid_request", "Missing assertion."))?;
            let key = jsonwebtoken::DecodingKey::from_rsa_pem(public_key_pem.as_bytes()).unwrap();
            let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
            validation.set_audience(&[url]);
            validation.set_issuer(&[client_email]);
            validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
            let claims = jsonwebtoken::decode::<serde_json::Value>(assertion, &key, &validation)
                .map_err(|error| match error.kind() {
                    jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                        refuse(400, "invalid_grant", "Invalid JWT Signature.")
                    }
                    _ => refuse(400, "invalid_grant", "Invalid JWT: claims."),
                })?
                .claims;
            let lifetime = claims["exp"]
                .as_u64()
                .unwrap_or(0)
                .saturating_sub(claims["iat"].as_u64().unwrap_or(0));
            if claims["sub"] != subject.as_str() || claims["scope"] != scope.as_str() || lifetime > 3600 {
                return Err(refuse(400, "invalid_grant", "Invalid JWT: sub, scope or lifetime."));
            }
            Ok(())
        }
    }
}

/// The client's id and secret: from HTTP Basic auth (each part form-encoded,
/// RFC 6749 2.3.1) or from the form.
fn client_of(request: &Request) -> Option<(String, String)> {
    if let Some(basic) = request.authorization.as_deref().and_then(|a| a.strip_prefix("Basic ")) {
        let decoded = base64::engine::general_purpose::STANDARD.decode(basic.trim()).ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (id, secret) = decoded.split_once(':')?;
        let unescape = |text: &str| {
            url::form_urlencoded::parse(format!("x={text}").as_bytes())
                .next()
                .map(|(_, value)| value.into_owned())
        };
        return Some((unescape(id)?, unescape(secret)?));
    }
    Some((
        request.form.get("client_id")?.clone(),
        request.form.get("client_secret")?.clone(),
    ))
}

/// A service account: an RSA key made by the `openssl` command, and the
/// JSON key file Google would issue for it.
pub struct ServiceAccount {
    pub client_email: String,
    pub private_key_pem: String,
    pub public_key_pem: String,
}

impl ServiceAccount {
    pub fn generate() -> ServiceAccount {
        let private_key_pem = openssl(
            &["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            "",
        );
        let public_key_pem = openssl(&["pkey", "-pubout"], &private_key_pem);
        ServiceAccount {
            client_email: "reminders@school-test.iam.gserviceaccount.com".to_string(),
            private_key_pem,
            public_key_pem,
        }
    }

    /// What the token server checks for this account acting as `subject`.
    pub fn grant(&self, subject: &str) -> Grant {
        Grant::ServiceAccount {
            public_key_pem: self.public_key_pem.clone(),
            client_email: self.client_email.clone(),
            subject: subject.to_string(),
            scope: GOOGLE_SCOPE.to_string(),
        }
    }

    /// Writes the key file, as Google lays it out, with `token_uri`.
    pub fn write_key_file(&self, path: &Path, token_uri: &str) {
        let key = serde_json::json!({
            "type": "service_account",
            "project_id": "school-test",
            "private_key_id": "0123456789abcdef",
            "private_key": self.private_key_pem,
            "client_email": self.client_email,
            "client_id": "100000000000000000001",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
        });
        std::fs::write(path, serde_json::to_string_pretty(&key).unwrap()).unwrap();
    }

    /// A JWT as the tool signs it, for tests of the server itself.
    pub fn sign(&self, subject: &str, audience: &str) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let claims = serde_json::json!({
            "iss": self.client_email, "scope": GOOGLE_SCOPE, "aud": audience, "sub": subject,
            "iat": now, "exp": now + 3600,
        });
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(self.private_key_pem.as_bytes()).unwrap();
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &claims,
            &key,
        )
        .unwrap()
    }
}

fn openssl(args: &[&str], input: &str) -> String {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        // Its key-generation progress (`.....+++`) would fill the test log.
        .stderr(Stdio::piped())
        .spawn()
        .expect("the `openssl` command, to make an RSA key");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// An HTTPS client that trusts `ca` and returns error statuses as answers.
pub fn https_agent(ca: &super::tls::TestCa) -> ureq::Agent {
    let der = ca.certificate_der();
    let certs = [ureq::tls::Certificate::from_der(&der).to_owned()];
    let tls = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .build();
    ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .build()
        .into()
}
