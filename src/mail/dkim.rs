//! DKIM signing (optional): the key, the signature on every message, and the
//! DNS record that lets receivers check it.

use std::path::Path;

use anyhow::{Context, anyhow};
use lettre::Message;
use lettre::message::dkim::{
    DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm, DkimSigningKey,
};
use lettre::message::header::HeaderName;
use rsa::RsaPrivateKey;
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey, LineEnding};

/// The headers the signature covers: what a forger would change.
const SIGNED_HEADERS: [&str; 7] = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

/// A loaded signing key for one selector and domain.
#[derive(Debug)]
pub struct Dkim {
    config: DkimConfig,
    /// Where the public key goes: `SELECTOR._domainkey.DOMAIN`.
    pub record_name: String,
    /// The TXT record to publish there.
    pub record: String,
}

impl Dkim {
    /// Reads an RSA private key (PEM, PKCS#1 or PKCS#8) for `selector` at `domain`.
    /// Errors name the file, never its content.
    pub fn load(path: &Path, selector: &str, domain: &str) -> anyhow::Result<Dkim> {
        let pem =
            std::fs::read_to_string(path).with_context(|| format!("cannot read the DKIM key `{}`", path.display()))?;
        let key = RsaPrivateKey::from_pkcs1_pem(&pem)
            .or_else(|_| RsaPrivateKey::from_pkcs8_pem(&pem))
            .map_err(|_| {
                anyhow!(
                    "the DKIM key `{}` is not an RSA private key in PEM (make one with `openssl genrsa -out {} 2048`)",
                    path.display(),
                    path.display()
                )
            })?;
        let public = key
            .to_public_key()
            .to_public_key_der()
            .map_err(|error| anyhow!("cannot derive the DKIM public key: {error}"))?;
        // lettre reads PKCS#1 only.
        let pkcs1 = key
            .to_pkcs1_pem(LineEnding::LF)
            .map_err(|error| anyhow!("cannot use the DKIM key `{}`: {error}", path.display()))?;
        let signing = DkimSigningKey::new(&pkcs1, DkimSigningAlgorithm::Rsa)
            .map_err(|error| anyhow!("cannot use the DKIM key `{}`: {error}", path.display()))?;
        let relaxed = DkimCanonicalization {
            header: DkimCanonicalizationType::Relaxed,
            body: DkimCanonicalizationType::Relaxed,
        };
        let headers = SIGNED_HEADERS
            .iter()
            .map(|name| HeaderName::new_from_ascii_str(name))
            .collect();
        Ok(Dkim {
            config: DkimConfig::new(selector.to_string(), domain.to_string(), signing, headers, relaxed),
            record_name: format!("{selector}._domainkey.{domain}"),
            record: format!("v=DKIM1; k=rsa; p={}", data_encoding::BASE64.encode(public.as_bytes())),
        })
    }

    pub fn sign(&self, message: &mut Message) {
        message.sign(&self.config);
    }
}
