//! The guide's cron and systemd instructions, run as written as
//! far as a test machine allows: the cron lines in an empty environment, the
//! systemd units through `systemd-analyze verify` and their `ExecStart` with
//! their `EnvironmentFile`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{Run, TestEnv};

const GUIDE: &str = include_str!("../../docs/guide.md");
const BINARY: &str = env!("CARGO_BIN_EXE_reminders");

/// The fenced blocks of docs/guide.md in `language`.
fn blocks(language: &str) -> Vec<String> {
    let fence = format!("```{language}\n");
    GUIDE
        .split(&fence)
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap().to_string())
        .collect()
}

/// A world like the guide's: a settings file (mode 600, quoted value with
/// spaces) naming a SQLite database and a file outbox, with one student who
/// has a reminder due, and a working directory that is not the data's.
struct Installed {
    env: TestEnv,
    settings: PathBuf,
    outbox: PathBuf,
}

fn installed() -> Installed {
    let env = TestEnv::new(crate::common::Backend::Sqlite).unwrap();
    let outbox = env.path("outbox");
    let settings = env.path("reminders.env");
    std::fs::write(
        &settings,
        format!(
            "# /etc/reminders/env\nDATABASE_URL={}\nSMTP_URL=file://{}\nMAIL_FROM=\"Reminders <noreply@school.example>\"\n",
            env.database_url,
            outbox.display()
        ),
    )
    .unwrap();
    env.add_user("ann@example.com", "UTC");
    // Her summary would go or not by the hour of day the test runs at.
    env.ok(&["user", "set", "ann@example.com", "--daily-summary", "off"]);
    let soon = (chrono::Utc::now() + chrono::Duration::hours(24)).to_rfc3339();
    env.add_assignment("ann@example.com", "Essay", &soon);
    Installed { env, settings, outbox }
}

fn as_written(text: &str, installed: &Installed, workdir: &Path) -> String {
    text.replace("/usr/local/bin/reminders", BINARY)
        .replace("/etc/reminders/env", installed.settings.to_str().unwrap())
        .replace("/var/lib/reminders", workdir.to_str().unwrap())
}

fn outbox_files(outbox: &Path) -> usize {
    std::fs::read_dir(outbox).map(|dir| dir.count()).unwrap_or(0)
}

#[test]
fn the_cron_lines_run_as_written_in_crons_empty_environment() {
    let installed = installed();
    let crontab = blocks("cron")
        .into_iter()
        .find(|block| block.contains("MAILTO="))
        .expect("a crontab with MAILTO");
    let home = tempfile::tempdir().unwrap();
    let mut ran = 0;
    // Job lines: not a comment, a blank or a variable (`MAILTO=…`).
    let is_job = |line: &&str| {
        let first = line.split_whitespace().next().unwrap_or_default();
        !first.is_empty() && !first.starts_with('#') && !first.contains('=')
    };
    for line in crontab.lines().filter(is_job) {
        // Five time fields, then the command, which cron hands to sh.
        let command: String = line.split_whitespace().skip(5).collect::<Vec<_>>().join(" ");
        let command = as_written(&command, &installed, home.path());
        let run = Run(Command::new("/bin/sh")
            .arg("-c")
            .arg(&command)
            .env_clear()
            .env("HOME", home.path())
            .current_dir(home.path())
            .output()
            .unwrap());
        assert_eq!(run.code(), 0, "{command}: {}", run.describe());
        assert_eq!(run.stdout(), "", "-q prints nothing when all is well: {command}");
        ran += 1;
    }
    assert_eq!(ran, 3, "{crontab}");
    assert_eq!(
        outbox_files(&installed.outbox),
        1,
        "the send line sent the due reminder"
    );
}

