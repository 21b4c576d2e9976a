//! The preferences page (`reminders cgi`): one web request in, one response
//! out. The request is hostile until its token proves whose page it is; a
//! bad one, or a bad field, changes nothing and gets one line saying why.

use chrono::Weekday;

use crate::db::guardians::{self, Guardian, GuardianFields};
use crate::db::summaries::{self, Preferences};
use crate::db::teachers::{self, Teacher, TeacherFields};
use crate::db::types::{DigestFrequency, OptOutReason, Timestamp};
use crate::db::users::{self, User};
use crate::db::{DatabaseUrl, Db, contacts};
use crate::mail::token::{Subscriber, TokenError, verify_unsubscribe_token};
use crate::schedule::{Target, TypeList};

pub mod form;
mod page;

use form::{Body, Frequency, Refusal, Submitted};

/// The largest body read: the form is well under 1 KiB.
pub const MAX_BODY: usize = 64 * 1024;

/// What the page offers, from the configuration `send` runs with.
pub struct Site {
    /// The reminder types `send` sends, in its order.
    pub offered: Vec<Target>,
    /// The types `send --required-types` sends whatever a student mutes.
    pub required: Option<TypeList>,
    pub secret: Vec<u8>,
}

/// One request, as the web server handed it over (RFC 3875 meta-variables).
pub struct Request {
    pub method: String,
    pub query: String,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// One response: a status, a media type, and a body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    /// The `Allow` header of a 405.
    pub allow: Option<&'static str>,
    /// HEAD: the headers only.
    pub head_only: bool,
}

impl Response {
    fn html(status: u16, body: String) -> Response {
        Response {
            status,
            content_type: "text/html; charset=utf-8",
            body,
            allow: None,
            head_only: false,
        }
    }

    /// A page that says one thing: a refusal, or a failure of ours.
    pub fn refused(refusal: &Refusal) -> Response {
        Response::html(refusal.status, page::plain(refusal.status, &refusal.reason))
    }

    /// The response as a CGI program writes it (RFC 3875 6.2): a `Status`
    /// line, the headers, a blank line, the body.
    pub fn to_cgi(&self) -> String {
        let mut out = format!("Status: {} {}\n", self.status, reason_phrase(self.status));
        out.push_str(&format!("Content-Type: {}\n", self.content_type));
        if let Some(allow) = self.allow {
            out.push_str(&format!("Allow: {allow}\n"));
        }
        // The token is in the URL: no cache keeps the page, no other site
        // hears of the URL, no frame shows it, and nothing is sniffed.
        out.push_str("Cache-Control: no-store\n");
        out.push_str("Referrer-Policy: no-referrer\n");
        out.push_str(&format!(
            "Content-Security-Policy: {}\n",
            page::content_security_policy()
        ));
        out.push_str("X-Frame-Options: DENY\n");
        out.push_str("X-Content-Type-Options: nosniff\n");
        out.push('\n');
        if !self.head_only {
            out.push_str(&self.body);
        }
        out
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        _ => "Internal Server Error",
    }
}

/// The body's length from `CONTENT_LENGTH`, refused past [`MAX_BODY`]
/// before a byte of it is read.
pub fn body_length(content_length: Option<&str>) -> Result<usize, Response> {
    let Some(raw) = content_length.map(str::trim).filter(|raw| !raw.is_empty()) else {
        return Ok(0);
    };
    let refuse = |status: u16, reason: &str| {
        Response::refused(&Refusal {
            status,
            reason: reason.to_string(),
        })
    };
    match raw.parse::<u64>() {
        Ok(length) if length <= MAX_BODY as u64 => Ok(length as usize),
        Ok(_) => Err(refuse(413, "the form sent is too large")),
        Err(_) => Err(refuse(400, "the request's length is not a number")),
    }
}

