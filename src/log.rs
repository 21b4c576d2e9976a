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

/// A message as one stderr line, safe for a terminal and for cron's mail:
/// secrets masked, line breaks and the whitespace around them (libpq's
/// messages span two lines, a Maildir file name may hold a newline) made one
/// space, and any other control character (a terminal escape in a From
/// header) shown escaped, as tables show it.
pub fn line(text: &str) -> String {
    let scrubbed = crate::redact::scrub(text);
    let mut out = String::with_capacity(scrubbed.len());
    for (index, piece) in scrubbed
        .split(['\n', '\r'])
        .filter(|piece| !piece.trim().is_empty())
        .enumerate()
    {
        let piece = if index == 0 { piece.trim_end() } else { piece.trim() };
        if index > 0 {
            out.push(' ');
        }
        for c in piece.chars() {
            if c.is_control() {
                out.extend(c.escape_unicode());
            } else {
                out.push(c);
            }
        }
    }
    out
}

/// A warning: something the operator should know, though the run went on.
macro_rules! warning {
    ($($arg:tt)*) => {
        if $crate::log::level() >= 1 {
            eprintln!("warning: {}", $crate::log::line(&format!($($arg)*)));
        }
    };
}
pub(crate) use warning;

/// Why a run's sends failed: shown even with `-q`, since cron mails only
/// what a run prints, and an exit status alone does not say what to fix.
macro_rules! explain {
    ($($arg:tt)*) => {
        eprintln!("{}", $crate::log::line(&format!($($arg)*)));
    };
}
pub(crate) use explain;

/// A detail of the run, with `-v`.
macro_rules! info {
    ($($arg:tt)*) => {
        if $crate::log::level() >= 2 {
            eprintln!("{}", $crate::log::line(&format!($($arg)*)));
        }
    };
}
pub(crate) use info;

#[cfg(test)]
mod tests {
    use super::line;

    #[test]
    fn every_message_is_one_printable_line() {
        assert_eq!(
            line("connection to server failed: Connection refused\n\tIs the server running on that host?\n"),
            "connection to server failed: Connection refused Is the server running on that host?"
        );
        assert_eq!(line("new/1.a\nerror: forged line"), "new/1.a error: forged line");
        assert_eq!(line("from \u{1b}[2Jevil\u{7}"), "from \\u{1b}[2Jevil\\u{7}");
        assert_eq!(line("  indented stays\ttabbed"), "  indented stays\\u{9}tabbed");
    }
}
