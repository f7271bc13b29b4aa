//! Tracing at the gateway against real subgraphs on loopback ports: a client's `traceparent` is
//! continued, spans are exported per request, plan node and subgraph fetch to a local OTLP/HTTP
//! receiver, subgraphs get the fetch span's context — and nothing of it happens when tracing is
//! off.

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap is the test failing, at that line"
)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use http::{HeaderMap, HeaderValue};
use switchyard_gateway::{GatewayConfig, GraphQLRequest};
use switchyard_telemetry::trace::otlp::DecodedSpan;
use switchyard_telemetry::trace::receiver::OtlpReceiver;
use switchyard_telemetry::trace::TraceContext;

use common::{start_gateway, Subgraphs};

const TOP_PRODUCTS: &str =
    "{ topProducts { upc name price inStock reviews { id body author { id name username } } } }";
const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

fn client_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        "traceparent",
        HeaderValue::try_from(format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01")).unwrap(),
    );
    headers
}

fn request(query: &str) -> GraphQLRequest {
    GraphQLRequest {
        query: Some(query.to_owned()),
        ..GraphQLRequest::default()
    }
}

fn traced(endpoint: &str) -> GatewayConfig {
    GatewayConfig {
        otlp_endpoint: Some(endpoint.to_owned()),
        ..GatewayConfig::default()
    }
}

/// The spans received once `requests` request spans have arrived. A request's span ends after
/// all of its children, and spans are exported in the order they end, so by then the children
/// have arrived too.
async fn received(receiver: &OtlpReceiver, requests: usize) -> Vec<DecodedSpan> {
    receiver
        .wait_for(Duration::from_secs(10), |spans| {
            spans.iter().filter(|s| s.kind == 2).count() >= requests
        })
        .await
}

#[tokio::test]
async fn spans_cover_the_request_each_plan_node_and_each_subgraph_fetch() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let subgraphs = Subgraphs::start(Duration::ZERO).await;
    let (gateway, _base) = start_gateway(subgraphs.list(), traced(receiver.endpoint())).await;
    let response = gateway
        .execute(request(TOP_PRODUCTS), &client_headers())
        .await;
    assert!(response.json()["data"]["topProducts"].is_array());
    let spans = received(&receiver, 1).await;
    assert!(
        spans
            .iter()
            .all(|s| s.trace_id == CLIENT_TRACE && s.service_name == "switchyard-gateway"),
        "{spans:#?}"
    );
    let by_id: HashMap<&str, &DecodedSpan> =
        spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    let parent = |span: &DecodedSpan| {
        span.parent_span_id
            .as_deref()
            .and_then(|id| by_id.get(id).copied())
    };

    let root = spans.iter().find(|s| s.kind == 2).expect("a server span");
    assert_eq!(root.parent_span_id.as_deref(), Some(CLIENT_SPAN));
    assert_eq!(root.name, "query");
    assert_eq!(root.attribute("graphql.operation.type"), Some("query"));
    assert_eq!(root.attribute("switchyard.outcome"), Some("field_errors"));
    // Every other span hangs, through its parents, under the request span.
    for span in &spans {
        let mut up = span;
        while let Some(next) = parent(up) {
            up = next;
        }
        assert_eq!(
            up.span_id, root.span_id,
            "{} is not under the request",
            span.name
        );
    }
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    for node in ["Sequence", "Fetch", "Flatten"] {
        assert!(names.contains(&node), "no {node} span in {names:?}");
    }

    // One client span per fetch, under its Fetch node, and each subgraph saw that span's
    // context as its `traceparent`.
    for (name, recorder) in [
        ("products", &subgraphs.products),
        ("reviews", &subgraphs.reviews),
        ("accounts", &subgraphs.accounts),
        ("inventory", &subgraphs.inventory),
    ] {
        let fetches: Vec<&DecodedSpan> = spans
            .iter()
            .filter(|s| s.kind == 3 && s.attribute("subgraph.name") == Some(name))
            .collect();
        assert_eq!(fetches.len(), recorder.count(), "{name}: {fetches:#?}");
        let sent: Vec<TraceContext> = recorder
            .headers()
            .iter()
            .map(|h| TraceContext::from_headers(h).expect("a traceparent header"))
            .collect();
        for span in &fetches {
            assert_eq!(span.name, format!("subgraph {name}"));
            let node = parent(span).expect("a parent");
            assert_eq!(node.name, "Fetch");
            assert_eq!(node.attribute("subgraph.name"), Some(name));
            assert!(span.attribute("http.response.body.size").is_some());
            assert!(
                sent.iter().any(|c| c.trace_id_hex() == CLIENT_TRACE
                    && c.sampled
                    && span.span_id == hex(&c.span_id)),
                "{name} got {sent:?}, not span {}",
                span.span_id
            );
        }
    }
}