/// Answers one request. A failure of ours is a 500 page; its reason goes
/// to the web server's error log (stderr), never to the reader.
pub fn handle(database: &DatabaseUrl, site: &Site, request: &Request, now: Timestamp) -> Response {
    let head_only = request.method == "HEAD";
    if !matches!(request.method.as_str(), "GET" | "HEAD" | "POST") {
        let mut response = Response::refused(&Refusal {
            status: 405,
            reason: format!(
                "`{}` is not how this page is used: open it, or send its form",
                request.method
            ),
        });
        response.allow = Some("GET, HEAD, POST");
        return response;
    }
    let mut response = match answer(database, site, request, now) {
        Ok(response) => response,
        Err(Failed::Refused(refusal)) => Response::refused(&refusal),
        Err(Failed::Ours(error)) => {
            crate::log::warning!("the preferences page failed: {error:#}");
            Response::refused(&Refusal {
                status: 500,
                reason: "something went wrong on our side, and nothing was changed: try again later".to_string(),
            })
        }
    };
    response.head_only = head_only;
    response
}

enum Failed {
    Refused(Refusal),
    Ours(anyhow::Error),
}

impl From<Refusal> for Failed {
    fn from(refusal: Refusal) -> Failed {
        Failed::Refused(refusal)
    }
}

impl From<anyhow::Error> for Failed {
    fn from(error: anyhow::Error) -> Failed {
        Failed::Ours(error)
    }
}

/// Whose page it is, with what they can set.
enum Person {
    Student(User, Preferences),
    Guardian(Guardian),
    Teacher(Teacher),
}

impl Person {
    fn email(&self) -> &str {
        match self {
            Person::Student(user, _) => &user.email,
            Person::Guardian(guardian) => &guardian.email,
            Person::Teacher(teacher) => &teacher.email,
        }
    }

    fn locale(&self) -> Option<&str> {
        match self {
            Person::Student(user, _) => user.locale.as_deref(),
            Person::Guardian(guardian) => guardian.locale.as_deref(),
            Person::Teacher(teacher) => teacher.locale.as_deref(),
        }
    }

    fn opted_out(&self) -> (bool, Option<OptOutReason>) {
        match self {
            Person::Student(user, _) => (user.contact_opt_out, user.opt_out_reason),
            Person::Guardian(guardian) => (guardian.contact_opt_out, guardian.opt_out_reason),
            Person::Teacher(teacher) => (teacher.contact_opt_out, teacher.opt_out_reason),
        }
    }
}

fn answer(database: &DatabaseUrl, site: &Site, request: &Request, now: Timestamp) -> Result<Response, Failed> {
    let token = form::token(&request.query)?;
    let subscriber = verify_unsubscribe_token(&site.secret, &token).map_err(|error| Refusal {
        status: match error {
            TokenError::Malformed => 400,
            TokenError::BadSignature => 403,
        },
        reason: "this link is not valid: it may have been cut short or changed. Open the link in your latest email \
                 from us"
            .to_string(),
    })?;
    // The body is read before the database is opened: a refused form costs nothing.
    let body = match request.method.as_str() {
        "POST" => Some(form::parse(request.content_type.as_deref(), &request.body)?),
        _ => None,
    };
    let mut db = Db::open(database)?;
    let person = person(&mut db, subscriber, now)?.ok_or_else(|| Refusal {
        status: 404,
        reason: "this link is for someone who is no longer on our lists: we send them nothing".to_string(),
    })?;
    match body {
        None => Ok(Response::html(
            200,
            page::preferences(&view(site, &person, &token, None)),
        )),
        Some(Body::OneClick) => {
            contacts::opt_out_everywhere(&mut db, person.email(), OptOutReason::Unsubscribed, now)?;
            Ok(Response {
                status: 200,
                content_type: "text/plain; charset=utf-8",
                body: "You are unsubscribed: we will send you no more email.\n".to_string(),
                allow: None,
                head_only: false,
            })
        }
        Some(Body::Form(submitted)) => match changes(site, &person, submitted) {
            Err(refusal) => {
                let notice = page::Notice::error(&refusal.reason, page::Language::of(person.locale()));
                Ok(Response::html(
                    refusal.status,
                    page::preferences(&view(site, &person, &token, Some(notice))),
                ))
            }
            Ok(changes) => {
                save(&mut db, &person, changes, now)?;
                let saved = person_again(&mut db, subscriber, now)?;
                let notice = page::Notice::saved(saved.opted_out().0, page::Language::of(saved.locale()));
                Ok(Response::html(
                    200,
                    page::preferences(&view(site, &saved, &token, Some(notice))),
                ))
            }
        },
    }
}

