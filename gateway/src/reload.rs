//! Hot reload and graceful drain.
//!
//! [`LiveGateway`] holds the gateway now serving and swaps it whole for a new one built from a
//! changed supergraph or config: schema, planner, plan cache (plans belong to the schema they
//! were made for), executor and CORS rules all come from the same files, so no request ever sees
//! a mix. A request keeps the gateway it started on to its end, and so does a WebSocket
//! connection: subscriptions opened on the old schema run on until they end. What must outlive a
//! swap ([`Shared`]: the metrics, the reload record, the drain signal, the trace exporter while
//! its settings stay the same) is carried from each gateway to its successor.
//!
//! A reload that fails (unreadable file, invalid supergraph or config) changes nothing: the
//! running gateway keeps serving and the reason is logged, shown on `/ready` and in the status
//! view until a later reload succeeds.

use std::convert::Infallible;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use axum::extract::Request;
use axum::Router;
use serde::Serialize;
use tokio::sync::{watch, Notify};

use switchyard_telemetry::trace::{TraceError, Tracer, SHUTDOWN_FLUSH_TIMEOUT};

use crate::metrics::GatewayMetrics;
use crate::{Gateway, GatewayConfig};

/// What a gateway hands on to its successor when it is replaced.
pub(crate) struct Shared {
    pub(crate) metrics: GatewayMetrics,
    record: Mutex<ReloadStatus>,
    /// Flips to `true` once, when the process starts to drain.
    draining: watch::Sender<bool>,
    /// Open client WebSocket connections and the operations running on them, which the HTTP
    /// server does not track once upgraded.
    pub(crate) websockets: Arc<TaskCount>,
    /// The exporting tracer and the settings it was made with (endpoint, sample ratio's
    /// bits): a reload that keeps them keeps the tracer, so there is one export thread and the
    /// flush at shutdown covers every gateway generation's spans.
    tracer: Mutex<Option<(TracerSettings, Tracer)>>,
}

type TracerSettings = (Option<String>, u64);

impl Shared {
    pub(crate) fn new(metrics: GatewayMetrics) -> Self {
        Shared {
            metrics,
            record: Mutex::new(ReloadStatus {
                loaded_at: unix_seconds(SystemTime::now()),
                ..ReloadStatus::default()
            }),
            draining: watch::channel(false).0,
            websockets: Arc::default(),
            tracer: Mutex::new(None),
        }
    }

    /// The tracer for these settings: the one already made when they have not changed.
    pub(crate) fn tracer(
        &self,
        endpoint: Option<&str>,
        sample_ratio: f64,
    ) -> Result<Tracer, TraceError> {
        let settings = (endpoint.map(str::to_owned), sample_ratio.to_bits());
        let mut slot = self.tracer.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((made_with, tracer)) = &*slot {
            if *made_with == settings {
                return Ok(tracer.clone());
            }
        }
        let tracer = Tracer::from_endpoint(endpoint, "switchyard-gateway", sample_ratio)?;
        *slot = Some((settings, tracer.clone()));
        Ok(tracer)
    }

    /// Exports the spans ended so far, waiting at most `limit` (see [`Tracer::flush_within`]).
    pub(crate) async fn flush_traces(&self, limit: Duration) -> bool {
        let tracer = self
            .tracer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|(_, tracer)| tracer.clone());
        match tracer {
            Some(tracer) => tracer.flush_within(limit).await,
            None => true,
        }
    }

    pub(crate) fn status(&self) -> ReloadStatus {
        self.record.lock().expect("reload record poisoned").clone()
    }

    fn loaded(&self) {
        let mut record = self.record.lock().expect("reload record poisoned");
        record.reloads += 1;
        record.loaded_at = unix_seconds(SystemTime::now());
        record.refused = None;
        record.refused_at = None;
    }

    fn refused(&self, reason: String) {
        let mut record = self.record.lock().expect("reload record poisoned");
        record.refused = Some(reason);
        record.refused_at = Some(unix_seconds(SystemTime::now()));
    }

    /// Starts the drain: WebSockets close with 1001, `/ready` answers 503.
    pub(crate) fn begin_drain(&self) {
        self.draining.send_replace(true);
    }

    pub(crate) fn is_draining(&self) -> bool {
        *self.draining.borrow()
    }

    /// Resolves once the drain has started (at once if it has).
    pub(crate) async fn drain_started(&self) {
        let mut draining = self.draining.subscribe();
        // The sender lives as long as `self`, so this only ends when draining is true.
        let _ = draining.wait_for(|d| *d).await;
    }
}

