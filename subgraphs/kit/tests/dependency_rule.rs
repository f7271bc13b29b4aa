//! The loose-coupling rule, checked from `cargo metadata`: a service crate under `subgraphs/`
//! may depend on the kit and on libraries, never on another subgraph crate. (Sharing code through
//! a sibling service would couple their releases and, sooner or later, their databases.)
//! And the manifests' hygiene: no crate declares a dependency it does not use (cargo-machete).

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

/// Runs cargo-machete on `dir`; `None` when it is not installed. (Called directly: as
/// `cargo machete` under `cargo test` it takes the subcommand's name for a directory.)
fn machete(dir: &Path) -> Option<std::process::Output> {
    match Command::new("cargo-machete").arg(dir).output() {
        Ok(output) => Some(output),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("run cargo-machete: {e}"),
    }
}

/// Every dependency a workspace manifest declares is used in that crate's sources.
/// cargo-machete reads sources only (about 2 s for the workspace) but is not part of the
/// toolchain, and building it takes minutes on two cores, so CI does not install it: without
/// it this test says so and passes (`cargo install cargo-machete --locked` turns it on).
#[test]
fn no_unused_dependency_declarations() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let Some(output) = machete(&root) else {
        eprintln!("cargo-machete not installed: unused dependencies not checked");
        return;
    };
    assert!(
        output.status.success(),
        "unused dependency declarations (remove them, or list a false positive under \
         [package.metadata.cargo-machete] ignored):\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_unused_dependency_check_bites() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    std::fs::write(
        dir.path().join("Cargo.toml"),
        "[package]\nname = \"probe\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
         [dependencies]\nserde = \"1\"\nanyhow = \"1\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("src/lib.rs"),
        "pub fn f() -> anyhow::Result<()> { Ok(()) }\n",
    )
    .unwrap();
    let Some(output) = machete(dir.path()) else {
        eprintln!("cargo-machete not installed: unused dependencies not checked");
        return;
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{stdout}");
    assert!(stdout.contains("serde"), "{stdout}");
    assert!(!stdout.contains("anyhow"), "{stdout}");
}
