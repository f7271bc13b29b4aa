//! A sliding window of request outcomes: count, errors and a latency distribution over the last
//! few minutes, for the status view (Prometheus histograms are cumulative since start, which
//! says little about *now*).
//!
//! Time is cut into [`SLOT_SECONDS`]-second slots kept in a ring of [`SLOTS`]; a slot is reset
//! by the first recorder that finds it holding an older period. Latencies go into log-spaced
//! buckets (four per power of two of microseconds, so a quantile is off by at most ~19%), read
//! off the leading-zero count: recording is a handful of relaxed atomic adds, no lock, no float
//! maths. Two recorders racing on a slot reset can lose a sample or two; a status view can
//! live with that, and a lock on every request is what this avoids.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Length of one slot.
pub const SLOT_SECONDS: u64 = 10;
/// Slots kept: the window is `SLOTS * SLOT_SECONDS` = five minutes.
pub const SLOTS: usize = 30;
/// Latency buckets: 4 per power of two of microseconds, up to 2^27 µs (~134 s; longer lands in
/// the last bucket).
const BUCKETS: usize = 27 * 4;

struct Slot {
    /// Which period (`seconds since start / SLOT_SECONDS`) the counters belong to, plus one
    /// (zero means never used).
    period: AtomicU64,
    count: AtomicU64,
    errors: AtomicU64,
    buckets: [AtomicU32; BUCKETS],
}

impl Slot {
    fn new() -> Self {
        Slot {
            period: AtomicU64::new(0),
            count: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            buckets: std::array::from_fn(|_| AtomicU32::new(0)),
        }
    }
}

/// Request outcomes over the last [`SLOTS`] × [`SLOT_SECONDS`] seconds.
pub struct LatencyWindow {
    start: Instant,
    slots: Box<[Slot]>,
}

impl std::fmt::Debug for LatencyWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatencyWindow").finish_non_exhaustive()
    }
}

impl Default for LatencyWindow {
    fn default() -> Self {
        Self::new()
    }
}

/// What the window saw.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct WindowSummary {
    /// Requests recorded.
    pub count: u64,
    /// Of which failed.
    pub errors: u64,
    /// Median latency (`None` without requests).
    pub p50: Option<Duration>,
    /// 99th percentile latency.
    pub p99: Option<Duration>,
    /// How much time the summary covers (shorter than the window just after start).
    pub span: Duration,
}

impl WindowSummary {
    /// Failed requests as a fraction of all (0 without requests).
    pub fn error_rate(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.errors as f64 / self.count as f64
        }
    }
}

fn bucket_of(micros: u64) -> usize {
    // Below 4 µs everything shares the first bucket: no request is that fast.
    let v = micros.max(4);
    let msb = 63 - v.leading_zeros() as usize;
    let sub = ((v >> (msb - 2)) & 3) as usize;
    (msb * 4 + sub).min(BUCKETS - 1)
}

/// The upper edge of a bucket, in microseconds.
fn bucket_upper(index: usize) -> u64 {
    let msb = (index / 4).max(2);
    let sub = if index < 8 { 0 } else { (index % 4) as u64 };
    (5 + sub) << (msb - 2)
}

impl LatencyWindow {
    /// An empty window starting now.
    pub fn new() -> Self {
        Self::starting_at(Instant::now())
    }

    /// An empty window whose clock starts at `start` (tests drive the clock by hand).
    pub fn starting_at(start: Instant) -> Self {
        LatencyWindow {
            start,
            slots: (0..SLOTS).map(|_| Slot::new()).collect(),
        }
    }

