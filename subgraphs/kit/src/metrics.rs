//! What a service measures and reports about itself: Prometheus series on a separate metrics
//! listener, and the `/status` report the gateway's status view reads.
//!
//! One [`ServiceMetrics`] per service instance (never process-global: `switchyard dev` runs all
//! five services in one process). Request, outbox and consumer counters are pre-registered
//! handles, bumped with atomics on the hot path. Everything that needs a query — database
//! reachability and pool use, outbox backlog, consumer lag, each store's own gauges — is a
//! [`StatusProbe`] run when someone asks (a scrape or a status request), so an idle service
//! costs nothing and a scrape always sees the present.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures::future::{join_all, BoxFuture};
use serde::Serialize;
use sqlx::AnyPool;
use switchyard_telemetry::metrics::MetricsRegistry;
use switchyard_telemetry::prometheus::{
    Gauge, Histogram, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
};
use switchyard_telemetry::trace::{TraceError, Tracer};
use switchyard_telemetry::window::LatencyWindow;

use crate::events::EventBus;

/// How long one probe may take before it is reported as not answering.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Oldest unsent outbox event before the outbox is reported degraded.
pub const OUTBOX_AGE_DEGRADED: Duration = Duration::from_secs(60);
/// Oldest unsent outbox event before the outbox is reported down.
pub const OUTBOX_AGE_DOWN: Duration = Duration::from_secs(600);
/// Consumer lag (events) before a consumer is reported degraded.
pub const LAG_DEGRADED: u64 = 1_000;
/// Consumer lag (events) before a consumer is reported down.
pub const LAG_DOWN: u64 = 100_000;

/// How well something is, in the status view's three colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Green.
    Ok,
    /// Amber: works, but needs a look.
    Degraded,
    /// Red: broken.
    Down,
}

/// One line of a status report: a store, the outbox, a consumer.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Check {
    /// What was checked (`database`, `outbox`, `consumer analytics`, `search index`).
    pub name: String,
    /// How it is.
    pub status: Level,
    /// Plain words for a person (`"3 unsent, oldest 0.4 s"`).
    pub detail: String,
    /// The numbers behind the words, by name (`backlog`, `oldestAgeSeconds`, `lag`).
    pub values: BTreeMap<String, f64>,
}

impl Check {
    /// A check with no numbers.
    pub fn new(name: impl Into<String>, status: Level, detail: impl Into<String>) -> Self {
        Check {
            name: name.into(),
            status,
            detail: detail.into(),
            values: BTreeMap::new(),
        }
    }

    /// Adds a number.
    pub fn value(mut self, name: &str, value: f64) -> Self {
        self.values.insert(name.to_owned(), value);
        self
    }
}

/// Something that reports on part of a service (and refreshes its gauges while at it).
pub trait StatusProbe: Send + Sync + 'static {
    /// Looks, and says what it saw.
    fn probe(&self) -> BoxFuture<'_, Vec<Check>>;
}

/// A probe from an async closure.
struct FnProbe<F>(F);

impl<F, Fut> StatusProbe for FnProbe<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Vec<Check>> + Send + 'static,
{
    fn probe(&self) -> BoxFuture<'_, Vec<Check>> {
        Box::pin((self.0)())
    }
}

/// A service's status report (what `/status` answers).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    /// The service's name.
    pub service: String,
    /// The worst of the checks.
    pub status: Level,
    /// Seconds since the service started.
    pub uptime_seconds: f64,
    /// GraphQL requests over the last minutes, as the service saw them.
    pub requests: WindowReport,
    /// Each store, the outbox, each consumer.
    pub checks: Vec<Check>,
    /// Where this instance serves `/metrics` (`None`: not served).
    pub metrics_address: Option<String>,
}

/// Requests over a sliding window.
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowReport {
    /// Seconds covered.
    pub window_seconds: f64,
    /// Requests.
    pub count: u64,
    /// Of which failed.
    pub errors: u64,
    /// Median latency in ms.
    pub p50_ms: Option<f64>,
    /// 99th percentile latency in ms.
    pub p99_ms: Option<f64>,
}

impl From<switchyard_telemetry::window::WindowSummary> for WindowReport {
    fn from(s: switchyard_telemetry::window::WindowSummary) -> Self {
        WindowReport {
            window_seconds: s.span.as_secs_f64(),
            count: s.count,
            errors: s.errors,
            p50_ms: s.p50.map(|d| d.as_secs_f64() * 1000.0),
            p99_ms: s.p99.map(|d| d.as_secs_f64() * 1000.0),
        }
    }
}