/// Counts running tasks of one kind, so the drain can wait for them.
#[derive(Default)]
pub(crate) struct TaskCount {
    running: AtomicUsize,
    done: Notify,
}

impl TaskCount {
    /// Counts one task until the returned guard drops.
    pub(crate) fn start(self: &Arc<Self>) -> TaskGuard {
        self.running.fetch_add(1, Ordering::AcqRel);
        TaskGuard(Arc::clone(self))
    }

    async fn all_done(&self) {
        loop {
            let notified = self.done.notified();
            if self.running.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// One counted task; dropping it ends the count.
pub(crate) struct TaskGuard(Arc<TaskCount>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        if self.0.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.done.notify_waiters();
        }
    }
}

/// The reload history as `/ready` and the status view report it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReloadStatus {
    /// How many times a new supergraph or config was swapped in since the process started.
    pub reloads: u64,
    /// When the schema now serving was loaded (seconds since the Unix epoch).
    pub loaded_at: u64,
    /// Why the latest reload was refused (the schema before it keeps serving); cleared by the
    /// next reload that succeeds.
    pub refused: Option<String>,
    /// When that reload was refused (seconds since the Unix epoch).
    pub refused_at: Option<u64>,
}

fn unix_seconds(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One gateway with the routers built for it.
struct Generation {
    gateway: Gateway,
    router: Router,
    metrics_router: Router,
}

impl Generation {
    fn new(gateway: Gateway) -> Self {
        Generation {
            router: gateway.router(),
            metrics_router: gateway.metrics_router(),
            gateway,
        }
    }
}

/// The gateway now serving, replaced atomically on reload. Cheap to clone.
#[derive(Clone)]
pub struct LiveGateway {
    current: Arc<ArcSwap<Generation>>,
    /// Serializes reloads (SIGHUP and the file watcher may fire together) and remembers what
    /// the files held at the last load, so an unchanged file is not reloaded.
    loading: Arc<Mutex<Option<u64>>>,
}

impl std::fmt::Debug for LiveGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveGateway").finish_non_exhaustive()
    }
}

impl LiveGateway {
    /// Starts serving `gateway`.
    pub fn new(gateway: Gateway) -> Self {
        LiveGateway {
            current: Arc::new(ArcSwap::from_pointee(Generation::new(gateway))),
            loading: Arc::new(Mutex::new(None)),
        }
    }

    /// The gateway serving now.
    pub fn current(&self) -> Gateway {
        self.current.load().gateway.clone()
    }

    /// The reload history.
    pub fn status(&self) -> ReloadStatus {
        self.current().inner.shared.status()
    }

    /// Replaces the serving gateway with one built for `sdl` and `config` (by
    /// [`Gateway::successor`]). On error nothing changes; the reason is recorded for `/ready`
    /// and the status view.
    pub fn reload(&self, sdl: &str, config: GatewayConfig) -> Result<(), crate::GatewayError> {
        let _loading = self.loading.lock().expect("reload lock poisoned");
        self.swap_in(sdl, config)
    }

    fn swap_in(&self, sdl: &str, config: GatewayConfig) -> Result<(), crate::GatewayError> {
        let current = self.current();
        match current.successor(sdl, config) {
            Ok(next) => {
                let shared = Arc::clone(&next.inner.shared);
                self.current.store(Arc::new(Generation::new(next)));
                shared.loaded();
                Ok(())
            }
            Err(err) => {
                current.inner.shared.refused(err.to_string());
                Err(err)
            }
        }
    }

