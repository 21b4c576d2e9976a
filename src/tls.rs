//! TLS for every outbound connection: whom we trust, the settings each
//! library (the SMTP client, ureq) gets from that, and plain words when a server's
//! certificate is refused.
//!
//! We trust what the machine trusts: the platform's store, which on Linux is
//! the system bundle that `update-ca-certificates` keeps, or `SSL_CERT_FILE` /
//! `SSL_CERT_DIR` when either is set, read as OpenSSL reads them
//! (rustls-native-certs does exactly this). `--ca-file` (`REMINDERS_CA_FILE`)
//! adds the PEM certificates of one file. No roots are compiled in, and there
//! is deliberately no way to turn verification off.
//!
//! The SMTP client and ureq report a refused certificate without the certificate, so
//! [`explain`] connects once more with [`inspect`], which verifies exactly as
//! they do and keeps what the server showed, to name its subject and issuer.

use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::{Context, anyhow};
use chrono::{DateTime, Utc};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::error::invalid;

/// Set once by [`configure`], at start-up.
static TRUST: OnceLock<Trust> = OnceLock::new();

/// The certificate authorities every connection trusts.
#[derive(Default)]
struct Trust {
    /// `--ca-file`: its path and its certificates, read and checked at start-up.
    ca_file: Option<(PathBuf, Vec<CertificateDer<'static>>)>,
    /// The platform's store plus the CA file, read on first use: most
    /// commands never open a TLS connection.
    roots: OnceLock<Roots>,
}

struct Roots {
    /// Every trusted certificate: the platform's, then the CA file's.
    certs: Vec<CertificateDer<'static>>,
    store: Arc<RootCertStore>,
    /// How many of `certs` came from the platform's store.
    platform: usize,
    /// What could not be read from the platform's store, one line each.
    problems: Vec<String>,
}

/// Reads `--ca-file` once, at start-up. A file that is missing, unreadable or
/// holds no usable certificate is bad input (exit 2).
pub fn configure(ca_file: Option<&Path>) -> anyhow::Result<()> {
    let ca_file = match ca_file {
        Some(path) => Some((path.to_path_buf(), read_ca_file(path)?)),
        None => None,
    };
    // Only main calls this, once; a second call would change nothing.
    let _ = TRUST.set(Trust {
        ca_file,
        roots: OnceLock::new(),
    });
    Ok(())
}

fn read_ca_file(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let shown = path.display();
    let pem = std::fs::read(path).map_err(|error| invalid(format!("cannot read the CA file `{shown}`: {error}")))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| invalid(format!("the CA file `{shown}` is not valid PEM: {error}")))?;
    if certs.is_empty() {
        return Err(invalid(format!(
            "the CA file `{shown}` holds no certificate: give PEM certificates (`-----BEGIN CERTIFICATE-----`)"
        )));
    }
    for (number, cert) in certs.iter().enumerate() {
        RootCertStore::empty().add(cert.clone()).map_err(|error| {
            invalid(format!(
                "certificate {} in the CA file `{shown}` cannot be trusted as a CA: {error}",
                number + 1
            ))
        })?;
    }
    Ok(certs)
}

fn trust() -> &'static Trust {
    // Unit tests and any path that runs before main's `configure`: the platform only.
    TRUST.get_or_init(Trust::default)
}

impl Trust {
    fn roots(&self) -> &Roots {
        self.roots.get_or_init(|| {
            let native = rustls_native_certs::load_native_certs();
            let mut store = RootCertStore::empty();
            let mut certs = Vec::new();
            // webpki would refuse the whole list if it cannot read one of them, so
            // only the readable ones are kept, as rustls and ureq would keep them.
            for cert in native.certs {
                if store.add(cert.clone()).is_ok() {
                    certs.push(cert);
                }
            }
            let platform = certs.len();
            for cert in self.ca_file.iter().flat_map(|(_, certs)| certs) {
                store.add(cert.clone()).expect("checked when the CA file was read");
                certs.push(cert.clone());
            }
            let problems: Vec<String> = native.errors.iter().map(ToString::to_string).collect();
            for problem in &problems {
                crate::log::warning!("the system's certificates were not all read: {problem}");
            }
            Roots {
                certs,
                store: Arc::new(store),
                platform,
                problems,
            }
        })
    }
}

