//! The settings half of OAuth: the raw `SMTP_OAUTH_*` values checked against
//! the relay URL and turned into an [`OAuthSettings`], with the provider's
//! defaults applied and the secret and key files read. Errors name the
//! setting, never a secret. The grants and the token cache are in `mail::oauth`.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};

use crate::cli::MailArgs;
use crate::mail::{MailUrl, OAuthSettings, Secret, ServiceAccountKey, shown_endpoint};

/// The `SMTP_OAUTH_*` settings, which go with `auth=xoauth2` and only
/// with it. Every secret they hold is scrubbed from all output from here on.
pub fn resolve(args: &MailArgs, url: &MailUrl) -> anyhow::Result<Option<OAuthSettings>> {
    let values = OAuthValues {
        tenant: args.smtp_oauth_tenant.clone(),
        client_id: args.smtp_oauth_client_id.clone(),
        client_secret: args.smtp_oauth_client_secret.clone(),
        client_secret_file: args.smtp_oauth_client_secret_file.as_deref().map(Into::into),
        service_account: args.smtp_oauth_service_account.as_deref().map(Into::into),
        token_url: args.smtp_oauth_token_url.clone(),
        scope: args.smtp_oauth_scope.clone(),
    };
    // Hidden before anything is checked, so no error line can show it.
    if let Some(secret) = &values.client_secret {
        crate::redact::hide(secret);
    }
    let mailbox = url.xoauth2_mailbox();
    let settings = OAuthSettings::from_values(values, mailbox.as_deref().unwrap_or_default())?;
    if let Some(settings) = &settings {
        for secret in settings.secrets() {
            crate::redact::hide(secret);
        }
    }
    match (mailbox, settings) {
        (Some(_), None) => Err(anyhow!(
            "SMTP_URL `{}` asks for `auth=xoauth2`: set `SMTP_OAUTH_TENANT`, `SMTP_OAUTH_CLIENT_ID` and \
             `SMTP_OAUTH_CLIENT_SECRET` (Microsoft 365), or `SMTP_OAUTH_SERVICE_ACCOUNT` (Google Workspace)",
            url.display()
        )),
        (None, Some(_)) => Err(anyhow!(
            "the `SMTP_OAUTH_*` settings need `auth=xoauth2` in SMTP_URL `{}` \
             (smtp://USER@host:587?tls=required&auth=xoauth2)",
            url.display()
        )),
        (_, settings) => Ok(settings),
    }
}

/// Microsoft 365's token endpoint, for a tenant (its id or domain).
const MICROSOFT_TOKEN_URL: &str = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token";
/// Exchange Online's SMTP: the permissions granted to the app (SMTP.SendAsApp).
const MICROSOFT_SCOPE: &str = "https://outlook.office365.com/.default";
/// Gmail, including SMTP, for the mailbox the service account acts as.
const GOOGLE_SCOPE: &str = "https://mail.google.com/";

/// The OAuth settings as flags and environment gave them;
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
    fn microsoft(tenant: &str, client_id: &str, client_secret: Secret) -> anyhow::Result<OAuthSettings> {
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
    fn google(key: ServiceAccountKey, mailbox: &str) -> OAuthSettings {
        OAuthSettings::ServiceAccount {
            key,
            subject: mailbox.to_string(),
            scope: GOOGLE_SCOPE.to_string(),
        }
    }

    /// Checks the settings: `None` when no OAuth setting is given. `mailbox`
    /// is the relay URL's user, the mailbox that sends.
    pub fn from_values(values: OAuthValues, mailbox: &str) -> anyhow::Result<Option<OAuthSettings>> {
        // Never blank (the configuration unsets a blank setting), but maybe padded.
        let text = |value: Option<String>| value.map(|v| v.trim().to_string());
        let (tenant, client_id, client_secret) = (text(values.tenant), text(values.client_id), values.client_secret);
        let (secret_file, service_account) = (values.client_secret_file, values.service_account);
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
                    (Some(secret), None) => Secret::new(secret),
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
}

impl ServiceAccountKey {
    /// Reads the key file. Errors name the file and the field, never the content.
    pub fn read(path: &Path) -> anyhow::Result<ServiceAccountKey> {
        let text = read_file(path, "the service-account key file")?;
        ServiceAccountKey::parse(&text)
            .map_err(|problem| anyhow!("the service-account key file `{}` {problem}", path.display()))
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
            private_key: Secret::new(field("private_key")?),
            private_key_id: field("private_key_id").ok(),
            token_uri: field("token_uri")?,
        };
        if key.signing_key().is_none() {
            return Err("has a `private_key` that is not an RSA private key in PEM".to_string());
        }
        check_endpoint(&key.token_uri).map_err(|problem| format!("has a `token_uri` that {problem}"))?;
        Ok(key)
    }
}

fn read_secret_file(path: &Path) -> anyhow::Result<Secret> {
    let text = read_file(path, "`SMTP_OAUTH_CLIENT_SECRET_FILE`")?;
    // Files usually end with a newline that is not part of the secret.
    let secret = text.trim_end_matches(['\r', '\n']);
    if secret.is_empty() {
        bail!("`SMTP_OAUTH_CLIENT_SECRET_FILE` `{}` is empty", path.display());
    }
    Ok(Secret::new(secret))
}

/// A file's text; the error names the file as `what` and by its path.
fn read_file(path: &Path, what: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(path).map_err(|error| anyhow!("cannot read {what} `{}`: {error}", path.display()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::test_rsa_key;

    const SECRET: &str = "s3cr3t-Value~42";

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
        let pem = test_rsa_key();
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
        std::fs::write(&key, key_json(&test_rsa_key(), "https://oauth2.googleapis.com/token")).unwrap();
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
}
