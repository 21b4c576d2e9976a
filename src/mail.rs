//! Mail: the transport (pooled SMTP, or a `file://` outbox of `.eml` files),
//! the reminder message, and what each send error's stage and reply say
//! about whom it concerns (the rule itself is in `failure`).

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, anyhow};
use chrono::{DateTime, Utc};
use lettre::message::{Mailbox, MultiPart, header::ContentType};
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{FileTransport, Message, SmtpTransport, Transport};

use crate::db::reminders::Claimed;
use crate::db::types::Id;
use crate::failure::{Blame, SendFailure};
use crate::input::zone_of;
use crate::render::{
    AssignmentView, Counts, ItemView, Kind, ReminderContext, Rendered, StudentView, SummaryContext, Templates,
};
use crate::time;

/// Where mail goes, from `SMTP_URL`.
#[derive(Debug, Clone)]
pub enum MailUrl {
    /// `smtp://host:port`, `smtp://user:pass@host:587?tls=required`, `smtps://…`
    Smtp(url::Url),
    /// `file://DIR`: each message becomes an `.eml` file in DIR.
    File(PathBuf),
}

impl MailUrl {
    pub fn parse(raw: &str) -> anyhow::Result<MailUrl> {
        let raw = raw.trim();
        crate::redact::hide_secrets_of_url(raw);
        if let Some(dir) = raw.strip_prefix("file://") {
            if dir.is_empty() {
                return Err(anyhow!("SMTP_URL `{raw}` names no directory"));
            }
            return Ok(MailUrl::File(PathBuf::from(dir)));
        }
        let url = url::Url::parse(raw).map_err(|error| anyhow!("SMTP_URL is malformed: {error}"))?;
        crate::redact::hide_secrets_of_url(url.as_str());
        if !matches!(url.scheme(), "smtp" | "smtps") || url.host_str().is_none_or(str::is_empty) {
            return Err(anyhow!(
                "SMTP_URL `{}` is not smtp://host:port, smtps://host or file://DIR",
                crate::redact::redact(&url)
            ));
        }
        // AUTH PLAIN and LOGIN send the password as it is: over TLS only, or
        // to this very host. `tls=opportunistic` is not enough, since whoever
        // can read the traffic can also strip the server's STARTTLS offer.
        // The first `tls=` is the one the connection follows (SmtpServer::from_url).
        let tls = url.scheme() == "smtps"
            || url
                .query_pairs()
                .find(|(key, _)| key == "tls")
                .is_some_and(|(_, value)| value == "required");
        let loopback = match url.host() {
            // `smtp` is not a scheme the url crate knows, so an IPv4 address comes as a name.
            Some(url::Host::Domain(name)) => {
                name.eq_ignore_ascii_case("localhost")
                    || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
            }
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        if url.password().is_some() && !tls && !loopback {
            return Err(anyhow!(
                "SMTP_URL `{}` has credentials but no TLS, so the password would cross the network in clear: \
                 use smtps://, add ?tls=required, or send through a server on this host",
                crate::redact::redact(&url)
            ));
        }
        // lettre parses it once more when building the transport; check it now.
        SmtpTransport::from_url(url.as_str())
            .map_err(|error| anyhow!("SMTP_URL `{}` is malformed: {error}", crate::redact::redact(&url)))?;
        Ok(MailUrl::Smtp(url))
    }
}

impl MailUrl {
    /// The URL with any password masked, safe to print.
    pub fn display(&self) -> String {
        match self {
            MailUrl::Smtp(url) => crate::redact::redact(url),
            MailUrl::File(dir) => format!("file://{}", dir.display()),
        }
    }
}

/// Where and how to reach an `smtp://` server (plain, or upgraded with STARTTLS).
#[derive(Clone)]
pub struct SmtpServer {
    host: String,
    port: u16,
    starttls: StartTls,
    hello: ClientId,
    credentials: Option<Credentials>,
    timeout: Duration,
    /// What STARTTLS trusts (see `tls`); none when the URL asks for no TLS.
    tls: Option<TlsParameters>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum StartTls {
    Never,
    IfOffered,
    Required,
}

impl SmtpServer {
    /// Reads `smtp://[user:pass@]host[:port][/ehlo-name][?tls=required|opportunistic]`,
    /// with lettre's defaults: port 25, or 587 with `tls`.
    fn from_url(url: &url::Url, timeout: Duration) -> anyhow::Result<SmtpServer> {
        let tls = url
            .query_pairs()
            .find(|(key, _)| key == "tls")
            .map(|(_, value)| value.into_owned());
        let starttls = match tls.as_deref() {
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
            StartTls::IfOffered | StartTls::Required => Some(crate::tls::smtp_parameters(&host)?),
        };
        Ok(SmtpServer {
            host,
            port: url.port().unwrap_or(if starttls == StartTls::Never { 25 } else { 587 }),
            starttls,
            hello: if path.is_empty() {
                ClientId::default()
            } else {
                ClientId::Domain(path.to_string())
            },
            credentials: url
                .password()
                .map(|password| Credentials::new(decode(url.username()), decode(password))),
            timeout,
            tls,
        })
    }

