//! The loose-coupling rule, checked from `cargo metadata`: a service crate under `subgraphs/`
//! may depend on the kit and on libraries, never on another subgraph crate. (Sharing code through
//! a sibling service would couple their releases and, sooner or later, their databases.)
//! And the manifests' hygiene: no crate declares a dependency its sources never name.

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap is the test failing, at that line"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Crates under `subgraphs/` that services may depend on.
const ALLOWED: [&str; 1] = ["switchyard-subgraph-kit"];
/// Crates under `subgraphs/` exempt from the rule as dependents (the demo is a test workload).
const EXEMPT: [&str; 2] = ["switchyard-subgraph-kit", "switchyard-demo-subgraphs"];

/// `(crate, forbidden dependency)` pairs found in `cargo metadata --no-deps` output.
fn violations(metadata: &Value) -> Vec<(String, String)> {
    let root = PathBuf::from(metadata["workspace_root"].as_str().unwrap());
    let subgraphs = root.join("subgraphs");
    let packages = metadata["packages"].as_array().unwrap();
    let is_subgraph = |manifest: &Path| manifest.starts_with(&subgraphs);
    let subgraph_crates: Vec<&str> = packages
        .iter()
        .filter(|p| is_subgraph(Path::new(p["manifest_path"].as_str().unwrap())))
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    let mut found = Vec::new();
    for package in packages {
        let name = package["name"].as_str().unwrap();
        if !is_subgraph(Path::new(package["manifest_path"].as_str().unwrap()))
            || EXEMPT.contains(&name)
        {
            continue;
        }
        for dep in package["dependencies"].as_array().unwrap() {
            let dep_name = dep["name"].as_str().unwrap();
            if ALLOWED.contains(&dep_name) {
                continue;
            }
            let by_path = dep["path"]
                .as_str()
                .is_some_and(|p| Path::new(p).starts_with(&subgraphs));
            if by_path || subgraph_crates.contains(&dep_name) {
                found.push((name.to_owned(), dep_name.to_owned()));
            }
        }
    }
    found
}

fn workspace_metadata() -> Value {
    let output = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn no_subgraph_crate_depends_on_another() {
    let metadata = workspace_metadata();
    let names: Vec<&str> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"switchyard-subgraph-kit"),
        "the workspace was read: {names:?}"
    );
    let found = violations(&metadata);
    assert!(
        found.is_empty(),
        "subgraph crates depend on other subgraph crates: {found:?}"
    );
}

#[test]
fn the_kit_depends_on_no_subgraph_crate() {
    let metadata = workspace_metadata();
    let kit = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "switchyard-subgraph-kit")
        .unwrap();
    let root = PathBuf::from(metadata["workspace_root"].as_str().unwrap());
    for dep in kit["dependencies"].as_array().unwrap() {
        let path = dep["path"].as_str().map(PathBuf::from);
        assert!(
            !path.is_some_and(|p| p.starts_with(root.join("subgraphs"))),
            "the kit depends on {}",
            dep["name"]
        );
    }
}

#[test]
fn the_rule_bites_on_a_service_depending_on_a_sibling() {
    let root = "/ws";
    let package = |name: &str, deps: Value| {
        serde_json::json!({
            "name": name,
            "manifest_path": format!("{root}/subgraphs/{}/Cargo.toml", name.trim_start_matches("switchyard-")),
            "dependencies": deps,
        })
    };
    let metadata = serde_json::json!({
        "workspace_root": root,
        "packages": [
            package("switchyard-subgraph-kit", serde_json::json!([])),
            package("switchyard-profile", serde_json::json!([
                {"name": "switchyard-subgraph-kit", "path": "/ws/subgraphs/kit"},
                {"name": "serde"},
            ])),
            package("switchyard-chat", serde_json::json!([
                {"name": "switchyard-subgraph-kit", "path": "/ws/subgraphs/kit"},
                {"name": "switchyard-profile", "path": "/ws/subgraphs/profile"},
            ])),
            package("switchyard-analytics", serde_json::json!([
                {"name": "switchyard-demo-subgraphs", "path": "/ws/subgraphs/demo"},
            ])),
            {
                "name": "switchyard-gateway",
                "manifest_path": "/ws/gateway/Cargo.toml",
                "dependencies": [{"name": "switchyard-demo-subgraphs", "path": "/ws/subgraphs/demo"}],
            },
        ],
    });
    assert_eq!(
        violations(&metadata),
        [
            (
                "switchyard-chat".to_owned(),
                "switchyard-profile".to_owned()
            ),
            (
                "switchyard-analytics".to_owned(),
                "switchyard-demo-subgraphs".to_owned()
            ),
        ]
    );
}

