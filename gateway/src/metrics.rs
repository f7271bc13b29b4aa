//! The gateway's Prometheus metrics and the sliding windows behind the status view.
//!
//! Every handle is resolved before the hot path needs it: per subgraph when the executor is
//! built, per operation once when its prepared operation is first run (kept on the cached
//! [`crate::PreparedOperation`]). Recording is then a few atomic adds. Operation names come from
//! clients, so at most [`MAX_OPERATION_NAMES`] distinct ones become label values; the rest share
//! `(other)`. Names in parentheses cannot collide with GraphQL names.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use switchyard_telemetry::metrics::MetricsRegistry;
use switchyard_telemetry::prometheus::{
    Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
};
use switchyard_telemetry::window::LatencyWindow;

/// Most distinct operation names used as label values.
pub const MAX_OPERATION_NAMES: usize = 200;
/// Label value of anonymous operations.
pub const ANONYMOUS: &str = "(anonymous)";
/// Label value of requests rejected before an operation was identified (parse/validation).
pub const INVALID: &str = "(invalid)";
/// Label value shared by operation names past [`MAX_OPERATION_NAMES`].
pub const OTHER: &str = "(other)";

/// How a client request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Executed without errors.
    Ok,
    /// Executed, with errors in the response (partial data).
    FieldErrors,
    /// Rejected before execution (parse, validation, limits, variables).
    RequestError,
    /// Could not be planned.
    PlanningFailed,
}

impl Outcome {
    /// The `outcome` label value (also recorded on the request's span).
    pub(crate) fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::FieldErrors => "field_errors",
            Outcome::RequestError => "request_error",
            Outcome::PlanningFailed => "planning_failed",
        }
    }
}

/// One operation name's handles.
#[derive(Debug)]
pub(crate) struct OperationMetrics {
    ok: IntCounter,
    field_errors: IntCounter,
    request_error: IntCounter,
    planning_failed: IntCounter,
    duration: Histogram,
}

/// One subgraph's handles and window.
#[derive(Debug)]
pub(crate) struct SubgraphMetrics {
    ok: IntCounter,
    failed: IntCounter,
    circuit_open: IntCounter,
    overloaded: IntCounter,
    pub(crate) collapsed: IntCounter,
    duration: Histogram,
    /// Breaker state and in-flight requests, set when `/metrics` is scraped.
    pub(crate) circuit_state: IntGauge,
    pub(crate) inflight: IntGauge,
    /// Sent requests (not fast failures) over the last minutes, for the status view.
    pub(crate) window: LatencyWindow,
}

/// How a subgraph fetch ended, for its counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FetchOutcome {
    Ok,
    Failed,
    CircuitOpen,
    Overloaded,
}

impl SubgraphMetrics {
    /// Records one fetch that started at `started`. Fast failures (open circuit, in-flight cap)
    /// count as errors in the window too: to a client they are failures of that subgraph.
    pub(crate) fn record(&self, started: Instant, outcome: FetchOutcome) {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(started);
        let counter = match outcome {
            FetchOutcome::Ok => &self.ok,
            FetchOutcome::Failed => &self.failed,
            FetchOutcome::CircuitOpen => &self.circuit_open,
            FetchOutcome::Overloaded => &self.overloaded,
        };
        counter.inc();
        if matches!(outcome, FetchOutcome::Ok | FetchOutcome::Failed) {
            self.duration.observe(elapsed.as_secs_f64());
        }
        self.window
            .record(now, elapsed, outcome != FetchOutcome::Ok);
    }
}