#[test]
fn the_systemd_units_verify_and_run_as_written() {
    let installed = installed();
    let workdir = tempfile::tempdir().unwrap();
    let units = tempfile::tempdir().unwrap();
    let mut services = Vec::new();
    for entry in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/systemd")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        assert!(
            GUIDE.contains(&format!("# /etc/systemd/system/{name}\n{text}")),
            "docs/guide.md shows {name} as it is"
        );
        let local = as_written(&text, &installed, workdir.path())
            .replace("User=reminders", "User=root")
            .replace("Group=reminders", "Group=root");
        std::fs::write(units.path().join(&name), &local).unwrap();
        if name.ends_with(".service") {
            services.push(local);
        }
    }
    assert_eq!(services.len(), 2);
    let mut verify = Command::new("systemd-analyze");
    verify.arg("verify");
    for entry in std::fs::read_dir(units.path()).unwrap() {
        verify.arg(entry.unwrap().path());
    }
    let verified = Run(verify
        .output()
        .expect("systemd-analyze (systemd) is installed by scripts/test.sh"));
    assert_eq!(verified.code(), 0, "{}", verified.describe());
    assert_eq!(verified.stderr(), "", "{}", verified.describe());

    for service in services {
        let value = |key: &str| {
            service
                .lines()
                .find_map(|line| line.strip_prefix(&format!("{key}=")))
                .unwrap_or_else(|| panic!("{key} in {service}"))
                .to_string()
        };
        // What systemd does: the EnvironmentFile's assignments (quotes
        // removed) as the whole environment, in WorkingDirectory.
        let mut command = Command::new("/bin/sh");
        command
            .arg("-c")
            .arg(format!("exec {}", value("ExecStart")))
            .env_clear()
            .current_dir(value("WorkingDirectory"));
        for line in std::fs::read_to_string(value("EnvironmentFile")).unwrap().lines() {
            if let Some((key, raw)) = line.split_once('=').filter(|_| !line.starts_with('#')) {
                command.env(key, raw.trim_matches('"'));
            }
        }
        let run = Run(command.output().unwrap());
        assert_eq!(run.code(), 0, "{}: {}", value("ExecStart"), run.describe());
    }
    assert_eq!(
        outbox_files(&installed.outbox),
        1,
        "the send service sent the due reminder"
    );
}

#[test]
fn the_nightly_sync_lines_run_as_written() {
    let installed = installed();
    let home = tempfile::tempdir().unwrap();
    let csv = installed.env.path("assignments.csv");
    std::fs::write(
        &csv,
        "student,title,due,external_id\nann@example.com,Lab,2031-01-10T12:00:00Z,lab-1\n",
    )
    .unwrap();
    let feed = installed.env.path("ann.ics");
    std::fs::write(&feed, include_str!("../data/ics/canvas.ics")).unwrap();
    let feeds = installed.env.path("feeds.txt");
    std::fs::write(&feeds, format!("ann@example.com {}\n", feed.display())).unwrap();
    let sync = blocks("cron")
        .into_iter()
        .find(|block| block.contains("assignment import"))
        .expect("the sync lines");
    let lines: Vec<&str> = sync
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), 2, "{sync}");
    for line in lines {
        let command: String = line.split_whitespace().skip(5).collect::<Vec<_>>().join(" ");
        let command = as_written(&command, &installed, home.path())
            .replace("/srv/lms/assignments.csv", csv.to_str().unwrap())
            .replace("/etc/reminders/feeds.txt", feeds.to_str().unwrap());
        for _ in 0..2 {
            let run = Run(Command::new("/bin/sh")
                .arg("-c")
                .arg(&command)
                .env_clear()
                .env("HOME", home.path())
                .current_dir(home.path())
                .output()
                .unwrap());
            assert_eq!(run.code(), 0, "{command}: {}", run.describe());
        }
    }
    // The CSV's one and the feed's three (a second night changed nothing).
    // The feed's weekly office hours are as many occurrences as are still
    // ahead of the real clock, so they are not counted here.
    assert_eq!(
        installed.env.count(
            "SELECT count(*) AS n FROM assignments WHERE external_id IS NOT NULL \
             AND external_id NOT LIKE 'event-calendar-event-900/%'"
        ),
        4
    );
}

/// Every variable a setting is read from: those clap reads, and the
/// per-job ping URLs the settings read themselves.
fn setting_names() -> Vec<String> {
    let cli = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/cli.rs")).unwrap();
    let mut names: Vec<String> = cli
        .split("env = \"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(String::from)
        .collect();
    names.extend(
        [
            "REMINDERS_PING_URL_SEND",
            "REMINDERS_PING_URL_SUMMARY",
            "REMINDERS_ENV_FILE",
        ]
        .map(String::from),
    );
    names
}

#[test]
fn the_guide_lists_every_setting() {
    for name in setting_names() {
        assert!(
            GUIDE.contains(&format!("| `{name}` |")),
            "docs/guide.md's table of settings does not list {name}"
        );
    }
}

#[test]
fn env_example_names_every_setting_and_parses() {
    let example = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(".env.example")).unwrap();
    for name in setting_names() {
        assert!(
            example.contains(&format!("{name}=")),
            ".env.example does not show {name}"
        );
    }
    // As it is, it works: `check` on it in a fresh directory finds nothing wrong but the database.
    let env = TestEnv::new(crate::common::Backend::Sqlite).unwrap();
    std::fs::write(env.path(".env"), &example).unwrap();
    let run = Run(Command::new(BINARY)
        .args(["check"])
        .env_clear()
        .current_dir(env.dir.path())
        .output()
        .unwrap());
    let outbox = std::fs::canonicalize(env.dir.path()).unwrap().join("outbox");
    assert!(
        run.stdout().contains(&format!(
            "ok    mail settings: SMTP_URL `file://{}`, MAIL_FROM `Reminders <noreply@school.example>`",
            outbox.display()
        )),
        "{}",
        run.describe()
    );
    assert!(!run.stderr().contains("warning"), "{}", run.describe());
}

