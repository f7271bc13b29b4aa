//! Search index benchmark: bulk-index N synthetic posts (env `CONTENT_BENCH_POSTS`, default
//! 1 000 000) into an on-disk index, report posts/s, then search p50/p99 for 1-, 2- and 3-word
//! queries (plus 1 word with a typo), and criterion timings for the same query classes.
//!
//! Text comes from a seeded Zipf-like distribution over a synthetic vocabulary, so word
//! frequencies look like natural language (a few very common words, a long tail).
//!
//! `CONTENT_BENCH_POSTS=1000000 cargo bench -p switchyard-content --bench search`

use std::time::{Duration, Instant};

use chrono::Utc;
use criterion::Criterion;
use switchyard_content::search::{SearchIndex, SearchScope};
use switchyard_content::store::{PostRecord, Visibility};

/// A small seeded PRNG (xorshift64*): reproducible text without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Words {
    vocabulary: Vec<String>,
    cdf: Vec<f64>,
}

impl Words {
    fn new(rng: &mut Rng, size: usize) -> Words {
        const SYLLABLES: [&str; 24] = [
            "ka", "lo", "mi", "ra", "te", "su", "no", "vi", "pe", "da", "zu", "ri", "an", "el",
            "or", "ti", "go", "be", "fa", "ne", "qu", "st", "tr", "ch",
        ];
        let mut seen = std::collections::HashSet::new();
        let mut vocabulary = Vec::with_capacity(size);
        while vocabulary.len() < size {
            let syllables = 1 + rng.below(4);
            let word: String = (0..syllables)
                .map(|_| SYLLABLES[rng.below(SYLLABLES.len())])
                .collect();
            if seen.insert(word.clone()) {
                vocabulary.push(word);
            }
        }
        // Zipf with s = 1.07: rank r has weight 1 / r^s.
        let mut total = 0.0;
        let mut cdf = Vec::with_capacity(size);
        for rank in 1..=size {
            total += 1.0 / (rank as f64).powf(1.07);
            cdf.push(total);
        }
        for c in &mut cdf {
            *c /= total;
        }
        Words { vocabulary, cdf }
    }

    fn sample(&self, rng: &mut Rng) -> &str {
        let u = rng.unit();
        let i = self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1);
        &self.vocabulary[i]
    }

    /// A query word: skip the ~100 most common ones (stop-word-like), as real queries do.
    fn query_word(&self, rng: &mut Rng) -> &str {
        loop {
            let w = self.sample(rng);
            if self.vocabulary[..100].iter().all(|c| c != w) {
                return w;
            }
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn typo(rng: &mut Rng, word: &str) -> String {
    let mut chars: Vec<char> = word.chars().collect();
    if chars.len() >= 4 {
        let i = rng.below(chars.len() - 1);
        chars.swap(i, i + 1);
    }
    chars.into_iter().collect()
}

fn main() {
    let posts: usize = std::env::var("CONTENT_BENCH_POSTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let mut rng = Rng(0x5eed_c0ff_ee12_3456);
    let words = Words::new(&mut rng, 50_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let index = SearchIndex::open_with_heap(&dir.path().join("search"), 512 * 1024 * 1024)
        .expect("open index");

    let now = Utc::now();
    let chunk = 50_000;
    let started = Instant::now();
    let mut generating = Duration::ZERO;
    let mut done = 0;
    while done < posts {
        let n = chunk.min(posts - done);
        let gen_start = Instant::now();
        let batch: Vec<PostRecord> = (done..done + n)
            .map(|i| {
                let len = 15 + rng.below(46);
                let mut body = String::with_capacity(len * 7);
                for w in 0..len {
                    if w > 0 {
                        body.push(' ');
                    }
                    body.push_str(words.sample(&mut rng));
                }
                PostRecord {
                    id: format!("{i:012}"),
                    author_id: format!("author-{}", i % 10_000),
                    body,
                    visibility: if i % 10 == 0 {
                        Visibility::Connections
                    } else {
                        Visibility::Public
                    },
                    created_at: now,
                    edited_at: None,
                }
            })
            .collect();
        generating += gen_start.elapsed();
        index.add_new(&batch).expect("index batch");
        done += n;
    }
    index.commit_with(0).expect("commit");
    let elapsed = started.elapsed() - generating;
    println!(
        "indexed {posts} posts in {elapsed:.2?} (text generation excluded): {:.0} posts/s; {} segments",
        posts as f64 / elapsed.as_secs_f64(),
        index.segment_count()
    );
    assert_eq!(index.num_docs(), posts as u64);

    let scope = SearchScope {
        viewer: Some("author-7".into()),
        connections: (0..50).map(|i| format!("author-{}", i * 13)).collect(),
    };
    let classes: Vec<(&str, Vec<String>)> = vec![
        (
            "1 word",
            (0..500)
                .map(|_| words.query_word(&mut rng).to_owned())
                .collect(),
        ),
        (
            "2 words",
            (0..500)
                .map(|_| {
                    format!(
                        "{} {}",
                        words.query_word(&mut rng),
                        words.query_word(&mut rng)
                    )
                })
                .collect(),
        ),
        (
            "3 words",
            (0..500)
                .map(|_| {
                    format!(
                        "{} {} {}",
                        words.query_word(&mut rng),
                        words.query_word(&mut rng),
                        words.query_word(&mut rng)
                    )
                })
                .collect(),
        ),
        (
            "1 word, typo",
            (0..500)
                .map(|_| {
                    let w = words.query_word(&mut rng).to_owned();
                    typo(&mut rng, &w)
                })
                .collect(),
        ),
    ];
    for (name, queries) in &classes {
        let mut times = Vec::with_capacity(queries.len());
        let mut hits = 0usize;
        for q in queries {
            let t = Instant::now();
            let parsed = index.parse_query(q).expect("query");
            let page = index.search(&parsed, &scope, 10, 0).expect("search");
            times.push(t.elapsed());
            hits += page.total;
        }
        times.sort();
        println!(
            "search {name:>13}: p50 {:>9.2?}  p99 {:>9.2?}  (mean matches {})",
            percentile(&times, 0.5),
            percentile(&times, 0.99),
            hits / queries.len()
        );
    }

    let mut criterion = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    for (name, queries) in &classes {
        let mut i = 0;
        criterion.bench_function(&format!("search/{name}"), |b| {
            b.iter(|| {
                let q = &queries[i % queries.len()];
                i += 1;
                let parsed = index.parse_query(q).expect("query");
                index.search(&parsed, &scope, 10, 0).expect("search")
            })
        });
    }
    criterion.final_summary();
}
