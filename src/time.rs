//! Time: the run's clock (the system's, the database server's, or frozen by
//! `--now`), and instants shown to people in a student's zone and as time left.

use chrono::{DateTime, Datelike, Timelike, Utc};
use chrono_tz::Tz;

/// The run's clock: the system clock, or frozen at `--now` so that tests and
/// operators can place a run exactly anywhere in time.
#[derive(Debug, Clone)]
pub struct Clock {
    frozen: Option<DateTime<Utc>>,
    /// How far the database server's clock is ahead of this host's.
    offset: chrono::Duration,
}

impl Clock {
    pub fn new(now: Option<DateTime<Utc>>) -> Clock {
        Clock {
            frozen: now,
            offset: chrono::Duration::zero(),
        }
    }

    /// Reads time from the database server's clock from now on (unless
    /// `--now` froze it), so that cron hosts whose clocks disagree still agree
    /// on when a lease or a retry is due. `server_now` is `None` on SQLite,
    /// where every run reads the same host's clock anyway.
    pub fn follow(&mut self, server_now: Option<DateTime<Utc>>) {
        if let (None, Some(server_now)) = (self.frozen, server_now) {
            self.offset = server_now - Utc::now();
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.frozen.unwrap_or_else(|| Utc::now() + self.offset)
    }
}

/// `2025-09-27 16:00 PDT`: for tables.
pub fn local_short(instant: DateTime<Utc>, zone: Tz) -> String {
    // Written field by field: a strftime pattern is parsed again on every
    // call, a visible share of listing a large window (BENCHMARKS.md).
    let local = instant.with_timezone(&zone);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} {}",
        local.year(),
        local.month(),
        local.day(),
        local.hour(),
        local.minute(),
        local.offset()
    )
}

/// `Sat 27 Sep 2025 16:00 PDT`: for messages.
pub fn local_long(instant: DateTime<Utc>, zone: Tz) -> String {
    instant.with_timezone(&zone).format("%a %d %b %Y %H:%M %Z").to_string()
}

/// The old deadline of a moved one, as short as tells them apart:
/// `Fri 17 Jan`, or `Fri 17 Jan 14:00` on the same day.
pub fn local_moved_from(previous: DateTime<Utc>, now_due: DateTime<Utc>, zone: Tz) -> String {
    let (previous, now_due) = (previous.with_timezone(&zone), now_due.with_timezone(&zone));
    if previous.date_naive() == now_due.date_naive() {
        previous.format("%a %-d %b %H:%M").to_string()
    } else if previous.year() == now_due.year() {
        previous.format("%a %-d %b").to_string()
    } else {
        previous.format("%a %-d %b %Y").to_string()
    }
}

