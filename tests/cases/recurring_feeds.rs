//! Feeds in Outlook's shape: Windows zone names (with and without the
//! feed's VTIMEZONE), and recurring events read as one assignment per
//! occurrence over `--horizon`, kept in step by `--remove-missing`.

use crate::common::{TestEnv, on_both_backends};

const OUTLOOK: &str = include_str!("../data/ics/outlook.ics");
const PROBLEMS: &str =
    "040000008200E00074C5B7101A82E00800000000A0B1C2D3E4F5DA0100000000000000001000000011223344556677889900AABBCCDDEEFF";
const LAB: &str =
    "040000008200E00074C5B7101A82E00800000000B1C2D3E4F5A6DA0100000000000000001000000022334455667788990011AABBCCDDEEFF";
const QUIZ: &str =
    "040000008200E00074C5B7101A82E00800000000C2D3E4F5A6B7DA0100000000000000001000000033445566778899001122AABBCCDDEEFF";
/// A week before the fixture's moved occurrence.
const NOW: &str = "2026-11-20T00:00:00Z";
/// Problem set: 18 occurrences; lab report: 1; reading quiz: 25 (field trip skipped).
const ALL: u64 = 44;

fn write(env: &TestEnv, name: &str, text: &str) -> String {
    std::fs::write(env.path(name), text).unwrap();
    name.to_string()
}

/// The feed without its VTIMEZONE components.
fn without_vtimezones(text: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in text.split_inclusive("\r\n") {
        inside |= line.starts_with("BEGIN:VTIMEZONE");
        if !inside {
            out.push_str(line);
        }
        inside &= !line.starts_with("END:VTIMEZONE");
    }
    out
}

/// (due_at, title) of the assignment with this external id, as listed.
fn listed(env: &TestEnv, external_id: &str) -> Option<(String, String)> {
    let list = env.json(&["assignment", "list"]);
    list.as_array()
        .unwrap()
        .iter()
        .find(|a| a["external_id"] == external_id)
        .map(|a| {
            (
                a["due_at"].as_str().unwrap().to_string(),
                a["title"].as_str().unwrap().to_string(),
            )
        })
}

fn import(env: &TestEnv, feed: &str, now: &str, extra: &[&str]) -> crate::common::Run {
    let args = [
        "assignment",
        "import",
        feed,
        "--student",
        "ann@example.com",
        "--format",
        "json",
        "--now",
        now,
    ];
    env.run(&[&args[..], extra].concat())
}

