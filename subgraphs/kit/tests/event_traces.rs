//! Trace context through the event path on real stores: stored with the event in the outbox
//! (SQLite and PostgreSQL, including an outbox table made before the column existed), carried
//! over the in-process bus and Redis Streams, continued by the relay's and the consumer's spans.

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap is the test failing, at that line"
)]

mod common;

use std::time::Duration;

use common::{applied, create_member, RecordingHandler};
use sqlx::AnyPool;
use switchyard_subgraph_kit::events::{outbox, EventBus, EventConsumer, OutboxRelay};
use switchyard_subgraph_kit::ServiceMetrics;
use switchyard_telemetry::trace::receiver::OtlpReceiver;
use switchyard_telemetry::trace::{self, TraceContext};

const PARENT: &[u8] = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

async fn context_travels_with_events(pool: &AnyPool, consumer_db: &AnyPool, bus: &EventBus) {
    let receiver = OtlpReceiver::start().await.unwrap();
    let metrics = ServiceMetrics::new("test");
    metrics.trace_to(Some(receiver.endpoint())).unwrap();
    let parent = TraceContext::parse(PARENT).unwrap();
    let mut subscription = bus.subscribe("analytics").await.unwrap();

    // Raised inside a request's scope, as a resolver raises it; and one outside any.
    let traced = trace::scope(Some(parent), create_member(pool, "traced", true)).await;
    assert_eq!(
        traced.trace_parent.as_deref(),
        Some(parent.to_traceparent().as_str())
    );
    let untraced = create_member(pool, "untraced", true).await;
    assert_eq!(untraced.trace_parent, None);
    let stored = outbox::unpublished(pool, 10).await.unwrap();
    assert_eq!(stored, vec![traced.clone(), untraced.clone()]);

    let relay = OutboxRelay::new(pool.clone(), bus.clone()).metrics(&metrics);
    assert_eq!(relay.relay_once().await.unwrap(), 2);
    let consumer = EventConsumer::new(
        consumer_db.clone(),
        "analytics",
        RecordingHandler {
            calls: Default::default(),
            hang_after: None,
        },
    )
    .metrics(&metrics)
    .wait(Duration::from_millis(50));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while applied(consumer_db).await.len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "events not consumed"
        );
        consumer.run_batch(&mut subscription).await.unwrap();
    }
    metrics.tracer().flush().await;

    // Only the traced event has spans: a trace is continued, never started, on the event path.
    let spans = receiver.spans();
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let publish = spans.iter().find(|s| s.kind == 4).expect("a producer span");
    let consume = spans.iter().find(|s| s.kind == 5).expect("a consumer span");
    assert_eq!(publish.trace_id, parent.trace_id_hex());
    assert_eq!(publish.parent_span_id.as_deref(), Some("b7ad6b7169203331"));
    assert_eq!(publish.name, "publish member.created");
    assert_eq!(publish.service_name, "switchyard-test");
    // The producer span starts when the change committed: time spent in the outbox shows.
    let occurred = traced.occurred_at.timestamp_micros() as u64 * 1000;
    assert!(publish.start_unix_nanos <= occurred + 1000, "{publish:?}");
    assert_eq!(consume.trace_id, parent.trace_id_hex());
    assert_eq!(
        consume.parent_span_id.as_deref(),
        Some(publish.span_id.as_str())
    );
    assert_eq!(consume.name, "analytics process member.created");
    assert_eq!(
        consume.attribute("messaging.message.id"),
        Some(traced.id.to_string().as_str())
    );
    assert_eq!(
        consume.attribute("switchyard.event.duplicate"),
        Some("false")
    );
    // The outbox row keeps the request's context; only the published copy points at the relay.
    let row: Option<String> =
        sqlx::query_scalar("SELECT trace_parent FROM switchyard_outbox WHERE id = $1")
            .bind(traced.id.to_string())
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(row, traced.trace_parent);
}

#[tokio::test]
async fn sqlite_trace_context_travels_in_process() {
    let (_dir, pool) = common::sqlite().await;
    let (_consumer_dir, consumer_db) = common::sqlite().await;
    context_travels_with_events(&pool, &consumer_db, &EventBus::in_process()).await;
}

