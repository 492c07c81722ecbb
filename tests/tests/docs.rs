//! The README and the pages in `docs/` point at things that exist: every
//! relative link resolves to a file (and a `#anchor` to a heading of the page
//! it names), every `events/…`, `infra/…` (and other workspace) path they name
//! is there, and every `make <target>` they show is a rule of the Makefile, read
//! as it is now. No network, no build: the files are read as text.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

use regex::Regex;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

/// Top-level folders whose paths the pages name, checked to exist.
const CHECKED_ROOTS: &str = "events|infra|functions|shared|tests|docs";

/// One page, split into what is prose and what is code.
struct Page {
    /// Relative to the workspace root, with `/`.
    path: String,
    /// Lines outside fenced blocks.
    prose: Vec<String>,
    /// Fenced blocks' lines, and inline code spans of the prose.
    code: Vec<String>,
    /// Heading anchors, as GitHub makes them.
    anchors: BTreeSet<String>,
}

fn root() -> PathBuf {
    e2e::workspace_root()
}

fn pages() -> Vec<Page> {
    let mut paths = vec!["README.md".to_string()];
    let mut docs: Vec<String> = std::fs::read_dir(root().join("docs"))
        .expect("docs/")
        .map(|entry| entry.expect("a docs/ entry").file_name())
        .filter_map(|name| name.to_str().map(str::to_string))
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    docs.sort();
    paths.extend(docs);
    paths.into_iter().map(|path| read_page(&path)).collect()
}

fn read_page(path: &str) -> Page {
    let text = std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    let inline_code = Regex::new(r"`+([^`]+)`+").unwrap();
    let mut page = Page {
        path: path.to_string(),
        prose: Vec::new(),
        code: Vec::new(),
        anchors: BTreeSet::new(),
    };
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut fence: Option<&str> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        let marker = ["```", "~~~"].into_iter().find(|m| trimmed.starts_with(m));
        match (fence, marker) {
            (None, Some(m)) => fence = Some(m),
            (Some(open), Some(m)) if open == m && trimmed.trim_end() == m => fence = None,
            (Some(_), _) => page.code.push(line.to_string()),
            (None, None) => {
                if let Some(heading) = heading(line) {
                    let base = slug(heading);
                    let n = seen.entry(base.clone()).or_insert(0);
                    let anchor = if *n == 0 {
                        base.clone()
                    } else {
                        format!("{base}-{n}")
                    };
                    *n += 1;
                    page.anchors.insert(anchor);
                }
                page.code.extend(
                    inline_code
                        .captures_iter(line)
                        .map(|c| c[1].trim().to_string()),
                );
                page.prose
                    .push(inline_code.replace_all(line, "").into_owned());
            }
        }
    }
    assert!(fence.is_none(), "{path}: a fenced block is never closed");
    page
}

fn heading(line: &str) -> Option<&str> {
    let hashes = line.bytes().take_while(|b| *b == b'#').count();
    (1..=6)
        .contains(&hashes)
        .then(|| line[hashes..].strip_prefix(' '))
        .flatten()
}

/// GitHub's anchor for a heading: lower case, letters, digits, `-` and `_`
/// kept, spaces made `-`, everything else dropped.
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

