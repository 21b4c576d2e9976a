//! `reminders user …`.

use crate::common::smtp::SmtpServer;
use crate::common::{Backend, NOW, TestEnv, at, hours, on_both_backends};

on_both_backends! {
    fn an_address_without_an_internet_domain_is_refused_unless_allowed(env: &TestEnv) {
        env.fails(
            &["user", "add", "--email", "frank@example"],
            2,
            "`frank@example` is not an internet address: its domain `example` has no dot",
        );
        let csv = env.path("students.csv");
        std::fs::write(&csv, "email,name,timezone\nann@example.com,Ann,UTC\nfrank@example,Frank,UTC\n").unwrap();
        env.fails(&["user", "import", csv.to_str().unwrap()], 2, "line 3: `frank@example` is not an internet address");
        assert_eq!(env.count("SELECT count(*) AS n FROM users"), 0);
        env.ok(&["user", "import", csv.to_str().unwrap(), "--allow-local-domains"]);
        env.fails(&["user", "edit", "ann@example.com", "--email", "ann@school"], 2, "its domain `school` has no dot");
        env.ok(&["user", "edit", "ann@example.com", "--email", "ann@school", "--allow-local-domains"]);
        env.ok(&["user", "add", "--email", "gina@intranet", "--allow-local-domains"]);
        assert_eq!(env.count("SELECT count(*) AS n FROM users"), 3);
    }

    fn add_normalizes_the_email_and_defaults_to_utc(env: &TestEnv) {
        let user = env.json(&["user", "add", "--email", "  Alice@Example.COM ", "--name", "Alice"]);
        assert_eq!(user["email"], "alice@example.com");
        assert_eq!(user["name"], "Alice");
        assert_eq!(user["timezone"], "UTC");
        assert_eq!(user["contact_opt_out"], false);
        assert_eq!(user["id"].as_str().unwrap().len(), 36);
        let table = env.ok(&["user", "add", "--email", "bob@example.com", "--timezone", "Asia/Tokyo"]);
        assert!(table.contains("bob@example.com") && table.contains("Asia/Tokyo"), "{table}");
        assert_eq!(env.count("SELECT count(*) AS n FROM users"), 2);
    }

    fn add_refuses_bad_input_and_writes_nothing(env: &TestEnv) {
        env.fails(&["user", "add", "--email", "not-an-email"], 2, "`not-an-email` is not a valid email address");
        env.fails(&["user", "add", "--email", "a@example.com", "--timezone", "Mars/Olympus"], 2, "`Mars/Olympus` is not an IANA time zone");
        assert_eq!(env.count("SELECT count(*) AS n FROM users"), 0);
        env.add_user("dup@example.com", "UTC");
        env.fails(&["user", "add", "--email", " DUP@example.com"], 2, "a user with email `dup@example.com` already exists");
        assert_eq!(env.count("SELECT count(*) AS n FROM users"), 1);
    }

    fn list_shows_every_user(env: &TestEnv) {
        assert_eq!(env.json(&["user", "list"]), serde_json::json!([]));
        env.add_user("b@example.com", "UTC");
        env.add_user("a@example.com", "Europe/Paris");
        let users = env.json(&["user", "list"]);
        let emails: Vec<&str> = users.as_array().unwrap().iter().map(|u| u["email"].as_str().unwrap()).collect();
        assert_eq!(emails, ["a@example.com", "b@example.com"]);
        let table = env.ok(&["user", "list"]);
        assert!(table.contains("Europe/Paris"), "{table}");
    }

    fn opt_out_and_opt_in_toggle_contact(env: &TestEnv) {
        env.add_user("toggle@example.com", "UTC");
        let out = env.json(&["user", "opt-out", "Toggle@Example.com"]);
        assert_eq!(out["contact_opt_out"], true);
        assert_eq!(env.text("SELECT CAST(contact_opt_out AS TEXT) AS v FROM users").as_deref(), Some(truthy(env)));
        let back = env.json(&["user", "opt-in", "toggle@example.com"]);
        assert_eq!(back["contact_opt_out"], false);
        env.fails(&["user", "opt-out", "nobody@example.com"], 2, "no user has the email `nobody@example.com`");
        env.fails(&["user", "opt-in", "bad email"], 2, "not a valid email address");
    }
}

