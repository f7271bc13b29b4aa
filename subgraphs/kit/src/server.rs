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
//! [`serve`] stops accepting on shutdown and lets in-flight requests finish.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::http::{
    create_multipart_mixed_stream, is_accept_multipart_mixed, ALL_WEBSOCKET_PROTOCOLS,
};
use async_graphql::{Data, Executor};
use async_graphql_axum::rejection::GraphQLRejection;
use async_graphql_axum::{
    GraphQLBatchRequest, GraphQLProtocol, GraphQLRequest, GraphQLResponse, GraphQLWebSocket,
};
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

use crate::auth::BearerToken;
use crate::events::EventBus;
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
    let state = GraphqlState {
        executor,
        metrics: metrics.clone(),
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

fn bearer_from_headers(headers: &HeaderMap) -> Option<BearerToken> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(BearerToken::from_header_value)
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
    if wants_websocket {
        return websocket(executor, request, token).await;
    }
    let wants_multipart = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(is_accept_multipart_mixed);
    if wants_multipart {
        // Incremental delivery (@defer/@stream) as multipart/mixed, like async-graphql-axum's
        // own service; single requests only.
        let req = match GraphQLRequest::<GraphQLRejection>::from_request(request, &()).await {
            Ok(req) => req,
            Err(rejection) => return rejection.into_response(),
        };
        let mut req = req.into_inner();
        if let Some(token) = token {
            req = req.data(token);
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
    let batch = match GraphQLBatchRequest::<GraphQLRejection>::from_request(request, &()).await {
        Ok(batch) => batch,
        Err(rejection) => return rejection.into_response(),
    };
    let mut batch = batch.into_inner();
    if let Some(token) = token {
        batch = batch.data(token);
    }
    let started = std::time::Instant::now();
    let mut span = match traceparent {
        Some(parent) => {
            let name = match &batch {
                async_graphql::BatchRequest::Single(request) => request
                    .operation_name
                    .clone()
                    .map_or(std::borrow::Cow::Borrowed("graphql"), |name| {
                        std::borrow::Cow::Owned(format!("graphql {name}"))
                    }),
                async_graphql::BatchRequest::Batch(_) => "graphql batch".into(),
            };
            state
                .metrics
                .tracer()
                .start(name, SpanKind::Server, parent.as_ref())
        }
        None => Span::none(),
    };
    // Events the resolvers write to the outbox carry this span's context.
    let response = match span.context() {
        Some(context) => trace::scope(Some(context), executor.execute_batch(batch)).await,
        None => executor.execute_batch(batch).await,
    };
    if !response.is_ok() {
        span.set_error("the response carries errors");
    }
    drop(span);
    state.metrics.record_request(started, !response.is_ok());
    GraphQLResponse(response).into_response()
}

async fn websocket<E: Executor>(
    executor: E,
    request: Request,
    header_token: Option<BearerToken>,
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
                    if let Some(token) = bearer_from_init_payload(&payload).or(header_token) {
                        data.insert(token);
                    }
                    Ok(data)
                })
                .serve()
        })
        .into_response()
}

/// The token from a `connection_init` payload: `{"Authorization": "Bearer …"}` (or lower-case key).
fn bearer_from_init_payload(payload: &serde_json::Value) -> Option<BearerToken> {
    ["Authorization", "authorization"]
        .iter()
        .find_map(|key| payload.get(*key).and_then(serde_json::Value::as_str))
        .and_then(BearerToken::from_header_value)
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
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
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
