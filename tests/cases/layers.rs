//! The layers import one way only: each top-level module of `src/` may name
//! (`crate::…`) only the modules listed after it here.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Top to bottom. A module may import only modules below it.
const LAYERS: &[&str] = &[
    "main",
    "commands",
    "config",
    "cli",
    "web",
    "bounces",
    "reminders",
    "summaries",
    "contacts",
    "queue",
    "db",
    "mail",
    "ping",
    "render",
    "tls",
    "schedule",
    "ics",
    "input",
    "output",
    "log",
    "time",
    "redact",
    "error",
    "fuzz",
];

/// The `.rs` files of a top-level module: `src/NAME.rs`, or everything under `src/NAME/`.
fn files_of(src: &Path, module: &str) -> Vec<PathBuf> {
    let single = src.join(format!("{module}.rs"));
    if single.exists() {
        return vec![single];
    }
    let mut files = Vec::new();
    let mut dirs = vec![src.join(module)];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
}

/// The top-level modules a file names as `crate::NAME`, outside comments.
fn imports(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or_default();
        for (index, _) in code.match_indices("crate::") {
            let name: String = code[index + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

#[test]
fn modules_import_one_way_only() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut listed: Vec<String> = std::fs::read_dir(&src)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_dir() || path.extension().is_some_and(|e| e == "rs"))
        .map(|path| path.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    listed.sort();
    let mut layered: Vec<String> = LAYERS.iter().map(|name| name.to_string()).collect();
    layered.sort();
    assert_eq!(listed, layered, "every top-level module of src/ has a place in LAYERS");

    let mut upward = Vec::new();
    for (rank, module) in LAYERS.iter().enumerate() {
        for file in files_of(&src, module) {
            for name in imports(&std::fs::read_to_string(&file).unwrap()) {
                match LAYERS.iter().position(|layer| *layer == name) {
                    Some(other) if other > rank => {}
                    Some(other) if other == rank => {}
                    Some(_) => upward.push(format!("{} imports crate::{name}", file.display())),
                    None => {}
                }
            }
        }
    }
    assert!(upward.is_empty(), "imports against the layers:\n{}", upward.join("\n"));
}

#[test]
fn the_checker_sees_an_import() {
    let found = imports("use crate::db::Db; // crate::mail\nlet x = crate::queue::policy::backoff;");
    assert_eq!(found.into_iter().collect::<Vec<_>>(), ["db", "queue"]);
}
