//! Serving a subgraph: one router shape for every service, so the gateway, probes and tooling
//! can treat all services alike.
//!
//! - `/graphql`: POST and GET queries, and WebSocket subscriptions (graphql-transport-ws, or the
//!   legacy graphql-ws) on the same path, told apart by the `Upgrade` header.
//! - `/health`: liveness — the process answers. Never touches a store, so a slow database does not
//!   get a healthy process restarted.
//! - `/ready`: readiness — the service's [`ReadinessCheck`] (typically: its store answers), so a
//!   load balancer stops routing to an instance whose database is down.
//!
//! [`serve`] stops accepting on shutdown and lets in-flight requests finish. It is the gateway's
//! server loop (`switchyard_guard::serve`): header-read and idle timeouts, a connection cap, a
//! whole-request deadline. `/graphql` applies the request guards of [`crate::guards`]: a body
//! limit, no JSON batching, no mutations over GET.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_graphql::http::{
    create_multipart_mixed_stream, is_accept_multipart_mixed, ALL_WEBSOCKET_PROTOCOLS,
};
use async_graphql::{Data, Executor};
use async_graphql_axum::rejection::GraphQLRejection;
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse, GraphQLWebSocket};
use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::future::BoxFuture;
use futures::StreamExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use switchyard_telemetry::trace::{self, Span, SpanKind, TraceContext};

use crate::auth::{authorization, BearerToken, NotBearer};
use crate::events::EventBus;
use crate::guards::{self, Guards};
use crate::metrics::{Level, ServiceMetrics};

/// Why a service is not ready.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct NotReady(pub String);

/// What `/ready` asks: can this instance serve traffic now?
pub trait ReadinessCheck: Send + Sync + 'static {
    /// `Ok` when ready; the error text is returned in the 503 body.
    fn check(&self) -> BoxFuture<'_, Result<(), NotReady>>;
}

/// Always ready: for services with no store.
#[derive(Debug, Clone, Copy, Default)]
pub struct AlwaysReady;

impl ReadinessCheck for AlwaysReady {
    fn check(&self) -> BoxFuture<'_, Result<(), NotReady>> {
        Box::pin(async { Ok(()) })
    }
}

impl ReadinessCheck for sqlx::AnyPool {
    fn check(&self) -> BoxFuture<'_, Result<(), NotReady>> {
        Box::pin(async move {
            sqlx::query("SELECT 1")
                .execute(self)
                .await
                .map(|_| ())
                .map_err(|e| NotReady(format!("database: {e}")))
        })
    }
}

impl ReadinessCheck for EventBus {
    fn check(&self) -> BoxFuture<'_, Result<(), NotReady>> {
        Box::pin(async move {
            self.ping()
                .await
                .map_err(|e| NotReady(format!("event bus: {e}")))
        })
    }
}

/// Ready when every check is; reports the first failure.
impl ReadinessCheck for Vec<Arc<dyn ReadinessCheck>> {
    fn check(&self) -> BoxFuture<'_, Result<(), NotReady>> {
        Box::pin(async move {
            for check in self {
                check.check().await?;
            }
            Ok(())
        })
    }
}

/// The subgraph router: `/graphql`, `/health`, `/ready`, `/status`, measuring into a fresh
/// [`ServiceMetrics`] that nothing serves. Services use [`service_router`] so their metrics are
/// seen.
pub fn router<E: Executor>(executor: E, readiness: Arc<dyn ReadinessCheck>) -> Router {
    service_router(executor, readiness, &ServiceMetrics::new("subgraph"))
}

/// The subgraph router: `/graphql`, `/health`, `/ready`, and `/status` (the service's
/// [`StatusReport`] as JSON, what the gateway's status view shows; 503 when a check is down).
/// GraphQL requests are counted and timed in `metrics`. Add service-specific routes or layers
/// to the returned router as needed.
///
/// Every GraphQL request carries the caller's [`BearerToken`] in its data when one was sent: from
/// the `Authorization: Bearer …` header (POST, GET, and the WebSocket upgrade request), or from
/// the WebSocket `connection_init` payload (`Authorization`/`authorization` key), which wins
/// because browsers cannot set headers on WebSocket upgrades.
pub fn service_router<E: Executor>(
    executor: E,
    readiness: Arc<dyn ReadinessCheck>,
    metrics: &ServiceMetrics,
) -> Router {
    service_router_with(executor, readiness, metrics, Guards::current())
}

