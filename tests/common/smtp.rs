//! A real SMTP server on loopback for the tests, scriptable per test: it can
//! answer RCPT with 4xx or 5xx for chosen addresses, delay its reply to DATA,
//! stop listening (so connections are refused), and it counts connections.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A message the server accepted.
#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
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
    data_delay: Duration,
    /// Replies to the next messages' DATA, in order, instead of accepting them.
    data_replies: std::collections::VecDeque<String>,
    /// Messages whose data arrived, whatever the reply.
    data_seen: usize,
    /// The reply to AUTH, when not `235`.
    auth_reply: Option<String>,
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
                std::thread::spawn(move || {
                    let _ = serve(stream, &state);
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

fn serve(stream: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    writer.write_all(b"220 localhost test SMTP\r\n")?;
    let (mut from, mut to) = (String::new(), Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_string();
        let verb = command.split([' ', ':']).next().unwrap_or_default().to_uppercase();
        let reply = match verb.as_str() {
            "EHLO" => "250-localhost\r\n250-8BITMIME\r\n250-AUTH PLAIN LOGIN\r\n250 SIZE 10000000".to_string(),
            "AUTH" => state
                .lock()
                .unwrap()
                .auth_reply
                .clone()
                .unwrap_or_else(|| "235 2.7.0 authenticated".to_string()),
            "HELO" | "NOOP" => "250 ok".to_string(),
            "RSET" => {
                (from, to) = (String::new(), Vec::new());
                "250 ok".to_string()
            }
            "MAIL" => {
                from = address_in(&command);
                to.clear();
                "250 ok".to_string()
            }
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
            "DATA" => {
                writer.write_all(b"354 go ahead\r\n")?;
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
                    Some(drop) if drop == "DROP" => {
                        let _ = writer.shutdown(Shutdown::Both);
                        return Ok(());
                    }
                    Some(reply) => reply,
                    None => {
                        state.lock().unwrap().received.push(Received {
                            from: from.clone(),
                            to: to.clone(),
                            data,
                        });
                        "250 2.0.0 queued".to_string()
                    }
                }
            }
            "QUIT" => {
                writer.write_all(b"221 bye\r\n")?;
                let _ = writer.shutdown(Shutdown::Both);
                return Ok(());
            }
            _ => "502 unknown command".to_string(),
        };
        writer.write_all(format!("{reply}\r\n").as_bytes())?;
    }
}

fn address_in(command: &str) -> String {
    let start = command.find('<').map_or(0, |i| i + 1);
    let end = command[start..].find('>').map_or(command.len(), |i| start + i);
    command[start..end].to_lowercase()
}