#[tokio::test]
async fn postgres_trace_context_travels_over_redis() {
    let Some(url) = common::redis_url().await else {
        return;
    };
    let Some(db) = common::postgres().await else {
        return;
    };
    let (_consumer_dir, consumer_db) = common::sqlite().await;
    let options = switchyard_subgraph_kit::events::RedisBusOptions {
        stream: format!("switchyard:test:{}", uuid::Uuid::now_v7().simple()),
        ..Default::default()
    };
    let bus = EventBus::Redis(
        switchyard_subgraph_kit::events::RedisBus::connect(&url, options)
            .await
            .unwrap(),
    );
    context_travels_with_events(&db.pool, &consumer_db, &bus).await;
    if let EventBus::Redis(redis_bus) = &bus {
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let _: i64 = redis::cmd("DEL")
            .arg(redis_bus.stream())
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    db.drop_now().await;
}

#[tokio::test]
async fn an_outbox_made_before_trace_context_is_migrated_and_keeps_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let pool = switchyard_subgraph_kit::db::connect(
        &switchyard_subgraph_kit::db::sqlite_url(&dir.path().join("old.db")),
        2,
    )
    .await
    .unwrap();
    // The table as earlier versions made it, with an event waiting in it.
    sqlx::query(
        "CREATE TABLE switchyard_outbox (
            id TEXT PRIMARY KEY, event_type TEXT NOT NULL, aggregate_id TEXT NOT NULL,
            occurred_at BIGINT NOT NULL, payload TEXT NOT NULL, published_at BIGINT)",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO switchyard_outbox (id, event_type, aggregate_id, occurred_at, payload)
         VALUES ('0190c5a6-0000-7000-8000-000000000001', 'member.created', 'm1', 1, '{}')",
    )
    .execute(&pool)
    .await
    .unwrap();
    outbox::migrate(&pool).await.unwrap();
    outbox::migrate(&pool).await.unwrap();
    let waiting = outbox::unpublished(&pool, 10).await.unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].aggregate_id, "m1");
    assert_eq!(waiting[0].trace_parent, None);
}

/// The runner sends the spans of the last requests when serving stops. The test holds the
/// service's metrics (and so its tracer) past the runner's end, so the exporter's queue stays
/// open and nothing but that flush would send the waiting batch within the next second.
#[tokio::test]
async fn the_runner_exports_the_last_spans_before_it_returns() {
    use std::sync::Arc;

    use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema};
    use switchyard_subgraph_kit::server::{self, AlwaysReady};
    use switchyard_subgraph_kit::ServiceRunner;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_util::sync::CancellationToken;

    struct Query;
    #[Object]
    impl Query {
        async fn ping(&self) -> bool {
            true
        }
    }

    const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
    let receiver = OtlpReceiver::start().await.unwrap();
    let (_dir, pool) = common::sqlite().await;
    let runner = ServiceRunner::new("probe", pool, EventBus::in_process());
    runner
        .metrics()
        .trace_to(Some(receiver.endpoint()))
        .unwrap();
    let metrics = runner.metrics().clone();
    let schema = Schema::new(Query, EmptyMutation, EmptySubscription);
    let router = server::service_router(schema, Arc::new(AlwaysReady), &metrics);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let serving = tokio::spawn(runner.serve(listener, router, None, stop.clone()));

    let body = r#"{"query":"query Probe { ping }","operationName":"Probe"}"#;
    let request = format!(
        "POST /graphql HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         traceparent: 00-{TRACE}-b7ad6b7169203331-01\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    stop.cancel();
    serving.await.unwrap().unwrap();
    // No waiting: the span was sent before `serve` returned.
    let spans = receiver.spans();
    let span = spans
        .iter()
        .find(|s| s.trace_id == TRACE)
        .unwrap_or_else(|| panic!("the last request's span was not exported: {spans:#?}"));
    assert_eq!(span.name, "graphql Probe");
    assert_eq!(span.service_name, "switchyard-probe");
    drop(metrics);
}
