//! A synthetic social graph with a power-law degree distribution, for benchmarks and tests.
//!
//! Chung–Lu model: member `i` gets weight `w_i ∝ (i + i0)^(-1/(γ-1))`, and each edge joins two
//! members drawn with probability proportional to their weights, so expected degrees follow a
//! power law with exponent `γ`. The offset `i0` caps the largest expected degree (LinkedIn caps
//! connections at 30,000, which is the default). Endpoints are drawn by inverting the
//! continuous weight CDF in closed form, so generation needs no tables and replays exactly from
//! its seed — which [`AdjacencyIndex::from_edge_source`] relies on to build in two passes.

use super::{AdjacencyIndex, NodeId};

/// SplitMix64: tiny, fast, and good enough for sampling (not for anything secret).
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u32) -> u32 {
        (((self.next_u64() >> 32) * u64::from(n)) >> 32) as u32
    }
}

/// Parameters of a synthetic social graph.
#[derive(Debug, Clone)]
pub struct SocialGraphSpec {
    /// Number of members.
    pub members: u32,
    /// Number of edges drawn (self-loops and repeats are dropped, so slightly fewer remain).
    pub edges: u64,
    /// Power-law exponent γ of the degree distribution (2 < γ < 3 for social networks).
    pub exponent: f64,
    /// Largest expected degree.
    pub max_degree: f64,
    /// RNG seed.
    pub seed: u64,
}

impl SocialGraphSpec {
    /// γ = 2.5, degrees capped around 30,000, seed 42.
    pub fn new(members: u32, edges: u64) -> Self {
        SocialGraphSpec {
            members,
            edges,
            exponent: 2.5,
            max_degree: 30_000.0,
            seed: 42,
        }
    }

    /// Calls `emit` for every drawn edge, in the same order on every call.
    pub fn for_each_edge(&self, emit: &mut dyn FnMut(NodeId, NodeId)) {
        let n = self.members;
        if n < 2 {
            return;
        }
        let sampler = Sampler::new(self);
        let mut rng = SplitMix64::new(self.seed);
        for _ in 0..self.edges {
            let a = sampler.sample(&mut rng);
            let b = sampler.sample(&mut rng);
            emit(a, b);
        }
    }

    /// Builds the adjacency index directly in memory (two replays of the generator).
    pub fn build_index(&self) -> AdjacencyIndex {
        AdjacencyIndex::from_edge_source(self.members, |emit| self.for_each_edge(emit))
    }
}

/// Inverse-CDF sampler for `w(x) = (x + i0)^(-α)` over `[0, n)`, plus a bijective scramble so
/// the heavy members are spread over the id space rather than packed at the start.
struct Sampler {
    n: u32,
    i0: f64,
    one_minus_alpha: f64,
    base: f64,
    span: f64,
    stride: u64,
}

impl Sampler {
    fn new(spec: &SocialGraphSpec) -> Self {
        let n = f64::from(spec.members);
        let alpha = 1.0 / (spec.exponent - 1.0);
        let one_minus_alpha = 1.0 - alpha;
        let mean = 2.0 * spec.edges as f64 / n;
        // For i0 ≪ n the heaviest member's expected degree is about
        // mean · (1-α) · (n/i0)^α; solve for i0 and keep it at least 1.
        let ratio = (spec.max_degree / mean.max(1e-9) / one_minus_alpha).max(1.0);
        let i0 = (n / ratio.powf(1.0 / alpha)).max(1.0);
        let base = i0.powf(one_minus_alpha);
        let span = (n + i0).powf(one_minus_alpha) - base;
        let mut stride = 2_654_435_761u64 % u64::from(spec.members);
        while gcd(stride, u64::from(spec.members)) != 1 {
            stride += 1;
        }
        Sampler {
            n: spec.members,
            i0,
            one_minus_alpha,
            base,
            span,
            stride,
        }
    }

    fn sample(&self, rng: &mut SplitMix64) -> NodeId {
        let u = rng.next_f64();
        let x = (self.base + u * self.span).powf(1.0 / self.one_minus_alpha) - self.i0;
        let rank = (x.max(0.0) as u64).min(u64::from(self.n) - 1);
        ((rank * self.stride) % u64::from(self.n)) as NodeId
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_identically_and_is_heavy_tailed() {
        let spec = SocialGraphSpec {
            max_degree: 2_000.0,
            ..SocialGraphSpec::new(20_000, 200_000)
        };
        let mut first = Vec::new();
        spec.for_each_edge(&mut |a, b| first.push((a, b)));
        let mut second = Vec::new();
        spec.for_each_edge(&mut |a, b| second.push((a, b)));
        assert_eq!(first, second);
        let g = spec.build_index();
        assert!(g.edge_count() > 150_000, "{}", g.edge_count());
        let mut degrees: Vec<usize> = (0..g.node_count()).map(|v| g.degree(v)).collect();
        degrees.sort_unstable();
        let median = degrees[degrees.len() / 2];
        let max = *degrees.last().unwrap();
        assert!(max > 20 * median, "median {median}, max {max}");
        assert!(max < 4_000, "max {max}");
    }

    #[test]
    fn below_stays_in_range() {
        let mut rng = SplitMix64::new(1);
        for _ in 0..1000 {
            assert!(rng.below(7) < 7);
        }
    }
}
