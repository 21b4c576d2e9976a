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

/// `1 day 2 hours`, `2 hours`, `45 minutes`, `less than a minute`; two units at most.
pub fn human_duration(duration: chrono::Duration) -> String {
    // To the nearest minute: a run a few seconds after the hour still says "1 day".
    let minutes = ((duration.num_seconds() + 30) / 60).max(0);
    let (days, hours, minutes) = (minutes / 1440, minutes % 1440 / 60, minutes % 60);
    let unit = |n: i64, name: &str| format!("{n} {name}{}", if n == 1 { "" } else { "s" });
    let parts: Vec<String> = [(days, "day"), (hours, "hour"), (minutes, "minute")]
        .into_iter()
        .skip_while(|(n, _)| *n == 0)
        .take(2)
        .filter(|(n, _)| *n > 0)
        .map(|(n, name)| unit(n, name))
        .collect();
    if parts.is_empty() {
        "less than a minute".to_string()
    } else {
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