fn person(db: &mut Db, subscriber: Subscriber, now: Timestamp) -> anyhow::Result<Option<Person>> {
    let Some(email) = contacts::subscriber_email(db, subscriber)? else {
        return Ok(None);
    };
    Ok(match subscriber {
        Subscriber::Student(_) => users::find_user_by_email(db, &email)?
            .map(|user| summaries::preferences(db, user.id, now).map(|preferences| Person::Student(user, preferences)))
            .transpose()?,
        Subscriber::Guardian(_) => guardians::find_by_email(db, &email)?.map(Person::Guardian),
        Subscriber::Teacher(_) => teachers::find_by_email(db, &email)?.map(Person::Teacher),
    })
}

fn person_again(db: &mut Db, subscriber: Subscriber, now: Timestamp) -> anyhow::Result<Person> {
    person(db, subscriber, now)?.ok_or_else(|| anyhow::anyhow!("the person saved is gone"))
}

/// What a valid form changes for this person, all checked before anything is written.
enum Changes {
    Student {
        preferences: Preferences,
        locale: Option<String>,
        stop: bool,
    },
    Guardian(GuardianFields, bool),
    Teacher(TeacherFields, bool),
}

fn required<T>(value: Option<T>, field: &str) -> Result<T, Refusal> {
    value.ok_or_else(|| Refusal {
        status: 400,
        reason: format!("the form has no `{field}`: open the page again and save it from there"),
    })
}

fn iso(day: Weekday) -> i32 {
    day.number_from_monday() as i32
}

fn changes(site: &Site, person: &Person, submitted: Submitted) -> Result<Changes, Refusal> {
    let locale = required(submitted.locale, "locale")?;
    let hour = required(submitted.hour, "hour")?;
    Ok(match person {
        Person::Student(_, stored) => {
            let offered: Vec<String> = site.offered.iter().map(Target::reminder_type).collect();
            if let Some(unknown) = submitted.types.iter().find(|wanted| !offered.contains(wanted)) {
                return Err(Refusal {
                    status: 400,
                    reason: format!("`{unknown}` is not one of the reminders we send"),
                });
            }
            let mut preferences = stored.clone();
            let unticked: Vec<&String> = offered
                .iter()
                .filter(|offered| !submitted.types.contains(offered) && !is_required(site, offered))
                .collect();
            preferences.muted_types = muted_after(stored.muted_types.as_deref(), &offered, &unticked);
            // The page speaks in ticks, so what it saves is a list of muted
            // types: an "only these" list set elsewhere is replaced by it.
            preferences.reminder_types = None;
            match required(submitted.frequency, "frequency")? {
                Frequency::Off => preferences.daily_summary = false,
                Frequency::Daily => (preferences.daily_summary, preferences.summary_weekday) = (true, None),
                Frequency::Weekly => {
                    let day = required(submitted.weekday, "weekday")?;
                    (preferences.daily_summary, preferences.summary_weekday) = (true, Some(iso(day)));
                }
            }
            preferences.summary_hour = hour;
            preferences.send_window = required(submitted.send_window, "send_window")?;
            Changes::Student {
                preferences,
                locale,
                stop: submitted.stop,
            }
        }
        Person::Guardian(_) => Changes::Guardian(
            GuardianFields {
                frequency: Some(match required(submitted.frequency, "frequency")? {
                    Frequency::Daily => DigestFrequency::Daily,
                    Frequency::Weekly => DigestFrequency::Weekly,
                    Frequency::Off => DigestFrequency::Off,
                }),
                weekday: Some(iso(required(submitted.weekday, "weekday")?)),
                hour: Some(hour),
                locale: Some(locale),
                send_window: Some(required(submitted.send_window, "send_window")?),
                ..GuardianFields::default()
            },
            submitted.stop,
        ),
        Person::Teacher(_) => Changes::Teacher(
            TeacherFields {
                weekday: Some(iso(required(submitted.weekday, "weekday")?)),
                hour: Some(hour),
                locale: Some(locale),
                ..TeacherFields::default()
            },
            submitted.stop,
        ),
    })
}

