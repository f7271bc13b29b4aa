//! Composition time on a synthetic 20-subgraph, 2,000-type set (and a smaller one).
//! Run: `cargo bench -p switchyard-compose --bench compose`.

use criterion::{criterion_group, criterion_main, Criterion};
use switchyard_compose::{compose, synthetic};

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("compose");
    group.sample_size(10);
    for (subgraphs, types) in [(4, 200), (20, 2000)] {
        let set = synthetic::generate(subgraphs, types);
        group.bench_function(format!("{subgraphs}_subgraphs_{types}_types"), |b| {
            b.iter(|| compose(&set).expect("synthetic set composes"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
