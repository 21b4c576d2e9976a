//! Puts the git commit (when built from a checkout) and the newest migration
//! it carries into `reminders --version`.

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
        println!("cargo:rustc-env=REMINDERS_GIT_COMMIT={commit}");
    }
    let newest_migration = std::fs::read_dir("migrations/postgres")
        .expect("migrations/postgres")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .max()
        .expect("at least one migration");
    println!("cargo:rustc-env=REMINDERS_NEWEST_MIGRATION={newest_migration}");
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
}