/// `(crate, dependency)` for every dependency a workspace crate declares (normal, dev or
/// build) whose name none of the crate's own Rust sources mention as a path (`name::`) or in a
/// `use` / `extern crate`. The same reading as cargo-machete, done here so that CI checks it
/// without installing anything. A dependency needed for another reason (a feature it turns on
/// for the build) is listed under `[package.metadata.cargo-machete] ignored`.
fn unused_dependencies(metadata: &Value) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for package in metadata["packages"].as_array().unwrap() {
        let manifest = Path::new(package["manifest_path"].as_str().unwrap());
        let mut text = String::new();
        read_sources(manifest.parent().unwrap(), true, &mut text);
        let ignored: Vec<&str> = package["metadata"]["cargo-machete"]["ignored"]
            .as_array()
            .map(|names| names.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for dep in package["dependencies"].as_array().unwrap() {
            let name = dep["rename"]
                .as_str()
                .unwrap_or_else(|| dep["name"].as_str().unwrap());
            if ignored.contains(&name) || names_crate(&text, &name.replace('-', "_")) {
                continue;
            }
            let entry = (
                package["name"].as_str().unwrap().to_owned(),
                name.to_owned(),
            );
            if !found.contains(&entry) {
                found.push(entry);
            }
        }
    }
    found
}

/// Appends every `.rs` file under `dir` to `text`, leaving out `target/` and folders of other
/// packages (a subfolder with its own `Cargo.toml`).
fn read_sources(dir: &Path, top: bool, text: &mut String) {
    if !top && dir.join("Cargo.toml").exists() || dir.ends_with("target") {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            read_sources(&path, false, text);
        } else if path.extension().is_some_and(|e| e == "rs") {
            text.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
            text.push('\n');
        }
    }
}

/// Whether `text` names the crate `ident`: `ident::…`, `use ident`, `extern crate ident`.
fn names_crate(text: &str, ident: &str) -> bool {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(ident).any(|(at, _)| {
        let before = &text[..at];
        let after = &text[at + ident.len()..];
        !before.ends_with(is_ident)
            && !after.starts_with(is_ident)
            && (after.starts_with("::")
                || before.ends_with("use ")
                || before.ends_with("extern crate "))
    })
}

/// Every dependency a workspace manifest declares is used in that crate's sources.
#[test]
fn no_unused_dependency_declarations() {
    let metadata = workspace_metadata();
    let found = unused_dependencies(&metadata);
    assert!(
        found.is_empty(),
        "unused dependency declarations (remove them, or list one needed for another reason \
         under [package.metadata.cargo-machete] ignored): {found:?}"
    );
}

#[test]
fn the_unused_dependency_check_bites() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::create_dir_all(root.join("inner/src")).unwrap();
    std::fs::write(root.join("inner/Cargo.toml"), "").unwrap();
    // `serde` appears only in a comment-free word and in another package's folder; `anyhow`
    // and the renamed `json` are used; `bytes` is used through `use`.
    std::fs::write(
        root.join("src/lib.rs"),
        "use bytes;\npub fn f() -> anyhow::Result<()> { let _ = json::Value::Null; Ok(()) }\n\
         pub fn serde_like() {}\n",
    )
    .unwrap();
    std::fs::write(root.join("inner/src/lib.rs"), "use serde::Serialize;\n").unwrap();
    let metadata = serde_json::json!({
        "packages": [{
            "name": "probe",
            "manifest_path": root.join("Cargo.toml"),
            "metadata": { "cargo-machete": { "ignored": ["mimalloc"] } },
            "dependencies": [
                {"name": "serde"}, {"name": "anyhow"}, {"name": "bytes", "kind": "dev"},
                {"name": "serde_json", "rename": "json"}, {"name": "mimalloc"},
                {"name": "tokio-util", "kind": "build"},
            ],
        }],
    });
    assert_eq!(
        unused_dependencies(&metadata),
        [
            ("probe".to_owned(), "serde".to_owned()),
            ("probe".to_owned(), "tokio-util".to_owned()),
        ]
    );
}
