//! Error kinds and the exit status of each, in one place.

use std::fmt;

/// How a run ended, as the process exit status. Listed in the README and `--help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Done: everything due was sent or deliberately skipped.
    Success = 0,
    /// The run could not work: database unreachable, schema missing, settings missing.
    Failure = 1,
    /// Bad input: nothing was written.
    BadInput = 2,
    /// Some sends failed; they were recorded for retry or as failed.
    SendsFailed = 3,
}

impl ExitStatus {
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// Input that the user must fix (exit 2). Everything else is a runtime failure (exit 1).
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

/// The exit status for an error that ended the run.
pub fn exit_status_of(error: &anyhow::Error) -> ExitStatus {
    if error.chain().any(|cause| cause.is::<InputError>()) {
        ExitStatus::BadInput
    } else {
        ExitStatus::Failure
    }
}