/// What is trusted, for `reminders check`. Informational: whether a server
/// is trusted is the TLS lines' business, and nothing may use TLS at all.
pub fn describe() -> String {
    let trust = trust();
    let roots = trust.roots();
    let named: Vec<String> = ["SSL_CERT_FILE", "SSL_CERT_DIR"]
        .into_iter()
        .filter_map(|name| std::env::var_os(name).map(|value| format!("{name}={}", value.to_string_lossy())))
        .collect();
    let source = if named.is_empty() {
        "the system store".to_string()
    } else {
        named.join(", ")
    };
    let mut text = format!(
        "{} from {source}",
        crate::output::count(roots.platform as i64, "certificate", "certificates")
    );
    if let Some((path, certs)) = &trust.ca_file {
        text.push_str(&format!(", {} from the CA file `{}`", certs.len(), path.display()));
    }
    if !roots.problems.is_empty() {
        text.push_str(&format!("; not read: {}", roots.problems.join("; ")));
    }
    if roots.certs.is_empty() {
        text.push_str(": no TLS connection can succeed (install the system's CA bundle, or use --ca-file)");
    }
    text
}

fn provider() -> Arc<CryptoProvider> {
    // The provider ureq uses too (its `ring` feature).
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The mail relay's TLS settings (STARTTLS or SMTPS) for `host`: our roots,
/// TLS 1.2 or 1.3, and the name its certificate must carry.
pub fn smtp_client(host: &str) -> anyhow::Result<(Arc<ClientConfig>, ServerName<'static>)> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("cannot set up TLS")?
        .with_root_certificates(trust().roots().store.clone())
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_string()).with_context(|| format!("`{host}` is not a host name"))?;
    Ok((Arc::new(config), name))
}

/// ureq's TLS settings, for the ping and any other HTTPS request: our roots.
pub fn http_config() -> ureq::tls::TlsConfig {
    let certs: Vec<_> = trust()
        .roots()
        .certs
        .iter()
        .map(|cert| ureq::tls::Certificate::from_der(cert).to_owned())
        .collect();
    ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
        .unversioned_rustls_crypto_provider(provider())
        .build()
}

/// What a server showed in a TLS handshake, and whether we trust it.
pub struct Inspection {
    /// `TLS 1.3`, once the server has answered.
    pub version: Option<String>,
    pub certificate: Option<Presented>,
    /// Whether the certificate was accepted, with rustls's reason when not.
    pub verdict: Result<(), rustls::Error>,
}

/// The server's own certificate, as far as the messages need it.
pub struct Presented {
    pub subject: String,
    pub issuer: String,
    pub not_after: Option<DateTime<Utc>>,
    /// The DNS names and IP addresses it covers.
    pub names: Vec<String>,
}

impl Presented {
    fn read(der: &[u8]) -> Option<Presented> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let names = match cert.subject_alternative_name() {
            Ok(Some(extension)) => extension
                .value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    x509_parser::extensions::GeneralName::DNSName(name) => Some(name.to_string()),
                    x509_parser::extensions::GeneralName::IPAddress(bytes) => ip_text(bytes),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        Some(Presented {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            not_after: DateTime::from_timestamp(cert.validity().not_after.timestamp(), 0),
            names,
        })
    }
}

fn ip_text(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?).to_string()),
        16 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?).to_string()),
        _ => None,
    }
}

