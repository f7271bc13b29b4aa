//! One trace across the whole platform: a client's `traceparent` → the gateway → the auth
//! service → the `account.created` event in auth's outbox → the relay → profile's consumer; and
//! a subscription from the client through the gateway to chat (and each event's entity fetch to
//! profile); all exported over OTLP/HTTP to a receiver on loopback.

use crate::common;

use std::collections::HashMap;
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use switchyard::seed;
use switchyard_telemetry::trace::otlp::DecodedSpan;
use switchyard_telemetry::trace::receiver::OtlpReceiver;

const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const CLIENT_SPAN: &str = "b7ad6b7169203331";

const SERVER: u64 = 2;
const CLIENT: u64 = 3;
const PRODUCER: u64 = 4;
const CONSUMER: u64 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_runs_from_the_client_through_a_subgraph_and_an_event_to_its_consumer() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let endpoint = receiver.endpoint().to_owned();
    let t = common::start_stack(|options| {
        options.otlp_endpoint = Some(endpoint.clone());
        options.gateway.otlp_endpoint = Some(endpoint.clone());
    })
    .await;
    let client = t.client.with_header(
        HeaderName::from_static("traceparent"),
        HeaderValue::try_from(format!("00-{TRACE}-{CLIENT_SPAN}-01")).unwrap(),
    );
    let (member, _token) = seed::sign_up(&client, "tracy", "Tracy", common::PASSWORD)
        .await
        .unwrap();
    seed::wait_for_member(&t.client, &member).await.unwrap();

    // Each process exports on its own schedule, so the gateway's batch may arrive after
    // profile's: wait until every span the checks below look for is in.
    let expected = [
        ("switchyard-gateway", SERVER),
        ("switchyard-auth", SERVER),
        ("switchyard-auth", PRODUCER),
        ("switchyard-profile", CONSUMER),
    ];
    let spans = receiver
        .wait_for(Duration::from_secs(30), |spans| {
            expected.iter().all(|(service, kind)| {
                spans
                    .iter()
                    .any(|s| s.trace_id == TRACE && s.service_name == *service && s.kind == *kind)
            })
        })
        .await;
    let trace: Vec<&DecodedSpan> = spans.iter().filter(|s| s.trace_id == TRACE).collect();
    let by_id: HashMap<&str, &DecodedSpan> =
        trace.iter().map(|s| (s.span_id.as_str(), *s)).collect();
    let parent_of = |span: &DecodedSpan| -> &DecodedSpan {
        let id = span.parent_span_id.as_deref().expect("a parent");
        by_id.get(id).copied().unwrap_or_else(|| {
            panic!(
                "{}'s parent {id} is not in the trace: {trace:#?}",
                span.name
            )
        })
    };
    let find = |service: &str, kind: u64| -> &DecodedSpan {
        trace
            .iter()
            .copied()
            .find(|s| s.service_name == service && s.kind == kind)
            .unwrap_or_else(|| panic!("no kind-{kind} span from {service} in {trace:#?}"))
    };

    // client → gateway
    let request = find("switchyard-gateway", SERVER);
    assert_eq!(request.parent_span_id.as_deref(), Some(CLIENT_SPAN));
    assert_eq!(
        request.attribute("graphql.operation.type"),
        Some("mutation")
    );
    // gateway: plan node → fetch to auth
    let fetch = trace
        .iter()
        .copied()
        .find(|s| s.kind == CLIENT && s.attribute("subgraph.name") == Some("auth"))
        .expect("a fetch to auth");
    let node = parent_of(fetch);
    assert_eq!(node.name, "Fetch");
    // gateway → auth, which answered under the gateway's fetch span
    let auth = find("switchyard-auth", SERVER);
    assert_eq!(auth.parent_span_id.as_deref(), Some(fetch.span_id.as_str()));
    // auth's outbox relay published the event under auth's request span…
    let publish = find("switchyard-auth", PRODUCER);
    assert_eq!(publish.name, "publish account.created");
    assert_eq!(
        publish.parent_span_id.as_deref(),
        Some(auth.span_id.as_str())
    );
    // …and profile's consumer continued under the relay's span.
    let consume = find("switchyard-profile", CONSUMER);
    assert_eq!(consume.name, "profile process account.created");
    assert_eq!(
        consume.parent_span_id.as_deref(),
        Some(publish.span_id.as_str())
    );
    assert_eq!(
        consume.attribute("messaging.message.id"),
        publish.attribute("messaging.message.id")
    );
    assert_eq!(consume.error, None);

    // Every span of the trace links up to the client's span.
    for span in &trace {
        let mut up = *span;
        while up.parent_span_id.as_deref() != Some(CLIENT_SPAN) {
            up = parent_of(up);
        }
        assert_eq!(up.span_id, request.span_id);
    }
    t.stack.shutdown().await.unwrap();
}