/// The install section copies `.env.example` to `/etc/reminders/env` as it
/// is; cron runs elsewhere. Its relative paths are read from the file's
/// folder, a failing run names the database in full and creates nothing,
/// and once migrated the whole loop works from any folder.
#[test]
fn the_shipped_settings_file_works_from_cron_in_another_folder() {
    let root = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(root.path()).unwrap();
    let etc = root.join("etc-reminders");
    let cron_home = root.join("cron-home");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::create_dir_all(&cron_home).unwrap();
    let settings = etc.join("env");
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join(".env.example"), &settings).unwrap();
    let settings = settings.to_str().unwrap();
    let reminders = |args: &[&str]| {
        Run(Command::new(BINARY)
            .args(["--env-file", settings])
            .args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .current_dir(&cron_home)
            .output()
            .unwrap())
    };
    let database = etc.join("reminders.db");
    let send = [
        "-q",
        "send",
        "--unit",
        "hours",
        "--targets",
        "24",
        "--now",
        crate::common::NOW,
    ];

    let before = reminders(&send);
    assert_eq!(before.code(), 1, "{}", before.describe());
    assert_eq!(
        before.stderr().trim(),
        format!(
            "error: database `{}` does not exist; create it with `reminders migrate`",
            database.display()
        )
    );
    assert_eq!(
        std::fs::read_dir(&cron_home).unwrap().count(),
        0,
        "nothing is created where cron runs"
    );
    assert!(
        !etc.join("outbox").exists(),
        "no outbox before the database check passed"
    );
    let check = reminders(&["check"]);
    assert_eq!(check.code(), 1, "{}", check.describe());
    assert!(
        check.stdout().contains("created with the first message"),
        "{}",
        check.describe()
    );
    assert!(!etc.join("outbox").exists(), "check creates no outbox");

    assert_eq!(reminders(&["-q", "migrate"]).code(), 0);
    assert!(database.is_file());
    assert_eq!(
        reminders(&["-q", "user", "add", "--email", "ann@example.com"]).code(),
        0
    );
    let due = crate::common::at(crate::common::hours(24));
    let added = reminders(&[
        "-q",
        "assignment",
        "add",
        "--student",
        "ann@example.com",
        "--title",
        "Essay",
        "--due",
        &due,
    ]);
    assert_eq!(added.code(), 0, "{}", added.describe());
    let sent = reminders(&send);
    assert_eq!(sent.code(), 0, "{}", sent.describe());
    let written: Vec<_> = std::fs::read_dir(etc.join("outbox")).unwrap().flatten().collect();
    assert_eq!(
        written.len(),
        1,
        "the reminder is in the outbox beside the settings file"
    );
    assert_eq!(
        std::fs::read_dir(&cron_home).unwrap().count(),
        0,
        "nothing is created where cron runs"
    );
}

/// The first run that `reminders --help` shows works as written, pasted into
/// an empty folder.
#[test]
fn the_first_run_in_the_help_works_as_written() {
    let help = Run(Command::new(BINARY).arg("--help").output().unwrap()).stdout();
    let block: Vec<&str> = help
        .split("First run")
        .nth(1)
        .expect("a first-run block")
        .lines()
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        .collect();
    assert!(block.len() >= 5, "{help}");
    let script = block.join("\n");
    let folder = tempfile::tempdir().unwrap();
    let bin = Path::new(BINARY).parent().unwrap();
    let run = Run(Command::new("sh")
        .args(["-e", "-c", &script])
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .current_dir(folder.path())
        .output()
        .unwrap());
    assert_eq!(run.code(), 0, "{script}\n{}", run.describe());
    let written: Vec<_> = std::fs::read_dir(folder.path().join("outbox"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(written.len(), 1, "{}", run.describe());
}
