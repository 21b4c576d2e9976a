//! The preferences page (issue 32, item 5): `reminders cgi` run per request
//! by a CGI host on loopback, driven by headless Chromium through
//! chromedriver and by curl, on both backends. The database is read after
//! each request: a page that says "saved" must have saved, and a refused
//! request must have changed nothing.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::smtp::{Received, SmtpServer};
use crate::common::{TestEnv, on_both_backends};

const SECRET: &str = "0123456789abcdef0123456789abcdef-page-secret";
const STUDENT: &str = "ann@students.example";
const GUARDIAN: &str = "pat@family.example";
const TEACHER: &str = "lee@staff.example";
/// What the messages link to; the test serves the same page on loopback.
const PREFERENCES_URL: &str = "https://school.example/preferences?token={token}";

/// A small CGI host (RFC 3875) on http.server: it runs the script per
/// request with the meta-variables, and, unlike `CGIHTTPRequestHandler`
/// (which always answers 200), sends the status the script's `Status:`
/// header names, as nginx and Apache do.
const CGI_HOST: &str = r#"
import http.server, os, subprocess, sys
script = sys.argv[1]

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def run(self):
        path, _, query = self.path.partition("?")
        length = self.headers.get("Content-Length")
        body = self.rfile.read(int(length)) if length else b""
        env = {
            "PATH": os.environ.get("PATH", ""),
            "GATEWAY_INTERFACE": "CGI/1.1",
            "REQUEST_METHOD": self.command,
            "QUERY_STRING": query,
            "SCRIPT_NAME": path,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": str(self.server.server_port),
            "SERVER_PROTOCOL": self.request_version,
            "REMOTE_ADDR": self.client_address[0],
        }
        if length:
            env["CONTENT_LENGTH"] = length
        if self.headers.get("Content-Type"):
            env["CONTENT_TYPE"] = self.headers.get("Content-Type")
        done = subprocess.run([script], input=body, env=env, capture_output=True)
        sys.stderr.write(done.stderr.decode(errors="replace"))
        out = done.stdout.replace(b"\r\n", b"\n")
        head, sep, rest = out.partition(b"\n\n")
        if done.returncode != 0 or not sep:
            self.send_error(500, "the CGI program gave no response (exit %d)" % done.returncode)
            return
        status, headers = 200, []
        for line in head.decode().split("\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            else:
                headers.append((name.strip(), value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(rest)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(rest)

    do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = run

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_port, flush=True)
server.serve_forever()
"#;

/// A running process, ended when the test is over, whatever its result.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The page served on loopback: the CGI host, and the script a web server
/// would run, which execs the real binary with its settings file.
struct Site {
    _host: Running,
    url: String,
}

impl Site {
    fn start(env: &TestEnv) -> Site {
        let settings = env.path("page.env");
        std::fs::write(
            &settings,
            format!("DATABASE_URL={}\nREMINDERS_SECRET={SECRET}\n", env.database_url),
        )
        .unwrap();
        let script = env.path("cgi-bin/preferences");
        std::fs::create_dir_all(script.parent().unwrap()).unwrap();
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nexec {} --env-file {} cgi --unit hours --targets 24,2 --overdue 24\n",
                env!("CARGO_BIN_EXE_reminders"),
                settings.display()
            ),
        )
        .unwrap();
        make_executable(&script);
        let host = env.path("cgi_host.py");
        std::fs::write(&host, CGI_HOST).unwrap();
        let mut child = Command::new("python3")
            .arg(&host)
            .arg(&script)
            .current_dir(env.dir.path())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the CGI host");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line.trim().parse().expect("the CGI host prints its port");
        Site {
            _host: Running(child),
            url: format!("http://127.0.0.1:{port}/cgi-bin/preferences"),
        }
    }

    fn page(&self, token: &str) -> String {
        format!("{}?token={token}", self.url)
    }
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// What curl got: the status, the headers (names lower-cased), the body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(found, _)| found == name)
            .map(|(_, value)| value.as_str())
    }
}

