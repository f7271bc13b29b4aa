//! `connectionDegree` on the embedded store's in-memory index, over a synthetic power-law social
//! graph built directly in memory.
//!
//! ```text
//! cargo bench -p switchyard-profile --bench degree
//! PROFILE_BENCH_MEMBERS=100000 PROFILE_BENCH_EDGES=5000000 cargo bench -p switchyard-profile --bench degree
//! ```
//!
//! Prints build time, memory, and p50/p90/p99/max over `PROFILE_BENCH_PAIRS` (default 10,000)
//! uniformly random pairs, then lets criterion measure the mean. Under `cargo test` (no
//! `--bench` flag) it runs on a tiny graph, so it never costs a test run minutes.
//!
//! Then the FalkorDB variant, when FalkorDB answers (`SWITCHYARD_TEST_FALKORDB_URL`, default the
//! one `scripts/ci-services.sh` starts; required under CI): a smaller graph of the same shape
//! (`PROFILE_BENCH_FALKOR_MEMBERS`, default 100,000; `PROFILE_BENCH_FALKOR_EDGES`, default
//! 1,000,000 drawn), imported into a throwaway graph, and `GraphStore::degree` over
//! `PROFILE_BENCH_FALKOR_PAIRS` (default 2,000) random pairs on FalkorDB and on the embedded
//! index of the very same graph, in the same run, with the p50/p99 ratio.

#![allow(
    clippy::unwrap_used,
    reason = "a measuring program: a failed setup step ends it, with the location"
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use switchyard_profile::store::synthetic::{SocialGraphSpec, SplitMix64};
use switchyard_profile::store::GraphStore;
use switchyard_profile::store::{AdjacencyIndex, Degree};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let (members, edges, pairs) = if bench_mode {
        (
            env_or("PROFILE_BENCH_MEMBERS", 1_000_000) as u32,
            env_or("PROFILE_BENCH_EDGES", 50_000_000),
            env_or("PROFILE_BENCH_PAIRS", 10_000) as usize,
        )
    } else {
        (10_000, 100_000, 100)
    };

    let spec = SocialGraphSpec::new(members, edges);
    let started = Instant::now();
    let index = spec.build_index();
    let build = started.elapsed();
    let mut degrees: Vec<usize> = (0..index.node_count()).map(|v| index.degree(v)).collect();
    degrees.sort_unstable();
    println!(
        "graph: {} members, {} connections (of {} drawn), built in {:.1?}; CSR {:.0} MiB; degree median {}, p99 {}, max {}",
        index.node_count(),
        index.edge_count(),
        edges,
        build,
        index.csr_bytes() as f64 / (1024.0 * 1024.0),
        degrees[degrees.len() / 2],
        degrees[degrees.len() * 99 / 100],
        degrees[degrees.len() - 1],
    );
    drop(degrees);

    let mut rng = SplitMix64::new(7);
    let sample: Vec<(u32, u32)> = (0..pairs)
        .map(|_| loop {
            let s = rng.below(members);
            let t = rng.below(members);
            if s != t {
                break (s, t);
            }
        })
        .collect();

    let mut times = Vec::with_capacity(sample.len());
    let mut by_degree = [0usize; 4];
    for &(s, t) in &sample {
        let started = Instant::now();
        let path = index.shortest_path(s, t);
        times.push(started.elapsed());
        let degree = Degree::of_path(path.as_ref().map_or(0, Vec::len));
        by_degree[match degree {
            Degree::First => 0,
            Degree::Second => 1,
            Degree::Third => 2,
            Degree::OutOfNetwork => 3,
        }] += 1;
        black_box(path);
    }
    times.sort_unstable();
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    println!(
        "connectionDegree over {} random pairs: p50 {:.1?}, p90 {:.1?}, p99 {:.1?}, p99.9 {:.1?}, max {:.1?}, mean {:.1?}",
        times.len(),
        percentile(&times, 0.50),
        percentile(&times, 0.90),
        percentile(&times, 0.99),
        percentile(&times, 0.999),
        times[times.len() - 1],
        mean,
    );
    println!(
        "degrees: first {}, second {}, third {}, out of network {}",
        by_degree[0], by_degree[1], by_degree[2], by_degree[3]
    );

    falkordb_variant(bench_mode);

    let mut criterion = Criterion::default()
        .sample_size(if bench_mode { 50 } else { 10 })
        .configure_from_args();
    bench(&mut criterion, &index, &sample);
    criterion.final_summary();
}

