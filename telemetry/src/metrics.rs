//! Prometheus helpers: per-instance registries, registration shorthands and the text format.
//!
//! Handles (`IntCounter`, `Histogram`, …) are resolved once when a component starts, so the hot
//! path only touches atomics: no registry lookup, no lock, no allocation per observation.

use prometheus::core::Collector;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Latency buckets in seconds: 1 ms to 10 s, dense where GraphQL requests usually land.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The content type of the Prometheus text exposition format.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A registry plus shorthands that create and register a metric in one call.
///
/// Names are fixed in code and label sets are bounded, so a registration can only fail on a
/// programming error (a duplicate name); that panics at start-up rather than losing a metric.
#[derive(Clone, Default)]
pub struct MetricsRegistry {
    registry: Registry,
}

impl std::fmt::Debug for MetricsRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsRegistry")
    }
}

impl MetricsRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The underlying `prometheus` registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    fn add<C: Collector + Clone + 'static>(&self, collector: C) -> C {
        self.registry
            .register(Box::new(collector.clone()))
            .expect("metric names are unique");
        collector
    }

    /// A counter (`name` must end in `_total`).
    pub fn counter(&self, name: &str, help: &str) -> IntCounter {
        debug_assert!(name.ends_with("_total"), "{name}: counters end in _total");
        self.add(IntCounter::with_opts(Opts::new(name, help)).expect("valid counter"))
    }

    /// A counter family over `labels` (bounded value sets only).
    pub fn counter_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        debug_assert!(name.ends_with("_total"), "{name}: counters end in _total");
        self.add(IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter"))
    }

    /// A gauge.
    pub fn gauge(&self, name: &str, help: &str) -> IntGauge {
        self.add(IntGauge::with_opts(Opts::new(name, help)).expect("valid gauge"))
    }

    /// A floating-point gauge.
    pub fn gauge_f64(&self, name: &str, help: &str) -> prometheus::Gauge {
        self.add(prometheus::Gauge::with_opts(Opts::new(name, help)).expect("valid gauge"))
    }

    /// A gauge family over `labels` (bounded value sets only).
    pub fn gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        self.add(IntGaugeVec::new(Opts::new(name, help), labels).expect("valid gauge"))
    }

    /// A latency histogram in seconds with [`LATENCY_BUCKETS`].
    pub fn latency(&self, name: &str, help: &str) -> Histogram {
        debug_assert!(
            name.ends_with("_seconds"),
            "{name}: durations end in _seconds"
        );
        self.add(
            Histogram::with_opts(HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()))
                .expect("valid histogram"),
        )
    }

    /// A latency histogram family over `labels` (bounded value sets only).
    pub fn latency_vec(&self, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
        debug_assert!(
            name.ends_with("_seconds"),
            "{name}: durations end in _seconds"
        );
        self.add(
            HistogramVec::new(
                HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
                labels,
            )
            .expect("valid histogram"),
        )
    }

    /// Everything registered, in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = Vec::with_capacity(8 * 1024);
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("encoding to a Vec cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_registered_series_with_units_and_types() {
        let metrics = MetricsRegistry::new();
        let requests = metrics.counter_vec("demo_requests_total", "Requests.", &["outcome"]);
        let latency = metrics.latency("demo_request_duration_seconds", "Latency.");
        requests.with_label_values(&["ok"]).inc_by(3);
        latency.observe(0.003);
        let text = metrics.encode();
        assert!(
            text.contains("# TYPE demo_requests_total counter"),
            "{text}"
        );
        assert!(
            text.contains("demo_requests_total{outcome=\"ok\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("demo_request_duration_seconds_bucket{le=\"0.005\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("demo_request_duration_seconds_bucket{le=\"0.0025\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("demo_request_duration_seconds_count 1"),
            "{text}"
        );
    }

    #[test]
    fn registries_are_independent() {
        let a = MetricsRegistry::new();
        let b = MetricsRegistry::new();
        a.counter("x_total", "x").inc();
        b.counter("x_total", "x");
        assert!(a.encode().contains("x_total 1"));
        assert!(b.encode().contains("x_total 0"));
    }
}