/// A service instance's metrics and probes. Cheap to clone.
#[derive(Clone)]
pub struct ServiceMetrics {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ServiceMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceMetrics")
            .field("service", &self.inner.service)
            .finish_non_exhaustive()
    }
}

struct Inner {
    service: String,
    registry: MetricsRegistry,
    requests_ok: IntCounter,
    requests_failed: IntCounter,
    duration: Histogram,
    window: LatencyWindow,
    db_errors: IntCounter,
    outbox_published: IntCounter,
    outbox_failures: IntCounter,
    events: IntCounterVec,
    lag: IntGaugeVec,
    pending: IntGaugeVec,
    probes: Mutex<Vec<Arc<dyn StatusProbe>>>,
    metrics_address: OnceLock<SocketAddr>,
    started: Instant,
    tracer: OnceLock<Tracer>,
}

/// What [`ServiceMetrics::tracer`] gives before tracing is set up.
static TRACING_OFF: Tracer = Tracer::disabled();

/// Handles a consumer bumps per event (resolved once per consumer group).
#[derive(Debug, Clone)]
pub struct ConsumerMetrics {
    owner: ServiceMetrics,
    handled: IntCounter,
    duplicate: IntCounter,
    failed: IntCounter,
    db_errors: IntCounter,
}

impl ConsumerMetrics {
    /// Where the consumer's spans go.
    pub(crate) fn tracer(&self) -> &Tracer {
        self.owner.tracer()
    }

    /// One event processed: handled (`Some(true)`), skipped as a duplicate (`Some(false)`) or
    /// failed (`None`, with whether the failure was the database's).
    pub(crate) fn record(&self, outcome: Option<bool>, database_error: bool) {
        match outcome {
            Some(true) => self.handled.inc(),
            Some(false) => self.duplicate.inc(),
            None => {
                self.failed.inc();
                if database_error {
                    self.db_errors.inc();
                }
            }
        }
    }
}

/// Handles the outbox relay bumps per pass.
#[derive(Debug, Clone)]
pub struct OutboxMetrics {
    owner: ServiceMetrics,
    published: IntCounter,
    failures: IntCounter,
    db_errors: IntCounter,
}

impl OutboxMetrics {
    /// Where the relay's spans go.
    pub(crate) fn tracer(&self) -> &Tracer {
        self.owner.tracer()
    }

    /// `n` events published.
    pub(crate) fn published(&self, n: usize) {
        self.published.inc_by(n as u64);
    }

    /// A pass failed (database or bus).
    pub(crate) fn failed(&self, database_error: bool) {
        self.failures.inc();
        if database_error {
            self.db_errors.inc();
        }
    }
}

impl ServiceMetrics {
    /// Metrics for the service named `service` (used in its status report; Prometheus adds the
    /// job label itself).
    pub fn new(service: &str) -> Self {
        let registry = MetricsRegistry::new();
        let requests = registry.counter_vec(
            "switchyard_service_requests_total",
            "GraphQL requests (HTTP POST/GET) by outcome: ok, or error when the response carries errors.",
            &["outcome"],
        );
        let build = registry.gauge_vec(
            "switchyard_build_info",
            "Always 1; the version label says which build runs.",
            &["version"],
        );
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        ServiceMetrics {
            inner: Arc::new(Inner {
                service: service.to_owned(),
                requests_ok: requests.with_label_values(&["ok"]),
                requests_failed: requests.with_label_values(&["error"]),
                duration: registry.latency(
                    "switchyard_service_request_duration_seconds",
                    "Time to answer a GraphQL request (HTTP POST/GET).",
                ),
                window: LatencyWindow::new(),
                db_errors: registry.counter(
                    "switchyard_db_errors_total",
                    "Database errors seen by the outbox relay, the event consumers and the status probes.",
                ),
                outbox_published: registry.counter(
                    "switchyard_outbox_published_events_total",
                    "Outbox events the relay published to the bus.",
                ),
                outbox_failures: registry.counter(
                    "switchyard_outbox_relay_failures_total",
                    "Outbox relay passes that failed (database or bus) and will be retried.",
                ),
                events: registry.counter_vec(
                    "switchyard_events_consumed_total",
                    "Events a consumer group processed, by outcome: handled, duplicate (already processed, skipped) or failed (will be redelivered).",
                    &["group", "outcome"],
                ),
                lag: registry.gauge_vec(
                    "switchyard_consumer_lag_events",
                    "Events on the bus not yet handed to the consumer group.",
                    &["group"],
                ),
                pending: registry.gauge_vec(
                    "switchyard_consumer_pending_events",
                    "Events handed to the consumer group and not yet acknowledged.",
                    &["group"],
                ),
                registry,
                probes: Mutex::new(Vec::new()),
                metrics_address: OnceLock::new(),
                started: Instant::now(),
                tracer: OnceLock::new(),
            }),
        }
    }

