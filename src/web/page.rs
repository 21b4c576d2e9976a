//! The page's HTML: one minijinja template, every value escaped, styled by
//! one inline sheet that the Content-Security-Policy names by its hash.

use std::sync::OnceLock;

use minijinja::Environment;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::schedule::{Side, Target, Unit};

const TEMPLATE: &str = include_str!("page.html");

/// Dark text on white, and a blue whose contrast with white is over 7:1,
/// so every pairing passes WCAG AA; focus is a thick ring; one column that
/// fits a phone; controls at least 44 px high for a finger.
const STYLE: &str = "\
:root{color-scheme:light}\
body{margin:0;font:1.0625rem/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif;color:#1a1a1a;background:#fff}\
main{max-width:36rem;margin:0 auto;padding:1rem}\
h1{font-size:1.5rem;margin:.5rem 0 1rem}\
fieldset{border:1px solid #6b6b6b;border-radius:.5rem;margin:0 0 1rem;padding:.75rem 1rem}\
legend{font-weight:700;padding:0 .25rem}\
.hint{color:#3d3d3d;margin:.25rem 0 .5rem;font-size:.95rem}\
.check{display:flex;align-items:center;gap:.6rem;min-height:2.75rem}\
.check input{width:1.5rem;height:1.5rem;margin:0;flex:none}\
.field{margin:.5rem 0}\
.field label{display:block;font-weight:600;margin-bottom:.25rem}\
select{font:inherit;width:100%;min-height:2.75rem;padding:.25rem .5rem;border:1px solid #595959;border-radius:.375rem;background:#fff;color:#1a1a1a}\
button{font:inherit;font-weight:700;min-height:2.75rem;width:100%;padding:.5rem 1rem;border:0;border-radius:.375rem;background:#0a4fa8;color:#fff;cursor:pointer}\
input:focus-visible,select:focus-visible,button:focus-visible{outline:3px solid #b3530b;outline-offset:2px}\
.notice{padding:.75rem 1rem;border-radius:.5rem;border:2px solid}\
.saved{background:#eaf6ec;border-color:#1d6b2f;color:#0f3d1a}\
.error{background:#fdecea;border-color:#a3231a;color:#5c130e}\
.who{overflow-wrap:anywhere}";

/// The policy of every response: nothing loads but the one sheet above,
/// the form posts only to this page, and no other page may frame it.
pub fn content_security_policy() -> &'static str {
    static POLICY: OnceLock<String> = OnceLock::new();
    POLICY.get_or_init(|| {
        let hash = data_encoding::BASE64.encode(&Sha256::digest(STYLE.as_bytes()));
        format!(
            "default-src 'none'; style-src 'sha256-{hash}'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
        )
    })
}

/// What the page shows of one person.
#[derive(Serialize)]
pub struct View {
    pub role: &'static str,
    pub email: String,
    pub token: String,
    pub notice: Option<Notice>,
    pub types: Vec<TypeOption>,
    pub schedule: Schedule,
    pub zone: String,
    pub locale: Option<String>,
    pub stopped: bool,
    /// Stopped for a bounce or a complaint: not theirs to undo here.
    pub stop_locked: bool,
}

#[derive(Serialize)]
pub struct Notice {
    kind: &'static str,
    text: String,
}

impl Notice {
    pub fn saved(stopped: bool) -> Notice {
        Notice {
            kind: "saved",
            text: match stopped {
                true => "Saved. We will send you no email.",
                false => "Saved. Your email from us follows these choices from now on.",
            }
            .to_string(),
        }
    }

    pub fn error(reason: &str) -> Notice {
        Notice {
            kind: "error",
            text: format!("Nothing was saved: {}.", reason.trim_end_matches('.')),
        }
    }
}

#[derive(Serialize)]
pub struct TypeOption {
    pub value: String,
    pub label: String,
    pub checked: bool,
    pub required: bool,
}

#[derive(Serialize)]
pub struct Schedule {
    pub legend: &'static str,
    pub hint: &'static str,
    /// `daily`, `weekly` or `off`; `None` where there is no choice (a teacher's weekly report).
    pub frequency: Option<&'static str>,
    /// ISO: Monday 1 to Sunday 7.
    pub weekday: i32,
    pub hour: i32,
}

/// `24 hours before the deadline`, `3 days after a missed deadline`.
pub fn target_label(target: &Target) -> String {
    let count = target.count;
    let amount = match target.unit {
        Unit::Hours if count.is_multiple_of(24) => plural(count / 24, "day", "days"),
        Unit::Hours => plural(count, "hour", "hours"),
        Unit::Minutes => plural(count, "minute", "minutes"),
    };
    match target.side {
        Side::Before => format!("{amount} before the deadline"),
        Side::Overdue => format!("{amount} after a missed deadline"),
    }
}

fn plural(count: u32, one: &str, many: &str) -> String {
    format!("{count} {}", if count == 1 { one } else { many })
}

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        // The name ends in .html: minijinja escapes every value put in it.
        env.add_template("page.html", TEMPLATE)
            .unwrap_or_else(|error| unreachable!("the built-in page parses (a unit test renders it): {error}"));
        env
    })
}

