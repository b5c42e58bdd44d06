//! The module boundaries of docs/modules.md, read off the source tree: the kernel knows no
//! module, a module knows the kernel and no other module, and each table has one room (the one
//! crate whose queries read and write it).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use regex::Regex;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The modules: every folder of `modules/` but the kernel.
fn modules() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(Path::new(ROOT).join("modules"))
        .expect("modules/")
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().join("Cargo.toml").is_file())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name != "kernel")
        .collect();
    names.sort();
    assert!(names.len() >= 5, "modules found: {names:?}");
    names
}

fn sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("a source folder") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("a source file");
                found.push((path, text));
            }
        }
    }
    found
}

fn crate_sources(name: &str) -> Vec<(PathBuf, String)> {
    sources(&Path::new(ROOT).join("modules").join(name).join("src"))
}

/// A module's routes, from its OpenAPI fragment, with parameters in both spellings
/// (`{name}` in OpenAPI, `<name>` in Rocket).
fn routes(module: &str) -> Vec<String> {
    let path = Path::new(ROOT)
        .join("modules")
        .join(module)
        .join("openapi.json");
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let doc: serde_json::Value = serde_json::from_str(&text).expect("an OpenAPI fragment");
    let parameter = Regex::new(r"\{([^}]+)\}").expect("regex");
    doc["paths"]
        .as_object()
        .map(|paths| {
            paths
                .keys()
                .flat_map(|p| [p.clone(), parameter.replace_all(p, "<$1>").into_owned()])
                .collect()
        })
        .unwrap_or_default()
}

/// Every table the migrations create.
fn tables() -> BTreeSet<String> {
    let create = Regex::new(r"(?i)CREATE TABLE\s+([a-z_][a-z0-9_]*)").expect("regex");
    let mut tables = BTreeSet::new();
    for dialect in ["sqlite", "postgres"] {
        let dir = Path::new(ROOT).join("migrations").join(dialect);
        for entry in std::fs::read_dir(dir).expect("migrations") {
            let text = std::fs::read_to_string(entry.expect("entry").path()).expect("sql");
            tables.extend(create.captures_iter(&text).map(|c| c[1].to_lowercase()));
        }
    }
    assert!(tables.contains("users"), "{tables:?}");
    tables
}

/// The workspace packages a manifest depends on, by the package names of `modules/*`.
fn depends_on(manifest: &str, module: &str) -> bool {
    let package = format!("\"stride-{}\"", module.replace('_', "-"));
    manifest.contains(&package) || manifest.contains(&format!("\"../{module}\""))
}

fn manifest(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(ROOT)
            .join("modules")
            .join(name)
            .join("Cargo.toml"),
    )
    .expect("Cargo.toml")
}

// (Crate paths are not searched for: the kernel's own `users` store and the `users` module
// share a name, and a crate can only name what its manifest depends on, which is checked.)
#[test]
fn the_kernel_names_no_module() {
    let kernel = crate_sources("kernel");
    let kernel_manifest = manifest("kernel");
    let mut found = Vec::new();
    for module in modules() {
        if depends_on(&kernel_manifest, &module) {
            found.push(format!("modules/kernel/Cargo.toml depends on {module}"));
        }
        let mut needles = vec![
            format!("modules.{module}"),
            format!("stride-{}", module.replace('_', "-")),
        ];
        needles.extend(routes(&module));
        for (path, text) in &kernel {
            for needle in &needles {
                if text.contains(needle.as_str()) {
                    found.push(format!("{}: {needle}", path.display()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "the kernel names modules:\n{}",
        found.join("\n")
    );
}

#[test]
fn a_module_knows_the_kernel_and_no_other_module() {
    let modules = modules();
    let mut found = Vec::new();
    for module in &modules {
        let manifest = manifest(module);
        assert!(
            depends_on(&manifest, "kernel") || manifest.contains("kernel.workspace"),
            "{module}"
        );
        for other in modules.iter().filter(|o| *o != module) {
            if depends_on(&manifest, other) {
                found.push(format!("modules/{module}/Cargo.toml depends on {other}"));
            }
        }
    }
    assert!(
        found.is_empty(),
        "modules reach into each other:\n{}",
        found.join("\n")
    );
}

#[test]
fn every_table_has_one_room() {
    let tables = tables();
    let statement =
        Regex::new(r"(?i)\b(?:from|into|update|join)\s+([a-z_][a-z0-9_]*)").expect("regex");
    let mut rooms: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut crates = modules();
    crates.push("kernel".into());
    for name in &crates {
        for (_, text) in crate_sources(name) {
            for captures in statement.captures_iter(&text) {
                let table = captures[1].to_lowercase();
                if tables.contains(&table) {
                    rooms.entry(table).or_default().insert(name.clone());
                }
            }
        }
    }
    let shared: Vec<String> = rooms
        .iter()
        .filter(|(_, owners)| owners.len() > 1)
        .map(|(table, owners)| format!("{table}: {owners:?}"))
        .collect();
    assert!(
        shared.is_empty(),
        "tables queried from more than one crate:\n{}",
        shared.join("\n")
    );
    // The modules that own tables own them (a room that moved away would show here).
    assert_eq!(
        rooms.get("pictures").map(|o| o.iter().next().cloned()),
        Some(Some("pictures".into()))
    );
    assert_eq!(
        rooms
            .get("password_reset_tokens")
            .map(|o| o.iter().next().cloned()),
        Some(Some("password_reset".into()))
    );
    #[cfg(feature = "sso")]
    for table in ["sso_flows", "sso_codes", "sso_identities", "sso_settings"] {
        assert_eq!(
            rooms
                .get(table)
                .map(|o| o.iter().cloned().collect::<Vec<_>>()),
            Some(vec!["sso".to_owned()]),
            "{table}"
        );
    }
}
