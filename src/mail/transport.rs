//! The transport: one SMTP session per sending thread (plain, STARTTLS or TLS
//! from the first byte; spoken by `smtp`, which pipelines) or a `file://`
//! outbox, and what each send error says about whom it concerns (`failure`).
//! An `auth=xoauth2` relay gets the run's OAuth token (`oauth`), renewed once
//! when the relay refuses it.

use std::io::{BufRead, BufReader, Write};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use lettre::Message;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::extension::ClientId;

use super::MailUrl;
use super::failure::{Blame, SendFailure, blame_reply};
use super::oauth::{self, OAuthSettings, TokenCache};
use super::smtp::{Session, SmtpError, Step, Wire};

/// Where and how to reach an `smtp://` server (plain, or upgraded with
/// STARTTLS), or an `smtps://` one (TLS from the first byte).
#[derive(Clone)]
pub struct SmtpServer {
    host: String,
    port: u16,
    starttls: StartTls,
    hello: ClientId,
    credentials: Option<Credentials>,
    /// `auth=xoauth2`: the run's token instead of a password.
    xoauth2: Option<Arc<Xoauth2>>,
    timeout: Duration,
    /// What STARTTLS or SMTPS trusts (see `tls`); none when the URL asks for no TLS.
    tls: Option<Tls>,
}

/// The relay's TLS: our roots, and the name its certificate must carry.
#[derive(Clone)]
struct Tls {
    connector: tokio_rustls::TlsConnector,
    name: rustls::pki_types::ServerName<'static>,
}

impl Tls {
    fn for_host(host: &str) -> anyhow::Result<Tls> {
        let (config, name) = crate::tls::smtp_client(host)?;
        Ok(Tls {
            connector: config.into(),
            name,
        })
    }