/// Every gateway series, registered in one per-gateway registry.
pub(crate) struct GatewayMetrics {
    pub(crate) registry: MetricsRegistry,
    requests: IntCounterVec,
    duration: HistogramVec,
    operations: Mutex<HashMap<Box<str>, Arc<OperationMetrics>>>,
    invalid: Arc<OperationMetrics>,
    pub(crate) plan_cache_hits: IntCounter,
    pub(crate) plan_cache_misses: IntCounter,
    pub(crate) specialised_plans: IntCounter,
    pub(crate) plan_cache_entries: IntGauge,
    pub(crate) plan_cache_capacity: IntGauge,
    pub(crate) plan_cache_bytes: IntGauge,
    pub(crate) plan_cache_budget: IntGauge,
    pub(crate) websocket_connections: IntGauge,
    /// Set from [`GatewayMetrics::open_connections`] when scraped.
    pub(crate) http_connections: IntGauge,
    /// Client connections open on the GraphQL port, kept by the server loop.
    pub(crate) open_connections: Arc<std::sync::atomic::AtomicUsize>,
    pub(crate) active_subscriptions: IntGauge,
    pub(crate) subscriptions: IntCounter,
    pub(crate) collapsed_requests: IntCounter,
    /// The per-subgraph series (resolved by each executor, kept across reloads).
    pub(crate) subgraphs: SubgraphFamilies,
    /// Every client request over the last minutes, for the status view.
    pub(crate) window: LatencyWindow,
    pub(crate) started: Instant,
}

impl std::fmt::Debug for GatewayMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GatewayMetrics")
    }
}

impl GatewayMetrics {
    /// Registers the gateway-level series in `registry`.
    pub(crate) fn new(registry: MetricsRegistry) -> Self {
        let requests = registry.counter_vec(
            "switchyard_gateway_requests_total",
            "GraphQL requests by operation name and outcome (ok, field_errors, request_error, planning_failed).",
            &["operation", "outcome"],
        );
        let duration = registry.latency_vec(
            "switchyard_gateway_request_duration_seconds",
            "Time from receiving a GraphQL request to having its response, by operation name.",
            &["operation"],
        );
        let invalid = Arc::new(operation_handles(&requests, &duration, INVALID));
        let build = registry.gauge_vec(
            "switchyard_build_info",
            "Always 1; the version label says which build runs.",
            &["version"],
        );
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        GatewayMetrics {
            plan_cache_hits: registry.counter(
                "switchyard_gateway_plan_cache_hits_total",
                "Requests whose validated operation and plan came from the plan cache.",
            ),
            plan_cache_misses: registry.counter(
                "switchyard_gateway_plan_cache_misses_total",
                "Requests that had to be validated and planned.",
            ),
            specialised_plans: registry.counter(
                "switchyard_gateway_specialised_plans_total",
                "Plans made for a cached operation's @skip/@include variable values (one per \
                 combination of values first seen).",
            ),
            plan_cache_entries: registry.gauge(
                "switchyard_gateway_plan_cache_entries",
                "Operations held in the plan cache.",
            ),
            plan_cache_capacity: registry.gauge(
                "switchyard_gateway_plan_cache_capacity_entries",
                "Most operations the plan cache holds.",
            ),
            plan_cache_bytes: registry.gauge(
                "switchyard_gateway_plan_cache_bytes",
                "Estimated memory held by the plan cache's entries.",
            ),
            plan_cache_budget: registry.gauge(
                "switchyard_gateway_plan_cache_budget_bytes",
                "The plan cache's memory budget (plan_cache_bytes); older entries go past it.",
            ),
            websocket_connections: registry.gauge(
                "switchyard_gateway_websocket_connections",
                "Client WebSocket (graphql-transport-ws) connections open now.",
            ),
            http_connections: registry.gauge(
                "switchyard_gateway_open_connections",
                "Client connections open now on the GraphQL port (upgraded WebSockets included).",
            ),
            open_connections: Arc::default(),
            active_subscriptions: registry.gauge(
                "switchyard_gateway_active_subscriptions",
                "Subscriptions running now (WebSocket and multipart).",
            ),
            subscriptions: registry.counter(
                "switchyard_gateway_subscriptions_total",
                "Subscriptions started.",
            ),
            collapsed_requests: registry.counter(
                "switchyard_gateway_collapsed_requests_total",
                "Client requests answered by an identical query already in flight \
                 (collapse_client_requests) instead of an execution of their own.",
            ),
            subgraphs: SubgraphFamilies::register(&registry),
            requests,
            duration,
            operations: Mutex::new(HashMap::new()),
            invalid,
            window: LatencyWindow::new(),
            started: Instant::now(),
            registry,
        }
    }

