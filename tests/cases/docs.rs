//! The Markdown documents link to each other and into the repository: every
//! relative link must lead to a file that exists, and every `#anchor` to a
//! heading of the file it names, so that moving text never strands a reader.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The documents a reader follows links through.
fn documents() -> Vec<PathBuf> {
    let root = Path::new(ROOT);
    let mut documents = vec![
        root.join("README.md"),
        root.join("CONTRIBUTING.md"),
        root.join("BENCHMARKS.md"),
    ];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|extension| extension == "md") {
            documents.push(path);
        }
    }
    documents
}

/// The lines of a Markdown text outside its fenced code blocks.
fn prose(text: &str) -> Vec<&str> {
    let mut in_fence = false;
    text.lines()
        .filter(|line| {
            if line.trim_start().starts_with("```") {
                in_fence = !in_fence;
                return false;
            }
            !in_fence
        })
        .collect()
}

/// A heading's anchor as GitHub makes it: lower case, spaces as hyphens,
/// and every other character but letters, digits, `-` and `_` dropped.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// Every anchor a document's headings give, a repeated one numbered as
/// GitHub numbers it (`name`, `name-1`, …).
fn anchors(text: &str) -> BTreeSet<String> {
    let mut anchors = BTreeSet::new();
    for line in prose(text) {
        let Some(heading) = line.strip_prefix('#').map(|rest| rest.trim_start_matches('#')) else {
            continue;
        };
        if !heading.starts_with(' ') {
            continue;
        }
        let base = slug(heading);
        let mut anchor = base.clone();
        let mut repeat = 0;
        while anchors.contains(&anchor) {
            repeat += 1;
            anchor = format!("{base}-{repeat}");
        }
        anchors.insert(anchor);
    }
    anchors
}

/// The targets of a document's inline links (`[text](target)`), leaving
/// out code spans, where `](` is just text.
fn link_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    for line in prose(text) {
        let outside_code: String = line
            .split('`')
            .enumerate()
            .filter(|(index, _)| index % 2 == 0)
            .map(|(_, part)| part)
            .collect::<Vec<_>>()
            .join(" ");
        for (at, _) in outside_code.match_indices("](") {
            let rest = &outside_code[at + 2..];
            if let Some(end) = rest.find(')') {
                targets.push(rest[..end].to_string());
            }
        }
    }
    targets
}

#[test]
fn every_relative_link_in_the_documents_resolves() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for document in documents() {
        let text = std::fs::read_to_string(&document).unwrap();
        let name = document.strip_prefix(ROOT).unwrap().display().to_string();
        for target in link_targets(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (path, anchor) = match target.split_once('#') {
                Some((path, anchor)) => (path, Some(anchor)),
                None => (target.as_str(), None),
            };
            let linked = if path.is_empty() {
                document.clone()
            } else {
                document.parent().unwrap().join(path)
            };
            if !linked.exists() {
                broken.push(format!("{name}: `{target}`: no file {}", linked.display()));
                continue;
            }
            let Some(anchor) = anchor else { continue };
            if linked.extension().is_none_or(|extension| extension != "md") {
                broken.push(format!(
                    "{name}: `{target}`: an anchor into a file that is not Markdown"
                ));
                continue;
            }
            let headings = anchors(&std::fs::read_to_string(&linked).unwrap());
            if !headings.contains(anchor) {
                broken.push(format!("{name}: `{target}`: no heading with the anchor `{anchor}`"));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    assert!(
        checked > 50,
        "only {checked} relative links found: is the parser right?"
    );
}

#[test]
fn anchors_are_made_as_github_makes_them() {
    assert_eq!(slug(" `reminders send`"), "reminders-send");
    assert_eq!(
        slug(" Templates: `template check`, `preview`"),
        "templates-template-check-preview"
    );
    assert_eq!(
        slug(" The prepared-statement switch (`?prepared_statements=false`)"),
        "the-prepared-statement-switch-prepared_statementsfalse"
    );
    assert_eq!(
        anchors("# A\n```sh\n# not a heading\n```\n## A\n#hashtag\n")
            .into_iter()
            .collect::<Vec<_>>(),
        ["a", "a-1"]
    );
    assert_eq!(
        link_targets("[a](one.md) `[b](two.md)` [c](three.md#x) [d](https://example.com)"),
        ["one.md", "three.md#x", "https://example.com"]
    );
}
