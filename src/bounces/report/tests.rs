use super::*;
use crate::bounces::cause::{self, Cause, Severity};
use crate::bounces::samples::{SAMPLES, sample};

/// What a sample's status means, read without its human text.
fn severity(status: &RecipientStatus) -> Severity {
    cause::severity(status, &cause::ReportText::default())
}

fn blames_recipient(status: &RecipientStatus) -> bool {
    matches!(severity(status), Severity::Hard(Cause::Recipient(_)))
}

const ORIGINAL_ID: &str = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b@school.example";

fn delivery(name: &str) -> (Vec<RecipientStatus>, Option<String>, bool) {
    match parse(sample(name)).form {
        ReportForm::Delivery {
            recipients,
            original_message_id,
            standard,
            ..
        } => (recipients, original_message_id, standard),
        other => panic!("{name}: expected a delivery report, got {other:?}"),
    }
}

fn only_recipient(name: &str, standard: bool) -> RecipientStatus {
    let (recipients, original, is_standard) = delivery(name);
    assert_eq!(original.as_deref(), Some(ORIGINAL_ID), "{name}");
    assert_eq!(is_standard, standard, "{name}");
    assert_eq!(recipients.len(), 1, "{name}: {recipients:?}");
    recipients.into_iter().next().expect("one recipient")
}

fn assert_unrecognised(name: &str, raw: &[u8]) {
    let report = parse(raw);
    assert!(
        matches!(report.form, ReportForm::Unrecognised { .. }),
        "{name}: {report:?}"
    );
}

#[test]
fn postfix_dsn_is_a_hard_bounce_about_the_mailbox() {
    let report = parse(sample("postfix_dsn"));
    assert_eq!(
        report.message_id.as_deref(),
        Some("20261123080005.4Xyz99@mail.school.example")
    );
    assert_eq!(report.envelope_recipients.len(), 2);
    assert!(report.envelope_recipients[0].starts_with("bounces+"));
    let status = only_recipient("postfix_dsn", true);
    assert_eq!(status.final_recipient.as_deref(), Some("ghost@students.example"));
    assert_eq!(status.action, Action::Failed);
    assert_eq!(status.status.as_deref(), Some("5.1.1"));
    assert!(
        status.diagnostic.as_deref().is_some_and(|d| d.starts_with("550 5.1.1")),
        "{status:?}"
    );
    assert!(blames_recipient(&status));
}

#[test]
fn a_dsn_made_by_a_real_postfix_is_a_hard_bounce() {
    let report = parse(sample("postfix_real_dsn"));
    assert_eq!(
        report.message_id.as_deref(),
        Some("20261123230857.A9F9E98E0BF@mail.school.example")
    );
    assert!(report.envelope_recipients.iter().all(|r| r.starts_with("bounces+")));
    let status = only_recipient("postfix_real_dsn", true);
    assert_eq!(status.final_recipient.as_deref(), Some("ghost@students.example"));
    assert_eq!(status.status.as_deref(), Some("5.1.1"));
    assert!(blames_recipient(&status));
}

#[test]
fn exim_dsn_with_5_0_0_is_read_from_the_diagnostic_text() {
    let status = only_recipient("exim_dsn", true);
    assert_eq!(status.final_recipient.as_deref(), Some("nosuch@students.example"));
    assert_eq!(status.status.as_deref(), Some("5.0.0"));
    assert!(blames_recipient(&status));
}

#[test]
fn gmail_and_office365_dsns_are_hard_bounces() {
    for (name, address) in [
        ("gmail_dsn", "lost@gmail.example"),
        ("office365_dsn", "gone@students.example"),
    ] {
        let status = only_recipient(name, true);
        assert_eq!(status.final_recipient.as_deref(), Some(address));
        assert!(blames_recipient(&status), "{name}");
    }
}

#[test]
fn delayed_and_expired_4xx_change_nothing() {
    let delayed = only_recipient("delayed_dsn", true);
    assert_eq!(delayed.action, Action::Delayed);
    assert_eq!(severity(&delayed), Severity::Soft);
    let expired = only_recipient("expired_4xx", true);
    assert_eq!(expired.action, Action::Failed);
    assert_eq!(expired.status.as_deref(), Some("4.4.7"));
    assert_eq!(severity(&expired), Severity::Soft);
}

#[test]
fn policy_blocks_never_count_toward_opt_out() {
    let (recipients, _, _) = delivery("policy_block_dsn");
    assert_eq!(recipients.len(), 2);
    for status in &recipients {
        assert!(!blames_recipient(status), "{status:?}");
    }
}

#[test]
fn non_standard_bounces_are_read_best_effort() {
    for (name, address) in [
        ("qmail", "nobody-here@students.example"),
        ("postfix_plain", "ghost@students.example"),
        ("exchange_ndr_html", "vanished@students.example"),
    ] {
        let status = only_recipient(name, false);
        assert_eq!(status.final_recipient.as_deref(), Some(address), "{name}");
        assert_eq!(status.action, Action::Failed, "{name}");
        assert!(blames_recipient(&status), "{name}: {status:?}");
    }
}