    /// A new connection: TCP with Nagle's algorithm off, then EHLO, STARTTLS and
    /// AUTH as configured. lettre writes a message's final `.` separately, and
    /// with Nagle on that write waits for the server's delayed ACK: 40 ms a message.
    async fn connect(&self) -> Result<AsyncSmtpConnection, SendFailure> {
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
        let mut connection = AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello)
            .await
            .map_err(refused_the_run)?;
        let upgrade = match self.starttls {
            StartTls::Never => false,
            StartTls::IfOffered => connection.can_starttls(),
            StartTls::Required => true,
        };
        if upgrade && let Some(parameters) = &self.tls {
            connection
                .starttls(parameters.clone(), &self.hello)
                .await
                .map_err(|error| SendFailure {
                    // Before any message: whatever the reply, the run's problem.
                    blame: Blame::Run,
                    ..explained(error, &self.host, self.port, || self.inspect())
                })?;
        }
        if let Some(credentials) = &self.credentials {
            connection
                .auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await
                .map_err(refused_the_run)?;
        }
        Ok(connection)
    }

    /// A second look at the server's certificate, through STARTTLS, for
    /// `reminders check` and to explain a refusal. It blocks, inside a
    /// sending thread's own runtime, which has nothing else to run meanwhile;
    /// its own timeouts bound it.
    fn inspect(&self) -> anyhow::Result<crate::tls::Inspection> {
        crate::tls::inspect(&self.host, self.port, self.timeout, |tcp| {
            starttls_preamble(tcp, &self.hello)
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

/// A failure to connect, as `classify` sees it, with its reason in plain
/// words when TLS refused the server's certificate (`tls::explain`).
fn explained(
    error: lettre::transport::smtp::Error,
    host: &str,
    port: u16,
    inspect: impl FnOnce() -> anyhow::Result<crate::tls::Inspection>,
) -> SendFailure {
    let reason = crate::tls::explain(&error, host, port, inspect);
    let mut failure = classify(error);
    if let Some(reason) = reason {
        failure.reason = reason;
    }
    failure
}

/// `smtps://`: lettre's pooled transport, and where it connects, to look at
/// the server's certificate for `check` and when it is refused.
#[derive(Clone)]
pub struct Smtps {
    transport: SmtpTransport,
    host: String,
    port: u16,
    timeout: Duration,
}

impl Smtps {
    fn inspect(&self) -> anyhow::Result<crate::tls::Inspection> {
        crate::tls::inspect(&self.host, self.port, self.timeout, |_| Ok(()))
    }

    fn explained(&self, error: lettre::transport::smtp::Error) -> SendFailure {
        explained(error, &self.host, self.port, || self.inspect())
    }
}

/// Where messages go; shared by the sending threads.
#[derive(Clone)]
pub enum Mailer {
    /// `smtp://`: each sending thread keeps its own connection open across
    /// messages, so `--connections` threads keep that many connections busy.
    Smtp(SmtpServer),
    /// `smtps://` (TLS from the first byte): lettre's pooled transport.
    Smtps(Smtps),
    /// `file://DIR`.
    File(FileTransport),
}

impl Mailer {
    pub fn new(url: &MailUrl, connections: u32, timeout: Duration) -> anyhow::Result<Mailer> {
        match url {
            MailUrl::Smtp(url) if url.scheme() == "smtp" => Ok(Mailer::Smtp(SmtpServer::from_url(url, timeout)?)),
            MailUrl::Smtp(url) => {
                let host = url.host_str().unwrap_or_default().to_string();
                let transport = SmtpTransport::from_url(url.as_str())
                    .map_err(|error| anyhow!("SMTP_URL `{}` is malformed: {error}", crate::redact::redact(url)))?
                    .tls(Tls::Wrapper(crate::tls::smtp_parameters(&host)?))
                    .timeout(Some(timeout))
                    .pool_config(PoolConfig::new().max_size(connections))
                    .build();
                Ok(Mailer::Smtps(Smtps {
                    transport,
                    host,
                    port: url.port().unwrap_or(lettre::transport::smtp::SUBMISSIONS_PORT),
                    timeout,
                }))
            }
            MailUrl::File(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|error| anyhow!("cannot create the outbox `{}`: {error}", dir.display()))?;
                Ok(Mailer::File(FileTransport::new(dir)))
            }
        }
    }

    /// Connects, says EHLO (and STARTTLS and AUTH when configured), and says
    /// goodbye: what `reminders check` asks of the mail server.
    pub fn probe(&self) -> Result<String, String> {
        match self {
            Mailer::Smtp(server) => {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .enable_time()
                    .build()
                    .map_err(|error| error.to_string())?;
                runtime.block_on(async {
                    let connected = tokio::time::timeout(server.timeout, server.connect())
                        .await
                        .map_err(|_| {
                            format!(
                                "no answer from {}:{} within {:?}",
                                server.host, server.port, server.timeout
                            )
                        })?;
                    let mut connection = connected.map_err(|failure| failure.reason)?;
                    let _ = connection.quit().await;
                    let auth = if server.credentials.is_some() {
                        ", credentials accepted"
                    } else {
                        ""
                    };
                    Ok(format!("{}:{} answers EHLO{auth}", server.host, server.port))
                })
            }
            Mailer::Smtps(smtps) => match smtps.transport.test_connection() {
                Ok(true) => Ok("the server answers (TLS)".to_string()),
                Ok(false) => Err("the server did not answer NOOP".to_string()),
                Err(error) => Err(smtps.explained(error).reason),
            },
            Mailer::File(_) => Ok("writes .eml files (no server)".to_string()),
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
                StartTls::IfOffered | StartTls::Required => match server.inspect() {
                    Err(error) if error.is::<NoStartTls>() && server.starttls == StartTls::IfOffered => {
                        Ok("not offered by the server (`tls=opportunistic`): mail goes in the clear".to_string())
                    }
                    inspected => shown(inspected, &server.host, server.port),
                },
            }),
            Mailer::Smtps(smtps) => Some(shown(smtps.inspect(), &smtps.host, smtps.port)),
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
            connection: None,
        })
    }
}

/// Sends messages for one thread over one reused connection.
pub struct Courier<'a> {
    mailer: &'a Mailer,
    runtime: tokio::runtime::Runtime,
    connection: Option<AsyncSmtpConnection>,
}