fn is_required(site: &Site, reminder_type: &str) -> bool {
    site.required
        .as_ref()
        .is_some_and(|required| required.covers(reminder_type))
}

/// The muted list after the page's ticks: the types left unticked, and
/// whatever was muted before that the page does not offer (a type `send`
/// no longer sends stays muted should it come back).
fn muted_after(stored: Option<&str>, offered: &[String], unticked: &[&String]) -> Option<String> {
    let mut muted: Vec<String> = Vec::new();
    if let Some(list) = stored.and_then(|text| TypeList::parse(text).ok()) {
        for item in list.to_text().split(',') {
            let single = TypeList::parse(item).ok();
            let touches_offered = single.is_some_and(|single| offered.iter().any(|offered| single.covers(offered)));
            if !touches_offered {
                muted.push(item.to_string());
            }
        }
    }
    muted.extend(unticked.iter().map(|item| item.to_string()));
    (!muted.is_empty()).then(|| muted.join(","))
}

/// Writes what was checked. "Stop all email" goes first: of everything on
/// the page, it is what must not be lost to a failure halfway. (Each write
/// is a transaction of its own: the opt-out's, on SQLite an immediate one,
/// cannot nest in another.)
fn save(db: &mut Db, person: &Person, changes: Changes, now: Timestamp) -> anyhow::Result<()> {
    let email = person.email();
    let (opted_out, reason) = person.opted_out();
    let stop = match &changes {
        Changes::Student { stop, .. } | Changes::Guardian(_, stop) | Changes::Teacher(_, stop) => *stop,
    };
    if stop && !opted_out {
        contacts::opt_out_everywhere(db, email, OptOutReason::Unsubscribed, now)?;
    }
    match (person, changes) {
        (
            Person::Student(user, _),
            Changes::Student {
                mut preferences,
                locale,
                ..
            },
        ) => {
            preferences.updated_at = now;
            summaries::save_preferences(db, &preferences)?;
            users::set_locale(db, user.id, locale, now)?;
        }
        (Person::Guardian(guardian), Changes::Guardian(fields, _)) => {
            guardians::set_preferences(db, guardian.id, &fields, now)?;
        }
        (Person::Teacher(teacher), Changes::Teacher(fields, _)) => {
            teachers::set_preferences(db, teacher.id, &fields, now)?;
        }
        _ => unreachable!("the changes are made for this person"),
    }
    if !stop && opted_out && reason == Some(OptOutReason::Unsubscribed) {
        contacts::resume_unsubscribed(db, email, now)?;
    }
    Ok(())
}