    /// The handles for `name` (`None`: anonymous). Called once per cached operation.
    pub(crate) fn operation(&self, name: Option<&str>) -> Arc<OperationMetrics> {
        let name = name.unwrap_or(ANONYMOUS);
        let mut operations = self.operations.lock().expect("operations lock poisoned");
        if let Some(found) = operations.get(name) {
            return Arc::clone(found);
        }
        let label = if operations.len() >= MAX_OPERATION_NAMES {
            OTHER
        } else {
            name
        };
        if let Some(found) = operations.get(label) {
            return Arc::clone(found);
        }
        let handles = Arc::new(operation_handles(&self.requests, &self.duration, label));
        operations.insert(label.into(), Arc::clone(&handles));
        handles
    }

    /// Records one client request.
    pub(crate) fn record_request(
        &self,
        operation: Option<&OperationMetrics>,
        outcome: Outcome,
        started: Instant,
    ) {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(started);
        let handles = operation.unwrap_or(&self.invalid);
        let counter = match outcome {
            Outcome::Ok => &handles.ok,
            Outcome::FieldErrors => &handles.field_errors,
            Outcome::RequestError => &handles.request_error,
            Outcome::PlanningFailed => &handles.planning_failed,
        };
        counter.inc();
        handles.duration.observe(elapsed.as_secs_f64());
        // Requests rejected for the client's own mistakes say nothing about the platform's
        // health; the status view counts only failures of executed or unplannable requests.
        let failed = matches!(outcome, Outcome::FieldErrors | Outcome::PlanningFailed);
        self.window.record(now, elapsed, failed);
    }

    /// How long the gateway has been up.
    pub(crate) fn uptime(&self) -> Duration {
        self.started.elapsed()
    }
}

fn operation_handles(
    requests: &IntCounterVec,
    duration: &HistogramVec,
    label: &str,
) -> OperationMetrics {
    OperationMetrics {
        ok: requests.with_label_values(&[label, "ok"]),
        field_errors: requests.with_label_values(&[label, "field_errors"]),
        request_error: requests.with_label_values(&[label, "request_error"]),
        planning_failed: requests.with_label_values(&[label, "planning_failed"]),
        duration: duration.with_label_values(&[label]),
    }
}

/// The per-subgraph series. Registered once per registry and kept across supergraph reloads:
/// a subgraph that stays keeps its counters and its status window, one that goes loses its
/// series (so `/metrics` never reports a subgraph the gateway no longer calls).
pub(crate) struct SubgraphFamilies {
    requests: IntCounterVec,
    duration: HistogramVec,
    collapsed: IntCounterVec,
    circuit_state: IntGaugeVec,
    inflight: IntGaugeVec,
    current: Mutex<HashMap<String, Arc<SubgraphMetrics>>>,
    /// Results reused from a request that merged the same subgraph responses, by kind
    /// (`execute/memo.rs`). Gateway-wide, kept here because executors are built from this.
    pub(crate) reused_representations: IntCounter,
    /// See `reused_representations`.
    pub(crate) reused_responses: IntCounter,
}

impl SubgraphFamilies {
    /// Registers the per-subgraph families in `registry`.
    pub(crate) fn register(registry: &MetricsRegistry) -> Self {
        let reused = registry.counter_vec(
            "switchyard_gateway_reused_results_total",
            "Entity fetch representations (kind representations) and client responses (kind response) taken from a request that merged the very same subgraph responses (collapsed fetches) instead of derived again.",
            &["kind"],
        );
        SubgraphFamilies {
            requests: registry.counter_vec(
                "switchyard_gateway_subgraph_requests_total",
                "Fetches from subgraphs by outcome: ok, failed (connect error, timeout, HTTP error, bad body), circuit_open and overloaded (failed fast, nothing sent).",
                &["subgraph", "outcome"],
            ),
            duration: registry.latency_vec(
                "switchyard_gateway_subgraph_request_duration_seconds",
                "Time from sending a subgraph request to having its parsed response (requests that went out).",
                &["subgraph"],
            ),
            collapsed: registry.counter_vec(
                "switchyard_gateway_subgraph_collapsed_fetches_total",
                "Subgraph fetches that joined an identical request already in flight instead of sending their own.",
                &["subgraph"],
            ),
            circuit_state: registry.gauge_vec(
                "switchyard_gateway_subgraph_circuit_state",
                "Circuit breaker per subgraph: 0 closed, 1 half-open (probing), 2 open.",
                &["subgraph"],
            ),
            inflight: registry.gauge_vec(
                "switchyard_gateway_subgraph_inflight_requests",
                "Requests to the subgraph in flight now.",
                &["subgraph"],
            ),
            current: Mutex::new(HashMap::new()),
            reused_representations: reused.with_label_values(&["representations"]),
            reused_responses: reused.with_label_values(&["response"]),
        }
    }

