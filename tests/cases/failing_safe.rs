//! Failing safe: files holding student data are owner-only, every number and
//! duration has a range, bad input is refused with its line, messages are
//! always valid, and secrets are never printed.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;

use crate::common::{Backend, NOW, Run, TestEnv, at, hours, on_both_backends};

/// Runs the binary under umask 022, as a shell or cron may start it, so that
/// only the program itself can make its files private.
fn run_under_umask_022(env: &TestEnv, args: &[&str]) -> Run {
    let direct = env.command();
    let mut shell = std::process::Command::new("sh");
    shell
        .args(["-c", "umask 022 && exec \"$@\"", "sh"])
        .arg(direct.get_program())
        .args(args)
        .env_clear()
        .envs(direct.get_envs().filter_map(|(name, value)| Some((name, value?))))
        .current_dir(env.dir.path());
    Run(shell.output().expect("run reminders"))
}

/// A file's permission bits in octal, such as `600`.
fn mode(path: &Path) -> String {
    let metadata = std::fs::metadata(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    format!("{:o}", metadata.permissions().mode() & 0o777)
}

on_both_backends! {
    fn files_holding_student_data_are_owner_only(env: &TestEnv) {
        let database = env.path("private.db");
        if env.backend == Backend::Sqlite {
            env.set_var("DATABASE_URL", database.to_str().unwrap());
        }
        let migrated = run_under_umask_022(env, &["migrate"]);
        assert_eq!(migrated.code(), 0, "{}", migrated.describe());
        env.add_user("m@example.com", "UTC");
        env.add_assignment("m@example.com", "Modes", &at(hours(24)));
        // An open reader keeps the SQLite -wal and -shm files after the run ends.
        let _reader = (env.backend == Backend::Sqlite).then(|| {
            let mut reader = SqliteConnection::establish(database.to_str().unwrap()).unwrap();
            reader.batch_execute("SELECT count(*) FROM users").unwrap();
            reader
        });
        env.use_smtp("file://outbox");
        let sent = run_under_umask_022(env, &["send", "--unit", "hours", "--targets", "24", "--now", NOW]);
        assert_eq!(sent.code(), 0, "{}", sent.describe());

        assert_eq!(mode(&env.path("outbox")), "700");
        let messages: Vec<_> = std::fs::read_dir(env.path("outbox")).unwrap().map(|entry| entry.unwrap().path()).collect();
        assert_eq!(messages.len(), 1);
        for message in &messages {
            assert_eq!(mode(message), "600", "{}", message.display());
        }
        if env.backend == Backend::Sqlite {
            for suffix in ["", "-wal", "-shm"] {
                let file = env.path(&format!("private.db{suffix}"));
                assert_eq!(mode(&file), "600", "{}", file.display());
            }
        }
    }
}
