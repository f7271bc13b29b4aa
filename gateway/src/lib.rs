//! Switchyard's federation gateway: runs query plans against subgraphs and serves GraphQL over HTTP.
//!
//! [`Gateway`] is the entry point: build it from a supergraph SDL, then either mount
//! [`Gateway::router`] in an axum app, call [`serve`], or call [`Gateway::execute`] directly.

pub use switchyard_planner as planner;

mod config;
mod error;
pub mod execute;
pub mod headers;
mod http;
#[doc(hidden)]
pub mod internals;
pub mod introspection;
mod metrics;
mod monitor;
mod pipeline;
pub mod reload;
pub mod status;
pub mod subscription;

use std::sync::Arc;

use ::http::header::{HeaderMap, HeaderName, HeaderValue};
use apollo_compiler::validation::Valid;
use apollo_compiler::{ExecutableDocument, Schema};
use switchyard_planner::{PlanError, PlanOptions, QueryPlan, QueryPlanner, Supergraph};

pub use config::{
    parse_optional_addr, BreakerSettings, ConfigError, CorsSettings, GatewayConfig, Http2Mode,
    SubgraphOverrides, SubgraphPolicy, SubgraphTransport,
};
pub use error::{
    GatewayError, GraphQLError, GraphQLErrors, Location, PathSegment, BAD_REQUEST, BAD_USER_INPUT,
    GRAPHQL_PARSE_FAILED, GRAPHQL_VALIDATION_FAILED, INTROSPECTION_DISABLED, MAX_ALIASES_EXCEEDED,
    MAX_DEPTH_EXCEEDED, MAX_ERRORS, MAX_ROOT_FIELDS_EXCEEDED, PAYLOAD_TOO_LARGE,
    QUERY_PLANNING_FAILED, SUBGRAPH_CIRCUIT_OPEN, SUBGRAPH_REQUEST_FAILED, TOO_MANY_ERRORS,
};
pub use execute::{BoundPlan, Executor, ExecutorOptions};
pub use http::graphiql;
pub use pipeline::limits::{Cost, CostModel, OperationLimits, Shape};
pub use pipeline::validate::parse_and_validate;
pub use pipeline::{GraphQLRequest, GraphQLResponse, PreparedOperation, ResponseStatus};
pub use reload::{serve_live, LiveGateway, ReloadSource, ReloadStatus};

/// Something that turns a validated operation into a query plan (the real planner, or a stub in
/// tests).
pub trait OperationPlanner: Send + Sync {
    /// Plans `operation_name` of `document`.
    fn plan(
        &self,
        document: &Valid<ExecutableDocument>,
        operation_name: Option<&str>,
        options: &PlanOptions,
    ) -> Result<QueryPlan, PlanError>;
}

impl OperationPlanner for QueryPlanner {
    fn plan(
        &self,
        document: &Valid<ExecutableDocument>,
        operation_name: Option<&str>,
        options: &PlanOptions,
    ) -> Result<QueryPlan, PlanError> {
        QueryPlanner::plan(self, document, operation_name, options)
    }
}

impl<F> OperationPlanner for F
where
    F: Fn(&Valid<ExecutableDocument>, Option<&str>, &PlanOptions) -> Result<QueryPlan, PlanError>
        + Send
        + Sync,
{
    fn plan(
        &self,
        document: &Valid<ExecutableDocument>,
        operation_name: Option<&str>,
        options: &PlanOptions,
    ) -> Result<QueryPlan, PlanError> {
        self(document, operation_name, options)
    }
}

