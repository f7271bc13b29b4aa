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
pub mod introspection;
mod limits;
mod metrics;
mod monitor;
mod operation;
mod plan_cache;
pub mod reload;
pub mod status;
pub mod subscription;

use std::sync::Arc;

use ::http::header::{HeaderMap, HeaderName, HeaderValue};
use apollo_compiler::validation::Valid;
use apollo_compiler::{ExecutableDocument, Schema};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Map, Value};
use switchyard_planner::{PlanError, PlanOptions, QueryPlan, QueryPlanner, Supergraph};
use tracing::Instrument;

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
pub use execute::{Executor, ExecutorOptions};
pub use http::graphiql;
pub use limits::{Cost, CostModel, OperationLimits, Shape};
pub use operation::{parse_and_validate, PreparedOperation};
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

/// A GraphQL request as clients send it (POST body, or GET parameters decoded).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphQLRequest {
    /// The document.
    #[serde(default)]
    pub query: Option<String>,
    /// Which operation of the document to run.
    #[serde(default)]
    pub operation_name: Option<String>,
    /// Variable values.
    #[serde(default)]
    pub variables: Option<Map<String, Value>>,
    /// Protocol extensions (accepted, unused).
    #[serde(default)]
    pub extensions: Option<Value>,
}

/// How a response should be reported at the HTTP level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseStatus {
    /// The operation ran (possibly with field errors).
    Executed,
    /// The request was rejected before execution (parse, validation, limits, variables).
    RequestError,
    /// The operation could not be planned.
    PlanningFailed,
    /// A mutation arrived over GET.
    MutationOverGet,
}

/// Why an operation could not be prepared, and how to report it.
type PrepareError = (GraphQLErrors, ResponseStatus);

/// A serialized GraphQL response and its classification.
#[derive(Debug, Clone)]
pub struct GraphQLResponse {
    /// The JSON body.
    pub body: Bytes,
    /// What happened.
    pub status: ResponseStatus,
    /// Subgraph response headers the header rules pass back (e.g. a merged `Cache-Control`).
    pub headers: HeaderMap,
}

impl GraphQLResponse {
    fn errors(status: ResponseStatus, errors: &[GraphQLError]) -> Self {
        let mut body = Vec::with_capacity(128);
        // A valid operation that cannot be planned is answered like one whose execution
        // failed at the root (`data: null`), as the reference routers do; other request
        // errors happen before execution and carry no `data`.
        if status == ResponseStatus::PlanningFailed {
            body.extend_from_slice(b"{\"data\":null,\"errors\":");
        } else {
            body.extend_from_slice(b"{\"errors\":");
        }
        serde_json::to_writer(&mut body, &*error::capped(errors))
            .expect("serializing errors cannot fail");
        body.push(b'}');
        Self {
            body: Bytes::from(body),
            status,
            headers: HeaderMap::new(),
        }
    }

