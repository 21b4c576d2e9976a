//! `reminders user …`.

use crate::common::{TestEnv, on_both_backends};

on_both_backends! {
    fn add_normalizes_the_email_and_defaults_to_utc(env: &TestEnv) {
        let user = env.json(&["user", "add", "--email", "  Alice@Example.COM ", "--name", "Alice"]);
        assert_eq!(user[0]["email"], "alice@example.com");
        assert_eq!(user[0]["name"], "Alice");
        assert_eq!(user[0]["timezone"], "UTC");
        assert_eq!(user[0]["contact_opt_out"], false);
        assert_eq!(user[0]["id"].as_str().unwrap().len(), 36);
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
        assert_eq!(out[0]["contact_opt_out"], true);
        assert_eq!(env.text("SELECT CAST(contact_opt_out AS TEXT) AS v FROM users").as_deref(), Some(truthy(env)));
        let back = env.json(&["user", "opt-in", "toggle@example.com"]);
        assert_eq!(back[0]["contact_opt_out"], false);
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