/// Connects to `host:port`, lets `preamble` do what the protocol asks before
/// TLS (STARTTLS for SMTP; nothing for SMTPS and HTTPS), then shakes hands
/// with our roots and says goodbye. An error means no handshake took place.
pub fn inspect(
    host: &str,
    port: u16,
    timeout: Duration,
    preamble: impl FnOnce(&mut TcpStream) -> anyhow::Result<()>,
) -> anyhow::Result<Inspection> {
    let mut tcp = connect(host, port, timeout)?;
    preamble(&mut tcp)?;
    let store = trust().roots().store.clone();
    let recorder = Arc::new(Recorder {
        // webpki will not be built without roots; the SMTP client and ureq then refuse
        // every certificate as of an unknown issuer, and so does the recorder.
        verifier: if store.is_empty() {
            None
        } else {
            let verifier = WebPkiServerVerifier::builder_with_provider(store, provider()).build();
            Some(verifier.context("cannot set up certificate verification")?)
        },
        provider: provider(),
        seen: Mutex::new(None),
    });
    // rustls files every custom verifier under "dangerous"; this one decides
    // nothing itself: it keeps the certificate and hands the decision to the
    // same webpki verifier, with the same roots, that the SMTP client and ureq use.
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .context("cannot set up TLS")?
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_string()).with_context(|| format!("`{host}` is not a host name"))?;
    let mut tls = ClientConnection::new(Arc::new(config), name).context("cannot start TLS")?;
    let verdict = loop {
        if !tls.is_handshaking() {
            break Ok(());
        }
        match tls.complete_io(&mut tcp) {
            Ok((0, 0)) => return Err(anyhow!("{host}:{port} closed the connection during the TLS handshake")),
            Ok(_) => {}
            Err(error) => match error.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
                Some(refused) => break Err(refused.clone()),
                None => return Err(anyhow!("no TLS handshake with {host}:{port}: {error}")),
            },
        }
    };
    if verdict.is_ok() {
        tls.send_close_notify();
        let _ = tls.complete_io(&mut tcp);
    }
    let certificate = recorder.seen.lock().unwrap().take();
    Ok(Inspection {
        version: tls.protocol_version().map(|version| match version {
            rustls::ProtocolVersion::TLSv1_2 => "TLS 1.2".to_string(),
            rustls::ProtocolVersion::TLSv1_3 => "TLS 1.3".to_string(),
            other => format!("{other:?}"),
        }),
        certificate: certificate.as_deref().and_then(Presented::read),
        verdict,
    })
}

fn connect(host: &str, port: u16, timeout: Duration) -> anyhow::Result<TcpStream> {
    let mut last = None;
    let addresses = (host, port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve `{host}`"))?;
    for address in addresses {
        match TcpStream::connect_timeout(&address, timeout) {
            Ok(tcp) => {
                tcp.set_read_timeout(Some(timeout))?;
                tcp.set_write_timeout(Some(timeout))?;
                return Ok(tcp);
            }
            Err(error) => last = Some(error),
        }
    }
    Err(match last {
        Some(error) => anyhow!("cannot connect to {host}:{port}: {error}"),
        None => anyhow!("`{host}` resolves to no address"),
    })
}

/// Keeps the server's certificate and lets the webpki verifier decide. The
/// handshake signatures are checked as that verifier checks them.
#[derive(Debug)]
struct Recorder {
    /// None when nothing is trusted at all.
    verifier: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
    seen: Mutex<Option<Vec<u8>>>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.seen.lock().unwrap() = Some(end_entity.to_vec());
        match &self.verifier {
            Some(verifier) => verifier.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now),
            None => Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            signature,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            signature,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

impl Inspection {
    /// One line for `reminders check`: the protocol, the certificate, and
    /// whether it is trusted (with the reason when not).
    pub fn summary(&self, host: &str, port: u16) -> Result<String, String> {
        let mut parts = vec![
            self.version
                .clone()
                .unwrap_or_else(|| "no TLS version agreed".to_string()),
        ];
        if let Some(cert) = &self.certificate {
            parts.push(format!("subject `{}`", cert.subject));
            parts.push(format!("issuer `{}`", cert.issuer));
            if let Some(not_after) = cert.not_after {
                parts.push(format!("expires {}", not_after.format("%Y-%m-%d %H:%M UTC")));
            }
        }
        let shown = parts.join(", ");
        match &self.verdict {
            Ok(()) => Ok(format!("{shown}, trusted")),
            Err(error) => Err(format!("{shown}, NOT trusted: {}", refusal(host, port, error, None))),
        }
    }
}

/// Why an HTTPS request (a ping, a calendar feed) failed, in one line: a
/// refused certificate explained as `explain` does, else ureq's own words.
pub fn explain_http(error: &ureq::Error, url: &str, timeout: std::time::Duration) -> String {
    let cause: &(dyn std::error::Error + 'static) = match error {
        ureq::Error::Io(inner) => inner,
        ureq::Error::Rustls(inner) => inner,
        other => other,
    };
    url::Url::parse(url)
        .ok()
        .and_then(|parsed| {
            let (host, port) = (parsed.host_str()?.to_string(), parsed.port_or_known_default()?);
            explain(cause, &host, port, || inspect(&host, port, timeout, |_| Ok(())))
        })
        .unwrap_or_else(|| error.to_string())
}

/// Explanations already given, by endpoint and error: a run whose server's
/// certificate is refused meets the same refusal on every connection, and
/// one look at the certificate is enough.
static EXPLAINED: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

/// When `error` (from the SMTP client or ureq, or anything holding an `io::Error`)
/// is a refused certificate, says why in one line and what to do: it looks at
/// the certificate with `inspect`. `None` when it is no certificate problem.
pub fn explain(
    error: &(dyn std::error::Error + 'static),
    host: &str,
    port: u16,
    inspect: impl FnOnce() -> anyhow::Result<Inspection>,
) -> Option<String> {
    let refused = rustls_error(error)?;
    if !matches!(refused, rustls::Error::InvalidCertificate(_)) {
        return None;
    }
    let key = format!("{host}:{port} {refused}");
    if let Some((_, known)) = EXPLAINED.lock().unwrap().iter().find(|(seen, _)| *seen == key) {
        return Some(known.clone());
    }
    // The second look normally meets the same refusal; if it meets none (the
    // server changed meanwhile), the first refusal is explained without it.
    let explained = match inspect() {
        Ok(Inspection {
            certificate: Some(cert),
            verdict: Err(again),
            ..
        }) => refusal(host, port, &again, Some(&cert)),
        _ => refusal(host, port, refused, None),
    };
    EXPLAINED.lock().unwrap().push((key, explained.clone()));
    Some(explained)
}

/// The rustls error inside `error`: directly, or inside an `io::Error`
/// (which does not list its inner error as a source).
fn rustls_error<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(found) = error.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        if let Some(found) = error
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(found);
        }
        next = error.source();
    }
    None
}