    /// Switches tracing on when `otlp_endpoint` is set: the service's GraphQL requests, outbox
    /// relay and event consumers (those given these metrics) then export spans as
    /// `switchyard-<service>`. Call before serving; a second call changes nothing.
    pub fn trace_to(&self, otlp_endpoint: Option<&str>) -> Result<(), TraceError> {
        let tracer = Tracer::from_endpoint(
            otlp_endpoint,
            &format!("switchyard-{}", self.inner.service),
            1.0,
        )?;
        if tracer.is_enabled() {
            let _ = self.inner.tracer.set(tracer);
        }
        Ok(())
    }

    /// Where this service's spans go (disabled unless [`ServiceMetrics::trace_to`] set one).
    pub fn tracer(&self) -> &Tracer {
        self.inner.tracer.get().unwrap_or(&TRACING_OFF)
    }

    /// The service's name.
    pub fn service(&self) -> &str {
        &self.inner.service
    }

    /// The registry, for a service's own series (register them once, at start-up).
    pub fn registry(&self) -> &MetricsRegistry {
        &self.inner.registry
    }

    /// Records one GraphQL request that started at `started`.
    pub fn record_request(&self, started: Instant, failed: bool) {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(started);
        if failed {
            self.inner.requests_failed.inc();
        } else {
            self.inner.requests_ok.inc();
        }
        self.inner.duration.observe(elapsed.as_secs_f64());
        self.inner.window.record(now, elapsed, failed);
    }

    /// The handles a consumer of `group` bumps.
    pub fn consumer(&self, group: &str) -> ConsumerMetrics {
        let events = &self.inner.events;
        ConsumerMetrics {
            owner: self.clone(),
            handled: events.with_label_values(&[group, "handled"]),
            duplicate: events.with_label_values(&[group, "duplicate"]),
            failed: events.with_label_values(&[group, "failed"]),
            db_errors: self.inner.db_errors.clone(),
        }
    }

    /// The handles the outbox relay bumps.
    pub fn outbox(&self) -> OutboxMetrics {
        OutboxMetrics {
            owner: self.clone(),
            published: self.inner.outbox_published.clone(),
            failures: self.inner.outbox_failures.clone(),
            db_errors: self.inner.db_errors.clone(),
        }
    }

    /// Adds a probe run on every scrape and status request.
    pub fn add_probe(&self, probe: impl StatusProbe) {
        self.inner
            .probes
            .lock()
            .expect("probes lock poisoned")
            .push(Arc::new(probe));
    }

