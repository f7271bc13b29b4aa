//! Gateway resilience against a subgraph that hangs: per-subgraph timeouts, the circuit breaker
//! (open, fail fast, half-open probe, close) and the per-subgraph in-flight cap, all over real
//! loopback HTTP with the other subgraphs answering normally.

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap is the test failing, at that line"
)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use switchyard_gateway::{Gateway, GatewayConfig, GraphQLRequest};

use common::{start_gateway, Subgraphs};

/// A subgraph front that either hangs (takes the request, never answers) or forwards to the
/// real subgraph; counts every request that reaches it.
#[derive(Clone)]
struct Switch {
    hang: Arc<AtomicBool>,
    hits: Arc<AtomicUsize>,
    upstream: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

async fn switch_handler(State(state): State<Switch>, body: Bytes) -> axum::response::Response {
    state.hits.fetch_add(1, Ordering::SeqCst);
    if state.hang.load(Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
    let request = http::Request::post(&state.upstream)
        .header("content-type", "application/json")
        .body(Full::new(body))
        .unwrap();
    let response = state.client.request(request).await.unwrap();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    ([("content-type", "application/json")], bytes).into_response()
}

impl Switch {
    async fn start(upstream: &str) -> (Switch, String) {
        let state = Switch {
            hang: Arc::new(AtomicBool::new(true)),
            hits: Arc::default(),
            upstream: upstream.to_owned(),
            client: Client::builder(TokioExecutor::new()).build_http(),
        };
        let router = Router::new()
            .route("/graphql", post(switch_handler))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        (state, format!("http://{addr}/graphql"))
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// Runs `query` through the gateway; returns the JSON response and how long it took.
async fn run(gateway: &Gateway, query: &str) -> (Value, Duration) {
    let started = Instant::now();
    let response = gateway
        .execute(
            GraphQLRequest {
                query: Some(query.to_owned()),
                ..GraphQLRequest::default()
            },
            &http::HeaderMap::new(),
        )
        .await;
    (response.json(), started.elapsed())
}

const BOTH: &str = "{ topProducts { upc } me { id } }";

fn assert_products_failed(body: &Value, code: &str, message_part: &str) {
    assert_eq!(
        body["data"],
        json!({"topProducts": null, "me": {"id": "u1"}}),
        "{body}"
    );
    let errors = body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{body}");
    assert_eq!(errors[0]["extensions"]["serviceName"], "products", "{body}");
    assert_eq!(errors[0]["extensions"]["code"], code, "{body}");
    assert_eq!(errors[0]["path"], json!(["topProducts"]), "{body}");
    let message = errors[0]["message"].as_str().unwrap();
    assert!(message.contains(message_part), "{message}");
}

#[tokio::test]
async fn hanging_subgraph_times_out_opens_the_circuit_and_recovers() {
    let subgraphs = Subgraphs::start(Duration::ZERO).await;
    let (switch, switch_url) = Switch::start(&subgraphs.urls["products"]).await;
    let mut list = subgraphs.list();
    list[0].1 = switch_url;
    let mut config = GatewayConfig::default();
    // Only products gets the short timeout and the quick breaker; the others keep the defaults.
    config
        .apply_toml(
            r#"
            [subgraphs.products]
            timeout = "300ms"
            breaker_failure_threshold = 3
            breaker_cool_down = "1s"
            "#,
        )
        .unwrap();
    let (gateway, _base) = start_gateway(list, config).await;

    // Closed: every request waits for the timeout, then returns partial data.
    for attempt in 1..=3 {
        let (body, took) = run(&gateway, BOTH).await;
        assert_products_failed(&body, "SUBGRAPH_REQUEST_FAILED", "timed out after 300 ms");
        assert!(took >= Duration::from_millis(300), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
        assert_eq!(switch.hits(), attempt);
    }

    // Open: fail fast, without a single request reaching the hanging subgraph.
    let accounts_before = subgraphs.accounts.count();
    for _ in 0..5 {
        let (body, took) = run(&gateway, BOTH).await;
        assert_products_failed(&body, "SUBGRAPH_CIRCUIT_OPEN", "circuit open");
        assert!(took < Duration::from_millis(150), "{took:?}");
    }
    assert_eq!(switch.hits(), 3);
    assert_eq!(subgraphs.accounts.count(), accounts_before + 5);

    // Half-open while still hanging: one probe goes out, times out, and the circuit re-opens.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (body, took) = run(&gateway, BOTH).await;
    assert_products_failed(&body, "SUBGRAPH_REQUEST_FAILED", "timed out");
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert_eq!(switch.hits(), 4);
    let (body, took) = run(&gateway, BOTH).await;
    assert_products_failed(&body, "SUBGRAPH_CIRCUIT_OPEN", "circuit open");
    assert!(took < Duration::from_millis(150), "{took:?}");
    assert_eq!(switch.hits(), 4);

    // The subgraph recovers; after the cool-down the probe succeeds and the circuit closes.
    switch.hang.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for expected_hits in 5..=7 {
        let (body, _) = run(&gateway, BOTH).await;
        assert!(body.get("errors").is_none(), "{body}");
        assert_eq!(body["data"]["topProducts"][0], json!({"upc": "1"}));
        assert_eq!(body["data"]["me"], json!({"id": "u1"}));
        assert_eq!(switch.hits(), expected_hits);
    }
}

#[tokio::test]
async fn in_flight_cap_rejects_excess_fetches_immediately() {
    let subgraphs = Subgraphs::start(Duration::ZERO).await;
    let (switch, switch_url) = Switch::start(&subgraphs.urls["products"]).await;
    let mut list = subgraphs.list();
    list[0].1 = switch_url;
    let mut config = GatewayConfig {
        // Distinct requests would not be collapsed anyway; switching it off makes that certain.
        dedupe: false,
        ..GatewayConfig::default()
    };
    config
        .apply_toml(
            r#"
            [subgraphs.products]
            timeout = "600ms"
            max_inflight = 2
            circuit_breaker = false
            "#,
        )
        .unwrap();
    let (gateway, _base) = start_gateway(list, config).await;

    let (a, b, c) = tokio::join!(run(&gateway, BOTH), run(&gateway, BOTH), async {
        // Let the first two take the slots.
        tokio::time::sleep(Duration::from_millis(100)).await;
        run(&gateway, BOTH).await
    });
    for (body, took) in [&a, &b] {
        assert_products_failed(body, "SUBGRAPH_REQUEST_FAILED", "timed out");
        assert!(*took >= Duration::from_millis(600), "{took:?}");
    }
    let (body, took) = c;
    assert_products_failed(
        &body,
        "SUBGRAPH_REQUEST_FAILED",
        "too many requests in flight",
    );
    assert!(took < Duration::from_millis(150), "{took:?}");
    assert_eq!(switch.hits(), 2);

    // Slots are given back when requests end: with the subgraph answering, fetches go through.
    switch.hang.store(false, Ordering::SeqCst);
    let (body, _) = run(&gateway, BOTH).await;
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(switch.hits(), 3);
}

#[tokio::test]
async fn disabled_breaker_keeps_sending() {
    let subgraphs = Subgraphs::start(Duration::ZERO).await;
    let mut list = subgraphs.list();
    list[0].1 = common::dead_url().await;
    let config = GatewayConfig {
        circuit_breaker: false,
        breaker_failure_threshold: 1,
        breaker_cool_down: Duration::from_secs(60),
        ..GatewayConfig::default()
    };
    let (gateway, _base) = start_gateway(list, config).await;
    for _ in 0..3 {
        let (body, _) = run(&gateway, BOTH).await;
        // A refused connection each time, never a circuit-open error.
        assert_products_failed(&body, "SUBGRAPH_REQUEST_FAILED", "HTTP fetch failed");
    }
}

#[tokio::test]
async fn refused_connections_open_the_circuit_with_default_threshold() {
    let subgraphs = Subgraphs::start(Duration::ZERO).await;
    let mut list = subgraphs.list();
    list[0].1 = common::dead_url().await;
    let (gateway, _base) = start_gateway(list, GatewayConfig::default()).await;
    for _ in 0..5 {
        let (body, _) = run(&gateway, BOTH).await;
        assert_products_failed(&body, "SUBGRAPH_REQUEST_FAILED", "HTTP fetch failed");
    }
    let (body, _) = run(&gateway, BOTH).await;
    assert_products_failed(
        &body,
        "SUBGRAPH_CIRCUIT_OPEN",
        "after 5 consecutive failures",
    );
}
