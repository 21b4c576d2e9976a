//! `reminders assignment import FEED --student EMAIL`: one student's
//! iCalendar feed (Canvas, Moodle), from a file, stdin or an `https://` URL,
//! upserted on each entry's UID. The URL's path and query are the feed's
//! secret (anyone who has them reads the student's calendar), so only its
//! scheme and host are ever shown, and it is fetched over https only (plain
//! http to this machine is for tests).
//!
//! `--remove-missing` removes what the same feed no longer lists, so a feed's
//! identity is one no other source can share: the file's canonical path, the
//! URL with its secret part hashed, or the operator's `--feed NAME`.

use std::io::Read;
use std::time::{Duration, Instant};

use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::Outcome;
use crate::cli::AssignmentImportArgs;
use crate::db::assignments::{self, Assignment, Incoming, Kept};
use crate::db::types::{Id, Json, Timestamp};
use crate::db::{DatabaseUrl, Db, users};
use crate::error::invalid;
use crate::ics::{self, FeedEntry};
use crate::input::{parse_external_id, zone_of};
use crate::output;

/// How far back a recurring entry's occurrences are still listed: work
/// missed in the last month stays an assignment under `--remove-missing`,
/// so its overdue notices, the guardians' digests and the teachers' reports
/// still see it; an older one leaves.
const RECENT_PAST: chrono::Duration = chrono::Duration::days(30);

/// The longest a feed may take to arrive.
const FETCH_TIMEOUT: Duration = Duration::from_secs(60);
/// Redirects followed at most; each is checked before it is requested.
const MAX_REDIRECTS: usize = 5;
/// Rows inserted or removed beyond which an import is a bulk load: the
/// planner's statistics are refreshed, or the next import's lookups by UID
/// may scan the table once per chunk, which on PostgreSQL more than doubles
/// the time to re-read a large feed (BENCHMARKS.md has the measurement).
const BULK_LOAD: usize = 10_000;
/// The largest feed read: a student's calendar is kilobytes; this is a
/// runaway or the wrong URL.
const MAX_FEED_BYTES: u64 = 20 * 1024 * 1024;

