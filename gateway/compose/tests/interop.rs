//! Interop: compose every case with The Guild's MIT composer (`@theguild/federation-composition`,
//! installed from npm on first run into `target/guild-composer`) and check that the two
//! supergraphs are equivalent (same types, fields, arguments and join directives, order-insensitive),
//! and that invalid cases fail there too with the same error codes.
//!
//! Skips only when node/npm are missing outside CI (`CI` unset); in CI a missing toolchain fails.

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap is the test failing, at that line"
)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use apollo_compiler::ast::Value;
use apollo_compiler::schema::ExtendedType;
use apollo_compiler::Schema;
use support::load_cases;

/// Where the composer differs from Apollo-compatible behaviour we implement, by case name.
const KNOWN_DIVERGENCES: &[(&str, &str)] = &[
    (
        "valid_link_as_namespace",
        "the Guild composer does not honour `@link(as:)` for the federation spec",
    ),
    (
        "err_context_unsupported",
        "the Guild composer implements @context/@fromContext; Switchyard refuses them \
         (UNSUPPORTED_FEATURE) until its gateway can fill the argument",
    ),
    (
        "err_external_on_interface",
        "the Guild composer accepts @external on interface fields",
    ),
    (
        "err_interface_key_missing_implementation",
        "the Guild composer does not check INTERFACE_KEY_MISSING_IMPLEMENTATION_TYPE here",
    ),
    (
        "err_interface_object_defines_implementation",
        "the Guild composer lets an @interfaceObject subgraph define the interface's \
         implementations; Apollo's rejects it (INTERFACE_OBJECT_USAGE_ERROR)",
    ),
    (
        "err_key_fields_select_invalid_type",
        "the Guild composer accepts a union-typed field in @key; Apollo rejects it",
    ),
];

fn composer_dir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("SWITCHYARD_GUILD_COMPOSER") {
        return Some(PathBuf::from(dir));
    }
    let ci = std::env::var_os("CI").is_some();
    let have = |bin: &str| {
        Command::new(bin)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !have("node") || !have("npm") {
        assert!(!ci, "node/npm are required for the interop test in CI");
        eprintln!("node/npm not found: skipping interop test");
        return None;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/guild-composer");
    if !dir
        .join("node_modules/@theguild/federation-composition")
        .exists()
    {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("package.json"),
            "{\"name\":\"guild-composer\",\"private\":true}",
        )
        .unwrap();
        let ok = Command::new("npm")
            .args([
                "i",
                "--no-audit",
                "--no-fund",
                "@theguild/federation-composition@0.27",
                "graphql@16",
            ])
            .current_dir(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            assert!(
                !ci,
                "npm install of @theguild/federation-composition failed"
            );
            eprintln!("npm install failed: skipping interop test");
            return None;
        }
    }
    Some(dir)
}

/// Composes every case in one node process (startup dominates otherwise).
fn guild_compose(dir: &Path, cases: &[support::Case]) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/compose.cjs");
    let input: Vec<serde_json::Value> = cases
        .iter()
        .map(|c| {
            let subs: Vec<serde_json::Value> = c
                .subgraphs
                .iter()
                .map(|s| serde_json::json!({"name": s.name, "url": s.url, "sdl": s.sdl}))
                .collect();
            serde_json::json!({"name": c.name, "subgraphs": subs})
        })
        .collect();
    let mut child = Command::new("node")
        .arg(script)
        .current_dir(dir)
        .env("NODE_PATH", dir.join("node_modules"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&input).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    serde_json::from_slice(&out.stdout).expect("composer prints JSON")
}

fn value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{:?}", s.split_whitespace().collect::<Vec<_>>().join(" ")),
        other => other.to_string(),
    }
}

fn directives<'a>(
    ds: impl Iterator<Item = &'a apollo_compiler::ast::Directive>,
) -> BTreeSet<String> {
    ds.filter(|d| !matches!(d.name.as_str(), "link"))
        .map(|d| {
            let mut args: Vec<String> = d
                .arguments
                .iter()
                .filter(|a| {
                    let v = a.value.as_ref();
                    !matches!(
                        (a.name.as_str(), v),
                        ("extension", Value::Boolean(false))
                            | ("resolvable", Value::Boolean(true))
                            | ("isInterfaceObject", Value::Boolean(false))
                            | ("external", Value::Boolean(false))
                            | ("usedOverridden", Value::Boolean(false))
                    )
                })
                .map(|a| {
                    // Field sets compare by meaning, not spacing (`a{b}` vs `a { b }`).
                    let field_set = matches!(a.name.as_str(), "key" | "requires" | "provides");
                    match a.value.as_str().map(switchyard_compose::fieldset::parse) {
                        Some(Ok(sels)) if field_set => format!(
                            "{}: {:?}",
                            a.name,
                            switchyard_compose::fieldset::print(&sels)
                        ),
                        _ => format!("{}: {}", a.name, value(&a.value)),
                    }
                })
                .collect();
            args.sort();
            format!("@{}({})", d.name, args.join(", "))
        })
        .collect()
}