    fn period(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.start).as_secs() / SLOT_SECONDS + 1
    }

    /// Records one request that ended at `now` after `latency`.
    pub fn record(&self, now: Instant, latency: Duration, failed: bool) {
        let period = self.period(now);
        let slot = &self.slots[(period as usize) % SLOTS];
        let seen = slot.period.load(Ordering::Acquire);
        if seen != period
            && slot
                .period
                .compare_exchange(seen, period, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            slot.count.store(0, Ordering::Relaxed);
            slot.errors.store(0, Ordering::Relaxed);
            for bucket in &slot.buckets {
                bucket.store(0, Ordering::Relaxed);
            }
        }
        slot.count.fetch_add(1, Ordering::Relaxed);
        if failed {
            slot.errors.fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        slot.buckets[bucket_of(micros)].fetch_add(1, Ordering::Relaxed);
    }

    /// What the window holds at `now`.
    pub fn summary(&self, now: Instant) -> WindowSummary {
        let current = self.period(now);
        let oldest = current.saturating_sub(SLOTS as u64 - 1).max(1);
        let mut buckets = [0u64; BUCKETS];
        let mut count = 0;
        let mut errors = 0;
        for slot in self.slots.iter() {
            let period = slot.period.load(Ordering::Acquire);
            if period < oldest || period > current {
                continue;
            }
            count += slot.count.load(Ordering::Relaxed);
            errors += slot.errors.load(Ordering::Relaxed);
            for (total, bucket) in buckets.iter_mut().zip(slot.buckets.iter()) {
                *total += u64::from(bucket.load(Ordering::Relaxed));
            }
        }
        let recorded: u64 = buckets.iter().sum();
        let quantile = |q: f64| -> Option<Duration> {
            if recorded == 0 {
                return None;
            }
            let rank = ((recorded as f64) * q).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (index, n) in buckets.iter().enumerate() {
                seen += n;
                if seen >= rank {
                    return Some(Duration::from_micros(bucket_upper(index)));
                }
            }
            Some(Duration::from_micros(bucket_upper(BUCKETS - 1)))
        };
        let span = now
            .saturating_duration_since(self.start)
            .min(Duration::from_secs(SLOTS as u64 * SLOT_SECONDS));
        WindowSummary {
            count,
            errors,
            p50: quantile(0.50),
            p99: quantile(0.99),
            span,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_bound_their_values() {
        let mut last = 0;
        for index in 8..BUCKETS {
            let upper = bucket_upper(index);
            assert!(upper >= last, "bucket {index}: {upper} < {last}");
            last = upper;
        }
        assert_eq!(bucket_of(1), bucket_of(4));
        for micros in [4u64, 5, 7, 8, 100, 999, 1000, 1024, 65_000, 10_000_000] {
            let index = bucket_of(micros);
            assert!(bucket_upper(index) >= micros, "{micros} above its bucket");
            // At most ~25% above the value: the quantile error the status view accepts.
            assert!(
                bucket_upper(index) as f64 <= micros as f64 * 1.25 + 1.0,
                "{micros}: bucket edge {} too coarse",
                bucket_upper(index)
            );
        }
    }

    #[test]
    fn quantiles_and_error_rate_over_the_window() {
        let t0 = Instant::now();
        let w = LatencyWindow::starting_at(t0);
        for i in 0..100u64 {
            // 1..=100 ms; every 10th request fails.
            w.record(t0, Duration::from_millis(i + 1), i % 10 == 0);
        }
        let s = w.summary(t0 + Duration::from_secs(1));
        assert_eq!(s.count, 100);
        assert_eq!(s.errors, 10);
        assert!((s.error_rate() - 0.1).abs() < 1e-9);
        let p50 = s.p50.unwrap().as_secs_f64() * 1000.0;
        let p99 = s.p99.unwrap().as_secs_f64() * 1000.0;
        assert!((50.0..=63.0).contains(&p50), "p50 {p50} ms");
        assert!((99.0..=125.0).contains(&p99), "p99 {p99} ms");
    }

    #[test]
    fn old_slots_fall_out_and_reused_slots_start_empty() {
        let t0 = Instant::now();
        let w = LatencyWindow::starting_at(t0);
        w.record(t0, Duration::from_secs(2), true);
        let window = Duration::from_secs(SLOTS as u64 * SLOT_SECONDS);
        // Still inside the window just before it ends.
        assert_eq!(w.summary(t0 + window - Duration::from_secs(1)).count, 1);
        // Gone once the window has moved past it.
        let later = t0 + window + Duration::from_secs(1);
        assert_eq!(w.summary(later).count, 0);
        assert_eq!(w.summary(later).p99, None);
        // The same ring slot, a full turn later, starts from zero.
        w.record(t0 + window, Duration::from_millis(1), false);
        let s = w.summary(t0 + window);
        assert_eq!((s.count, s.errors), (1, 0));
        assert!(s.p99.unwrap() <= Duration::from_micros(1250));
    }

    #[test]
    fn concurrent_recorders_count_every_request_within_a_slot() {
        let t0 = Instant::now();
        let w = std::sync::Arc::new(LatencyWindow::starting_at(t0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let w = w.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        w.record(t0, Duration::from_micros(300), false);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(w.summary(t0).count, 40_000);
    }
}