    /// Re-reads `source`'s files and swaps in what they hold. `Ok(false)`: the files hold what
    /// was loaded last, nothing to do. On error the serving gateway stays, the reason is logged
    /// and recorded. Builds the new schema and planner on the calling thread (use a blocking
    /// thread from async code).
    pub fn reload_from(&self, source: &ReloadSource) -> Result<bool, String> {
        let mut loaded = self.loading.lock().expect("reload lock poisoned");
        let read = source.read().and_then(|(sdl, config_text, config)| {
            let fingerprint = fingerprint(&sdl, config_text.as_deref());
            if *loaded == Some(fingerprint) {
                return Ok(None);
            }
            let config = self.keep_restart_only_settings(config);
            self.swap_in(&sdl, config)
                .map_err(|err| format!("supergraph {}: {err}", source.supergraph.display()))?;
            *loaded = Some(fingerprint);
            Ok(Some(()))
        });
        match read {
            Ok(None) => {
                tracing::info!("reload: supergraph and config unchanged");
                Ok(false)
            }
            Ok(Some(())) => {
                let gateway = self.current();
                tracing::info!(
                    subgraphs = gateway.inner.subgraph_urls.len(),
                    reloads = gateway.inner.shared.status().reloads,
                    "reloaded the supergraph and config"
                );
                Ok(true)
            }
            Err(reason) => {
                tracing::error!(%reason, "reload refused; the running schema keeps serving");
                self.current().inner.shared.refused(reason.clone());
                Err(reason)
            }
        }
    }

    /// Records what `source` holds now as loaded, so a watcher started after the first load
    /// does not reload the same files.
    pub fn mark_loaded(&self, source: &ReloadSource) {
        if let Ok((sdl, text, _)) = source.read() {
            *self.loading.lock().expect("reload lock poisoned") =
                Some(fingerprint(&sdl, text.as_deref()));
        }
    }

    /// The listen addresses and connection limits belong to listeners bound at start; a
    /// reload keeps the running ones and says so when the file asks for others.
    fn keep_restart_only_settings(&self, mut config: GatewayConfig) -> GatewayConfig {
        let running = self.current();
        let running = running.config();
        let mut ignored = Vec::new();
        if config.listen != running.listen {
            ignored.push("listen");
        }
        if config.metrics_listen != running.metrics_listen {
            ignored.push("metrics_listen");
        }
        if config.connection_limits() != running.connection_limits() {
            ignored.push("header_read_timeout/idle_timeout/max_connections/request_timeout");
        }
        if !ignored.is_empty() {
            tracing::warn!(
                settings = ignored.join(", "),
                "these settings changed but take effect only on restart"
            );
        }
        config.listen = running.listen;
        config.metrics_listen = running.metrics_listen;
        config.header_read_timeout = running.header_read_timeout;
        config.idle_timeout = running.idle_timeout;
        config.max_connections = running.max_connections;
        config.request_timeout = running.request_timeout;
        config
    }

    /// Polls `source`'s files every `interval` and reloads when one changes (modification
    /// time or size). Runs until the process ends.
    pub async fn watch(self, source: ReloadSource, interval: Duration) {
        let source = Arc::new(source);
        let mut seen = source.stamps();
        let mut ticks = tokio::time::interval(interval.max(Duration::from_millis(10)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let now = source.stamps();
            if now == seen {
                continue;
            }
            seen = now;
            let live = self.clone();
            let source = Arc::clone(&source);
            // Parsing a supergraph and building its planner is CPU work.
            let _ = tokio::task::spawn_blocking(move || live.reload_from(&source)).await;
        }
    }

    /// Starts the drain (what [`serve_live`] does when its shutdown future resolves).
    pub fn begin_drain(&self) {
        self.current().inner.shared.begin_drain();
    }

    /// The public routes, each request sent to the gateway serving when it arrives.
    pub fn router(&self) -> Router {
        Router::new().fallback_service(Dispatch {
            current: Arc::clone(&self.current),
            metrics: false,
        })
    }

    /// The metrics listener's routes for whichever gateway is serving.
    pub fn metrics_router(&self) -> Router {
        Router::new().fallback_service(Dispatch {
            current: Arc::clone(&self.current),
            metrics: true,
        })
    }
}

/// Hands each request to the current generation's router; the request then holds that
/// generation until it is answered.
#[derive(Clone)]
struct Dispatch {
    current: Arc<ArcSwap<Generation>>,
    metrics: bool,
}

impl tower::Service<Request> for Dispatch {
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = axum::routing::future::RouteFuture<Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let generation = self.current.load();
        let mut router = if self.metrics {
            generation.metrics_router.clone()
        } else {
            generation.router.clone()
        };
        tower::Service::call(&mut router, request)
    }
}