/// Why a certificate was refused, and what to do, in one line.
fn refusal(host: &str, port: u16, error: &rustls::Error, cert: Option<&Presented>) -> String {
    let whose = match cert {
        Some(cert) => format!(
            "the TLS certificate of {host}:{port} (subject `{}`, issuer `{}`)",
            cert.subject, cert.issuer
        ),
        None => format!("the TLS certificate of {host}:{port}"),
    };
    let expiry = cert
        .and_then(|cert| cert.not_after)
        .map(|at| format!(" on {}", at.format("%Y-%m-%d %H:%M UTC")))
        .unwrap_or_default();
    let rustls::Error::InvalidCertificate(reason) = error else {
        return format!("{whose} was refused: {error}");
    };
    match reason {
        CertificateError::UnknownIssuer => format!(
            "{whose} is signed by a certificate authority this machine does not trust: add that CA's certificate \
             to the system store (copy it to /usr/local/share/ca-certificates/ and run `update-ca-certificates`), \
             or name its PEM file with `--ca-file` (REMINDERS_CA_FILE)"
        ),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            format!("{whose} expired{expiry}: the server needs a renewed certificate")
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            format!("{whose} is not valid yet: check this machine's clock, or the server's certificate")
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            let names = cert
                .map(|cert| cert.names.join(", "))
                .filter(|names| !names.is_empty())
                .unwrap_or_else(|| "other names".to_string());
            format!(
                "{whose} is for {names}, not for `{host}`: connect by a name the certificate covers, \
                 or have the certificate reissued to cover `{host}`"
            )
        }
        CertificateError::Revoked => format!("{whose} has been revoked: the server needs a new certificate"),
        other => format!("{whose} was refused: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_says_why_and_what_to_do_in_one_line() {
        let cert = Presented {
            subject: "CN=relay.school.example".into(),
            issuer: "CN=School Root CA".into(),
            not_after: DateTime::from_timestamp(1_700_000_000, 0),
            names: vec!["relay.school.example".into()],
        };
        let unknown = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let text = refusal("relay", 587, &unknown, Some(&cert));
        for needle in [
            "relay:587",
            "CN=relay.school.example",
            "CN=School Root CA",
            "update-ca-certificates",
            "--ca-file",
        ] {
            assert!(text.contains(needle), "{text}");
        }
        assert!(!text.contains('\n'), "{text}");
        let expired = rustls::Error::InvalidCertificate(CertificateError::Expired);
        assert!(refusal("relay", 587, &expired, Some(&cert)).contains("expired on 2023-11-14"));
        let name = rustls::Error::InvalidCertificate(CertificateError::NotValidForName);
        assert!(refusal("relay", 587, &name, Some(&cert)).contains("is for relay.school.example, not for `relay`"));
    }

    #[test]
    fn a_rustls_error_is_found_inside_an_io_error() {
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer),
        );
        assert!(matches!(
            rustls_error(&io),
            Some(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer))
        ));
        assert!(rustls_error(&std::io::Error::other("refused")).is_none());
    }
}
