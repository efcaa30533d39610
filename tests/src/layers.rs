//! The layers of the workspace, as `docs/ARCHITECTURE.md` draws them, checked against the code.
//!
//! The document's fenced `layers` block lists, per crate, the scrip crates it may use
//! (`notary -> feed, ledger, replicate::transport`), and per module, the sibling modules it may
//! reach (`replicate::transport -> limits`). The check:
//!
//! 1. every scrip crate in a crate's `[dependencies]` is listed for it, and every listed one is
//!    a dependency (the diagram stays true in both directions);
//! 2. where a dependency is written `crate::module`, every `scrip_crate::` path in the user's
//!    `src/` names that module (`scrip_replicate::transport::…`), nothing else of the crate;
//! 3. a module line restricts the `crate::x` and `super::x` paths in the module's files to the
//!    listed modules and the module itself.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One line of the `layers` block: who, and what it may use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arrow {
    /// `notary`, or `replicate::transport` for a module line.
    pub from: String,
    /// `feed`, `replicate::transport`, …
    pub to: Vec<String>,
}

/// The arrows of the first fenced `layers` block of `markdown`.
pub fn arrows(markdown: &str) -> Result<Vec<Arrow>, String> {
    let block = markdown
        .split("```layers\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .ok_or("no ```layers block")?;
    block
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let (from, to) = line
                .split_once("->")
                .ok_or_else(|| format!("not an arrow: {line:?}"))?;
            Ok(Arrow {
                from: from.trim().to_owned(),
                to: to
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect(),
            })
        })
        .collect()
}

/// The scrip crates (`feed`, `ledger`, …) in the `[dependencies]` table of a `Cargo.toml`.
pub fn scrip_dependencies(manifest: &str) -> BTreeSet<String> {
    let mut in_dependencies = false;
    let mut found = BTreeSet::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_dependencies = line == "[dependencies]";
            continue;
        }
        if in_dependencies && let Some(rest) = line.strip_prefix("scrip-") {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect();
            found.insert(name);
        }
    }
    found
}

/// Every `.rs` file under `dir`, sorted.
pub fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The code of a Rust file without its comments (line and doc comments), so that prose naming
/// a path does not count as a use.
fn code_of(source: &str) -> String {
    source
        .lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Each path in `code` that follows `prefix` (`scrip_replicate::`), as its first segment or,
/// for a `{…}` group, each of the group's first segments.
fn paths_after(code: &str, prefix: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find(prefix) {
        let before = rest[..at].chars().last();
        rest = &rest[at + prefix.len()..];
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue; // part of a longer name
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let segment: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !segment.is_empty() {
                    found.push(segment);
                }
            }
        } else {
            let segment: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            found.push(segment);
        }
    }
    found
}

/// Every way the workspace at `root` breaks the arrows of its `docs/ARCHITECTURE.md`.
// Long because: the three checks its module lists, in order.
pub fn violations(root: &Path) -> Result<Vec<String>, String> {
    let doc = std::fs::read_to_string(root.join("docs/ARCHITECTURE.md"))
        .map_err(|e| format!("docs/ARCHITECTURE.md: {e}"))?;
    let arrows = arrows(&doc)?;
    let mut problems = Vec::new();
    let crates: BTreeMap<&str, &Arrow> = arrows
        .iter()
        .filter(|a| !a.from.contains("::"))
        .map(|a| (a.from.as_str(), a))
        .collect();
    for (name, arrow) in &crates {
        let manifest = std::fs::read_to_string(root.join(name).join("Cargo.toml"))
            .map_err(|e| format!("{name}/Cargo.toml: {e}"))?;
        let actual = scrip_dependencies(&manifest);
        let drawn: BTreeSet<String> = arrow
            .to
            .iter()
            .map(|t| t.split("::").next().unwrap_or(t).to_owned())
            .collect();
        for missing in actual.difference(&drawn) {
            problems.push(format!(
                "{name} depends on {missing}, which the diagram does not show"
            ));
        }
        for extra in drawn.difference(&actual) {
            problems.push(format!(
                "the diagram shows {name} -> {extra}, which is not a dependency"
            ));
        }
        // Restricted arrows: only the named module of that crate.
        for to in &arrow.to {
            let Some((dependency, module)) = to.split_once("::") else {
                continue;
            };
            let prefix = format!("scrip_{dependency}::");
            for file in rust_files(&root.join(name).join("src")) {
                let code = code_of(&std::fs::read_to_string(&file).unwrap_or_default());
                for segment in paths_after(&code, &prefix) {
                    if segment != module {
                        problems.push(format!(
                            "{} uses {prefix}{segment}; {name} may use only {prefix}{module}",
                            file.display()
                        ));
                    }
                }
            }
        }
    }
    // Module arrows: `crate::x` and `super::x` inside the module stay within what is listed.
    for arrow in arrows.iter().filter(|a| a.from.contains("::")) {
        let (owner, module) = arrow.from.split_once("::").unwrap_or_default();
        let dir = root.join(owner).join("src").join(module);
        let mut allowed: BTreeSet<&str> = arrow.to.iter().map(String::as_str).collect();
        allowed.insert(module);
        for file in rust_files(&dir) {
            let code = code_of(&std::fs::read_to_string(&file).unwrap_or_default());
            for segment in paths_after(&code, "crate::") {
                if !allowed.contains(segment.as_str()) {
                    problems.push(format!(
                        "{} reaches crate::{segment}; {} may reach only {allowed:?}",
                        file.display(),
                        arrow.from
                    ));
                }
            }
            // `super::` from the module's top file leaves the module; from its children it
            // names a sibling inside it.
            let top = file.file_name().is_some_and(|n| n == "mod.rs");
            if top {
                for segment in paths_after(&code, "super::") {
                    if !allowed.contains(segment.as_str()) {
                        problems.push(format!(
                            "{} reaches super::{segment}; {} may reach only {allowed:?}",
                            file.display(),
                            arrow.from
                        ));
                    }
                }
            }
        }
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn workspace() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_path_buf()
    }

    /// The workspace keeps the arrows its architecture document draws.
    #[test]
    fn the_code_keeps_the_layers_architecture_md_draws() {
        let problems = violations(&workspace()).unwrap();
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    /// The check can fail: a notary file naming the node, a transport file reaching the session,
    /// an undrawn dependency and a drawn one that is not there are each reported.
    #[test]
    fn each_broken_arrow_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let write = |path: &str, text: &str| {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write(
            "docs/ARCHITECTURE.md",
            "```layers\nfeed ->\nreplicate -> feed\nnotary -> feed, ledger, replicate::transport\nreplicate::transport -> limits\n```\n",
        );
        write("feed/Cargo.toml", "[dependencies]\nblake3 = \"1\"\n");
        write(
            "replicate/Cargo.toml",
            "[dependencies]\nscrip-feed.workspace = true\nscrip-ledger.workspace = true\n",
        );
        write(
            "notary/Cargo.toml",
            "[dependencies]\nscrip-feed.workspace = true\nscrip-replicate.workspace = true\n\n[dev-dependencies]\nscrip-cli = \"1\"\n",
        );
        write(
            "notary/src/lib.rs",
            "// scrip_replicate::node in a comment is fine\nuse scrip_replicate::transport::Tcp;\nuse scrip_replicate::{transport, NodeLink};\n",
        );
        write(
            "replicate/src/transport/mod.rs",
            "use crate::limits::MAX;\nuse crate::session::Session;\nuse super::node;\n",
        );
        write(
            "replicate/src/transport/noise.rs",
            "use super::error::Error;\n",
        );
        let problems = violations(root).unwrap();
        let has = |needle: &str| problems.iter().any(|p| p.contains(needle));
        assert!(has("uses scrip_replicate::NodeLink"), "{problems:#?}");
        assert!(has("reaches crate::session"), "{problems:#?}");
        assert!(has("reaches super::node"), "{problems:#?}");
        assert!(has("replicate depends on ledger"), "{problems:#?}");
        assert!(
            has("notary -> ledger, which is not a dependency"),
            "{problems:#?}"
        );
        assert_eq!(problems.len(), 5, "{problems:#?}");
    }
}
