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