    async fn handshake(
        &self,
        tcp: tokio::net::TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, SmtpError> {
        self.connector
            .connect(self.name.clone(), tcp)
            .await
            .map_err(SmtpError::Tls)
    }
}

/// XOAUTH2: the sending mailbox and the run's token, shared by the run's
/// connections so that a run asks the token endpoint once.
struct Xoauth2 {
    mailbox: String,
    endpoint: String,
    tokens: TokenCache,
}

impl Xoauth2 {
    fn new(mailbox: String, settings: &OAuthSettings) -> Xoauth2 {
        let settings = settings.clone();
        let http = oauth::http_agent();
        let endpoint = oauth::shown_endpoint(settings.token_url());
        let shown = endpoint.clone();
        Xoauth2 {
            mailbox,
            endpoint,
            tokens: TokenCache::new(move || {
                let started = std::time::Instant::now();
                let token = oauth::fetch_token(&settings, &http)?;
                // Whatever prints, the token never shows (`redact::scrub`).
                crate::redact::hide(token.secret());
                crate::log::info!("fetched an OAuth token from `{shown}` in {:?}", started.elapsed());
                Ok(token)
            }),
        }
    }
}

/// The relay refused the token itself: a `5xx` to AUTH, or Gmail's `334`
/// challenge before one. (A relay that offers no XOAUTH2 at all is not this.)
fn token_refused(error: &SmtpError) -> bool {
    match error {
        SmtpError::Challenged(_) => true,
        SmtpError::Refused(Step::Auth, reply) => reply.code >= 500,
        _ => false,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum StartTls {
    Never,
    IfOffered,
    Required,
    /// `smtps://`: TLS from the first byte.
    Wrapper,
}

impl SmtpServer {
    /// Reads `smtp://[user:pass@]host[:port][/ehlo-name][?tls=required|opportunistic]`,
    /// with lettre's defaults: port 25, or 587 with `tls`; `&auth=xoauth2`
    /// (also on `smtps://`, port 465) takes a token from `oauth`.
    fn from_url(url: &url::Url, oauth: Option<&OAuthSettings>, timeout: Duration) -> anyhow::Result<SmtpServer> {
        let tls = url
            .query_pairs()
            .find(|(key, _)| key == "tls")
            .map(|(_, value)| value.into_owned());
        let starttls = match tls.as_deref() {
            _ if url.scheme() == "smtps" => StartTls::Wrapper,
            None => StartTls::Never,
            Some("opportunistic") => StartTls::IfOffered,
            Some("required") => StartTls::Required,
            Some(other) => return Err(anyhow!("SMTP_URL has `tls={other}`: use `required` or `opportunistic`")),
        };
        let decode = |text: &str| {
            percent_encoding::percent_decode_str(text)
                .decode_utf8_lossy()
                .into_owned()
        };
        let path = url.path().trim_matches('/');
        let host = url.host_str().unwrap_or_default().to_string();
        let tls = match starttls {
            StartTls::Never => None,
            StartTls::IfOffered | StartTls::Required | StartTls::Wrapper => Some(Tls::for_host(&host)?),
        };
        let default_port = match starttls {
            StartTls::Never => 25,
            StartTls::IfOffered | StartTls::Required => 587,
            StartTls::Wrapper => lettre::transport::smtp::SUBMISSIONS_PORT,
        };
        Ok(SmtpServer {
            host,
            port: url.port().unwrap_or(default_port),
            starttls,
            hello: if path.is_empty() {
                ClientId::default()
            } else {
                ClientId::Domain(path.to_string())
            },
            credentials: url
                .password()
                .map(|password| Credentials::new(decode(url.username()), decode(password))),
            xoauth2: MailUrl::Smtp(url.clone())
                .xoauth2_mailbox()
                .zip(oauth)
                .map(|(mailbox, settings)| Arc::new(Xoauth2::new(mailbox, settings))),
            timeout,
            tls,
        })
    }

    /// A new connection, authenticated as configured: with the password, or
    /// with the run's token. A refused token is renewed once, on a new
    /// connection (the refused one may be mid-AUTH); a second refusal or a
    /// token endpoint that fails ends the run, since no message can get past it.
    /// The SMTP steps are bounded by the timeout; a token request by its own.
    async fn connect(&self) -> Result<Session, SendFailure> {
        let Some(xoauth2) = &self.xoauth2 else {
            return self
                .timed(async {
                    let mut connection = self.open().await?;
                    if let Some(credentials) = &self.credentials {
                        connection
                            .auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                            .await
                            .map_err(|error| self.refused_the_run(error))?;
                    }
                    Ok(connection)
                })
                .await;
        };
        let token_failed = |error: oauth::TokenError| SendFailure::final_for_the_run(error.to_string());
        let mut token = xoauth2.tokens.current().map_err(token_failed)?;
        loop {
            let credentials = oauth::xoauth2_credentials(&xoauth2.mailbox, &token);
            let authenticated = self
                .timed(async {
                    let mut connection = self.open().await?;
                    Ok(connection
                        .auth(&[Mechanism::Xoauth2], &credentials)
                        .await
                        .map(|_| connection))
                })
                .await?;
            let error = match authenticated {
                Ok(connection) => return Ok(connection),
                Err(error) if token_refused(&error) => error,
                Err(error) => return Err(self.refused_the_run(error)),
            };
            token = match xoauth2.tokens.refresh_after_rejection(&token).map_err(token_failed)? {
                Some(renewed) => renewed,
                None => {
                    return Err(SendFailure::final_for_the_run(format!(
                        "the relay {}:{} refused AUTH XOAUTH2 for `{}` with a renewed token from `{}`: {}",
                        self.host,
                        self.port,
                        xoauth2.mailbox,
                        xoauth2.endpoint,
                        one_line(&error.to_string())
                    )));
                }
            };
        }
    }

    /// A new session up to AUTH: TCP with Nagle's algorithm off, TLS from
    /// the first byte or STARTTLS as configured, and EHLO. Each write is a
    /// whole group of commands or a whole message, and with Nagle on a write
    /// may wait for the server's delayed ACK (BENCHMARKS.md has the cost).
    async fn open(&self) -> Result<Session, SendFailure> {
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|error| {
                SendFailure::new(
                    Blame::Run,
                    format!("cannot connect to {}:{}: {error}", self.host, self.port),
                )
            })?;
        tcp.set_nodelay(true)
            .map_err(|error| SendFailure::new(Blame::Run, error.to_string()))?;
        let refused = |error| self.refused_the_run(error);
        if self.starttls == StartTls::Wrapper
            && let Some(tls) = &self.tls
        {
            let wrapped = tls.handshake(tcp).await.map_err(refused)?;
            return Session::start(Box::new(wrapped) as Box<dyn Wire>, &self.hello)
                .await
                .map_err(refused);
        }
        let session = Session::start(tcp, &self.hello).await.map_err(refused)?;
        let upgrade = match self.starttls {
            StartTls::Never | StartTls::Wrapper => false,
            StartTls::IfOffered => session.offers_starttls(),
            StartTls::Required if !session.offers_starttls() => {
                return Err(SendFailure::new(
                    Blame::Run,
                    format!(
                        "{}:{} does not offer STARTTLS, and SMTP_URL says `tls=required`",
                        self.host, self.port
                    ),
                ));
            }
            StartTls::Required => true,
        };
        match &self.tls {
            Some(tls) if upgrade => {
                let tcp = session.starttls().await.map_err(refused)?;
                let wrapped = tls.handshake(tcp).await.map_err(refused)?;
                Session::after_starttls(Box::new(wrapped) as Box<dyn Wire>, &self.hello)
                    .await
                    .map_err(refused)
            }
            _ => Ok(session.boxed()),
        }
    }

    /// A failure before any message was offered (greeting, EHLO, STARTTLS,
    /// AUTH): whatever the reply, it concerns the run. A refused certificate
    /// is explained in plain words (`tls::explain`).
    fn refused_the_run(&self, error: SmtpError) -> SendFailure {
        let explained = match &error {
            SmtpError::Tls(tls) => crate::tls::explain(tls, &self.host, self.port, || self.inspect()),
            _ => None,
        };
        SendFailure::new(Blame::Run, explained.unwrap_or_else(|| one_line(&error.to_string())))
    }

    /// `reminders check` for an XOAUTH2 relay: the token, the relay (EHLO and
    /// STARTTLS), and AUTH, each its own step, so that it says which failed.
    async fn probe_xoauth2(&self, xoauth2: &Xoauth2) -> Vec<(&'static str, Result<String, String>)> {
        let token = xoauth2.tokens.current().map_err(|error| error.to_string());
        let mut steps = vec![(
            "mail token",
            token
                .as_ref()
                .map(|_| format!("fetched from `{}`", xoauth2.endpoint))
                .map_err(Clone::clone),
        )];
        let mut session = match self.timed(self.open()).await {
            Ok(session) => session,
            Err(failure) => {
                steps.push(("mail server", Err(failure.reason)));
                steps.push(("mail AUTH", Err("not tried: the relay was not reached".to_string())));
                return steps;
            }
        };
        steps.push((
            "mail server",
            Ok(format!(
                "{}:{} answers EHLO, {}",
                self.host,
                self.port,
                match self.starttls {
                    StartTls::Wrapper => "over TLS",
                    _ => "STARTTLS done",
                }
            )),
        ));
        let auth = match token {
            Err(_) => Err("not tried: no token".to_string()),
            Ok(token) => {
                let credentials = oauth::xoauth2_credentials(&xoauth2.mailbox, &token);
                let auth = self.timed(async { Ok(session.auth(&[Mechanism::Xoauth2], &credentials).await) });
                match auth.await {
                    Err(failure) => Err(failure.reason),
                    Ok(Ok(_)) => Ok(format!("AUTH XOAUTH2 accepted for `{}`", xoauth2.mailbox)),
                    Ok(Err(error)) => Err(format!(
                        "the relay {}:{} refused AUTH XOAUTH2 for `{}`: {}",
                        self.host,
                        self.port,
                        xoauth2.mailbox,
                        one_line(&error.to_string())
                    )),
                }
            }
        };
        session.quit().await;
        steps.push(("mail AUTH", auth));
        steps
    }

    /// `work`, or the run's failure when the server does not answer in time.
    async fn timed<T>(&self, work: impl Future<Output = Result<T, SendFailure>>) -> Result<T, SendFailure> {
        tokio::time::timeout(self.timeout, work)
            .await
            .unwrap_or_else(|_| Err(SendFailure::new(Blame::Run, self.no_answer())))
    }

    fn no_answer(&self) -> String {
        format!("no answer from {}:{} within {:?}", self.host, self.port, self.timeout)
    }

    /// A second look at the server's certificate, through STARTTLS, for
    /// `reminders check` and to explain a refusal. It blocks, inside a
    /// sending thread's own runtime, which has nothing else to run meanwhile;
    /// its own timeouts bound it.
    fn inspect(&self) -> anyhow::Result<crate::tls::Inspection> {
        crate::tls::inspect(&self.host, self.port, self.timeout, |tcp| match self.starttls {
            StartTls::Wrapper => Ok(()),
            _ => starttls_preamble(tcp, &self.hello),
        })
    }
}

/// The server does not offer STARTTLS (`tls::inspect` stops before TLS).
#[derive(Debug)]
struct NoStartTls;

impl std::fmt::Display for NoStartTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the server does not offer STARTTLS")
    }
}

