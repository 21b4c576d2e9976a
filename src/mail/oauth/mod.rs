//! OAuth 2.0 for the relay (XOAUTH2): the resolved settings, a token kept in
//! memory for one run (`cache`), how a token is asked for (`grant`), and
//! one-line errors that never show a secret. The configuration turns the
//! `SMTP_OAUTH_*` values into an [`OAuthSettings`] (`config::oauth`).

mod cache;
mod grant;

use std::fmt;
use std::time::Duration;

use lettre::transport::smtp::authentication::Credentials;

pub use cache::TokenCache;
pub use grant::http_agent;

/// A value that must never be printed: its Debug says so instead.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// The parts of Google's JSON key file for a service account that we use.
#[derive(Debug, Clone)]
pub struct ServiceAccountKey {
    pub client_email: String,
    /// PEM (PKCS#8, as Google writes it).
    pub private_key: Secret,
    /// Sent as the JWT's `kid`, when the file has one.
    pub private_key_id: Option<String>,
    /// The token endpoint and the JWT's `aud`, as written in the file.
    pub token_uri: String,
}

impl ServiceAccountKey {
    /// The private key to sign with: `None` when it is not an RSA key in PEM.
    pub fn signing_key(&self) -> Option<jsonwebtoken::EncodingKey> {
        jsonwebtoken::EncodingKey::from_rsa_pem(self.private_key.expose().as_bytes()).ok()
    }
}

/// How the tool gets its token: the provider's grant and what it needs.
#[derive(Debug, Clone)]
pub enum OAuthSettings {
    /// Microsoft 365 (or any provider): an application's id and secret.
    ClientCredentials {
        token_url: String,
        client_id: String,
        client_secret: Secret,
        scope: String,
    },
    /// Google Workspace: a service account with domain-wide delegation acting
    /// as `subject`, the sending mailbox.
    ServiceAccount {
        key: ServiceAccountKey,
        subject: String,
        scope: String,
    },
}

impl OAuthSettings {
    /// Where the token comes from.
    pub fn token_url(&self) -> &str {
        match self {
            OAuthSettings::ClientCredentials { token_url, .. } => token_url,
            OAuthSettings::ServiceAccount { key, .. } => &key.token_uri,
        }
    }

    /// The texts to mask in every line the tool prints.
    pub fn secrets(&self) -> Vec<&str> {
        match self {
            OAuthSettings::ClientCredentials { client_secret, .. } => vec![client_secret.expose()],
            OAuthSettings::ServiceAccount { key, .. } => vec![key.private_key.expose()],
        }
    }
}

/// A URL as error lines show it: no user, password, query or fragment.
pub fn shown_endpoint(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.set_query(None);
            parsed.set_fragment(None);
            parsed.to_string()
        }
        Err(_) => "the token URL".to_string(),
    }
}

/// A bearer token for the relay. It lives in memory for one run only.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    secret: String,
    /// As the endpoint said; informational (a rejection is what renews it).
    pub expires_in: Option<Duration>,
}

impl AccessToken {
    pub fn new(secret: impl Into<String>, expires_in: Option<Duration>) -> AccessToken {
        AccessToken {
            secret: secret.into(),
            expires_in,
        }
    }

    pub fn secret(&self) -> &str {
        &self.secret
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken([redacted])")
    }
}

/// Why no token came: always the run's failure, never a recipient's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenError {
    /// The endpoint, shown without its query.
    pub endpoint: String,
    pub problem: Problem,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The endpoint answered with an error: the provider's code when it gave one
    /// (`AADSTS7000215 (invalid_client)`, `invalid_grant`).
    Refused { status: u16, code: Option<String> },
    /// No answer: the connection, TLS or a timeout.
    Unreachable(String),
    /// A success whose body holds no access token.
    NotAToken,
    /// The JWT could not be signed with the key.
    Signing,
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let endpoint = &self.endpoint;
        match &self.problem {
            Problem::Refused { status, code } => {
                write!(f, "the token endpoint `{endpoint}` refused the request: ")?;
                match code {
                    Some(code) => write!(f, "{code} (HTTP {status})"),
                    None => write!(f, "HTTP {status}"),
                }
            }
            Problem::Unreachable(reason) => write!(f, "cannot reach the token endpoint `{endpoint}`: {reason}"),
            Problem::NotAToken => write!(f, "the token endpoint `{endpoint}` answered without an access token"),
            Problem::Signing => write!(
                f,
                "cannot sign the token request for `{endpoint}` with the service account's key"
            ),
        }
    }
}

impl std::error::Error for TokenError {}

impl TokenError {
    fn new(url: &str, problem: Problem) -> TokenError {
        TokenError {
            endpoint: shown_endpoint(url),
            problem,
        }
    }
}

/// Fetches a token, once; `http` comes from [`http_agent`].
pub fn fetch_token(settings: &OAuthSettings, http: &ureq::Agent) -> Result<AccessToken, TokenError> {
    match settings {
        OAuthSettings::ClientCredentials {
            token_url,
            client_id,
            client_secret,
            scope,
        } => grant::client_credentials(token_url, client_id, client_secret, scope, http),
        OAuthSettings::ServiceAccount { key, subject, scope } => grant::service_account(key, subject, scope, http),
    }
}

/// What lettre's `Mechanism::Xoauth2` needs: it sends
/// `user=MAILBOX\x01auth=Bearer TOKEN\x01\x01` itself.
pub fn xoauth2_credentials(mailbox: &str, token: &AccessToken) -> Credentials {
    Credentials::new(mailbox.to_string(), token.secret().to_string())
}

/// A fresh RSA private key in PEM (PKCS#8, as Google writes it), for the
/// tests of the grants and of the key file.
#[cfg(test)]
pub fn test_rsa_key() -> String {
    let output = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
        .output()
        .expect("openssl");
    String::from_utf8(output.stdout).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xoauth2_uses_the_mailbox_and_token() {
        let credentials = xoauth2_credentials("office@school.example", &AccessToken::new("tok-9", None));
        let line = lettre::transport::smtp::authentication::Mechanism::Xoauth2
            .response(&credentials, None)
            .unwrap();
        assert_eq!(line, "user=office@school.example\x01auth=Bearer tok-9\x01\x01");
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        assert_eq!(format!("{:?}", Secret::new("s3cr3t-Value~42")), "Secret([redacted])");
    }
}
