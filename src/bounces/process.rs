//! Acting on reports: each message of a source is read, judged (only a
//! verified report changes anything), recorded once, and settled in its
//! Maildir. The bounce rule then looks at the addresses that bounced.

use std::path::Path;

use lettre::Address;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::cause::{self, Cause, Severity};
use super::report::{self, Action, ParsedReport, ReportForm};
use super::source::{Body, Entry, MaildirClaim, Message, Source, SourceError};
use super::trust::{self, Claim, Sent, Trust};
use crate::db::Db;
use crate::db::bounces::{self, Effect, NewReport, Recorded};
use crate::db::contacts;
use crate::db::queue::opt_out_after_rejections;
use crate::db::types::{Id, ReportKind, Timestamp};
use crate::mail::token::{self, MessageKind, MessageRef};
use crate::queue::policy;
use crate::queue::{LogStatus, NewSendLog, OptOutReason};
use crate::time::Clock;

/// How `reminders bounces` reads its sources.
pub struct Options {
    /// The plain bounce address (`--bounce-address`), whose `+TOKEN` forms name our messages.
    pub bounce_address: Option<Address>,
    /// `REMINDERS_SECRET`: the key the tokens and Message-IDs were made with.
    pub secret: Vec<u8>,
    /// `--recipient`: the address a report piped on stdin was sent to.
    pub recipient: Option<String>,
    /// Reports larger than this are not read (`--max-size`).
    pub max_size: u64,
}

/// What a run read, by kind.
#[derive(Debug, Default, Serialize)]
pub struct Counts {
    /// Verified permanent failures of the address (they count toward the bounce rule).
    pub hard: usize,
    /// Verified permanent failures over our sending (a blocklist, reputation,
    /// SPF/DKIM/DMARC) and authentication-failure reports: they blame nobody,
    /// and `status` warns.
    pub refused: usize,
    /// Verified permanent failures for other reasons or none given: they blame nobody.
    pub failed: usize,
    /// Delays and temporary failures (verified or not): they change nothing.
    pub delayed: usize,
    /// Verified spam complaints.
    pub complaints: usize,
    /// Verified unsubscribe requests.
    pub unsubscribes: usize,
    /// Vacation notices and other automatic answers.
    pub auto_replies: usize,
    /// Reports that name a message or a student of ours but prove nothing: ignored.
    pub unverified: usize,
    /// Reports about nothing of ours.
    pub unmatched: usize,
    /// Mail that is no report we can read (in a Maildir, set aside in `cur/`
    /// with the F flag).
    pub unrecognised: usize,
    /// Reports read before, by this run or another: nothing done again.
    pub already_processed: usize,
    /// Maildir messages another run took first: left to it.
    pub skipped: usize,
    /// Addresses opted out by this run.
    pub opted_out: Vec<String>,
}

/// Why a run stopped early.
#[derive(Debug)]
pub enum Stop {
    /// The source cannot be read (bad input, exit 2).
    Source(SourceError),
    /// The database failed: what was not recorded stays for the next try (exit 75).
    Database(anyhow::Error),
}

/// Reads every message of `source` and acts on it.
pub fn process(
    db: &mut Db,
    source: &Source,
    options: &Options,
    clock: &Clock,
    counts: &mut Counts,
) -> Result<(), Stop> {
    for entry in source.messages(options.max_size).map_err(Stop::Source)? {
        match entry.map_err(Stop::Source)? {
            Entry::Skipped { label, reason } => {
                crate::log::warning!("{label}: skipped: {reason}");
                counts.unrecognised += 1;
            }
            Entry::Taken { label } => {
                // Two runs at once on one Maildir is normal (two cron hosts).
                crate::log::info!("{label}: taken by another run");
                counts.skipped += 1;
            }
            Entry::Message(message) => judge_and_record(db, source, message, options, clock, counts)?,
        }
    }
    Ok(())
}