impl std::error::Error for NoStartTls {}

/// The plain-text part of an SMTP session up to STARTTLS's `220`, for
/// `tls::inspect`: greeting, EHLO, STARTTLS. lettre does the same for real
/// sessions, but hands back no raw stream to inspect.
fn starttls_preamble(tcp: &mut std::net::TcpStream, hello: &ClientId) -> anyhow::Result<()> {
    // Nothing arrives after a reply until the next command, so this reader
    // never holds bytes that belong to the TLS handshake.
    let mut reader = BufReader::new(tcp.try_clone()?);
    let mut reply = || -> anyhow::Result<(String, Vec<String>)> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Err(anyhow!("the server closed the connection"));
            }
            let line = line.trim_end().to_string();
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                let code = lines[0].get(..3).unwrap_or_default().to_string();
                return Ok((code, lines));
            }
        }
    };
    let (code, lines) = reply().context("no SMTP greeting")?;
    if code != "220" {
        return Err(anyhow!("the server greeted with `{}`", lines.join(" ")));
    }
    tcp.write_all(format!("EHLO {hello}\r\n").as_bytes())?;
    let (code, lines) = reply().context("no answer to EHLO")?;
    let offers = lines.iter().any(|line| {
        line.get(4..)
            .is_some_and(|keyword| keyword.eq_ignore_ascii_case("STARTTLS"))
    });
    if code != "250" || !offers {
        return Err(NoStartTls.into());
    }
    tcp.write_all(b"STARTTLS\r\n")?;
    let (code, lines) = reply().context("no answer to STARTTLS")?;
    if code != "220" {
        return Err(anyhow!("the server answered STARTTLS with `{}`", lines.join(" ")));
    }
    Ok(())
}

