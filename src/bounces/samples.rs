//! The sample reports in tests/data/bounces, compiled in for the unit and fuzz tests.

/// Every sample, by file name without `.eml`.
pub const SAMPLES: &[(&str, &[u8])] = &[
    (
        "arf_complaint",
        include_bytes!("../../tests/data/bounces/arf_complaint.eml"),
    ),
    ("bad_base64", include_bytes!("../../tests/data/bounces/bad_base64.eml")),
    (
        "bad_utf8_header",
        include_bytes!("../../tests/data/bounces/bad_utf8_header.eml"),
    ),
    (
        "delayed_dsn",
        include_bytes!("../../tests/data/bounces/delayed_dsn.eml"),
    ),
    ("empty", include_bytes!("../../tests/data/bounces/empty.eml")),
    (
        "empty_boundary",
        include_bytes!("../../tests/data/bounces/empty_boundary.eml"),
    ),
    (
        "exchange_ndr_html",
        include_bytes!("../../tests/data/bounces/exchange_ndr_html.eml"),
    ),
    ("exim_dsn", include_bytes!("../../tests/data/bounces/exim_dsn.eml")),
    (
        "expired_4xx",
        include_bytes!("../../tests/data/bounces/expired_4xx.eml"),
    ),
    ("garbage", include_bytes!("../../tests/data/bounces/garbage.eml")),
    ("gmail_dsn", include_bytes!("../../tests/data/bounces/gmail_dsn.eml")),
    (
        "no_boundary",
        include_bytes!("../../tests/data/bounces/no_boundary.eml"),
    ),
    (
        "nul_in_header",
        include_bytes!("../../tests/data/bounces/nul_in_header.eml"),
    ),
    (
        "office365_dsn",
        include_bytes!("../../tests/data/bounces/office365_dsn.eml"),
    ),
    (
        "policy_block_dsn",
        include_bytes!("../../tests/data/bounces/policy_block_dsn.eml"),
    ),
    (
        "postfix_dsn",
        include_bytes!("../../tests/data/bounces/postfix_dsn.eml"),
    ),
    (
        "postfix_plain",
        include_bytes!("../../tests/data/bounces/postfix_plain.eml"),
    ),
    (
        "postfix_real_dsn",
        include_bytes!("../../tests/data/bounces/postfix_real_dsn.eml"),
    ),
    ("qmail", include_bytes!("../../tests/data/bounces/qmail.eml")),
    (
        "unsubscribe",
        include_bytes!("../../tests/data/bounces/unsubscribe.eml"),
    ),
    (
        "unsubscribe_bare",
        include_bytes!("../../tests/data/bounces/unsubscribe_bare.eml"),
    ),
    ("vacation", include_bytes!("../../tests/data/bounces/vacation.eml")),
];

/// The sample named `name`.
pub fn sample(name: &str) -> &'static [u8] {
    SAMPLES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, bytes)| *bytes)
        .unwrap_or_else(|| panic!("no sample `{name}`"))
}

/// How [`deep_message`] nests its messages.
#[derive(Debug, Clone, Copy)]
pub enum Nesting {
    /// `Content-Type: message/rfc822` parts, one inside the other.
    Plain,
    /// The same behind one quoted-printable layer, which hides every nested
    /// `Content-Type` from a reader of the raw bytes.
    QuotedPrintable,
    /// The same behind one base64 layer.
    Base64,
    /// `multipart/digest` parts, whose parts are messages by default.
    Digest,
}

/// A message with `depth` messages nested inside each other: the shape that
/// overflows a recursive reader's stack (140,000 levels make 5.7 MB).
pub fn deep_message(nesting: Nesting, depth: usize) -> Vec<u8> {
    let plain = |depth: usize, open: &str| {
        let mut raw = Vec::with_capacity(depth * 42 + 64);
        for _ in 0..depth {
            raw.extend_from_slice(b"Subject: x\n");
            raw.extend_from_slice(open.as_bytes());
        }
        raw.extend_from_slice(b"Subject: the bottom\n\nbody\n");
        raw
    };
    let outer =
        "From: MAILER-DAEMON@mx.example\nSubject: Undelivered Mail Returned to Sender\nContent-Type: message/rfc822\n";
    match nesting {
        Nesting::Plain => plain(depth, "Content-Type: message/rfc822\n\n"),
        Nesting::QuotedPrintable => {
            let mut raw = format!("{outer}Content-Transfer-Encoding: quoted-printable\n\n").into_bytes();
            raw.extend(plain(depth, "Content-Typ=65: message/rfc822\n\n"));
            raw
        }
        Nesting::Base64 => {
            let mut raw = format!("{outer}Content-Transfer-Encoding: base64\n\n").into_bytes();
            let inner = data_encoding::BASE64.encode(&plain(depth, "Content-Type: message/rfc822\n\n"));
            for line in inner.as_bytes().chunks(76) {
                raw.extend_from_slice(line);
                raw.push(b'\n');
            }
            raw
        }
        Nesting::Digest => {
            let mut raw = Vec::new();
            for level in 0..depth {
                raw.extend_from_slice(
                    format!("Content-Type: multipart/digest; boundary=d{level}\n\n--d{level}\n\n").as_bytes(),
                );
            }
            raw.extend_from_slice(b"Subject: the bottom\n\nbody\n");
            raw
        }
    }
}