impl Courier<'_> {
    pub fn send(&mut self, message: &Message) -> Result<(), SendFailure> {
        let server = match self.mailer {
            Mailer::Smtp(server) => server,
            Mailer::Smtps(smtps) => {
                return smtps
                    .transport
                    .send(message)
                    .map(drop)
                    .map_err(|error| smtps.explained(error));
            }
            Mailer::File(transport) => {
                return transport
                    .send(message)
                    .map(drop)
                    .map_err(|error| SendFailure::new(Blame::Run, one_line(&error.to_string())));
            }
        };
        let connection = &mut self.connection;
        self.runtime.block_on(async {
            let timed_out = |blame| {
                SendFailure::new(
                    blame,
                    format!("no answer from the mail server within {:?}", server.timeout),
                )
            };
            if connection.as_ref().is_none_or(AsyncSmtpConnection::has_broken) {
                let fresh = tokio::time::timeout(server.timeout, server.connect())
                    .await
                    .map_err(|_| timed_out(Blame::Run))??;
                *connection = Some(fresh);
            }
            let open = connection.as_mut().expect("connected above");
            let sent = tokio::time::timeout(server.timeout, open.send(message.envelope(), &message.formatted())).await;
            match sent {
                Ok(Ok(_)) => Ok(()),
                // lettre drops a connection after any error; the next send reconnects.
                Ok(Err(error)) => Err(classify(error)),
                // The data may have arrived: a later attempt, counted as one.
                Err(_) => {
                    *connection = None;
                    Err(timed_out(Blame::Transient))
                }
            }
        })
    }
}

