//! One trace across the whole platform: a client's `traceparent` → the gateway → the auth
//! service → the `account.created` event in auth's outbox → the relay → profile's consumer, all
//! exported over OTLP/HTTP to a receiver on loopback.

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap is the test failing, at that line"
)]

mod common;

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