    /// Adds a probe written as an async closure (e.g. a store's own gauges).
    pub fn add_probe_fn<F, Fut>(&self, probe: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<Check>> + Send + 'static,
    {
        self.add_probe(FnProbe(probe));
    }

    /// Watches a database: reachable (`SELECT 1`), pool connections in use and idle.
    pub fn watch_database(&self, pool: AnyPool) {
        let registry = self.registry();
        let up = registry.gauge(
            "switchyard_db_up",
            "1 when the service's database answered the last probe, else 0.",
        );
        let connections = registry.gauge_vec(
            "switchyard_db_pool_connections",
            "Database pool connections by state: in_use or idle.",
            &["state"],
        );
        let in_use = connections.with_label_values(&["in_use"]);
        let idle = connections.with_label_values(&["idle"]);
        let max = registry.gauge(
            "switchyard_db_pool_max_connections",
            "Most connections the database pool opens.",
        );
        max.set(i64::from(pool.options().get_max_connections()));
        let errors = self.inner.db_errors.clone();
        let probe = DatabaseProbe {
            pool,
            up,
            in_use,
            idle,
            max,
            errors,
        };
        self.add_probe(probe);
    }

    /// Watches the outbox in `pool`: how many events wait, and how old the oldest is.
    pub fn watch_outbox(&self, pool: AnyPool) {
        let registry = self.registry();
        let backlog = registry.gauge(
            "switchyard_outbox_backlog_events",
            "Outbox events committed but not yet published to the bus.",
        );
        let oldest = registry.gauge_f64(
            "switchyard_outbox_oldest_unsent_age_seconds",
            "Age of the oldest unpublished outbox event (0 when none waits).",
        );
        let errors = self.inner.db_errors.clone();
        self.add_probe(OutboxProbe {
            pool,
            backlog,
            oldest,
            errors,
        });
    }

    /// Watches the bus: reachable, and how far `group` lags behind.
    pub fn watch_consumer(&self, bus: EventBus, group: &str) {
        let lag = self.inner.lag.with_label_values(&[group]);
        let pending = self.inner.pending.with_label_values(&[group]);
        self.add_probe(ConsumerProbe {
            bus,
            group: group.to_owned(),
            lag,
            pending,
        });
    }

    /// Watches the bus's reachability (for a service that publishes but consumes nothing).
    pub fn watch_event_bus(&self, bus: EventBus) {
        let up = self.registry().gauge(
            "switchyard_event_bus_up",
            "1 when the event bus answered the last probe, else 0.",
        );
        self.add_probe(BusProbe { bus, up });
    }

    /// Records where `/metrics` is served (shown in the status report).
    pub fn set_metrics_address(&self, addr: SocketAddr) {
        let _ = self.inner.metrics_address.set(addr);
    }

    /// Runs every probe (each bounded by [`PROBE_TIMEOUT`]) and returns their checks.
    pub async fn probe(&self) -> Vec<Check> {
        let probes: Vec<Arc<dyn StatusProbe>> = self
            .inner
            .probes
            .lock()
            .expect("probes lock poisoned")
            .clone();
        let runs = probes.iter().map(|probe| async move {
            match tokio::time::timeout(PROBE_TIMEOUT, probe.probe()).await {
                Ok(checks) => checks,
                Err(_) => vec![Check::new(
                    "probe",
                    Level::Down,
                    format!("no answer within {} s", PROBE_TIMEOUT.as_secs()),
                )],
            }
        });
        join_all(runs).await.into_iter().flatten().collect()
    }

    /// Probes, then returns the Prometheus text.
    pub async fn scrape(&self) -> String {
        self.probe().await;
        self.inner.registry.encode()
    }

    /// Probes, then returns the status report.
    pub async fn report(&self) -> StatusReport {
        let checks = self.probe().await;
        let status = checks.iter().map(|c| c.status).max().unwrap_or(Level::Ok);
        StatusReport {
            service: self.inner.service.clone(),
            status,
            uptime_seconds: self.inner.started.elapsed().as_secs_f64(),
            requests: self.inner.window.summary(Instant::now()).into(),
            checks,
            metrics_address: self.inner.metrics_address.get().map(ToString::to_string),
        }
    }
}

struct DatabaseProbe {
    pool: AnyPool,
    up: IntGauge,
    in_use: IntGauge,
    idle: IntGauge,
    max: IntGauge,
    errors: IntCounter,
}

impl StatusProbe for DatabaseProbe {
    fn probe(&self) -> BoxFuture<'_, Vec<Check>> {
        Box::pin(async move {
            let size = i64::from(self.pool.size());
            let idle = i64::try_from(self.pool.num_idle()).unwrap_or(i64::MAX);
            self.idle.set(idle);
            self.in_use.set((size - idle).max(0));
            let pool_values = |check: Check| {
                check
                    .value("poolInUse", (size - idle).max(0) as f64)
                    .value("poolIdle", idle as f64)
                    .value("poolMax", self.max.get() as f64)
            };
            match sqlx::query("SELECT 1").execute(&self.pool).await {
                Ok(_) => {
                    self.up.set(1);
                    let detail = format!(
                        "reachable; {} of {} connections in use",
                        (size - idle).max(0),
                        self.max.get()
                    );
                    vec![pool_values(Check::new("database", Level::Ok, detail))]
                }
                Err(e) => {
                    self.up.set(0);
                    self.errors.inc();
                    vec![pool_values(Check::new(
                        "database",
                        Level::Down,
                        format!("unreachable: {e}"),
                    ))]
                }
            }
        })
    }
}

