//! The metrics listener's routes.
//!
//! The metrics listener is a separate address (`metrics_listen`) so the public port never
//! exposes internals: operation names, subgraph names and health are for operators.

use axum::body::Body;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use switchyard_telemetry::metrics::TEXT_CONTENT_TYPE;

use crate::Gateway;

pub(crate) fn router(gateway: Gateway) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .route("/status.json", get(status_json))
        .route(
            "/",
            get(|| async { axum::response::Redirect::to("/status") }),
        )
        .with_state(gateway)
}

async fn status(State(gateway): State<Gateway>, headers: axum::http::HeaderMap) -> Response {
    let wants_html = headers
        .get_all(axum::http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/html"));
    if !wants_html {
        return status_json(State(gateway)).await;
    }
    let report = gateway.platform_status().await;
    let mut response = Response::new(Body::from(crate::status::render_html(&report)));
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        axum::http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    response
}

/// The status view as JSON; 503 when something is down, so a plain HTTP check can alert on it.
async fn status_json(State(gateway): State<Gateway>) -> Response {
    let report = gateway.platform_status().await;
    let code = if report.status == crate::status::Level::Down {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    } else {
        axum::http::StatusCode::OK
    };
    let mut response = (code, axum::Json(report)).into_response();
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    response
}

async fn metrics(State(gateway): State<Gateway>) -> Response {
    let mut response = Response::new(Body::from(gateway.metrics_text()));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(TEXT_CONTENT_TYPE));
    response
}
