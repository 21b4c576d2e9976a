//! Send windows (issue 32): no message reaches anyone outside their hours,
//! and a reminder before a deadline is never lost nor late because of them.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, Duration, NaiveTime, SecondsFormat, TimeZone, Timelike, Utc, Weekday};
use chrono_tz::Tz;

use crate::common::smtp::SmtpServer;
use crate::common::{TestEnv, on_both_backends};

const SCHOOL_WINDOW: &str = "mon-fri 07:00-21:00; sat,sun 09:00-20:00";
/// The New York student's own: later and shorter at the weekend.
const OWN_WINDOW: &str = "mon-fri 07:00-21:00; sat,sun 10:00-18:00";

/// Whether `at` falls in the window on `zone`'s clock, worked out here and
/// not by the program: weekdays 07:00–21:00, weekends `weekend` hours.
fn is_open(at: DateTime<Utc>, zone: Tz, weekend: (u32, u32)) -> bool {
    let local = at.with_timezone(&zone);
    let hour = local.hour();
    match local.weekday() {
        Weekday::Sat | Weekday::Sun => (weekend.0..weekend.1).contains(&hour),
        _ => (7..21).contains(&hour),
    }
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The instant of `hh:mm` local on `date` (2025-03-DD) in `zone`.
fn local(zone: Tz, day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
    zone.from_local_datetime(
        &chrono::NaiveDate::from_ymd_opt(2025, 3, day)
            .unwrap()
            .and_time(NaiveTime::from_hms_opt(hour, minute, 0).unwrap()),
    )
    .single()
    .unwrap()
    .with_timezone(&Utc)
}

on_both_backends! {
    fn a_cron_sweep_over_three_days_sends_each_reminder_once_inside_the_window(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        env.set_var("REMINDERS_SEND_WINDOW", SCHOOL_WINDOW);
        let paris: Tz = "Europe/Paris".parse().unwrap();
        let new_york: Tz = "America/New_York".parse().unwrap();
        let students = [("paris@x.test", paris, (9, 20)), ("ny@x.test", new_york, (10, 18))];
        env.add_user("paris@x.test", "Europe/Paris");
        env.add_user("ny@x.test", "America/New_York");
        let set = env.json(&["user", "set", "ny@x.test", "--send-window", OWN_WINDOW]);
        assert_eq!(set["send_window"], OWN_WINDOW);
        // Sunday 30 March 2025 is the day Paris moves its clocks forward.
        let mut deadlines = BTreeMap::new();
        for (email, zone, _) in students {
            for day in [30, 31] {
                for (hour, minute) in [(6, 0), (7, 30), (23, 30)] {
                    let title = format!("{email} {day} {hour:02}:{minute:02}");
                    let due = local(zone, day, hour, minute);
                    env.add_assignment(email, &title, &rfc3339(due));
                    deadlines.insert(title, (email, zone, due));
                }
            }
        }
        // Every 10 minutes from Saturday 00:00 UTC to Tuesday noon UTC.
        let start: DateTime<Utc> = "2025-03-29T00:00:00Z".parse().unwrap();
        let mut sent_at: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
        let mut seen = 0;
        for step in 0..(84 * 6) {
            let now = start + Duration::minutes(10 * step);
            let run = env.run(&[
                "send", "--unit", "hours", "--targets", "24,2", "--overdue", "2", "--now", &rfc3339(now),
            ]);
            assert_eq!(run.code(), 0, "{}", run.describe());
            let received = smtp.received();
            for message in &received[seen..] {
                let id = message.header("Message-ID").unwrap();
                assert!(sent_at.insert(id.clone(), now).is_none(), "{id} arrived twice");
            }
            seen = received.len();
        }
        // Each message, by its Message-ID (the reminder's id), to its assignment.
        let rows = env.texts(
            "SELECT CAST(r.id AS TEXT) || '|' || a.title || '|' || r.reminder_type || '|' || r.status || '|' || \
             COALESCE(r.last_error, '') AS v FROM reminders r JOIN assignments a ON a.id = r.assignment_id",
        );
        let mut by_assignment: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for row in rows.into_iter().flatten() {
            let parts: Vec<&str> = row.split('|').collect();
            let [id, title, kind, status, error] = parts[..] else { panic!("{row}") };
            let (email, zone, due) = deadlines[title];
            let weekend = students.iter().find(|(e, _, _)| *e == email).unwrap().2;
            match status {
                "sent" => {
                    let at = sent_at
                        .iter()
                        .find(|(message_id, _)| message_id.contains(id))
                        .map(|(_, at)| *at)
                        .unwrap_or_else(|| panic!("{title} {kind} is recorded sent but never arrived"));
                    assert!(is_open(at, zone, weekend), "{title} {kind} sent at {at}, outside the window");
                    if !kind.starts_with("overdue") {
                        assert!(at < due, "{title} {kind} sent at {at}, after its deadline {due}");
                    }
                    assert!(by_assignment.entry(title.to_string()).or_default().insert(kind.to_string()));
                }
                "skipped" => assert!(error.starts_with("superseded by the nearer"), "{title} {kind}: {error}"),
                other => panic!("{title} {kind} is {other}: {error}"),
            }
        }
        assert_eq!(sent_at.len(), by_assignment.values().map(BTreeSet::len).sum::<usize>());
        for title in deadlines.keys() {
            let kinds = by_assignment.get(title).cloned().unwrap_or_default();
            assert!(kinds.contains("overdue-2h"), "{title}: no overdue notice ({kinds:?})");
            assert!(kinds.contains("24h") || kinds.contains("2h"), "{title}: no reminder before it ({kinds:?})");
        }
        // The 2h reminder of Sunday 06:00 in Paris is planned at 04:00, and the
        // window opens at 09:00: it goes in the last open hour of Saturday.
        let early = sent_at
            .values()
            .copied()
            .filter(|at| at.with_timezone(&paris).day() == 29)
            .filter(|at| at.with_timezone(&paris).hour() >= 18)
            .count();
        assert!(early >= 2, "the Sunday-morning 2h reminders went early on Saturday evening ({early})");
    }

    fn due_shows_a_shifted_send_and_why(env: &TestEnv) {
        env.add_user("early@x.test", "UTC");
        env.add_assignment("early@x.test", "Lab", "2025-03-26T06:00:00Z");
        env.set_var("REMINDERS_SEND_WINDOW", SCHOOL_WINDOW);
        // Planned at 04:00 Wednesday; the window opens at 07:00, after the deadline.
        let at_planned = env.json(&["due", "--unit", "hours", "--targets", "2", "--now", "2025-03-26T04:00:00Z"]);
        assert_eq!(at_planned[0]["action"], "wait", "{at_planned}");
        assert!(at_planned[0]["send_window"].as_str().unwrap().contains("opens only after the deadline"), "{at_planned}");
        let early = env.json(&["due", "--unit", "hours", "--targets", "2", "--now", "2025-03-25T20:00:00Z"]);
        assert_eq!(early[0]["action"], "send", "{early}");
        let table = env.ok(&["due", "--unit", "hours", "--targets", "2", "--now", "2025-03-25T20:00:00Z"]);
        assert!(table.contains("goes before it closes"), "{table}");
        let bad = env.run(&["due", "--unit", "hours", "--targets", "2", "--send-window", "weekdays 9-5"]);
        assert_eq!(bad.code(), 2, "{}", bad.describe());
        assert!(bad.stderr().contains("is not a day"), "{}", bad.describe());
    }

    fn a_message_claimed_while_the_window_is_closed_waits_without_an_attempt(env: &TestEnv) {
        env.add_user("late@x.test", "UTC");
        env.add_assignment("late@x.test", "Essay", "2025-03-27T16:00:00Z");
        env.add_assignment("late@x.test", "Lab", "2025-03-26T20:00:00Z");
        // Scheduled at 12:00 and 18:00 by runs without a window while the relay is down...
        env.use_smtp("smtp://127.0.0.1:9");
        for now in ["2025-03-26T16:00:00Z", "2025-03-26T18:00:00Z"] {
            env.run(&["send", "--unit", "hours", "--targets", "24,2", "--now", now]);
        }
        assert_eq!(env.count("SELECT count(*) AS n FROM reminders WHERE status = 'pending' AND attempts = 0"), 2);
        // ...then claimed by a run after the student chose hours that are closed by then.
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        env.ok(&["user", "set", "late@x.test", "--send-window", "daily 13:00-17:00"]);
        let closed = env.json(&["send", "--unit", "hours", "--targets", "24,2", "--now", "2025-03-26T18:05:00Z"]);
        assert_eq!(smtp.received().len(), 0);
        assert_eq!(closed["waiting_for_window"], 1, "{closed}");
        let states = env.texts(
            "SELECT a.title || ' ' || r.status || ' ' || CAST(r.attempts AS TEXT) || ' ' || r.last_error AS v \
             FROM reminders r JOIN assignments a ON a.id = r.assignment_id ORDER BY a.title",
        );
        assert_eq!(
            states.into_iter().flatten().collect::<Vec<_>>(),
            [
                // Its deadline is tomorrow 16:00: it waits for 13:00, no attempt counted.
                "Essay pending 0 outside the send window: waits for it to open at 2025-03-27 13:00 UTC",
                // The window opens again only after this deadline.
                "Lab skipped 0 the send window stays closed until after the deadline",
            ]
        );
        // A day late for its slot, so the delivery window is widened to let it go.
        let late = ["--delivery-window", "1d"];
        let early = env.json(&[&["send", "--unit", "hours", "--targets", "24,2", "--now", "2025-03-27T12:55:00Z"][..], &late].concat());
        assert_eq!((early["sent"].as_u64(), smtp.received().len()), (Some(0), 0), "{early}");
        let opened = env.json(&[&["send", "--unit", "hours", "--targets", "24,2", "--now", "2025-03-27T13:00:00Z"][..], &late].concat());
        assert_eq!((opened["sent"].as_u64(), smtp.received().len()), (Some(1), 1), "{opened}");
    }
}

on_both_backends! {
    fn summaries_and_digests_wait_for_the_opening(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        env.set_var("REMINDERS_SEND_WINDOW", SCHOOL_WINDOW);
        env.add_user("owl@x.test", "UTC");
        env.add_assignment("owl@x.test", "Thesis", "2025-04-05T12:00:00Z");
        // A summary hour after the window closes (21:00): it goes when it opens.
        env.ok(&["user", "set", "owl@x.test", "--summary-hour", "22"]);
        env.ok(&["guardian", "add", "--student", "owl@x.test", "--email", "mum@x.test", "--hour", "18", "--send-window", "daily 19:00-20:00"]);
        env.in_use_since("2000-01-01T00:00:00Z");
        env.execute("UPDATE guardians SET created_at = '2000-01-01T00:00:00.000000Z'");
        // Tuesday 1 April to Thursday 3 April 2025, every 30 minutes.
        let start: DateTime<Utc> = "2025-04-01T00:00:00Z".parse().unwrap();
        let mut arrivals: Vec<(String, DateTime<Utc>)> = Vec::new();
        let mut seen = 0;
        for step in 0..(3 * 48) {
            let now = start + Duration::minutes(30 * step);
            let run = env.run(&["summary", "--send", "--now", &rfc3339(now)]);
            assert_eq!(run.code(), 0, "{}", run.describe());
            let received = smtp.received();
            arrivals.extend(received[seen..].iter().map(|message| (message.to[0].clone(), now)));
            seen = received.len();
        }
        let at = |text: &str| text.parse::<DateTime<Utc>>().unwrap();
        let student: Vec<DateTime<Utc>> = arrivals.iter().filter(|(to, _)| to == "owl@x.test").map(|(_, at)| *at).collect();
        // Each day's 22:00 summary goes when the window opens the next morning.
        assert_eq!(
            student,
            [at("2025-04-01T07:00:00Z"), at("2025-04-02T07:00:00Z"), at("2025-04-03T07:00:00Z")],
            "{arrivals:?}"
        );
        let guardian: Vec<DateTime<Utc>> = arrivals.iter().filter(|(to, _)| to == "mum@x.test").map(|(_, at)| *at).collect();
        assert_eq!(
            guardian,
            [at("2025-04-01T19:00:00Z"), at("2025-04-02T19:00:00Z"), at("2025-04-03T19:00:00Z")],
            "{arrivals:?}"
        );
    }
}

on_both_backends! {
    fn imports_take_a_send_window_column_all_or_nothing(env: &TestEnv) {
        let file = env.path("students.csv");
        std::fs::write(&file, "email,send_window\na@x.test,mon-fri 16:00-20:00\nb@x.test,weekdays 9-5\n").unwrap();
        let run = env.run(&["user", "import", file.to_str().unwrap()]);
        assert_eq!(run.code(), 2, "{}", run.describe());
        assert!(run.stderr().contains("line 3") && run.stderr().contains("is not a day"), "{}", run.describe());
        assert_eq!(env.count("SELECT count(*) AS n FROM users"), 0);
        std::fs::write(&file, "email,send_window\na@x.test,Mon-Fri 16:00-20:00\nb@x.test,\n").unwrap();
        env.ok(&["user", "import", file.to_str().unwrap()]);
        assert_eq!(
            env.texts("SELECT send_window AS v FROM user_preferences"),
            [Some("mon-fri 16:00-20:00".to_string())]
        );
        let guardians = env.path("guardians.csv");
        std::fs::write(&guardians, "student,email,send_window\na@x.test,mum@x.test,sat 10:00-12:00\n").unwrap();
        env.ok(&["guardian", "import", guardians.to_str().unwrap()]);
        assert_eq!(env.text("SELECT send_window AS v FROM guardians").as_deref(), Some("sat 10:00-12:00"));
    }
}
