//! Planning benchmarks: operations of increasing shape on a 5-subgraph, ~30-type supergraph
//! (`tests/fixtures/shop.graphql`). Calls the planner directly: no plan cache involved.

#![allow(
    clippy::unwrap_used,
    reason = "a measuring program: a failed setup step ends it, with the location"
)]

use std::hint::black_box;
use std::sync::Arc;

use apollo_compiler::ExecutableDocument;
use criterion::{criterion_group, criterion_main, Criterion};
use switchyard_planner::{PlanOptions, QueryPlanner, Supergraph};

const SHOP: &str = include_str!("../tests/fixtures/shop.graphql");

const OPERATIONS: &[(&str, &str)] = &[
    ("simple_one_subgraph", "{ me { id name email address { city country } } }"),
    (
        "nested_four_subgraphs",
        "query Deep { me { name reviews { rating product { name ... on Furniture { stock { quantity warehouse { name carriers { name } } } } } } orders { total { amount } items { quantity product { name stock { quantity } } } } } }",
    ),
    (
        "requires",
        "{ products(first: 20) { name ... on Furniture { shippingEstimate(to: FR) { amount currency } } ... on Book { shippingEstimate { amount } } } }",
    ),
    (
        "abstract_types",
        "{ search(text: \"lamp\") { __typename ... on Product { name price { amount } } ... on Book { author stock { quantity } } ... on Category { name parent { name } } } me { paymentMethods { label ... on Card { last4 } ... on Wallet { provider } } } }",
    ),
    (
        "interface_object",
        "{ latestReviews { body author { name email } product { __typename name averageRating ... on Book { pages } } } }",
    ),
    (
        "mutation_then_jumps",
        "mutation ($upcs: [String!]!) { placeOrder(upcs: $upcs) { id buyer { name } items { product { name author } } shipment { status carrier { name } } } }",
    ),
];

fn planning(c: &mut Criterion) {
    let supergraph = Arc::new(Supergraph::parse(SHOP).expect("fixture parses"));
    let planner = QueryPlanner::new(supergraph.clone());
    let options = PlanOptions::default();
    let mut group = c.benchmark_group("plan");
    for (name, source) in OPERATIONS {
        let doc = ExecutableDocument::parse_and_validate(supergraph.api_schema(), *source, "op")
            .expect("operation validates");
        planner.plan(&doc, None, &options).expect("operation plans");
        group.bench_function(*name, |b| {
            b.iter(|| planner.plan(black_box(&doc), None, &options).unwrap())
        });
    }
    group.finish();
    c.bench_function("parse_supergraph", |b| {
        b.iter(|| Supergraph::parse(black_box(SHOP)).unwrap())
    });
}

criterion_group!(benches, planning);
criterion_main!(benches);