fn curl(args: &[&str]) -> Answer {
    let output = Command::new("curl")
        .args(["-sS", "-i", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl runs");
    assert!(
        output.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout).replace("\r\n", "\n");
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_string(),
    }
}

/// Everything the page may change, for "nothing changed" checks.
fn state(env: &TestEnv) -> Vec<Option<String>> {
    let mut rows = env.texts(
        "SELECT u.email || '|' || CAST(u.contact_opt_out AS TEXT) || '|' || COALESCE(u.opt_out_reason, '-') || '|' || \
         COALESCE(u.locale, '-') || '|' || COALESCE(CAST(p.daily_summary AS TEXT), '-') || '|' || \
         COALESCE(CAST(p.summary_hour AS TEXT), '-') || '|' || COALESCE(CAST(p.summary_weekday AS TEXT), '-') || '|' || \
         COALESCE(p.muted_types, '-') || '|' || COALESCE(p.reminder_types, '-') || '|' || COALESCE(p.send_window, '-') AS v \
         FROM users u LEFT JOIN user_preferences p ON p.user_id = u.id ORDER BY u.email",
    );
    rows.extend(env.texts(
        "SELECT email || '|' || CAST(contact_opt_out AS TEXT) || '|' || frequency || '|' || CAST(weekday AS TEXT) || '|' || \
         CAST(hour AS TEXT) || '|' || COALESCE(locale, '-') || '|' || COALESCE(send_window, '-') AS v FROM guardians ORDER BY email",
    ));
    rows
}

/// Ann in Paris with an essay due, followed by Pat; messages link to the page.
fn school(env: &TestEnv) -> SmtpServer {
    let smtp = SmtpServer::start();
    env.use_smtp(&smtp.url());
    env.set_var("REMINDERS_SECRET", SECRET);
    env.set_var("REMINDERS_PREFERENCES_URL", PREFERENCES_URL);
    env.add_user(STUDENT, "Europe/Paris");
    env.add_assignment(STUDENT, "Essay", "2030-03-05T12:00:00Z");
    env.json(&[
        "guardian",
        "add",
        "--student",
        STUDENT,
        "--email",
        GUARDIAN,
        "--timezone",
        "UTC",
    ]);
    smtp
}

/// The token of the page's link in a message's List-Unsubscribe header,
/// after checking the header and the footer both point to the page.
fn page_token(message: &Received) -> String {
    let header = message.header("List-Unsubscribe").expect("List-Unsubscribe");
    let prefix = "https://school.example/preferences?token=";
    let start = header.find(prefix).unwrap_or_else(|| panic!("{header}")) + prefix.len();
    let token = header[start..].split('>').next().unwrap().to_string();
    assert_eq!(
        message.header("List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    // The text part is quoted-printable: `=` is written `=3D`.
    let body = message.body().replace("=3D", "=");
    assert!(body.contains(&format!("{prefix}{token}")), "{body}");
    token
}

/// One char of the token changed, as a hand-edited or mangled link would be.
fn tampered(token: &str) -> String {
    let mut bytes = token.as_bytes().to_vec();
    let at = bytes.len() / 2;
    bytes[at] = if bytes[at] == b'a' { b'b' } else { b'a' };
    String::from_utf8(bytes).unwrap()
}

/// chromedriver with one headless Chromium session, phone-sized.
struct Browser {
    driver: Running,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start() -> Browser {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Running(
            Command::new("chromedriver")
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("chromedriver (Debian's chromium-driver; scripts/test.sh installs it)"),
        );
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while ureq::get(format!("{base}/status")).call().is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().unwrap();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         format!("--user-data-dir={}", profile.path().display())],
                "mobileEmulation": {"deviceMetrics": {"width": 390, "height": 844, "pixelRatio": 2.0}},
            },
        }}});
        let mut browser = Browser {
            driver,
            base,
            session: String::new(),
            _profile: profile,
        };
        let created = browser.call("POST", "/session", Some(capabilities));
        browser.session = created["sessionId"].as_str().expect("a session").to_string();
        browser
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let mut response = match (method, body) {
            ("GET", _) => agent.get(&url).call(),
            ("DELETE", _) => agent.delete(&url).call(),
            (_, body) => agent
                .post(&url)
                .header("content-type", "application/json")
                .send(body.unwrap_or(json!({})).to_string()),
        }
        .unwrap_or_else(|error| panic!("{method} {path}: {error}"));
        let text = response.body_mut().read_to_string().unwrap();
        let value: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{method} {path}: {text}"));
        assert!(response.status().is_success(), "{method} {path}: {text}");
        value["value"].clone()
    }

    fn session(&self, path: &str) -> String {
        format!("/session/{}{path}", self.session)
    }

    fn open(&self, url: &str) {
        self.call("POST", &self.session("/url"), Some(json!({ "url": url })));
    }

    fn element(&self, css: &str) -> String {
        let found = self.call(
            "POST",
            &self.session("/element"),
            Some(json!({"using": "css selector", "value": css})),
        );
        found["element-6066-11e4-a52e-4f735466cecf"]
            .as_str()
            .unwrap_or_else(|| panic!("{css}: {found}"))
            .to_string()
    }

    fn click(&self, css: &str) {
        let id = self.element(css);
        self.call("POST", &self.session(&format!("/element/{id}/click")), None);
    }

    /// Keys typed into an element, as a keyboard user would.
    fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.call(
            "POST",
            &self.session(&format!("/element/{id}/value")),
            Some(json!({ "text": text })),
        );
    }

    fn is_selected(&self, css: &str) -> bool {
        let id = self.element(css);
        self.call("GET", &self.session(&format!("/element/{id}/selected")), None)
            .as_bool()
            .unwrap()
    }

    fn source(&self) -> String {
        self.call("GET", &self.session("/source"), None)
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The page's source once `ready` says it is the one wanted (10 s at most).
    fn source_once(&self, ready: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let source = self.source();
            if ready(&source) {
                return source;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the page never came: {source}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The whole page, top to bottom, at the phone's width (WebDriver's own
    /// screenshot stops at the viewport; Chromium's DevTools call does not).
    fn screenshot(&self, path: &Path) {
        let cdp = |cmd: &str, params: Value| {
            self.call(
                "POST",
                &self.session("/goog/cdp/execute"),
                Some(json!({ "cmd": cmd, "params": params })),
            )
        };
        let size = &cdp("Page.getLayoutMetrics", json!({}))["cssContentSize"];
        let clip = json!({"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1});
        let png = cdp(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true, "clip": clip}),
        );
        let bytes = data_encoding::BASE64
            .decode(png["data"].as_str().unwrap().as_bytes())
            .unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = ureq::delete(format!("{}/session/{}", self.base, self.session)).call();
        }
        let _ = &self.driver;
    }
}

/// Where the screenshots are kept: target/test-artifacts.
fn artifact(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/test-artifacts")
        .join(name)
}

on_both_backends! {
    fn a_student_changes_two_preferences_in_a_browser_and_the_database_has_them(env: &TestEnv) {
        let smtp = school(env);
        env.send_24h("2030-03-04T12:00:00Z", &[]);
        let sent = smtp.received();
        assert_eq!(sent.len(), 1, "the 24h reminder");
        let token = page_token(&sent[0]);
        let site = Site::start(env);
        let browser = Browser::start();
        browser.open(&site.page(&token));
        let page = browser.source();
        assert!(page.contains("Your email preferences") && page.contains(STUDENT), "{page}");
        for offered in ["type-24h", "type-2h", "type-overdue-24h"] {
            assert!(browser.is_selected(&format!("#{offered}")), "{offered} starts ticked");
        }
        // One change by keyboard (space on the focused box), one by pointer.
        browser.type_into("#type-2h", " ");
        assert!(!browser.is_selected("#type-2h"), "space unticks the box");
        browser.click("#frequency option[value=weekly]");
        browser.click("#weekday option[value=fri]");
        browser.type_into("#send_window", "sat,sun 10:00-12:00; mon-fri 16:00-20:00");
        browser.click("button[type=submit]");
        // The click returns once the form is sent, maybe before the answer has loaded.
        browser.source_once(|page| page.contains("Saved."));
        assert!(!browser.is_selected("#type-2h") && browser.is_selected("#frequency option[value=weekly]"));
        let name = match env.backend {
            crate::common::Backend::Sqlite => "preferences-page.png",
            crate::common::Backend::Postgres => "preferences-page-postgres.png",
        };
        browser.screenshot(&artifact(name));
        assert_eq!(
            env.texts("SELECT COALESCE(muted_types, '-') || ' ' || CAST(daily_summary AS TEXT) || ' ' || \
                       CAST(summary_weekday AS TEXT) || ' ' || CAST(summary_hour AS TEXT) AS v FROM user_preferences"),
            [Some(format!("2h {} 5 7", if env.backend == crate::common::Backend::Sqlite { "1" } else { "true" }))]
        );
        // Stored as the canonical spec that `user set --send-window` stores.
        assert_eq!(
            env.texts("SELECT send_window AS v FROM user_preferences"),
            [Some("mon-fri 16:00-20:00; sat,sun 10:00-12:00".to_string())]
        );
        assert_eq!(env.count("SELECT COUNT(*) AS n FROM users WHERE contact_opt_out"), 0);
    }

    fn refusals_change_nothing_and_one_click_unsubscribes(env: &TestEnv) {
        let smtp = school(env);
        env.send_24h("2030-03-04T12:00:00Z", &[]);
        let token = page_token(&smtp.received()[0]);
        let site = Site::start(env);
        let page = site.page(&token);
        let before = state(env);

        let shown = curl(&[&page]);
        assert_eq!(shown.status, 200, "{}", shown.body);
        assert_eq!(shown.header("cache-control"), Some("no-store"));
        assert_eq!(shown.header("referrer-policy"), Some("no-referrer"));
        assert_eq!(shown.header("x-frame-options"), Some("DENY"));
        assert_eq!(shown.header("x-content-type-options"), Some("nosniff"));
        let policy = shown.header("content-security-policy").unwrap();
        assert!(policy.starts_with("default-src 'none'; style-src 'sha256-") && policy.contains("frame-ancestors 'none'"), "{policy}");

        let form = "form=preferences&types=24h&frequency=off&weekday=mon&hour=9&locale=fr&send_window=&stop=on";
        for (args, status, needle) in [
            (vec![site.page(&tampered(&token))], 403, "this link is not valid"),
            (vec!["-d".to_string(), form.to_string(), site.page(&tampered(&token))], 403, "this link is not valid"),
            (vec!["-d".to_string(), "List-Unsubscribe=One-Click".to_string(), site.page(&tampered(&token))], 403, "not valid"),
            (vec![site.page(&token[..token.len() - 3])], 400, "this link is not valid"),
            (vec![site.url.clone()], 400, "this link has no token"),
            (vec!["-X".to_string(), "PUT".to_string(), page.clone()], 405, "is not how this page is used"),
            (vec!["-d".to_string(), form.replace("hour=9", "hour=25"), page.clone()], 400, "`25` is not an hour"),
            (vec!["-d".to_string(), form.replace("types=24h", "types=5h"), page.clone()], 400, "`5h` is not one of the reminders"),
            (vec!["-d".to_string(), form.replace("send_window=", "send_window=mon-fri+9-5"), page.clone()], 400, "like `mon-fri 07:00-21:00"),
            (vec!["-d".to_string(), format!("{form}&pad={}", "x".repeat(70_000)), page.clone()], 413, "too large"),
            (vec!["-H".to_string(), "Content-Type: text/plain".to_string(), "-d".to_string(), form.to_string(), page.clone()], 415, "x-www-form-urlencoded"),
        ] {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let answer = curl(&args);
            assert_eq!(answer.status, status, "{args:?}: {}", answer.body);
            assert!(answer.body.to_lowercase().contains(&needle.to_lowercase()), "{args:?}: {}", answer.body);
            assert_eq!(answer.header("cache-control"), Some("no-store"), "{args:?}");
            assert_eq!(state(env), before, "{args:?} changed nothing");
        }
        assert_eq!(curl(&["-X", "PUT", &page]).header("allow"), Some("GET, HEAD, POST"));

        // RFC 8058: the mail client POSTs to the List-Unsubscribe URL, and nothing else.
        let unsubscribed = curl(&["-X", "POST", "-d", "List-Unsubscribe=One-Click", &page]);
        assert_eq!(unsubscribed.status, 200, "{}", unsubscribed.body);
        assert_eq!(
            env.texts(&format!("SELECT opt_out_reason AS v FROM users WHERE email = '{STUDENT}' AND contact_opt_out")),
            [Some("unsubscribed".to_string())]
        );
        let again = curl(&[&page]);
        assert!(again.body.contains(r#"id="stop" name="stop" value="on" checked"#), "{}", again.body);
        // Unticking "stop all email" on the page brings the mail back.
        let resumed = curl(&["-d", "form=preferences&types=24h&types=2h&types=overdue-24h&frequency=daily&weekday=mon&hour=7&locale=&send_window=", &page]);
        assert_eq!(resumed.status, 200, "{}", resumed.body);
        assert_eq!(env.count(&format!("SELECT COUNT(*) AS n FROM users WHERE email = '{STUDENT}' AND contact_opt_out")), 0);
    }

    fn a_teacher_sets_their_report_day_and_stops_all_email(env: &TestEnv) {
        let smtp = school(env);
        env.json(&["assignment", "add", "--student", STUDENT, "--title", "Lab", "--due", "2030-03-06T12:00:00Z",
                   "--course", "CS101", "--now", "2000-01-01T00:00:00Z"]);
        env.json(&["teacher", "add", "--course", "CS101", "--email", TEACHER, "--timezone", "UTC"]);
        // Friday 16:00 UTC: Lee's weekly report.
        env.ok(&["summary", "--send", "--now", "2030-03-08T16:00:00Z"]);
        let report = smtp
            .received()
            .into_iter()
            .find(|message| message.header("To").is_some_and(|to| to.contains(TEACHER)))
            .expect("the teacher's report");
        let site = Site::start(env);
        let page = site.page(&page_token(&report));
        let shown = curl(&[&page]);
        assert_eq!(shown.status, 200, "{}", shown.body);
        assert!(shown.body.contains("Weekly course report") && !shown.body.contains("id=\"frequency\""), "{}", shown.body);
        let saved = curl(&["-d", "form=preferences&weekday=thu&hour=9&locale=fr&stop=on", &page]);
        assert_eq!(saved.status, 200, "{}", saved.body);
        assert!(saved.body.contains("Nous ne vous enverrons plus aucun courriel."), "{}", saved.body);
        assert_eq!(
            env.texts(&format!("SELECT CAST(weekday AS TEXT) || ' ' || CAST(hour AS TEXT) || ' ' || locale || ' ' || \
                                opt_out_reason AS v FROM teachers WHERE email = '{TEACHER}' AND contact_opt_out")),
            [Some("4 9 fr unsubscribed".to_string())]
        );
    }

    fn the_page_and_the_unsubscribe_link_are_one_or_the_other(env: &TestEnv) {
        school(env);
        env.set_var("REMINDERS_UNSUBSCRIBE_URL", "https://school.example/unsubscribe?t={token}");
        let both = env.send_24h("2030-03-04T12:00:00Z", &[]);
        assert_eq!(both.code(), 1, "{}", both.describe());
        assert!(both.stderr().contains("set REMINDERS_PREFERENCES_URL or REMINDERS_UNSUBSCRIBE_URL, not both"), "{}", both.describe());
        env.set_var("REMINDERS_UNSUBSCRIBE_URL", "");
        env.set_var("REMINDERS_PREFERENCES_URL", "http://school.example/preferences?token={token}");
        let plain_http = env.send_24h("2030-03-04T12:00:00Z", &[]);
        assert_eq!(plain_http.code(), 1, "{}", plain_http.describe());
        assert!(plain_http.stderr().contains("must be an https:// link with `{token}`"), "{}", plain_http.describe());
        assert_eq!(env.count("SELECT COUNT(*) AS n FROM send_logs"), 0);
    }

    fn a_guardian_sets_their_digest_and_language(env: &TestEnv) {
        let smtp = school(env);
        // Monday 18:00 UTC: Pat's daily digest.
        env.ok(&["summary", "--send", "--now", "2030-03-04T18:00:00Z"]);
        let digest = smtp
            .received()
            .into_iter()
            .find(|message| message.header("To").is_some_and(|to| to.contains(GUARDIAN)))
            .expect("the guardian's digest");
        let token = page_token(&digest);
        let site = Site::start(env);
        let page = site.page(&token);
        let shown = curl(&[&page]);
        assert_eq!(shown.status, 200);
        assert!(shown.body.contains("Updates on the students you follow") && !shown.body.contains("name=\"types\""), "{}", shown.body);
        let saved = curl(&["-d", "form=preferences&frequency=weekly&weekday=fri&hour=17&locale=es&send_window=mon-fri+17%3A00-21%3A00", &page]);
        assert_eq!(saved.status, 200, "{}", saved.body);
        // The page speaks the language just chosen.
        assert!(saved.body.contains(r#"<html lang="es">"#) && saved.body.contains("Guardado."), "{}", saved.body);
        assert_eq!(
            env.texts(&format!("SELECT frequency || ' ' || CAST(weekday AS TEXT) || ' ' || CAST(hour AS TEXT) || ' ' || locale || ' ' || send_window AS v FROM guardians WHERE email = '{GUARDIAN}'")),
            [Some("weekly 5 17 es mon-fri 17:00-21:00".to_string())]
        );
    }
}

/// The fenced block of `language` that follows `after` in the README's
/// section on the page.
fn readme_block(section: &str, after: &str, language: &str) -> String {
    let from = section.find(after).unwrap_or_else(|| panic!("`{after}` in the README"));
    let fence = format!("```{language}\n");
    let start = section[from..].find(&fence).unwrap() + from + fence.len();
    let end = section[start..].find("```").unwrap() + start;
    section[start..end].to_string()
}

/// The README's nginx `location` and the script it runs, as written but for
/// where the files are, behind nginx and fcgiwrap: the web server the
/// README tells a school to use.
#[test]
fn the_readmes_nginx_lines_serve_the_page() {
    let env = TestEnv::new(crate::common::Backend::Sqlite).unwrap();
    let smtp = school(&env);
    env.send_24h("2030-03-04T12:00:00Z", &[]);
    let token = page_token(&smtp.received()[0]);

    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme.find("## The preferences page").expect("the README's section");
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |end| end + 3)];
    let install = readme_block(section, "The web server runs a small script", "sh");
    let script = install
        .split_once("<<'SCRIPT'\n")
        .and_then(|(_, rest)| rest.split_once("SCRIPT\n"))
        .map(|(script, _)| script.to_string())
        .expect("the script in the README");
    let location = readme_block(section, "**nginx**", "nginx");

    let dir = env.path("nginx");
    std::fs::create_dir_all(&dir).unwrap();
    let settings = env.path("page.env");
    std::fs::write(
        &settings,
        format!("DATABASE_URL={}\nREMINDERS_SECRET={SECRET}\n", env.database_url),
    )
    .unwrap();
    let script_path = dir.join("preferences.cgi");
    let socket = dir.join("fcgiwrap.sock");
    std::fs::write(
        &script_path,
        script
            .replace("/usr/local/bin/reminders", env!("CARGO_BIN_EXE_reminders"))
            .replace("/etc/reminders/env", &settings.display().to_string()),
    )
    .unwrap();
    make_executable(&script_path);
    let location = location
        .replace(
            "/usr/local/lib/reminders/preferences.cgi",
            &script_path.display().to_string(),
        )
        .replace("/run/reminders-fcgiwrap.socket", &socket.display().to_string());
    std::fs::copy("/etc/nginx/fastcgi_params", dir.join("fastcgi_params")).expect("nginx's fastcgi_params");
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let d = dir.display();
    std::fs::write(
        dir.join("nginx.conf"),
        format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  fastcgi_temp_path {d}/fastcgi;\n  \
             proxy_temp_path {d}/proxy;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
             server {{\n    listen 127.0.0.1:{port};\n{location}  }}\n}}\n"
        ),
    )
    .unwrap();
    let _fcgiwrap = Running(
        Command::new("fcgiwrap")
            .arg("-f")
            .arg("-s")
            .arg(format!("unix:{}", socket.display()))
            .spawn()
            .expect("fcgiwrap (scripts/test.sh installs it)"),
    );
    let _nginx = Running(
        Command::new("nginx")
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .spawn()
            .expect("nginx (scripts/test.sh installs it)"),
    );
    let started = Instant::now();
    while !(socket.exists() && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "nginx and fcgiwrap did not start: {}",
            std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let page = format!("http://127.0.0.1:{port}/reminders/preferences?token={token}");
    let shown = curl(&[&page]);
    assert_eq!(shown.status, 200, "{}", shown.body);
    assert!(shown.body.contains("Your email preferences"), "{}", shown.body);
    assert_eq!(shown.header("cache-control"), Some("no-store"));
    let tampered_page = format!(
        "http://127.0.0.1:{port}/reminders/preferences?token={}",
        tampered(&token)
    );
    assert_eq!(curl(&["-d", "List-Unsubscribe=One-Click", &tampered_page]).status, 403);
    assert_eq!(env.count("SELECT COUNT(*) AS n FROM users WHERE contact_opt_out"), 0);
    let unsubscribed = curl(&["-X", "POST", "-d", "List-Unsubscribe=One-Click", &page]);
    assert_eq!(unsubscribed.status, 200, "{}", unsubscribed.body);
    assert_eq!(env.count("SELECT COUNT(*) AS n FROM users WHERE contact_opt_out"), 1);
}