    /// The body parsed back into JSON (convenient in tests).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the gateway writes valid JSON")
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
    cache: plan_cache::PlanCache<PrepareError>,
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
        let tracer = switchyard_telemetry::trace::Tracer::from_endpoint(
            config.otlp_endpoint.as_deref(),
            "switchyard-gateway",
            config.trace_sample_ratio,
        )?;
        let executor = execute::Executor::with_metrics(
            Arc::new(api_schema),
            &subgraphs,
            ExecutorOptions {
                subgraph_timeout: config.subgraph_timeout,
                dedupe: config.dedupe,
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
                cache: plan_cache::PlanCache::new(config.plan_cache_bytes, config.plan_cache_size),
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
        self.run(request, headers, false).await
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

    pub(crate) fn metrics(&self) -> &metrics::GatewayMetrics {
        &self.inner.shared.metrics
    }

    pub(crate) async fn run(
        &self,
        request: GraphQLRequest,
        headers: &HeaderMap,
        via_get: bool,
    ) -> GraphQLResponse {
        let started = std::time::Instant::now();
        let tracer = self.inner.executor.tracer();
        // Off, tracing costs this one branch: no header is read and no span made.
        let mut span = if tracer.is_enabled() {
            let parent = switchyard_telemetry::trace::TraceContext::from_headers(headers);
            tracer.start(
                "graphql",
                switchyard_telemetry::trace::SpanKind::Server,
                parent.as_ref(),
            )
        } else {
            switchyard_telemetry::trace::Span::none()
        };
        let (response, operation, outcome) = self
            .run_measured(request, headers, via_get, span.context())
            .await;
        let handles = operation.as_ref().map(|prepared| {
            &**prepared.metrics.get_or_init(|| {
                self.inner
                    .shared
                    .metrics
                    .operation(prepared.operation().name.as_ref().map(|n| n.as_str()))
            })
        });
        self.inner
            .shared
            .metrics
            .record_request(handles, outcome, started);
        if span.is_recording() {
            trace_request(&mut span, operation.as_deref(), outcome);
        }
        response
    }

    async fn run_measured(
        &self,
        request: GraphQLRequest,
        headers: &HeaderMap,
        via_get: bool,
        trace: Option<switchyard_telemetry::trace::TraceContext>,
    ) -> (
        GraphQLResponse,
        Option<Arc<PreparedOperation>>,
        metrics::Outcome,
    ) {
        use metrics::Outcome;
        let Some(query) = request.query.as_deref() else {
            let response = GraphQLResponse::errors(
                ResponseStatus::RequestError,
                &[GraphQLError::new("Missing query", BAD_REQUEST)],
            );
            return (response, None, Outcome::RequestError);
        };
        let operation_name = request.operation_name.as_deref();
        let prepared = match self.prepare_shared(query, operation_name).await {
            Ok(prepared) => prepared,
            Err((errors, status)) => {
                let outcome = if status == ResponseStatus::PlanningFailed {
                    Outcome::PlanningFailed
                } else {
                    Outcome::RequestError
                };
                return (GraphQLResponse::errors(status, &errors.0), None, outcome);
            }
        };
        if prepared.operation().operation_type == apollo_compiler::ast::OperationType::Subscription
        {
            let response = GraphQLResponse::errors(
                ResponseStatus::RequestError,
                &[GraphQLError::new(
                    "Subscriptions need a streaming transport: open a WebSocket to /graphql with \
                     the graphql-transport-ws protocol, or POST with \
                     Accept: multipart/mixed;subscriptionSpec=\"1.0\".",
                    BAD_REQUEST,
                )],
            );
            return (response, Some(prepared), Outcome::RequestError);
        }
        if via_get && prepared.is_mutation() {
            let response = GraphQLResponse::errors(
                ResponseStatus::MutationOverGet,
                &[GraphQLError::new(
                    "Mutations cannot be sent over GET; use POST.",
                    BAD_REQUEST,
                )],
            );
            return (response, Some(prepared), Outcome::RequestError);
        }
        let variables = match prepared.coerce_variables(request.variables) {
            Ok(variables) => variables,
            Err(errors) => {
                let response = GraphQLResponse::errors(ResponseStatus::RequestError, &errors.0);
                return (response, Some(prepared), Outcome::RequestError);
            }
        };
        if let Err(errors) = self.check_variable_cost(&prepared, &variables) {
            let response = GraphQLResponse::errors(ResponseStatus::RequestError, &errors.0);
            return (response, Some(prepared), Outcome::RequestError);
        }
        let forwarded = self.forwarded_headers(headers);
        let span = tracing::info_span!(
            "execute",
            operation = prepared.operation().name.as_ref().map(|n| n.as_str())
        );
        let (body, errors, response_headers) = self
            .inner
            .executor
            .execute_counting_errors(
                &prepared,
                &variables,
                execute::Forwarded::PerGroup(&forwarded),
                trace,
            )
            .instrument(span)
            .await;
        let outcome = if errors == 0 {
            Outcome::Ok
        } else {
            Outcome::FieldErrors
        };
        let response = GraphQLResponse {
            body: Bytes::from(body),
            status: ResponseStatus::Executed,
            headers: response_headers,
        };
        (response, Some(prepared), outcome)
    }

    /// The headers subgraphs get for a request with the client's `headers`, per header rule
    /// group. The client's address (`x-forwarded-for`, set by the HTTP layer) always goes
    /// along: the auth service throttles log-ins per client address.
    fn forwarded_headers(&self, headers: &HeaderMap) -> Vec<Vec<(HeaderName, HeaderValue)>> {
        self.inner.executor.forward(headers)
    }

    /// For an operation whose list sizes come from variables: its cost with these values.
    /// Everything else was estimated once, when it was planned.
    pub(crate) fn check_variable_cost(
        &self,
        prepared: &PreparedOperation,
        variables: &Map<String, Value>,
    ) -> Result<(), GraphQLErrors> {
        if !prepared.cost.uses_variables {
            return Ok(());
        }
        let cost =
            self.inner
                .cost_model
                .cost(prepared.document(), prepared.operation(), Some(variables));
        self.inner.limits.check_cost(cost.value)
    }

    /// The cached prepared operation, or validate + check limits + plan + cache it, on this
    /// thread (for synchronous callers: `plan`, subscriptions).
    fn prepare(
        &self,
        query: &str,
        operation_name: Option<&str>,
    ) -> Result<Arc<PreparedOperation>, PrepareError> {
        let inner = &*self.inner;
        if let Some(hit) = inner.cache.get(query, operation_name) {
            inner.shared.metrics.plan_cache_hits.inc();
            return Ok(hit);
        }
        inner.shared.metrics.plan_cache_misses.inc();
        let prepared = Arc::new(self.prepare_uncached(query, operation_name)?);
        inner.cache.insert(query, operation_name, &prepared);
        Ok(prepared)
    }

    /// Like [`Gateway::prepare`] for requests: a miss is planned on a blocking thread (at most
    /// one per CPU at a time), and concurrent misses of one operation wait for a single run.
    async fn prepare_shared(
        &self,
        query: &str,
        operation_name: Option<&str>,
    ) -> Result<Arc<PreparedOperation>, PrepareError> {
        let (hash, flight) = match self.inner.cache.lookup(query, operation_name) {
            plan_cache::Lookup::Hit(prepared) => {
                self.inner.shared.metrics.plan_cache_hits.inc();
                return Ok(prepared);
            }
            plan_cache::Lookup::Miss { hash, flight } => {
                self.inner.shared.metrics.plan_cache_misses.inc();
                (hash, flight)
            }
        };
        let mut leader = false;
        let result = flight
            .get_or_init(|| {
                leader = true;
                self.prepare_on_blocking_thread(query, operation_name)
            })
            .await
            .clone();
        if leader {
            self.inner
                .cache
                .land(hash, &flight, query, operation_name, &result);
        }
        result
    }

    async fn prepare_on_blocking_thread(
        &self,
        query: &str,
        operation_name: Option<&str>,
    ) -> Result<Arc<PreparedOperation>, PrepareError> {
        let _permit = self
            .inner
            .planning
            .acquire()
            .await
            .expect("the planning semaphore is never closed");
        let gateway = self.clone();
        let query = query.to_owned();
        let operation_name = operation_name.map(str::to_owned);
        tokio::task::spawn_blocking(move || {
            gateway
                .prepare_uncached(&query, operation_name.as_deref())
                .map(Arc::new)
        })
        .await
        .unwrap_or_else(|err| {
            tracing::error!(error = %err, "planning an operation panicked");
            Err((
                GraphQLErrors::single(GraphQLError::new(
                    "The gateway failed while planning this operation.",
                    QUERY_PLANNING_FAILED,
                )),
                ResponseStatus::PlanningFailed,
            ))
        })
    }

    /// Parse, check the expanded shape (before validation, whose field-merging rules would
    /// otherwise walk a fragment bomb), validate, check root fields, introspection and cost,
    /// plan.
    fn prepare_uncached(
        &self,
        query: &str,
        operation_name: Option<&str>,
    ) -> Result<PreparedOperation, PrepareError> {
        let inner = &*self.inner;
        let request_error = |errors| (errors, ResponseStatus::RequestError);
        let ast = operation::parse(query).map_err(request_error)?;
        inner
            .limits
            .check_shape(&Shape::of_document(&ast))
            .map_err(request_error)?;
        let document = operation::validate(inner.executor.schema(), ast).map_err(request_error)?;
        let operation = document
            .operations
            .get(operation_name)
            .map_err(|_| {
                let message = match operation_name {
                    Some(name) => format!("Unknown operation named \"{name}\"."),
                    None => "Must provide operation name if query contains multiple operations."
                        .to_owned(),
                };
                GraphQLErrors::single(GraphQLError::new(message, GRAPHQL_VALIDATION_FAILED))
            })
            .map_err(request_error)?;
        operation::check_root_fields(&document, operation, inner.limits.max_root_fields)
            .map_err(request_error)?;
        inner
            .executor
            .introspection()
            .check(&document, operation)
            .map_err(|err| {
                let error = execute::introspection_error(err.to_graphql_error());
                request_error(GraphQLErrors::single(error))
            })?;
        let cost = inner.cost_model.cost(&document, operation, None);
        if !cost.uses_variables {
            inner.limits.check_cost(cost.value).map_err(request_error)?;
        }
        let plan = inner
            .planner
            .plan(&document, operation_name, &inner.plan_options)
            .map_err(|err| {
                (
                    GraphQLErrors::single(GraphQLError::new(
                        err.to_string(),
                        QUERY_PLANNING_FAILED,
                    )),
                    ResponseStatus::PlanningFailed,
                )
            })?;
        PreparedOperation::new(&inner.executor, document, operation_name, plan)
            .map(|prepared| prepared.with_cost(cost))
            .map_err(request_error)
    }
}

/// Names the request span after its operation (`query Me`, as OpenTelemetry's GraphQL
/// conventions have it) and records how the request ended.
fn trace_request(
    span: &mut switchyard_telemetry::trace::Span,
    operation: Option<&PreparedOperation>,
    outcome: metrics::Outcome,
) {
    if let Some(prepared) = operation {
        let operation = prepared.operation();
        let kind = match operation.operation_type {
            apollo_compiler::ast::OperationType::Query => "query",
            apollo_compiler::ast::OperationType::Mutation => "mutation",
            apollo_compiler::ast::OperationType::Subscription => "subscription",
        };
        span.set_attribute("graphql.operation.type", kind);
        match &operation.name {
            Some(name) => {
                span.set_attribute("graphql.operation.name", name.to_string());
                span.set_name(format!("{kind} {name}"));
            }
            None => span.set_name(kind),
        }
    }
    span.set_attribute("switchyard.outcome", outcome.label());
    match outcome {
        metrics::Outcome::Ok | metrics::Outcome::FieldErrors => {}
        metrics::Outcome::RequestError | metrics::Outcome::PlanningFailed => {
            span.set_error(outcome.label())
        }
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
