//! The crate's dependency rules, read from its source: the core
//! (`src/core/`) imports no op, and no two ops import each other in a
//! cycle. An op built on another (the fused linear op on matmul and
//! cross-entropy, the vocabulary split on cross-entropy) uses what that op
//! exports; the op underneath knows nothing of it.
//!
//! A unit is `core`, `error`, `ops/<op>`, `cpu` (the twins' facade), `bench`
//! or `lib`. A file depends on every unit its code (not its comments) names
//! through a `crate::` path; `crate::Name` of a name `lib.rs` re-exports
//! counts as the unit the name comes from.
//!
//! And the sizes the tree keeps: no file under `src/` or `shaders/` over
//! `FILE_LINES_MAX` lines, no Rust function (library, command line or
//! tests) over `FN_LINES_MAX`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The unit of a file under `src/`, or `None` for the command line
/// (`src/bin/`), which may use anything.
fn unit_of(rel: &str) -> Option<String> {
    let parts: Vec<&str> = rel.split('/').collect();
    match parts.as_slice() {
        ["bin", ..] => None,
        ["ops", op, ..] => Some(format!("ops/{}", op.trim_end_matches(".rs"))),
        [dir, _, ..] => Some((*dir).to_string()),
        [file] => Some(file.trim_end_matches(".rs").to_string()),
        [] => None,
    }
}

/// The unit a `crate::` path (after `crate::`) names.
fn unit_of_path(path: &str, reexports: &BTreeMap<String, String>) -> Option<String> {
    let mut segs = path.split("::").filter(|s| !s.is_empty());
    let first = segs.next()?;
    match first {
        "ops" => segs.next().map(|op| format!("ops/{op}")),
        "core" | "error" | "cpu" | "bench" => Some(first.to_string()),
        name => reexports.get(name).cloned(),
    }
}

/// Code lines of a file: comments and doc comments dropped, and the unit
/// tests (`#[cfg(test)]` to the end of the file) with them.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `crate::a::b` path in `code`, and each `crate::{a, b::c}` group's
/// members.
fn crate_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        if i > 0 && code[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &code[i + "crate::".len()..];
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(rest.len());
        let prefix = &rest[..end];
        match rest[end..].strip_prefix('{') {
            // `crate::a::{b, c::d}`: each member after the prefix.
            Some(group) => {
                let inner = &group[..group.find('}').unwrap_or(group.len())];
                out.extend(inner.split(',').map(|m| format!("{prefix}{}", m.trim())));
            }
            None => out.push(prefix.to_string()),
        }
    }
    out
}

/// Names `lib.rs` re-exports, with the unit each comes from.
fn reexports(lib: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let lib = code(lib);
    for stmt in lib.split(';') {
        let Some(rest) = stmt.trim().strip_prefix("pub use ") else {
            continue;
        };
        let rest = rest.trim_start_matches("crate::");
        let unit = unit_of_path(rest, &BTreeMap::new());
        let names = match rest.find('{') {
            Some(open) => rest[open + 1..rest.rfind('}').unwrap()].to_string(),
            None => rest.rsplit("::").next().unwrap().to_string(),
        };
        for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if let Some(u) = &unit {
                map.insert(name.to_string(), u.clone());
            }
        }
    }
    map
}

/// unit → the units it depends on (itself excluded), with one file that
/// makes each dependency.
fn graph() -> BTreeMap<String, BTreeMap<String, String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let reexports = reexports(&std::fs::read_to_string(src.join("lib.rs")).unwrap());
    let mut files = Vec::new();
    files_with(&src, "rs", &mut files);
    let mut deps: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for file in files {
        let rel = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let Some(unit) = unit_of(&rel) else { continue };
        let text = std::fs::read_to_string(&file).unwrap();
        let entry = deps.entry(unit.clone()).or_default();
        for path in crate_paths(&code(&text)) {
            if let Some(to) = unit_of_path(&path, &reexports) {
                if to != unit {
                    entry.entry(to).or_insert_with(|| rel.clone());
                }
            }
        }
    }
    deps
}

#[test]
fn the_core_imports_no_op() {
    let deps = graph();
    let core = &deps["core"];
    let bad: Vec<_> = core
        .iter()
        .filter(|(to, _)| to.as_str() != "error")
        .collect();
    assert!(bad.is_empty(), "core depends on {bad:?}");
    let error = deps.get("error").cloned().unwrap_or_default();
    assert!(error.is_empty(), "error depends on {error:?}");
}

