//! A real SMTP server on loopback for the tests, scriptable per test: it can
//! answer MAIL, or RCPT for chosen addresses, with 4xx or 5xx, delay its reply to DATA,
//! stop listening (so connections are refused), and it counts connections.
//! It speaks plain SMTP, or offers STARTTLS, or TLS from the first byte (smtps).
//! With [`Xoauth2`] it offers only `AUTH XOAUTH2`, after STARTTLS, as
//! Microsoft 365 and Google Workspace do. It offers PIPELINING, as real
//! relays do, unless told not to, and counts the groups that came pipelined.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// How the server speaks TLS.
#[derive(Clone, Default)]
pub enum Security {
    #[default]
    Plain,
    /// Offers STARTTLS in its EHLO reply.
    StartTls(Arc<ServerConfig>),
    /// TLS from the first byte, as on port 465.
    Implicit(Arc<ServerConfig>),
}

/// A message the server accepted.
#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
    /// When the server accepted it.
    pub at: std::time::Instant,
}

impl Received {
    /// The value of a header, unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or_default();
        let prefix = format!("{}:", name.to_lowercase());
        head.replace("\r\n ", " ")
            .lines()
            .find(|line| line.to_lowercase().starts_with(&prefix))
            .map(|line| line[prefix.len()..].trim().to_string())
    }

    pub fn body(&self) -> String {
        self.data
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.replace("=\r\n", ""))
            .unwrap_or_default()
    }
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    connections: usize,
    /// (address fragment, reply) for RCPT TO.
    rcpt_rules: Vec<(String, String)>,
    /// The reply to MAIL FROM, when not `250`.
    mail_reply: Option<String>,
    /// Not offering PIPELINING.
    no_pipelining: bool,
    /// MAIL commands whose DATA had already arrived with them: groups the
    /// client pipelined.
    pipelined_groups: usize,
    data_delay: Duration,
    /// Replies to the next messages' DATA, in order, instead of accepting them.
    data_replies: std::collections::VecDeque<String>,
    /// Messages whose data arrived, whatever the reply.
    data_seen: usize,
    /// The reply to AUTH, when not `235`.
    auth_reply: Option<String>,
    /// AUTH commands received, whatever the answer.
    auth_attempts: usize,
    /// Their lines, as sent.
    auth_lines: Vec<String>,
    xoauth2: Option<Xoauth2>,
    /// The token refused by `Xoauth2::refuse_first`, refused ever after (it "expired").
    refused_token: Option<String>,
}

/// Only `AUTH XOAUTH2`, over TLS: exactly `user=USER\x01auth=Bearer TOKEN\x01\x01`
/// with a token in `tokens`.
#[derive(Clone, Default)]
pub struct Xoauth2 {
    pub user: String,
    /// The accepted tokens: a token server's `issued_tokens()`, or a fixed list.
    pub tokens: Arc<Mutex<Vec<String>>>,
    /// Refuse the first token presented with `535 5.7.3`, as a relay does
    /// with an expired token; later tokens are judged as usual.
    pub refuse_first: bool,
    /// Refuse as Gmail does: `334` with a JSON challenge, then `535` after the
    /// client's empty reply (otherwise `535` at once, as Microsoft does).
    pub challenge: bool,
}

pub struct SmtpServer {
    pub port: u16,
    state: Arc<Mutex<State>>,
    stopped: Arc<AtomicBool>,
}

impl SmtpServer {
    pub fn start() -> SmtpServer {
        SmtpServer::start_on(0)
    }

    /// Listens on `port` (0 for any free port).
    pub fn start_on(port: u16) -> SmtpServer {
        SmtpServer::start_with(port, Security::Plain)
    }

    /// Listens on any free port, with STARTTLS or implicit TLS.
    pub fn start_tls(security: Security) -> SmtpServer {
        SmtpServer::start_with(0, security)
    }