/// Order-insensitive description of a supergraph: per type, per member, its type and directives.
fn shape(sdl: &str) -> BTreeMap<String, BTreeSet<String>> {
    let schema = Schema::parse(sdl, "s.graphql").unwrap_or_else(|e| e.partial);
    let mut out = BTreeMap::new();
    for (name, t) in &schema.types {
        if t.is_built_in() || name.starts_with("link__") || name.starts_with("join__") {
            continue;
        }
        let mut items = BTreeSet::new();
        let kind = match t {
            ExtendedType::Scalar(_) => "scalar",
            ExtendedType::Object(_) => "type",
            ExtendedType::Interface(_) => "interface",
            ExtendedType::Union(_) => "union",
            ExtendedType::Enum(_) => "enum",
            ExtendedType::InputObject(_) => "input",
        };
        items.insert(format!("kind {kind}"));
        for d in directives(t.directives().iter().map(|c| &***c)) {
            items.insert(format!("type {d}"));
        }
        let fields = match t {
            ExtendedType::Object(o) => {
                items.extend(
                    o.implements_interfaces
                        .iter()
                        .map(|i| format!("implements {i}")),
                );
                Some(&o.fields)
            }
            ExtendedType::Interface(o) => {
                items.extend(
                    o.implements_interfaces
                        .iter()
                        .map(|i| format!("implements {i}")),
                );
                Some(&o.fields)
            }
            ExtendedType::Union(u) => {
                items.extend(u.members.iter().map(|m| format!("member {m}")));
                None
            }
            ExtendedType::Enum(e) => {
                for v in e.values.values() {
                    items.insert(format!("value {}", v.value));
                    for d in directives(v.directives.iter().map(|d| &**d)) {
                        items.insert(format!("value {} {d}", v.value));
                    }
                }
                None
            }
            ExtendedType::InputObject(i) => {
                for f in i.fields.values() {
                    let def = f
                        .default_value
                        .as_ref()
                        .map(|d| format!(" = {d}"))
                        .unwrap_or_default();
                    items.insert(format!("input {}: {}{def}", f.name, f.ty));
                    for d in directives(f.directives.iter().map(|d| &**d)) {
                        items.insert(format!("input {} {d}", f.name));
                    }
                }
                None
            }
            ExtendedType::Scalar(_) => None,
        };
        for f in fields.into_iter().flat_map(|m| m.values()) {
            items.insert(format!("field {}: {}", f.name, f.ty));
            for a in &f.arguments {
                let def = a
                    .default_value
                    .as_ref()
                    .map(|d| format!(" = {d}"))
                    .unwrap_or_default();
                items.insert(format!("field {}({}: {}{def})", f.name, a.name, a.ty));
            }
            for d in directives(f.directives.iter().map(|d| &**d)) {
                items.insert(format!("field {} {d}", f.name));
            }
        }
        out.insert(name.to_string(), items);
    }
    out
}

fn describe_diff(
    ours: &BTreeMap<String, BTreeSet<String>>,
    theirs: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<String> {
    let mut out = Vec::new();
    let names: BTreeSet<&String> = ours.keys().chain(theirs.keys()).collect();
    for n in names {
        match (ours.get(n), theirs.get(n)) {
            (Some(a), Some(b)) => {
                for x in a.difference(b) {
                    out.push(format!("{n}: only ours: {x}"));
                }
                for x in b.difference(a) {
                    out.push(format!("{n}: only theirs: {x}"));
                }
            }
            (Some(_), None) => out.push(format!("type {n} only in ours")),
            (None, Some(_)) => out.push(format!("type {n} only in theirs")),
            (None, None) => {}
        }
    }
    out
}

#[test]
fn supergraphs_match_the_guild_composer() {
    let Some(dir) = composer_dir() else { return };
    let mut failures = Vec::new();
    let mut compared = 0;
    let cases: Vec<support::Case> = load_cases()
        .into_iter()
        .filter(|c| !KNOWN_DIVERGENCES.iter().any(|(n, _)| *n == c.name))
        .chain(std::iter::once(support::Case {
            name: "synthetic_4x60".into(),
            expect: Vec::new(),
            subgraphs: switchyard_compose::synthetic::generate(4, 60),
        }))
        .collect();
    let all = guild_compose(&dir, &cases);
    for case in &cases {
        let theirs = all[&case.name].clone();
        let ours = switchyard_compose::compose(&case.subgraphs);
        compared += 1;
        match (ours, theirs.get("supergraph").and_then(|s| s.as_str())) {
            (Ok(c), Some(sdl)) => {
                let d = describe_diff(&shape(&c.supergraph_sdl), &shape(sdl));
                if !d.is_empty() {
                    failures.push(format!("{}:\n  {}", case.name, d.join("\n  ")));
                }
            }
            (Err(e), None) => {
                let ours: BTreeSet<&str> = e.0.iter().map(|e| e.code).collect();
                let theirs: BTreeSet<&str> = theirs["errors"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|e| e["code"].as_str())
                    .collect();
                if ours != theirs {
                    failures.push(format!(
                        "{}: error codes differ: ours {ours:?}, theirs {theirs:?}",
                        case.name
                    ));
                }
            }
            (Ok(_), None) => failures.push(format!(
                "{}: we compose, they fail: {}",
                case.name, theirs["errors"]
            )),
            (Err(e), Some(_)) => {
                failures.push(format!("{}: they compose, we fail: {e}", case.name))
            }
        }
    }
    eprintln!("compared {compared} cases with @theguild/federation-composition");
    assert!(
        failures.is_empty(),
        "{} case(s) differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
