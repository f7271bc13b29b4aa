//! Prints how long each composition phase takes on the synthetic 20-subgraph, 2,000-type set.

#![allow(
    clippy::unwrap_used,
    reason = "a measuring program: a failed setup step ends it, with the location"
)]

use std::time::Instant;

use switchyard_compose::{merge, print, satisfiability, subgraph, synthetic, validate};

fn main() {
    let set = synthetic::generate(20, 2000);
    let t = Instant::now();
    let subs: Vec<_> = set.iter().map(|s| subgraph::parse(s).unwrap()).collect();
    let parse = t.elapsed();
    let t = Instant::now();
    let names: Vec<String> = subs.iter().map(|s| s.name.clone()).collect();
    for s in &subs {
        assert!(validate::validate(s, &names).is_empty());
    }
    let valid = t.elapsed();
    let t = Instant::now();
    let merged = merge::merge(&subs).unwrap();
    let merge_t = t.elapsed();
    let t = Instant::now();
    assert!(satisfiability::check(&subs, &merged).is_empty());
    let sat = t.elapsed();
    let t = Instant::now();
    let sdl = print::print(&merged);
    let print_t = t.elapsed();
    println!("parse {parse:?} validate {valid:?} merge {merge_t:?} satisfiability {sat:?} print {print_t:?} ({} bytes)", sdl.len());
}