fn fingerprint(sdl: &str, config: Option<&str>) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    sdl.hash(&mut hasher);
    config.hash(&mut hasher);
    hasher.finish()
}

/// Where a reload reads from: the supergraph file and the config file, with the command
/// line's overrides applied to each freshly read config.
#[derive(Clone)]
pub struct ReloadSource {
    /// The supergraph SDL file.
    pub supergraph: PathBuf,
    /// The TOML config file, if any (environment overrides apply as at start).
    pub config: Option<PathBuf>,
    /// Applied to every config read (command-line flags that override the file).
    pub adjust: Arc<dyn Fn(&mut GatewayConfig) + Send + Sync>,
}

impl std::fmt::Debug for ReloadSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadSource")
            .field("supergraph", &self.supergraph)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ReloadSource {
    /// Reads both files: the SDL, the config file's text and the config it gives.
    fn read(&self) -> Result<(String, Option<String>, GatewayConfig), String> {
        let sdl = std::fs::read_to_string(&self.supergraph)
            .map_err(|err| format!("reading {}: {err}", self.supergraph.display()))?;
        let text = match &self.config {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|err| format!("reading {}: {err}", path.display()))?,
            ),
            None => None,
        };
        let mut config = GatewayConfig::default();
        if let (Some(text), Some(path)) = (&text, &self.config) {
            config
                .apply_toml(text)
                .map_err(|err| format!("parsing config file {}: {err}", path.display()))?;
        }
        config
            .apply_env(std::env::vars())
            .map_err(|err| err.to_string())?;
        (self.adjust)(&mut config);
        Ok((sdl, text, config))
    }

    fn stamps(&self) -> [Option<(SystemTime, u64)>; 2] {
        let stamp = |path: &Path| {
            let meta = std::fs::metadata(path).ok()?;
            Some((meta.modified().ok()?, meta.len()))
        };
        [
            stamp(&self.supergraph),
            self.config.as_deref().and_then(stamp),
        ]
    }
}

/// Serves whichever gateway `live` holds on `listener` until `shutdown` resolves, then drains:
/// the listener closes, idle connections close, in-flight requests get up to `drain_timeout`
/// to finish, WebSocket clients get a 1001 close, the spans ended so far are exported (waiting
/// at most two seconds for the collector), and the function returns.
pub async fn serve_live(
    listener: tokio::net::TcpListener,
    live: LiveGateway,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let gateway = live.current();
    let limits = gateway.config().connection_limits();
    let shared = Arc::clone(&gateway.inner.shared);
    let signal = Arc::clone(&shared);
    let stop = async move {
        shutdown.await;
        tracing::info!("draining: no new connections; finishing requests in flight");
        signal.begin_drain();
    };
    let drained = async {
        let open = Arc::clone(&shared.metrics.open_connections);
        switchyard_guard::serve_counted(listener, live.router(), limits, stop, open).await?;
        shared.websockets.all_done().await;
        Ok::<(), std::io::Error>(())
    };
    let deadline = async {
        shared.drain_started().await;
        let timeout = live.current().config().drain_timeout;
        tokio::time::sleep(timeout).await;
        timeout
    };
    let result = tokio::select! {
        result = drained => {
            tracing::info!("drained");
            result
        }
        timeout = deadline => {
            tracing::warn!(
                ?timeout,
                websockets = shared.websockets.running.load(Ordering::Acquire),
                "drain deadline passed; stopping with work still in flight"
            );
            Ok(())
        }
    };
    // The export thread dies with the process: without this the spans of the last second's
    // requests (a batch waits up to a second) would never leave.
    shared.flush_traces(SHUTDOWN_FLUSH_TIMEOUT).await;
    result
}