/// Where messages go; shared by the sending threads.
#[derive(Clone)]
pub enum Mailer {
    /// `smtp://` or `smtps://`: each sending thread keeps its own session
    /// open across messages, so `--connections` threads keep that many busy.
    Smtp(SmtpServer),
    /// `file://DIR`: each message an `.eml` file named after its Message-ID.
    File(std::path::PathBuf),
}

impl Mailer {
    /// `oauth` is used when the URL asks for `auth=xoauth2`.
    pub fn new(url: &MailUrl, oauth: Option<&OAuthSettings>, timeout: Duration) -> anyhow::Result<Mailer> {
        match url {
            MailUrl::Smtp(smtp) => Ok(Mailer::Smtp(SmtpServer::from_url(smtp, oauth, timeout)?)),
            // Created with the first message: a run that fails before it
            // (or `check`) leaves nothing behind.
            MailUrl::File(dir) => Ok(Mailer::File(dir.clone())),
        }
    }

    /// Connects, says EHLO (and STARTTLS and AUTH when configured), and says
    /// goodbye: what `reminders check` asks of the mail server, as named
    /// steps (for XOAUTH2 the token, the relay and AUTH each have their own).
    pub fn probe(&self) -> Vec<(&'static str, Result<String, String>)> {
        if let Mailer::Smtp(server) = self
            && let Some(xoauth2) = &server.xoauth2
        {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .enable_time()
                .build();
            return match runtime {
                Ok(runtime) => runtime.block_on(server.probe_xoauth2(xoauth2)),
                Err(error) => vec![("mail server", Err(error.to_string()))],
            };
        }
        vec![("mail server", self.probe_server())]
    }

    fn probe_server(&self) -> Result<String, String> {
        match self {
            Mailer::Smtp(server) => {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .enable_time()
                    .build()
                    .map_err(|error| error.to_string())?;
                runtime.block_on(async {
                    let mut session = server.connect().await.map_err(|failure| failure.reason)?;
                    session.quit().await;
                    let auth = if server.credentials.is_some() {
                        ", credentials accepted"
                    } else {
                        ""
                    };
                    Ok(format!("{}:{} answers EHLO{auth}", server.host, server.port))
                })
            }
            Mailer::File(dir) if dir.is_dir() => Ok(format!("writes .eml files into `{}` (no server)", dir.display())),
            Mailer::File(dir) => Ok(format!(
                "writes .eml files into `{}`, created with the first message (no server)",
                dir.display()
            )),
        }
    }

    /// What `reminders check` shows of TLS: the protocol, the server's
    /// certificate and whether it is trusted. `None` for `file://`.
    pub fn tls_summary(&self) -> Option<Result<String, String>> {
        let shown = |inspected: anyhow::Result<crate::tls::Inspection>, host: &str, port: u16| {
            inspected
                .map_err(|error| one_line(&format!("{error:#}")))
                .and_then(|inspection| inspection.summary(host, port))
        };
        match self {
            Mailer::Smtp(server) => Some(match server.starttls {
                StartTls::Never => {
                    Ok("not used: without `?tls=required` mail and any password go in the clear".to_string())
                }
                StartTls::IfOffered | StartTls::Required | StartTls::Wrapper => match server.inspect() {
                    Err(error) if error.is::<NoStartTls>() && server.starttls == StartTls::IfOffered => {
                        Ok("not offered by the server (`tls=opportunistic`): mail goes in the clear".to_string())
                    }
                    inspected => shown(inspected, &server.host, server.port),
                },
            }),
            Mailer::File(_) => None,
        }
    }

