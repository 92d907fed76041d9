//! The docs name the same backends everywhere: the table under "Backends" in `src/store/mod.rs`
//! is the one list, and every place that names backends (the crate docs, the READMEs' first
//! paragraphs, each `# Atomicity` section that names any) names all of them; and every public
//! async function documents its cancel safety.

use std::path::{Path, PathBuf};

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The first column of the table under `//! # Backends`.
fn backends() -> Vec<String> {
    let text = read(&crate_dir().join("src/store/mod.rs"));
    let table = text.split("//! # Backends").nth(1).expect("a Backends section in src/store/mod.rs");
    let names: Vec<String> = table
        .lines()
        .skip(1)
        .map(str::trim)
        .take_while(|line| line.starts_with("//!"))
        .filter_map(|line| line.strip_prefix("//! | "))
        .filter_map(|row| row.split(" | ").next())
        .filter(|name| *name != "backend" && !name.starts_with("---"))
        .map(str::to_owned)
        .collect();
    assert!(names.len() >= 4, "the Backends table lists {names:?}");
    names
}

fn names_all(text: &str, backends: &[String]) -> Vec<String> {
    let lower = text.to_lowercase();
    backends.iter().filter(|b| !lower.contains(&b.to_lowercase())).cloned().collect()
}

/// The first paragraph after the title of a Markdown file, or of a crate's `//!` docs.
fn first_paragraph(text: &str) -> String {
    text.lines()
        .map(|line| line.trim_start_matches("//!").trim())
        .skip_while(|line| line.is_empty() || line.starts_with('#'))
        .take_while(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn the_crate_docs_and_readmes_name_every_backend() {
    let backends = backends();
    let mut places = vec![crate_dir().join("src/lib.rs"), crate_dir().join("README.md")];
    // In the workspace (not in the packaged crate, which holds only its own files): the
    // repository's and the Python package's READMEs too.
    let workspace = crate_dir().join("..");
    if workspace.join("bindings-python").is_dir() {
        places.extend([workspace.join("README.md"), workspace.join("bindings-python/README.md")]);
    }
    for place in places {
        let paragraph = first_paragraph(&read(&place));
        let missing = names_all(&paragraph, &backends);
        assert!(
            missing.is_empty(),
            "{}'s first paragraph leaves out {missing:?}: {paragraph}",
            place.display()
        );
    }
}

#[test]
fn every_atomicity_section_that_names_a_backend_names_them_all() {
    let backends = backends();
    let mut sources = vec![crate_dir().join("src")];
    let mut checked = 0;
    while let Some(path) = sources.pop() {
        if path.is_dir() {
            sources.extend(std::fs::read_dir(&path).expect("read_dir").map(|e| e.expect("entry").path()));
            continue;
        }
        if path.extension().is_none_or(|ext| ext != "rs") {
            continue;
        }
        let text = read(&path);
        for section in text.split("/// # Atomicity").skip(1) {
            let body: String = section
                .lines()
                .skip(1)
                .map(str::trim)
                .take_while(|line| line.starts_with("///") && !line.starts_with("/// #"))
                .collect::<Vec<_>>()
                .join(" ");
            let missing = names_all(&body, &backends);
            if missing.len() < backends.len() {
                checked += 1;
                assert!(
                    missing.is_empty(),
                    "{}: an Atomicity section leaves out {missing:?}: {body}",
                    path.display()
                );
            }
        }
    }
    assert!(checked >= 5, "only {checked} Atomicity sections name backends: is the check reading them?");
}

/// Every source file of the crate, recursively.
fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

/// Every `pub async fn` says what dropping its future leaves behind: its doc comment has a
/// `# Cancel safety` section.
#[test]
fn every_public_async_fn_documents_its_cancel_safety() {
    let mut files = Vec::new();
    sources(&crate_dir().join("src"), &mut files);
    let mut missing = Vec::new();
    for file in files {
        let text = read(&file);
        let lines: Vec<&str> = text.lines().collect();
        for (at, line) in lines.iter().enumerate() {
            if !line.trim_start().starts_with("pub async fn ") {
                continue;
            }
            let docs = lines[..at]
                .iter()
                .rev()
                .map(|l| l.trim_start())
                .take_while(|l| l.starts_with("///") || l.starts_with("#["));
            if !docs.into_iter().any(|l| l.starts_with("/// # Cancel safety")) {
                missing.push(format!("{}:{}: {}", file.display(), at + 1, line.trim()));
            }
        }
    }
    assert!(missing.is_empty(), "pub async fns without a `# Cancel safety` section:\n{}", missing.join("\n"));
}
