//! The domain's modules import only from below: value types at the bottom, then policy and
//! configuration, the lifecycle, the rules, records, ports, processors and the admin API.
//! This test reads the sources and fails on any import circle between top-level modules
//! (test code excluded), printing the layers it found.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The top-level module a source file belongs to (`lifecycle/events.rs` → `lifecycle`).
fn module_of(path: &Path, src: &Path) -> Option<String> {
    let rel = path.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    Some(first.trim_end_matches(".rs").to_owned())
}

/// The top-level modules `crate::…` paths in the non-test code of a file name (comments
/// and doc links are not imports).
fn imports(text: &str) -> BTreeSet<String> {
    let code: String = text.split("#[cfg(test)]").next().unwrap_or_default().lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        // `use crate::{a, b}` names several.
        if name.is_empty() && rest.starts_with('{') {
            let group = &rest[1..rest.find('}').unwrap_or(rest.len())];
            out.extend(group.split(',').filter_map(|p| p.trim().split("::").next()).filter(|n| !n.is_empty()).map(str::to_owned));
        } else if !name.is_empty() {
            out.insert(name);
        }
    }
    out
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("source dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") && path.file_name().is_some_and(|n| n != "tests.rs") {
            out.push(path);
        }
    }
}

#[test]
fn modules_import_only_from_below() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    files(&src, &mut paths);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in paths {
        let Some(module) = module_of(&path, &src) else { continue };
        if module == "lib" || module == "layers" {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("source");
        let deps = graph.entry(module.clone()).or_default();
        // `MarketError` is re-exported at the root: it is `error`.
        deps.extend(imports(&text).into_iter().map(|d| if d == "MarketError" { "error".into() } else { d }).filter(|d| *d != module));
        if text.contains("crate::MarketError") {
            deps.insert("error".into());
        }
    }
    // Peel off layers: each holds the modules whose imports are all in earlier layers.
    let mut placed: BTreeSet<String> = BTreeSet::new();
    let mut layers = Vec::new();
    while placed.len() < graph.len() {
        let layer: Vec<String> = graph.iter().filter(|(m, deps)| !placed.contains(*m) && deps.iter().all(|d| placed.contains(d) || !graph.contains_key(d))).map(|(m, _)| m.clone()).collect();
        if layer.is_empty() {
            let rest: BTreeMap<_, _> = graph.iter().filter(|(m, _)| !placed.contains(*m)).map(|(m, d)| (m, d.iter().filter(|d| !placed.contains(*d)).collect::<Vec<_>>())).collect();
            panic!("an import circle among {rest:#?} (layers so far: {layers:?})");
        }
        placed.extend(layer.iter().cloned());
        layers.push(layer);
    }
    println!("layers, bottom first: {layers:?}");
    // The value types stand below everything that uses them.
    let level = |m: &str| layers.iter().position(|l| l.iter().any(|x| x == m)).expect("placed");
    assert!(level("money") < level("config") && level("limits") < level("config") && level("ledger") < level("lifecycle"));
    assert!(level("config") < level("rules") && level("policy") < level("rules") && level("group") < level("rules"));
    assert!(level("lifecycle") < level("model") && level("rules") < level("model") && level("model") < level("ports"));
    assert!(level("ports") < level("processors") && level("processors") < level("admin"));
}
