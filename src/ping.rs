//! Pings around a run, healthchecks.io style: `URL/start` before it and
//! `URL/EXIT_STATUS` after. A ping that fails is reported on stderr and never
//! changes the exit status.

use std::time::Duration;

pub struct Pinger {
    base: String,
    agent: ureq::Agent,
}

impl Pinger {
    pub fn new(url: Option<&str>) -> Option<Pinger> {
        let base = url
            .map(|url| url.trim().trim_end_matches('/').to_string())
            .filter(|url| !url.is_empty())?;
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        Some(Pinger { base, agent })
    }

    pub fn start(&self) {
        self.ping("start");
    }

    pub fn finish(&self, status: u8) {
        self.ping(&status.to_string());
    }

    fn ping(&self, suffix: &str) {
        let url = format!("{}/{suffix}", self.base);
        crate::log::info!("ping {suffix}");
        if let Err(error) = self.agent.get(&url).call() {
            let shown = url::Url::parse(&url)
                .map(|url| crate::config::redact(&url))
                .unwrap_or(url);
            crate::log::warning!("the ping to `{shown}` failed: {error}");
        }
    }
}