/// One message: judged, recorded, and settled in its Maildir: moved to
/// `cur/` (or back to `new/` when it cannot be recorded).
fn judge_and_record(
    db: &mut Db,
    source: &Source,
    message: Message,
    options: &Options,
    clock: &Clock,
    counts: &mut Counts,
) -> Result<(), Stop> {
    let Message { label, body, claim } = message;
    let outcome = match &body {
        Body::TooLarge { at_least } => Err(format!("larger than the limit ({at_least} bytes or more)")),
        Body::Bytes(raw) => match report::parse(raw) {
            ParsedReport {
                form: ReportForm::Unrecognised { reason },
                ..
            } => Err(reason),
            parsed => Ok((parsed, raw)),
        },
    };
    let (parsed, raw) = match outcome {
        Err(reason) => return set_aside(db, &label, &body, reason, claim, clock, counts),
        Ok(found) => found,
    };
    let now = Timestamp::now(clock);
    // On a database error the claim is dropped unsettled, which puts the
    // report back in `new/` for the next try.
    let judged = judge(db, &parsed, options, now).map_err(Stop::Database)?;
    let key = parsed.message_id.clone().unwrap_or_else(|| content_key(raw));
    let record = NewReport {
        id: Id::new(),
        report_key: key,
        kind: judged.kind,
        verified: judged.verified,
        reason: judged.reason.clone(),
        to_email: judged.to_email.clone(),
        reminder_id: judged
            .message
            .filter(|m| m.kind == MessageKind::Reminder)
            .map(|m| Id(m.id)),
        summary_id: judged
            .message
            .filter(|m| m.kind == MessageKind::Summary)
            .map(|m| Id(m.id)),
        contact_message_id: judged
            .message
            .filter(|m| m.kind == MessageKind::Contact)
            .map(|m| Id(m.id)),
        created_at: now,
        source_file: kept_at(source, &label, claim.as_ref()),
    };
    let recorded = bounces::record_report(db, &record, &judged.effects, now).map_err(Stop::Database)?;
    match recorded {
        Recorded::Before => counts.already_processed += 1,
        Recorded::New { opted_out } => {
            judged.count(counts);
            if !judged.verified
                && let Some(reason) = &judged.reason
            {
                crate::log::warning!("{label}: unverified report, ignored: {reason}");
            }
            counts.opted_out.extend(opted_out);
            if judged.mailbox_bounced
                && let Some(email) = &judged.to_email
                && opt_out_after_rejections(db, email, policy::bounced_out, &policy::opt_out_note(), now)
                    .map_err(Stop::Database)?
            {
                counts.opted_out.push(email.clone());
            }
        }
    }
    if let Some(claim) = claim
        && let Err(error) = claim.processed()
    {
        crate::log::warning!("{label}: recorded, but cannot mark it seen: {error}");
    }
    Ok(())
}

/// Mail that is no report: recorded once, without an address, so `status`
/// counts it; in a Maildir, moved to `cur/` with the F flag, where no later
/// run reads it again (only `new/` is read) and a person can look at it.
fn set_aside(
    db: &mut Db,
    label: &str,
    body: &Body,
    reason: String,
    claim: Option<MaildirClaim>,
    clock: &Clock,
    counts: &mut Counts,
) -> Result<(), Stop> {
    let now = Timestamp::now(clock);
    let report_key = match body {
        Body::Bytes(raw) => content_key(raw),
        // Not read whole: known by where it is and its size.
        Body::TooLarge { at_least } => format!("too-large:{label}:{at_least}"),
    };
    let record = NewReport {
        id: Id::new(),
        report_key,
        kind: ReportKind::Unrecognised,
        verified: false,
        reason: Some(reason.clone()),
        to_email: None,
        reminder_id: None,
        summary_id: None,
        contact_message_id: None,
        created_at: now,
        // Tied to no student, so no `user forget` looks for it.
        source_file: None,
    };
    // On a database error the claim is dropped unsettled: back to `new/`.
    match bounces::record_report(db, &record, &[], now).map_err(Stop::Database)? {
        Recorded::New { .. } => counts.unrecognised += 1,
        Recorded::Before => counts.already_processed += 1,
    }
    match claim.map(MaildirClaim::flagged) {
        None => crate::log::warning!("{label}: not a report this tool can read ({reason})"),
        Some(Ok(())) => {
            crate::log::warning!("{label}: not a report this tool can read ({reason}); set aside in cur/, flagged")
        }
        Some(Err(error)) => {
            crate::log::warning!("{label}: not a report this tool can read ({reason}); cannot flag it: {error}")
        }
    }
    Ok(())
}

/// The key of a report without a Message-ID of its own: a hash of its bytes.
fn content_key(raw: &[u8]) -> String {
    format!("sha256:{}", data_encoding::HEXLOWER.encode(&Sha256::digest(raw)))
}

