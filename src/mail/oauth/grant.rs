//! The two ways to a token: client credentials (Microsoft 365) and a
//! service account's signed JWT (Google, RFC 7523), each one HTTP exchange
//! with the token endpoint.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use oauth2::basic::BasicClient;
use oauth2::{AuthType, ClientId, ClientSecret, RequestTokenError, Scope, TokenResponse, TokenUrl};

use super::{AccessToken, Problem, Secret, ServiceAccountKey, TokenError};

/// RFC 7523: a signed JWT exchanged for an access token.
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// How long the signed JWT is valid: Google's maximum.
const ASSERTION_LIFETIME: u64 = 3600;
/// For the whole token request, connection included.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The HTTP client for token requests: our trusted roots (src/tls.rs), a
/// timeout, and error statuses returned as answers, since their bodies say why.
pub fn http_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(TIMEOUT))
        .http_status_as_error(false)
        .tls_config(crate::tls::http_config())
        .build()
        .into()
}

/// Google's grant: a JWT signed now with the key, exchanged for a token.
pub fn service_account(
    key: &ServiceAccountKey,
    subject: &str,
    scope: &str,
    http: &ureq::Agent,
) -> Result<AccessToken, TokenError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let assertion = sign_assertion(key, subject, scope, now)?;
    jwt_bearer(&key.token_uri, &assertion, http)
}

pub fn client_credentials(
    url: &str,
    client_id: &str,
    secret: &Secret,
    scope: &str,
    http: &ureq::Agent,
) -> Result<AccessToken, TokenError> {
    let token_url = TokenUrl::new(url.to_string()).map_err(|_| TokenError::new(url, Problem::NotAToken))?;
    let client = BasicClient::new(ClientId::new(client_id.to_string()))
        .set_client_secret(ClientSecret::new(secret.expose().to_string()))
        .set_token_uri(token_url)
        // Microsoft's documented form: the secret in the body, not Basic auth.
        .set_auth_type(AuthType::RequestBody);
    // oauth2 drops the status and body of an error it cannot parse, so the
    // client keeps the last answer's for the error line.
    let answer = Mutex::new((0u16, Vec::new()));
    let send = |request: oauth2::HttpRequest| -> Result<oauth2::HttpResponse, ureq::Error> {
        let (parts, mut body) = http.run(request)?.into_parts();
        let bytes = body.read_to_vec()?;
        *answer.lock().unwrap() = (parts.status.as_u16(), bytes.clone());
        Ok(oauth2::http::Response::from_parts(parts, bytes))
    };
    let result = client
        .exchange_client_credentials()
        .add_scope(Scope::new(scope.to_string()))
        .request(&send);
    match result {
        Ok(token) => Ok(AccessToken::new(
            token.access_token().secret().clone(),
            token.expires_in(),
        )),
        Err(RequestTokenError::Request(error)) => Err(TokenError::unreachable(url, &error)),
        Err(_) => {
            let (status, body) = answer.into_inner().unwrap();
            match status {
                200 => Err(TokenError::new(url, Problem::NotAToken)),
                _ => Err(TokenError::refused(url, status, &body)),
            }
        }
    }
}

/// The JWT claims Google asks of a service account acting as a user.
#[derive(serde::Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    sub: &'a str,
    iat: u64,
    exp: u64,
}

/// Signs the assertion (RS256) at `now`, in seconds since the epoch.
fn sign_assertion(key: &ServiceAccountKey, subject: &str, scope: &str, now: u64) -> Result<String, TokenError> {
    let signing = || TokenError::new(&key.token_uri, Problem::Signing);
    let encoding = key.signing_key().ok_or_else(signing)?;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = key.private_key_id.clone();
    let claims = Claims {
        iss: &key.client_email,
        scope,
        aud: &key.token_uri,
        sub: subject,
        iat: now,
        exp: now + ASSERTION_LIFETIME,
    };
    jsonwebtoken::encode(&header, &claims, &encoding).map_err(|_| signing())
}