/// RFC 3339 in UTC with a `Z`, to the second: the one form of every time in
/// JSON output.
pub fn utc(instant: DateTime<Utc>) -> String {
    instant.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// This machine's time zone (`TZ`, given by the configuration, else the
/// system's), for tables that concern no student; UTC when it cannot be told.
pub fn machine_zone(tz: Option<&str>) -> Tz {
    tz.and_then(|name| name.trim_start_matches(':').parse().ok())
        .or_else(|| iana_time_zone::get_timezone().ok()?.parse().ok())
        .unwrap_or(Tz::UTC)
}

/// `instant + duration`, held at the ends of time instead of overflowing.
pub fn saturating_add(instant: DateTime<Utc>, duration: chrono::Duration) -> DateTime<Utc> {
    instant
        .checked_add_signed(duration)
        .unwrap_or(if duration < chrono::Duration::zero() {
            DateTime::<Utc>::MIN_UTC
        } else {
            DateTime::<Utc>::MAX_UTC
        })
}

/// How a person reads the times in their messages: in their language
/// (weekday and month names, a 12- or 24-hour clock as the locale has it,
/// durations in words), from their BCP 47 locale. English, as before
/// locales, when they have none or one chrono does not know.
#[derive(Debug, Clone, Copy)]
pub struct Writing {
    locale: Option<chrono::Locale>,
    twelve_hour: bool,
    words: &'static DurationWords,
}

/// The words of a duration, singular and plural.
#[derive(Debug)]
struct DurationWords {
    day: (&'static str, &'static str),
    hour: (&'static str, &'static str),
    minute: (&'static str, &'static str),
    under_a_minute: &'static str,
}

const ENGLISH_WORDS: DurationWords = DurationWords {
    day: ("day", "days"),
    hour: ("hour", "hours"),
    minute: ("minute", "minutes"),
    under_a_minute: "less than a minute",
};
const SPANISH_WORDS: DurationWords = DurationWords {
    day: ("día", "días"),
    hour: ("hora", "horas"),
    minute: ("minuto", "minutos"),
    under_a_minute: "menos de un minuto",
};
const FRENCH_WORDS: DurationWords = DurationWords {
    day: ("jour", "jours"),
    hour: ("heure", "heures"),
    minute: ("minute", "minutes"),
    under_a_minute: "moins d'une minute",
};

impl Writing {
    pub const ENGLISH: Writing = Writing {
        locale: None,
        twelve_hour: false,
        words: &ENGLISH_WORDS,
    };

    /// For a locale such as `fr-CA`, `es` or `en-US`: its region's form when
    /// chrono has it (`fr_CA`), else the language's home one (`fr_FR`).
    pub fn for_locale(tag: Option<&str>) -> Writing {
        let Some(tag) = tag else { return Writing::ENGLISH };
        let mut parts = tag.split('-');
        let language = parts.next().unwrap_or_default().to_ascii_lowercase();
        let region = parts.find(|part| part.len() == 2).map(str::to_ascii_uppercase);
        let words = match language.as_str() {
            "es" => &SPANISH_WORDS,
            "fr" => &FRENCH_WORDS,
            _ => &ENGLISH_WORDS,
        };
        if language == "en" && region.is_none() {
            return Writing::ENGLISH;
        }
        let candidates = [
            region.map(|region| format!("{language}_{region}")),
            Some(format!("{language}_{}", language.to_ascii_uppercase())),
        ];
        let Some(locale) = candidates
            .into_iter()
            .flatten()
            .find_map(|name| chrono::Locale::try_from(name.as_str()).ok())
        else {
            return Writing {
                words,
                ..Writing::ENGLISH
            };
        };
        // The locale's own time form says its clock: 13:00 or 01:00 PM.
        let one_pm = chrono::NaiveDate::from_ymd_opt(2025, 1, 1)
            .and_then(|day| day.and_hms_opt(13, 0, 0))
            .map(|at| at.and_utc().format_localized("%X", locale).to_string())
            .unwrap_or_default();
        Writing {
            locale: Some(locale),
            twelve_hour: !one_pm.contains("13"),
            words,
        }
    }

    /// `Sat 27 Sep 2025 16:00 PDT`, `sam. 27 sept. 2025 16:00 CEST`.
    pub fn long(&self, instant: DateTime<Utc>, zone: Tz) -> String {
        let local = instant.with_timezone(&zone);
        match self.locale {
            None => local_long(instant, zone),
            Some(locale) if self.twelve_hour => local.format_localized("%a %d %b %Y %I:%M %p %Z", locale).to_string(),
            Some(locale) => local.format_localized("%a %d %b %Y %H:%M %Z", locale).to_string(),
        }
    }

    /// `2025-09-27 16:00 PDT`, or with a 12-hour clock `2025-09-27 04:00 PM PDT`.
    pub fn short(&self, instant: DateTime<Utc>, zone: Tz) -> String {
        match self.locale {
            Some(locale) if self.twelve_hour => instant
                .with_timezone(&zone)
                .format_localized("%Y-%m-%d %I:%M %p %Z", locale)
                .to_string(),
            _ => local_short(instant, zone),
        }
    }

    /// See [`local_moved_from`]; names in the person's language.
    pub fn moved_from(&self, previous: DateTime<Utc>, now_due: DateTime<Utc>, zone: Tz) -> String {
        let Some(locale) = self.locale else {
            return local_moved_from(previous, now_due, zone);
        };
        let (previous, now_due) = (previous.with_timezone(&zone), now_due.with_timezone(&zone));
        let time = if self.twelve_hour { "%I:%M %p" } else { "%H:%M" };
        let pattern = if previous.date_naive() == now_due.date_naive() {
            format!("%a %-d %b {time}")
        } else if previous.year() == now_due.year() {
            "%a %-d %b".to_string()
        } else {
            "%a %-d %b %Y".to_string()
        };
        previous.format_localized(&pattern, locale).to_string()
    }

    /// A local date, `Thu 25 Sep 2025`, `jeu 25 sep 2025`.
    pub fn date(&self, date: chrono::NaiveDate) -> String {
        match self.locale {
            None => date.format("%a %d %b %Y").to_string(),
            Some(locale) => date.format_localized("%a %d %b %Y", locale).to_string(),
        }
    }

    /// See [`human_duration`]; in the person's language (English, Spanish
    /// or French words).
    pub fn duration(&self, duration: chrono::Duration) -> String {
        duration_in(duration, self.words)
    }
}

/// `1 day 2 hours`, `2 hours`, `45 minutes`, `less than a minute`; two units at most.
pub fn human_duration(duration: chrono::Duration) -> String {
    duration_in(duration, &ENGLISH_WORDS)
}

fn duration_in(duration: chrono::Duration, words: &DurationWords) -> String {
    // To the nearest minute: a run a few seconds after the hour still says "1 day".
    let minutes = ((duration.num_seconds() + 30) / 60).max(0);
    let (days, hours, minutes) = (minutes / 1440, minutes % 1440 / 60, minutes % 60);
    let unit = |n: i64, (one, many): (&str, &str)| format!("{n} {}", if n == 1 { one } else { many });
    let parts: Vec<String> = [(days, words.day), (hours, words.hour), (minutes, words.minute)]
        .into_iter()
        .skip_while(|(n, _)| *n == 0)
        .take(2)
        .filter(|(n, _)| *n > 0)
        .map(|(n, name)| unit(n, name))
        .collect();
    if parts.is_empty() {
        words.under_a_minute.to_string()
    } else {
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_in_the_persons_language_and_clock() {
        let at: DateTime<Utc> = "2025-09-27T14:00:00Z".parse().unwrap();
        let paris: Tz = "Europe/Paris".parse().unwrap();
        let english = Writing::for_locale(None);
        assert_eq!(english.long(at, paris), "Sat 27 Sep 2025 16:00 CEST");
        let french = Writing::for_locale(Some("fr-CA"));
        assert_eq!(french.long(at, paris), "sam 27 sep 2025 16:00 CEST");
        assert_eq!(french.duration(chrono::Duration::minutes(26 * 60)), "1 jour 2 heures");
        let spanish = Writing::for_locale(Some("es"));
        assert!(
            spanish.long(at, paris).starts_with("sáb 27 sep 2025 16:00"),
            "{}",
            spanish.long(at, paris)
        );
        assert_eq!(spanish.duration(chrono::Duration::seconds(10)), "menos de un minuto");
        let american = Writing::for_locale(Some("en-US"));
        assert!(
            american.long(at, paris).contains("04:00 PM"),
            "{}",
            american.long(at, paris)
        );
        assert_eq!(
            Writing::for_locale(Some("xx-YY")).long(at, paris),
            english.long(at, paris)
        );
    }

    #[test]
    fn the_clock_follows_the_database_server_unless_now_is_given() {
        let ahead = Utc::now() + chrono::Duration::hours(1);
        let mut clock = Clock::new(None);
        clock.follow(Some(ahead));
        let skew = clock.now() - Utc::now();
        assert!(
            (skew - chrono::Duration::hours(1)).abs() < chrono::Duration::seconds(5),
            "{skew}"
        );

        let given: DateTime<Utc> = "2030-03-01T12:00:00Z".parse().unwrap();
        let mut frozen = Clock::new(Some(given));
        frozen.follow(Some(ahead));
        assert_eq!(frozen.now(), given);

        let mut sqlite = Clock::new(None);
        sqlite.follow(None);
        assert!((sqlite.now() - Utc::now()).abs() < chrono::Duration::seconds(5));
    }

    #[test]
    fn local_times_carry_the_zone_abbreviation() {
        let due: DateTime<Utc> = "2025-09-27T23:00:00Z".parse().unwrap();
        let la: Tz = "America/Los_Angeles".parse().unwrap();
        assert_eq!(local_long(due, la), "Sat 27 Sep 2025 16:00 PDT");
        assert_eq!(local_short(due, la), "2025-09-27 16:00 PDT");
    }

    #[test]
    fn adding_to_an_instant_stops_at_the_ends_of_time() {
        let now: DateTime<Utc> = "2030-03-01T12:00:00Z".parse().unwrap();
        let long = chrono::Duration::MAX;
        assert_eq!(saturating_add(now, long), DateTime::<Utc>::MAX_UTC);
        assert_eq!(saturating_add(now, -long), DateTime::<Utc>::MIN_UTC);
        assert_eq!(
            saturating_add(now, chrono::Duration::hours(1)).to_rfc3339(),
            "2030-03-01T13:00:00+00:00"
        );
    }

    #[test]
    fn durations_read_naturally() {
        let d = chrono::Duration::minutes;
        assert_eq!(human_duration(d(0)), "less than a minute");
        assert_eq!(human_duration(d(24 * 60) - chrono::Duration::seconds(5)), "1 day");
        assert_eq!(human_duration(d(1)), "1 minute");
        assert_eq!(human_duration(d(120)), "2 hours");
        assert_eq!(human_duration(d(24 * 60 + 61)), "1 day 1 hour");
        assert_eq!(human_duration(d(24 * 60 + 1)), "1 day");
    }
}