/// Where the raw report stays once settled, absolute (`user forget` may run
/// elsewhere): its Maildir file in `cur/`, `MBOX:N` (the label's number), the
/// file; nothing for stdin.
fn kept_at(source: &Source, label: &str, claim: Option<&MaildirClaim>) -> Option<String> {
    let absolute = |path: &Path| std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    match (source, claim) {
        (_, Some(claim)) => {
            let done = claim.processed_path();
            let dir = absolute(done.parent()?);
            Some(dir.join(done.file_name()?).display().to_string())
        }
        (Source::Mbox(path), None) => {
            let (_, number) = label.rsplit_once(':')?;
            Some(format!("{}:{number}", absolute(path).display()))
        }
        (Source::File(path), None) => Some(absolute(path).display().to_string()),
        (Source::Maildir(_) | Source::Stdin, None) => None,
    }
}

/// What a report comes to.
struct Judged {
    kind: ReportKind,
    verified: bool,
    /// Why it is unverified, or what it said.
    reason: Option<String>,
    /// The student it is about (verified), or names.
    to_email: Option<String>,
    message: Option<MessageRef>,
    effects: Vec<Effect>,
    /// A verified bounce about the mailbox: the bounce rule looks at the address.
    mailbox_bounced: bool,
    /// It named nothing of ours at all.
    unmatched: bool,
}

impl Judged {
    fn count(&self, counts: &mut Counts) {
        match (self.kind, self.verified) {
            (ReportKind::Soft, _) => counts.delayed += 1,
            (ReportKind::AutoReply, _) => counts.auto_replies += 1,
            (_, false) if self.unmatched => counts.unmatched += 1,
            (_, false) => counts.unverified += 1,
            (ReportKind::Hard, true) => counts.hard += 1,
            (ReportKind::Refused, true) => counts.refused += 1,
            (ReportKind::Failed, true) => counts.failed += 1,
            (ReportKind::Complaint, true) => counts.complaints += 1,
            (ReportKind::Unsubscribe, true) => counts.unsubscribes += 1,
            (ReportKind::Unrecognised, _) => counts.unrecognised += 1,
        }
    }

    /// A report that changes nothing whatever it proves: a delay, an auto-reply.
    fn changes_nothing(kind: ReportKind, to_email: Option<String>) -> Judged {
        Judged {
            kind,
            verified: false,
            reason: None,
            to_email,
            message: None,
            effects: Vec::new(),
            mailbox_bounced: false,
            unmatched: false,
        }
    }

    fn unverified(kind: ReportKind, reason: String, to_email: Option<String>, unmatched: bool) -> Judged {
        Judged {
            kind,
            verified: false,
            reason: Some(reason),
            to_email,
            message: None,
            effects: Vec::new(),
            mailbox_bounced: false,
            unmatched,
        }
    }
}