const SUBSCRIPTION_TRACE: &str = "9c1e6b0a8f2d4c3b9a7e5d1f0b2c4e6a";

/// A subscription in one trace: the client's `traceparent` on the WebSocket upgrade → the
/// gateway's span for the subscription → its upstream subscription at chat → chat's span for
/// it; and each event's entity fetch to profile under the gateway's span for that event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_is_one_trace_from_the_client_through_the_gateway_to_chat() {
    use futures::{SinkExt, StreamExt};
    use serde_json::{json, Value};
    use tokio_tungstenite::tungstenite::Message;

    let receiver = OtlpReceiver::start().await.unwrap();
    let endpoint = receiver.endpoint().to_owned();
    let t = common::start_stack(|options| {
        options.otlp_endpoint = Some(endpoint.clone());
        options.gateway.otlp_endpoint = Some(endpoint.clone());
    })
    .await;
    let amit = common::sign_up(&t.client, "amit", "Amit Sharma").await;
    let priya = common::sign_up(&t.client, "priya", "Priya Nair").await;
    let conversation = common::start_conversation(&t.client, &amit, &[&priya.id]).await;

    let mut socket = common::graphql_ws(
        &format!("ws://{}/graphql", t.stack.gateway_addr()),
        Some(&format!("00-{SUBSCRIPTION_TRACE}-{CLIENT_SPAN}-01")),
        Some(&priya.token),
    )
    .await;
    let subscribe = json!({
        "id": "1",
        "type": "subscribe",
        "payload": {
            "query": "subscription Inbox($c: ID!) { messageAdded(conversationId: $c) { body sender { handle } } }",
            "variables": { "c": conversation },
        },
    });
    common::send_json(&mut socket, &subscribe).await;
    // The subscription is live once chat has it: send until the first event arrives.
    let next = async {
        loop {
            let frame = socket.next().await.expect("the socket stays open").unwrap();
            if let Message::Text(text) = frame {
                let value: Value = serde_json::from_str(text.as_str()).unwrap();
                if value["type"] == "next" {
                    return value;
                }
            }
        }
    };
    let mut next = std::pin::pin!(next);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let event = loop {
        t.client
            .with_token(&amit.token)
            .data(
                "mutation($c: ID!) { sendMessage(conversationId: $c, body: \"traced\") { id } }",
                json!({ "c": conversation }),
            )
            .await
            .unwrap();
        match tokio::time::timeout(Duration::from_millis(500), &mut next).await {
            Ok(event) => break event,
            Err(_) => assert!(
                std::time::Instant::now() < deadline,
                "no live message within 10 s"
            ),
        }
    };
    assert_eq!(
        event["payload"]["data"]["messageAdded"]["sender"]["handle"],
        "amit"
    );
    let complete = json!({ "id": "1", "type": "complete" });
    socket
        .send(Message::text(complete.to_string()))
        .await
        .unwrap();

    // Spans are exported as they end: the subscription's once the client completed it.
    let spans = receiver
        .wait_for(Duration::from_secs(30), |spans| {
            let of = |service: &str, name: &str| {
                spans.iter().any(|s| {
                    s.trace_id == SUBSCRIPTION_TRACE
                        && s.service_name == service
                        && s.name.starts_with(name)
                })
            };
            of("switchyard-gateway", "subscription Inbox")
                && of("switchyard-chat", "subscription Inbox")
                && spans.iter().any(|s| {
                    s.trace_id == SUBSCRIPTION_TRACE && s.service_name == "switchyard-profile"
                })
        })
        .await;
    let trace: Vec<&DecodedSpan> = spans
        .iter()
        .filter(|s| s.trace_id == SUBSCRIPTION_TRACE)
        .collect();
    let find = |service: &str, name: &str| -> &DecodedSpan {
        trace
            .iter()
            .copied()
            .find(|s| s.service_name == service && s.name.starts_with(name))
            .unwrap_or_else(|| panic!("no {name:?} span from {service} in {trace:#?}"))
    };
    // client → gateway: one span for the subscription, under the client's.
    let subscription = find("switchyard-gateway", "subscription Inbox");
    assert_eq!(subscription.kind, SERVER);
    assert_eq!(subscription.parent_span_id.as_deref(), Some(CLIENT_SPAN));
    assert_eq!(
        subscription.attribute("graphql.operation.type"),
        Some("subscription")
    );
    assert_eq!(subscription.attribute("subgraph.name"), Some("chat"));
    assert_eq!(
        subscription.attribute("switchyard.outcome"),
        Some("cancelled")
    );
    assert_eq!(
        subscription.attribute("switchyard.subscription.transport"),
        Some("websocket")
    );
    // gateway → chat: the upstream subscription, continued by chat.
    let upstream = find("switchyard-gateway", "subgraph chat");
    assert_eq!(upstream.kind, CLIENT);
    assert_eq!(
        upstream.parent_span_id.as_deref(),
        Some(subscription.span_id.as_str())
    );
    let at_chat = find("switchyard-chat", "subscription Inbox");
    assert_eq!(at_chat.kind, SERVER);
    assert_eq!(
        at_chat.parent_span_id.as_deref(),
        Some(upstream.span_id.as_str())
    );
    assert_eq!(at_chat.error, None);
    // The event: a span under the subscription, the entity fetch to profile under it, and
    // profile's request span under that fetch.
    let fetch = trace
        .iter()
        .copied()
        .find(|s| s.kind == CLIENT && s.attribute("subgraph.name") == Some("profile"))
        .unwrap_or_else(|| panic!("no fetch to profile in {trace:#?}"));
    let at_profile = find("switchyard-profile", "graphql");
    assert_eq!(
        at_profile.parent_span_id.as_deref(),
        Some(fetch.span_id.as_str())
    );
    let by_id: HashMap<&str, &DecodedSpan> =
        trace.iter().map(|s| (s.span_id.as_str(), *s)).collect();
    let mut up = fetch;
    while up.name != "subscription event" {
        let parent = up.parent_span_id.as_deref().expect("a parent");
        up = by_id
            .get(parent)
            .unwrap_or_else(|| panic!("{parent} is not in {trace:#?}"));
    }
    assert_eq!(
        up.parent_span_id.as_deref(),
        Some(subscription.span_id.as_str())
    );
    t.stack.shutdown().await.unwrap();
}