    fn start_with(port: u16, security: Security) -> SmtpServer {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the test SMTP server");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let stopped = Arc::new(AtomicBool::new(false));
        let (accept_state, accept_stopped) = (state.clone(), stopped.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if accept_stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                accept_state.lock().unwrap().connections += 1;
                let state = accept_state.clone();
                let security = security.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &state, &security);
                });
            }
        });
        SmtpServer { port, state, stopped }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Answer RCPT TO for addresses containing `fragment` with `reply`,
    /// such as `451 4.3.0 try again later` or `550 5.1.1 no such user`.
    pub fn reply_to_rcpt(&self, fragment: &str, reply: &str) {
        self.state
            .lock()
            .unwrap()
            .rcpt_rules
            .push((fragment.to_string(), reply.to_string()));
    }

    /// Answer every MAIL FROM with `reply`, such as `550 5.7.1 sender rejected`.
    pub fn reply_to_mail(&self, reply: &str) {
        self.state.lock().unwrap().mail_reply = Some(reply.to_string());
    }

    /// Stop offering PIPELINING, as an old relay would.
    pub fn without_pipelining(&self) {
        self.state.lock().unwrap().no_pipelining = true;
    }

    /// How many messages' MAIL, RCPT and DATA arrived as one group.
    pub fn pipelined_groups(&self) -> usize {
        self.state.lock().unwrap().pipelined_groups
    }

    pub fn clear_rules(&self) {
        self.state.lock().unwrap().rcpt_rules.clear();
    }

    /// Wait this long before accepting each message's data.
    pub fn delay_data(&self, delay: Duration) {
        self.state.lock().unwrap().data_delay = delay;
    }

    /// Answer AUTH with `reply`, such as `535 5.7.8 authentication failed`.
    pub fn reply_to_auth(&self, reply: &str) {
        self.state.lock().unwrap().auth_reply = Some(reply.to_string());
    }

    /// Answer the next message's DATA with `reply` (after the delay), such as
    /// `554 5.6.0 refused`, instead of accepting it; `DROP` hangs up without
    /// a reply. Each call covers one message.
    pub fn reply_to_next_data(&self, reply: &str) {
        self.state.lock().unwrap().data_replies.push_back(reply.to_string());
    }

    /// Offer only `AUTH XOAUTH2`, and judge it as `xoauth2` says.
    pub fn require_xoauth2(&self, xoauth2: Xoauth2) {
        self.state.lock().unwrap().xoauth2 = Some(xoauth2);
    }

    /// The AUTH command lines that arrived (`AUTH PLAIN <base64>`).
    pub fn auth_lines(&self) -> Vec<String> {
        self.state.lock().unwrap().auth_lines.clone()
    }

    /// How many AUTH commands arrived, accepted or not.
    pub fn auth_attempts(&self) -> usize {
        self.state.lock().unwrap().auth_attempts
    }

    /// How many messages' data has arrived, answered yet or not.
    pub fn data_seen(&self) -> usize {
        self.state.lock().unwrap().data_seen
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// How many messages each subject received.
    pub fn count_by_subject(&self) -> std::collections::HashMap<String, usize> {
        let mut counts = std::collections::HashMap::new();
        for message in self.received() {
            *counts.entry(message.header("Subject").unwrap_or_default()).or_insert(0) += 1;
        }
        counts
    }

    pub fn connections(&self) -> usize {
        self.state.lock().unwrap().connections
    }

    /// Stops listening: new connections are refused from now on.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        // Wait until the port is really closed.
        for _ in 0..100 {
            if TcpStream::connect(("127.0.0.1", self.port)).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port on which nothing listens: connections to it are refused.
pub fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A connection's bytes: plain TCP, or TLS over it.
trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

fn tls_over(config: &Arc<ServerConfig>, plain: Box<dyn Stream>) -> std::io::Result<Box<dyn Stream>> {
    let connection = ServerConnection::new(config.clone()).map_err(std::io::Error::other)?;
    Ok(Box::new(StreamOwned::new(connection, plain)))
}

fn serve(stream: TcpStream, state: &Mutex<State>, security: &Security) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let stream: Box<dyn Stream> = match security {
        Security::Implicit(config) => tls_over(config, Box::new(stream))?,
        _ => Box::new(stream),
    };
    let mut encrypted = matches!(security, Security::Implicit(_));
    // Writes go through the reader's stream: a BufReader buffers only reads.
    let mut reader = BufReader::new(stream);
    write_reply(&mut reader, "220 localhost test SMTP")?;
    let (mut from, mut to) = (String::new(), Vec::new());
    let mut sender_accepted = false;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_string();
        let verb = command.split([' ', ':']).next().unwrap_or_default().to_uppercase();
        let (xoauth2, pipelining) = {
            let state = state.lock().unwrap();
            let pipelining = if state.no_pipelining { "" } else { "250-PIPELINING\r\n" };
            (state.xoauth2.clone(), pipelining)
        };
        // With XOAUTH2, AUTH is offered after STARTTLS only, as Microsoft and Google do.
        let auth = match &xoauth2 {
            None => "250-AUTH PLAIN LOGIN\r\n",
            Some(_) if encrypted => "250-AUTH XOAUTH2\r\n",
            Some(_) => "",
        };
        let reply = match verb.as_str() {
            "EHLO" if matches!(security, Security::StartTls(_)) && !encrypted => {
                format!("250-localhost\r\n250-STARTTLS\r\n{pipelining}250-8BITMIME\r\n{auth}250 SIZE 10000000")
            }
            "EHLO" => format!("250-localhost\r\n{pipelining}250-8BITMIME\r\n{auth}250 SIZE 10000000"),
            "AUTH" if let Some(xoauth2) = &xoauth2 => {
                state.lock().unwrap().auth_attempts += 1;
                match xoauth2_reply(&mut reader, &command, xoauth2, state, encrypted)? {
                    Some(reply) => reply,
                    None => return Ok(()),
                }
            }
            "STARTTLS" if !encrypted && let Security::StartTls(config) = security => {
                write_reply(&mut reader, "220 2.0.0 ready to start TLS")?;
                // The client says nothing more until its handshake, so the reader holds no bytes.
                reader = BufReader::new(tls_over(config, reader.into_inner())?);
                encrypted = true;
                (from, to) = (String::new(), Vec::new());
                continue;
            }
            "AUTH" => {
                let mut state = state.lock().unwrap();
                state.auth_attempts += 1;
                state.auth_lines.push(command.trim_end().to_string());
                state
                    .auth_reply
                    .clone()
                    .unwrap_or_else(|| "235 2.7.0 authenticated".to_string())
            }
            "HELO" | "NOOP" => "250 ok".to_string(),
            "RSET" => {
                (from, to) = (String::new(), Vec::new());
                "250 ok".to_string()
            }
            "MAIL" => {
                from = address_in(&command);
                to.clear();
                let mut state = state.lock().unwrap();
                if String::from_utf8_lossy(reader.buffer()).contains("DATA\r\n") {
                    state.pipelined_groups += 1;
                }
                sender_accepted = state.mail_reply.is_none();
                state.mail_reply.clone().unwrap_or_else(|| "250 ok".to_string())
            }
            "RCPT" if !sender_accepted => "503 5.5.1 Error: need MAIL command".to_string(),
            "RCPT" => {
                let address = address_in(&command);
                let rule = state
                    .lock()
                    .unwrap()
                    .rcpt_rules
                    .iter()
                    .find(|(f, _)| address.contains(f.as_str()))
                    .map(|(_, r)| r.clone());
                match rule {
                    Some(reply) => reply,
                    None => {
                        to.push(address);
                        "250 ok".to_string()
                    }
                }
            }
            // As Postfix answers a pipelined DATA after every RCPT was refused.
            "DATA" if to.is_empty() => "554 5.5.1 Error: no valid recipients".to_string(),
            "DATA" => {
                write_reply(&mut reader, "354 go ahead")?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line)? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    data.push_str(
                        line.strip_prefix('.')
                            .filter(|_| line.starts_with(".."))
                            .unwrap_or(&line),
                    );
                }
                let (delay, scripted) = {
                    let mut state = state.lock().unwrap();
                    state.data_seen += 1;
                    (state.data_delay, state.data_replies.pop_front())
                };
                std::thread::sleep(delay);
                match scripted {
                    // Returning drops the stream: the line goes dead.
                    Some(drop) if drop == "DROP" => return Ok(()),
                    Some(reply) => reply,
                    None => {
                        state.lock().unwrap().received.push(Received {
                            from: from.clone(),
                            to: to.clone(),
                            data,
                            at: std::time::Instant::now(),
                        });
                        "250 2.0.0 queued".to_string()
                    }
                }
            }
            "QUIT" => {
                write_reply(&mut reader, "221 bye")?;
                return Ok(());
            }
            _ => "502 unknown command".to_string(),
        };
        write_reply(&mut reader, &reply)?;
    }
}

