//! `check`: composition errors, drift, API diff classification and report formats, on real
//! files in a temporary directory.

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap is the test failing, at that line"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

use switchyard_compose::check::{check, render, CheckOptions, Format};
use switchyard_compose::config::load_subgraphs;

const A: &str = "extend schema @link(url: \"https://specs.apollo.dev/federation/v2.3\", import: [\"@key\"])\ntype Query { user(id: ID!): User }\ntype User @key(fields: \"id\") { id: ID! name: String }\n";
const B: &str = "extend schema @link(url: \"https://specs.apollo.dev/federation/v2.3\", import: [\"@key\"])\ntype User @key(fields: \"id\") { id: ID! posts: [String] karma: Int }\n";

fn workdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sy-check-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("supergraph.yaml"),
        "federation_version: =2.3.2\nsubgraphs:\n  users:\n    routing_url: http://users:4001/graphql\n    schema:\n      file: ./users.graphql\n  posts:\n    routing_url: http://posts:4002/graphql\n    schema:\n      file: ./posts.graphql\n",
    )
    .unwrap();
    std::fs::write(dir.join("users.graphql"), A).unwrap();
    std::fs::write(dir.join("posts.graphql"), B).unwrap();
    dir
}

fn compose_into(dir: &Path, file: &str) {
    let subs = load_subgraphs(&dir.join("supergraph.yaml")).unwrap();
    let sdl = switchyard_compose::compose(&subs).unwrap().supergraph_sdl;
    std::fs::write(dir.join(file), sdl).unwrap();
}

fn opts(dir: &Path) -> CheckOptions {
    CheckOptions {
        config: dir.join("supergraph.yaml"),
        supergraph: None,
        against: None,
        allow_breaking: false,
    }
}

#[test]
fn clean_check_passes() {
    let dir = workdir("clean");
    compose_into(&dir, "supergraph.graphql");
    let r = check(&opts(&dir)).unwrap();
    assert!(r.passed, "{}", render(&r, Format::Text));
    assert!(r.changes.is_empty() && r.drift.is_none() && r.errors.is_empty());
}

#[test]
fn drift_and_breaking_changes_fail() {
    let dir = workdir("drift");
    compose_into(&dir, "supergraph.graphql");
    std::fs::write(
        dir.join("posts.graphql"),
        B.replace(" karma: Int", " score: Int"),
    )
    .unwrap();
    let r = check(&opts(&dir)).unwrap();
    assert!(!r.passed);
    assert!(r.drift.is_some(), "drift must be reported");
    assert!(r
        .changes
        .iter()
        .any(|c| c.code == "FIELD_REMOVED" && c.coordinate == "User.karma"));
    assert!(r
        .changes
        .iter()
        .any(|c| c.code == "FIELD_ADDED" && c.coordinate == "User.score"));

    // Commit the new supergraph but diff against the old one: only the breaking change fails.
    std::fs::rename(dir.join("supergraph.graphql"), dir.join("base.graphql")).unwrap();
    compose_into(&dir, "supergraph.graphql");
    let mut o = opts(&dir);
    o.against = Some(dir.join("base.graphql").display().to_string());
    let r = check(&o).unwrap();
    assert!(r.drift.is_none());
    assert!(!r.passed, "breaking change must fail");
    o.allow_breaking = true;
    let r = check(&o).unwrap();
    assert!(
        r.passed,
        "--allow-breaking passes: {}",
        render(&r, Format::Text)
    );
    let gh = render(&r, Format::Github);
    assert!(
        gh.contains("::warning title=Breaking change (FIELD_REMOVED)::"),
        "{gh}"
    );
    assert!(
        gh.contains("::notice title=Safe change (FIELD_ADDED)::"),
        "{gh}"
    );
}

#[test]
fn composition_errors_render_in_all_formats() {
    let dir = workdir("errors");
    std::fs::write(
        dir.join("posts.graphql"),
        B.replace("karma: Int", "karma: Int name: String"),
    )
    .unwrap();
    let r = check(&opts(&dir)).unwrap();
    assert!(!r.passed);
    assert_eq!(r.errors[0].code, "INVALID_FIELD_SHARING");
    let gh = render(&r, Format::Github);
    let first = gh.lines().next().unwrap();
    assert!(first.starts_with("::error file="), "{first}");
    assert!(
        first.contains(",line=2,title=INVALID_FIELD_SHARING::"),
        "{first}"
    );
    let json: serde_json::Value = serde_json::from_str(&render(&r, Format::Json)).unwrap();
    assert_eq!(json["passed"], false);
    assert_eq!(json["errors"][0]["code"], "INVALID_FIELD_SHARING");
    assert!(json["errors"][0]["line"].is_number());
    assert!(render(&r, Format::Text).contains("[INVALID_FIELD_SHARING]"));
}

#[test]
fn explicit_missing_supergraph_is_drift() {
    let dir = workdir("missing");
    let mut o = opts(&dir);
    o.supergraph = Some(dir.join("nope.graphql"));
    let r = check(&o).unwrap();
    assert!(!r.passed);
    assert!(r.drift.unwrap().message.contains("missing"));
}

#[test]
fn against_git_ref_reads_committed_supergraph() {
    if Command::new("git").arg("--version").output().is_err() {
        eprintln!("git not installed; skipping");
        return;
    }
    let dir = workdir("git");
    compose_into(&dir, "supergraph.graphql");
    let git = |args: &[&str]| {
        let ok = Command::new("git")
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "-c",
                "commit.gpgsign=false",
            ])
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap()
            .status
            .success();
        assert!(ok, "git {args:?}");
    };
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "base"]);
    std::fs::write(
        dir.join("users.graphql"),
        A.replace("user(id: ID!)", "user(id: ID!, strict: Boolean!)"),
    )
    .unwrap();
    compose_into(&dir, "supergraph.graphql");
    let mut o = opts(&dir);
    o.against = Some("HEAD".into());
    let r = check(&o).unwrap();
    assert_eq!(r.base.as_deref(), Some("HEAD"));
    assert!(
        r.changes
            .iter()
            .any(|c| c.code == "REQUIRED_ARG_ADDED" && c.coordinate == "Query.user(strict:)"),
        "{:?}",
        r.changes
    );
    assert!(!r.passed);
}
