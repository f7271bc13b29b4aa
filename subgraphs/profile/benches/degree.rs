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

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use switchyard_profile::store::synthetic::{SocialGraphSpec, SplitMix64};
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