/// How each backend spells a stored `true` as text.
fn truthy(env: &TestEnv) -> &'static str {
    match env.backend {
        crate::common::Backend::Sqlite => "1",
        crate::common::Backend::Postgres => "true",
    }
}

/// Whether `needle` (lower case) is anywhere in the SQLite file or its WAL.
pub(super) fn in_sqlite_files(env: &TestEnv, needle: &str) -> Vec<&'static str> {
    ["test.db", "test.db-wal"]
        .into_iter()
        .filter(|file| {
            let bytes = std::fs::read(env.path(file)).unwrap_or_default().to_ascii_lowercase();
            bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
        })
        .collect()
}

/// That nothing names `needle` any more: not the database (a full dump),
/// nor, on SQLite, a free page or the WAL.
pub(super) fn assert_gone(env: &TestEnv, needle: &str) {
    let dump = full_dump(env);
    assert!(!dump.contains(needle), "`{needle}` is still in the database:\n{dump}");
    if env.backend == Backend::Sqlite {
        assert_eq!(
            in_sqlite_files(env, needle),
            Vec::<&str>::new(),
            "left in a free page or the WAL"
        );
    }
}

/// Everything the database holds, as text: `sqlite3 .dump` or `pg_dump`.
pub(super) fn full_dump(env: &TestEnv) -> String {
    let output = match env.backend {
        Backend::Sqlite => std::process::Command::new("sqlite3")
            .arg(&env.database_url)
            .arg(".dump")
            .output(),
        Backend::Postgres => std::process::Command::new("pg_dump").arg(&env.database_url).output(),
    }
    .expect("sqlite3 and pg_dump are installed by scripts/test.sh");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).to_lowercase()
}

on_both_backends! {
    fn forget_leaves_the_address_nowhere_and_keeps_the_counts(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        env.add_user("alice@example.com", "UTC");
        env.add_user("bob@example.com", "UTC");
        env.add_assignment("alice@example.com", "Essay", &at(hours(24)));
        env.add_assignment("bob@example.com", "Essay", &at(hours(24)));
        env.ok(&["send", "--unit", "hours", "--targets", "24", "--now", NOW]);
        // A rejection whose reply quotes her address, as many servers' do.
        smtp.reply_to_rcpt("alice@", "550 5.1.1 <ALICE@example.com>: Recipient address rejected");
        env.add_assignment("alice@example.com", "Lab", &at(hours(26)));
        env.run(&["send", "--unit", "hours", "--targets", "24", "--now", &at(hours(2))]);
        env.ok(&["user", "set", "alice@example.com", "--summary-hour", "8"]);
        assert!(full_dump(env).contains("alice@example.com"));
        let logs_before = env.count("SELECT count(*) AS n FROM send_logs");
        assert_eq!(logs_before, 3);

        // Not on a terminal and no --yes: nothing happens.
        env.fails(&["user", "forget", "alice@example.com"], 2, "confirm on a terminal, or pass --yes");
        assert_eq!(env.count("SELECT count(*) AS n FROM users"), 2);

        let forgotten = env.json(&["user", "forget", "alice@example.com", "--yes"]);
        assert_eq!(forgotten["assignments"], 2, "{forgotten}");
        assert_eq!(forgotten["send_logs"], 2, "{forgotten}");
        let text = env.ok(&["user", "list"]);
        assert!(!text.contains("alice"), "{text}");
        let dump = full_dump(env);
        assert!(!dump.contains("alice"), "the address is still in the database:\n{dump}");
        assert!(dump.contains("bob@example.com"));
        // The counts stay: every send log, hers under a stand-in.
        assert_eq!(env.count("SELECT count(*) AS n FROM send_logs"), logs_before);
        assert_eq!(env.count("SELECT count(*) AS n FROM send_logs WHERE to_email LIKE 'forgotten-%'"), 2);
        if env.backend == Backend::Sqlite {
            // Not in a free page or the WAL either.
            for file in ["test.db", "test.db-wal"] {
                let bytes = std::fs::read(env.path(file)).unwrap_or_default().to_ascii_lowercase();
                assert!(!bytes.windows(5).any(|w| w == b"alice"), "alice is still in {file}");
            }
        }
        env.fails(&["user", "forget", "alice@example.com", "--yes"], 2, "no user has the email");
    }
}