impl Drop for Courier<'_> {
    fn drop(&mut self) {
        if let Some(mut connection) = self.connection.take() {
            // Say goodbye, briefly; the messages are already accepted.
            let _ = self
                .runtime
                .block_on(async { tokio::time::timeout(Duration::from_secs(1), connection.quit()).await });
        }
    }
}

/// A failure while sending one message: the server's reply says whom it
/// concerns (see `failure`). No reply at all means the connection broke
/// before the server answered about this message: the run's problem. A
/// message lettre cannot put into SMTP at all is the message's.
fn classify(error: lettre::transport::smtp::Error) -> SendFailure {
    let reason = one_line(&error.to_string());
    let blame = match error.status() {
        _ if error.is_tls() => Blame::Run,
        Some(code) => crate::failure::blame_reply(u16::from(code), &reason),
        None if error.is_timeout() => Blame::Transient,
        None if error.is_client() => Blame::Message,
        None => Blame::Run,
    };
    SendFailure::new(blame, reason)
}

/// A failure before any message was offered (greeting, EHLO, STARTTLS,
/// AUTH): whatever the reply, it concerns the run.
fn refused_the_run(error: lettre::transport::smtp::Error) -> SendFailure {
    SendFailure::new(Blame::Run, one_line(&error.to_string()))
}

/// The Message-ID of a reminder: derived from its id, so that a resend after a
/// crash carries the same id and a mail system can drop the duplicate.
pub fn message_id(reminder_id: impl std::fmt::Display, from: &Mailbox) -> String {
    format!("<{reminder_id}@{}>", from.email.domain())
}

/// Builds the reminder email for a claimed reminder at `now`, from the templates.
pub fn reminder_message(
    claimed: &Claimed,
    from: &Mailbox,
    now: DateTime<Utc>,
    templates: &Templates,
) -> Result<Message, SendFailure> {
    let zone = zone_of(claimed.student_timezone.as_deref());
    let due = claimed.due_at.instant();
    let context = ReminderContext {
        student: StudentView {
            email: claimed.student_email.clone(),
            name: claimed
                .student_name
                .as_deref()
                .map(header_safe)
                .filter(|name| !name.is_empty()),
            timezone: zone.name().to_string(),
        },
        assignment: AssignmentView {
            title: header_safe(&claimed.title),
            description: claimed.description.clone().filter(|d| !d.trim().is_empty()),
            due_utc: time::utc(due),
            due_local: time::local_long(due, zone),
            due_local_short: time::local_short(due, zone),
            time_left: time::human_duration(due - now),
            metadata: claimed.metadata.clone().map(|m| m.0).unwrap_or(serde_json::Value::Null),
        },
        reminder_type: claimed.reminder_type.clone(),
    };
    let rendered = templates
        .render(Kind::Reminder, &context)
        .map_err(|e| SendFailure::new(Blame::Message, format!("{e:#}")))?;
    build(
        from,
        &claimed.student_email,
        context.student.name,
        message_id(claimed.reminder_id, from),
        rendered,
    )
}

/// What a daily summary says, before it meets the template.
pub struct SummaryContent<'a> {
    pub summary_id: Id,
    pub email: &'a str,
    pub name: Option<&'a str>,
    pub timezone: Option<&'a str>,
    pub local_date: chrono::NaiveDate,
    pub current: i64,
    pub overdue: i64,
    pub completed: i64,
    /// Open assignments, by due time.
    pub open: &'a [(String, DateTime<Utc>)],
}

/// How many assignments of each kind a summary lists by name.
const SUMMARY_LIST_LIMIT: usize = 10;

