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

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use async_graphql::Executor;
use async_graphql_axum::{GraphQL, GraphQLSubscription};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::future::BoxFuture;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::events::EventBus;

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

struct Endpoints<E: Executor> {
    query: GraphQL<E>,
    subscription: GraphQLSubscription<E>,
}

// Derived `Clone` would not carry the `Executor` bound `GraphQLSubscription` needs.
impl<E: Executor> Clone for Endpoints<E> {
    fn clone(&self) -> Self {
        Endpoints {
            query: self.query.clone(),
            subscription: self.subscription.clone(),
        }
    }
}

/// The subgraph router: `/graphql`, `/health`, `/ready`. Add service-specific routes or layers
/// to the returned router as needed.
pub fn router<E: Executor>(executor: E, readiness: Arc<dyn ReadinessCheck>) -> Router {
    let endpoints = Endpoints {
        query: GraphQL::new(executor.clone()),
        subscription: GraphQLSubscription::new(executor),
    };
    Router::new()
        .route(
            "/graphql",
            get(graphql::<E>).post(graphql::<E>).with_state(endpoints),
        )
        .route("/health", get(|| async { "ok" }))
        .route("/ready", get(ready).with_state(readiness))
}

async fn graphql<E: Executor>(State(endpoints): State<Endpoints<E>>, request: Request) -> Response {
    let wants_websocket = request
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let result: Result<Response<Body>, Infallible> = if wants_websocket {
        endpoints.subscription.oneshot(request).await
    } else {
        endpoints.query.oneshot(request).await
    };
    match result {
        Ok(response) => response,
        Err(never) => match never {},
    }
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
