//! One SMTP session with a relay, spoken by us rather than by lettre so that a
//! message's MAIL, RCPT and DATA go as one group when the relay offers
//! PIPELINING (RFC 2920): against a relay tens of milliseconds away a message
//! then costs two round trips instead of four. lettre writes each command and
//! waits for its reply before the next, and cannot write without reading.
//!
//! lettre still words the commands and the SASL responses; TLS is
//! tokio-rustls's, over the stream `transport` opens.
//!
//! Each refusal keeps the step it answered, so that `transport::classify`
//! tells a refused RCPT (the recipient's) from a refused MAIL (the run's).

use std::fmt;

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::commands::{Auth, Data, Ehlo, Mail, Noop, Quit, Rcpt, Starttls};
use lettre::transport::smtp::extension::{ClientId, MailBodyParameter, MailParameter};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

/// A hostile or broken server cannot make a reply cost more memory than this.
const MAX_LINE_BYTES: usize = 4096;
const MAX_REPLY_LINES: usize = 100;

/// What a reply answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Greeting,
    Ehlo,
    StartTls,
    Auth,
    Mail,
    Rcpt,
    Data,
    /// The reply to the message itself, after its final `.`.
    EndOfData,
    Noop,
    Quit,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Greeting => "the greeting",
            Step::Ehlo => "EHLO",
            Step::StartTls => "STARTTLS",
            Step::Auth => "AUTH",
            Step::Mail => "MAIL FROM",
            Step::Rcpt => "RCPT TO",
            Step::Data => "DATA",
            Step::EndOfData => "the end of the message",
            Step::Noop => "NOOP",
            Step::Quit => "QUIT",
        })
    }
}

/// A server's reply: its code and its lines' text, without the codes.
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    /// The reply as one line, as `failure::blame_reply` reads it.
    pub fn text(&self) -> String {
        self.lines.join(" ")
    }

    fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.text())
    }
}

#[derive(Debug)]
pub enum SmtpError {
    /// The server refused `Step` with this reply.
    Refused(Step, Reply),
    /// XOAUTH2 only: the server answered the token with a challenge (as
    /// Gmail does) and then refused it with this reply.
    Challenged(Reply),
    /// The connection broke or closed before the reply to `Step`.
    Broken(Step, std::io::Error),
    /// The TLS handshake failed (`tls::explain` reads why).
    Tls(std::io::Error),
    /// The server's answer to `Step` is not SMTP.
    Garbled(Step, String),
    /// The message or the credentials need what the server does not offer.
    Unsupported(String),
}

impl fmt::Display for SmtpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SmtpError::Refused(step, reply) => write!(f, "the server answered {step} with {reply}"),
            SmtpError::Challenged(reply) => write!(
                f,
                "the server answered AUTH XOAUTH2 with an error challenge (334), then {reply}: the token was refused"
            ),
            SmtpError::Broken(step, error) => write!(f, "the connection broke before the reply to {step}: {error}"),
            SmtpError::Tls(error) => write!(f, "{error}"),
            SmtpError::Garbled(step, what) => write!(f, "the server's reply to {step} is not SMTP: {what}"),
            SmtpError::Unsupported(what) => f.write_str(what),
        }
    }
}

/// What the server offers in its EHLO reply, of what we use.
#[derive(Debug, Default)]
struct Extensions {
    starttls: bool,
    pipelining: bool,
    eight_bit_mime: bool,
    smtp_utf8: bool,
    auth: Vec<String>,
}

impl Extensions {
    fn from_ehlo(reply: &Reply) -> Extensions {
        let mut offered = Extensions::default();
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_whitespace();
            match words.next().map(str::to_ascii_uppercase).as_deref() {
                Some("STARTTLS") => offered.starttls = true,
                Some("PIPELINING") => offered.pipelining = true,
                Some("8BITMIME") => offered.eight_bit_mime = true,
                Some("SMTPUTF8") => offered.smtp_utf8 = true,
                Some("AUTH") => offered.auth.extend(words.map(str::to_ascii_uppercase)),
                _ => {}
            }
        }
        offered
    }
}

