//! No two modules of a crate import each other, directly or round a circle:
//! shared types live in a module both sides import. A module may still use
//! its own parent's items (`super::` in a child) and its children's.
//!
//! Read from the sources as text: every `crate::a::b` path and every
//! `super::x` path outside a file's own tests, resolved to the file that
//! defines the module.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The crates' source roots, each with its root file.
const CRATES: [&str; 6] = [
    "shared/domain/src",
    "shared/src",
    "functions/scaler/src",
    "functions/registrar/src",
    "functions/probe/src",
    "functions/drill/src",
];

/// A module path inside its crate: `["config", "probe"]`; empty for the root.
type Module = Vec<String>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("source dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module a file defines: `src/config/probe.rs` and
/// `src/config/probe/mod.rs` are both `config::probe`.
fn module_of(src: &Path, file: &Path) -> Option<Module> {
    let relative = file.strip_prefix(src).ok()?.with_extension("");
    let mut parts: Module = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if parts.first().is_some_and(|p| p == "bin" || p == "main") {
        return None; // a binary is a crate of its own
    }
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    Some(parts)
}

/// The longest known module a path names: `crate::config::probe::Check`
/// names `config::probe` when that module exists.
fn resolve(known: &BTreeSet<Module>, path: &[String]) -> Option<Module> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|m| known.contains(m))
}

/// The text of a file before its `#[cfg(test)]` module, without comments.
fn code_of(file: &Path) -> String {
    let text = std::fs::read_to_string(file).expect("source");
    let code = text
        .split("#[cfg(test)]\nmod tests")
        .next()
        .unwrap_or_default();
    code.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path after `prefix::` in `code`, split at `::`; a brace group
/// (`prefix::{a::X, b}`) gives one path per member.
fn paths_after(code: &str, prefix: &str) -> Vec<Vec<String>> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut found = Vec::new();
    let needle = format!("{prefix}::");
    for (at, _) in code.match_indices(&needle) {
        if code[..at].chars().next_back().is_some_and(ident) {
            continue; // `my_crate::` is not `crate::`
        }
        let rest = &code[at + needle.len()..];
        let members: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
            group
                .split('}')
                .next()
                .unwrap_or_default()
                .split(',')
                .collect()
        } else {
            vec![rest]
        };
        for member in members {
            // Segments while each is followed by `::`.
            let mut path: Vec<String> = Vec::new();
            let mut rest = member.trim_start();
            loop {
                let end = rest.find(|c: char| !ident(c)).unwrap_or(rest.len());
                if end == 0 {
                    break;
                }
                path.push(rest[..end].to_string());
                match rest[end..].strip_prefix("::") {
                    Some(more) => rest = more,
                    None => break,
                }
            }
            if !path.is_empty() {
                found.push(path);
            }
        }
    }
    found
}

/// The import graph of one crate, between the files that define modules.
fn imports(src: &Path) -> BTreeMap<Module, BTreeSet<Module>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: Vec<(Module, PathBuf)> = files
        .iter()
        .filter_map(|f| module_of(src, f).map(|m| (m, f.clone())))
        .collect();
    let known: BTreeSet<Module> = modules.iter().map(|(m, _)| m.clone()).collect();
    let mut graph: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (module, file) in &modules {
        let code = code_of(file);
        let parent: Module = module[..module.len().saturating_sub(1)].to_vec();
        let mut named = paths_after(&code, "crate");
        named.extend(paths_after(&code, "super").into_iter().map(|p| {
            let mut full = parent.clone();
            full.extend(p);
            full
        }));
        let edges = graph.entry(module.clone()).or_default();
        for path in named {
            let Some(target) = resolve(&known, &path) else {
                continue;
            };
            // A module and its own ancestors or descendants are one family.
            if target.starts_with(module) || module.starts_with(&target) {
                continue;
            }
            edges.insert(target);
        }
    }
    graph
}

/// One circle in `graph`, if there is any: the modules round it.
fn a_circle(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Option<Vec<Module>> {
    fn visit(
        graph: &BTreeMap<Module, BTreeSet<Module>>,
        at: &Module,
        trail: &mut Vec<Module>,
        done: &mut BTreeSet<Module>,
    ) -> Option<Vec<Module>> {
        if let Some(start) = trail.iter().position(|m| m == at) {
            return Some(trail[start..].to_vec());
        }
        if done.contains(at) {
            return None;
        }
        trail.push(at.clone());
        for next in graph.get(at).into_iter().flatten() {
            if let Some(circle) = visit(graph, next, trail, done) {
                return Some(circle);
            }
        }
        trail.pop();
        done.insert(at.clone());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|m| visit(graph, m, &mut Vec::new(), &mut done))
}

#[test]
fn no_crate_has_a_circle_of_imports() {
    for src in CRATES {
        let graph = imports(&e2e::workspace_root().join(src));
        assert!(graph.len() > 3, "{src}: too few modules read: {graph:?}");
        if let Some(circle) = a_circle(&graph) {
            let names: Vec<String> = circle.iter().map(|m| m.join("::")).collect();
            panic!(
                "{src}: modules import each other in a circle: {}",
                names.join(" -> ")
            );
        }
    }
}

#[test]
fn the_reader_sees_a_circle_where_there_is_one() {
    let module = |s: &str| -> Module { s.split("::").map(str::to_string).collect() };
    let code = "use crate::{handler::Scaler, decision::Record};\nfn f() { super::pace::limit(); my_crate::x(); }";
    let paths = paths_after(code, "crate");
    assert_eq!(
        paths,
        [module("handler::Scaler"), module("decision::Record")]
    );
    assert_eq!(paths_after(code, "super"), [module("pace::limit")]);
    let graph: BTreeMap<Module, BTreeSet<Module>> = [
        (module("a"), BTreeSet::from([module("b")])),
        (module("b"), BTreeSet::from([module("c")])),
        (module("c"), BTreeSet::from([module("a")])),
    ]
    .into();
    assert_eq!(
        a_circle(&graph),
        Some(vec![module("a"), module("b"), module("c")])
    );
    let known = BTreeSet::from([module("config"), module("config::probe")]);
    assert_eq!(
        resolve(&known, &module("config::probe::Check")),
        Some(module("config::probe"))
    );
}