/// Decides what a parsed report proves and what it changes (the rule of
/// `bounces::trust`: only a verified report changes anything).
fn judge(db: &mut Db, parsed: &ParsedReport, options: &Options, now: Timestamp) -> anyhow::Result<Judged> {
    let token = options.bounce_address.as_ref().and_then(|bounces| {
        trust::envelope_token(
            options.recipient.as_deref(),
            &parsed.envelope_recipients,
            bounces.as_ref(),
        )
    });
    match &parsed.form {
        ReportForm::Unrecognised { .. } => unreachable!("set aside before judging"),
        ReportForm::AutoReply => Ok(Judged::changes_nothing(ReportKind::AutoReply, None)),
        ReportForm::AuthFailure { original_message_id } => {
            // Proved as a complaint is (by the VERP token): it warns the operator.
            let trust = lookup_and_judge(
                db,
                options,
                Claim::Complaint,
                token,
                None,
                original_message_id.as_deref(),
            )?;
            Ok(match trust {
                Ok((message, sent)) => Judged {
                    kind: ReportKind::Refused,
                    verified: true,
                    reason: Some("an authentication failure report (SPF or DKIM)".into()),
                    to_email: Some(sent.to),
                    message: Some(message),
                    effects: Vec::new(),
                    mailbox_bounced: false,
                    unmatched: false,
                },
                Err(reason) => {
                    let unmatched = unmatched(db, token, original_message_id, None)?;
                    Judged::unverified(ReportKind::Refused, reason, None, unmatched)
                }
            })
        }
        ReportForm::Unsubscribe { token: Some(text), .. } => {
            match token::verify_unsubscribe_token(&options.secret, text) {
                Err(error) => Ok(Judged::unverified(
                    ReportKind::Unsubscribe,
                    format!("unsubscribe token refused: {error}"),
                    None,
                    false,
                )),
                Ok(subscriber) => match contacts::subscriber_email(db, subscriber)? {
                    None => Ok(Judged::unverified(
                        ReportKind::Unsubscribe,
                        "the token names a person who is gone".into(),
                        None,
                        false,
                    )),
                    Some(email) => Ok(Judged {
                        kind: ReportKind::Unsubscribe,
                        verified: true,
                        reason: None,
                        to_email: Some(email.clone()),
                        message: None,
                        effects: vec![Effect::OptOut {
                            email,
                            reason: OptOutReason::Unsubscribed,
                        }],
                        mailbox_bounced: false,
                        unmatched: false,
                    }),
                },
            }
        }
        ReportForm::Unsubscribe { token: None, from } => Ok(Judged::unverified(
            ReportKind::Unsubscribe,
            format!(
                "an unsubscribe request without its token (from `{}`; a From address proves nothing)",
                from.as_deref().unwrap_or("nobody")
            ),
            from.clone(),
            false,
        )),
        ReportForm::Complaint {
            original_message_id,
            complained_address,
        } => {
            let trust = lookup_and_judge(
                db,
                options,
                Claim::Complaint,
                token,
                complained_address.as_deref(),
                original_message_id.as_deref(),
            )?;
            Ok(match trust {
                Ok((message, sent)) => Judged {
                    kind: ReportKind::Complaint,
                    verified: true,
                    reason: None,
                    to_email: Some(sent.to.clone()),
                    message: Some(message),
                    effects: vec![Effect::OptOut {
                        email: sent.to,
                        reason: OptOutReason::Complaint,
                    }],
                    mailbox_bounced: false,
                    unmatched: false,
                },
                Err(reason) => {
                    let unmatched = unmatched(db, token, original_message_id, complained_address.as_deref())?;
                    Judged::unverified(ReportKind::Complaint, reason, complained_address.clone(), unmatched)
                }
            })
        }
        ReportForm::Delivery {
            recipients,
            original_message_id,
            explanation,
            ..
        } => {
            let text = cause::ReportText::read(explanation);
            let failed: Vec<_> = recipients
                .iter()
                .filter_map(|block| match cause::severity(block, &text) {
                    Severity::Hard(cause) => Some((block, cause)),
                    Severity::Soft | Severity::NotABounce => None,
                })
                .collect();
            if failed.is_empty() {
                let named = recipients.iter().find_map(|block| block.final_recipient.clone());
                let kind = if recipients.iter().any(|b| b.action != Action::Delivered) {
                    ReportKind::Soft
                } else {
                    ReportKind::AutoReply
                };
                return Ok(Judged::changes_nothing(kind, named));
            }
            // Our messages have one recipient: the failed block that names
            // the one the VERP token's message went to (else the first) is
            // the one that counts.
            let known = known_messages(db, options, token, original_message_id.as_deref())?;
            let token_sent_to = sent_to_by_token(&known, options, token).map(str::to_owned);
            let (block, cause) = token_sent_to
                .as_deref()
                .and_then(|to| failed.iter().find(|(block, _)| block.names(to).is_some()))
                .copied()
                .unwrap_or(failed[0]);
            let kind = match cause {
                Cause::Recipient(_) => ReportKind::Hard,
                Cause::OurSending(_) => ReportKind::Refused,
                Cause::Elsewhere(_) | Cause::Unclear => ReportKind::Failed,
            };
            let named = token_sent_to
                .as_deref()
                .and_then(|to| block.names(to))
                .or(block.final_recipient.as_deref());
            let trust = judge_known(
                known,
                options,
                Claim::Delivery,
                token,
                named,
                original_message_id.as_deref(),
            );
            let what = [
                Some(cause.label().to_owned()),
                block.status.as_deref().map(|status| format!("Status: {status}")),
                block.diagnostic.as_deref().map(|d| format!("Diagnostic-Code: {d}")),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("; ");
            Ok(match trust {
                Ok((message, sent)) => {
                    let about_mailbox = cause.blames_recipient();
                    let log = NewSendLog {
                        id: Id::new(),
                        reminder_id: (message.kind == MessageKind::Reminder).then_some(Id(message.id)),
                        assignment_id: sent.assignment_id,
                        summary_id: (message.kind == MessageKind::Summary).then_some(Id(message.id)),
                        contact_message_id: (message.kind == MessageKind::Contact).then_some(Id(message.id)),
                        to_email: sent.to.clone(),
                        from_inbox: sent.from_inbox,
                        message_id: sent.message_id,
                        // Only a mailbox that does not exist or is disabled counts
                        // toward the bounce rule; a policy or content refusal is
                        // recorded as a failure, nobody blamed.
                        status: if about_mailbox {
                            LogStatus::Bounced
                        } else {
                            LogStatus::Failed
                        },
                        error: Some(format!("reported later by the mail system: {what}")),
                        created_at: now,
                    };
                    Judged {
                        kind,
                        verified: true,
                        reason: Some(what),
                        to_email: Some(sent.to),
                        message: Some(message),
                        effects: vec![Effect::Log(log)],
                        mailbox_bounced: about_mailbox,
                        unmatched: false,
                    }
                }
                Err(reason) => {
                    let unmatched = unmatched(db, token, original_message_id, named)?;
                    Judged::unverified(kind, reason, named.map(str::to_string), unmatched)
                }
            })
        }
    }
}

/// A message of ours as the send log has it, for the verified case.
struct SentTo {
    to: String,
    from_inbox: String,
    assignment_id: Option<Id>,
    message_id: Option<String>,
}

/// Looks up the messages a report's token and quoted Message-ID name, then
/// applies the trust rule to them: the message and its send log when the
/// report is verified, or why it is not.
fn lookup_and_judge(
    db: &mut Db,
    options: &Options,
    claim: Claim,
    token: Option<&str>,
    named: Option<&str>,
    original_message_id: Option<&str>,
) -> anyhow::Result<Result<(MessageRef, SentTo), String>> {
    let known = known_messages(db, options, token, original_message_id)?;
    Ok(judge_known(known, options, claim, token, named, original_message_id))
}

/// The messages of ours, as the send log has them, that a report's token
/// and quoted Message-ID name (each once checked against the secret).
fn known_messages(
    db: &mut Db,
    options: &Options,
    token: Option<&str>,
    original_message_id: Option<&str>,
) -> anyhow::Result<Vec<(MessageRef, SentTo)>> {
    let secret = &options.secret;
    let mut known: Vec<(MessageRef, SentTo)> = Vec::new();
    let candidates = [
        token.and_then(|token| token::verify_message_token(secret, token).ok()),
        original_message_id.and_then(|id| token::verify_message_id(secret, id).ok()),
    ];
    for message in candidates.into_iter().flatten() {
        if let Some(sent) = bounces::sent_message(db, message)? {
            known.push((
                message,
                SentTo {
                    to: sent.to_email,
                    from_inbox: sent.from_inbox,
                    assignment_id: sent.assignment_id,
                    message_id: sent.message_id,
                },
            ));
        }
    }
    Ok(known)
}

/// The address the message the VERP token names went to, among `known`.
fn sent_to_by_token<'k>(known: &'k [(MessageRef, SentTo)], options: &Options, token: Option<&str>) -> Option<&'k str> {
    let message = token::verify_message_token(&options.secret, token?).ok()?;
    known
        .iter()
        .find(|(m, _)| *m == message)
        .map(|(_, sent)| sent.to.as_str())
}

