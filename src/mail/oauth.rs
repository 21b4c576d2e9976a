//! OAuth 2.0 for the relay (XOAUTH2): the settings, a token kept in memory for one run, and one-line errors that never show a secret.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow, bail};
use lettre::transport::smtp::authentication::Credentials;
use oauth2::basic::BasicClient;
use oauth2::{AuthType, ClientId, ClientSecret, RequestTokenError, Scope, TokenResponse, TokenUrl};

/// Microsoft 365's token endpoint, for a tenant (its id or domain).
const MICROSOFT_TOKEN_URL: &str = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token";
/// Exchange Online's SMTP: the permissions granted to the app (SMTP.SendAsApp).
const MICROSOFT_SCOPE: &str = "https://outlook.office365.com/.default";
/// Gmail, including SMTP, for the mailbox the service account acts as.
const GOOGLE_SCOPE: &str = "https://mail.google.com/";
/// RFC 7523: a signed JWT exchanged for an access token.
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// How long the signed JWT is valid: Google's maximum.
const ASSERTION_LIFETIME: u64 = 3600;
/// For the whole token request, connection included.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A value that must never be printed: its Debug says so instead.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    #[cfg(test)]
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
    /// Reads the key file. Errors name the file and the field, never the content.
    pub fn read(path: &Path) -> anyhow::Result<ServiceAccountKey> {
        let shown = path.display();
        let text = std::fs::read_to_string(path)
            .map_err(|error| anyhow!("cannot read the service-account key file `{shown}`: {error}"))?;
        ServiceAccountKey::parse(&text).map_err(|problem| anyhow!("the service-account key file `{shown}` {problem}"))
    }

    /// Parses the key file's JSON; the error completes "the key file … ".
    fn parse(text: &str) -> Result<ServiceAccountKey, String> {
        // Through `Value`, not a typed struct: serde's type errors quote the
        // value they met, which here could be the private key.
        let json: serde_json::Value = serde_json::from_str(text)
            .map_err(|error| format!("is not JSON (line {}, column {})", error.line(), error.column()))?;
        let field = |name: &str| -> Result<String, String> {
            json.get(name)
                .and_then(serde_json::Value::as_str)
                .filter(|value| !value.trim().is_empty())
                .map(str::to_string)
                .ok_or_else(|| format!("has no `{name}`: use the JSON key file Google issues for a service account"))
        };
        let key = ServiceAccountKey {
            client_email: field("client_email")?,
            private_key: Secret(field("private_key")?),
            private_key_id: field("private_key_id").ok(),
            token_uri: field("token_uri")?,
        };
        jsonwebtoken::EncodingKey::from_rsa_pem(key.private_key.expose().as_bytes())
            .map_err(|_| "has a `private_key` that is not an RSA private key in PEM".to_string())?;
        check_endpoint(&key.token_uri).map_err(|problem| format!("has a `token_uri` that {problem}"))?;
        Ok(key)
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

/// The OAuth settings as flags and environment gave them (empty means unset);
/// [`OAuthSettings::from_values`] checks them and applies the defaults.
#[derive(Default, Clone)]
pub struct OAuthValues {
    /// `SMTP_OAUTH_TENANT`
    pub tenant: Option<String>,
    /// `SMTP_OAUTH_CLIENT_ID`
    pub client_id: Option<String>,
    /// `SMTP_OAUTH_CLIENT_SECRET`
    pub client_secret: Option<String>,
    /// `SMTP_OAUTH_CLIENT_SECRET_FILE`
    pub client_secret_file: Option<PathBuf>,
    /// `SMTP_OAUTH_SERVICE_ACCOUNT`
    pub service_account: Option<PathBuf>,
    /// `SMTP_OAUTH_TOKEN_URL`
    pub token_url: Option<String>,
    /// `SMTP_OAUTH_SCOPE`
    pub scope: Option<String>,
}

impl OAuthSettings {
    /// Microsoft 365: the tenant's v2.0 token endpoint and Exchange Online's scope.
    pub fn microsoft(tenant: &str, client_id: &str, client_secret: Secret) -> anyhow::Result<OAuthSettings> {
        // A tenant is a GUID or a domain: nothing that could change the URL's path.
        if tenant.is_empty()
            || !tenant
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        {
            bail!("the tenant `{tenant}` is not a tenant id or domain (set `SMTP_OAUTH_TENANT`)");
        }
        Ok(OAuthSettings::ClientCredentials {
            token_url: MICROSOFT_TOKEN_URL.replace("{tenant}", tenant),
            client_id: client_id.to_string(),
            client_secret,
            scope: MICROSOFT_SCOPE.to_string(),
        })
    }

    /// Google Workspace: the key's own token endpoint and Gmail's scope, for `mailbox`.
    pub fn google(key: ServiceAccountKey, mailbox: &str) -> OAuthSettings {
        OAuthSettings::ServiceAccount {
            key,
            subject: mailbox.to_string(),
            scope: GOOGLE_SCOPE.to_string(),
        }
    }

    /// Checks the settings: `None` when no OAuth setting is given. `mailbox`
    /// is the relay URL's user, the mailbox that sends.
    pub fn from_values(values: OAuthValues, mailbox: &str) -> anyhow::Result<Option<OAuthSettings>> {
        let text = |value: Option<String>| value.map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let path = |value: Option<PathBuf>| value.filter(|p| !p.as_os_str().is_empty());
        let (tenant, client_id, client_secret) = (
            text(values.tenant),
            text(values.client_id),
            values.client_secret.filter(|s| !s.is_empty()),
        );
        let (secret_file, service_account) = (path(values.client_secret_file), path(values.service_account));
        let (token_url, scope) = (text(values.token_url), text(values.scope));
        let client_side = tenant.is_some() || client_id.is_some() || client_secret.is_some() || secret_file.is_some();

        let mut settings = match service_account {
            Some(_) if client_side => bail!(
                "set either `SMTP_OAUTH_SERVICE_ACCOUNT` (Google) or `SMTP_OAUTH_CLIENT_ID` and its secret (Microsoft), not both"
            ),
            // The service account acts as this user: without one Google refuses.
            Some(_) if mailbox.trim().is_empty() => {
                bail!(
                    "`SMTP_OAUTH_SERVICE_ACCOUNT` needs the sending mailbox as the user of `SMTP_URL` (`smtp://USER@host`)"
                )
            }
            Some(path) => OAuthSettings::google(ServiceAccountKey::read(&path)?, mailbox),
            None if !client_side => {
                if token_url.is_some() || scope.is_some() {
                    bail!(
                        "`SMTP_OAUTH_TOKEN_URL` and `SMTP_OAUTH_SCOPE` need `SMTP_OAUTH_CLIENT_ID` or `SMTP_OAUTH_SERVICE_ACCOUNT`"
                    );
                }
                return Ok(None);
            }
            None => {
                let client_id = client_id.context("set `SMTP_OAUTH_CLIENT_ID`, the application (client) id")?;
                let secret = match (client_secret, secret_file) {
                    (Some(_), Some(_)) => {
                        bail!("set `SMTP_OAUTH_CLIENT_SECRET` or `SMTP_OAUTH_CLIENT_SECRET_FILE`, not both")
                    }
                    (Some(secret), None) => Secret(secret),
                    (None, Some(file)) => read_secret_file(&file)?,
                    (None, None) => bail!("set `SMTP_OAUTH_CLIENT_SECRET` or `SMTP_OAUTH_CLIENT_SECRET_FILE`"),
                };
                match (tenant, &token_url) {
                    (Some(tenant), _) => OAuthSettings::microsoft(&tenant, &client_id, secret)?,
                    // Another provider: its token endpoint instead of a tenant.
                    (None, Some(url)) => OAuthSettings::ClientCredentials {
                        token_url: url.clone(),
                        client_id,
                        client_secret: secret,
                        scope: MICROSOFT_SCOPE.to_string(),
                    },
                    (None, None) => bail!("set `SMTP_OAUTH_TENANT` (or `SMTP_OAUTH_TOKEN_URL`)"),
                }
            }
        };
        if let Some(url) = token_url {
            check_endpoint(&url).map_err(|problem| anyhow!("`SMTP_OAUTH_TOKEN_URL` {problem}"))?;
            match &mut settings {
                OAuthSettings::ClientCredentials { token_url, .. } => *token_url = url,
                // Google's `aud` is the endpoint the JWT is exchanged at.
                OAuthSettings::ServiceAccount { key, .. } => key.token_uri = url,
            }
        }
        if let Some(new_scope) = scope {
            match &mut settings {
                OAuthSettings::ClientCredentials { scope, .. } | OAuthSettings::ServiceAccount { scope, .. } => {
                    *scope = new_scope
                }
            }
        }
        Ok(Some(settings))
    }

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

fn read_secret_file(path: &Path) -> anyhow::Result<Secret> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|error| anyhow!("cannot read `SMTP_OAUTH_CLIENT_SECRET_FILE` `{shown}`: {error}"))?;
    // Files usually end with a newline that is not part of the secret.
    let secret = text.trim_end_matches(['\r', '\n']);
    if secret.is_empty() {
        bail!("`SMTP_OAUTH_CLIENT_SECRET_FILE` `{shown}` is empty");
    }
    Ok(Secret(secret.to_string()))
}

