//! Puts the git commit (when built from a checkout) and the newest migration
//! it carries into `reminders --version`, and marks the PostgreSQL tests
//! ignored when they were built without a server to run against.

use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string())
        .filter(|commit| !commit.is_empty());
    if let Some(commit) = commit {
        println!("cargo:rustc-env=BUILT_FROM_COMMIT={commit}");
    }
    let newest_migration = std::fs::read_dir("migrations/postgres")
        .expect("migrations/postgres")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .max()
        .expect("at least one migration");
    println!("cargo:rustc-env=BUILT_WITH_NEWEST_MIGRATION={newest_migration}");
    // The tests that need PostgreSQL (or PgBouncer in front of it) are marked
    // ignored when built without its URL, so `cargo test` reports them as
    // ignored, never as passed.
    println!("cargo::rustc-check-cfg=cfg(reminders_postgres_tests)");
    println!("cargo::rustc-check-cfg=cfg(reminders_pooler_tests)");
    println!("cargo:rerun-if-env-changed=TEST_DATABASE_URL");
    println!("cargo:rerun-if-env-changed=TEST_PGBOUNCER_URL");
    if std::env::var_os("TEST_DATABASE_URL").is_some() {
        println!("cargo:rustc-cfg=reminders_postgres_tests");
        if std::env::var_os("TEST_PGBOUNCER_URL").is_some() {
            println!("cargo:rustc-cfg=reminders_pooler_tests");
        }
    }
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
}