/// `base/relative`, with `.` and `..` resolved; `None` when it leaves the root.
fn resolve(base: &Path, relative: &str) -> Option<PathBuf> {
    let mut parts: Vec<String> = base
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    for component in Path::new(relative).components() {
        match component {
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.iter().collect())
}

fn exists_in_tree(relative: &Path) -> bool {
    root().join(relative).exists()
}

#[test]
fn every_relative_link_resolves_to_a_file_and_a_heading() {
    let link = Regex::new(r#"\]\(([^)\s]+)(?:\s+"[^"]*")?\)"#).unwrap();
    let pages = pages();
    let anchors: BTreeMap<&str, &BTreeSet<String>> = pages
        .iter()
        .map(|p| (p.path.as_str(), &p.anchors))
        .collect();
    let mut broken = Vec::new();
    let mut links = 0;
    for page in &pages {
        let dir = Path::new(&page.path).parent().unwrap_or(Path::new(""));
        for target in page
            .prose
            .iter()
            .flat_map(|line| link.captures_iter(line).map(|c| c[1].to_string()))
        {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            links += 1;
            let (file, anchor) = target.split_once('#').unwrap_or((&target, ""));
            let resolved = if file.is_empty() {
                Some(PathBuf::from(&page.path))
            } else {
                resolve(dir, file)
            };
            let Some(resolved) = resolved else {
                broken.push(format!("{}: {target} leaves the workspace", page.path));
                continue;
            };
            if !exists_in_tree(&resolved) {
                broken.push(format!("{}: {target}: no such file", page.path));
                continue;
            }
            if anchor.is_empty() {
                continue;
            }
            let key = resolved.to_string_lossy().replace('\\', "/");
            match anchors.get(key.as_str()) {
                Some(headings) if headings.contains(anchor) => {}
                Some(_) => broken.push(format!("{}: {target}: no such heading", page.path)),
                // An anchor into a page not read here (one still landing).
                None => {}
            }
        }
    }
    assert!(links > 0, "no relative links found: is the parser right?");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn every_workspace_path_the_pages_name_exists() {
    let path = Regex::new(&format!(
        r"(?:^|://|[^A-Za-z0-9_.\-/])((?:{CHECKED_ROOTS})/[A-Za-z0-9_.*<>/\-]*)"
    ))
    .unwrap();
    let mut missing = Vec::new();
    let mut named = BTreeSet::new();
    for page in pages() {
        for line in page.prose.iter().chain(&page.code) {
            for found in path.captures_iter(line) {
                let mentioned = found[1].trim_end_matches('.');
                // A pattern (`functions/*/tests/`, `target/lambda-<arch>/`):
                // the folder before its first wildcard must exist.
                let fixed = match mentioned.find(['*', '<']) {
                    Some(i) => &mentioned[..mentioned[..i].rfind('/').map_or(0, |j| j + 1)],
                    None => mentioned,
                };
                named.insert(fixed.to_string());
                if !exists_in_tree(Path::new(fixed)) {
                    missing.push(format!("{}: {mentioned}", page.path));
                }
            }
        }
    }
    for sample in [
        "events/scaler/alarm-state-change.json",
        "infra/template.yaml",
    ] {
        assert!(named.contains(sample), "the pages should name {sample}");
    }
    assert!(
        missing.is_empty(),
        "paths named in the docs that do not exist:\n{}",
        missing.join("\n")
    );
}

/// The rules of the Makefile: `name [name…]:` at the start of a line.
fn makefile_targets() -> BTreeSet<String> {
    let rule =
        Regex::new(r"^([A-Za-z0-9_.\-]+(?:[ \t]+[A-Za-z0-9_.\-]+)*)[ \t]*:([^=]|$)").unwrap();
    let makefile = std::fs::read_to_string(root().join("Makefile")).expect("Makefile");
    makefile
        .lines()
        .filter_map(|line| rule.captures(line))
        .flat_map(|c| {
            c[1].split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter(|target| !target.starts_with('.'))
        .collect()
}

/// The targets of each `make` command in `code`: options and `VAR=value` skipped.
fn make_targets(code: &str) -> Vec<String> {
    let command = Regex::new(r"(?:^|[;&|(])\s*make\s+([^;&|)#\n]*)").unwrap();
    let mut targets = Vec::new();
    for found in command.captures_iter(code) {
        let mut words = found[1].split_whitespace();
        while let Some(word) = words.next() {
            if matches!(word, "-C" | "-f" | "-j" | "-o" | "-W" | "-I") {
                words.next();
            } else if word.starts_with('-') || word.contains('=') || word == "\\" {
                continue;
            } else if word
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            {
                targets.push(word.to_string());
            }
        }
    }
    targets
}

#[test]
fn every_make_target_the_pages_show_is_in_the_makefile() {
    let known = makefile_targets();
    assert!(known.contains("test"), "no `test` rule found in {known:?}");
    assert_eq!(
        make_targets("x $(make -s -C .. deploy-parameters) y"),
        ["deploy-parameters"]
    );
    assert_eq!(make_targets("make deploy DOCUMENTS=<folder>"), ["deploy"]);
    let mut unknown = Vec::new();
    let mut shown = BTreeSet::new();
    for page in pages() {
        for target in page.code.iter().flat_map(|code| make_targets(code)) {
            shown.insert(target.clone());
            if !known.contains(&target) {
                unknown.push(format!("{}: make {target}", page.path));
            }
        }
    }
    assert!(
        shown.contains("demo") && shown.contains("test"),
        "{shown:?}"
    );
    assert!(
        unknown.is_empty(),
        "make targets the docs show that the Makefile lacks:\n{}",
        unknown.join("\n")
    );
}

#[test]
fn the_readme_links_every_page() {
    let readme = read_page("README.md");
    let unlinked: Vec<String> = pages()
        .into_iter()
        .skip(1)
        .map(|page| page.path)
        .filter(|path| {
            !readme
                .prose
                .iter()
                .any(|line| line.contains(&format!("]({path}")))
        })
        .collect();
    assert!(
        unlinked.is_empty(),
        "pages the README does not link: {unlinked:?}"
    );
}
