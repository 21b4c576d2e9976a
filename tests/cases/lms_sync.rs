//! Keeping in step with the school's systems: external ids, upsert, edits,
//! removal, and moved deadlines.

use crate::common::smtp::SmtpServer;
use crate::common::tls::{HttpsServer, TestCa};
use crate::common::{TestEnv, on_both_backends};

const DUE: &str = "2026-12-10T12:00:00Z";
const DAY_BEFORE: &str = "2026-12-09T12:00:00Z";

fn write(env: &TestEnv, name: &str, text: &str) -> String {
    let path = env.path(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

on_both_backends! {
    fn upsert_inserts_updates_and_leaves_unchanged(env: &TestEnv) {
        env.add_user("a@example.com", "UTC");
        env.add_user("b@example.com", "Europe/Paris");
        let first = write(env, "first.csv", "student,title,due,external_id,description\n\
            a@example.com,Essay,2026-12-10T12:00:00Z,canvas-1,Draft\n\
            a@example.com,Lab,2026-12-11T12:00:00Z,canvas-2,\n\
            b@example.com,Essay,2026-12-10 09:00,canvas-1,\n");
        let report = env.json(&["assignment", "import", &first, "--upsert"]);
        assert_eq!((report["inserted"].as_u64(), report["updated"].as_u64(), report["unchanged"].as_u64()), (Some(3), Some(0), Some(0)), "{report}");

        // The same file again changes nothing, and says so.
        let again = env.ok(&["assignment", "import", &first, "--upsert"]);
        assert!(again.contains("inserted 0, updated 0, unchanged 3; nothing changed"), "{again}");
        let before = env.texts("SELECT CAST(updated_at AS TEXT) AS v FROM assignments ORDER BY id");

        // The LMS moved the lab, retitled b's essay, completed a's essay, and added one.
        let second = write(env, "second.jsonl", concat!(
            r#"{"student":"a@example.com","title":"Essay","due":"2026-12-10T12:00:00Z","external_id":"canvas-1","description":"Draft","completed":true}"#, "\n",
            r#"{"student":"a@example.com","title":"Lab","due":"2026-12-12T12:00:00Z","external_id":"canvas-2"}"#, "\n",
            r#"{"student":"b@example.com","title":"Essay (final)","due":"2026-12-10 09:00","external_id":"canvas-1"}"#, "\n",
            r#"{"student":"b@example.com","title":"Quiz","due":"2026-12-13 09:00","external_id":"canvas-9","metadata":{"course":"CS101"}}"#, "\n",
        ));
        let report = env.json(&["assignment", "import", &second, "--upsert"]);
        assert_eq!((report["inserted"].as_u64(), report["updated"].as_u64(), report["unchanged"].as_u64()), (Some(1), Some(3), Some(0)), "{report}");
        assert_eq!(env.count("SELECT count(*) AS n FROM assignments"), 4);
        let list = env.json(&["assignment", "list", "--student", "a@example.com"]);
        assert_eq!(list[0]["external_id"], "canvas-1");
        assert_eq!(list[0]["completed"], true);
        assert_eq!(list[1]["due_at"], "2026-12-12T12:00:00Z");
        assert_eq!(list[1]["previous_due_at"], "2026-12-11T12:00:00Z");
        let table = env.ok(&["assignment", "list"]);
        assert!(table.contains("external id") && table.contains("canvas-9"), "{table}");
        assert_ne!(before, env.texts("SELECT CAST(updated_at AS TEXT) AS v FROM assignments ORDER BY id"));
    }

    fn upsert_refuses_a_row_without_an_external_id_and_writes_nothing(env: &TestEnv) {
        env.add_user("a@example.com", "UTC");
        let file = write(env, "rows.csv", "student,title,due,external_id\n\
            a@example.com,One,2026-12-10T12:00:00Z,x-1\n\
            a@example.com,Two,2026-12-11T12:00:00Z,\n");
        env.fails(&["assignment", "import", &file, "--upsert"], 2, "line 3: --upsert needs an external_id in every row");
        assert_eq!(env.count("SELECT count(*) AS n FROM assignments"), 0);
        // Without --upsert, a second row with a stored external id is refused too.
        env.ok(&["assignment", "add", "--student", "a@example.com", "--title", "One", "--due", DUE, "--external-id", "x-1"]);
        let clash = write(env, "clash.csv", "student,title,due,external_id\na@example.com,Again,2026-12-10T12:00:00Z,x-1\n");
        env.fails(&["assignment", "import", &clash], 2, "already has an assignment with the external id `x-1`");
        env.fails(&["assignment", "add", "--student", "a@example.com", "--title", "Dup", "--due", DUE, "--external-id", "x-1"], 2, "external id `x-1`");
        assert_eq!(env.count("SELECT count(*) AS n FROM assignments"), 1);
    }

    fn edit_and_remove_assignments_and_users(env: &TestEnv) {
        env.add_user("a@example.com", "America/New_York");
        env.add_user("taken@example.com", "UTC");
        let id = env.add_assignment("a@example.com", "Essay", DUE);
        let edited = env.json(&["assignment", "edit", &id, "--title", "Essay v2", "--due", "2026-12-11 09:00", "--metadata", r#"{"course":"EN1"}"#, "--external-id", "e-1"]);
        assert_eq!(edited["title"], "Essay v2");
        assert_eq!(edited["due_at"], "2026-12-11T14:00:00Z");
        assert_eq!(edited["previous_due_at"], DUE);
        assert_eq!(edited["external_id"], "e-1");
        let cleared = env.json(&["assignment", "edit", &id, "--metadata", "null", "--external-id", ""]);
        assert!(cleared["metadata"].is_null() && cleared["external_id"].is_null(), "{cleared}");

        // Bad input: exit 2, nothing written.
        let snapshot = env.texts("SELECT CAST(title || due_at AS TEXT) AS v FROM assignments");
        env.fails(&["assignment", "edit", &id, "--due", "2026-03-08 02:30"], 2, "does not exist in America/New_York");
        env.fails(&["assignment", "edit", &id, "--title", " "], 2, "the title is empty");
        env.fails(&["assignment", "edit", &id, "--metadata", "[1]"], 2, "must be a JSON object");
        env.fails(&["assignment", "edit", &id], 2, "");
        env.fails(&["assignment", "edit", "00000000-0000-4000-8000-000000000000", "--title", "X"], 2, "no assignment has the id");
        env.fails(&["assignment", "remove", "00000000-0000-4000-8000-000000000000"], 2, "no assignment has the id");
        assert_eq!(snapshot, env.texts("SELECT CAST(title || due_at AS TEXT) AS v FROM assignments"));

        let user = env.json(&["user", "edit", "a@example.com", "--email", "A2@example.com", "--name", "Ann", "--timezone", "Europe/Paris"]);
        assert_eq!(user["email"], "a2@example.com");
        assert_eq!(user["name"], "Ann");
        assert_eq!(user["timezone"], "Europe/Paris");
        env.fails(&["user", "edit", "a2@example.com", "--email", "taken@example.com"], 2, "already exists");
        env.fails(&["user", "edit", "a2@example.com", "--timezone", "Mars/Olympus"], 2, "is not an IANA time zone");
        env.fails(&["user", "edit", "nobody@example.com", "--name", "X"], 2, "no user has the email");
        env.fails(&["user", "remove", "nobody@example.com"], 2, "no user has the email");
        assert_eq!(env.count("SELECT count(*) AS n FROM users WHERE email = 'a2@example.com' AND name = 'Ann'"), 1);
    }

    fn removing_keeps_the_send_logs_unlinked(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        env.add_user("a@example.com", "UTC");
        env.add_user("b@example.com", "UTC");
        let essay = env.add_assignment("a@example.com", "Essay", DUE);
        env.add_assignment("b@example.com", "Lab", DUE);
        assert_eq!(env.send_24h(DAY_BEFORE, &[]).report()["sent"], 2);
        assert_eq!(env.count("SELECT count(*) AS n FROM send_logs WHERE reminder_id IS NOT NULL AND assignment_id IS NOT NULL"), 2);

        env.ok(&["assignment", "remove", &essay]);
        env.ok(&["user", "remove", "b@example.com"]);
        assert_eq!(env.count("SELECT count(*) AS n FROM assignments"), 0);
        assert_eq!(env.count("SELECT count(*) AS n FROM reminders"), 0);
        assert_eq!(env.count("SELECT count(*) AS n FROM users"), 1);
        // The audit trail stays, its links set to NULL.
        assert_eq!(env.count("SELECT count(*) AS n FROM send_logs WHERE reminder_id IS NULL AND assignment_id IS NULL"), 2);
        assert_eq!(env.count("SELECT count(*) AS n FROM send_logs WHERE to_email IN ('a@example.com', 'b@example.com')"), 2);
        // A DBA's plain DELETE works as well: the foreign keys cascade or set NULL.
        env.add_assignment("a@example.com", "Quiz", DUE);
        assert_eq!(env.send_24h(DAY_BEFORE, &[]).report()["sent"], 1);
        env.execute("DELETE FROM users WHERE email = 'a@example.com'");
        assert_eq!(env.count("SELECT count(*) AS n FROM users"), 0);
        assert_eq!(env.count("SELECT count(*) AS n FROM send_logs WHERE reminder_id IS NULL AND assignment_id IS NULL"), 3);
    }

    fn a_moved_deadline_gets_its_reminder_again_once_and_says_so(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        env.add_user("a@example.com", "Europe/Paris");
        let id = env.add_assignment("a@example.com", "Essay", DUE);
        assert_eq!(env.send_24h(DAY_BEFORE, &[]).report()["sent"], 1);

        // The LMS moves it two days later (by edit here; upsert and feeds do the same).
        env.ok(&["assignment", "edit", &id, "--due", "2026-12-12T12:00:00Z"]);
        // Nothing is due an hour on: the new deadline's window is two days off.
        assert_eq!(env.send_24h("2026-12-09T13:00:00Z", &[]).report()["sent"], 0);
        let run = env.send_24h("2026-12-11T12:00:00Z", &[]);
        assert_eq!(run.report()["sent"], 1, "{}", run.describe());
        assert_eq!(env.send_24h("2026-12-11T12:01:00Z", &[]).report()["sent"], 0);
        assert_eq!(env.send_24h("2026-12-11T12:30:00Z", &[]).report()["sent"], 0);

        let received = smtp.received();
        assert_eq!(received.len(), 2);
        let moved = &received[1];
        let subject = moved.header("Subject").unwrap();
        assert!(subject.contains("is now due"), "{subject}");
        let body = moved.body();
        assert!(body.contains("now due Sat 12 Dec 2026 13:00 CET, moved from Thu 10 Dec"), "{body}");
        assert_ne!(received[0].header("Message-ID"), moved.header("Message-ID"));
        // One reminder row, now for the new deadline; both sends in the log.
        assert_eq!(env.count("SELECT count(*) AS n FROM reminders WHERE status = 'sent'"), 1);
        assert_eq!(env.count("SELECT count(*) AS n FROM send_logs WHERE status = 'delivered'"), 2);
        assert_eq!(env.count("SELECT count(DISTINCT message_id) AS n FROM send_logs"), 2);
    }

    fn a_reminder_queued_for_the_old_deadline_is_not_sent_for_it(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        env.add_user("a@example.com", "UTC");
        let id = env.add_assignment("a@example.com", "Essay", DUE);
        // The relay is down: the 24h reminder waits for a retry.
        smtp.reply_to_rcpt("a@example.com", "451 4.3.0 try later");
        let run = env.send_24h(DAY_BEFORE, &[]);
        assert_eq!(env.count("SELECT count(*) AS n FROM reminders WHERE status = 'pending'"), 1, "{}", run.describe());
        smtp.clear_rules();
        env.ok(&["assignment", "edit", &id, "--due", "2026-12-12T12:00:00Z"]);
        // The retry comes due, but the deadline moved: not sent for the old one.
        let run = env.send_24h("2026-12-09T12:30:00Z", &[]);
        assert_eq!(run.report()["sent"], 0, "{}", run.describe());
        assert!(smtp.received().is_empty());
        // Sent once for the new deadline.
        assert_eq!(env.send_24h("2026-12-11T12:00:00Z", &[]).report()["sent"], 1);
        assert_eq!(env.send_24h("2026-12-11T12:10:00Z", &[]).report()["sent"], 0);
        assert_eq!(smtp.received().len(), 1);
    }
}

/// A plain HTTP server on loopback that serves each route's body at its
/// path (404 elsewhere) for as long as the test runs; counts the requests.
struct FeedServer {
    port: u16,
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl FeedServer {
    fn start(path: &'static str, body: String) -> FeedServer {
        FeedServer::routes(vec![(path, body)])
    }

    fn routes(routes: Vec<(&'static str, String)>) -> FeedServer {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = hits.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut request_line = String::new();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let _ = reader.read_line(&mut request_line);
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) <= 2 {
                        break;
                    }
                }
                let asked = request_line.split_whitespace().nth(1).unwrap_or_default();
                let (status, text) = match routes.iter().find(|(path, _)| *path == asked) {
                    Some((_, body)) => ("200 OK", body.as_str()),
                    None => ("404 Not Found", ""),
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: text/calendar\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                    text.len()
                );
            }
        });
        FeedServer { port, hits }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

const CANVAS: &str = include_str!("../data/ics/canvas.ics");
const MOODLE: &str = include_str!("../data/ics/moodle.ics");
const SECRET_PATH: &str = "/feeds/calendars/user_Zq8Xw3SecretFeedToken9.ics";
/// Before the Canvas fixture's assignments and its weekly office hours
/// (ten from 24 November 2026), which are read as ten occurrences.
const BEFORE_CANVAS: &str = "2026-11-20T00:00:00Z";
/// After the office hours' last occurrence: only the three assignments.
const AFTER_OFFICE_HOURS: &str = "2027-02-01T00:00:00Z";

on_both_backends! {
    fn a_canvas_feed_from_a_url_is_upserted_and_its_secret_never_shown(env: &TestEnv) {
        env.add_user("ann@example.com", "America/Los_Angeles");
        let server = FeedServer::start(SECRET_PATH, CANVAS.to_string());
        let url = server.url(SECRET_PATH);
        let run = env.run(&["assignment", "import", &url, "--student", "ann@example.com", "--format", "json", "--now", BEFORE_CANVAS]);
        assert_eq!(run.code(), 0, "{}", run.describe());
        let report = run.report();
        assert_eq!((report["inserted"].as_u64(), report["updated"].as_u64()), (Some(13), Some(0)), "{report}");
        // The feed is known by its full URL with the secret part hashed.
        let feed = report["feed"].as_str().unwrap();
        assert!(feed.starts_with(&format!("http://127.0.0.1:{}#sha256:", server.port)), "{feed}");
        // The weekly office hours are ten occurrences, each its own external id.
        assert_eq!(run.stderr(), "", "no warning");
        assert_eq!(env.count("SELECT count(*) AS n FROM assignments WHERE external_id LIKE 'event-calendar-event-900/%'"), 10);
        assert!(server.hits.load(std::sync::atomic::Ordering::SeqCst) >= 1);

        let list = env.json(&["assignment", "list"]);
        let by_id = |uid: &str| list.as_array().unwrap().iter().find(|a| a["external_id"] == uid).cloned().unwrap();
        let essay = by_id("event-assignment-345");
        assert_eq!(essay["title"], "Essay draft [ENG101]");
        assert_eq!(essay["due_at"], "2026-11-25T23:59:00Z");
        assert_eq!(essay["metadata"]["url"], "https://canvas.example.edu/courses/12/assignments/345");
        assert!(essay["description"].as_str().unwrap().contains("1, 2 and 3;\nthen write"));
        // All day: 23:59 in the student's zone.
        assert_eq!(by_id("event-assignment-346")["due_at"], "2026-11-28T07:59:00Z");
        // Cancelled: no more reminders.
        assert_eq!(by_id("event-assignment-347")["completed"], true);

        // Again: nothing changes. A wrong URL is exit 2, and shows no secret.
        let again = env.run(&["assignment", "import", &url, "--student", "ann@example.com", "--now", BEFORE_CANVAS]);
        assert_eq!(again.code(), 0, "{}", again.describe());
        let again = again.stdout();
        assert!(again.contains("inserted 0, updated 0, unchanged 13") && again.contains("nothing changed"), "{again}");
        let wrong = env.run(&["assignment", "import", &server.url("/feeds/calendars/user_Zq8Xw3OldFeedTokenX.ics"), "--student", "ann@example.com"]);
        assert_eq!(wrong.code(), 2, "{}", wrong.describe());
        assert!(wrong.stderr().contains("answered 404"), "{}", wrong.stderr());
        for output in [run.stdout(), run.stderr(), again, wrong.stdout(), wrong.stderr()] {
            assert!(!output.contains("Zq8Xw3"), "the feed's token leaked: {output}");
        }
    }

    fn an_https_feed_is_fetched_trusting_the_schools_ca(env: &TestEnv) {
        env.add_user("cy@example.com", "UTC");
        let ca = TestCa::new();
        ca.write_pem(&env.path("ca.pem"));
        let https = HttpsServer::serving(ca.server("localhost", false), CANVAS);
        let url = format!("https://localhost:{}{SECRET_PATH}", https.port);
        // Without the school's CA the certificate is refused, in one line.
        let refused = env.run(&["assignment", "import", &url, "--student", "cy@example.com", "--now", AFTER_OFFICE_HOURS]);
        assert_eq!(refused.code(), 1, "{}", refused.describe());
        assert!(refused.stderr().contains("cannot fetch the feed at https://localhost") && refused.stderr().contains("--ca-file"), "{}", refused.stderr());
        let run = env.run(&["assignment", "import", &url, "--student", "cy@example.com", "--ca-file", "ca.pem", "--format", "json", "--now", AFTER_OFFICE_HOURS]);
        assert_eq!(run.code(), 0, "{}", run.describe());
        assert_eq!(run.report()["inserted"], 3);
        assert_eq!(https.paths().last().map(String::as_str), Some(SECRET_PATH));
        for output in [refused.stdout(), refused.stderr(), run.stdout(), run.stderr()] {
            assert!(!output.contains("Zq8Xw3"), "the feed's token leaked: {output}");
        }
    }

    fn a_moodle_feed_honours_zones_floating_times_todos_and_remove_missing(env: &TestEnv) {
        env.add_user("bo@example.com", "Asia/Tokyo");
        env.add_assignment("bo@example.com", "Added by hand", "2026-12-01T00:00:00Z");
        let feed = write(env, "bo.ics", MOODLE);
        let report = env.json_status(&["assignment", "import", &feed, "--student", "bo@example.com"], 0);
        assert_eq!(report["inserted"], 3, "{report}");
        let due = |uid: &str| env.text(&format!("SELECT CAST(due_at AS TEXT) AS v FROM assignments WHERE external_id = '{uid}'")).unwrap();
        assert!(due("4021@moodle.example.edu").starts_with("2026-11-26") && due("4021@moodle.example.edu").contains("17:00:00"), "TZID Europe/London");
        // Floating 09:00 is in the student's zone (Tokyo, UTC+9).
        assert!(due("4022@moodle.example.edu").contains("2026-11-28") && due("4022@moodle.example.edu").contains("00:00:00"), "{}", due("4022@moodle.example.edu"));
        assert!(due("4023@moodle.example.edu").contains("12:00:00"), "VTODO DUE");
        assert_eq!(env.count("SELECT count(*) AS n FROM assignments WHERE CAST(metadata AS TEXT) LIKE '%CS101%'"), 2);

        // Moodle drops the quiz and moves the lab: the quiz stays without
        // --remove-missing and goes with it; the assignment added by hand stays.
        let next = MOODLE
            .replace("DTSTART;TZID=Europe/London:20261126T170000", "DTSTART;TZID=Europe/London:20261127T170000")
            .replace("BEGIN:VEVENT\r\nUID:4022@moodle.example.edu", "BEGIN:VEVENT\r\nUID:4099@moodle.example.edu");
        let next_feed = write(env, "bo.ics", &next);
        let kept = env.json_status(&["assignment", "import", &next_feed, "--student", "bo@example.com"], 0);
        assert_eq!((kept["inserted"].as_u64(), kept["updated"].as_u64(), kept["removed"].as_u64()), (Some(1), Some(1), Some(0)), "{kept}");
        assert_eq!(env.count("SELECT count(*) AS n FROM assignments"), 5);
        let removed = env.json_status(&["assignment", "import", &next_feed, "--student", "bo@example.com", "--remove-missing"], 0);
        assert_eq!(removed["removed"], 1, "{removed}");
        assert_eq!(env.count("SELECT count(*) AS n FROM assignments WHERE external_id = '4022@moodle.example.edu'"), 0);
        assert_eq!(env.count("SELECT count(*) AS n FROM assignments WHERE title = 'Added by hand'"), 1);
        assert_eq!(env.count("SELECT count(*) AS n FROM assignments"), 4);

        // Not a feed, or no student: exit 2, nothing written.
        let bad = write(env, "bad.ics", "hello");
        env.fails(&["assignment", "import", &bad, "--student", "bo@example.com"], 2, "not an iCalendar feed");
        env.fails(&["assignment", "import", &next_feed], 2, "--student");
        assert_eq!(env.count("SELECT count(*) AS n FROM assignments"), 4);
    }

    fn a_feeds_first_category_is_the_course_and_what_it_lacks_stays_as_set(env: &TestEnv) {
        env.add_user("bo@example.com", "UTC");
        let moodle = write(env, "bo.ics", MOODLE);
        let report = env.json_status(&["assignment", "import", &moodle, "--student", "bo@example.com"], 0);
        assert_eq!(report["inserted"], 3, "{report}");
        let by_uid = |uid: &str| {
            let list = env.json(&["assignment", "list"]);
            list.as_array().unwrap().iter().find(|a| a["external_id"] == uid).cloned().unwrap()
        };
        let lab = by_uid("4021@moodle.example.edu");
        assert_eq!(lab["course"], "CS101");
        // The categories stay in the metadata too, as before.
        assert_eq!(lab["metadata"]["categories"], serde_json::json!(["CS101"]));
        assert_eq!(by_uid("4023@moodle.example.edu")["course"], "CS102");

        // A feed has no cut-off: one set by hand survives the feed moving the
        // lab; the course follows the feed's new first category.
        let lab_id = lab["id"].as_str().unwrap();
        env.ok(&["assignment", "edit", lab_id, "--cutoff", "2026-12-01T17:00:00Z"]);
        let next = MOODLE
            .replace("DTSTART;TZID=Europe/London:20261126T170000", "DTSTART;TZID=Europe/London:20261127T170000")
            .replace("CATEGORIES:CS101\r\nLOCATION", "CATEGORIES:CS111,Labs\r\nLOCATION");
        let moved = write(env, "bo.ics", &next);
        let report = env.json_status(&["assignment", "import", &moved, "--student", "bo@example.com"], 0);
        assert_eq!(report["updated"], 1, "{report}");
        let lab = by_uid("4021@moodle.example.edu");
        assert_eq!((lab["due_at"].as_str(), lab["cutoff"].as_str()), (Some("2026-11-27T17:00:00Z"), Some("2026-12-01T17:00:00Z")));
        assert_eq!(lab["course"], "CS111");

        // Canvas names no category: a course set by hand stays.
        env.add_user("ann@example.com", "UTC");
        let canvas = write(env, "ann.ics", CANVAS);
        env.json_status(&["assignment", "import", &canvas, "--student", "ann@example.com", "--now", AFTER_OFFICE_HOURS], 0);
        let essay = by_uid("event-assignment-345");
        assert!(essay["course"].is_null(), "{essay}");
        env.ok(&["assignment", "edit", essay["id"].as_str().unwrap(), "--course", "ENG101"]);
        let again = env.json_status(&["assignment", "import", &canvas, "--student", "ann@example.com", "--now", AFTER_OFFICE_HOURS], 0);
        assert_eq!(again["unchanged"], 3, "{again}");
        assert_eq!(by_uid("event-assignment-345")["course"], "ENG101");
    }
}

on_both_backends! {
    fn a_digest_is_one_message_per_student_nearest_first(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        env.add_user("ann@example.com", "Europe/Paris");
        env.add_user("bo@example.com", "UTC");
        // Due a minute apart, all in the 24h window at DAY_BEFORE; added out of order.
        env.add_assignment("ann@example.com", "Lab", "2026-12-10T12:02:00Z");
        env.add_assignment("ann@example.com", "Essay", "2026-12-10T12:00:00Z");
        env.add_assignment("ann@example.com", "Quiz", "2026-12-10T12:01:00Z");
        let done = env.add_assignment("ann@example.com", "Done already", "2026-12-10T12:01:30Z");
        env.ok(&["assignment", "complete", &done]);
        env.add_assignment("bo@example.com", "Solo", "2026-12-10T12:00:00Z");
        // A batch of one: the claim takes the rest of each student's reminders with it.
        let run = env.send_24h(DAY_BEFORE, &["--digest", "--batch-size", "1"]);
        assert_eq!(run.code(), 0, "{}", run.describe());
        assert_eq!(run.report()["sent"], 4, "{}", run.describe());

        let received = smtp.received();
        assert_eq!(received.len(), 2, "one message per student");
        let ann = received.iter().find(|m| m.to == ["ann@example.com"]).unwrap();
        let subject = ann.header("Subject").unwrap();
        assert!(subject.contains("3 assignments due soon"), "{subject}");
        let body = ann.body();
        let (essay, quiz, lab) = (body.find("Essay").unwrap(), body.find("Quiz").unwrap(), body.find("Lab").unwrap());
        assert!(essay < quiz && quiz < lab, "nearest first: {body}");
        assert!(body.contains("Thu 10 Dec 2026 13:00 CET"), "local due times: {body}");
        assert!(!body.contains("Done already"), "{body}");
        // Bo has one reminder: an ordinary one.
        let bo = received.iter().find(|m| m.to == ["bo@example.com"]).unwrap();
        assert!(bo.header("Subject").unwrap().contains("Reminder: Solo is due"), "{:?}", bo.header("Subject"));

        // Every row recorded; Ann's three logs are one message.
        assert_eq!(env.count("SELECT count(*) AS n FROM reminders WHERE status = 'sent'"), 4);
        let ann_ids = env.texts("SELECT message_id AS v FROM send_logs WHERE to_email = 'ann@example.com' AND status = 'delivered'");
        assert_eq!(ann_ids.len(), 3);
        assert!(ann_ids.iter().all(|id| *id == ann_ids[0]), "{ann_ids:?}");
        assert_eq!(ann_ids[0], ann.header("Message-ID"));
        // A later run sends nothing more.
        assert_eq!(env.send_24h("2026-12-09T12:01:00Z", &["--digest"]).report()["sent"], 0);
        assert_eq!(smtp.received().len(), 2);
    }

    fn a_rejected_digest_is_one_attempt_toward_the_bounce_rule(env: &TestEnv) {
        let smtp = SmtpServer::start();
        env.use_smtp(&smtp.url());
        smtp.reply_to_rcpt("gone@example.com", "550 5.1.1 no such user");
        env.add_user("gone@example.com", "UTC");
        for (title, due) in [("A", "2026-12-10T12:00:00Z"), ("B", "2026-12-10T12:01:00Z"), ("C", "2026-12-10T12:02:00Z")] {
            env.add_assignment("gone@example.com", title, due);
        }
        let run = env.send_24h(DAY_BEFORE, &["--digest"]);
        assert_eq!(run.report()["failed"], 3, "{}", run.describe());
        // Three rows, one rejected message: not three rejections in a row.
        assert_eq!(env.count("SELECT count(*) AS n FROM users WHERE contact_opt_out"), 0);
        assert_eq!(env.count("SELECT count(*) AS n FROM send_logs WHERE status = 'rejected'"), 3);
    }
}

/// A calendar of Canvas-like assignments with UIDs `{prefix}-{n}`.
fn calendar(prefix: &str, numbers: std::ops::Range<usize>) -> String {
    let mut text = String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//reminders tests//EN\r\n");
    for n in numbers {
        text.push_str(&format!(
            "BEGIN:VEVENT\r\nUID:{prefix}-{n}\r\nSUMMARY:Task {n}\r\nDTSTART:20261210T120000Z\r\nDTEND:20261210T120000Z\r\nEND:VEVENT\r\n"
        ));
    }
    text.push_str("END:VCALENDAR\r\n");
    text
}

fn redirect_to(location: &str) -> String {
    format!("HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
}

fn ok_with(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// A loopback listener standing in for a proxy: counts the connections made
/// to it, and answers none.
fn counting_listener() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(stream);
        }
    });
    (port, count)
}

on_both_backends! {
    fn a_feed_nested_too_deep_is_a_bad_feed_and_writes_nothing(env: &TestEnv) {
        env.add_user("deep@example.com", "UTC");
        // A valid entry first, then 10,000 nested components (160 KB).
        let mut text = calendar("deep", 0..1).replace("END:VCALENDAR\r\n", "");
        text.push_str(&"BEGIN:X\r\n".repeat(10_000));
        text.push_str(&"END:X\r\n".repeat(10_000));
        text.push_str("END:VCALENDAR\r\n");
        assert!(text.len() > 150_000, "{}", text.len());
        let feed = write(env, "deep.ics", &text);
        env.fails(&["assignment", "import", &feed, "--student", "deep@example.com", "--remove-missing"], 2, "nest");
        assert_eq!(env.count("SELECT count(*) AS n FROM assignments"), 0);
    }

    fn a_feed_of_20000_events_imports_and_removes_what_it_drops(env: &TestEnv) {
        env.add_user("big@example.com", "UTC");
        let feed = write(env, "big.ics", &calendar("event-assignment", 0..20_000));
        let report = env.json_status(&["assignment", "import", &feed, "--student", "big@example.com", "--remove-missing"], 0);
        assert_eq!((report["inserted"].as_u64(), report["removed"].as_u64()), (Some(20_000), Some(0)), "{report}");
        // The same feed without its first ten: they go, the rest are unchanged.
        let feed = write(env, "big.ics", &calendar("event-assignment", 10..20_000));
        let report = env.json_status(&["assignment", "import", &feed, "--student", "big@example.com", "--remove-missing"], 0);
        assert_eq!((report["unchanged"].as_u64(), report["removed"].as_u64()), (Some(19_990), Some(10)), "{report}");
        assert_eq!(env.count("SELECT count(*) AS n FROM assignments"), 19_990);
        assert_eq!(env.count("SELECT count(*) AS n FROM assignments WHERE external_id = 'event-assignment-9'"), 0);
    }

    fn a_parameter_bomb_is_a_bad_feed_read_in_bounded_memory(env: &TestEnv) {
        env.add_user("bomb@example.com", "UTC");
        // One DTSTART with 5 million parameters: 20 MB, under the 20 MiB limit.
        let mut text = calendar("bomb", 0..2);
        let bomb = format!("DTSTART{}:20261210T120000Z", ";X=a".repeat(5_000_000));
        text = text.replacen("DTSTART:20261210T120000Z", &bomb, 1);
        assert!(text.len() < 20 * 1024 * 1024);
        let feed = write(env, "bomb.ics", &text);
        drop((text, bomb));
        let (run, peak_kb) = env.run_measured(&["assignment", "import", &feed, "--student", "bomb@example.com"]);
        assert_eq!(run.code(), 2, "{}", run.describe());
        assert!(run.stderr().contains("parameters"), "{}", run.describe());
        assert_eq!(run.stderr().trim().lines().count(), 1, "{}", run.describe());
        assert!(peak_kb < 200_000, "peak memory {peak_kb} KB for a 20 MB feed");
        assert_eq!(env.count("SELECT count(*) AS n FROM assignments"), 0);
    }

    fn two_feeds_named_alike_in_two_folders_keep_each_others_assignments(env: &TestEnv) {
        env.add_user("two@example.com", "UTC");
        for folder in ["maths", "art"] {
            std::fs::create_dir_all(env.path(folder)).unwrap();
        }
        let maths = write(env, "maths/feed.ics", &calendar("maths", 0..2));
        let art = write(env, "art/feed.ics", &calendar("art", 0..3));
        for feed in [&maths, &art, &maths] {
            let report = env.json_status(&["assignment", "import", feed, "--student", "two@example.com", "--remove-missing"], 0);
            assert_eq!(report["removed"], 0, "{feed}: {report}");
        }
        assert_eq!(env.count("SELECT count(*) AS n FROM assignments"), 5);
        // A feed is known by its canonical path, however it is named.
        let canonical = std::fs::canonicalize(env.path("art/feed.ics")).unwrap().display().to_string();
        assert_eq!(env.count(&format!("SELECT count(*) AS n FROM assignments WHERE feed = '{canonical}'")), 3);
        // Each still removes its own: maths drops one, read by a relative path.
        write(env, "maths/feed.ics", &calendar("maths", 1..2));
        let report = env.json_status(&["assignment", "import", "maths/../maths/feed.ics", "--student", "two@example.com", "--remove-missing"], 0);
        assert_eq!((report["removed"].as_u64(), report["unchanged"].as_u64()), (Some(1), Some(1)), "{report}");
        assert_eq!(env.count("SELECT count(*) AS n FROM assignments WHERE external_id LIKE 'art-%'"), 3);

        // stdin has no name of its own: removing needs --feed, which names it.
        let stdin = ["assignment", "import", "-", "--input-format", "ics", "--student", "two@example.com", "--remove-missing"];
        let unnamed = env.run_with_stdin(&stdin, &calendar("in", 0..1));
        assert_eq!(unnamed.code(), 2, "{}", unnamed.describe());
        assert!(unnamed.stderr().contains("--feed") && unnamed.stderr().trim().lines().count() == 1, "{}", unnamed.describe());
        for (name, prefix) in [("lms-a", "in-a"), ("lms-b", "in-b"), ("lms-a", "in-a")] {
            let run = env.run_with_stdin(&[&stdin[..], &["--feed", name]].concat(), &calendar(prefix, 0..2));
            assert_eq!(run.code(), 0, "{}", run.describe());
        }
        assert_eq!(env.count("SELECT count(*) AS n FROM assignments"), 8);
        assert_eq!(env.count("SELECT count(*) AS n FROM assignments WHERE feed = 'lms-b'"), 2);

        // A row stored under an old-style name (the bare file name) matches no
        // feed for removal, and takes the new identity when its feed lists it.
        env.execute("UPDATE assignments SET feed = 'feed.ics' WHERE external_id LIKE 'art-%'");
        write(env, "art/feed.ics", &calendar("art", 0..2));
        let report = env.json_status(&["assignment", "import", &art, "--student", "two@example.com", "--remove-missing"], 0);
        assert_eq!((report["removed"].as_u64(), report["updated"].as_u64()), (Some(0), Some(2)), "{report}");
        assert_eq!(env.count(&format!("SELECT count(*) AS n FROM assignments WHERE feed = '{canonical}'")), 2);
        assert_eq!(env.count("SELECT count(*) AS n FROM assignments WHERE feed = 'feed.ics' AND external_id = 'art-2'"), 1);
    }

    fn two_feed_urls_on_one_host_keep_each_others_assignments(env: &TestEnv) {
        env.add_user("host@example.com", "UTC");
        let server = FeedServer::routes(vec![
            ("/feeds/user_1_TokenAaaa.ics", calendar("one", 0..2)),
            ("/feeds/user_1_TokenBbbb.ics", calendar("two", 0..3)),
        ]);
        let (one, two) = (server.url("/feeds/user_1_TokenAaaa.ics"), server.url("/feeds/user_1_TokenBbbb.ics"));
        let mut outputs = Vec::new();
        for url in [&one, &two, &one] {
            let run = env.run(&["assignment", "import", url, "--student", "host@example.com", "--remove-missing", "--format", "json"]);
            assert_eq!(run.code(), 0, "{}", run.describe());
            assert_eq!(run.report()["removed"], 0, "{}", run.describe());
            outputs.extend([run.stdout(), run.stderr()]);
        }
        assert_eq!(env.count("SELECT count(*) AS n FROM assignments"), 5);
        assert_eq!(env.count("SELECT count(DISTINCT feed) AS n FROM assignments"), 2);
        outputs.extend(env.texts("SELECT feed AS v FROM assignments").into_iter().flatten());
        for output in outputs {
            assert!(!output.contains("TokenAaaa") && !output.contains("TokenBbbb"), "a feed's secret leaked: {output}");
        }
    }

    fn a_plain_http_feed_is_refused_before_connecting_unless_on_loopback(env: &TestEnv) {
        env.add_user("web@example.com", "UTC");
        // Any connection would go through this "proxy": none must be made.
        let (port, connections) = counting_listener();
        for name in ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "HTTPS_PROXY"] {
            env.set_var(name, &format!("http://127.0.0.1:{port}"));
        }
        for url in ["http://192.0.2.1/feeds/user_SecretPlain.ics", "http://lms.example.edu/feeds/user_SecretPlain.ics"] {
            let run = env.fails(&["assignment", "import", url, "--student", "web@example.com"], 2, "http://");
            assert!(!run.stderr().contains("SecretPlain"), "{}", run.describe());
        }
        assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 0, "a connection was made");
        assert_eq!(env.count("SELECT count(*) AS n FROM assignments"), 0);
    }

    fn an_https_feed_redirected_to_plain_http_is_refused_before_the_request(env: &TestEnv) {
        env.add_user("red@example.com", "UTC");
        let plain = FeedServer::start(SECRET_PATH, CANVAS.to_string());
        let plain_url = plain.url(SECRET_PATH);
        let ca = TestCa::new();
        ca.write_pem(&env.path("ca.pem"));
        let https = HttpsServer::routing(ca.server("localhost", false), move |path, port| match path {
            "/to-http" => redirect_to(&plain_url),
            "/moved" => redirect_to(&format!("https://localhost:{port}{SECRET_PATH}")),
            "/moved-relative" => redirect_to(SECRET_PATH),
            SECRET_PATH => ok_with(CANVAS),
            _ => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string(),
        });
        let url = |path: &str| format!("https://localhost:{}{path}", https.port);
        let import = |path: &str| env.run(&["assignment", "import", &url(path), "--student", "red@example.com", "--ca-file", "ca.pem", "--format", "json", "--now", AFTER_OFFICE_HOURS]);
        let refused = import("/to-http");
        assert_eq!(refused.code(), 2, "{}", refused.describe());
        assert!(refused.stderr().contains("http://") && refused.stderr().trim().lines().count() == 1, "{}", refused.describe());
        assert!(!refused.stderr().contains("Zq8Xw3"), "{}", refused.describe());
        assert_eq!(plain.hits.load(std::sync::atomic::Ordering::SeqCst), 0, "the plain-http server got the request");
        assert_eq!(env.count("SELECT count(*) AS n FROM assignments"), 0);
        // A redirect that stays on https is followed.
        for path in ["/moved", "/moved-relative"] {
            let run = import(path);
            assert_eq!(run.code(), 0, "{}", run.describe());
        }
        assert_eq!(env.count("SELECT count(*) AS n FROM assignments"), 3);
        assert_eq!(https.paths().iter().filter(|p| *p == SECRET_PATH).count(), 2);
    }
}
