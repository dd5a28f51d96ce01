//! The layout holds: the core crate depends on none of the adapters' crates, and neither crate's
//! modules import each other in a circle. Read from the sources and `Cargo.lock`, so a change
//! that adds a cycle or pulls a transport into the core fails here, in the test command.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Crates the core must not reach, directly or through any dependency.
const NOT_IN_CORE: &[&str] =
    &["tonic", "axum", "hyper", "sea-orm", "sqlx", "redis", "reqwest", "prometheus-client", "opentelemetry"];

#[test]
fn the_core_crate_depends_on_no_transport_database_or_cache_client() {
    let lock: toml::Value = toml::from_str(&std::fs::read_to_string(root().join("Cargo.lock")).expect("Cargo.lock"))
        .expect("Cargo.lock is TOML");
    let packages = lock["package"].as_array().expect("packages");
    let deps_of = |name: &str| -> Vec<String> {
        let package = packages.iter().find(|p| p["name"].as_str() == Some(name));
        let deps = package.and_then(|p| p.get("dependencies")).and_then(|d| d.as_array()).cloned().unwrap_or_default();
        // An entry is `name` or `name version` when several versions are locked.
        deps.iter().filter_map(|d| d.as_str()).map(|d| d.split(' ').next().unwrap_or(d).to_owned()).collect()
    };
    let mut reached = BTreeSet::new();
    let mut queue = vec!["keygate-core".to_owned()];
    while let Some(name) = queue.pop() {
        for dep in deps_of(&name) {
            if reached.insert(dep.clone()) {
                queue.push(dep);
            }
        }
    }
    assert!(reached.len() > 10, "the walk found the core's dependencies: {reached:?}");
    let found: Vec<&&str> = NOT_IN_CORE.iter().filter(|name| reached.contains(**name)).collect();
    assert!(found.is_empty(), "keygate-core reaches {found:?}");
    // And the main crate does use them, so the list names real crates.
    let main = deps_of("keygate");
    for name in ["tonic", "axum", "sea-orm", "redis", "prometheus-client"] {
        assert!(main.iter().any(|dep| dep == name), "keygate depends on {name}");
    }
}

#[test]
fn no_two_modules_import_each_other_even_through_others() {
    for crate_root in ["crates/keygate-core/src", "src"] {
        let modules = modules(&root().join(crate_root));
        assert!(modules.len() > 10, "{crate_root}: {} modules", modules.len());
        let names: BTreeSet<Vec<String>> = modules.keys().cloned().collect();
        // Sibling graphs: for an import from module `a` of module `b`, the edge goes between the
        // children of their lowest common ancestor that hold them. A child using its parent, or a
        // parent its child, is no cycle.
        let mut graphs: BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
        let mut edges = 0;
        for (module, source) in &modules {
            for path in imported_paths(&production_code(source)) {
                let Some(target) = resolve(module, &path, &names) else { continue };
                let common = module.iter().zip(&target).take_while(|(a, b)| a == b).count();
                if common == module.len() || common == target.len() {
                    continue;
                }
                edges += 1;
                let siblings = graphs.entry(module[..common].to_vec()).or_default();
                siblings.entry(module[common].clone()).or_default().insert(target[common].clone());
            }
        }
        assert!(edges > 20, "{crate_root}: the scan found imports ({edges})");
        let cycles: Vec<String> = graphs
            .iter()
            .filter_map(|(parent, graph)| {
                Some(format!("under `{}`: {}", parent.join("::"), find_cycle(graph)?.join(" -> ")))
            })
            .collect();
        assert!(cycles.is_empty(), "{crate_root}: modules import each other in a circle:\n{}", cycles.join("\n"));
    }
}

/// Every module of the crate under `dir`, by path (`[]` for the crate root), with its source.
fn modules(dir: &Path) -> BTreeMap<Vec<String>, String> {
    let mut found = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at).expect("read_dir").map(|e| e.expect("entry").path()) {
            if entry.is_dir() {
                stack.push(entry);
                continue;
            }
            if entry.extension().is_none_or(|ext| ext != "rs") {
                continue;
            }
            let relative = entry.strip_prefix(dir).expect("inside").with_extension("");
            let mut path: Vec<String> = relative.iter().map(|part| part.to_string_lossy().into_owned()).collect();
            if matches!(path.last().map(String::as_str), Some("mod" | "lib")) {
                path.pop();
            }
            if path.first().is_some_and(|first| first == "main" || first == "bin") {
                continue;
            }
            // Unit tests in files of their own (`mod tests;` under `#[cfg(test)]`) may reach anywhere.
            if path.last().is_some_and(|last| last == "tests" || last.ends_with("_tests")) {
                continue;
            }
            found.insert(path, std::fs::read_to_string(&entry).expect("source"));
        }
    }
    found
}

/// The source without comments and without its unit tests (a `#[cfg(test)] mod …` block to the
/// end of the file, as every module here writes them): tests may reach anywhere.
fn production_code(source: &str) -> String {
    let mut code = String::new();
    let mut lines = source.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed == "#[cfg(test)]" && lines.peek().is_some_and(|next| next.trim_start().starts_with("mod ")) {
            break;
        }
        let line = line.split("//").next().unwrap_or_default();
        code.push_str(line);
        code.push('\n');
    }
    code
}

