//! Composition cases: every `tests/cases/*.graphql` file is a set of subgraphs.
//!
//! Format: `# expect: CODE, CODE` header lines mark an invalid set (the distinct error codes
//! must match exactly); without it the set must compose, its supergraph is snapshot-tested and
//! must validate as GraphQL. Subgraphs start with `--- subgraph: NAME [URL]`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use switchyard_compose::{compose, SubgraphSource};

/// A parsed case file.
pub struct Case {
    pub name: String,
    pub expect: Vec<String>,
    pub subgraphs: Vec<SubgraphSource>,
}

pub fn load_cases() -> Vec<Case> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "graphql"))
        .collect();
    files.sort();
    files.iter().map(|p| parse_case(p)).collect()
}

fn parse_case(path: &Path) -> Case {
    let text = std::fs::read_to_string(path).unwrap();
    let name = path.file_stem().unwrap().to_string_lossy().to_string();
    let mut expect = Vec::new();
    let mut subgraphs: Vec<SubgraphSource> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("--- subgraph:") {
            let mut parts = rest.split_whitespace();
            let sname = parts.next().expect("subgraph name").to_string();
            let url = parts
                .next()
                .map(str::to_string)
                .unwrap_or_else(|| format!("http://{sname}.invalid/graphql"));
            let mut s = SubgraphSource::new(sname, url, "");
            s.file = Some(path.to_path_buf());
            subgraphs.push(s);
        } else if let Some(s) = subgraphs.last_mut() {
            s.sdl.push_str(line);
            s.sdl.push('\n');
        } else if let Some(codes) = line.strip_prefix("# expect:") {
            expect.extend(
                codes
                    .split(',')
                    .map(|c| c.trim().to_string())
                    .filter(|c| !c.is_empty()),
            );
        }
    }
    assert!(!subgraphs.is_empty(), "{name}: no subgraphs");
    Case {
        name,
        expect,
        subgraphs,
    }
}

#[test]
fn composition_cases() {
    let cases = load_cases();
    let mut failures = Vec::new();
    let (mut valid, mut invalid) = (0, 0);
    for case in &cases {
        let result = compose(&case.subgraphs);
        if case.expect.is_empty() {
            valid += 1;
            match result {
                Err(e) => failures.push(format!("{}: expected success, got {e}", case.name)),
                Ok(c) => {
                    if let Err(e) = apollo_compiler::Schema::parse_and_validate(
                        &c.supergraph_sdl,
                        "supergraph.graphql",
                    ) {
                        failures.push(format!(
                            "{}: supergraph is not valid GraphQL: {}",
                            case.name, e.errors
                        ));
                    }
                    let again = compose(&case.subgraphs).unwrap().supergraph_sdl;
                    if again != c.supergraph_sdl {
                        failures.push(format!("{}: output is not deterministic", case.name));
                    }
                    let name = case.name.clone();
                    let sdl = c.supergraph_sdl.clone();
                    let r = std::panic::catch_unwind(move || {
                        insta::with_settings!({ prepend_module_to_snapshot => false, omit_expression => true }, {
                            insta::assert_snapshot!(name, sdl);
                        });
                    });
                    if r.is_err() {
                        failures.push(format!("{}: snapshot mismatch", case.name));
                    }
                }
            }
        } else {
            invalid += 1;
            let want: BTreeSet<&str> = case.expect.iter().map(String::as_str).collect();
            match result {
                Ok(_) => {
                    failures.push(format!("{}: expected {want:?}, but it composed", case.name))
                }
                Err(e) => {
                    let got: BTreeSet<&str> = e.0.iter().map(|e| e.code).collect();
                    if got != want {
                        failures.push(format!("{}: expected {want:?}, got {e}", case.name));
                    }
                    for err in &e.0 {
                        if err.subgraph.is_some()
                            && err.line.is_none()
                            && err.code != "INVALID_SUBGRAPH_NAME"
                        {
                            failures.push(format!("{}: error without line: {err}", case.name));
                        }
                    }
                }
            }
        }
    }
    eprintln!("{} cases: {valid} valid, {invalid} invalid", cases.len());
    assert!(
        failures.is_empty(),
        "{} failing case(s):\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