/// A token endpoint's success. No Debug: it holds the token.
#[derive(serde::Deserialize)]
struct Granted {
    access_token: String,
    expires_in: Option<u64>,
}

/// RFC 7523's exchange: oauth2 has no JWT-bearer grant, so a form POST with
/// the same client.
fn jwt_bearer(url: &str, assertion: &str, http: &ureq::Agent) -> Result<AccessToken, TokenError> {
    let mut response = http
        .post(url)
        .send_form([("grant_type", JWT_BEARER), ("assertion", assertion)])
        .map_err(|error| TokenError::unreachable(url, &error))?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .read_to_vec()
        .map_err(|error| TokenError::unreachable(url, &error))?;
    if status != 200 {
        return Err(TokenError::refused(url, status, &body));
    }
    let granted: Granted = serde_json::from_slice(&body).map_err(|_| TokenError::new(url, Problem::NotAToken))?;
    if granted.access_token.is_empty() {
        return Err(TokenError::new(url, Problem::NotAToken));
    }
    Ok(AccessToken::new(
        granted.access_token,
        granted.expires_in.map(Duration::from_secs),
    ))
}

impl TokenError {
    fn refused(url: &str, status: u16, body: &[u8]) -> TokenError {
        TokenError::new(
            url,
            Problem::Refused {
                status,
                code: provider_code(body),
            },
        )
    }

    fn unreachable(url: &str, error: &ureq::Error) -> TokenError {
        // ureq's own Display adds a prefix ("io: "); the inner error reads better.
        let reason = match error {
            ureq::Error::Io(inner) => inner.to_string(),
            ureq::Error::Rustls(inner) => format!("TLS: {inner}"),
            ureq::Error::StatusCode(status) => return TokenError::refused(url, *status, &[]),
            other => other.to_string(),
        };
        TokenError::new(url, Problem::Unreachable(reason))
    }
}