/// What a session runs over: TCP, or TLS over it.
pub trait Wire: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Wire for T {}

/// An open session, past EHLO: over plain TCP until STARTTLS, then over
/// whatever `boxed` or `after_starttls` gives it.
pub struct Session<S: Wire = Box<dyn Wire>> {
    stream: BufReader<S>,
    offered: Extensions,
    /// Set by any failure: the session's state is unknown, so it is not reused.
    broken: bool,
}

impl<S: Wire + 'static> Session<S> {
    /// Reads the greeting and says EHLO.
    pub async fn start(stream: S, hello: &ClientId) -> Result<Session<S>, SmtpError> {
        let mut session = Session::over(stream);
        let greeting = session.read_reply(Step::Greeting).await?;
        session.expect(Step::Greeting, greeting)?;
        session.ehlo(hello).await?;
        Ok(session)
    }

    /// The session again after the TLS handshake: EHLO once more, as RFC
    /// 3207 has the client forget what it learned in the clear.
    pub async fn after_starttls(stream: S, hello: &ClientId) -> Result<Session<S>, SmtpError> {
        let mut session = Session::over(stream);
        session.ehlo(hello).await?;
        Ok(session)
    }

    fn over(stream: S) -> Session<S> {
        Session {
            stream: BufReader::new(stream),
            offered: Extensions::default(),
            broken: false,
        }
    }

    pub fn boxed(self) -> Session {
        Session {
            stream: BufReader::new(Box::new(self.stream.into_inner())),
            offered: self.offered,
            broken: self.broken,
        }
    }

    /// STARTTLS: the stream, for the handshake. Nothing is buffered, since the
    /// server says nothing more until the handshake.
    pub async fn starttls(mut self) -> Result<S, SmtpError> {
        self.command(Step::StartTls, &Starttls.to_string()).await?;
        Ok(self.stream.into_inner())
    }

    async fn ehlo(&mut self, hello: &ClientId) -> Result<(), SmtpError> {
        let reply = self.command(Step::Ehlo, &Ehlo::new(hello.clone()).to_string()).await?;
        self.offered = Extensions::from_ehlo(&reply);
        Ok(())
    }

    pub fn offers_starttls(&self) -> bool {
        self.offered.starttls
    }

    /// AUTH with the first of `mechanisms` the server offers.
    pub async fn auth(&mut self, mechanisms: &[Mechanism], credentials: &Credentials) -> Result<(), SmtpError> {
        let Some(&mechanism) = mechanisms
            .iter()
            .find(|mechanism| self.offered.auth.contains(&mechanism.to_string()))
        else {
            let wanted = mechanisms.iter().map(ToString::to_string).collect::<Vec<_>>();
            let offered = if self.offered.auth.is_empty() {
                "none".to_string()
            } else {
                self.offered.auth.join(" ")
            };
            return Err(self.failed(SmtpError::Unsupported(format!(
                "the server offers no AUTH mechanism of {} (it offers {offered})",
                wanted.join(", ")
            ))));
        };
        let first = Auth::new(mechanism, credentials.clone(), None).map_err(|error| self.unsupported(&error))?;
        let mut reply = self.send_and_read(Step::Auth, first.to_string().as_bytes()).await?;
        // LOGIN asks for the name and then the password: a few challenges at most.
        for _ in 0..3 {
            if reply.code != 334 {
                break;
            }
            if mechanism == Mechanism::Xoauth2 {
                // Gmail's error challenge: an empty answer fetches the refusal.
                let refusal = self.send_and_read(Step::Auth, b"\r\n").await?;
                return Err(self.failed(SmtpError::Challenged(refusal)));
            }
            let challenge = decode_challenge(&reply)
                .ok_or_else(|| self.failed(SmtpError::Garbled(Step::Auth, format!("challenge `{}`", reply.text()))))?;
            let answer =
                Auth::new(mechanism, credentials.clone(), Some(challenge)).map_err(|error| self.unsupported(&error))?;
            reply = self.send_and_read(Step::Auth, answer.to_string().as_bytes()).await?;
        }
        self.expect(Step::Auth, reply).map(drop)
    }

    /// Offers one message: its commands as one group when the server
    /// pipelines, else one at a time. The first refusal is the error, named by
    /// the step it answered; the message is then not sent.
    pub async fn send(&mut self, envelope: &Envelope, message: &[u8]) -> Result<Reply, SmtpError> {
        let mut parameters = Vec::new();
        if !message.is_ascii() {
            if !self.offered.eight_bit_mime {
                return Err(self.failed(SmtpError::Unsupported(
                    "the message has non-ASCII text and the server does not offer 8BITMIME".into(),
                )));
            }
            parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        let addresses = envelope.from().into_iter().chain(envelope.to());
        if addresses
            .map(|address| address.to_string())
            .any(|address| !address.is_ascii())
        {
            if !self.offered.smtp_utf8 {
                return Err(self.failed(SmtpError::Unsupported(
                    "an address is not ASCII and the server does not offer SMTPUTF8".into(),
                )));
            }
            parameters.push(MailParameter::SmtpUtfEight);
        }
        let mut commands = vec![(Step::Mail, Mail::new(envelope.from().cloned(), parameters).to_string())];
        for recipient in envelope.to() {
            commands.push((Step::Rcpt, Rcpt::new(recipient.clone(), vec![]).to_string()));
        }
        commands.push((Step::Data, Data.to_string()));

        let mut refusal = None;
        if self.offered.pipelining {
            let group: String = commands.iter().map(|(_, command)| command.as_str()).collect();
            self.write(Step::Mail, group.as_bytes()).await?;
            // Every reply of the group is read, even after a refusal, so the
            // session stays in step (RFC 2920 section 3.1).
            for (step, _) in &commands {
                let reply = self.read_reply(*step).await?;
                if !reply.is_positive() && refusal.is_none() {
                    refusal = Some(SmtpError::Refused(*step, reply));
                } else if *step == Step::Data && reply.code == 354 && refusal.is_some() {
                    // DATA was accepted although a recipient was not: an
                    // empty message ends it, and the refusal stands.
                    let _ = self.send_and_read(Step::EndOfData, b".\r\n").await;
                }
            }
        } else {
            for (step, command) in &commands {
                let reply = self.send_and_read(*step, command.as_bytes()).await?;
                if !reply.is_positive() {
                    refusal = Some(SmtpError::Refused(*step, reply));
                    break;
                }
            }
        }
        if let Some(refusal) = refusal {
            return Err(self.failed(refusal));
        }
        let mut data = dot_stuffed(message);
        data.extend_from_slice(b"\r\n.\r\n");
        let reply = self.send_and_read(Step::EndOfData, &data).await?;
        self.expect(Step::EndOfData, reply)
    }

    /// Whether the server still answers (it may close an idle session).
    pub async fn noop(&mut self) -> bool {
        !self.broken && self.command(Step::Noop, &Noop.to_string()).await.is_ok()
    }

    pub async fn quit(&mut self) {
        let _ = self.command(Step::Quit, &Quit.to_string()).await;
    }

    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// One command and its reply, which must be positive.
    async fn command(&mut self, step: Step, command: &str) -> Result<Reply, SmtpError> {
        let reply = self.send_and_read(step, command.as_bytes()).await?;
        self.expect(step, reply)
    }

    fn expect(&mut self, step: Step, reply: Reply) -> Result<Reply, SmtpError> {
        if reply.is_positive() {
            Ok(reply)
        } else {
            Err(self.failed(SmtpError::Refused(step, reply)))
        }
    }

    async fn send_and_read(&mut self, step: Step, bytes: &[u8]) -> Result<Reply, SmtpError> {
        self.write(step, bytes).await?;
        self.read_reply(step).await
    }

    async fn write(&mut self, step: Step, bytes: &[u8]) -> Result<(), SmtpError> {
        let stream = self.stream.get_mut();
        let written = match stream.write_all(bytes).await {
            Ok(()) => stream.flush().await,
            Err(error) => Err(error),
        };
        written.map_err(|error| self.failed(SmtpError::Broken(step, error)))
    }

    /// One reply, however many lines: `250-…` continues, `250 …` ends.
    async fn read_reply(&mut self, step: Step) -> Result<Reply, SmtpError> {
        let mut lines = Vec::new();
        loop {
            let line = self.read_line(step).await?;
            let code = line
                .get(..3)
                .and_then(|digits| digits.parse::<u16>().ok())
                .filter(|code| (200..600).contains(code));
            let Some(code) = code else {
                let shown: String = line.chars().take(80).collect();
                return Err(self.failed(SmtpError::Garbled(step, format!("`{shown}`"))));
            };
            lines.push(line.get(4..).unwrap_or_default().to_string());
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(Reply { code, lines });
            }
            if lines.len() >= MAX_REPLY_LINES {
                return Err(self.failed(SmtpError::Garbled(step, "too many lines".into())));
            }
        }
    }

    /// One line, without its line end, read no further than `MAX_LINE_BYTES`.
    async fn read_line(&mut self, step: Step) -> Result<String, SmtpError> {
        let mut line = Vec::new();
        loop {
            let available = match self.stream.fill_buf().await {
                Ok(available) => available,
                Err(error) => return Err(self.failed(SmtpError::Broken(step, error))),
            };
            if available.is_empty() {
                let closed = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the server closed the connection");
                return Err(self.failed(SmtpError::Broken(step, closed)));
            }
            let end = available.iter().position(|&byte| byte == b'\n');
            let used = end.map_or(available.len(), |at| at + 1);
            line.extend_from_slice(&available[..used]);
            self.stream.consume(used);
            if line.len() > MAX_LINE_BYTES {
                return Err(self.failed(SmtpError::Garbled(step, "a reply line is too long".into())));
            }
            if end.is_some() {
                return Ok(String::from_utf8_lossy(&line).trim_end().to_string());
            }
        }
    }

    fn failed(&mut self, error: SmtpError) -> SmtpError {
        self.broken = true;
        error
    }

    fn unsupported(&mut self, error: &lettre::transport::smtp::Error) -> SmtpError {
        self.failed(SmtpError::Unsupported(error.to_string()))
    }
}