#[test]
fn no_unit_imports_itself_through_a_cycle() {
    let deps = graph();
    for start in deps.keys() {
        // Depth-first from each unit: reaching it again is a cycle.
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((unit, path)) = stack.pop() {
            for (to, file) in deps.get(&unit).into_iter().flatten() {
                let mut next = path.clone();
                next.push(format!("{to} (via {file})"));
                assert!(to != start, "import cycle: {}", next.join(" -> "));
                if seen.insert(to.clone()) {
                    stack.push((to.clone(), next));
                }
            }
        }
    }
}

#[test]
fn the_rules_can_fail() {
    // The parser sees a dependency written in code, through a group and
    // through a re-exported name, and ignores one in a comment.
    let reexports =
        reexports("pub use ops::softmax::SoftmaxKind;\npub use crate::core::{Context};");
    let text = "use crate::{ops::matmul::x, error::Error};\nuse crate::ops::{linear::z};\n// crate::ops::vocab::y\nlet k: crate::SoftmaxKind;";
    let units: BTreeSet<_> = crate_paths(&code(text))
        .iter()
        .filter_map(|p| unit_of_path(p, &reexports))
        .collect();
    let expected: BTreeSet<_> = ["ops/matmul", "error", "ops/linear", "ops/softmax"]
        .map(String::from)
        .into();
    assert_eq!(units, expected);
}

/// The most lines a file under `src/` or `shaders/` may have.
const FILE_LINES_MAX: usize = 500;
/// The most lines a Rust function may have, its signature and closing
/// brace included: one screen.
const FN_LINES_MAX: usize = 80;

fn files_with(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_with(&path, ext, out);
        } else if path.extension().is_some_and(|e| e == ext) {
            out.push(path);
        }
    }
}

/// Each function of a Rust file longer than `max` lines, as (first line,
/// name, lines): from its `fn` line to the closing brace at the `fn` line's
/// indentation (rustfmt's layout).
fn long_functions(text: &str, max: usize) -> Vec<(usize, String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut long = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let body = line.trim_start();
        let indent = &line[..line.len() - body.len()];
        let words: Vec<&str> = body.split_whitespace().collect();
        let Some(at) = words.iter().position(|w| *w == "fn") else {
            continue;
        };
        let leading = [
            "pub",
            "pub(crate)",
            "pub(super)",
            "const",
            "async",
            "unsafe",
        ];
        if !words[..at].iter().all(|w| leading.contains(w)) || body.ends_with(';') {
            continue;
        }
        let close = format!("{indent}}}");
        if let Some(end) = lines[i..].iter().position(|l| *l == close) {
            if end + 1 > max {
                let name = words.get(at + 1).unwrap_or(&"?");
                let name = name.split(['(', '<']).next().unwrap_or("?").to_string();
                long.push((i + 1, name, end + 1));
            }
        }
    }
    long
}

#[test]
fn files_and_functions_stay_within_a_screen() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut too_long = Vec::new();
    let mut sources = Vec::new();
    files_with(&root.join("src"), "rs", &mut sources);
    files_with(&root.join("shaders"), "wgsl", &mut sources);
    for path in &sources {
        let lines = std::fs::read_to_string(path).unwrap().lines().count();
        if lines > FILE_LINES_MAX {
            too_long.push(format!("{}: {lines} lines", path.display()));
        }
    }
    let mut rust = Vec::new();
    files_with(&root.join("src"), "rs", &mut rust);
    files_with(&root.join("tests"), "rs", &mut rust);
    files_with(&root.join("benches"), "rs", &mut rust);
    files_with(&root.join("examples"), "rs", &mut rust);
    for path in &rust {
        let text = std::fs::read_to_string(path).unwrap();
        for (line, name, lines) in long_functions(&text, FN_LINES_MAX) {
            too_long.push(format!(
                "{}:{line}: fn {name}, {lines} lines",
                path.display()
            ));
        }
    }
    assert!(
        too_long.is_empty(),
        "over the limits:\n{}",
        too_long.join("\n")
    );
}

#[test]
fn the_size_rule_can_fail() {
    let body = "    let x = 1;\n".repeat(FN_LINES_MAX - 1);
    let long = format!("pub(crate) fn long() {{\n{body}}}\nfn short() {{\n}}\n");
    assert_eq!(
        long_functions(&long, FN_LINES_MAX),
        vec![(1, "long".to_string(), FN_LINES_MAX + 1)]
    );
    let nested = format!("impl A {{\n    fn inner<T>(&self) {{\n{body}    }}\n}}\n");
    assert_eq!(long_functions(&nested, FN_LINES_MAX)[0].1, "inner");
    assert!(long_functions("fn declared(&self);\n", 0).is_empty());
}
