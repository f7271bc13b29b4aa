//! The executor's JSON reader against serde_json and sonic-rs, on the subgraph response bodies
//! of the demo workload's nested query (`schema/demo/queries/nested.json`): the four demo
//! subgraphs run in-process, the gateway runs the query once, and every body a subgraph sent is
//! kept. Each iteration parses all of them.
//!
//! Like is compared with like: the executor merges its own value type, so the variants that
//! build it (`*_into_data`, `*_then_data`) are the ones that could replace the reader; the
//! `*_value` variants build only the other library's tree, a lower bound for it.
//!
//! serde_json without `preserve_order` cannot be built into this workspace: features are unified
//! and the workspace's own Cargo.toml turns it on, so every `serde_json::Value` object here is an
//! IndexMap. `SortedValue` below is what `serde_json::Value` is without that feature (objects as
//! `BTreeMap<String, _>`, filled by the same visitor calls from the same serde_json parser), so
//! `serde_json_sorted_value` is serde_json's tree without `preserve_order`.
//!
//! sonic-rs is built for the same target as the gateway (no `-C target-cpu=native`), as the
//! gateway binary would use it.

#![allow(
    clippy::unwrap_used,
    reason = "a measuring program: a failed setup step ends it, with the location"
)]

use std::collections::BTreeMap;
use std::fmt;
use std::hint::black_box;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use switchyard_demo_subgraphs::DemoSubgraph;
use switchyard_gateway::internals::{read_response, read_response_in, Data};
use switchyard_gateway::{Gateway, GatewayConfig, GraphQLRequest};

type Bodies = Arc<Mutex<Vec<Bytes>>>;

/// Keeps a copy of every response body the subgraph sends.
async fn record(State(bodies): State<Bodies>, request: Request, next: Next) -> Response {
    let (parts, body) = next.run(request).await.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    bodies.lock().unwrap().push(bytes.clone());
    Response::from_parts(parts, Body::from(bytes))
}

/// The bodies the demo subgraphs send for one run of the nested demo query, largest first.
fn nested_query_bodies() -> Vec<Bytes> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let bodies = Bodies::default();
        let mut sdl = include_str!("../../schema/demo/supergraph.graphql").to_owned();
        for subgraph in DemoSubgraph::ALL {
            let router = switchyard_demo_subgraphs::router(subgraph)
                .layer(middleware::from_fn_with_state(bodies.clone(), record));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            tokio::spawn(async move { axum::serve(listener, router).await });
            let committed = format!("127.0.0.1:{}/", subgraph.default_port());
            sdl = sdl.replace(&committed, &format!("127.0.0.1:{port}/"));
        }
        let gateway = Gateway::from_supergraph_sdl(&sdl, GatewayConfig::default()).unwrap();
        let request: GraphQLRequest =
            serde_json::from_str(include_str!("../../schema/demo/queries/nested.json")).unwrap();
        let response = gateway.execute(request, &Default::default()).await;
        let json = response.json();
        assert!(json["errors"].is_null(), "{json}");
        assert!(!json["data"]["topProducts"][0]["reviews"].is_null());
        let mut bodies = bodies.lock().unwrap().clone();
        bodies.sort_by_key(|b| std::cmp::Reverse(b.len()));
        bodies
    })
}

/// `serde_json::Value` as it is without `preserve_order`: objects are `BTreeMap`s.
#[allow(dead_code, reason = "built to be measured, never read")]
enum SortedValue {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<SortedValue>),
    Object(BTreeMap<String, SortedValue>),
}

impl<'de> Deserialize<'de> for SortedValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SortedVisitor)
    }
}

/// The visitor calls of serde_json's own `Value`, with a `BTreeMap` for objects.
struct SortedVisitor;

impl<'de> Visitor<'de> for SortedVisitor {
    type Value = SortedValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<SortedValue, E> {
        Ok(SortedValue::Null)
    }