#[test]
fn arf_complaint_names_the_student_and_the_original() {
    let report = parse(sample("arf_complaint"));
    assert_eq!(
        report.form,
        ReportForm::Complaint {
            original_message_id: Some(ORIGINAL_ID.into()),
            complained_address: Some("annoyed@students.example".into()),
        }
    );
}

#[test]
fn vacation_reply_is_not_a_bounce() {
    assert_eq!(parse(sample("vacation")).form, ReportForm::AutoReply);
}

#[test]
fn unsubscribe_mail_carries_its_token_and_a_bare_one_does_not() {
    match parse(sample("unsubscribe")).form {
        ReportForm::Unsubscribe {
            token: Some(token),
            from,
        } => {
            assert_eq!(token.len(), 44);
            assert_eq!(from.as_deref(), Some("sam@students.example"));
        }
        other => panic!("expected an unsubscribe with a token, got {other:?}"),
    }
    assert_eq!(
        parse(sample("unsubscribe_bare")).form,
        ReportForm::Unsubscribe {
            token: None,
            from: Some("annoyed@students.example".into())
        }
    );
}

#[test]
fn garbage_and_hostile_samples_are_unrecognised() {
    for name in [
        "garbage",
        "empty",
        "nul_in_header",
        "bad_utf8_header",
        "no_boundary",
        "empty_boundary",
        "bad_base64",
    ] {
        assert_unrecognised(name, sample(name));
    }
}

#[test]
fn a_megabyte_header_line_is_unrecognised() {
    let mut raw = b"From: a@b.example\nSubject: ".to_vec();
    raw.extend(std::iter::repeat_n(b'x', 1024 * 1024));
    raw.extend_from_slice(b"\n\nbody\n");
    assert_unrecognised("1 MB header line", &raw);
}

#[test]
fn deep_nesting_is_not_followed() {
    let depth = 200;
    let mut raw = String::from("From: MAILER-DAEMON@x.example\nSubject: deep\n");
    for level in 0..depth {
        raw.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"b{level}\"\n\n--b{level}\n"
        ));
    }
    raw.push_str("Content-Type: message/delivery-status\n\nFinal-Recipient: rfc822; deep@x.example\nAction: failed\nStatus: 5.1.1\n\n");
    for level in (0..depth).rev() {
        raw.push_str(&format!("--b{level}--\n"));
    }
    let report = parse(raw.as_bytes());
    assert!(
        !matches!(report.form, ReportForm::Delivery { standard: true, .. }),
        "a DSN part 200 levels deep was followed: {report:?}"
    );
}