/// The answer to `AUTH …` in XOAUTH2 mode; `None` when the client hung up.
fn xoauth2_reply(
    reader: &mut BufReader<Box<dyn Stream>>,
    command: &str,
    xoauth2: &Xoauth2,
    state: &Mutex<State>,
    encrypted: bool,
) -> std::io::Result<Option<String>> {
    use base64::Engine;
    let base64 = base64::engine::general_purpose::STANDARD;
    let mut words = command.split_whitespace().skip(1);
    if !encrypted {
        return Ok(Some("530 5.7.0 Must issue a STARTTLS command first".to_string()));
    }
    if !words
        .next()
        .is_some_and(|mechanism| mechanism.eq_ignore_ascii_case("XOAUTH2"))
    {
        return Ok(Some("504 5.7.4 Unrecognized authentication type".to_string()));
    }
    let initial = match words.next() {
        Some(initial) => initial.to_string(),
        // No initial response: ask for it.
        None => {
            write_reply(reader, "334 ")?;
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(None);
            }
            line.trim_end().to_string()
        }
    };
    let decoded = base64
        .decode(&initial)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or_default();
    let token = decoded
        .strip_prefix(&format!("user={}\x01auth=Bearer ", xoauth2.user))
        .and_then(|rest| rest.strip_suffix("\x01\x01"))
        .filter(|token| !token.is_empty() && !token.contains('\x01'));
    let accepted = token.is_some_and(|token| {
        let mut state = state.lock().unwrap();
        if xoauth2.refuse_first && state.refused_token.is_none() {
            state.refused_token = Some(token.to_string());
        }
        state.refused_token.as_deref() != Some(token) && xoauth2.tokens.lock().unwrap().iter().any(|t| t == token)
    });
    if accepted {
        return Ok(Some("235 2.7.0 Authentication successful".to_string()));
    }
    if xoauth2.challenge {
        let challenge = base64.encode(r#"{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}"#);
        write_reply(reader, &format!("334 {challenge}"))?;
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        return Ok(Some("535 5.7.8 Username and Password not accepted".to_string()));
    }
    Ok(Some("535 5.7.3 Authentication unsuccessful".to_string()))
}

fn write_reply(reader: &mut BufReader<Box<dyn Stream>>, reply: &str) -> std::io::Result<()> {
    let stream = reader.get_mut();
    stream.write_all(format!("{reply}\r\n").as_bytes())?;
    stream.flush()
}

fn address_in(command: &str) -> String {
    let start = command.find('<').map_or(0, |i| i + 1);
    let end = command[start..].find('>').map_or(command.len(), |i| start + i);
    command[start..end].to_lowercase()
}
