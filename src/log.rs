//! What goes to stderr besides the one fatal error line: warnings (hidden by
//! `-q`) and details of the run (shown by `-v`), with any secret masked.
//! Results go to stdout only.

use std::sync::atomic::{AtomicU8, Ordering};

static LEVEL: AtomicU8 = AtomicU8::new(1);

/// 0 with `-q`, 1 by default, 2 with `-v`.
pub fn set_level(quiet: bool, verbose: bool) {
    LEVEL.store(
        match (quiet, verbose) {
            (true, _) => 0,
            (false, false) => 1,
            (false, true) => 2,
        },
        Ordering::Relaxed,
    );
}

pub fn level() -> u8 {
    LEVEL.load(Ordering::Relaxed)
}

/// A warning: something the operator should know, though the run went on.
macro_rules! warning {
    ($($arg:tt)*) => {
        if $crate::log::level() >= 1 {
            eprintln!("warning: {}", $crate::redact::scrub(&format!($($arg)*)));
        }
    };
}
pub(crate) use warning;

/// Why a run's sends failed: shown even with `-q`, since cron mails only
/// what a run prints, and an exit status alone does not say what to fix.
macro_rules! explain {
    ($($arg:tt)*) => {
        eprintln!("{}", $crate::redact::scrub(&format!($($arg)*)));
    };
}
pub(crate) use explain;

/// A detail of the run, with `-v`.
macro_rules! info {
    ($($arg:tt)*) => {
        if $crate::log::level() >= 2 {
            eprintln!("{}", $crate::redact::scrub(&format!($($arg)*)));
        }
    };
}
pub(crate) use info;
