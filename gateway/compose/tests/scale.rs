//! Scale: the synthetic 20-subgraph, 2,000-type set composes, and how long it takes.

use std::time::Instant;

use switchyard_compose::{compose, synthetic};

#[test]
fn synthetic_20_subgraphs_2000_types_composes() {
    let set = synthetic::generate(20, 2000);
    let start = Instant::now();
    let composed = compose(&set).unwrap_or_else(|e| panic!("{e}"));
    let took = start.elapsed();
    eprintln!("composed 20 subgraphs / 2000 entity types in {took:?}");
    // Entity types plus Query, Money and Status.
    assert_eq!(composed.merged.types.len(), 2003);
    assert!(composed.supergraph_sdl.contains("type T1999"));
    apollo_compiler::Schema::parse_and_validate(&composed.supergraph_sdl, "s.graphql")
        .expect("valid supergraph");
}
