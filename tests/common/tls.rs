//! Throw-away TLS for the tests: a certificate authority, server certificates
//! it signs (real leaves: rustls refuses a CA certificate used as a server's
//! own), and an HTTPS server on loopback that records the paths asked for.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// The subject of the test CA, as the binary prints it.
pub const CA_SUBJECT: &str = "CN=Reminders Test CA";

/// A certificate authority that exists only for one test.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    pub fn new() -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, "Reminders Test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        TestCa {
            issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    /// The CA's certificate as PEM, written to `path` (for SSL_CERT_FILE or --ca-file).
    pub fn write_pem(&self, path: &Path) {
        std::fs::write(path, self.issuer.pem()).unwrap();
    }

    /// The CA's certificate as DER, for a client in the test itself.
    pub fn certificate_der(&self) -> Vec<u8> {
        self.issuer.der().to_vec()
    }

    /// A server's TLS settings: a leaf for `name` (subject `CN=name`, the one
    /// DNS name `name`), signed by this CA, valid now or `expired` last year.
    pub fn server(&self, name: &str, expired: bool) -> Arc<ServerConfig> {
        let mut params = CertificateParams::new(vec![name.to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let leaf = params.signed_by(&key, &self.issuer).unwrap();
        let chain = vec![leaf.der().clone(), CertificateDer::from(self.issuer.der().to_vec())];
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, PrivatePkcs8KeyDer::from(key.serialize_der()).into())
            .unwrap();
        Arc::new(config)
    }
}

/// An HTTPS server on loopback that answers every request `200 OK` (with
/// `OK`, or the body it was started with), or as a function of the path
/// writes, and records each path asked for (for the ping URL and calendar
/// feeds).
pub struct HttpsServer {
    pub port: u16,
    paths: Arc<Mutex<Vec<String>>>,
}

impl HttpsServer {
    pub fn start(config: Arc<ServerConfig>) -> HttpsServer {
        HttpsServer::serving(config, "OK")
    }

    /// Answers every request with `body`.
    pub fn serving(config: Arc<ServerConfig>, body: &str) -> HttpsServer {
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        HttpsServer::routing(config, move |_, _| response.clone())
    }

    /// Answers each request with the whole HTTP response `respond` writes,
    /// given the path asked for and the server's own port.
    pub fn routing(
        config: Arc<ServerConfig>,
        respond: impl Fn(&str, u16) -> String + Send + Sync + 'static,
    ) -> HttpsServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the test HTTPS server");
        let port = listener.local_addr().unwrap().port();
        let paths = Arc::new(Mutex::new(Vec::new()));
        let (seen, respond) = (paths.clone(), Arc::new(respond));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (config, seen, respond) = (config.clone(), seen.clone(), respond.clone());
                std::thread::spawn(move || {
                    let Ok(connection) = ServerConnection::new(config) else {
                        return;
                    };
                    let mut reader = BufReader::new(StreamOwned::new(connection, stream));
                    let mut line = String::new();
                    // A refused handshake, or a client that only looks at the
                    // certificate, sends no request: nothing is recorded.
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or_default().to_string();
                    // The headers, up to the blank line.
                    let mut header = String::new();
                    while reader.read_line(&mut header).unwrap_or(0) > 0 && header.trim_end() != "" {
                        header.clear();
                    }
                    seen.lock().unwrap().push(path.clone());
                    let mut tls = reader.into_inner();
                    let _ = tls.write_all(respond(&path, port).as_bytes());
                    let _ = tls.flush();
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                });
            }
        });
        HttpsServer { port, paths }
    }

    /// The paths asked for so far.
    pub fn paths(&self) -> Vec<String> {
        self.paths.lock().unwrap().clone()
    }
}
