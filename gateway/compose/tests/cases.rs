//! Composition cases: every `tests/cases/*.graphql` file is a set of subgraphs.
//!
//! Format: `# expect: CODE, CODE` header lines mark an invalid set (the distinct error codes
//! must match exactly); without it the set must compose, its supergraph is snapshot-tested and
//! must validate as GraphQL. Subgraphs start with `--- subgraph: NAME [URL]`.

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap is the test failing, at that line"
)]

use std::collections::BTreeSet;
use switchyard_compose::compose;

mod support;
use support::load_cases;

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