#[tokio::test]
async fn tracing_off_reads_and_sends_no_trace_context() {
    let subgraphs = Subgraphs::start(Duration::ZERO).await;
    let (gateway, _base) = start_gateway(subgraphs.list(), GatewayConfig::default()).await;
    gateway
        .execute(request(TOP_PRODUCTS), &client_headers())
        .await;
    assert!(subgraphs.products.count() > 0);
    for recorder in [&subgraphs.products, &subgraphs.reviews, &subgraphs.accounts] {
        for headers in recorder.headers() {
            assert!(headers.get("traceparent").is_none(), "{headers:?}");
        }
    }
}

#[tokio::test]
async fn without_a_client_context_a_new_trace_starts() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let subgraphs = Subgraphs::start(Duration::ZERO).await;
    let (gateway, _base) = start_gateway(subgraphs.list(), traced(receiver.endpoint())).await;
    let mut headers = HeaderMap::new();
    // Malformed: ignored, as the specification asks, and a new trace is started.
    headers.insert(
        "traceparent",
        HeaderValue::from_static("00-XYZ-nonsense-01"),
    );
    gateway.execute(request("{ me { id } }"), &headers).await;
    let spans = received(&receiver, 1).await;
    let root = spans.iter().find(|s| s.kind == 2).expect("a server span");
    assert_eq!(root.parent_span_id, None);
    assert_ne!(root.trace_id, CLIENT_TRACE);
    let sent = TraceContext::from_headers(&subgraphs.accounts.headers()[0]).unwrap();
    assert_eq!(sent.trace_id_hex(), root.trace_id);
}

#[tokio::test]
async fn collapsing_still_works_with_tracing_on() {
    let receiver = OtlpReceiver::start().await.unwrap();
    // A slow products subgraph, so the two requests overlap.
    let subgraphs = Subgraphs::start(Duration::from_millis(200)).await;
    let (gateway, _base) = start_gateway(subgraphs.list(), traced(receiver.endpoint())).await;
    let query = "{ topProducts { upc } }";
    let headers = HeaderMap::new();
    let (a, b) = tokio::join!(
        gateway.execute(request(query), &headers),
        gateway.execute(request(query), &headers)
    );
    assert_eq!(a.json(), b.json());
    // Each request has its own trace and its own traceparent, yet one fetch went out.
    assert_eq!(subgraphs.products.count(), 1);
    let spans = received(&receiver, 2).await;
    let fetches: Vec<&DecodedSpan> = spans.iter().filter(|s| s.kind == 3).collect();
    assert_eq!(fetches.len(), 2, "{spans:#?}");
    let collapsed: Vec<Option<&str>> = fetches
        .iter()
        .map(|s| s.attribute("switchyard.collapsed"))
        .collect();
    assert!(collapsed.contains(&Some("true")) && collapsed.contains(&Some("false")));
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::new();
    switchyard_telemetry::trace::push_hex(&mut out, bytes);
    out
}
