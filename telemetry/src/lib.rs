//! `switchyard-telemetry`: the monitoring pieces the gateway and every service share.
//!
//! - [`metrics`]: Prometheus registries (one per gateway or service instance, never the global
//!   default registry: `switchyard dev` runs six of them in one process), the text encoder, and
//!   the house bucket layout for latency histograms.
//! - [`window`]: a lock-free sliding window of request latencies and errors, for the status
//!   view's "p50 / p99 / error rate over the last five minutes".
//! - [`logs`]: the tracing subscriber every binary installs (`RUST_LOG` filters, optional JSON).
//! - [`trace`]: W3C trace context, spans and their OTLP/HTTP export (off by default).

pub mod logs;
pub mod metrics;
pub mod trace;
pub mod window;

pub use logs::init_tracing;
pub use prometheus;