    /// One sending thread's handle, which holds that thread's connection.
    pub fn courier(&self) -> anyhow::Result<Courier<'_>> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        Ok(Courier {
            mailer: self,
            runtime,
            session: None,
            last_used: std::time::Instant::now(),
        })
    }
}

/// Sends messages for one thread over one reused connection.
pub struct Courier<'a> {
    mailer: &'a Mailer,
    runtime: tokio::runtime::Runtime,
    session: Option<Session>,
    /// When the session last carried a message.
    last_used: std::time::Instant,
}

/// A connection idle this long is checked (NOOP) before it carries a
/// message: a server may have closed it meanwhile (paced runs idle between
/// messages), and a message offered on a closed connection fails.
const IDLE_BEFORE_CHECK: Duration = Duration::from_secs(5);

impl Courier<'_> {
    pub fn send(&mut self, message: &Message) -> Result<(), SendFailure> {
        let server = match self.mailer {
            Mailer::Smtp(server) => server,
            Mailer::File(dir) => {
                return write_eml(dir, message)
                    .map_err(|error| SendFailure::new(Blame::Run, one_line(&format!("{error:#}"))));
            }
        };
        let session = &mut self.session;
        let idle = std::mem::replace(&mut self.last_used, std::time::Instant::now()).elapsed();
        self.runtime.block_on(async {
            let timed_out = |blame| {
                SendFailure::new(
                    blame,
                    format!("no answer from the mail server within {:?}", server.timeout),
                )
            };
            if idle >= IDLE_BEFORE_CHECK
                && let Some(open) = session.as_mut()
                && !matches!(tokio::time::timeout(server.timeout, open.noop()).await, Ok(true))
            {
                *session = None;
            }
            if session.as_ref().is_none_or(Session::is_broken) {
                *session = Some(server.connect().await?);
            }
            let open = session.as_mut().expect("connected above");
            let sent = tokio::time::timeout(server.timeout, open.send(message.envelope(), &message.formatted())).await;
            match sent {
                Ok(Ok(_)) => Ok(()),
                // A session is broken after any failure; the next send reconnects.
                Ok(Err(error)) => Err(classify(error)),
                // The data may have arrived: a later attempt, counted as one.
                Err(_) => {
                    *session = None;
                    Err(timed_out(Blame::Transient))
                }
            }
        })
    }
}

impl Drop for Courier<'_> {
    fn drop(&mut self) {
        if let Some(mut session) = self.session.take() {
            // Say goodbye, briefly; the messages are already accepted.
            let _ = self
                .runtime
                .block_on(async { tokio::time::timeout(Duration::from_secs(1), session.quit()).await });
        }
    }
}

/// A failure while sending one message: the reply says whom it concerns
/// (see `failure`), except that a refused MAIL FROM is about our sender, so
/// the run's. No reply at all means the connection broke before the server
/// answered about this message: the run's problem. A message the server
/// cannot take in SMTP at all (8-bit text without 8BITMIME) is the message's.
fn classify(error: SmtpError) -> SendFailure {
    let blame = match &error {
        SmtpError::Refused(Step::Mail, _) => Blame::Run,
        SmtpError::Refused(_, reply) => blame_reply(reply.code, &reply.text()),
        SmtpError::Unsupported(_) => Blame::Message,
        SmtpError::Challenged(_) | SmtpError::Broken(..) | SmtpError::Tls(_) | SmtpError::Garbled(..) => Blame::Run,
    };
    SendFailure::new(blame, one_line(&error.to_string()))
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The outbox file of the message with this Message-ID is `STEM.eml`.
pub fn outbox_file_stem(message_id: &str) -> String {
    message_id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._@+-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Writes a message into the outbox as `<Message-ID>.eml` (owner-only, as
/// it holds a student's address), whole or not at all: written under a
/// temporary name and renamed. A resend of the same message replaces it.
fn write_eml(dir: &std::path::Path, message: &Message) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let id = outbox_file_stem(message.headers().get_raw("Message-ID").unwrap_or("message"));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create the outbox `{}`", dir.display()))?;
    let path = dir.join(format!("{id}.eml"));
    let partial = dir.join(format!(".{id}.eml.partial"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&partial)
        .with_context(|| format!("cannot write into the outbox `{}`", dir.display()))?;
    file.write_all(&message.formatted())
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&partial, &path))
        .with_context(|| format!("cannot write `{}`", path.display()))
}
