//! A throw-away Postfix (Debian's, installed by `scripts/test.sh`) on a loopback
//! port, with its own config, queue and log in a temporary folder. It plays
//! the school's relay and the students' mail host at once: known students get
//! Maildirs, an unknown one is accepted and then bounced by bounce(8) with a
//! real RFC 3464 report to the envelope sender, which (being
//! `bounces+TOKEN@school.example`) lands in the bounce Maildir, or is piped to
//! a command when `pipe` lines are given.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub struct Postfix {
    dir: tempfile::TempDir,
    pub port: u16,
}

/// How the bounce address's mail is delivered.
pub enum Bounces {
    /// To the Maildir `bounces/`.
    Maildir,
    /// Through a pipe(8) transport: lines for master.cf, main.cf and the
    /// transport map, as an operator writes them.
    Pipe {
        master_cf: String,
        main_cf: String,
        transport: String,
    },
}

/// nobody:nogroup, whom virtual(8) delivers as and pipe(8) runs as.
const NOBODY: u32 = 65534;

impl Postfix {
    pub fn start(known_students: &[&str], bounces: Bounces) -> Postfix {
        assert!(
            Path::new("/usr/sbin/postfix").exists(),
            "Postfix is not installed: `scripts/test.sh` installs it (apt-get install postfix)"
        );
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let port = super::smtp::closed_port();
        for sub in ["etc", "queue", "data", "mail"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        chmod(root, 0o755);
        chown(&root.join("data"), "postfix");
        chown(&root.join("mail"), &NOBODY.to_string());
        let d = root.display();
        let mut main_cf = format!(
            "compatibility_level = 3.6\n\
             queue_directory = {d}/queue\n\
             data_directory = {d}/data\n\
             maillog_file = {d}/maillog\n\
             maillog_file_prefixes = {d}\n\
             myhostname = mail.school.example\n\
             mydomain = school.example\n\
             mydestination =\n\
             inet_interfaces = 127.0.0.1\n\
             inet_protocols = ipv4\n\
             mynetworks = 127.0.0.0/8\n\
             virtual_mailbox_domains = school.example students.example\n\
             virtual_mailbox_base = {d}/mail\n\
             virtual_mailbox_maps = texthash:{d}/etc/vmailbox\n\
             virtual_uid_maps = static:{NOBODY}\n\
             virtual_gid_maps = static:{NOBODY}\n\
             smtpd_reject_unlisted_recipient = no\n\
             queue_run_delay = 1s\n\
             minimal_backoff_time = 1s\n\
             maximal_backoff_time = 2s\n\
             alias_maps =\n\
             alias_database =\n\
             smtputf8_enable = no\n"
        );
        let mut vmailbox: String = known_students.iter().map(|s| format!("{s} {s}/\n")).collect();
        vmailbox.push_str("bounces@school.example bounces/\n");
        let mut master_cf = master_cf(port);
        match bounces {
            Bounces::Maildir => main_cf.push_str("recipient_delimiter = +\n"),
            Bounces::Pipe {
                master_cf: service,
                main_cf: settings,
                transport,
            } => {
                master_cf.push_str(&service);
                master_cf.push('\n');
                // The operator's `hash:/etc/postfix/transport` is this
                // instance's own file, read as text (no postmap needed).
                let settings = settings.replace("hash:/etc/postfix/transport", &format!("texthash:{d}/etc/transport"));
                main_cf.push_str(&settings);
                main_cf.push('\n');
                std::fs::write(root.join("etc/transport"), transport).unwrap();
            }
        }
        std::fs::write(root.join("etc/main.cf"), main_cf).unwrap();
        std::fs::write(root.join("etc/master.cf"), master_cf).unwrap();
        std::fs::write(root.join("etc/vmailbox"), vmailbox).unwrap();
        let postfix = Postfix { dir, port };
        postfix.control("start");
        postfix.wait_until("smtpd listens", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        postfix
    }

    pub fn smtp_url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// A mailbox's Maildir: `bounces`, or a student's address.
    pub fn maildir(&self, mailbox: &str) -> PathBuf {
        self.dir.path().join("mail").join(mailbox)
    }

    /// The messages in a Maildir's `new/`.
    pub fn new_messages(&self, mailbox: &str) -> Vec<PathBuf> {
        std::fs::read_dir(self.maildir(mailbox).join("new"))
            .map(|entries| entries.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default()
    }

    pub fn maillog(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }

    /// Polls `done`, flushing the queue meanwhile; panics with the log on timeout.
    pub fn wait_until(&self, what: &str, timeout: Duration, done: impl Fn() -> bool) {
        let started = Instant::now();
        while !done() {
            assert!(
                started.elapsed() < timeout,
                "Postfix: {what} did not happen within {timeout:?}:\n{}",
                self.maillog()
            );
            let _ = Command::new("postqueue")
                .arg("-c")
                .arg(self.dir.path().join("etc"))
                .arg("-f")
                .output();
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn control(&self, verb: &str) {
        // Without a terminal, `postfix start` reports a fatal error only to
        // syslog: `script` gives it one, so the error reaches the test.
        let command = format!("/usr/sbin/postfix -c {}/etc {verb}", self.dir.path().display());
        let output = Command::new("script")
            .args(["-qc", &command, "/dev/null"])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "postfix {verb}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            self.maillog()
        );
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new("/usr/sbin/postfix")
            .arg("-c")
            .arg(self.dir.path().join("etc"))
            .arg("stop")
            .output();
    }
}

/// Debian's master.cf with smtpd on `127.0.0.1:port` and no chroot.
fn master_cf(port: u16) -> String {
    let system = std::fs::read_to_string("/etc/postfix/master.cf").expect("/etc/postfix/master.cf");
    system
        .lines()
        .map(|line| {
            let listen = format!("127.0.0.1:{port}");
            let mut fields: Vec<&str> = line.split_whitespace().collect();
            let is_service = !line.starts_with(['#', ' ', '\t']) && fields.len() >= 8;
            if !is_service {
                return line.to_string();
            }
            if fields[0] == "smtp" && fields[1] == "inet" {
                fields[0] = &listen;
            }
            fields[4] = "n";
            fields.join("  ")
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn chown(path: &Path, owner: &str) {
    assert!(Command::new("chown").arg(owner).arg(path).status().unwrap().success());
}
