//! Reading a request's body and query: the form the page posts, and an
//! RFC 8058 one-click unsubscribe. Everything here is untrusted input; each
//! refusal is one line a person can act on.

use chrono::Weekday;

use crate::input::{parse_locale, parse_weekday};
use crate::schedule::window::SendWindow;

/// What a POST asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Body {
    /// `List-Unsubscribe=One-Click` (RFC 8058): stop all mail, no page.
    OneClick,
    Form(Submitted),
}

/// A summary's or a digest's frequency, as the form names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frequency {
    Daily,
    Weekly,
    Off,
}

/// The fields of the page's form, each checked for its own shape; whether
/// they fit the person (a type the school sends) is the page's to check.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Submitted {
    /// The reminder types ticked (a student's page only).
    pub types: Vec<String>,
    pub frequency: Option<Frequency>,
    pub weekday: Option<Weekday>,
    pub hour: Option<i32>,
    /// `Some(None)`: English, the default.
    pub locale: Option<Option<String>>,
    /// The person's own send window, canonical; `Some(None)`: the school's.
    pub send_window: Option<Option<String>>,
    /// "Stop all email" is ticked.
    pub stop: bool,
}

/// Why a request was refused: its HTTP status and one line saying why.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub reason: String,
}

fn bad(reason: impl Into<String>) -> Refusal {
    Refusal {
        status: 400,
        reason: reason.into(),
    }
}

/// The one `token` of a query string.
pub fn token(query: &str) -> Result<String, Refusal> {
    let mut tokens = form_urlencoded::parse(query.as_bytes()).filter(|(name, _)| name == "token");
    let missing = "this link has no token: open the link in your latest email from us";
    let (_, token) = tokens.next().ok_or_else(|| bad(missing))?;
    if tokens.next().is_some() {
        return Err(bad(
            "this link has more than one token: open the link in your latest email from us",
        ));
    }
    if token.trim().is_empty() {
        return Err(bad(missing));
    }
    Ok(token.into_owned())
}

/// A POST body: `application/x-www-form-urlencoded` (the page, and most
/// one-click senders) or `multipart/form-data` (the other form RFC 8058 allows).
pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Body, Refusal> {
    let media = content_type.unwrap_or_default();
    let essence = media.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    let pairs: Vec<(String, String)> = match essence.as_str() {
        "application/x-www-form-urlencoded" => form_urlencoded::parse(body)
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect(),
        "multipart/form-data" => multipart(media, body)?,
        _ => {
            return Err(Refusal {
                status: 415,
                reason: "send the form as application/x-www-form-urlencoded or multipart/form-data".to_string(),
            });
        }
    };
    if pairs
        .iter()
        .any(|(name, value)| name == "List-Unsubscribe" && value.trim() == "One-Click")
    {
        return Ok(Body::OneClick);
    }
    if !pairs
        .iter()
        .any(|(name, value)| name == "form" && value == "preferences")
    {
        return Err(bad(
            "this is not the preferences form: open the link in your email again",
        ));
    }
    let mut submitted = Submitted::default();
    let mut seen: Vec<&str> = Vec::new();
    for (name, value) in &pairs {
        let once = |seen: &mut Vec<&str>, field: &'static str| {
            if seen.contains(&field) {
                return Err(bad(format!("the form has `{field}` twice")));
            }
            seen.push(field);
            Ok(())
        };
        match name.as_str() {
            "types" => {
                let wanted = value.trim().to_ascii_lowercase();
                if !submitted.types.contains(&wanted) {
                    submitted.types.push(wanted);
                }
            }
            "frequency" => {
                once(&mut seen, "frequency")?;
                submitted.frequency = Some(match value.as_str() {
                    "daily" => Frequency::Daily,
                    "weekly" => Frequency::Weekly,
                    "off" => Frequency::Off,
                    other => {
                        return Err(bad(format!(
                            "`{other}` is not a frequency: choose daily, weekly or off"
                        )));
                    }
                });
            }
            "weekday" => {
                once(&mut seen, "weekday")?;
                submitted.weekday =
                    Some(parse_weekday(value).map_err(|_| bad(format!("`{value}` is not a day of the week")))?);
            }
            "hour" => {
                once(&mut seen, "hour")?;
                submitted.hour = Some(
                    value
                        .trim()
                        .parse::<i32>()
                        .ok()
                        .filter(|hour| (0..=23).contains(hour))
                        .ok_or_else(|| bad(format!("`{value}` is not an hour from 0 to 23")))?,
                );
            }
            "locale" => {
                once(&mut seen, "locale")?;
                submitted.locale = Some(parse_locale(value).map_err(|error| bad(error.to_string()))?);
            }
            "send_window" => {
                once(&mut seen, "send_window")?;
                submitted.send_window = Some(SendWindow::parse_setting(value).map_err(|error| bad(error.to_string()))?);
            }
            "stop" => {
                once(&mut seen, "stop")?;
                submitted.stop = true;
            }
            // The marker, and whatever a browser or a proxy adds.
            _ => {}
        }
    }
    Ok(Body::Form(submitted))
}

