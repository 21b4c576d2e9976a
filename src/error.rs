//! Error kinds and the exit status of each, in one place.

use std::fmt;

/// How a run ended, as the process exit status: the one list of codes,
/// from which `--help` and the guide's table are made (a test compares them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Success = 0,
    Failure = 1,
    BadInput = 2,
    SendsFailed = 3,
    /// sysexits.h's EX_TEMPFAIL: what a mail server's pipe reads as "try again later".
    TryAgainLater = 75,
    /// 128 + the signal's number, as shells report a command a signal ended.
    Interrupted = 130,
    Terminated = 143,
}

impl ExitStatus {
    pub const ALL: [ExitStatus; 7] = [
        ExitStatus::Success,
        ExitStatus::Failure,
        ExitStatus::BadInput,
        ExitStatus::SendsFailed,
        ExitStatus::TryAgainLater,
        ExitStatus::Interrupted,
        ExitStatus::Terminated,
    ];

    pub fn code(self) -> u8 {
        self as u8
    }

    /// What the code tells cron and the operator.
    pub fn meaning(self) -> &'static str {
        match self {
            ExitStatus::Success => "done: everything due was sent or deliberately skipped",
            ExitStatus::Failure => {
                "could not run: the database is unreachable or not migrated, `SMTP_URL`/`MAIL_FROM` is missing or \
                 malformed (or has credentials without TLS), `.env` does not parse, the mail relay (or its \
                 OAuth token endpoint) failed the run, or `user forget` could not write its erasure through (another \
                 connection held the old pages); the line on stderr says which"
            }
            ExitStatus::BadInput => {
                "bad input (a bad email, time zone, date, id, metadata, URL, unit, target list, duration or \
                 summary hour; an unknown student or assignment; a duplicate email; a `--ca-file` that cannot \
                 be used); nothing was written"
            }
            ExitStatus::SendsFailed => "some sends failed; they are recorded for retry or as failed",
            ExitStatus::TryAgainLater => {
                "`bounces` could not record a report now (the database is away or locked): a mail server that \
                 piped it in keeps it and tries again later"
            }
            ExitStatus::Interrupted => {
                "a sending run stopped by Ctrl-C (SIGINT): what was on the wire finished and was recorded, the \
                 rest is left for the next run; nothing was lost"
            }
            ExitStatus::Terminated => {
                "a sending run stopped by SIGTERM (`kill`, systemd): as for 130, nothing was lost and the next run \
                 sends the rest"
            }
        }
    }
}

/// The exit codes as `--help` shows them.
pub fn exit_status_help() -> String {
    let mut help = String::from("Exit status:\n");
    for status in ExitStatus::ALL {
        help.push_str(&format!("  {}  {}\n", status.code(), status.meaning()));
    }
    help.push_str("\nSettings come from flags, then the environment, then a .env file in the current directory.");
    help
}

/// The exit codes as the table of docs/guide.md (Markdown).
#[cfg(test)]
pub fn exit_status_table() -> String {
    let mut table = String::from("| code | meaning |\n|---|---|\n");
    for status in ExitStatus::ALL {
        table.push_str(&format!("| {} | {} |\n", status.code(), status.meaning()));
    }
    table
}

/// Input that the user must fix (exit 2). It marks an error deep in a
/// parser or a lookup, so that the command that meets it need not know;
/// [`Failure`] reads the mark.
#[derive(Debug)]
pub struct InputError(pub String);

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InputError {}

/// Builds a bad-input error from a message.
pub fn invalid(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(InputError(message.into()))
}

/// Why a command did not do its work, and so how the process exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The command's input must be fixed (exit 2); nothing was written.
    BadInput,
    /// The configuration or the run failed (exit 1): the database, the mail
    /// settings, the relay, a file.
    Runtime,
    /// Nothing is wrong that waiting will not fix (exit 75): a mail server
    /// that piped a report in keeps it and tries again.
    Temporary,
}

/// A command that failed: its kind and the one line that says why. Every
/// command returns one; main prints the reason whatever `-q` says.
#[derive(Debug, Clone)]
pub struct Failure {
    pub kind: FailureKind,
    pub reason: String,
}

impl Failure {
    pub fn new(kind: FailureKind, reason: impl fmt::Display) -> Failure {
        Failure {
            kind,
            // One line, whatever the layers below put in their messages.
            reason: reason.to_string().split_whitespace().collect::<Vec<_>>().join(" "),
        }
    }

    pub fn bad_input(reason: impl fmt::Display) -> Failure {
        Failure::new(FailureKind::BadInput, reason)
    }

    pub fn temporary(reason: impl fmt::Display) -> Failure {
        Failure::new(FailureKind::Temporary, reason)
    }

    pub fn status(&self) -> ExitStatus {
        match self.kind {
            FailureKind::BadInput => ExitStatus::BadInput,
            FailureKind::Runtime => ExitStatus::Failure,
            FailureKind::Temporary => ExitStatus::TryAgainLater,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

/// An error from the layers below: bad input if anything in its chain was
/// marked so, else a runtime failure; its whole chain is the reason.
impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Failure {
        let kind = match error.chain().any(|cause| cause.is::<InputError>()) {
            true => FailureKind::BadInput,
            false => FailureKind::Runtime,
        };
        Failure::new(kind, format!("{error:#}"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_guide_lists_the_exit_codes_as_the_code_decides_them() {
        let guide = include_str!("../docs/guide.md");
        assert!(
            guide.contains(&super::exit_status_table()),
            "docs/guide.md's exit status table is out of date; it should read:\n{}",
            super::exit_status_table()
        );
    }
}
