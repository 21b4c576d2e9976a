//! A time-bounded fuzz test of the feed reader, seeded with real feeds, deep nesting and parameter bombs.
//!
//! Like the bounce reader's, it runs on stable Rust with the other unit tests,
//! for `FEEDS_FUZZ_SECONDS` (default 2); `scripts/test.sh` gives it a minute.
//! A panic or a stack overflow anywhere in reading a feed fails the run, and
//! proptest shrinks the input and prints it.

use proptest::prelude::*;

use super::{Horizon, parse};

const CANVAS: &str = include_str!("../../tests/data/ics/canvas.ics");
const MOODLE: &str = include_str!("../../tests/data/ics/moodle.ics");

/// The seeds: real feeds, and the shapes that once took the reader down.
fn seeds() -> Vec<String> {
    let wrap = |inner: String| format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n{inner}END:VCALENDAR\r\n");
    vec![
        CANVAS.to_string(),
        MOODLE.to_string(),
        wrap(format!(
            "{}{}",
            "BEGIN:X\r\n".repeat(10_000),
            "END:X\r\n".repeat(10_000)
        )),
        wrap("BEGIN:VEVENT\r\n".repeat(2_000)),
        CANVAS.replacen("DTSTART:", &format!("DTSTART{}:", ";X=a".repeat(20_000)), 1),
        CANVAS.replacen("DTSTART:", &format!("DTSTART;X=\"{}\":", ";".repeat(5_000)), 1),
        wrap("BEGIN:VEVENT\r\nUID:same\r\nDTSTART:20261210T120000Z\r\nEND:VEVENT\r\n".repeat(500)),
    ]
}

/// Pieces that steer mutations toward the reader's edge cases.
const FRAGMENTS: &[&str] = &[
    "\r\n",
    "\n",
    "\r\n ",
    "\n\t",
    "BEGIN:X\r\n",
    "END:X\r\n",
    "BEGIN:VEVENT\r\n",
    "END:VEVENT\r\n",
    "BEGIN:VALARM\r\n",
    "END:VCALENDAR\r\n",
    "BEGIN:VCALENDAR\r\n",
    ";X=a",
    ";X=\"a:b;c\"",
    "\"",
    ":",
    ";",
    "UID:",
    "DTSTART;TZID=/Europe/London:20261126T170000\r\n",
    "DTSTART;VALUE=DATE;VALUE=DATE:20301009\r\n",
    "DUE:2026",
    "RRULE:FREQ=DAILY\r\n",
    "RRULE:FREQ=WEEKLY;BYDAY=MO,WE;UNTIL=20270101\r\n",
    "EXDATE;TZID=Eastern Standard Time:20261130T090000,2026\r\n",
    "RDATE;VALUE=DATE:20261201\r\n",
    "RECURRENCE-ID:20261130T140000Z\r\n",
    "\\,",
    "é",
    "\u{0}",
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
    /// One fragment many times over: nesting and parameter bombs of any shape.
    Repeat {
        at: usize,
        fragment: usize,
        times: usize,
    },
    Delete {
        at: usize,
        len: usize,
    },
    Lf,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        1 => (any::<usize>(), any::<u8>()).prop_map(|(at, value)| Mutation::FlipByte { at, value }),
        1 => any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        3 => (any::<usize>(), 0..FRAGMENTS.len()).prop_map(|(at, fragment)| Mutation::Insert { at, fragment }),
        1 => (any::<usize>(), 0..FRAGMENTS.len(), 2usize..20_000)
            .prop_map(|(at, fragment, times)| Mutation::Repeat { at, fragment, times }),
        1 => (any::<usize>(), 0usize..200).prop_map(|(at, len)| Mutation::Delete { at, len }),
        1 => Just(Mutation::Lf),
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
            bytes.splice(at..at, FRAGMENTS[fragment].bytes());
        }
        Mutation::Repeat { at, fragment, times } => {
            let at = position(at, bytes.len());
            bytes.splice(at..at, FRAGMENTS[fragment].repeat(times).into_bytes());
        }
        Mutation::Delete { at, len } => {
            let at = position(at, bytes.len());
            let end = (at + len).min(bytes.len());
            bytes.drain(at..end);
        }
        Mutation::Lf => bytes = String::from_utf8_lossy(&bytes).replace("\r\n", "\n").into_bytes(),
    }
    bytes
}

/// A mutated seed, or a soup of fragments.
fn input() -> impl Strategy<Value = String> {
    let seeds = seeds();
    let count = seeds.len();
    prop_oneof![
        8 => (0..count, prop::collection::vec(mutation(), 1..6)).prop_map(move |(seed, mutations)| {
            let bytes = mutations.iter().fold(seeds[seed].clone().into_bytes(), apply);
            String::from_utf8_lossy(&bytes).into_owned()
        }),
        2 => prop::collection::vec(0..FRAGMENTS.len(), 0..200)
            .prop_map(|picks| picks.iter().map(|&i| FRAGMENTS[i]).collect()),
    ]
}

#[test]
fn feed_reader_never_panics_or_overflows() {
    let seconds = crate::fuzz::seconds("FEEDS_FUZZ_SECONDS");
    let read = std::cell::Cell::new(0u64);
    let now: chrono::DateTime<chrono::Utc> = "2026-11-24T00:00:00Z".parse().unwrap();
    let horizon = Horizon {
        from: now,
        until: now + chrono::Duration::days(180),
    };
    let inputs = crate::fuzz::run_for(seconds, 64, input(), |text| {
        if let Ok(feed) = parse(&text, horizon) {
            read.set(read.get() + 1);
            let mut ids = std::collections::HashSet::new();
            for entry in &feed.entries {
                prop_assert!(!entry.uid.trim().is_empty());
                let id = entry.external_id();
                prop_assert!(ids.insert(id.clone()), "external id {id} listed twice");
            }
        }
        Ok(())
    });
    eprintln!(
        "feeds fuzz: {inputs} inputs in {seconds} s, {} read as feeds",
        read.get()
    );
}
