//! `schema/` holds what each service exports and what they compose to; this test fails when
//! either drifts from the code. `SWITCHYARD_UPDATE_SCHEMA=1` rewrites the files instead.

use std::path::{Path, PathBuf};

use switchyard::stack::{service_sdl, SERVICES};

fn schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schema")
}

fn updating() -> bool {
    std::env::var("SWITCHYARD_UPDATE_SCHEMA").is_ok_and(|v| v == "1")
}

/// Compares `path` with `expected`, or rewrites it when updating; returns a drift message.
fn check_file(path: &Path, expected: &str) -> Option<String> {
    let current = std::fs::read_to_string(path).unwrap_or_default();
    if current == expected {
        return None;
    }
    if updating() {
        std::fs::write(path, expected).unwrap();
        return None;
    }
    Some(format!(
        "{} is out of date (run `SWITCHYARD_UPDATE_SCHEMA=1 cargo test --test e2e schema_current::`)",
        path.display()
    ))
}

#[test]
fn committed_service_schemas_and_supergraph_match_the_code() {
    let dir = schema_dir();
    let mut drift = Vec::new();
    for service in SERVICES {
        drift.extend(check_file(
            &dir.join(format!("{service}.graphql")),
            &service_sdl(service),
        ));
    }
    // Compose from the (possibly just rewritten) files, exactly as `switchyard compose` does.
    let sources = switchyard_compose::config::load_subgraphs(&dir.join("supergraph.yaml"))
        .expect("schema/supergraph.yaml loads");
    let composed = switchyard_compose::compose(&sources)
        .unwrap_or_else(|e| panic!("the platform's services do not compose:\n{e}"));
    drift.extend(check_file(
        &dir.join("supergraph.graphql"),
        &composed.supergraph_sdl,
    ));
    // The Kubernetes ConfigMap is generated from a copy beside the manifests (kustomize reads
    // only files under its own directory).
    let k8s_copy = dir.join("../deploy/k8s/supergraph.graphql");
    if k8s_copy.parent().is_some_and(Path::exists) {
        drift.extend(check_file(&k8s_copy, &composed.supergraph_sdl));
    }
    assert!(drift.is_empty(), "{}", drift.join("\n"));
}

#[test]
fn every_service_is_in_the_composition_config() {
    let config = std::fs::read_to_string(schema_dir().join("supergraph.yaml")).unwrap();
    for service in SERVICES {
        assert!(
            config.contains(&format!("  {service}:\n")),
            "schema/supergraph.yaml lacks {service}"
        );
    }
}

/// `switchyard plan` over the committed supergraph takes the operation as text, as a file, or on
/// standard input, and says what is wrong with a bad one.
#[test]
fn plan_takes_the_operation_as_text_a_file_or_standard_input() {
    use std::io::Write;
    use std::process::{Command, Stdio};

    let supergraph = schema_dir().join("supergraph.graphql");
    let operation = "{ member(id: \"1\") { handle } }";
    let plan = |query: &str, stdin: Option<&str>| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .arg("plan")
            .arg("--supergraph")
            .arg(&supergraph)
            .arg("--query")
            .arg(query)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
        drop(input);
        child.wait_with_output().unwrap()
    };
    let text = plan(operation, None);
    assert!(text.status.success(), "{text:?}");
    let printed = String::from_utf8(text.stdout).unwrap();
    assert!(printed.contains("Fetch(service: \"profile\")"), "{printed}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("op.graphql");
    std::fs::write(&file, operation).unwrap();
    let from_file = plan(file.to_str().unwrap(), None);
    assert_eq!(String::from_utf8(from_file.stdout).unwrap(), printed);
    let from_stdin = plan("-", Some(operation));
    assert_eq!(String::from_utf8(from_stdin.stdout).unwrap(), printed);

    let bad = plan("{ nope }", None);
    assert!(!bad.status.success());
    let stderr = String::from_utf8(bad.stderr).unwrap();
    assert!(stderr.contains("nope"), "{stderr}");
    assert!(!stderr.contains("No such file"), "{stderr}");
}

/// `switchyard plan --variables` prints the plan the gateway runs for those values: conditions
/// on them decided (defaults included); without it, the general plan that gates at run time.
#[test]
fn plan_with_variables_prints_the_plan_specialised_for_their_values() {
    let supergraph = schema_dir().join("supergraph.graphql");
    let operation = "query($withStats: Boolean!, $handle: Boolean = true) { \
                     member(id: \"1\") { handle @include(if: $handle) \
                     stats @include(if: $withStats) { profileViews } } }";
    let plan = |variables: Option<&str>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"));
        command
            .arg("plan")
            .arg("--supergraph")
            .arg(&supergraph)
            .arg("--query")
            .arg(operation);
        if let Some(variables) = variables {
            command.arg("--variables").arg(variables);
        }
        let output = command.output().unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    let general = plan(None);
    assert!(general.contains("Include(if: $withStats)"), "{general}");
    assert!(
        general.contains("Fetch(service: \"analytics\")"),
        "{general}"
    );
    let without = plan(Some(r#"{"withStats": false}"#));
    assert!(!without.contains("analytics"), "{without}");
    assert!(
        !without.contains('@') && !without.contains('$'),
        "{without}"
    );
    assert!(
        without.contains("handle"),
        "the default of $handle holds: {without}"
    );
    let with = plan(Some(r#"{"withStats": true, "handle": false}"#));
    assert!(with.contains("Fetch(service: \"analytics\")"), "{with}");
    assert!(
        !with.contains("Include(") && !with.contains("handle"),
        "{with}"
    );
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args([
            "plan",
            "--query",
            "{ __typename }",
            "--variables",
            "[1]",
            "--supergraph",
        ])
        .arg(&supergraph)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("--variables is not a JSON object"),
        "{stderr}"
    );
}
