//! The crate's layering, checked over its source: `accept` → the engines `h1`, `h2` (hyper's
//! HTTP/2) and `h2weir` (weir's HTTP/2, over the protocol core `h2conn`) → `http2` (HTTP/2
//! requests through the pipeline, both HTTP/2 engines') → `pipeline` → the rest. An engine
//! never imports another engine, neither `http2` nor the pipeline imports an engine (nor
//! `accept`), and the top-level modules import each other without a cycle (test code
//! included). A reference is any `crate::<module>` path outside a comment, `use`
//! lines and paths written inline alike (`use crate::{a, b}` counts each).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The HTTP/2 engines: hyper's (`h2`) and weir's own (`h2weir`, over the protocol core
/// `h2conn`); with `h1` the engines, which never import each other.
const ENGINES: &[&str] = &["h1", "h2", "h2weir"];

/// Modules a module must never reference, besides the engine rules: (module, forbidden, why).
const RULES: &[(&str, &str, &str)] = &[
    ("pipeline", "accept", "the pipeline knows no engine"),
    ("pipeline", "http2", "the pipeline knows no engine"),
    ("pipeline", "h2conn", "the pipeline knows no engine"),
    (
        "http2",
        "accept",
        "HTTP/2 requests through the pipeline know no engine",
    ),
    (
        "http2",
        "h2conn",
        "HTTP/2 requests through the pipeline know no engine",
    ),
    (
        "h2conn",
        "http2",
        "the sans-I/O protocol core knows nothing of requests' phases",
    ),
    (
        "h2conn",
        "pipeline",
        "the sans-I/O protocol core knows nothing of requests' phases",
    ),
];

/// Every (module, forbidden, why): `RULES` and, for each engine, that no other engine, nor the
/// pipeline, nor `http2`, nor `h2conn` imports it, and that it does not import `accept`.
fn rules() -> Vec<(&'static str, &'static str, &'static str)> {
    let mut all = RULES.to_vec();
    for &e in ENGINES {
        for &other in ENGINES.iter().filter(|&&o| o != e) {
            all.push((other, e, "the engines never import each other"));
        }
        all.push(("pipeline", e, "the pipeline knows no engine"));
        all.push((
            "http2",
            e,
            "HTTP/2 requests through the pipeline know no engine",
        ));
        all.push((
            "h2conn",
            e,
            "the sans-I/O protocol core is driven, it drives nothing",
        ));
        all.push((
            e,
            "accept",
            "an engine is driven by the accept loop, never the reverse",
        ));
    }
    all
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("reading src/") {
        let p = e.expect("a directory entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file belongs to: `src/h1/server.rs` → `h1`, `src/tls.rs` → `tls`.
fn top_module(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("a file under src/");
    let first = rel.components().next().expect("a path component");
    let name = first.as_os_str().to_string_lossy();
    name.strip_suffix(".rs").unwrap_or(&name).to_string()
}

/// The text without `//` comments (doc comments name modules without importing them).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| l.split_once("//").map_or(l, |(c, _)| c))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first path segment after each `crate::` (each item of `crate::{…}`).
fn referenced(code: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        // Not the tail of another path (`lb_l7::crate::` does not exist, `$crate::` is a
        // macro's own crate: both fine to skip).
        if i > 0 && code[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        {
            continue;
        }
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = group.split('}').next().unwrap_or("");
            out.extend(inner.split(',').map(ident).filter(|s| !s.is_empty()));
        } else {
            out.insert(ident(rest));
        }
    }
    out
}

/// Top-level module → the top-level modules it references, and where (a file for each).
fn graph() -> BTreeMap<String, BTreeMap<String, PathBuf>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|f| top_module(&src, f)).collect();
    let mut g: BTreeMap<String, BTreeMap<String, PathBuf>> = BTreeMap::new();
    for f in &files {
        let from = top_module(&src, f);
        let text = std::fs::read_to_string(f).expect("reading a source file");
        let entry = g.entry(from.clone()).or_default();
        for to in referenced(&code(&text)) {
            if to != from && modules.contains(&to) {
                entry
                    .entry(to)
                    .or_insert_with(|| f.strip_prefix(&src).unwrap().to_path_buf());
            }
        }
    }
    g
}

/// A cycle through `start`, if there is one (depth-first, the path returned).
fn cycle_from(
    g: &BTreeMap<String, BTreeMap<String, PathBuf>>,
    start: &str,
    at: &str,
    path: &mut Vec<String>,
    seen: &mut BTreeSet<String>,
) -> bool {
    for next in g.get(at).into_iter().flat_map(|m| m.keys()) {
        if next == start {
            path.push(next.clone());
            return true;
        }
        if seen.insert(next.clone()) {
            path.push(next.clone());
            if cycle_from(g, start, next, path, seen) {
                return true;
            }
            path.pop();
        }
    }
    false
}

#[test]
fn the_pipeline_imports_no_engine_and_the_engines_not_each_other() {
    let g = graph();
    for m in ["pipeline", "http2", "h1", "h2"] {
        assert!(g.contains_key(m), "no module {m} in src/");
    }
    let mut broken = Vec::new();
    for (from, to, why) in rules() {
        if let Some(file) = g.get(from).and_then(|m| m.get(to)) {
            broken.push(format!(
                "src/{} references crate::{to}: {why} ({from} must not import {to})",
                file.display()
            ));
        }
    }
    assert!(
        broken.is_empty(),
        "lb-l7's layering (accept → h1, h2, h2weir → http2 → pipeline → the rest; ARCHITECTURE.md, \"Layering\") is broken:\n{}",
        broken.join("\n")
    );
}

#[test]
fn no_import_cycle_between_top_level_modules() {
    let g = graph();
    for start in g.keys() {
        let mut path = vec![start.clone()];
        if cycle_from(&g, start, start, &mut path, &mut BTreeSet::new()) {
            let steps: Vec<String> = path
                .windows(2)
                .map(|w| format!("{} → {} (src/{})", w[0], w[1], g[&w[0]][&w[1]].display()))
                .collect();
            panic!(
                "import cycle in lb-l7: {}\n{}\nmove the shared piece below both (see ARCHITECTURE.md, \"Layering\")",
                path.join(" → "),
                steps.join("\n")
            );
        }
    }
}

#[test]
fn the_scanner_sees_inline_paths_and_groups_and_skips_comments() {
    let found = referenced(&code(
        "use crate::{h1, pipeline::Shared};\nlet x = crate::h2::server::serve_h2c;\n// crate::accept\n$crate::log_limit::x",
    ));
    let want: BTreeSet<String> = ["h1", "h2", "pipeline"].map(String::from).into();
    assert_eq!(found, want);
}
