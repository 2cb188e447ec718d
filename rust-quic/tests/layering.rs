//! The engine's layering, checked from its source (QUIC.md, "Layers"):
//! - no import cycle among the crate's modules: each layer uses only those below it;
//! - no core module calls the application back or talks to the driver (only the edge does).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The protocol core: no callbacks, no driver.
const CORE: &[&str] =
    &["cid", "client", "connection", "context", "events", "http3", "limits", "listen_socket", "peer_context", "stream"];

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Module name → the text of its files, comments and unit-test modules left
/// out (a doc comment may name a higher layer; only shipped code counts).
fn modules() -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut visit = vec![src_dir()];
    while let Some(dir) = visit.pop() {
        for entry in fs::read_dir(&dir).expect("src readable") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                visit.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src_dir()).expect("under src");
            let module = rel.components().next().expect("a component").as_os_str().to_string_lossy();
            let module = module.trim_end_matches(".rs").to_string();
            if module == "lib" {
                continue;
            }
            let text = fs::read_to_string(&path).expect("source readable");
            // A file's unit tests (its last item) may use test helpers of any layer.
            let text = text.split("#[cfg(test)]\nmod ").next().unwrap_or("");
            let code: String = text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n");
            out.entry(module).or_default().push_str(&code);
        }
    }
    out
}

/// Which modules each module names through `crate::` (in `use` lines and paths).
fn imports(modules: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph = BTreeMap::new();
    for (name, code) in modules {
        let mut uses = BTreeSet::new();
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + "crate::".len()..];
            if rest.starts_with('{') {
                // `use crate::{a, b::c}`: every first segment in the group.
                let group = &rest[1..rest.find('}').unwrap_or(rest.len())];
                for item in group.split(',') {
                    let first = item.trim().split("::").next().unwrap_or("").to_string();
                    uses.insert(first);
                }
            } else {
                let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
                uses.insert(rest[..end].to_string());
            }
        }
        uses.retain(|m| m != name && modules.contains_key(m));
        graph.insert(name.clone(), uses);
    }
    graph
}

/// A cycle in the graph, as the modules along it, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_modules_import_each_other_without_a_cycle() {
    let graph = imports(&modules());
    assert!(graph.contains_key("peer_context") && graph["peer_context"].contains("stream"), "the reader sees imports");
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import cycle: {}", cycle.join(" -> "));
    }
}

#[test]
fn the_cycle_check_finds_a_cycle() {
    let mut graph = imports(&modules());
    graph.get_mut("context").expect("context").insert("peer_context".into());
    let cycle = find_cycle(&graph).expect("context -> peer_context -> ... -> context");
    assert_eq!(cycle.first(), cycle.last());
}

#[test]
fn no_core_module_calls_the_application_or_the_driver() {
    let modules = modules();
    for name in CORE {
        let code = &modules[*name];
        for call in [".callbacks", "driver.bind(", "driver.send(", "driver.close("] {
            assert!(!code.contains(call), "{name} uses `{call}`: only the edge calls back and drives I/O");
        }
    }
    assert!(modules["edge"].contains(".callbacks") && modules["edge"].contains("driver.send("), "the edge does");
}

/// The files of one directory module (`http3`, `edge`, `embed`): file name → its code, as `modules`
/// reads it, and which sibling files each names through `super::` or `crate::<dir>::`.
fn sibling_imports(dir: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut code: BTreeMap<String, String> = BTreeMap::new();
    for entry in fs::read_dir(src_dir().join(dir)).expect("module directory readable") {
        let path = entry.expect("entry").path();
        let name = path.file_stem().expect("a name").to_string_lossy().to_string();
        if path.extension().is_none_or(|e| e != "rs") || name == "mod" {
            continue;
        }
        let text = fs::read_to_string(&path).expect("source readable");
        let text = text.split("#[cfg(test)]\nmod ").next().unwrap_or("");
        code.insert(name, text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n"));
    }
    let mut graph = BTreeMap::new();
    for (name, text) in &code {
        let mut uses = BTreeSet::new();
        for prefix in ["super::".to_string(), format!("crate::{dir}::")] {
            for (i, _) in text.match_indices(&prefix) {
                let rest = &text[i + prefix.len()..];
                let groups: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
                    group[..group.find('}').unwrap_or(group.len())].split(',').collect()
                } else {
                    vec![rest]
                };
                for item in groups {
                    let item = item.trim();
                    let end = item.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(item.len());
                    uses.insert(item[..end].to_string());
                }
            }
        }
        uses.retain(|m| m != name && code.contains_key(m));
        graph.insert(name.clone(), uses);
    }
    graph
}

#[test]
fn the_files_inside_each_directory_module_import_each_other_without_a_cycle() {
    let http3 = sibling_imports("http3");
    assert!(http3["message"].contains("qpack"), "the reader sees sibling imports");
    for dir in ["http3", "edge", "embed"] {
        if let Some(cycle) = find_cycle(&sibling_imports(dir)) {
            panic!("import cycle in {dir}/: {}", cycle.join(" -> "));
        }
    }
}
