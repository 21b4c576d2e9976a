//! Pings around a run, healthchecks.io style: `URL/start` before it and
//! `URL/EXIT_STATUS` after. A ping that fails is reported on stderr and never
//! changes the exit status.

use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);

pub struct Pinger {
    base: String,
    /// How the URL is shown: its scheme and host only, since the rest of a
    /// ping URL is the check's secret (anyone who knows it can ping).
    shown: String,
    agent: ureq::Agent,
}

impl Pinger {
    pub fn new(url: Option<&str>) -> Option<Pinger> {
        let base = url
            .map(|url| url.trim().trim_end_matches('/').to_string())
            .filter(|url| !url.is_empty())?;
        let shown = match url::Url::parse(&base) {
            Ok(parsed) => {
                crate::redact::hide_secrets_of_url(&base);
                crate::redact::hide(parsed[url::Position::BeforePath..].trim_start_matches('/'));
                format!("`{}://{}`", parsed.scheme(), parsed.host_str().unwrap_or_default())
            }
            Err(_) => {
                crate::redact::hide(&base);
                "the ping URL, which is not a URL,".to_string()
            }
        };
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(TIMEOUT))
            .tls_config(crate::tls::http_config())
            .build()
            .into();
        Some(Pinger { base, shown, agent })
    }

    pub fn start(&self) {
        self.ping("start");
    }

    pub fn finish(&self, status: u8) {
        self.ping(&status.to_string());
    }

    fn ping(&self, suffix: &str) {
        let url = with_suffix(&self.base, suffix);
        crate::log::info!("ping {suffix}");
        if let Err(error) = self.agent.get(&url).call() {
            let reason = crate::tls::explain_http(&error, &url, TIMEOUT);
            crate::log::warning!("the ping to {} failed: {reason}", self.shown);
        }
    }

    /// What `reminders check` shows of the ping URL's TLS, when it is `https://`.
    pub fn tls_summary(&self) -> Option<Result<String, String>> {
        let url = url::Url::parse(&self.base).ok().filter(|url| url.scheme() == "https")?;
        let (host, port) = (url.host_str()?, url.port_or_known_default()?);
        Some(
            crate::tls::inspect(host, port, TIMEOUT, |_| Ok(()))
                .map_err(|error| format!("{error:#}"))
                .and_then(|inspection| inspection.summary(host, port)),
        )
    }
}

/// `BASE/SUFFIX`, with the suffix on the path: a check URL may carry a query
/// (`?create=1`), which stays after it.
fn with_suffix(base: &str, suffix: &str) -> String {
    match url::Url::parse(base) {
        Ok(mut url) if !url.cannot_be_a_base() => {
            if let Ok(mut segments) = url.path_segments_mut() {
                segments.pop_if_empty().push(suffix);
            }
            url.to_string()
        }
        _ => format!("{base}/{suffix}"),
    }
}

#[cfg(test)]
mod tests {
    use super::with_suffix;

    #[test]
    fn the_suffix_goes_on_the_path_before_any_query() {
        assert_eq!(
            with_suffix("https://hc-ping.com/abc-123?create=1", "start"),
            "https://hc-ping.com/abc-123/start?create=1"
        );
        assert_eq!(
            with_suffix("https://hc-ping.com/abc-123", "0"),
            "https://hc-ping.com/abc-123/0"
        );
        assert_eq!(with_suffix("https://ping.example/", "3"), "https://ping.example/3");
    }
}
