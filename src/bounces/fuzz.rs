//! A time-bounded fuzz test of the report reader and the mbox splitter, seeded with the sample reports
//! and with messages nested deep enough to overflow a recursive reader's stack.
//!
//! proptest rather than cargo-fuzz so that it runs on stable Rust with the
//! other unit tests. It runs for `BOUNCES_FUZZ_SECONDS` (default 2), so CI can
//! give it a minute: `BOUNCES_FUZZ_SECONDS=60 cargo test --release bounces::fuzz`.
//! A panic anywhere in the parser fails the test, and proptest shrinks the
//! input and prints it.

use std::io::Cursor;

use proptest::prelude::*;

use super::report::parse_unguarded;
use super::samples::{Nesting, SAMPLES, deep_message};
use super::source::{Body, Entry, MboxReader, strip_mbox_from_line};

/// Pieces that steer mutations toward the parser's edge cases.
const FRAGMENTS: &[&[u8]] = &[
    b"\n\n",
    b"\r\n",
    b"\n--",
    b"--\n",
    b"\nFrom x@y Mon Jan  1 00:00:00 2024\n",
    b"\n>From ",
    b"Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\n",
    b"Content-Type: multipart/mixed; boundary=\n",
    b"Content-Type: message/delivery-status\n",
    b"Content-Type: message/rfc822\n",
    b"Content-Type: text/rfc822-headers\n",
    b"Content-Type: message/feedback-report\n",
    b"Content-Transfer-Encoding: base64\n",
    b"Content-Transfer-Encoding: quoted-printable\n",
    b"=?utf-8?b?w6k=?=",
    b"=?x?q?=FF?=",
    b"Final-Recipient: rfc822; a@b.example\nAction: failed\nStatus: 5.1.1\n",
    b"Message-ID: <",
    b"\t",
    b"\0",
    b"\xff\xfe",
    b"<a@b.example>:",
];

const NESTINGS: [Nesting; 4] = [
    Nesting::Plain,
    Nesting::QuotedPrintable,
    Nesting::Base64,
    Nesting::Digest,
];

#[derive(Debug, Clone)]
enum Mutation {
    FlipByte {
        at: usize,
        value: u8,
    },
    Truncate {
        at: usize,
    },
    Insert {
        at: usize,
        fragment: usize,
    },
    /// Copies a piece of another sample in.
    Splice {
        at: usize,
        other: usize,
        from: usize,
        len: usize,
    },
    Delete {
        at: usize,
        len: usize,
    },
    /// Mail on the wire and in many stores ends lines with CRLF.
    Crlf,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, value)| Mutation::FlipByte { at, value }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        (any::<usize>(), 0..FRAGMENTS.len()).prop_map(|(at, fragment)| Mutation::Insert { at, fragment }),
        (any::<usize>(), 0..SAMPLES.len(), any::<usize>(), 0usize..2000)
            .prop_map(|(at, other, from, len)| Mutation::Splice { at, other, from, len }),
        (any::<usize>(), 0usize..200).prop_map(|(at, len)| Mutation::Delete { at, len }),
        Just(Mutation::Crlf),
    ]
}

fn apply(mut bytes: Vec<u8>, mutation: &Mutation) -> Vec<u8> {
    let position = |at: usize, len: usize| if len == 0 { 0 } else { at % (len + 1) };
    match *mutation {
        Mutation::FlipByte { at, value } => {
            if !bytes.is_empty() {
                let at = at % bytes.len();
                bytes[at] = value;
            }
        }
        Mutation::Truncate { at } => bytes.truncate(position(at, bytes.len())),
        Mutation::Insert { at, fragment } => {
            let at = position(at, bytes.len());
            bytes.splice(at..at, FRAGMENTS[fragment].iter().copied());
        }
        Mutation::Splice { at, other, from, len } => {
            let source = SAMPLES[other].1;
            let from = position(from, source.len()).min(source.len());
            let end = (from + len).min(source.len());
            let at = position(at, bytes.len());
            bytes.splice(at..at, source[from..end].iter().copied());
        }
        Mutation::Delete { at, len } => {
            let at = position(at, bytes.len());
            let end = (at + len).min(bytes.len());
            bytes.drain(at..end);
        }
        Mutation::Crlf => {
            bytes = bytes
                .iter()
                .flat_map(|&b| if b == b'\n' { vec![b'\r', b'\n'] } else { vec![b] })
                .collect();
        }
    }
    bytes
}