/// The text of a `334` challenge, which is base64.
fn decode_challenge(reply: &Reply) -> Option<String> {
    let encoded = reply.lines.first()?.split_whitespace().next().unwrap_or_default();
    let decoded = data_encoding::BASE64.decode(encoded.as_bytes()).ok()?;
    String::from_utf8(decoded).ok()
}

/// The message as DATA carries it: a line that starts with `.` gets another
/// (RFC 5321 section 4.5.2), so that no line of it ends the message early.
fn dot_stuffed(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 64);
    let mut line_start = true;
    for &byte in message {
        if line_start && byte == b'.' {
            out.push(b'.');
        }
        out.push(byte);
        line_start = byte == b'\n';
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dots_at_line_starts_are_doubled() {
        assert_eq!(
            dot_stuffed(b".a\r\nb.\r\n.\r\n..c"),
            b"..a\r\nb.\r\n..\r\n...c".to_vec()
        );
    }

    /// Runs `client` against a peer that expects `script`'s lines (sent by
    /// the client, in order) and answers each with its reply, if any; the
    /// peer's first entry is its greeting. Returns what the client saw.
    fn against<T>(script: &'static [(&'static str, &'static str)], client: impl AsyncFnOnce(Session) -> T) -> T {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let (ours, theirs) = tokio::io::duplex(64 * 1024);
            let peer = async move {
                let (read, mut write) = tokio::io::split(theirs);
                let mut lines = BufReader::new(read).lines();
                for (expected, reply) in script {
                    if !expected.is_empty() {
                        let line = lines.next_line().await.unwrap().unwrap_or_default();
                        assert_eq!(line, *expected);
                    }
                    if !reply.is_empty() {
                        write.write_all(format!("{reply}\r\n").as_bytes()).await.unwrap();
                    }
                }
            };
            let hello = ClientId::Domain("client.example".into());
            let client = async {
                let session = Session::start(Box::new(ours) as Box<dyn Wire>, &hello).await.unwrap();
                client(session).await
            };
            let peer = tokio::spawn(peer);
            let seen = client.await;
            peer.await.expect("the peer saw what it expected");
            seen
        })
    }

    fn envelope() -> Envelope {
        Envelope::new(
            Some("from@school.example".parse().unwrap()),
            vec!["to@home.example".parse().unwrap()],
        )
        .unwrap()
    }

    #[test]
    fn a_refused_recipient_in_a_group_is_named_and_an_accepted_data_is_ended_empty() {
        let seen = against(
            &[
                ("", "220 relay"),
                ("EHLO client.example", "250-relay\r\n250 PIPELINING"),
                ("MAIL FROM:<from@school.example>", ""),
                ("RCPT TO:<to@home.example>", ""),
                ("DATA", "250 ok\r\n550 5.1.1 no such user\r\n354 go on"),
                (".", "554 no valid recipients"),
            ],
            async |mut session| session.send(&envelope(), b"Subject: x\r\n\r\nhi\r\n").await,
        );
        match seen {
            Err(SmtpError::Refused(Step::Rcpt, reply)) => assert_eq!(reply.code, 550),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_reply_too_long_or_not_smtp_is_refused_without_reading_on() {
        let long: &'static str = format!("250 {}", "x".repeat(MAX_LINE_BYTES)).leak();
        let many: &'static str = vec!["250-more"; MAX_REPLY_LINES + 1].join("\r\n").leak();
        for (reply, why) in [
            (long, "too long"),
            (many, "too many lines"),
            ("HTTP/1.1 400 Bad Request", "HTTP"),
        ] {
            let script: &'static [(&str, &str)] = vec![
                ("", "220 relay"),
                ("EHLO client.example", "250-relay\r\n250 PIPELINING"),
                ("MAIL FROM:<from@school.example>", ""),
                ("RCPT TO:<to@home.example>", ""),
                ("DATA", reply),
            ]
            .leak();
            let seen = against(script, async |mut session| {
                let sent = session.send(&envelope(), b"hi\r\n").await;
                (sent, session.is_broken())
            });
            match seen {
                (Err(SmtpError::Garbled(Step::Mail, what)), true) => assert!(what.contains(why), "{what}"),
                other => panic!("{why}: {other:?}"),
            }
        }
    }

    #[test]
    fn login_answers_each_challenge() {
        let seen = against(
            &[
                ("", "220 relay"),
                ("EHLO client.example", "250-relay\r\n250 AUTH LOGIN"),
                ("AUTH LOGIN", "334 VXNlcm5hbWU6"),
                ("dXNlcg==", "334 UGFzc3dvcmQ6"),
                ("c2VjcmV0", "235 ok"),
            ],
            async |mut session| {
                let credentials = Credentials::new("user".into(), "secret".into());
                session.auth(&[Mechanism::Plain, Mechanism::Login], &credentials).await
            },
        );
        assert!(seen.is_ok(), "{seen:?}");
    }

    #[test]
    fn ehlo_keywords_are_read_case_blind() {
        let reply = Reply {
            code: 250,
            lines: [
                "relay.example",
                "pipelining",
                "AUTH plain LOGIN",
                "8BITMIME",
                "SIZE 1000",
            ]
            .map(String::from)
            .to_vec(),
        };
        let offered = Extensions::from_ehlo(&reply);
        assert!(offered.pipelining && offered.eight_bit_mime && !offered.starttls && !offered.smtp_utf8);
        assert_eq!(offered.auth, ["PLAIN", "LOGIN"]);
    }
}