/// Builds a daily summary: the three counts, then the overdue and upcoming
/// assignments, nearest first, in the student's zone.
pub fn summary_message(
    content: &SummaryContent,
    from: &Mailbox,
    now: DateTime<Utc>,
    templates: &Templates,
) -> Result<Message, SendFailure> {
    let zone = zone_of(content.timezone);
    let item = |(title, due): &&(String, DateTime<Utc>)| ItemView {
        title: header_safe(title),
        due_utc: time::utc(*due),
        due_local: time::local_long(*due, zone),
    };
    // Nearest first: the most recently missed, and the soonest due.
    let overdue: Vec<_> = content.open.iter().filter(|(_, due)| *due < now).rev().collect();
    let upcoming: Vec<_> = content.open.iter().filter(|(_, due)| *due >= now).collect();
    let context = SummaryContext {
        student: StudentView {
            email: content.email.to_string(),
            name: content.name.map(header_safe).filter(|name| !name.is_empty()),
            timezone: zone.name().to_string(),
        },
        date: content.local_date.format("%a %d %b %Y").to_string(),
        counts: Counts {
            current: content.current,
            overdue: content.overdue,
            completed: content.completed,
        },
        overdue: overdue.iter().take(SUMMARY_LIST_LIMIT).map(item).collect(),
        overdue_more: overdue.len().saturating_sub(SUMMARY_LIST_LIMIT),
        upcoming: upcoming.iter().take(SUMMARY_LIST_LIMIT).map(item).collect(),
        upcoming_more: upcoming.len().saturating_sub(SUMMARY_LIST_LIMIT),
    };
    let rendered = templates
        .render(Kind::Summary, &context)
        .map_err(|e| SendFailure::new(Blame::Message, format!("{e:#}")))?;
    build(
        from,
        content.email,
        context.student.name,
        message_id(content.summary_id, from),
        rendered,
    )
}

/// Puts a rendered message into an email: plain text, plus an HTML
/// alternative when there is one.
fn build(
    from: &Mailbox,
    to: &str,
    name: Option<String>,
    id: String,
    rendered: Rendered,
) -> Result<Message, SendFailure> {
    let address = to
        .parse()
        .map_err(|_| SendFailure::new(Blame::Recipient, format!("`{to}` is not a valid address")))?;
    let builder = Message::builder()
        .from(from.clone())
        .to(Mailbox::new(name.map(|name| fit_header(&name)), address))
        .subject(fit_header(&rendered.subject))
        .message_id(Some(id));
    match rendered.html {
        None => builder.header(ContentType::TEXT_PLAIN).body(rendered.text),
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(rendered.text, html)),
    }
    .map_err(|error| SendFailure::new(Blame::Message, format!("cannot build the message: {error}")))
}