/// The provider's error code in an OAuth error body: Microsoft's `AADSTS…`
/// (from `error_description`, else `error_codes`) with the `error` field, or
/// the `error` field alone. Only code-like text is kept: the body is theirs.
fn provider_code(body: &[u8]) -> Option<String> {
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    let code_like = |text: &str| {
        !text.is_empty() && text.len() <= 64 && text.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    };
    let error = json.get("error").and_then(|e| e.as_str()).filter(|e| code_like(e));
    let from_description = json
        .get("error_description")
        .and_then(|d| d.as_str())
        .and_then(|d| d.find("AADSTS").map(|start| &d[start..]))
        .map(|d| {
            let digits = d[6..].chars().take_while(char::is_ascii_digit).count();
            &d[..6 + digits]
        })
        .filter(|code| code.len() > 6)
        .map(str::to_string);
    let aadsts = from_description.or_else(|| {
        let first = json.get("error_codes")?.as_array()?.first()?.as_u64()?;
        Some(format!("AADSTS{first}"))
    });
    match (aadsts, error) {
        (Some(code), Some(error)) => Some(format!("{code} ({error})")),
        (Some(code), None) => Some(code),
        (None, Some(error)) => Some(error.to_string()),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{OAuthSettings, fetch_token, test_rsa_key};
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    const SECRET: &str = "s3cr3t-Value~42";
    const GOOGLE_SCOPE: &str = "https://mail.google.com/";

    /// A plain-HTTP server on loopback that answers one request with
    /// `status` and `body`, and hands back what it was sent.
    fn answer_once(status: u16, body: &'static str) -> (String, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://127.0.0.1:{}/tenant/token?x=1",
            listener.local_addr().unwrap().port()
        );
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream);
            let (mut request, mut length) = (String::new(), 0);
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(value) = line.to_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap();
                }
                request.push_str(&line);
                if line == "\r\n" {
                    break;
                }
            }
            let mut form = vec![0; length];
            reader.read_exact(&mut form).unwrap();
            request.push_str(&String::from_utf8(form).unwrap());
            let answer = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            reader.get_mut().write_all(answer.as_bytes()).unwrap();
            request
        });
        (url, server)
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder().http_status_as_error(false).build().into()
    }

    fn microsoft(url: &str) -> OAuthSettings {
        OAuthSettings::ClientCredentials {
            token_url: url.to_string(),
            client_id: "app-id".to_string(),
            client_secret: Secret::new(SECRET),
            scope: "https://outlook.office365.com/.default".to_string(),
        }
    }

    fn assert_clean(text: &str) {
        assert!(!text.contains(SECRET), "{text}");
        assert!(!text.contains("tok-"), "{text}");
        assert!(!text.contains("PRIVATE KEY"), "{text}");
        assert!(!text.contains('\n'), "{text}");
    }

    /// A service account's key, as `settings` reads it from Google's key file.
    fn service_account_key(private_key: &str, token_uri: &str) -> ServiceAccountKey {
        ServiceAccountKey {
            client_email: "reminders@school.iam.gserviceaccount.com".to_string(),
            private_key: Secret::new(private_key),
            private_key_id: Some("kid-1".to_string()),
            token_uri: token_uri.to_string(),
        }
    }

    fn google(key: ServiceAccountKey) -> OAuthSettings {
        OAuthSettings::ServiceAccount {
            key,
            subject: "office@school.example".to_string(),
            scope: GOOGLE_SCOPE.to_string(),
        }
    }

    #[test]
    fn client_credentials_posts_the_form_and_reads_the_token() {
        let (url, server) = answer_once(
            200,
            r#"{"access_token":"tok-1","token_type":"Bearer","expires_in":3599}"#,
        );
        let token = fetch_token(&microsoft(&url), &agent()).unwrap();
        assert_eq!(token.secret(), "tok-1");
        assert_eq!(token.expires_in, Some(Duration::from_secs(3599)));
        assert_eq!(format!("{token:?}"), "AccessToken([redacted])");
        let request = server.join().unwrap();
        assert!(request.contains("grant_type=client_credentials"), "{request}");
        assert!(request.contains("client_id=app-id"), "{request}");
        assert!(request.contains("client_secret=s3cr3t-Value%7E42"), "{request}");
        assert!(
            request.contains("scope=https%3A%2F%2Foutlook.office365.com%2F.default"),
            "{request}"
        );
    }

    #[test]
    fn a_bad_secret_names_the_endpoint_and_aadsts() {
        let body = r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided. Trace ID: x","error_codes":[7000215]}"#;
        let (url, _server) = answer_once(401, body);
        let error = fetch_token(&microsoft(&url), &agent()).unwrap_err();
        let line = error.to_string();
        assert_eq!(
            line,
            format!(
                "the token endpoint `{}` refused the request: AADSTS7000215 (invalid_client) (HTTP 401)",
                url.split('?').next().unwrap()
            )
        );
        assert_clean(&line);
        assert_clean(&format!("{error:?}"));
    }

    #[test]
    fn a_server_error_without_json_gives_the_status() {
        let (url, _server) = answer_once(500, "<html>oops</html>");
        let error = fetch_token(&microsoft(&url), &agent()).unwrap_err();
        assert_eq!(
            error.problem,
            Problem::Refused {
                status: 500,
                code: None
            }
        );
        assert!(error.to_string().ends_with("refused the request: HTTP 500"), "{error}");
    }

    #[test]
    fn a_refused_connection_is_named() {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = format!("http://127.0.0.1:{port}/token");
        let error = fetch_token(&microsoft(&url), &agent()).unwrap_err();
        assert!(matches!(error.problem, Problem::Unreachable(_)), "{error:?}");
        let line = error.to_string();
        assert!(
            line.starts_with(&format!("cannot reach the token endpoint `{url}`: ")),
            "{line}"
        );
        assert!(line.to_lowercase().contains("refused"), "{line}");
        assert_clean(&line);
    }

    #[test]
    fn provider_codes() {
        let code = |body: &str| provider_code(body.as_bytes());
        assert_eq!(
            code(r#"{"error":"invalid_client","error_codes":[7000215]}"#).as_deref(),
            Some("AADSTS7000215 (invalid_client)")
        );
        assert_eq!(
            code(r#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#).as_deref(),
            Some("invalid_grant")
        );
        assert_eq!(
            code(r#"{"error_description":"AADSTS700016: app not found"}"#).as_deref(),
            Some("AADSTS700016")
        );
        // Whatever a server puts in `error`, only code-like text is shown.
        assert_eq!(code(r#"{"error":"a secret\nwith lines"}"#), None);
        assert_eq!(code("not json"), None);
    }

    #[test]
    fn the_assertion_carries_googles_claims() {
        let pem = test_rsa_key();
        let key = service_account_key(&pem, "https://127.0.0.1:1/token");
        let jwt = sign_assertion(&key, "office@school.example", GOOGLE_SCOPE, 1_000).unwrap();
        let header = jsonwebtoken::decode_header(&jwt).unwrap();
        assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
        assert_eq!(header.kid.as_deref(), Some("kid-1"));
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.insecure_disable_signature_validation();
        validation.validate_exp = false;
        validation.set_audience(&["https://127.0.0.1:1/token"]);
        let claims =
            jsonwebtoken::decode::<serde_json::Value>(&jwt, &jsonwebtoken::DecodingKey::from_secret(&[]), &validation)
                .unwrap()
                .claims;
        assert_eq!(claims["iss"], "reminders@school.iam.gserviceaccount.com");
        assert_eq!(claims["sub"], "office@school.example");
        assert_eq!(claims["scope"], GOOGLE_SCOPE);
        assert_eq!(claims["aud"], "https://127.0.0.1:1/token");
        assert_eq!(
            (claims["iat"].as_u64(), claims["exp"].as_u64()),
            (Some(1_000), Some(4_600))
        );
    }

    #[test]
    fn a_refused_jwt_names_invalid_grant() {
        let (url, server) = answer_once(
            400,
            r#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#,
        );
        let key = service_account_key(&test_rsa_key(), &url);
        let error = fetch_token(&google(key), &agent()).unwrap_err();
        assert!(
            error
                .to_string()
                .ends_with("refused the request: invalid_grant (HTTP 400)"),
            "{error}"
        );
        let request = server.join().unwrap();
        assert!(
            request.contains("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"),
            "{request}"
        );
        // The JWT went out, but is in no error.
        let assertion = request.split("assertion=").nth(1).unwrap();
        assert!(!error.to_string().contains(assertion) && !format!("{error:?}").contains(assertion));
    }

    #[test]
    fn a_service_account_gets_a_token_for_a_signed_jwt() {
        let pem = test_rsa_key();
        let (url, server) = answer_once(
            200,
            r#"{"access_token":"tok-7","expires_in":3599,"token_type":"Bearer"}"#,
        );
        let key = service_account_key(&pem, &url);
        let token = fetch_token(&google(key), &agent()).unwrap();
        assert_eq!(token.secret(), "tok-7");
        // The assertion the endpoint got verifies with the key's public half.
        let request = server.join().unwrap();
        let assertion = request.split("assertion=").nth(1).unwrap();
        let mut public = std::process::Command::new("openssl")
            .args(["pkey", "-pubout"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        public.stdin.take().unwrap().write_all(pem.as_bytes()).unwrap();
        let public = public.wait_with_output().unwrap().stdout;
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.set_audience(&[&url]);
        validation.set_issuer(&["reminders@school.iam.gserviceaccount.com"]);
        let decoding = jsonwebtoken::DecodingKey::from_rsa_pem(&public).unwrap();
        let claims = jsonwebtoken::decode::<serde_json::Value>(assertion, &decoding, &validation)
            .unwrap()
            .claims;
        assert_eq!(claims["sub"], "office@school.example");
    }
}
