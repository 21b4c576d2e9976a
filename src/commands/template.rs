//! `reminders template check`: render every template against sample data.

use serde_json::json;

use super::Outcome;
use crate::output;
use crate::render::Templates;

pub fn check(dir: Option<&std::path::Path>) -> anyhow::Result<Outcome> {
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