fn render(title: &str, view: Option<&View>, message: Option<&str>) -> String {
    let languages: Vec<(String, String)> = {
        let mut languages = vec![
            (String::new(), "English".to_string()),
            ("es".to_string(), "Español".to_string()),
            ("fr".to_string(), "Français".to_string()),
        ];
        if let Some(own) = view.and_then(|view| view.locale.clone())
            && !languages.iter().any(|(tag, _)| *tag == own)
        {
            languages.push((own.clone(), own));
        }
        languages
    };
    let weekdays = [
        ("mon", "Monday", 1),
        ("tue", "Tuesday", 2),
        ("wed", "Wednesday", 3),
        ("thu", "Thursday", 4),
        ("fri", "Friday", 5),
        ("sat", "Saturday", 6),
        ("sun", "Sunday", 7),
    ];
    let hours: Vec<(i32, String)> = (0..24).map(|hour| (hour, format!("{hour:02}:00"))).collect();
    let frequencies = match view.map(|view| view.role) {
        Some("guardian") => [
            ("daily", "Every school day (Monday to Friday)"),
            ("weekly", "Once a week"),
            ("off", "Never"),
        ],
        _ => [("daily", "Every day"), ("weekly", "Once a week"), ("off", "Never")],
    };
    #[derive(Serialize)]
    struct Page<'a> {
        title: &'a str,
        message: Option<&'a str>,
        view: Option<&'a View>,
        style: &'static str,
        languages: Vec<(String, String)>,
        weekdays: [(&'static str, &'static str, i32); 7],
        hours: Vec<(i32, String)>,
        frequencies: [(&'static str, &'static str); 3],
    }
    let page = Page {
        title,
        message,
        view,
        style: STYLE,
        languages,
        weekdays,
        hours,
        frequencies,
    };
    environment()
        .get_template("page.html")
        .and_then(|template| template.render(minijinja::value::Serde(&page)))
        .unwrap_or_else(|error| {
            // Only a bug of ours reaches here: the reader still gets a page.
            crate::log::warning!("cannot render the preferences page: {error}");
            "<!doctype html><title>Error</title><p>Something went wrong on our side.</p>".to_string()
        })
}

/// The preferences form of one person.
pub fn preferences(view: &View) -> String {
    render("Your email preferences", Some(view), None)
}

/// A page that says one thing, such as why a link does not work.
pub fn plain(status: u16, reason: &str) -> String {
    let title = match status {
        500 => "Something went wrong",
        404 => "Nobody here",
        _ => "This did not work",
    };
    let mut sentence = reason.to_string();
    if let Some(first) = sentence.get(..1) {
        sentence.replace_range(..1, &first.to_uppercase());
    }
    if !sentence.ends_with('.') {
        sentence.push('.');
    }
    render(title, None, Some(&sentence))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> View {
        View {
            role: "student",
            email: "ann<script>@example.com".into(),
            token: "abc".into(),
            notice: Some(Notice::error("`<b>` is not an hour")),
            types: vec![TypeOption {
                value: "24h".into(),
                label: "1 day before the deadline".into(),
                checked: true,
                required: false,
            }],
            schedule: Schedule {
                legend: "Summary email",
                hint: "A summary.",
                frequency: Some("weekly"),
                weekday: 5,
                hour: 7,
            },
            zone: "Europe/Paris".into(),
            locale: Some("fr-CA".into()),
            stopped: false,
            stop_locked: false,
        }
    }

    #[test]
    fn the_page_escapes_what_it_shows_and_labels_every_control() {
        let html = preferences(&view());
        assert!(html.contains("ann&lt;script&gt;@example.com"), "{html}");
        assert!(html.contains("&lt;b&gt;"), "{html}");
        assert!(!html.contains("<script>") && !html.contains("<b>"));
        assert!(html.contains(r#"<option value="fri" selected>Friday</option>"#));
        assert!(html.contains(r#"<option value="7" selected>07:00</option>"#));
        assert!(html.contains(r#"<option value="fr-CA" selected>fr-CA</option>"#));
        assert!(html.contains(r#"<option value="weekly" selected>"#));
        for id in ["type-24h", "frequency", "weekday", "hour", "locale", "stop"] {
            assert!(html.contains(&format!("id=\"{id}\"")), "{id}");
            assert!(html.contains(&format!("<label for=\"{id}\"")), "a label for {id}");
        }
    }

    #[test]
    fn the_policy_names_the_sheet_the_page_carries() {
        let policy = content_security_policy();
        let hash = data_encoding::BASE64.encode(&Sha256::digest(STYLE.as_bytes()));
        assert!(policy.contains(&format!("'sha256-{hash}'")));
        assert!(plain(403, "this link is not valid").contains(&format!("<style>{STYLE}</style>")));
    }

    #[test]
    fn targets_read_as_people_say_them() {
        let label = |count, unit, side| target_label(&Target::new(count, unit, side).unwrap());
        assert_eq!(label(24, Unit::Hours, Side::Before), "1 day before the deadline");
        assert_eq!(label(2, Unit::Hours, Side::Before), "2 hours before the deadline");
        assert_eq!(label(72, Unit::Hours, Side::Overdue), "3 days after a missed deadline");
        assert_eq!(label(1, Unit::Minutes, Side::Before), "1 minute before the deadline");
    }
}