#[test]
fn messages_nested_too_deep_for_the_stack_are_unrecognised() {
    use crate::bounces::samples::{Nesting, deep_message};
    // Each of these overflows mail-parser's stack (it drops nested messages,
    // and copies encoded ones, recursively) unless refused before parsing.
    for (nesting, depth) in [
        (Nesting::Plain, 140_000),
        (Nesting::QuotedPrintable, 10_000),
        (Nesting::Base64, 10_000),
        (Nesting::Digest, 50_000),
    ] {
        let raw = deep_message(nesting, depth);
        match parse(&raw).form {
            ReportForm::Unrecognised { reason } => assert!(reason.contains("nested"), "{nesting:?}: {reason}"),
            other => panic!("{nesting:?}: {other:?}"),
        }
    }
    // An encoding named on a folded line still hides what is inside.
    let folded = b"Content-Type: message/rfc822\nContent-Transfer-Encoding:\n quoted-printable\n\nSubject: x\n\nbody\n";
    assert!(check_nesting(folded).is_err());
    // The word elsewhere in a header block is no encoding.
    let dsn = String::from_utf8(sample("postfix_dsn").to_vec())
        .expect("utf-8")
        .replacen(
            "MIME-Version:",
            "X-Mailer: base64 and quoted-printable tools\nMIME-Version:",
            1,
        );
    assert!(dsn.contains("X-Mailer: base64"));
    assert!(check_nesting(dsn.as_bytes()).is_ok());
    // A few levels, as a returned message inside a forwarded one has, are read.
    match parse(&deep_message(Nesting::Plain, 5)).form {
        ReportForm::Unrecognised { reason } => assert!(!reason.contains("nested"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn addresses_with_a_comment_or_a_name_are_read_bare() {
    let dsn = String::from_utf8(sample("postfix_dsn").to_vec())
        .expect("utf-8")
        .replace(
            "rfc822; ghost@students.example",
            "rfc822; Ghost@Students.example (Jill Smith)",
        );
    match parse(dsn.as_bytes()).form {
        ReportForm::Delivery { recipients, .. } => {
            assert_eq!(recipients[0].final_recipient.as_deref(), Some("ghost@students.example"))
        }
        other => panic!("{other:?}"),
    }
    let arf = String::from_utf8(sample("arf_complaint").to_vec())
        .expect("utf-8")
        .replace(
            "Original-Rcpt-To: <annoyed@students.example>",
            "Original-Rcpt-To: \"Jill\" <annoyed@students.example>",
        );
    match parse(arf.as_bytes()).form {
        ReportForm::Complaint { complained_address, .. } => {
            assert_eq!(complained_address.as_deref(), Some("annoyed@students.example"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn at_most_a_thousand_recipient_blocks_are_read() {
    let mut raw = String::from(
        "From: MAILER-DAEMON@x.example\nSubject: many\nMIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"M\"\n\n--M\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; x.example\n\n",
    );
    for n in 0..5000 {
        raw.push_str(&format!(
            "Final-Recipient: rfc822; r{n}@x.example\nAction: failed\nStatus: 5.1.1\n\n"
        ));
    }
    raw.push_str("--M--\n");
    match parse(raw.as_bytes()).form {
        ReportForm::Delivery { recipients, .. } => assert_eq!(recipients.len(), MAX_RECIPIENT_BLOCKS),
        other => panic!("expected a delivery report, got {other:?}"),
    }
}

#[test]
fn every_sample_parses_without_panicking() {
    for (name, raw) in SAMPLES {
        let _ = parse_unguarded(raw);
        let _ = name;
    }
}

/// Shapes of large hostile input that a careless reader handles in quadratic
/// time: many parts, many recipient blocks, one long body line, many addresses.
fn large_inputs() -> Vec<(&'static str, Vec<u8>)> {
    let size = 9 * 1024 * 1024;
    let mut many_parts = String::from(
        "From: MAILER-DAEMON@x.example\nSubject: Undelivered Mail\nContent-Type: multipart/mixed; boundary=\"p\"\n\n",
    );
    while many_parts.len() < size {
        many_parts.push_str("--p\nContent-Type: text/plain\n\nuser unknown <a@b.example>\n");
    }
    many_parts.push_str("--p--\n");
    let mut many_blocks = String::from(
        "From: MAILER-DAEMON@x.example\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"m\"\n\n--m\nContent-Type: message/delivery-status\n\n",
    );
    while many_blocks.len() < size {
        many_blocks.push_str("Final-Recipient: rfc822; r@x.example\nAction: failed\nStatus: 5.1.1\n\n");
    }
    many_blocks.push_str("--m--\n");
    let mut long_line = b"From: MAILER-DAEMON@x.example\nSubject: failure notice\n\n".to_vec();
    long_line.extend(std::iter::repeat_n(b'x', size));
    let mut addresses = String::from("From: MAILER-DAEMON@x.example\nSubject: failure notice\n\n");
    let mut n = 0;
    while addresses.len() < size {
        addresses.push_str(&format!("<user{n}@students.example>: 550 5.1.1 user unknown\n"));
        n += 1;
    }
    vec![
        ("many parts", many_parts.into_bytes()),
        ("many recipient blocks", many_blocks.into_bytes()),
        ("one long body line", long_line),
        ("many addresses", addresses.into_bytes()),
    ]
}

#[test]
fn large_hostile_reports_are_read_in_bounded_time() {
    for (name, raw) in large_inputs() {
        let started = std::time::Instant::now();
        let report = parse(&raw);
        let elapsed = started.elapsed();
        eprintln!(
            "{name}: {} bytes in {elapsed:?}: {}",
            raw.len(),
            match &report.form {
                ReportForm::Delivery { recipients, .. } => format!("{} recipients", recipients.len()),
                other => format!("{other:?}"),
            }
        );
        // Generous, for a debug build on a shared machine; a quadratic reader takes minutes.
        assert!(elapsed < std::time::Duration::from_secs(60), "{name} took {elapsed:?}");
    }
}

#[test]
fn crlf_and_non_ascii_text_read_the_same_as_lf() {
    for (name, raw) in SAMPLES {
        let Ok(text) = std::str::from_utf8(raw) else { continue };
        // A multibyte character on every line shifts any offset counted wrongly.
        let crlf = text.replace('\n', " é\r\n");
        let lf = text.replace('\n', " é\n");
        let (a, b) = (parse(lf.as_bytes()), parse(crlf.as_bytes()));
        assert_eq!(
            std::mem::discriminant(&a.form),
            std::mem::discriminant(&b.form),
            "{name}: {a:?} vs {b:?}"
        );
        let _ = parse_unguarded(crlf.as_bytes());
    }
}

#[test]
fn control_characters_never_reach_a_stored_diagnostic() {
    // PostgreSQL refuses a NUL in text: a report that kept one could never be
    // recorded, and would be retried on every run.
    let raw = "From: MAILER-DAEMON@mx.example\r\nSubject: Undelivered Mail\r\nMIME-Version: 1.0\r\n\
        Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n\
        --b\r\nContent-Type: text/plain\r\n\r\nfailed\r\n\
        --b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\n\
        Final-Recipient: rfc822; a@students.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\
        Diagnostic-Code: smtp; 550 no\u{0} such\u{7} user\r\n\r\n--b--\r\n";
    let ReportForm::Delivery { recipients, .. } = parse(raw.as_bytes()).form else {
        panic!("a delivery report");
    };
    assert_eq!(recipients[0].diagnostic.as_deref(), Some("550 no  such  user"));
}