    fn visit_bool<E>(self, b: bool) -> Result<SortedValue, E> {
        Ok(SortedValue::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<SortedValue, E> {
        Ok(SortedValue::Number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<SortedValue, E> {
        Ok(SortedValue::Number(n.into()))
    }

    fn visit_f64<E>(self, n: f64) -> Result<SortedValue, E> {
        Ok(serde_json::Number::from_f64(n).map_or(SortedValue::Null, SortedValue::Number))
    }

    fn visit_str<E>(self, s: &str) -> Result<SortedValue, E> {
        Ok(SortedValue::String(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<SortedValue, E> {
        Ok(SortedValue::String(s))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<SortedValue, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(SortedValue::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<SortedValue, A::Error> {
        let mut map = BTreeMap::new();
        while let Some((key, value)) = access.next_entry::<String, SortedValue>()? {
            map.insert(key, value);
        }
        Ok(SortedValue::Object(map))
    }
}

fn bench(c: &mut Criterion) {
    let bodies = nested_query_bodies();
    let total: usize = bodies.iter().map(Bytes::len).sum();
    let sizes: Vec<usize> = bodies.iter().map(Bytes::len).collect();
    eprintln!(
        "nested query: {} subgraph bodies, {total} bytes: {sizes:?}",
        bodies.len()
    );
    // Every variant that builds the executor's value must build the same one.
    for body in &bodies {
        let ours = read_response_in(body.clone()).unwrap().0.unwrap();
        assert_eq!(ours, read_response(body).unwrap().0.unwrap());
        let via_serde: serde_json::Value = serde_json::from_slice(body).unwrap();
        let via_serde = Data::from(via_serde["data"].clone());
        let whole = serde_json::from_slice::<Data>(body).unwrap();
        let whole_sonic = sonic_rs::from_slice::<Data>(body).unwrap();
        assert_eq!(ours, via_serde);
        assert_eq!(whole, whole_sonic);
        assert_eq!(
            whole.to_json(),
            serde_json::to_vec(&via_serde_body(body)).unwrap()
        );
    }

    type Parse = fn(&Bytes);
    let variants: [(&str, Parse); 8] = [
        // As the executor reads what it fetched: long strings in place in the body.
        ("ours_into_data", |body| {
            drop(black_box(read_response_in(body.clone()).unwrap()))
        }),
        // Every string copied out of the body (what the reader does without one).
        ("ours_copied_into_data", |body| {
            drop(black_box(read_response(body).unwrap()))
        }),
        ("serde_json_into_data", |body| {
            drop(black_box(serde_json::from_slice::<Data>(body).unwrap()))
        }),
        ("serde_json_value_then_data", |body| {
            let value: serde_json::Value = serde_json::from_slice(body).unwrap();
            drop(black_box(Data::from(value)))
        }),
        ("serde_json_value", |body| {
            drop(black_box(
                serde_json::from_slice::<serde_json::Value>(body).unwrap(),
            ))
        }),
        ("serde_json_sorted_value", |body| {
            drop(black_box(
                serde_json::from_slice::<SortedValue>(body).unwrap(),
            ))
        }),
        ("sonic_rs_into_data", |body| {
            drop(black_box(sonic_rs::from_slice::<Data>(body).unwrap()))
        }),
        ("sonic_rs_value", |body| {
            drop(black_box(
                sonic_rs::from_slice::<sonic_rs::Value>(body).unwrap(),
            ))
        }),
    ];

    let mut group = c.benchmark_group("json_reader_nested_bodies");
    group.throughput(Throughput::Bytes(total as u64));
    for (name, parse) in variants {
        group.bench_function(name, |b| b.iter(|| bodies.iter().for_each(parse)));
    }
    group.finish();

    // Thread CPU time per iteration, the variants interleaved round by round: on a busy machine
    // wall time (criterion's figure) moves with the load and drifts between variants measured
    // one after another; this does much less. The median round of each is compared with ours.
    let rounds = 7;
    let iterations = 200;
    let mut per_variant = vec![Vec::new(); variants.len()];
    for _ in 0..rounds {
        for (times, (_, parse)) in per_variant.iter_mut().zip(variants) {
            let before = thread_cpu_ns();
            for _ in 0..iterations {
                bodies.iter().for_each(parse);
            }
            times.push((thread_cpu_ns() - before) as f64 / f64::from(iterations) / 1e3);
        }
    }
    let medians: Vec<f64> = per_variant
        .iter_mut()
        .map(|times| {
            times.sort_by(f64::total_cmp);
            times[times.len() / 2]
        })
        .collect();
    for ((name, _), median) in variants.iter().zip(&medians) {
        eprintln!(
            "cpu {name}: {median:.1} µs per iteration, {:.2}x ours",
            median / medians[0]
        );
    }
}

/// CPU time this thread has run, in nanoseconds (Linux `/proc/thread-self/schedstat`).
fn thread_cpu_ns() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    stat.split_whitespace().next().unwrap().parse().unwrap()
}

/// The whole body as serde_json reads it (for the check that writers agree).
fn via_serde_body(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).unwrap()
}

criterion_group!(benches, bench);
criterion_main!(benches);