on_both_backends! {
    fn an_outlook_feed_with_windows_zones_is_one_assignment_per_occurrence_and_again_changes_nothing(env: &TestEnv) {
        env.add_user("ann@example.com", "America/New_York");
        let feed = write(env, "outlook.ics", OUTLOOK);
        let run = import(env, &feed, NOW, &[]);
        assert_eq!(run.code(), 0, "{}", run.describe());
        let report = run.report();
        assert_eq!((report["inserted"].as_u64(), report["updated"].as_u64()), (Some(ALL), Some(0)), "{report}");
        // A zone that is neither IANA nor Windows is no silent UTC: skipped, named.
        assert!(run.stderr().contains("skipped event `Field trip`") && run.stderr().contains("`Mars Standard Time`"), "{}", run.stderr());
        assert_eq!(run.stderr().trim().lines().count(), 1, "{}", run.stderr());
        assert_eq!(report["skipped"].as_array().map(Vec::len), Some(1), "{report}");

        // W. Europe Standard Time is Berlin: 17:00 CET is 16:00 UTC. A one-off keeps its UID.
        assert_eq!(listed(env, LAB), Some(("2026-12-04T16:00:00Z".into(), "Lab report".into())));
        let problem = |start: &str| listed(env, &format!("{PROBLEMS}/{start}"));
        // The moved occurrence (RECURRENCE-ID) keeps the id of the start it replaces.
        assert_eq!(problem("20261124T140000Z"), Some(("2026-11-23T14:00:00Z".into(), "Problem set (moved)".into())));
        // The RDATE is read; the EXDATEs are not.
        assert!(problem("20261127T140000Z").is_some());
        assert!(problem("20261222T140000Z").is_none() && problem("20261229T140000Z").is_none());
        // 09:00 in New York on both sides of 14 March; UNTIL is the last.
        assert_eq!(problem("20270309T140000Z").map(|p| p.0), Some("2027-03-09T14:00:00Z".into()));
        assert_eq!(problem("20270316T130000Z").map(|p| p.0), Some("2027-03-16T13:00:00Z".into()));
        assert_eq!(env.count(&format!("SELECT count(*) AS n FROM assignments WHERE external_id LIKE '{PROBLEMS}/%'")), 18);
        // The unbounded rule stops at the horizon (180 days).
        assert_eq!(env.count(&format!("SELECT count(*) AS n FROM assignments WHERE external_id LIKE '{QUIZ}/%'")), 25);
        assert!(listed(env, &format!("{QUIZ}/20270517T060000Z")).is_some());

        // Again, again without the VTIMEZONEs, and with the zone under the
        // display name older Outlook writes, which only its VTIMEZONE
        // defines: nothing changes.
        let display_name = OUTLOOK
            .replace("TZID:Eastern Standard Time", "TZID:(UTC-05:00) Eastern Time (US & Canada)")
            .replace("TZID=Eastern Standard Time:", "TZID=\"(UTC-05:00) Eastern Time (US & Canada)\":");
        assert!(!display_name.contains("Eastern Standard Time"));
        for text in [OUTLOOK.to_string(), without_vtimezones(OUTLOOK), display_name.clone()] {
            let feed = write(env, "outlook.ics", &text);
            let again = import(env, &feed, NOW, &["--remove-missing"]);
            assert_eq!(again.code(), 0, "{}", again.describe());
            let report = again.report();
            assert_eq!((report["inserted"].as_u64(), report["updated"].as_u64(), report["unchanged"].as_u64(), report["removed"].as_u64()), (Some(0), Some(0), Some(ALL), Some(0)), "{report}");
        }
        assert!(without_vtimezones(OUTLOOK).len() < OUTLOOK.len() && !without_vtimezones(OUTLOOK).contains("VTIMEZONE"));
        // That name without its VTIMEZONE is an unknown zone: the problem set
        // (and its moved occurrence) are skipped, named, and nothing is written.
        let feed = write(env, "outlook.ics", &without_vtimezones(&display_name));
        let run = import(env, &feed, NOW, &[]);
        assert_eq!(run.code(), 0, "{}", run.describe());
        assert!(run.stderr().contains("skipped event `Problem set` (") && run.stderr().contains("(UTC-05:00) Eastern Time (US & Canada)"), "{}", run.stderr());
        assert_eq!(run.report()["skipped"].as_array().map(Vec::len), Some(3), "{}", run.describe());
        assert_eq!(run.report()["inserted"], 0);
    }

    fn remove_missing_drops_occurrences_that_left_the_feed_or_the_horizon(env: &TestEnv) {
        env.add_user("ann@example.com", "America/New_York");
        let feed = write(env, "outlook.ics", OUTLOOK);
        assert_eq!(import(env, &feed, NOW, &["--remove-missing"]).report()["inserted"], ALL);

        // Two weeks on, without --remove-missing: what is past stays.
        let later = "2026-12-04T00:00:00Z";
        let kept = import(env, &feed, later, &[]).report();
        assert_eq!((kept["inserted"].as_u64(), kept["removed"].as_u64()), (Some(2), Some(0)), "{kept}");
        // With it: the three problem sets and two quizzes now past stay, as
        // work missed this month (overdue notices still need them); the two
        // quizzes the horizon reached (20 and 31 May) were added.
        let run = import(env, &feed, later, &["--remove-missing"]);
        let report = run.report();
        assert_eq!((report["inserted"].as_u64(), report["removed"].as_u64(), report["unchanged"].as_u64()), (Some(0), Some(0), Some(ALL - 5 + 2)), "{}", run.describe());
        assert!(listed(env, &format!("{PROBLEMS}/20261124T140000Z")).is_some());
        assert!(listed(env, &format!("{QUIZ}/20270531T060000Z")).is_some());

        // The teacher cancels 5 January (a new EXDATE): that occurrence goes.
        let cancelled = OUTLOOK.replace("EXDATE;TZID=Eastern Standard Time:20261222T090000,", "EXDATE;TZID=Eastern Standard Time:20270105T090000,20261222T090000,");
        let feed = write(env, "outlook.ics", &cancelled);
        let report = import(env, &feed, later, &["--remove-missing"]).report();
        assert_eq!((report["removed"].as_u64(), report["inserted"].as_u64()), (Some(1), Some(0)), "{report}");
        assert!(listed(env, &format!("{PROBLEMS}/20270105T140000Z")).is_none());
        // The one-off lab report is not touched by any of it.
        assert!(listed(env, LAB).is_some());

        // On 5 January the five occurrences of before 6 December are more than
        // a month past: they go; December's stay.
        let report = import(env, &feed, "2027-01-05T00:00:00Z", &["--remove-missing"]).report();
        assert_eq!(report["removed"].as_u64(), Some(5), "{report}");
        assert!(listed(env, &format!("{PROBLEMS}/20261124T140000Z")).is_none());
        assert!(listed(env, &format!("{PROBLEMS}/20261208T140000Z")).is_some());
    }

    fn a_rule_past_the_cap_is_read_to_the_cap_with_a_warning_and_the_horizon_is_a_flag(env: &TestEnv) {
        env.add_user("ann@example.com", "UTC");
        let daily = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:journal\r\nSUMMARY:Journal\r\nDTSTART;VALUE=DATE:20261101\r\nRRULE:FREQ=DAILY\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let feed = write(env, "daily.ics", daily);
        // 30 days: 20 November to 20 December, each day due at 23:59.
        let report = import(env, &feed, NOW, &["--horizon", "30d"]).report();
        assert_eq!(report["inserted"], 31, "{report}");
        assert_eq!(listed(env, "journal/20261120").map(|j| j.0), Some("2026-11-20T23:59:00Z".into()));
        // 1500 days is past the cap: 1000 read (from a month back, the
        // occurrences of the month past listed but not added), one warning
        // line naming the event.
        let run = import(env, &feed, NOW, &["--horizon", "1500d", "--remove-missing"]);
        assert_eq!(run.code(), 0, "{}", run.describe());
        assert_eq!(env.count("SELECT count(*) AS n FROM assignments"), 1_000 - 19);
        assert!(run.stderr().contains("`Journal` (journal) repeats more than 1000 times"), "{}", run.stderr());
        assert_eq!(run.stderr().trim().lines().count(), 1, "{}", run.stderr());
        // A horizon out of range is bad input.
        env.fails(&["assignment", "import", &feed, "--student", "ann@example.com", "--horizon", "0d"], 2, "--horizon");
        assert_eq!(env.count("SELECT count(*) AS n FROM assignments"), 1_000 - 19);
    }
}