/// [`service_router`] with explicit request guards instead of this process's
/// [`Guards::current`] (the schema's own guards come from [`crate::guards::apply`]).
pub fn service_router_with<E: Executor>(
    executor: E,
    readiness: Arc<dyn ReadinessCheck>,
    metrics: &ServiceMetrics,
    guards: Guards,
) -> Router {
    let state = GraphqlState {
        executor,
        metrics: metrics.clone(),
        guards,
    };
    Router::new()
        .route(
            "/graphql",
            get(graphql::<E>).post(graphql::<E>).with_state(state),
        )
        .route("/health", get(|| async { "ok" }))
        .route("/ready", get(ready).with_state(readiness))
        .route("/status", get(status).with_state(metrics.clone()))
}

#[derive(Clone)]
struct GraphqlState<E> {
    executor: E,
    metrics: ServiceMetrics,
    guards: Guards,
}

async fn status(State(metrics): State<ServiceMetrics>) -> Response {
    let report = metrics.report().await;
    let code = if report.status == Level::Down {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (code, axum::Json(report)).into_response()
}

async fn scrape(State(metrics): State<ServiceMetrics>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            switchyard_telemetry::metrics::TEXT_CONTENT_TYPE,
        )],
        metrics.scrape().await,
    )
        .into_response()
}

/// The metrics listener's routes: `/metrics` (Prometheus text) and `/status`.
pub fn metrics_router(metrics: &ServiceMetrics) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .route("/status", get(status))
        .with_state(metrics.clone())
}

/// Binds `addr` (when set) and serves [`metrics_router`] there until `shutdown`; the bound
/// address is recorded in `metrics` for the status report. Returns the serving task.
pub async fn serve_metrics(
    addr: Option<SocketAddr>,
    metrics: &ServiceMetrics,
    shutdown: CancellationToken,
) -> std::io::Result<Option<tokio::task::JoinHandle<()>>> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!(
                "metrics listener on {addr}: {e} (set metrics_listen to another address, or `off`)"
            ),
        )
    })?;
    let bound = listener.local_addr()?;
    metrics.set_metrics_address(bound);
    tracing::info!(
        service = metrics.service(),
        "metrics on http://{bound}/metrics"
    );
    let router = metrics_router(metrics);
    Ok(Some(tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "metrics listener failed");
        }
    })))
}

/// Who is calling, by network address: what per-client throttling (e.g. of failed log-ins) keys
/// on. In every GraphQL request's data when known.
///
/// Taken from the last `X-Forwarded-For` entry, which the gateway sets to the one address it
/// saw (its peer, or what its trusted load balancer appended), else from the connection's peer.
/// Subgraphs sit behind the gateway, so they trust that header; a caller that reaches a
/// subgraph directly can pick any address, which is why nothing may rely on this alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddress(pub IpAddr);

fn client_address(request: &Request) -> Option<ClientAddress> {
    let forwarded = request
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .next_back()
        .and_then(|v| v.trim().parse::<IpAddr>().ok());
    let peer = || {
        request
            .extensions()
            .get::<switchyard_guard::ClientAddr>()
            .map(|switchyard_guard::ClientAddr(addr)| addr.ip())
            .or_else(|| {
                request
                    .extensions()
                    .get::<axum::extract::ConnectInfo<SocketAddr>>()
                    .map(|info| info.0.ip())
            })
    };
    forwarded.or_else(peer).map(ClientAddress)
}

/// The request's `Authorization` header: `None` without one.
fn bearer_from_headers(headers: &HeaderMap) -> Option<Result<BearerToken, NotBearer>> {
    headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().map_err(|_| NotBearer).and_then(authorization))
}