fn bench(c: &mut Criterion, index: &AdjacencyIndex, sample: &[(u32, u32)]) {
    c.bench_function("connection_degree/random_pair", |b| {
        let mut i = 0usize;
        b.iter(|| {
            let (s, t) = sample[i % sample.len()];
            i += 1;
            black_box(index.shortest_path(black_box(s), black_box(t)))
        })
    });
}

/// p50 and p99 of `times` (sorted here).
fn p50_p99(times: &mut [Duration]) -> (Duration, Duration) {
    times.sort_unstable();
    (percentile(times, 0.50), percentile(times, 0.99))
}

#[cfg(feature = "falkordb")]
fn falkordb_variant(bench_mode: bool) {
    use switchyard_profile::store::{FalkorConfig, FalkorGraphStore, MemberRecord};
    use switchyard_profile::testing;

    let (members, edges, pairs) = if bench_mode {
        (
            env_or("PROFILE_BENCH_FALKOR_MEMBERS", 100_000) as u32,
            env_or("PROFILE_BENCH_FALKOR_EDGES", 1_000_000),
            env_or("PROFILE_BENCH_FALKOR_PAIRS", 2_000) as usize,
        )
    } else {
        (2_000, 10_000, 50)
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let Some(url) = testing::falkordb_url().await else {
            return;
        };
        let started = Instant::now();
        let index = SocialGraphSpec::new(members, edges).build_index();
        let built = started.elapsed();
        let id = |v: u32| format!("m{v:07}");
        let records: Vec<MemberRecord> = (0..members)
            .map(|v| MemberRecord {
                id: id(v),
                handle: id(v),
                display_name: id(v),
                headline: None,
                location: None,
                joined_at: chrono::DateTime::from_timestamp_micros(0).unwrap(),
            })
            .collect();
        let mut connections = Vec::with_capacity(index.edge_count());
        for v in 0..members {
            for &u in index.neighbours(v) {
                if u > v {
                    connections.push((id(v), id(u)));
                }
            }
        }
        let pool = switchyard_subgraph_kit::db::connect("sqlite::memory:", 1)
            .await
            .unwrap();
        switchyard_subgraph_kit::events::outbox::migrate(&pool)
            .await
            .unwrap();
        let config = FalkorConfig {
            url: url.clone(),
            graph: testing::test_graph_name(),
        };
        let store = FalkorGraphStore::connect(&config, pool).await.unwrap();
        let started = Instant::now();
        store.import(&records, &connections).await.unwrap();
        println!(
            "FalkorDB: {} members, {} connections (of {} drawn), imported in {:.1?} (the embedded index of the same graph built in memory in {built:.1?})",
            members,
            connections.len(),
            edges,
            started.elapsed()
        );

        let mut rng = SplitMix64::new(11);
        let sample: Vec<(u32, u32)> = (0..pairs)
            .map(|_| loop {
                let s = rng.below(members);
                let t = rng.below(members);
                if s != t {
                    break (s, t);
                }
            })
            .collect();
        // Interleaved, pair by pair, so both see the same machine load.
        let (mut falkor, mut embedded) = (Vec::new(), Vec::new());
        for &(s, t) in &sample {
            let started = Instant::now();
            let remote = store.degree(&id(s), &id(t)).await.unwrap();
            falkor.push(started.elapsed());
            let started = Instant::now();
            let local = index.shortest_path(s, t);
            embedded.push(started.elapsed());
            let local = Degree::of_path(local.as_ref().map_or(0, Vec::len));
            assert_eq!(remote.degree, local, "both stores agree on {s}-{t}");
        }
        let (f50, f99) = p50_p99(&mut falkor);
        let (e50, e99) = p50_p99(&mut embedded);
        println!(
            "connectionDegree over {} pairs: FalkorDB p50 {f50:.1?} p99 {f99:.1?}; embedded index p50 {e50:.1?} p99 {e99:.1?}; FalkorDB/embedded p50 {:.0}x, p99 {:.0}x",
            sample.len(),
            f50.as_secs_f64() / e50.as_secs_f64().max(1e-9),
            f99.as_secs_f64() / e99.as_secs_f64().max(1e-9),
        );
        store.delete_graph().await.unwrap();
    });
}

#[cfg(not(feature = "falkordb"))]
fn falkordb_variant(_bench_mode: bool) {}
