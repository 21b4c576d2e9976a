//! `reminders template check`: render every template against sample data.

use serde_json::json;

use super::{Context, Outcome, Run};
use crate::config::TemplateCheckJob;
use crate::error::Failure;
use crate::output;
use crate::render::Templates;

impl Run for TemplateCheckJob {
    fn run(self, _: &Context) -> Result<Outcome, Failure> {
        check(self.dir.as_deref())
    }
}

fn check(dir: Option<&std::path::Path>) -> Result<Outcome, Failure> {
    let templates = Templates::load(dir)?;
    templates.check()?;
    let sources = templates.sources();
    let text = output::table(
        &["template", "from"],
        sources.iter().map(|(name, from)| [name.clone(), from.clone()]),
    );
    let json = json!({ "ok": true, "templates": sources.iter().map(|(name, from)| json!({"file": name, "from": from})).collect::<Vec<_>>() });
    Ok(Outcome::success(output::Message {
        text: format!("{text}\nall templates render"),
        json,
    }))
}
