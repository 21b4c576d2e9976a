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
select,input[type=text]{font:inherit;width:100%;box-sizing:border-box;min-height:2.75rem;padding:.25rem .5rem;border:1px solid #595959;border-radius:.375rem;background:#fff;color:#1a1a1a}\
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
    pub language: Language,
    pub email: String,
    pub token: String,
    pub notice: Option<Notice>,
    pub types: Vec<TypeOption>,
    pub schedule: Schedule,
    pub zone: String,
    pub locale: Option<String>,
    /// Their own send window as stored (`""`: the school's hours); `None`
    /// where the page has no such field.
    pub send_window: Option<String>,
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
    pub fn saved(stopped: bool, language: Language) -> Notice {
        let words = words(language);
        Notice {
            kind: "saved",
            text: if stopped { words.saved_stopped } else { words.saved }.to_string(),
        }
    }

    /// `reason` is one line, in English like every refusal's.
    pub fn error(reason: &str, language: Language) -> Notice {
        Notice {
            kind: "error",
            text: format!("{} {}.", words(language).nothing_saved, reason.trim_end_matches('.')),
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
    /// `daily`, `weekly` or `off`; `None` where there is no choice (a teacher's weekly report).
    pub frequency: Option<&'static str>,
    /// ISO: Monday 1 to Sunday 7.
    pub weekday: i32,
    pub hour: i32,
}

/// The page's language: the person's when the page speaks it, else English.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Language {
    #[serde(rename = "en")]
    English,
    #[serde(rename = "es")]
    Spanish,
    #[serde(rename = "fr")]
    French,
}

impl Language {
    /// `fr-CA` reads French, as the messages do.
    pub fn of(locale: Option<&str>) -> Language {
        match locale.and_then(|tag| tag.split('-').next()) {
            Some("es") => Language::Spanish,
            Some("fr") => Language::French,
            _ => Language::English,
        }
    }
}

/// Everything the page says, in one language.
#[derive(Serialize)]
struct Words {
    title: &'static str,
    for_whom: &'static str,
    reminders: &'static str,
    reminders_hint: &'static str,
    always_sent: &'static str,
    student_legend: &'static str,
    student_hint: &'static str,
    guardian_legend: &'static str,
    guardian_hint: &'static str,
    teacher_legend: &'static str,
    teacher_hint: &'static str,
    how_often: &'static str,
    every_day: &'static str,
    school_days: &'static str,
    weekly: &'static str,
    never: &'static str,
    day_when_weekly: &'static str,
    day: &'static str,
    time: &'static str,
    zone_hint: &'static str,
    language: &'static str,
    language_label: &'static str,
    send_window: &'static str,
    send_window_label: &'static str,
    send_window_hint: &'static str,
    stop: &'static str,
    stop_label: &'static str,
    stop_locked: &'static str,
    save: &'static str,
    saved: &'static str,
    saved_stopped: &'static str,
    nothing_saved: &'static str,
    weekdays: [&'static str; 7],
    /// `{amount} before the deadline`, `{amount} after a missed deadline`.
    before: &'static str,
    after: &'static str,
    days: (&'static str, &'static str),
    hours: (&'static str, &'static str),
    minutes: (&'static str, &'static str),
}

const ENGLISH: Words = Words {
    title: "Your email preferences",
    for_whom: "For",
    reminders: "Reminders",
    reminders_hint: "Which reminders you get about each deadline.",
    always_sent: "(the school always sends these)",
    student_legend: "Summary email",
    student_hint: "A summary of what is due, by email.",
    guardian_legend: "Updates on the students you follow",
    guardian_hint: "Their missing and upcoming work, by email.",
    teacher_legend: "Weekly course report",
    teacher_hint: "Who has not completed the week's work, by email.",
    how_often: "How often",
    every_day: "Every day",
    school_days: "Every school day (Monday to Friday)",
    weekly: "Once a week",
    never: "Never",
    day_when_weekly: "Day, when weekly",
    day: "Day",
    time: "Time",
    zone_hint: "In your time zone,",
    language: "Language",
    language_label: "The language of your email",
    send_window: "When email may reach you",
    send_window_label: "Days and hours",
    send_window_hint: "In your time zone, with English day names, such as mon-fri 16:00-20:00; sat,sun 10:00-12:00. \
                       Leave it empty to get email at the school's hours.",
    stop: "Stop all email",
    stop_label: "Send me no email at all",
    stop_locked: "Our mail to you stopped because it could not be delivered or was reported as unwanted. \
                  To get it again, ask the school.",
    save: "Save",
    saved: "Saved. Your email from us follows these choices from now on.",
    saved_stopped: "Saved. We will send you no email.",
    nothing_saved: "Nothing was saved:",
    weekdays: [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ],
    before: "{amount} before the deadline",
    after: "{amount} after a missed deadline",
    days: ("day", "days"),
    hours: ("hour", "hours"),
    minutes: ("minute", "minutes"),
};

const SPANISH: Words = Words {
    title: "Sus preferencias de correo",
    for_whom: "Para",
    reminders: "Recordatorios",
    reminders_hint: "Qué recordatorios recibe sobre cada fecha límite.",
    always_sent: "(la escuela siempre los envía)",
    student_legend: "Correo de resumen",
    student_hint: "Un resumen de lo que hay que entregar, por correo.",
    guardian_legend: "Novedades de los estudiantes que sigue",
    guardian_hint: "Sus trabajos pendientes y próximos, por correo.",
    teacher_legend: "Informe semanal del curso",
    teacher_hint: "Quién no ha completado el trabajo de la semana, por correo.",
    how_often: "Con qué frecuencia",
    every_day: "Todos los días",
    school_days: "Cada día de clase (de lunes a viernes)",
    weekly: "Una vez por semana",
    never: "Nunca",
    day_when_weekly: "Día, si es semanal",
    day: "Día",
    time: "Hora",
    zone_hint: "En su zona horaria,",
    language: "Idioma",
    language_label: "El idioma de sus correos",
    send_window: "Cuándo pueden llegarle los correos",
    send_window_label: "Días y horas",
    send_window_hint: "En su zona horaria, con los días en inglés (mon = lunes … sun = domingo), por ejemplo \
                       mon-fri 16:00-20:00; sat,sun 10:00-12:00. Déjelo vacío para recibirlos en el horario de la escuela.",
    stop: "Dejar de recibir correos",
    stop_label: "No enviarme ningún correo",
    stop_locked: "Dejamos de escribirle porque nuestros correos no se pudieron entregar o se marcaron como no \
                  deseados. Para volver a recibirlos, pídalo a la escuela.",
    save: "Guardar",
    saved: "Guardado. Desde ahora, le escribimos según estas preferencias.",
    saved_stopped: "Guardado. No le enviaremos ningún correo.",
    nothing_saved: "No se guardó nada:",
    weekdays: ["lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo"],
    before: "{amount} antes de la fecha límite",
    after: "{amount} después de una fecha límite vencida",
    days: ("día", "días"),
    hours: ("hora", "horas"),
    minutes: ("minuto", "minutos"),
};

const FRENCH: Words = Words {
    title: "Vos préférences de courriel",
    for_whom: "Pour",
    reminders: "Rappels",
    reminders_hint: "Les rappels que vous recevez pour chaque date limite.",
    always_sent: "(l'établissement les envoie toujours)",
    student_legend: "Courriel récapitulatif",
    student_hint: "Un récapitulatif de ce qui est à rendre, par courriel.",
    guardian_legend: "Nouvelles des élèves que vous suivez",
    guardian_hint: "Leurs travaux en retard et à venir, par courriel.",
    teacher_legend: "Rapport hebdomadaire du cours",
    teacher_hint: "Qui n'a pas terminé le travail de la semaine, par courriel.",
    how_often: "À quelle fréquence",
    every_day: "Tous les jours",
    school_days: "Chaque jour de classe (du lundi au vendredi)",
    weekly: "Une fois par semaine",
    never: "Jamais",
    day_when_weekly: "Jour, si hebdomadaire",
    day: "Jour",
    time: "Heure",
    zone_hint: "Dans votre fuseau horaire,",
    language: "Langue",
    language_label: "La langue de vos courriels",
    send_window: "Quand nos courriels peuvent vous parvenir",
    send_window_label: "Jours et heures",
    send_window_hint: "Dans votre fuseau horaire, avec les jours en anglais (mon = lundi … sun = dimanche), par exemple \
                       mon-fri 16:00-20:00; sat,sun 10:00-12:00. Laissez vide pour les horaires de l'établissement.",
    stop: "Ne plus recevoir de courriels",
    stop_label: "Ne m'envoyer aucun courriel",
    stop_locked: "Nos courriels se sont arrêtés parce qu'ils ne pouvaient pas vous être remis ou ont été \
                  signalés comme indésirables. Pour les recevoir de nouveau, adressez-vous à l'établissement.",
    save: "Enregistrer",
    saved: "Enregistré. Nos courriels suivent désormais ces choix.",
    saved_stopped: "Enregistré. Nous ne vous enverrons plus aucun courriel.",
    nothing_saved: "Rien n'a été enregistré :",
    weekdays: ["lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"],
    before: "{amount} avant la date limite",
    after: "{amount} après une date limite dépassée",
    days: ("jour", "jours"),
    hours: ("heure", "heures"),
    minutes: ("minute", "minutes"),
};

fn words(language: Language) -> &'static Words {
    match language {
        Language::English => &ENGLISH,
        Language::Spanish => &SPANISH,
        Language::French => &FRENCH,
    }
}

/// `1 day before the deadline`, `3 jours après une date limite dépassée`.
pub fn target_label(target: &Target, language: Language) -> String {
    let words = words(language);
    let count = target.count;
    let (count, (one, many)) = match target.unit {
        Unit::Hours if count.is_multiple_of(24) => (count / 24, words.days),
        Unit::Hours => (count, words.hours),
        Unit::Minutes => (count, words.minutes),
    };
    let amount = format!("{count} {}", if count == 1 { one } else { many });
    match target.side {
        Side::Before => words.before.replace("{amount}", &amount),
        Side::Overdue => words.after.replace("{amount}", &amount),
    }
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
    let language = view.map_or(Language::English, |view| view.language);
    let words = words(language);
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
    let weekdays: Vec<(&str, &str, i32)> = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .into_iter()
        .zip(words.weekdays)
        .zip(1..)
        .map(|((value, label), number)| (value, label, number))
        .collect();
    let hours: Vec<(i32, String)> = (0..24).map(|hour| (hour, format!("{hour:02}:00"))).collect();
    let frequencies = [
        (
            "daily",
            match view.map(|view| view.role) {
                Some("guardian") => words.school_days,
                _ => words.every_day,
            },
        ),
        ("weekly", words.weekly),
        ("off", words.never),
    ];
    #[derive(Serialize)]
    struct Page<'a> {
        title: &'a str,
        lang: Language,
        words: &'static Words,
        message: Option<&'a str>,
        view: Option<&'a View>,
        style: &'static str,
        languages: Vec<(String, String)>,
        weekdays: Vec<(&'static str, &'static str, i32)>,
        hours: Vec<(i32, String)>,
        frequencies: [(&'static str, &'static str); 3],
    }
    let page = Page {
        title,
        lang: language,
        words,
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
    render(words(view.language).title, Some(view), None)
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
            language: Language::English,
            email: "ann<script>@example.com".into(),
            token: "abc".into(),
            notice: Some(Notice::error("`<b>` is not an hour", Language::English)),
            types: vec![TypeOption {
                value: "24h".into(),
                label: "1 day before the deadline".into(),
                checked: true,
                required: false,
            }],
            schedule: Schedule {
                frequency: Some("weekly"),
                weekday: 5,
                hour: 7,
            },
            zone: "Europe/Paris".into(),
            locale: Some("fr-CA".into()),
            send_window: Some("mon-fri 16:00-20:00".into()),
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
        assert!(
            html.contains(r#"<option value="fr-CA" lang="fr-CA" selected>fr-CA</option>"#),
            "{html}"
        );
        assert!(html.contains(r#"<option value="weekly" selected>"#));
        assert!(html.contains(r#"value="mon-fri 16:00-20:00""#), "{html}");
        for id in [
            "type-24h",
            "frequency",
            "weekday",
            "hour",
            "locale",
            "send_window",
            "stop",
        ] {
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
        let label = |count, unit, side| target_label(&Target::new(count, unit, side).unwrap(), Language::English);
        assert_eq!(label(24, Unit::Hours, Side::Before), "1 day before the deadline");
        assert_eq!(label(2, Unit::Hours, Side::Before), "2 hours before the deadline");
        assert_eq!(label(72, Unit::Hours, Side::Overdue), "3 days after a missed deadline");
        assert_eq!(label(1, Unit::Minutes, Side::Before), "1 minute before the deadline");
        let french = target_label(&Target::new(48, Unit::Hours, Side::Overdue).unwrap(), Language::French);
        assert_eq!(french, "2 jours après une date limite dépassée");
    }

    #[test]
    fn the_page_speaks_the_persons_language() {
        let mut french = view();
        french.language = Language::of(Some("fr-CA"));
        french.notice = Some(Notice::error("`25` is not an hour", french.language));
        let html = preferences(&french);
        assert!(html.contains(r#"<html lang="fr">"#) && html.contains("Vos préférences de courriel"));
        assert!(
            html.contains(r#"<option value="fri" selected>vendredi</option>"#),
            "{html}"
        );
        assert!(
            html.contains("Rien n&#x27;a été enregistré") || html.contains("Rien n'a été enregistré"),
            "{html}"
        );
        for words in [&ENGLISH, &SPANISH, &FRENCH] {
            assert!(words.before.contains("{amount}") && words.after.contains("{amount}"));
        }
        assert_eq!(Language::of(Some("es-419")), Language::Spanish);
        assert_eq!(Language::of(Some("de")), Language::English);
    }
}
