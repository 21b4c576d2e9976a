//! What mail systems expect of every message: headers (RFC 2045, 3834, 5322),
//! a body that ends its last line, and MIME that a strict parser accepts.

use std::path::Path;
use std::process::Command;

use crate::common::{TestEnv, on_both_backends};

/// Parses a message with Python's `email` package under its strict policy,
/// which raises on any defect, and prints its headers as `Name: value` lines
/// and then whether each text part's body ends with a newline.
const STRICT_PARSE: &str = r#"
import email, email.policy, sys
with open(sys.argv[1], "rb") as f:
    message = email.message_from_binary_file(f, policy=email.policy.strict)
for name, value in message.items():
    print(f"{name}: {value}")
for part in message.walk():
    if part.get_content_maintype() == "text":
        print("ends-with-newline:", part.get_content().endswith("\n"))
"#;

fn strictly_parsed(path: &Path) -> String {
    let out = Command::new("/usr/bin/python3")
        .args(["-c", STRICT_PARSE])
        .arg(path)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn outbox(env: &TestEnv) -> Vec<String> {
    let mut parsed: Vec<String> = std::fs::read_dir(env.path("outbox"))
        .unwrap()
        .map(|entry| strictly_parsed(&entry.unwrap().path()))
        .collect();
    parsed.sort();
    parsed
}

fn header<'a>(parsed: &'a str, name: &str) -> Option<&'a str> {
    parsed.lines().find_map(|line| line.strip_prefix(&format!("{name}: ")))
}

on_both_backends! {
    fn every_message_carries_the_standard_headers(env: &TestEnv) {
        env.use_smtp("file://outbox");
        env.set_var("REMINDERS_REPLY_TO", "School office <office@school.example>");
        env.add_user("a@example.com", "UTC");
        env.add_assignment("a@example.com", "Essay", "2030-03-02T12:00:00Z");
        let sent = env.send_24h("2030-03-01T12:00:00Z", &[]);
        assert_eq!(sent.code(), 0, "{}", sent.describe());
        let summary = env.run(&["summary", "--send", "--now", "2030-03-01T07:00:00Z"]);
        assert_eq!(summary.code(), 0, "{}", summary.describe());

        let messages = outbox(env);
        assert_eq!(messages.len(), 2, "a reminder and a summary: {messages:?}");
        for parsed in &messages {
            assert_eq!(header(parsed, "MIME-Version"), Some("1.0"), "{parsed}");
            assert_eq!(header(parsed, "Auto-Submitted"), Some("auto-generated"), "{parsed}");
            assert!(header(parsed, "Date").is_some(), "{parsed}");
            assert!(header(parsed, "Message-ID").is_some_and(|id| id.ends_with("@school.example>")), "{parsed}");
            assert_eq!(header(parsed, "Reply-To"), Some("School office <office@school.example>"), "{parsed}");
            assert!(parsed.contains("ends-with-newline: True") && !parsed.contains("ends-with-newline: False"), "{parsed}");
        }
    }

    fn without_a_reply_to_there_is_no_such_header(env: &TestEnv) {
        env.use_smtp("file://outbox");
        env.add_user("a@example.com", "UTC");
        env.add_assignment("a@example.com", "Essay", "2030-03-02T12:00:00Z");
        assert_eq!(env.send_24h("2030-03-01T12:00:00Z", &[]).code(), 0);
        let messages = outbox(env);
        assert_eq!(messages.len(), 1);
        assert_eq!(header(&messages[0], "Reply-To"), None, "{}", messages[0]);
        env.fails(&["send", "--unit", "hours", "--targets", "24", "--reply-to", "not a mailbox"], 1, "REMINDERS_REPLY_TO `not a mailbox` is not a mailbox");
    }
}

/// Verifies a message's DKIM signature with dkimpy (Debian `python3-dkim`),
/// an implementation independent of lettre's, given the TXT record directly
/// (no DNS). Prints `verified` or `failed`.
const DKIM_VERIFY: &str = r#"
import dkim, sys
message = open(sys.argv[1], "rb").read()
record = sys.argv[2].encode()
print("verified" if dkim.verify(message, dnsfunc=lambda name, timeout=5: record) else "failed")
"#;

fn dkim_verdict(message: &Path, record: &str) -> String {
    let out = Command::new("/usr/bin/python3")
        .args(["-c", DKIM_VERIFY])
        .arg(message)
        .arg(record)
        .output()
        .expect("python3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

on_both_backends! {
    fn dkim_signatures_verify_independently(env: &TestEnv) {
        let key = env.path("dkim.pem");
        let made = Command::new("openssl").args(["genrsa", "-out"]).arg(&key).arg("2048").output().expect("openssl");
        assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
        env.use_smtp("file://outbox");
        env.set_var("REMINDERS_DKIM_KEY", key.to_str().unwrap());
        env.set_var("REMINDERS_DKIM_SELECTOR", "term1");
        env.set_var("REMINDERS_SECRET", "0123456789abcdef0123456789abcdef-test-secret");
        env.set_var("REMINDERS_UNSUBSCRIBE_MAILTO", "unsubscribe@school.example");

        // `check` loads the key and names the record to publish.
        let checked = env.run(&["check"]);
        let record_line = checked.stdout();
        assert!(record_line.contains("term1._domainkey.school.example"), "{}", checked.describe());
        let record = record_line
            .split('"')
            .find(|part| part.starts_with("v=DKIM1; k=rsa; p="))
            .unwrap_or_else(|| panic!("{}", checked.describe()))
            .to_string();

        env.add_user("a@example.com", "UTC");
        env.add_assignment("a@example.com", "Essay", "2030-03-02T12:00:00Z");
        assert_eq!(env.send_24h("2030-03-01T12:00:00Z", &[]).code(), 0);
        let message = std::fs::read_dir(env.path("outbox")).unwrap().next().unwrap().unwrap().path();
        let text = std::fs::read_to_string(&message).unwrap();
        let signature = text.split("\r\n\r\n").next().unwrap().to_string();
        assert!(signature.contains("DKIM-Signature:"), "{signature}");
        assert!(signature.replace("\r\n", "").contains("List-Unsubscribe"), "the unsubscribe headers are signed: {signature}");
        assert_eq!(dkim_verdict(&message, &record), "verified");

        // A changed subject no longer verifies: the check can fail.
        let forged = env.path("forged.eml");
        std::fs::write(&forged, text.replacen("Subject: ", "Subject: URGENT ", 1)).unwrap();
        assert_eq!(dkim_verdict(&forged, &record), "failed");

        env.set_var("REMINDERS_DKIM_KEY", env.path("missing.pem").to_str().unwrap());
        env.fails(&["send", "--unit", "hours", "--targets", "24"], 1, "cannot read the DKIM key");
    }
}