    /// The handles for `names` (in that order), reusing those of subgraphs seen before and
    /// dropping the series of subgraphs not in `names` any more.
    pub(crate) fn resolve(&self, names: &[String]) -> Vec<Arc<SubgraphMetrics>> {
        let mut current = self.current.lock().expect("subgraph metrics lock poisoned");
        let gone: Vec<String> = current
            .keys()
            .filter(|name| !names.contains(name))
            .cloned()
            .collect();
        for name in gone {
            current.remove(&name);
            for outcome in ["ok", "failed", "circuit_open", "overloaded"] {
                let _ = self.requests.remove_label_values(&[name.as_str(), outcome]);
            }
            let _ = self.duration.remove_label_values(&[name.as_str()]);
            let _ = self.collapsed.remove_label_values(&[name.as_str()]);
            let _ = self.circuit_state.remove_label_values(&[name.as_str()]);
            let _ = self.inflight.remove_label_values(&[name.as_str()]);
        }
        names
            .iter()
            .map(|name| {
                let handles = current.entry(name.clone()).or_insert_with(|| {
                    Arc::new(SubgraphMetrics {
                        ok: self.requests.with_label_values(&[name, "ok"]),
                        failed: self.requests.with_label_values(&[name, "failed"]),
                        circuit_open: self.requests.with_label_values(&[name, "circuit_open"]),
                        overloaded: self.requests.with_label_values(&[name, "overloaded"]),
                        collapsed: self.collapsed.with_label_values(&[name]),
                        duration: self.duration.with_label_values(&[name]),
                        circuit_state: self.circuit_state.with_label_values(&[name]),
                        inflight: self.inflight.with_label_values(&[name]),
                        window: LatencyWindow::new(),
                    })
                });
                Arc::clone(handles)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_names_are_bounded() {
        let metrics = GatewayMetrics::new(MetricsRegistry::new());
        for i in 0..MAX_OPERATION_NAMES + 50 {
            let handles = metrics.operation(Some(&format!("Op{i}")));
            metrics.record_request(Some(&handles), Outcome::Ok, Instant::now());
        }
        metrics.record_request(None, Outcome::RequestError, Instant::now());
        let text = metrics.registry.encode();
        let series = text
            .lines()
            .filter(|l| {
                l.starts_with("switchyard_gateway_requests_total{") && l.contains("outcome=\"ok\"")
            })
            .count();
        // The first MAX_OPERATION_NAMES names, plus (other) and (invalid).
        assert_eq!(series, MAX_OPERATION_NAMES + 2, "{text}");
        assert!(text.contains(
            "switchyard_gateway_requests_total{operation=\"(other)\",outcome=\"ok\"} 50"
        ));
        assert!(text.contains("switchyard_gateway_requests_total{operation=\"(invalid)\",outcome=\"request_error\"} 1"));
        // A name seen before the cap keeps its own series.
        let again = metrics.operation(Some("Op3"));
        metrics.record_request(Some(&again), Outcome::FieldErrors, Instant::now());
        assert!(metrics.registry.encode().contains(
            "switchyard_gateway_requests_total{operation=\"Op3\",outcome=\"field_errors\"} 1"
        ));
    }
}