async fn graphql<E: Executor>(State(state): State<GraphqlState<E>>, request: Request) -> Response {
    let executor = state.executor;
    let wants_websocket = request
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let token = bearer_from_headers(request.headers());
    // `Some(parent)` when tracing is on (`parent`: the caller's position, if it sent one).
    let traceparent = state
        .metrics
        .tracer()
        .is_enabled()
        .then(|| TraceContext::from_headers(request.headers()));
    let client = client_address(&request);
    if wants_websocket {
        return match traceparent {
            // Each operation on the socket gets a span under the upgrade's `traceparent`.
            Some(parent) => {
                let traced = TracedSocket {
                    executor,
                    tracer: state.metrics.tracer().clone(),
                    parent,
                };
                websocket(traced, request, token, client).await
            }
            None => websocket(executor, request, token, client).await,
        };
    }
    let wants_multipart = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(is_accept_multipart_mixed);
    let is_get = request.method() == axum::http::Method::GET;
    let request = match bounded_single(request, state.guards.limits.max_body_bytes).await {
        Ok(request) => request,
        Err(refused) => return refused,
    };
    let mut req = match GraphQLRequest::<GraphQLRejection>::from_request(request, &()).await {
        Ok(req) => req.into_inner(),
        Err(GraphQLRejection(e)) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                &format!("Invalid GraphQL request: {e}"),
                guards::BAD_REQUEST,
            )
        }
    };
    if is_get {
        // GET must not change anything (GraphQL over HTTP): a link or an image tag could
        // otherwise make a signed-in browser act.
        let name = req.operation_name.clone();
        if req
            .parsed_query()
            .is_ok_and(|doc| guards::is_mutation(doc, name.as_deref()))
        {
            let mut response = error_response(
                StatusCode::METHOD_NOT_ALLOWED,
                "Mutations are not allowed over GET; use POST.",
                guards::BAD_REQUEST,
            );
            response
                .headers_mut()
                .insert(header::ALLOW, axum::http::HeaderValue::from_static("POST"));
            return response;
        }
    }
    if wants_multipart {
        // Incremental delivery (@defer/@stream) as multipart/mixed, like async-graphql-axum's
        // own service.
        match token {
            Some(Ok(token)) => req = req.data(token),
            Some(Err(not_bearer)) => req = req.data(not_bearer),
            None => {}
        }
        if let Some(client) = client {
            req = req.data(client);
        }
        let stream = executor.execute_stream(req, None);
        let body = Body::from_stream(
            create_multipart_mixed_stream(stream, Duration::from_secs(30))
                .map(Ok::<_, std::io::Error>),
        );
        return Response::builder()
            .header(header::CONTENT_TYPE, "multipart/mixed; boundary=graphql")
            .body(body)
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    }
    match token {
        Some(Ok(token)) => req = req.data(token),
        Some(Err(not_bearer)) => req = req.data(not_bearer),
        None => {}
    }
    if let Some(client) = client {
        req = req.data(client);
    }
    let started = std::time::Instant::now();
    let mut span = match traceparent {
        Some(parent) => {
            let name = req
                .operation_name
                .clone()
                .map_or(std::borrow::Cow::Borrowed("graphql"), |name| {
                    std::borrow::Cow::Owned(format!("graphql {name}"))
                });
            state
                .metrics
                .tracer()
                .start(name, SpanKind::Server, parent.as_ref())
        }
        None => Span::none(),
    };
    // Events the resolvers write to the outbox carry this span's context.
    let response = match span.context() {
        Some(context) => trace::scope(Some(context), executor.execute(req)).await,
        None => executor.execute(req).await,
    };
    if !response.is_ok() {
        span.set_error("the response carries errors");
    }
    drop(span);
    state.metrics.record_request(started, !response.is_ok());
    GraphQLResponse::from(response).into_response()
}

/// A spec-shaped GraphQL error response (`{"errors":[…]}`) for a request refused before
/// execution.
fn error_response(status: StatusCode, message: &str, code: &str) -> Response {
    let body = serde_json::json!({
        "errors": [{ "message": message, "extensions": { "code": code } }]
    });
    (status, axum::Json(body)).into_response()
}

/// The request with its body read into memory, if it is within `max_body_bytes` and not a
/// JSON batch (an array: one request could otherwise carry any number of operations, e.g.
/// password guesses); else the refusal to send.
async fn bounded_single(request: Request, max_body_bytes: usize) -> Result<Request, Response> {
    let too_large = || {
        error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("Request body is larger than {max_body_bytes} bytes."),
            guards::PAYLOAD_TOO_LARGE,
        )
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_body_bytes as u64) {
        return Err(too_large());
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, max_body_bytes)
        .await
        .map_err(|_| too_large())?;
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(error_response(
            StatusCode::BAD_REQUEST,
            "Batched requests (a JSON array of operations) are not supported; send one \
             operation per request.",
            guards::BAD_REQUEST,
        ));
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

async fn websocket<E: Executor>(
    executor: E,
    request: Request,
    header_token: Option<Result<BearerToken, NotBearer>>,
    client: Option<ClientAddress>,
) -> Response {
    let (mut parts, _body) = request.into_parts();
    let protocol = match GraphQLProtocol::from_request_parts(&mut parts, &()).await {
        Ok(protocol) => protocol,
        Err(rejection) => return rejection.into_response(),
    };
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| {
            GraphQLWebSocket::new(socket, executor, protocol)
                .on_connection_init(move |payload| async move {
                    let mut data = Data::default();
                    match bearer_from_init_payload(&payload).or(header_token) {
                        Some(Ok(token)) => data.insert(token),
                        Some(Err(not_bearer)) => data.insert(not_bearer),
                        None => {}
                    }
                    if let Some(client) = client {
                        data.insert(client);
                    }
                    Ok(data)
                })
                .serve()
        })
        .into_response()
}