struct OutboxProbe {
    pool: AnyPool,
    backlog: IntGauge,
    oldest: Gauge,
    errors: IntCounter,
}

impl StatusProbe for OutboxProbe {
    fn probe(&self) -> BoxFuture<'_, Vec<Check>> {
        Box::pin(async move {
            let row = sqlx::query_as::<_, (i64, Option<i64>)>(
                "SELECT COUNT(*), MIN(occurred_at) FROM switchyard_outbox WHERE published_at IS NULL",
            )
            .fetch_one(&self.pool)
            .await;
            let (backlog, oldest_micros) = match row {
                Ok(row) => row,
                Err(e) => {
                    self.errors.inc();
                    return vec![Check::new(
                        "outbox",
                        Level::Down,
                        format!("cannot read the outbox: {e}"),
                    )];
                }
            };
            let now = chrono::Utc::now().timestamp_micros();
            let age = oldest_micros.map_or(0.0, |t| (now - t).max(0) as f64 / 1e6);
            self.backlog.set(backlog);
            self.oldest.set(age);
            let status = if age >= OUTBOX_AGE_DOWN.as_secs_f64() {
                Level::Down
            } else if age >= OUTBOX_AGE_DEGRADED.as_secs_f64() {
                Level::Degraded
            } else {
                Level::Ok
            };
            let detail = if backlog == 0 {
                "all events sent".to_owned()
            } else {
                format!("{backlog} waiting, oldest {}", plain_age(age))
            };
            vec![Check::new("outbox", status, detail)
                .value("backlog", backlog as f64)
                .value("oldestAgeSeconds", age)]
        })
    }
}

struct ConsumerProbe {
    bus: EventBus,
    group: String,
    lag: IntGauge,
    pending: IntGauge,
}

impl StatusProbe for ConsumerProbe {
    fn probe(&self) -> BoxFuture<'_, Vec<Check>> {
        Box::pin(async move {
            let name = format!("consumer {}", self.group);
            match self.bus.group_lag(&self.group).await {
                Ok(lag) => {
                    let lag = lag.unwrap_or_default();
                    self.lag.set(i64::try_from(lag.lag).unwrap_or(i64::MAX));
                    self.pending
                        .set(i64::try_from(lag.pending).unwrap_or(i64::MAX));
                    let status = if lag.lag >= LAG_DOWN {
                        Level::Down
                    } else if lag.lag >= LAG_DEGRADED {
                        Level::Degraded
                    } else {
                        Level::Ok
                    };
                    let detail = if lag.lag == 0 && lag.pending == 0 {
                        "caught up".to_owned()
                    } else {
                        format!("{} behind, {} in progress", lag.lag, lag.pending)
                    };
                    vec![Check::new(name, status, detail)
                        .value("lag", lag.lag as f64)
                        .value("pending", lag.pending as f64)]
                }
                Err(e) => vec![Check::new(
                    name,
                    Level::Down,
                    format!("event bus unreachable: {e}"),
                )],
            }
        })
    }
}

struct BusProbe {
    bus: EventBus,
    up: IntGauge,
}

impl StatusProbe for BusProbe {
    fn probe(&self) -> BoxFuture<'_, Vec<Check>> {
        Box::pin(async move {
            match self.bus.ping().await {
                Ok(()) => {
                    self.up.set(1);
                    vec![Check::new("event bus", Level::Ok, "reachable")]
                }
                Err(e) => {
                    self.up.set(0);
                    vec![Check::new(
                        "event bus",
                        Level::Down,
                        format!("unreachable: {e}"),
                    )]
                }
            }
        })
    }
}

/// "0.4 s", "12 s", "3 min", "2 h".
pub fn plain_age(seconds: f64) -> String {
    if seconds < 10.0 {
        format!("{seconds:.1} s")
    } else if seconds < 120.0 {
        format!("{seconds:.0} s")
    } else if seconds < 7200.0 {
        format!("{:.0} min", seconds / 60.0)
    } else {
        format!("{:.0} h", seconds / 3600.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_plainly() {
        assert_eq!(plain_age(0.42), "0.4 s");
        assert_eq!(plain_age(42.0), "42 s");
        assert_eq!(plain_age(600.0), "10 min");
        assert_eq!(plain_age(3.0 * 3600.0), "3 h");
    }
}
