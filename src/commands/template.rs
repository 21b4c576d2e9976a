//! `reminders template check`: render every template against sample data.

use serde_json::json;

use super::{Context, Outcome, Run};
use crate::config::TemplateCheckJob;
use crate::db::{Db, users};
use crate::error::Failure;
use crate::output;
use crate::render::Templates;

impl Run for TemplateCheckJob {
    fn run(self, cx: &Context) -> Result<Outcome, Failure> {
        let templates = Templates::load(self.dir.as_deref())?;
        templates.check()?;
        // With a database at hand, the languages its people read that no
        // template is written in: they get the English ones.
        let in_use = match cx.database().ok().map(Db::open) {
            Some(Ok(mut db)) => users::locales_in_use(&mut db)?,
            _ => Vec::new(),
        };
        let untranslated: Vec<(String, i64)> = in_use
            .into_iter()
            .filter(|(locale, _)| !templates.speaks(locale))
            .collect();
        Ok(Outcome::success(report(&templates, &untranslated)))
    }
}

fn report(templates: &Templates, untranslated: &[(String, i64)]) -> output::Message {
    let sources = templates.sources();
    let mut text = output::table(
        &["template", "from"],
        sources.iter().map(|(name, from)| [name.clone(), from.clone()]),
    );
    text.push_str("\nall templates render");
    for (locale, people) in untranslated {
        text.push_str(&format!(
            "\n{} read {locale}, which no template is written in: they get English",
            output::count(*people, "person", "people")
        ));
    }
    let json = json!({
        "ok": true,
        "templates": sources.iter().map(|(name, from)| json!({"file": name, "from": from})).collect::<Vec<_>>(),
        "locales_without_templates": untranslated.iter().map(|(locale, people)| json!({"locale": locale, "people": people})).collect::<Vec<_>>(),
    });
    output::Message { text, json }
}