/// A mutated sample, arbitrary bytes, or a soup of fragments.
fn input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        60 => (0..SAMPLES.len(), prop::collection::vec(mutation(), 1..8)).prop_map(
            |(seed, mutations)| mutations.iter().fold(SAMPLES[seed].1.to_vec(), apply)
        ),
        20 => prop::collection::vec(any::<u8>(), 0..4096),
        20 => prop::collection::vec(0..FRAGMENTS.len(), 0..64)
            .prop_map(|picks| picks.iter().flat_map(|&i| FRAGMENTS[i].iter().copied()).collect()),
        // Nesting deep enough to overflow a recursive reader's stack, which
        // no panic guard can catch: mutated near the limit, and whole at
        // the 140,000 levels that overflowed it (a few per round: 6 MB each).
        10 => (0..4usize, 1usize..400, prop::collection::vec(mutation(), 0..4)).prop_map(
            |(nesting, depth, mutations)| mutations.iter().fold(deep_message(NESTINGS[nesting], depth), apply)
        ),
        1 => (0..4usize).prop_map(|nesting| deep_message(NESTINGS[nesting], 140_000)),
    ]
}

/// Splits `bytes` as an mbox with a small size limit, checking that no
/// message held is larger than the limit or than the input.
fn split_mbox(bytes: &[u8]) {
    let max = 512;
    let mut reader = MboxReader::new("fuzz.mbox".into(), Box::new(Cursor::new(bytes.to_vec())));
    let mut held = 0usize;
    while let Ok(Some(entry)) = reader.next_message(max) {
        if let Entry::Message(message) = entry
            && let Body::Bytes(message) = message.body
        {
            assert!(message.len() as u64 <= max, "an mbox message over the limit was held");
            held += message.len();
            let _ = parse_unguarded(&message);
        }
    }
    assert!(held <= bytes.len(), "the splitter produced more bytes than it read");
}

#[test]
fn report_reader_and_mbox_splitter_never_panic() {
    let seconds = crate::fuzz::seconds("BOUNCES_FUZZ_SECONDS");
    let inputs = crate::fuzz::run_for(seconds, 256, input(), |bytes| {
        read_guarded(&bytes);
        read_guarded(&strip_mbox_from_line(bytes.clone()));
        let mut as_mbox = b"From fuzz@example Mon Jan  1 00:00:00 2024\n".to_vec();
        as_mbox.extend_from_slice(&bytes);
        split_mbox(&as_mbox);
        split_mbox(&bytes);
        Ok(())
    });
    eprintln!(
        "bounces fuzz: {inputs} inputs in {seconds} s; mail-parser panicked (caught by `parse`) on {}",
        UPSTREAM_PANICS.load(std::sync::atomic::Ordering::Relaxed)
    );
}

/// Panics inside mail-parser, which `parse` catches; counted, not failed.
static UPSTREAM_PANICS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Runs the reader without `parse`'s guard, so that a panic in our own code
/// fails the test, while one inside mail-parser (a known upstream bug that
/// `parse` catches) is only counted. The panic's location tells them apart.
fn read_guarded(bytes: &[u8]) {
    let location = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let seen = location.clone();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        *seen.lock().unwrap() = info.location().map(|l| l.file().to_string()).unwrap_or_default();
    }));
    let result = std::panic::catch_unwind(|| parse_unguarded(bytes));
    std::panic::set_hook(hook);
    if result.is_err() {
        let file = location.lock().unwrap().clone();
        assert!(file.contains("mail-parser"), "the report reader panicked at {file}");
        UPSTREAM_PANICS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // The guarded reader turns it into an unrecognised report.
        assert!(matches!(
            super::report::parse(bytes).form,
            super::report::ReportForm::Unrecognised { .. }
        ));
    }
}
