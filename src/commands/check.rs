//! `reminders check`: one line per thing a cron run needs, ok or the reason.
//! Exits 0 when all pass and 1 otherwise; never shows a credential. TLS
//! lines show what each server presents and whether it is trusted.

use std::time::Duration;

use serde_json::json;

use super::{Context, Outcome, Run};
use crate::config::CheckJob;
use crate::db::Db;
use crate::error::{ExitStatus, Failure};
use crate::mail::Mailer;
use crate::output::{self, Report};
use crate::ping::Pinger;
use crate::render::Templates;

impl Run for CheckJob {
    fn run(self, cx: &Context) -> Result<Outcome, Failure> {
        check(cx, self)
    }
}

fn check(cx: &Context, job: CheckJob) -> Result<Outcome, Failure> {
    let global = cx.global;
    let mut checks = Vec::new();
    let mut check = |name: &str, result: Result<String, String>| checks.push((name.to_string(), result));

    match &global.database {
        Err(failure) => check("database", Err(failure.reason.clone())),
        Ok(url) => match Db::open(url) {
            Ok(_) => check(
                "database",
                Ok(format!("`{}` is reachable and fully migrated", url.display())),
            ),
            Err(error) => check("database", Err(format!("{error:#}"))),
        },
    }
    match &job.mail {
        Err(failure) => check("mail settings", Err(failure.reason.clone())),
        Ok(settings) => {
            check(
                "mail settings",
                Ok(format!(
                    "SMTP_URL `{}`, MAIL_FROM `{}`",
                    settings.url.display(),
                    settings.sender.from
                )),
            );
            if let Some(dkim) = &settings.sender.dkim {
                check(
                    "DKIM",
                    Ok(format!(
                        "the key loads; publish this TXT record at {}: \"{}\"",
                        dkim.record_name, dkim.record
                    )),
                );
            }
            match Mailer::new(&settings.url, settings.oauth.as_ref(), Duration::from_secs(10)) {
                Err(error) => check("mail server", Err(format!("{error:#}"))),
                Ok(mailer) => {
                    for (step, result) in mailer.probe() {
                        check(step, result);
                    }
                    if let Some(tls) = mailer.tls_summary() {
                        check("mail TLS", tls);
                    }
                }
            }
        }
    }
    match Templates::load(global.templates.as_deref()).and_then(|t| t.check().map(|()| t)) {
        Ok(loaded) => {
            let overridden = loaded.sources().iter().filter(|(_, from)| from != "built in").count();
            check("templates", Ok(format!("all render ({overridden} overridden)")))
        }
        Err(error) => check("templates", Err(format!("{error:#}"))),
    }
    if let Some(tls) = Pinger::new(job.ping_url.as_deref()).and_then(|pinger| pinger.tls_summary()) {
        check("ping TLS", tls);
    }
    check("TLS trust", Ok(crate::tls::describe()));
    if !global.unknown_settings.is_empty() {
        check("settings", Err(global.unknown_settings.join("; ")));
    }
    let failed: Vec<String> = checks
        .iter()
        .filter(|(_, result)| result.is_err())
        .map(|(name, _)| name.clone())
        .collect();
    let report = CheckReport {
        checks,
        settings: global.provenance.describe(),
    };
    if failed.is_empty() {
        return Ok(Outcome::success(report));
    }
    let reason = format!("error: a cron run would fail: check {} above", failed.join(", "));
    Ok(Outcome::unfinished(report, ExitStatus::Failure, vec![reason]))
}

struct CheckReport {
    checks: Vec<(String, Result<String, String>)>,
    /// (setting, where it came from)
    settings: Vec<(String, String)>,
}

impl Report for CheckReport {
    fn to_json(&self) -> serde_json::Value {
        json!({
            "ok": self.checks.iter().all(|(_, result)| result.is_ok()),
            "checks": self.checks.iter().map(|(name, result)| match result {
                Ok(detail) => json!({ "check": name, "ok": true, "detail": detail }),
                Err(reason) => json!({ "check": name, "ok": false, "detail": reason }),
            }).collect::<Vec<_>>(),
            "settings": self.settings.iter().map(|(name, from)| json!({ "setting": name, "from": from })).collect::<Vec<_>>(),
        })
    }

    fn to_table(&self) -> String {
        let mut lines: Vec<String> = self
            .checks
            .iter()
            .map(|(name, result)| match result {
                Ok(detail) => format!("ok    {name}: {detail}"),
                Err(reason) => format!("FAIL  {name}: {reason}"),
            })
            .collect();
        lines.push(String::new());
        lines.push(output::table(
            &["setting", "from"],
            self.settings.iter().map(|(n, f)| [n.clone(), f.clone()]),
        ));
        lines.join("\n")
    }
}