/// A header value on one line: CR, LF and other control characters become
/// spaces, so data can never start a header or add a recipient.
pub fn header_safe(text: &str) -> String {
    let spaced: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    spaced.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The longest word a header keeps, and the longest header text: lettre folds
/// a header line only at spaces, so one long word (a URL as a title) made a
/// Subject line longer than the 998 characters SMTP allows, and the server
/// refused the message. Within these, every line stays under 100 characters.
const HEADER_WORD_MAX: usize = 76;
const HEADER_TEXT_MAX: usize = 250;

/// One-line header text (see [`header_safe`]) cut to fit: each word longer
/// than [`HEADER_WORD_MAX`] characters, then the whole past [`HEADER_TEXT_MAX`],
/// ends in "…". The body is not cut: it always has the full title.
fn fit_header(text: &str) -> String {
    let words: Vec<String> = text.split(' ').map(|word| shorten(word, HEADER_WORD_MAX)).collect();
    shorten(&words.join(" "), HEADER_TEXT_MAX)
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut short: String = text.chars().take(max - 1).collect();
    short.push('…');
    short
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::types::Timestamp;
    use crate::render::Templates;

    fn claimed(title: &str, name: Option<&str>) -> Claimed {
        Claimed {
            reminder_id: Id("3f0c9a52-8d2e-4c4b-9b1e-2a7d5c6e8f90".parse().unwrap()),
            reminder_type: "24h".into(),
            attempts: 0,
            assignment_id: Id::new(),
            title: title.into(),
            description: None,
            due_at: Timestamp::new("2025-09-27T23:00:00Z".parse().unwrap()),
            completed: false,
            metadata: None,
            student_email: "alice@example.com".into(),
            student_name: name.map(String::from),
            student_timezone: Some("America/Los_Angeles".into()),
            contact_opt_out: false,
        }
    }

    #[test]
    fn the_message_names_the_title_and_the_local_due_time() {
        let from: Mailbox = "Reminders <noreply@school.example>".parse().unwrap();
        let now = "2025-09-26T23:00:00Z".parse().unwrap();
        let message = reminder_message(
            &claimed("Problem set 1", Some("Alice")),
            &from,
            now,
            &Templates::load(None).unwrap(),
        )
        .unwrap();
        let text = String::from_utf8(message.formatted()).unwrap();
        assert!(
            text.contains("Message-ID: <3f0c9a52-8d2e-4c4b-9b1e-2a7d5c6e8f90@school.example>"),
            "{text}"
        );
        assert!(text.contains("Subject: Reminder: Problem set 1 is due"), "{text}");
        assert!(text.contains("Sat 27 Sep 2025 16:00 PDT"), "{text}");
        assert!(text.contains("1 day from now"), "{text}");
    }

    #[test]
    fn no_header_line_is_too_long_whatever_the_title() {
        let from: Mailbox = "noreply@school.example".parse().unwrap();
        let now = "2025-09-26T23:00:00Z".parse().unwrap();
        let url = format!("https://example.com/{}", "x".repeat(1_100));
        let long_name = "N".repeat(2_000);
        let spaced = "word ".repeat(400);
        for (title, name) in [
            (url.as_str(), "Ann"),
            (spaced.as_str(), long_name.as_str()),
            ("Ünïcødé ".repeat(300).as_str(), "Zoë"),
        ] {
            let message =
                reminder_message(&claimed(title, Some(name)), &from, now, &Templates::load(None).unwrap()).unwrap();
            let text = String::from_utf8(message.formatted()).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            let longest = head.split("\r\n").map(str::len).max().unwrap();
            assert!(longest < 100, "a header line of {longest} characters:\n{head}");
            assert!(body.split("\r\n").all(|line| line.len() <= 998), "{body}");
            if title == url {
                assert!(
                    body.replace("=\r\n", "").contains(&url),
                    "the body keeps the full title:\n{body}"
                );
            }
        }
        assert_eq!(fit_header("Reminder: Essay is due"), "Reminder: Essay is due");
        assert_eq!(fit_header(&"y".repeat(80)), format!("{}…", "y".repeat(75)));
        assert_eq!(fit_header(&"ab ".repeat(100)).chars().count(), HEADER_TEXT_MAX);
    }

    #[test]
    fn smtp_credentials_need_tls_or_this_host() {
        for refused in [
            "smtp://u:pw@mail.example.com:25",
            "smtp://u:pw@mail.example.com:587?tls=opportunistic",
            "smtp://u:pw@10.0.0.1",
            "smtp://u:pw@mail.example.com?tls=opportunistic&tls=required",
        ] {
            let error = MailUrl::parse(refused).unwrap_err().to_string();
            assert!(
                error.contains("credentials but no TLS") && !error.contains("pw"),
                "{error}"
            );
        }
        for allowed in [
            "smtps://u:pw@mail.example.com",
            "smtp://u:pw@mail.example.com:587?tls=required",
            "smtp://u:pw@localhost:2525",
            "smtp://u:pw@127.0.0.1:2525",
            "smtp://u:pw@[::1]:2525",
            "smtp://mail.example.com:25",
        ] {
            assert!(MailUrl::parse(allowed).is_ok(), "{allowed}");
        }
    }

    #[test]
    fn control_characters_never_reach_a_header() {
        let from: Mailbox = "noreply@school.example".parse().unwrap();
        let now = "2025-09-26T23:00:00Z".parse().unwrap();
        let evil = claimed("Essay\r\nBcc: evil@example.com", Some("Eve\r\nCc: x@example.com"));
        let message = reminder_message(&evil, &from, now, &Templates::load(None).unwrap()).unwrap();
        let text = String::from_utf8(message.formatted()).unwrap();
        assert!(
            !text
                .lines()
                .any(|line| line.starts_with("Bcc:") || line.starts_with("Cc:")),
            "{text}"
        );
        assert_eq!(message.envelope().to().len(), 1);
    }
}