/// A token endpoint receives a secret: HTTPS, or plain HTTP on loopback only
/// (as for SMTP credentials). The error completes "`…` ".
fn check_endpoint(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|_| "is not a URL".to_string())?;
    let loopback = match parsed.host() {
        Some(url::Host::Domain(name)) => name == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(format!("is not `https://`: `{}`", shown_endpoint(url))),
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
            Problem::Refused {
                status,
                code: Some(code),
            } => {
                write!(
                    f,
                    "the token endpoint `{endpoint}` refused the request: {code} (HTTP {status})"
                )
            }
            Problem::Refused { status, code: None } => {
                write!(f, "the token endpoint `{endpoint}` refused the request: HTTP {status}")
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
            ureq::Error::StatusCode(status) => {
                return TokenError::new(
                    url,
                    Problem::Refused {
                        status: *status,
                        code: None,
                    },
                );
            }
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

/// Fetches a token, once; `http` comes from [`http_agent`].
pub fn fetch_token(settings: &OAuthSettings, http: &ureq::Agent) -> Result<AccessToken, TokenError> {
    match settings {
        OAuthSettings::ClientCredentials {
            token_url,
            client_id,
            client_secret,
            scope,
        } => client_credentials(token_url, client_id, client_secret, scope, http),
        OAuthSettings::ServiceAccount { key, subject, scope } => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            let assertion = sign_assertion(key, subject, scope, now)?;
            jwt_bearer(&key.token_uri, &assertion, http)
        }
    }
}

fn client_credentials(
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
    let encoding =
        jsonwebtoken::EncodingKey::from_rsa_pem(key.private_key.expose().as_bytes()).map_err(|_| signing())?;
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

/// What lettre's `Mechanism::Xoauth2` needs: it sends
/// `user=MAILBOX\x01auth=Bearer TOKEN\x01\x01` itself.
pub fn xoauth2_credentials(mailbox: &str, token: &AccessToken) -> Credentials {
    Credentials::new(mailbox.to_string(), token.secret().to_string())
}

type Fetch = Box<dyn Fn() -> Result<AccessToken, TokenError> + Send + Sync>;

/// The run's token: fetched on first use, fetched again only when the relay
/// rejects it, and at most once a run, so a relay that rejects the renewed
/// token too ends the run. A failed fetch is final for the run too: the
/// other connections get the same error without asking again. Shared by the
/// run's connections.
pub struct TokenCache {
    fetch: Fetch,
    state: Mutex<CacheState>,
}

#[derive(Default)]
struct CacheState {
    token: Option<AccessToken>,
    failed: Option<TokenError>,
    renewed: bool,
    fetches: usize,
}

impl CacheState {
    fn fetch(&mut self, fetch: &Fetch) -> Result<AccessToken, TokenError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        self.fetches += 1;
        match fetch() {
            Ok(token) => {
                self.token = Some(token.clone());
                Ok(token)
            }
            Err(error) => {
                self.token = None;
                self.failed = Some(error.clone());
                Err(error)
            }
        }
    }
}

impl TokenCache {
    pub fn new(fetch: impl Fn() -> Result<AccessToken, TokenError> + Send + Sync + 'static) -> TokenCache {
        TokenCache {
            fetch: Box::new(fetch),
            state: Mutex::new(CacheState::default()),
        }
    }

    /// The token, fetched on the first call.
    pub fn current(&self) -> Result<AccessToken, TokenError> {
        // The lock is held while fetching: other connections wait for this
        // token rather than each asking for one.
        let mut state = self.state.lock().unwrap();
        if let Some(token) = &state.token {
            return Ok(token.clone());
        }
        state.fetch(&self.fetch)
    }

    /// The relay rejected `rejected` (535): a new token, or `None` when the
    /// token was already renewed once this run and the rejection is final.
    /// A connection still holding the old token gets the renewed one, with
    /// no new request.
    pub fn refresh_after_rejection(&self, rejected: &AccessToken) -> Result<Option<AccessToken>, TokenError> {
        let mut state = self.state.lock().unwrap();
        if let Some(error) = &state.failed {
            return Err(error.clone());
        }
        if let Some(token) = state.token.as_ref().filter(|token| *token != rejected) {
            return Ok(Some(token.clone()));
        }
        if state.renewed {
            return Ok(None);
        }
        state.renewed = true;
        state.fetch(&self.fetch).map(Some)
    }

    /// How many times a token was asked for this run.
    #[cfg(test)]
    pub fn fetches(&self) -> usize {
        self.state.lock().unwrap().fetches
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const SECRET: &str = "s3cr3t-Value~42";

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
            scope: MICROSOFT_SCOPE.to_string(),
        }
    }

    fn assert_clean(text: &str) {
        assert!(!text.contains(SECRET), "{text}");
        assert!(!text.contains("tok-"), "{text}");
        assert!(!text.contains("PRIVATE KEY"), "{text}");
        assert!(!text.contains('\n'), "{text}");
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

    fn test_key() -> String {
        let output = std::process::Command::new("openssl")
            .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
            .output()
            .expect("openssl");
        String::from_utf8(output.stdout).unwrap()
    }

    fn key_json(private_key: &str, token_uri: &str) -> String {
        serde_json::json!({
            "type": "service_account",
            "client_email": "reminders@school.iam.gserviceaccount.com",
            "private_key_id": "kid-1",
            "private_key": private_key,
            "token_uri": token_uri,
        })
        .to_string()
    }

    #[test]
    fn service_account_key_files() {
        let pem = test_key();
        let key = ServiceAccountKey::parse(&key_json(&pem, "https://oauth2.googleapis.com/token")).unwrap();
        assert_eq!(key.client_email, "reminders@school.iam.gserviceaccount.com");
        assert_eq!(key.token_uri, "https://oauth2.googleapis.com/token");
        assert!(!format!("{key:?}").contains("PRIVATE KEY"));

        let problem = |json: &str| ServiceAccountKey::parse(json).unwrap_err();
        assert!(problem("{").starts_with("is not JSON"));
        assert!(problem(r#"{"private_key": 5}"#).contains("`client_email`"));
        let not_rsa = problem(&key_json(
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "https://x/",
        ));
        assert!(not_rsa.contains("not an RSA private key"), "{not_rsa}");
        assert!(problem(&key_json(&pem, "http://example.com/token")).contains("not `https://`"));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.json");
        std::fs::write(&path, "{\"private_key\": \"-----BEGIN PRIVATE KEY-----\"").unwrap();
        let error = ServiceAccountKey::read(&path).unwrap_err().to_string();
        assert!(error.contains(&path.display().to_string()), "{error}");
        assert!(!error.contains("BEGIN"), "{error}");
        let missing = ServiceAccountKey::read(&dir.path().join("none.json"))
            .unwrap_err()
            .to_string();
        assert!(
            missing.starts_with("cannot read the service-account key file"),
            "{missing}"
        );
    }

    #[test]
    fn the_assertion_carries_googles_claims() {
        let pem = test_key();
        let key = ServiceAccountKey::parse(&key_json(&pem, "https://127.0.0.1:1/token")).unwrap();
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
        let key = ServiceAccountKey::parse(&key_json(&test_key(), &url)).unwrap();
        let error = fetch_token(&OAuthSettings::google(key, "office@school.example"), &agent()).unwrap_err();
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
        let pem = test_key();
        let (url, server) = answer_once(
            200,
            r#"{"access_token":"tok-7","expires_in":3599,"token_type":"Bearer"}"#,
        );
        let key = ServiceAccountKey::parse(&key_json(&pem, &url)).unwrap();
        let token = fetch_token(&OAuthSettings::google(key, "office@school.example"), &agent()).unwrap();
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

    #[test]
    fn connections_asking_at_once_share_one_fetch() {
        let (cache, calls) = counting_cache(usize::MAX);
        let cache = Arc::new(cache);
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let cache = cache.clone();
                std::thread::spawn(move || cache.current().unwrap())
            })
            .collect();
        for thread in threads {
            assert_eq!(thread.join().unwrap().secret(), "tok-1");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn settings_from_values() {
        let values = |f: fn(&mut OAuthValues)| {
            let mut values = OAuthValues::default();
            f(&mut values);
            OAuthSettings::from_values(values, "office@school.example")
        };
        assert!(values(|_| {}).unwrap().is_none());
        let settings = values(|v| {
            v.tenant = Some("contoso.onmicrosoft.com".into());
            v.client_id = Some("app".into());
            v.client_secret = Some(SECRET.into());
        })
        .unwrap()
        .unwrap();
        assert_eq!(
            settings.token_url(),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        assert!(matches!(&settings, OAuthSettings::ClientCredentials { scope, .. } if scope == MICROSOFT_SCOPE));
        assert_eq!(settings.secrets(), [SECRET]);
        assert!(!format!("{settings:?}").contains(SECRET));

        let overridden = values(|v| {
            v.client_id = Some("app".into());
            v.client_secret = Some(SECRET.into());
            v.token_url = Some("https://127.0.0.1:8443/token".into());
            v.scope = Some("smtp".into());
        })
        .unwrap()
        .unwrap();
        assert_eq!(overridden.token_url(), "https://127.0.0.1:8443/token");
        assert!(matches!(&overridden, OAuthSettings::ClientCredentials { scope, .. } if scope == "smtp"));

        let error = |f: fn(&mut OAuthValues)| values(f).unwrap_err().to_string();
        assert!(error(|v| v.client_id = Some("app".into())).contains("`SMTP_OAUTH_CLIENT_SECRET`"));
        assert!(error(|v| v.tenant = Some("t".into())).contains("`SMTP_OAUTH_CLIENT_ID`"));
        assert!(
            error(|v| {
                v.client_id = Some("app".into());
                v.client_secret = Some(SECRET.into());
            })
            .contains("`SMTP_OAUTH_TENANT`")
        );
        assert!(
            error(|v| {
                v.client_id = Some("app".into());
                v.service_account = Some("key.json".into());
            })
            .contains("not both")
        );
        assert!(
            error(|v| {
                v.tenant = Some("../evil".into());
                v.client_id = Some("app".into());
                v.client_secret = Some(SECRET.into());
            })
            .contains("not a tenant")
        );
        let plain = error(|v| {
            v.tenant = Some("t".into());
            v.client_id = Some("app".into());
            v.client_secret = Some(SECRET.into());
            v.token_url = Some("http://login.example/token?k=v".into());
        });
        assert_eq!(
            plain,
            "`SMTP_OAUTH_TOKEN_URL` is not `https://`: `http://login.example/token`"
        );
    }

    #[test]
    fn secret_and_key_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, format!("{SECRET}\n")).unwrap();
        let mut values = OAuthValues {
            tenant: Some("t".into()),
            client_id: Some("app".into()),
            client_secret_file: Some(file.clone()),
            ..OAuthValues::default()
        };
        let settings = OAuthSettings::from_values(values.clone(), "m@x").unwrap().unwrap();
        assert_eq!(settings.secrets(), [SECRET]);
        values.client_secret = Some(SECRET.into());
        let both = OAuthSettings::from_values(values.clone(), "m@x")
            .unwrap_err()
            .to_string();
        assert!(both.contains("not both"), "{both}");
        values.client_secret = None;
        values.client_secret_file = Some(dir.path().join("missing"));
        let missing = OAuthSettings::from_values(values, "m@x").unwrap_err().to_string();
        assert!(missing.contains("missing`") && missing.starts_with("cannot read `SMTP_OAUTH_CLIENT_SECRET_FILE`"));

        let key = dir.path().join("key.json");
        std::fs::write(&key, key_json(&test_key(), "https://oauth2.googleapis.com/token")).unwrap();
        let google = OAuthSettings::from_values(
            OAuthValues {
                service_account: Some(key),
                ..OAuthValues::default()
            },
            "office@school.example",
        )
        .unwrap()
        .unwrap();
        assert!(matches!(&google, OAuthSettings::ServiceAccount { subject, scope, .. }
            if subject == "office@school.example" && scope == GOOGLE_SCOPE));
        assert_eq!(google.token_url(), "https://oauth2.googleapis.com/token");
        assert!(!format!("{google:?}").contains("PRIVATE"));
        let no_mailbox = OAuthSettings::from_values(
            OAuthValues {
                service_account: Some(dir.path().join("key.json")),
                ..OAuthValues::default()
            },
            "",
        )
        .unwrap_err();
        assert!(no_mailbox.to_string().contains("sending mailbox"), "{no_mailbox}");
    }

    #[test]
    fn xoauth2_uses_the_mailbox_and_token() {
        let credentials = xoauth2_credentials("office@school.example", &AccessToken::new("tok-9", None));
        let line = lettre::transport::smtp::authentication::Mechanism::Xoauth2
            .response(&credentials, None)
            .unwrap();
        assert_eq!(line, "user=office@school.example\x01auth=Bearer tok-9\x01\x01");
    }

    fn counting_cache(fail_from: usize) -> (TokenCache, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let cache = TokenCache::new(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            if n >= fail_from {
                return Err(TokenError::new("https://t/", Problem::Unreachable("down".into())));
            }
            Ok(AccessToken::new(format!("tok-{n}"), None))
        });
        (cache, calls)
    }

    #[test]
    fn the_token_is_fetched_once_and_renewed_once() {
        let (cache, calls) = counting_cache(usize::MAX);
        let first = cache.current().unwrap();
        assert_eq!(cache.current().unwrap(), first);
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let second = cache.refresh_after_rejection(&first).unwrap().unwrap();
        assert_eq!(second.secret(), "tok-2");
        // Another connection rejected with the old token: the new one, no request.
        assert_eq!(cache.refresh_after_rejection(&first).unwrap(), Some(second.clone()));
        assert_eq!(cache.current().unwrap(), second);
        // The renewed token rejected too: final.
        assert_eq!(cache.refresh_after_rejection(&second).unwrap(), None);
        assert_eq!((calls.load(Ordering::SeqCst), cache.fetches()), (2, 2));
    }

    #[test]
    fn a_failed_fetch_is_the_callers_error() {
        let (cache, calls) = counting_cache(1);
        assert!(matches!(cache.current().unwrap_err().problem, Problem::Unreachable(_)));
        // The other connections get the same error without asking again.
        assert!(cache.current().is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let (cache, calls) = counting_cache(2);
        let first = cache.current().unwrap();
        assert!(cache.refresh_after_rejection(&first).is_err());
        assert!(cache.refresh_after_rejection(&first).is_err());
        assert!(cache.current().is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        assert_eq!(format!("{:?}", Secret::new(SECRET)), "Secret([redacted])");
    }
}