/// `serve` sends the spans of the last requests before it returns. The test holds the gateway
/// (and so its tracer) past `serve`, so the exporter's queue stays open and nothing but that
/// flush would send the waiting batch within the next second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_exports_the_last_spans_before_serve_returns() {
    use switchyard_compose::SubgraphSource;
    use switchyard_demo_subgraphs::DemoSubgraph;

    const LAST: &str = "3ab8e2c47d91f6054e2a1b3c4d5e6f70";
    let receiver = OtlpReceiver::start().await.unwrap();
    let products = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/graphql", products.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(
            products,
            switchyard_demo_subgraphs::router(DemoSubgraph::Products),
        )
        .await
    });
    let supergraph = switchyard_compose::compose(&[SubgraphSource::new(
        "products",
        url,
        switchyard_demo_subgraphs::sdl(DemoSubgraph::Products),
    )])
    .unwrap()
    .supergraph_sdl;
    let config = switchyard_gateway::GatewayConfig {
        otlp_endpoint: Some(receiver.endpoint().to_owned()),
        ..Default::default()
    };
    let gateway = switchyard_gateway::Gateway::from_supergraph_sdl(&supergraph, config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = switchyard::client::GraphQLClient::new(format!(
        "http://{}/graphql",
        listener.local_addr().unwrap()
    ))
    .with_header(
        HeaderName::from_static("traceparent"),
        HeaderValue::try_from(format!("00-{LAST}-{CLIENT_SPAN}-01")).unwrap(),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(switchyard_gateway::serve(
        listener,
        gateway.clone(),
        async move {
            let _ = stopped.await;
        },
    ));
    let response = client
        .send(
            "query Last { topProducts(first: 1) { name } }",
            serde_json::json!({}),
        )
        .await
        .unwrap();
    assert!(response.errors().is_empty(), "{:?}", response.body);
    drop(client);
    stop.send(()).unwrap();
    serving.await.unwrap().unwrap();
    // No waiting: the spans were sent before `serve` returned.
    let spans = receiver.spans();
    let request = spans
        .iter()
        .find(|s| s.trace_id == LAST && s.kind == SERVER)
        .unwrap_or_else(|| panic!("the last request's span was not exported: {spans:#?}"));
    assert_eq!(request.name, "query Last");
    assert!(
        spans
            .iter()
            .any(|s| s.trace_id == LAST && s.name == "subgraph products"),
        "{spans:#?}"
    );
    drop(gateway);
}