/// What the page shows of a person.
fn view(site: &Site, person: &Person, token: &str, notice: Option<page::Notice>) -> page::View {
    let (stopped, reason) = person.opted_out();
    let stop_locked = stopped && reason != Some(OptOutReason::Unsubscribed);
    let (role, zone, locale) = match person {
        Person::Student(user, _) => ("student", user.timezone.clone(), user.locale.clone()),
        Person::Guardian(guardian) => ("guardian", Some(guardian.timezone.clone()), guardian.locale.clone()),
        Person::Teacher(teacher) => ("teacher", Some(teacher.timezone.clone()), teacher.locale.clone()),
    };
    let language = page::Language::of(locale.as_deref());
    let types = match person {
        Person::Student(_, preferences) => {
            let only = preferences
                .reminder_types
                .as_deref()
                .and_then(|text| TypeList::parse(text).ok());
            let muted = preferences
                .muted_types
                .as_deref()
                .and_then(|text| TypeList::parse(text).ok());
            site.offered
                .iter()
                .map(|target| {
                    let value = target.reminder_type();
                    let required = is_required(site, &value);
                    let gets = crate::schedule::muted_reason(&value, only.as_ref(), muted.as_ref(), None).is_none();
                    page::TypeOption {
                        label: page::target_label(target, language),
                        checked: required || gets,
                        required,
                        value,
                    }
                })
                .collect()
        }
        _ => Vec::new(),
    };
    let schedule = match person {
        Person::Student(_, preferences) => page::Schedule {
            frequency: Some(match (preferences.daily_summary, preferences.summary_weekday) {
                (false, _) => "off",
                (true, None) => "daily",
                (true, Some(_)) => "weekly",
            }),
            weekday: preferences.summary_weekday.unwrap_or(1),
            hour: preferences.summary_hour,
        },
        Person::Guardian(guardian) => page::Schedule {
            frequency: Some(guardian.frequency.as_str()),
            weekday: guardian.weekday,
            hour: guardian.hour,
        },
        Person::Teacher(teacher) => page::Schedule {
            frequency: None,
            weekday: teacher.weekday,
            hour: teacher.hour,
        },
    };
    // Teachers have no send window of their own: their report has its day and hour.
    let send_window = match person {
        Person::Student(_, preferences) => Some(preferences.send_window.clone().unwrap_or_default()),
        Person::Guardian(guardian) => Some(guardian.send_window.clone().unwrap_or_default()),
        Person::Teacher(_) => None,
    };
    page::View {
        role,
        language,
        send_window,
        email: person.email().to_string(),
        token: token.to_string(),
        notice,
        types,
        schedule,
        zone: crate::input::zone_of(zone.as_deref()).name().to_string(),
        locale,
        stopped,
        stop_locked,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> Site {
        Site {
            offered: crate::schedule::parse_targets(
                "24,2",
                crate::schedule::Unit::Hours,
                crate::schedule::Side::Before,
            )
            .unwrap(),
            required: None,
            secret: b"a test secret, not a real one at all".to_vec(),
        }
    }

    #[test]
    fn a_wrong_method_gets_405_with_allow_and_every_response_its_headers() {
        let request = Request {
            method: "DELETE".into(),
            query: String::new(),
            content_type: None,
            body: Vec::new(),
        };
        let database = DatabaseUrl::parse(Some("/nonexistent/never-opened.db")).unwrap();
        let cgi = handle(
            &database,
            &site(),
            &request,
            Timestamp::now(&crate::time::Clock::new(None)),
        )
        .to_cgi();
        let (head, body) = cgi.split_once("\n\n").unwrap();
        assert!(head.starts_with("Status: 405 Method Not Allowed\n"), "{head}");
        for header in [
            "Allow: GET, HEAD, POST",
            "Cache-Control: no-store",
            "Referrer-Policy: no-referrer",
            "X-Frame-Options: DENY",
            "X-Content-Type-Options: nosniff",
            "Content-Security-Policy: default-src 'none';",
        ] {
            assert!(head.contains(header), "{header} in {head}");
        }
        assert!(body.contains("`DELETE` is not how this page is used"));
    }

    #[test]
    fn a_body_past_the_limit_is_refused_before_it_is_read() {
        assert_eq!(body_length(None).unwrap(), 0);
        assert_eq!(body_length(Some("120")).unwrap(), 120);
        assert_eq!(body_length(Some(&(MAX_BODY + 1).to_string())).unwrap_err().status, 413);
        assert_eq!(body_length(Some("99999999999999999999999")).unwrap_err().status, 400);
        assert_eq!(body_length(Some("-1")).unwrap_err().status, 400);
    }

    #[test]
    fn ticks_become_a_muted_list_that_keeps_what_the_page_does_not_offer() {
        let offered: Vec<String> = ["24h", "2h", "overdue-24h"].map(String::from).to_vec();
        let two = "2h".to_string();
        assert_eq!(muted_after(None, &offered, &[]), None);
        assert_eq!(muted_after(Some("2h,30m"), &offered, &[]), Some("30m".into()));
        assert_eq!(
            muted_after(Some("overdue,30m"), &offered, &[&two]),
            Some("30m,2h".into())
        );
    }
}