/// An executor for one WebSocket connection that gives each operation on it a span: from its
/// `subscribe` to its end (the stream finishing, or the client completing it or closing the
/// socket), named after the operation, with the number of results sent and whether any carried
/// errors. The parent is the upgrade request's `traceparent`: the gateway opens one upstream
/// connection per client subscription and sends its upstream span there, so the subgraph's span
/// continues the client's trace.
#[derive(Clone)]
struct TracedSocket<E> {
    executor: E,
    tracer: switchyard_telemetry::trace::Tracer,
    parent: Option<TraceContext>,
}

impl<E: Executor> Executor for TracedSocket<E> {
    fn execute(
        &self,
        request: async_graphql::Request,
    ) -> impl Future<Output = async_graphql::Response> + Send {
        self.executor.execute(request)
    }

    fn execute_stream(
        &self,
        mut request: async_graphql::Request,
        session_data: Option<Arc<Data>>,
    ) -> futures::stream::BoxStream<'static, async_graphql::Response> {
        let name = request.operation_name.clone();
        let operation = match request.parsed_query() {
            Ok(document) => operation_type(document, name.as_deref()),
            Err(_) => None,
        };
        let kind = match operation {
            Some(async_graphql::parser::types::OperationType::Query) => "query",
            Some(async_graphql::parser::types::OperationType::Mutation) => "mutation",
            Some(async_graphql::parser::types::OperationType::Subscription) | None => {
                "subscription"
            }
        };
        let span_name = match &name {
            Some(name) => format!("{kind} {name}"),
            None => kind.to_owned(),
        };
        let mut span = self
            .tracer
            .start(span_name, SpanKind::Server, self.parent.as_ref());
        span.set_attribute("graphql.operation.type", kind);
        if let Some(name) = name {
            span.set_attribute("graphql.operation.name", name);
        }
        let context = span.context();
        Box::pin(TracedStream {
            inner: self.executor.execute_stream(request, session_data),
            span,
            context,
            results: 0,
        })
    }
}

/// The type of the operation `operation_name` picks in `document`.
fn operation_type(
    document: &async_graphql::parser::types::ExecutableDocument,
    operation_name: Option<&str>,
) -> Option<async_graphql::parser::types::OperationType> {
    let mut operations = document.operations.iter();
    let operation = match operation_name {
        Some(name) => operations.find(|(n, _)| n.is_some_and(|n| n.as_str() == name)),
        None => operations.next(),
    };
    operation.map(|(_, op)| op.node.ty)
}

/// A socket operation's results, holding its span until the stream ends or is dropped.
struct TracedStream {
    inner: futures::stream::BoxStream<'static, async_graphql::Response>,
    span: Span,
    /// The span's position, current while the resolvers run (events they write to the
    /// outbox link to it).
    context: Option<TraceContext>,
    results: i64,
}

impl futures::Stream for TracedStream {
    type Item = async_graphql::Response;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let context = self.context;
        let polled = trace::sync_scope(context, || self.inner.poll_next_unpin(cx));
        if let std::task::Poll::Ready(Some(response)) = &polled {
            self.results += 1;
            if !response.is_ok() {
                let message = response
                    .errors
                    .first()
                    .map_or_else(String::new, |e| e.message.clone());
                self.span.set_error(message);
            }
        }
        polled
    }
}

impl Drop for TracedStream {
    fn drop(&mut self) {
        let results = self.results;
        self.span
            .set_attribute("switchyard.subscription.events", results);
    }
}

/// The token from a `connection_init` payload: `{"Authorization": "Bearer …"}` (or lower-case key).
fn bearer_from_init_payload(payload: &serde_json::Value) -> Option<Result<BearerToken, NotBearer>> {
    ["Authorization", "authorization"]
        .iter()
        .find_map(|key| payload.get(*key).and_then(serde_json::Value::as_str))
        .map(authorization)
}

async fn ready(State(check): State<Arc<dyn ReadinessCheck>>) -> Response {
    match check.check().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(e) => {
            tracing::warn!(reason = %e, "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, e.0).into_response()
        }
    }
}

/// Binds a listener (use port 0 in tests to get a free port).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves `router` on `listener` until `shutdown` completes, then drains in-flight requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "subgraph listening");
    }
    switchyard_guard::serve(
        listener,
        router,
        switchyard_guard::ConnectionLimits::default(),
        shutdown,
    )
    .await
}

/// A token cancelled on Ctrl-C or SIGTERM: hand clones to the server, the outbox relay and the
/// consumers so one signal stops them all.
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        trigger.cancel();
    });
    token
}

/// Completes on Ctrl-C or SIGTERM (what container runtimes send on stop).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
    tracing::info!("shutdown signal received");
}