pub fn import(database: &DatabaseUrl, args: AssignmentImportArgs, now: Timestamp) -> anyhow::Result<Outcome> {
    let email = args
        .student
        .as_ref()
        .ok_or_else(|| invalid("an iCalendar feed is one student's calendar: name the student with --student EMAIL"))?;
    if args.skip_existing {
        return Err(invalid(
            "a feed is always matched on its UIDs; --skip-existing is for CSV and JSON Lines",
        ));
    }
    let named = args.feed.as_deref().map(feed_name).transpose()?;
    if args.file == "-" && named.is_none() && args.remove_missing {
        return Err(invalid(
            "a feed read from stdin has no name of its own: name it with --feed NAME to use --remove-missing",
        ));
    }
    let started = Instant::now();
    let (text, source) = read_feed(&args.file)?;
    let feed_name = named.unwrap_or(source);
    let horizon = ics::Horizon {
        from: now.instant() - RECENT_PAST,
        until: now.instant() + args.horizon,
    };
    let feed = ics::parse(&text, horizon)?;
    for reason in &feed.skipped {
        crate::log::warning!("skipped {reason}");
    }
    for warning in &feed.warnings {
        crate::log::warning!("{warning}");
    }
    let mut db = Db::open(database)?;
    let student = users::require_user_by_email(&mut db, email.as_str())?;
    let zone = zone_of(student.timezone.as_deref());
    // An occurrence of a recurring entry older than RECENT_PAST is not
    // listed, so --remove-missing removes it with what the feed dropped.
    let listed: Vec<String> = feed.entries.iter().map(FeedEntry::external_id).collect();
    let mut rows = Vec::with_capacity(feed.entries.len());
    for entry in feed.entries {
        let due_at = Timestamp::new(ics::due_instant(&entry.due, zone));
        if entry.occurrence.is_some() && due_at < now {
            // Kept as it is if stored, never added: a feed read for the
            // first time does not make last month's occurrences overdue work.
            continue;
        }
        let id = entry.external_id();
        let external_id = parse_external_id(&id).map_err(|error| invalid(format!("{id}: {error:#}")))?;
        let course = course_of(&entry);
        rows.push(Incoming {
            completed: completed_by(&entry),
            keeps: Kept {
                cutoff: true,
                course: course.is_none(),
            },
            assignment: Assignment {
                id: Id::new(),
                title: Some(one_line(&entry.title))
                    .filter(|title| !title.is_empty())
                    .unwrap_or_else(|| "(untitled)".to_string()),
                description: entry
                    .description
                    .as_deref()
                    .map(readable)
                    .filter(|d| !d.trim().is_empty()),
                student_id: student.id,
                due_at,
                completed: false,
                created_at: now,
                updated_at: now,
                metadata: metadata_of(&entry).map(Json),
                external_id: Some(external_id),
                feed: Some(feed_name.clone()),
                previous_due_at: None,
                cutoff: None,
                course,
            },
        });
    }
    let (upserted, removed) = db.in_write_transaction(|db| {
        let upserted = assignments::upsert_by_external_id(db, rows, now)?;
        let removed = match args.remove_missing {
            true => assignments::remove_missing_from_feed(db, student.id, &feed_name, &listed)?,
            false => 0,
        };
        Ok((upserted, removed))
    })?;
    if upserted.inserted + removed >= BULK_LOAD {
        db.analyze("assignments")?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let changed = upserted.inserted + upserted.updated + removed;
    Ok(Outcome::success(output::Done(output::Message {
        text: format!(
            "feed {feed_name} for `{}`: inserted {}, updated {}, unchanged {}, removed {removed}, skipped {}{}, in {seconds:.2} s",
            student.email,
            upserted.inserted,
            upserted.updated,
            upserted.unchanged,
            feed.skipped.len(),
            if changed == 0 { "; nothing changed" } else { "" },
        ),
        json: json!({
            "feed": feed_name,
            "student": student.email,
            "inserted": upserted.inserted,
            "updated": upserted.updated,
            "unchanged": upserted.unchanged,
            "removed": removed,
            "skipped": feed.skipped,
            "seconds": seconds,
        }),
    })))
}

/// What the feed says of completion: a cancelled event or a completed to-do
/// gets no more reminders; another status says it is open again; none says
/// nothing (the student or the operator may have completed it here).
fn completed_by(entry: &FeedEntry) -> Option<bool> {
    entry
        .status
        .as_deref()
        .map(|status| matches!(status, "CANCELLED" | "COMPLETED"))
}

/// URL, CATEGORIES, LOCATION and STATUS, as the assignment's metadata.
fn metadata_of(entry: &FeedEntry) -> Option<serde_json::Value> {
    let mut metadata = serde_json::Map::new();
    if let Some(url) = &entry.url {
        metadata.insert("url".into(), json!(url));
    }
    if !entry.categories.is_empty() {
        metadata.insert("categories".into(), json!(entry.categories));
    }
    if let Some(location) = &entry.location {
        metadata.insert("location".into(), json!(location));
    }
    if let Some(status) = &entry.status {
        metadata.insert("status".into(), json!(status));
    }
    (!metadata.is_empty()).then_some(serde_json::Value::Object(metadata))
}

/// The course an entry names: its first CATEGORIES value, where Moodle puts
/// the course. None when it has none (Canvas), so the stored course stays.
fn course_of(entry: &FeedEntry) -> Option<String> {
    entry
        .categories
        .first()
        .map(|category| one_line(category))
        .filter(|course| !course.is_empty())
}

/// Text from a feed on one line: its control characters become spaces
/// (a feed is another system's text, not the operator's typing).
fn one_line(text: &str) -> String {
    let line: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A description from a feed, keeping its line breaks and tabs.
fn readable(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
        .collect()
}

/// An operator's `--feed NAME`: one line of text.
fn feed_name(raw: &str) -> anyhow::Result<String> {
    let name = raw.trim();
    if name.is_empty() || name.chars().any(char::is_control) || name.chars().count() > 200 {
        return Err(invalid(
            "--feed must be a name of one line, at most 200 characters (e.g. `canvas-ann`)",
        ));
    }
    Ok(name.to_string())
}

/// The feed's text, and the identity it is known by: the URL with its
/// secret hashed, the file's canonical path, or `stdin`.
fn read_feed(source: &str) -> anyhow::Result<(String, String)> {
    if source.starts_with("https://") || source.starts_with("http://") {
        return fetch(source);
    }
    let (reader, name): (Box<dyn Read>, String) = if source == "-" {
        (Box::new(std::io::stdin()), "stdin".to_string())
    } else {
        let file = std::fs::File::open(source).map_err(|error| invalid(format!("cannot read `{source}`: {error}")))?;
        // Two feeds may share a file name (`feed.ics` in two folders), never a canonical path.
        let path =
            std::fs::canonicalize(source).map_err(|error| invalid(format!("cannot read `{source}`: {error}")))?;
        (Box::new(file), path.display().to_string())
    };
    let mut bytes = Vec::new();
    reader
        .take(MAX_FEED_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| invalid(format!("cannot read `{source}`: {error}")))?;
    if bytes.len() as u64 > MAX_FEED_BYTES {
        return Err(invalid(format!(
            "`{source}` is larger than {} MiB: is it a calendar feed?",
            MAX_FEED_BYTES / 1024 / 1024
        )));
    }
    let text = String::from_utf8(bytes).map_err(|_| invalid(format!("`{source}` is not UTF-8 text")))?;
    Ok((text, name))
}

/// Fetches a feed URL, following redirects that stay on https. Only
/// `scheme://host` is ever shown of it, and its secret is never sent in clear.
fn fetch(raw: &str) -> anyhow::Result<(String, String)> {
    let url = url::Url::parse(raw).map_err(|_| invalid("the feed URL is not a valid URL"))?;
    hide_secret_of(&url);
    let shown = shown(&url);
    check_transport(&url)?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(FETCH_TIMEOUT))
        .tls_config(crate::tls::http_config())
        // Each redirect is checked here before it is requested.
        .max_redirects(0)
        .build()
        .into();
    let mut at = url.clone();
    for _ in 0..=MAX_REDIRECTS {
        let mut response = agent.get(at.as_str()).call().map_err(|error| match error {
            ureq::Error::StatusCode(code) if (400..500).contains(&code) => invalid(format!(
                "the feed at {shown} answered {code}: check the feed URL (the LMS may have issued a new one)"
            )),
            other => anyhow::anyhow!(
                "cannot fetch the feed at {shown}: {}",
                crate::tls::explain_http(&other, at.as_str(), FETCH_TIMEOUT)
            ),
        })?;
        if response.status().is_redirection() {
            let next = response
                .headers()
                .get("location")
                .and_then(|location| location.to_str().ok())
                .and_then(|location| at.join(location).ok())
                .ok_or_else(|| invalid(format!("the feed at {shown} redirected without a valid Location")))?;
            hide_secret_of(&next);
            if at.scheme() == "https" && next.scheme() != "https" {
                return Err(invalid(format!(
                    "the feed at {shown} redirected to plain {}://, which would send its secret in clear: refused",
                    next.scheme()
                )));
            }
            check_transport(&next)?;
            at = next;
            continue;
        }
        let text = response
            .body_mut()
            .with_config()
            .limit(MAX_FEED_BYTES)
            .read_to_string()
            .map_err(|error| anyhow::anyhow!("cannot read the feed from {shown}: {error}"))?;
        return Ok((text, identity(&url)));
    }
    Err(invalid(format!(
        "the feed at {shown} redirected more than {MAX_REDIRECTS} times"
    )))
}

/// Keeps a feed URL's secret (its path and query, and any userinfo) out of
/// everything printed.
fn hide_secret_of(url: &url::Url) {
    // `hide` passes over what is too short to be a secret (a bare "/").
    crate::redact::hide(&url[url::Position::BeforePath..]);
    crate::redact::hide_secrets_of_url(url.as_str());
}

/// `scheme://host`: all of a feed URL that is ever shown.
fn shown(url: &url::Url) -> String {
    format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default())
}

/// A URL feed's identity: `scheme://host[:port]#sha256:<hex>`, the hash of
/// its path and query. Two feeds on one host differ by it, and the stored
/// value reveals no secret.
fn identity(url: &url::Url) -> String {
    let secret = &url[url::Position::BeforePath..url::Position::AfterQuery];
    let port = url.port().map(|port| format!(":{port}")).unwrap_or_default();
    let hash = data_encoding::HEXLOWER.encode(&Sha256::digest(secret.as_bytes()));
    format!("{}{port}#sha256:{hash}", shown(url))
}

/// https anywhere; plain http only to this machine (loopback), where nothing
/// crosses a network. Checked before any connection is made.
fn check_transport(url: &url::Url) -> anyhow::Result<()> {
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(invalid(format!(
            "the feed URL is plain http:// to `{}`, which would send its secret in clear: use its https:// address",
            url.host_str().unwrap_or_default()
        ))),
        other => Err(invalid(format!("the feed URL's scheme `{other}` is not https"))),
    }
}