/// The fields of a `multipart/form-data` body, as text. Only small text
/// fields are expected; a part that is not UTF-8 is refused.
fn multipart(content_type: &str, body: &[u8]) -> Result<Vec<(String, String)>, Refusal> {
    let boundary = content_type
        .split(';')
        .filter_map(|param| param.trim().split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, value)| value.trim().trim_matches('"').to_string())
        .filter(|boundary| !boundary.is_empty())
        .ok_or_else(|| bad("the multipart form has no boundary"))?;
    let text = std::str::from_utf8(body).map_err(|_| bad("the form is not UTF-8 text"))?;
    let delimiter = format!("--{boundary}");
    let mut fields = Vec::new();
    for part in text.split(delimiter.as_str()).skip(1) {
        if part.starts_with("--") {
            break;
        }
        let part = part.strip_prefix("\r\n").unwrap_or(part);
        let Some((head, value)) = part.split_once("\r\n\r\n") else {
            continue;
        };
        let name = head
            .lines()
            .filter(|line| line.to_ascii_lowercase().starts_with("content-disposition:"))
            .flat_map(|line| line.split(';'))
            .filter_map(|param| param.trim().split_once('='))
            .find(|(key, _)| *key == "name")
            .map(|(_, name)| name.trim_matches('"').to_string());
        if let Some(name) = name {
            fields.push((name, value.strip_suffix("\r\n").unwrap_or(value).to_string()));
        }
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORM: &str = "application/x-www-form-urlencoded";

    fn form(body: &str) -> Result<Body, Refusal> {
        parse(Some(FORM), body.as_bytes())
    }

    #[test]
    fn the_page_form_is_read_field_by_field() {
        let body = "form=preferences&types=24h&types=overdue-24h&types=24h&frequency=weekly&weekday=fri&hour=18&locale=fr-ca\
                    &send_window=sat%2Csun+10%3A00-12%3A00%3B+mon-fri+17%3A00-20%3A00&stop=on";
        assert_eq!(
            form(body),
            Ok(Body::Form(Submitted {
                types: vec!["24h".into(), "overdue-24h".into()],
                frequency: Some(Frequency::Weekly),
                weekday: Some(Weekday::Fri),
                hour: Some(18),
                locale: Some(Some("fr-CA".into())),
                send_window: Some(Some("mon-fri 17:00-20:00; sat,sun 10:00-12:00".into())),
                stop: true,
            }))
        );
        let english = form("form=preferences&locale=&frequency=off&send_window=").unwrap();
        assert_eq!(
            english,
            Body::Form(Submitted {
                locale: Some(None),
                send_window: Some(None),
                frequency: Some(Frequency::Off),
                ..Submitted::default()
            })
        );
    }

    #[test]
    fn bad_fields_are_refused_with_one_line_each() {
        for (body, needle) in [
            ("form=preferences&hour=24", "`24` is not an hour"),
            ("form=preferences&hour=-1", "`-1` is not an hour"),
            ("form=preferences&frequency=hourly", "`hourly` is not a frequency"),
            ("form=preferences&weekday=someday", "`someday` is not a day"),
            ("form=preferences&locale=%3Cscript%3E", "is not a language tag"),
            ("form=preferences&hour=1&hour=2", "`hour` twice"),
            (
                "form=preferences&send_window=mon-fri+25%3A00-26%3A00",
                "like `mon-fri 07:00-21:00",
            ),
            ("hour=1", "not the preferences form"),
        ] {
            let refusal = form(body).unwrap_err();
            assert_eq!(refusal.status, 400, "{body}");
            assert!(refusal.reason.contains(needle), "{body}: {}", refusal.reason);
            assert!(!refusal.reason.contains('\n'), "{body}");
        }
        assert_eq!(parse(Some("text/plain"), b"form=preferences").unwrap_err().status, 415);
        assert_eq!(parse(None, b"form=preferences").unwrap_err().status, 415);
    }

    #[test]
    fn one_click_comes_urlencoded_or_multipart() {
        assert_eq!(form("List-Unsubscribe=One-Click"), Ok(Body::OneClick));
        let multipart_body =
            "--xyz\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--xyz--\r\n";
        assert_eq!(
            parse(Some("multipart/form-data; boundary=xyz"), multipart_body.as_bytes()),
            Ok(Body::OneClick)
        );
        assert!(parse(Some("multipart/form-data"), multipart_body.as_bytes()).is_err());
        assert!(form("List-Unsubscribe=Two-Clicks").is_err());
    }

    #[test]
    fn the_token_is_the_one_in_the_query() {
        assert_eq!(token("token=abc&x=1"), Ok("abc".to_string()));
        assert_eq!(token("").unwrap_err().status, 400);
        assert_eq!(token("token=").unwrap_err().status, 400);
        assert!(token("token=a&token=b").unwrap_err().reason.contains("more than one"));
    }
}