/// The federation gateway: API schema, planner, plan cache and executor. Cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    config: GatewayConfig,
    planner: Arc<dyn OperationPlanner>,
    executor: execute::Executor,
    cache: pipeline::plan_cache::PlanCache<pipeline::PrepareError>,
    /// Client queries in flight, for `collapse_client_requests`.
    collapser: pipeline::execute::ClientCollapser,
    /// Bounds how many operations are planned at once (on blocking threads): a flood of
    /// distinct operations queues here instead of planning them all in parallel.
    planning: tokio::sync::Semaphore,
    limits: OperationLimits,
    cost_model: CostModel,
    plan_options: PlanOptions,
    /// Subgraph name -> URL (overrides applied), for subscriptions' WebSocket connections.
    subgraph_urls: std::collections::HashMap<String, String>,
    /// What GraphiQL opens with (set once an embedding program knows a useful example).
    graphiql_query: std::sync::RwLock<Option<Arc<str>>>,
    /// What this gateway shares with the ones it replaces or is replaced by on reload.
    shared: Arc<reload::Shared>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Loads a Federation 2 supergraph and builds a gateway over its subgraphs.
    pub fn from_supergraph_sdl(sdl: &str, config: GatewayConfig) -> Result<Gateway, GatewayError> {
        Self::from_sdl(sdl, config, None)
    }

    /// A gateway for a new supergraph and config that carries on this one's metrics, reload
    /// record and drain signal: what hot reload builds before swapping it in. Nothing of this
    /// gateway's plan cache is kept, since plans belong to the schema they were made for.
    pub fn successor(&self, sdl: &str, config: GatewayConfig) -> Result<Gateway, GatewayError> {
        Self::from_sdl(sdl, config, Some(Arc::clone(&self.inner.shared)))
    }

    fn from_sdl(
        sdl: &str,
        config: GatewayConfig,
        shared: Option<Arc<reload::Shared>>,
    ) -> Result<Gateway, GatewayError> {
        let supergraph = Arc::new(Supergraph::parse(sdl)?);
        let api_schema = supergraph.api_schema().clone();
        let subgraphs: Vec<(String, String)> = supergraph
            .subgraphs()
            .iter()
            .map(|s| (s.name.clone(), s.url.clone()))
            .collect();
        let cost_model = CostModel::from_supergraph(supergraph.schema(), config.default_list_size);
        let planner = Arc::new(QueryPlanner::new(supergraph));
        Self::build(api_schema, subgraphs, planner, config, cost_model, shared)
    }

    /// A gateway from its pieces: the API schema, `(name, url)` subgraphs (config URL overrides
    /// still apply) and a planner. Lets tests and tools plug in their own plans.
    pub fn from_parts(
        api_schema: Valid<Schema>,
        subgraphs: Vec<(String, String)>,
        planner: Arc<dyn OperationPlanner>,
        config: GatewayConfig,
    ) -> Result<Gateway, GatewayError> {
        let cost_model = CostModel::new(config.default_list_size);
        Self::build(api_schema, subgraphs, planner, config, cost_model, None)
    }

    fn build(
        api_schema: Valid<Schema>,
        subgraphs: Vec<(String, String)>,
        planner: Arc<dyn OperationPlanner>,
        config: GatewayConfig,
        cost_model: CostModel,
        shared: Option<Arc<reload::Shared>>,
    ) -> Result<Gateway, GatewayError> {
        let subgraphs: Vec<(String, String)> = subgraphs
            .into_iter()
            .map(|(name, url)| {
                let url = config.url_override(&name).map_or(url, str::to_owned);
                (name, url)
            })
            .collect();
        let subgraph_urls = subgraphs.iter().cloned().collect();
        let shared = shared.unwrap_or_else(|| {
            let registry = switchyard_telemetry::metrics::MetricsRegistry::new();
            Arc::new(reload::Shared::new(metrics::GatewayMetrics::new(registry)))
        });
        let registry = shared.metrics.registry.clone();
        let tracer = shared.tracer(config.otlp_endpoint.as_deref(), config.trace_sample_ratio)?;
        let executor = execute::Executor::with_metrics(
            Arc::new(api_schema),
            &subgraphs,
            ExecutorOptions {
                subgraph_timeout: config.subgraph_timeout,
                dedupe: config.dedupe,
                share_every_response: config.share_every_response,
                introspection: config.introspection,
                subgraph_policies: subgraphs
                    .iter()
                    .map(|(name, _)| (name.clone(), config.subgraph_policy(name)))
                    .collect(),
                metrics: registry,
                subgraph_transports: subgraphs
                    .iter()
                    .map(|(name, _)| (name.clone(), config.subgraph_transport(name)))
                    .collect(),
                header_rules: subgraphs
                    .iter()
                    .map(|(name, _)| {
                        let rules = (
                            config.request_header_rules(name),
                            config.response_header_rules(name),
                        );
                        (name.clone(), rules)
                    })
                    .collect(),
                tracer,
            },
            &shared.metrics.subgraphs,
        )?;
        let metrics = &shared.metrics;
        metrics
            .plan_cache_capacity
            .set(i64::try_from(config.plan_cache_size).unwrap_or(i64::MAX));
        metrics
            .plan_cache_budget
            .set(i64::try_from(config.plan_cache_bytes).unwrap_or(i64::MAX));
        let mut labels: Vec<String> = config.override_labels.clone();
        labels.sort();
        labels.dedup();
        let plan_options = PlanOptions {
            enabled_override_labels: labels.into_iter().collect(),
            ..PlanOptions::default()
        };
        let limits = OperationLimits {
            max_depth: config.max_depth,
            max_aliases: config.max_aliases,
            max_root_fields: config.max_root_fields,
            max_fields: config.max_fields,
            max_cost: config.max_cost,
        };
        Ok(Gateway {
            inner: Arc::new(Inner {
                cache: pipeline::plan_cache::PlanCache::new(
                    config.plan_cache_bytes,
                    config.plan_cache_size,
                ),
                collapser: pipeline::execute::ClientCollapser::default(),
                planning: tokio::sync::Semaphore::new(
                    std::thread::available_parallelism().map_or(1, |n| n.get()),
                ),
                config,
                planner,
                executor,
                limits,
                cost_model,
                plan_options,
                subgraph_urls,
                graphiql_query: std::sync::RwLock::new(None),
                shared,
            }),
        })
    }

    /// Sets the operation GraphiQL opens with for browsers that have none of their own yet
    /// (`switchyard dev` puts the platform's example query there); `None`: GraphiQL's own.
    pub fn set_graphiql_default_query(&self, query: Option<String>) {
        let mut slot = self
            .inner
            .graphiql_query
            .write()
            .unwrap_or_else(|e| e.into_inner());
        *slot = query.map(Arc::from);
    }

    /// The operation GraphiQL opens with, if one was set.
    pub fn graphiql_default_query(&self) -> Option<Arc<str>> {
        self.inner
            .graphiql_query
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The settings this gateway runs with.
    pub fn config(&self) -> &GatewayConfig {
        &self.inner.config
    }

    /// The client-facing API schema.
    pub fn api_schema(&self) -> &Valid<Schema> {
        self.inner.executor.schema()
    }

    /// The HTTP routes: `/graphql` (POST, GET, GraphiQL, WebSocket subscriptions), `/health`, `/ready`.
    pub fn router(&self) -> axum::Router {
        http::router(self.clone())
    }

    /// Validates and plans an operation without running it (for `switchyard plan`).
    pub fn plan(
        &self,
        query: &str,
        operation_name: Option<&str>,
    ) -> Result<QueryPlan, GraphQLErrors> {
        self.prepare(query, operation_name)
            .map(|prepared| prepared.plan().clone())
            .map_err(|(errors, _)| errors)
    }

    /// How many operations the plan cache holds.
    pub fn cached_operations(&self) -> usize {
        self.inner.cache.len()
    }

    /// What the cached operations weigh (the figure held under `plan_cache_bytes`).
    pub fn cached_bytes(&self) -> usize {
        self.inner.cache.bytes()
    }

    /// Validates, plans (both cached) and runs one request, forwarding the configured headers
    /// from `headers` to subgraphs.
    pub async fn execute(&self, request: GraphQLRequest, headers: &HeaderMap) -> GraphQLResponse {
        match pipeline::Request::try_from(request) {
            Ok(request) => self.run(request, headers, false, None).await,
            Err(missing) => self.reject(missing.error()),
        }
    }

    /// Everything the gateway measures, in the Prometheus text format (what `/metrics` on the
    /// metrics listener serves).
    pub fn metrics_text(&self) -> String {
        let inner = &*self.inner;
        let m = &inner.shared.metrics;
        m.plan_cache_entries
            .set(i64::try_from(inner.cache.len()).unwrap_or(i64::MAX));
        m.plan_cache_bytes
            .set(i64::try_from(inner.cache.bytes()).unwrap_or(i64::MAX));
        let open = m
            .open_connections
            .load(std::sync::atomic::Ordering::Relaxed);
        m.http_connections
            .set(i64::try_from(open).unwrap_or(i64::MAX));
        for subgraph in inner.executor.subgraph_states() {
            subgraph.metrics.circuit_state.set(subgraph.circuit.code());
            subgraph
                .metrics
                .inflight
                .set(i64::try_from(subgraph.inflight).unwrap_or(i64::MAX));
        }
        m.registry.encode()
    }

    /// The routes of the metrics listener (keep it off the public port): `/metrics`
    /// (Prometheus), `/status` (HTML for browsers, JSON otherwise) and `/status.json`.
    pub fn metrics_router(&self) -> axum::Router {
        monitor::router(self.clone())
    }

    /// The platform's state as the status view shows it: every subgraph (asking each for its
    /// `/status`), breakers, latency and errors over the last minutes.
    pub async fn platform_status(&self) -> status::PlatformStatus {
        status::platform_status(self).await
    }

    /// Exports the spans ended so far, waiting at most `limit` (a dead collector cannot hold
    /// the caller longer); whether it finished in time. [`serve`] and [`serve_live`] do this
    /// when they stop; a program serving [`Gateway::router`] itself calls it before it exits.
    pub async fn flush_traces(&self, limit: std::time::Duration) -> bool {
        self.inner.shared.flush_traces(limit).await
    }

    pub(crate) fn metrics(&self) -> &metrics::GatewayMetrics {
        &self.inner.shared.metrics
    }

    /// The headers subgraphs get for a request with the client's `headers`, per header rule
    /// group. The client's address (`x-forwarded-for`, set by the HTTP layer) always goes
    /// along: the auth service throttles log-ins per client address.
    fn forwarded_headers(&self, headers: &HeaderMap) -> Vec<Vec<(HeaderName, HeaderValue)>> {
        self.inner.executor.forward(headers)
    }
}

/// Serves `gateway` on `listener` until `shutdown` resolves, then drains (see
/// [`reload::serve_live`]); with the connection hygiene of [`switchyard_guard::serve`]
/// (header-read and idle timeouts, the connection cap, the request deadline) as configured.
pub async fn serve(
    listener: tokio::net::TcpListener,
    gateway: Gateway,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    reload::serve_live(listener, LiveGateway::new(gateway), shutdown).await
}

/// Serves the metrics routes ([`Gateway::metrics_router`]) on `listener` until `shutdown`.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    gateway: Gateway,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, gateway.metrics_router())
        .with_graceful_shutdown(shutdown)
        .await
}

/// Serves the metrics routes of whichever gateway `live` holds on `listener` until `shutdown`.
pub async fn serve_live_metrics(
    listener: tokio::net::TcpListener,
    live: LiveGateway,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, live.metrics_router())
        .with_graceful_shutdown(shutdown)
        .await
}
