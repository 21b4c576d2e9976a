//! Exact CLI snapshots (trycmd): every command's `--help`, the one error
//! line of each kind of bad input, and the whole output of a run ending in
//! each exit status that a command can reach without a signal. A change to any of them shows here
//! as a diff; `TRYCMD=overwrite cargo test --test cli` accepts it.

#[test]
fn help_and_error_lines() {
    trycmd::TestCases::new()
        .env("DATABASE_URL", "does-not-exist.db")
        .case("tests/cmd/help/*.toml")
        .case("tests/cmd/errors/*.toml")
        .case("tests/cmd/status/*.trycmd");
}

/// Every command has its help snapshot: the man pages name them all.
#[test]
fn every_command_has_a_help_snapshot() {
    let pages = tempfile::tempdir().unwrap();
    let written = std::process::Command::new(env!("CARGO_BIN_EXE_reminders"))
        .args(["man", "--dir"])
        .arg(pages.path())
        .output()
        .unwrap();
    assert!(written.status.success());
    for page in std::fs::read_dir(pages.path()).unwrap() {
        let name = page.unwrap().file_name().into_string().unwrap();
        let case = format!("tests/cmd/help/{}.toml", name.trim_end_matches(".1"));
        assert!(std::path::Path::new(&case).exists(), "no help snapshot {case}");
    }
}