/// The trust rule (`bounces::trust`) applied to the messages found.
fn judge_known(
    known: Vec<(MessageRef, SentTo)>,
    options: &Options,
    claim: Claim,
    token: Option<&str>,
    named: Option<&str>,
    original_message_id: Option<&str>,
) -> Result<(MessageRef, SentTo), String> {
    let secret = &options.secret;
    let find = |message: MessageRef| known.iter().find(|(m, _)| *m == message);
    let verdict = trust::judge(
        secret,
        claim,
        token,
        named,
        original_message_id,
        |message| find(message).map(|(_, sent)| sent.to.clone()),
        |id| {
            let message = token::verify_message_id(secret, id).ok()?;
            find(message).map(|(_, sent)| Sent {
                message,
                to: sent.to.clone(),
            })
        },
    );
    match verdict {
        Trust::Verified { message, .. } => known
            .into_iter()
            .find(|(m, _)| *m == message)
            .ok_or_else(|| "the message it names has no send log".to_string()),
        Trust::Unverified { reason } => Err(reason),
    }
}

/// Whether a report that proved nothing named nothing of ours either: no
/// token, no Message-ID of ours, and no address of a student, guardian or teacher.
fn unmatched(
    db: &mut Db,
    token: Option<&str>,
    original_message_id: &Option<String>,
    named: Option<&str>,
) -> anyhow::Result<bool> {
    if token.is_some() || original_message_id.is_some() {
        return Ok(false);
    }
    match named {
        Some(email) => Ok(!bounces::is_known_address(db, email)?),
        None => Ok(true),
    }
}