/// Every `crate::…`, `super::…` and `self::…` path in `code`, with `use` groups expanded.
fn imported_paths(code: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let bytes: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || !(bytes[i - 1].is_alphanumeric() || bytes[i - 1] == '_' || bytes[i - 1] == ':');
        let rest: String = bytes[i..bytes.len().min(i + 7)].iter().collect();
        if starts_word && (rest.starts_with("crate::") || rest.starts_with("super::") || rest.starts_with("self::")) {
            let (tree, end) = read_tree(&bytes, i);
            paths.extend(expand(&tree));
            i = end;
            continue;
        }
        i += 1;
    }
    paths
}

/// The use tree starting at `start` (a path, maybe ending in `{…}`), and where it ends.
fn read_tree(chars: &[char], start: usize) -> (String, usize) {
    let mut depth = 0usize;
    let mut end = start;
    while end < chars.len() {
        let c = chars[end];
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            c if depth == 0 && !(c.is_alphanumeric() || c == '_' || c == ':') => break,
            _ => {}
        }
        end += 1;
    }
    (chars[start..end].iter().collect(), end)
}

/// `a::{b, c::{d, e}}` as `a::b`, `a::c::d`, `a::c::e`.
fn expand(tree: &str) -> Vec<Vec<String>> {
    let tree: String = tree.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(open) = tree.find('{') else {
        return vec![tree.split("::").filter(|s| !s.is_empty()).map(str::to_owned).collect()];
    };
    let prefix: Vec<String> = tree[..open].split("::").filter(|s| !s.is_empty()).map(str::to_owned).collect();
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let (mut parts, mut depth, mut from) = (Vec::new(), 0, 0);
    for (at, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[from..at]);
                from = at + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[from..]);
    let mut out = Vec::new();
    for part in parts.into_iter().filter(|p| !p.is_empty()) {
        for tail in expand(part) {
            let mut path = prefix.clone();
            path.extend(tail.into_iter().filter(|segment| segment != "self"));
            out.push(path);
        }
    }
    out
}

/// The deepest module of the crate that `path`, written in module `from`, names.
fn resolve(from: &[String], path: &[String], modules: &BTreeSet<Vec<String>>) -> Option<Vec<String>> {
    let mut at: Vec<String> = from.to_vec();
    let mut segments = path.iter().peekable();
    match segments.next().map(String::as_str) {
        Some("crate") => at.clear(),
        Some("self") => {}
        Some("super") => {
            at.pop()?;
            while segments.peek().is_some_and(|s| *s == "super") {
                segments.next();
                at.pop()?;
            }
        }
        _ => return None,
    }
    for segment in segments {
        let mut deeper = at.clone();
        deeper.push(segment.clone());
        if !modules.contains(&deeper) {
            break;
        }
        at = deeper;
    }
    Some(at)
}

/// A cycle in `graph`, if it has one, as the list of its nodes.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, done, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|node| visit(node, graph, &mut done, &mut Vec::new()))
}

#[test]
fn the_checker_finds_a_cycle_and_resolves_paths() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_owned(), BTreeSet::from(["b".to_owned()])),
        ("b".to_owned(), BTreeSet::from(["c".to_owned()])),
        ("c".to_owned(), BTreeSet::from(["a".to_owned()])),
    ]
    .into();
    assert_eq!(find_cycle(&graph), Some(vec!["a".into(), "b".into(), "c".into(), "a".into()]));
    let acyclic: BTreeMap<String, BTreeSet<String>> = [("a".to_owned(), BTreeSet::from(["b".to_owned()]))].into();
    assert_eq!(find_cycle(&acyclic), None);

    let paths =
        imported_paths("use super::{model::{Page, Reason}, ports::Store};\nlet x = crate::limits::gcra::decide(1);");
    assert_eq!(paths.len(), 4, "{paths:?}");
    let modules: BTreeSet<Vec<String>> = [
        vec![],
        vec!["limits".into()],
        vec!["limits".into(), "gcra".into()],
        vec!["model".into()],
        vec!["ports".into()],
    ]
    .into();
    let from = vec!["limits".to_owned(), "memory".to_owned()];
    assert_eq!(
        resolve(&from, &paths[0], &modules),
        Some(vec!["limits".to_owned()]),
        "super of limits::memory is limits"
    );
    assert_eq!(resolve(&["engine".to_owned()], &paths[0], &modules), Some(vec!["model".to_owned()]));
    assert_eq!(resolve(&from, &paths[3], &modules), Some(vec!["limits".to_owned(), "gcra".to_owned()]));
    assert!(production_code("use a;\n#[cfg(test)]\nmod tests {\nuse crate::b;\n}\n").contains("use a;"));
    assert!(!production_code("use a;\n#[cfg(test)]\nmod tests {\nuse crate::b;\n}\n").contains("crate::b"));
}
