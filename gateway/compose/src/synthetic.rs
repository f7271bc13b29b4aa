//! Synthetic subgraph sets for benchmarks and scale tests: `subgraphs` subgraphs together owning
//! `types` entity types, each extended by a neighbouring subgraph and linked to the next type,
//! so merging, key jumps and satisfiability all do real work.

use std::collections::BTreeSet;
use std::fmt::Write;

use crate::subgraph::SubgraphSource;

/// Builds the synthetic subgraph set.
pub fn generate(subgraphs: usize, types: usize) -> Vec<SubgraphSource> {
    let subgraphs = subgraphs.max(1);
    let mut sdls: Vec<String> = (0..subgraphs)
        .map(|_| {
            "extend schema @link(url: \"https://specs.apollo.dev/federation/v2.3\", import: [\"@key\", \"@shareable\", \"@external\", \"@requires\"])\n\nenum Status { ACTIVE INACTIVE }\n\ntype Money @shareable { amount: Int currency: String }\n\ntype Query {\n".to_string()
        })
        .collect();
    let owner = |t: usize| t % subgraphs;
    let mut defined = vec![BTreeSet::new(); subgraphs];
    let mut referenced = vec![BTreeSet::new(); subgraphs];
    for t in 0..types {
        let _ = writeln!(sdls[owner(t)], "  t{t}(id: ID!): T{t}");
    }
    for s in &mut sdls {
        s.push_str("}\n\n");
    }
    for t in 0..types {
        let o = owner(t);
        let next = (t + 1) % types;
        let _ = writeln!(
            sdls[o],
            "type T{t} @key(fields: \"id\") {{\n  id: ID!\n  name: String\n  status: Status\n  price: Money\n  weight: Int\n  next: T{next}\n}}\n"
        );
        if subgraphs > 1 {
            let e = (o + 1) % subgraphs;
            let _ = writeln!(
                sdls[e],
                "type T{t} @key(fields: \"id\") {{\n  id: ID!\n  weight: Int @external\n  shipping: Int @requires(fields: \"weight\")\n  related: [T{next}]\n}}\n"
            );
            defined[e].insert(t);
            referenced[e].insert(next);
        }
        defined[o].insert(t);
        referenced[o].insert(next);
    }
    // Referenced types a subgraph does not define become key-only stubs.
    for (i, sdl) in sdls.iter_mut().enumerate() {
        for r in &referenced[i] {
            if !defined[i].contains(r) {
                let _ = writeln!(sdl, "type T{r} @key(fields: \"id\") {{\n  id: ID!\n}}\n");
            }
        }
    }
    sdls.into_iter()
        .enumerate()
        .map(|(i, sdl)| {
            SubgraphSource::new(
                format!("sub{i:02}"),
                format!("http://sub{i:02}.invalid/graphql"),
                sdl,
            )
        })
        .collect()
}
