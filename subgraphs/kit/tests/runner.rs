//! The service runner every service runs through: it prunes the event tables, rejoins its
//! consumer group under a stable name, and stops everything together.

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap is the test failing, at that line"
)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{applied, create_member, RecordingHandler};
use sqlx::AnyPool;
use switchyard_subgraph_kit::events::RedisBusOptions;
use switchyard_subgraph_kit::events::{EventBus, EventConsumer, OutboxRelay, RedisBus};
use switchyard_subgraph_kit::{db, ServiceRunner};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const DAY_MICROS: i64 = 24 * 3600 * 1_000_000;

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

async fn count(pool: &AnyPool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Polls `check` until it holds, failing after 10 s with `what`.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts `runner` on a free loopback port with an empty router; returns its task.
async fn start(
    runner: ServiceRunner,
    shutdown: &CancellationToken,
) -> tokio::task::JoinHandle<std::io::Result<()>> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shutdown = shutdown.clone();
    tokio::spawn(runner.serve(listener, axum::Router::new(), None, shutdown))
}

async fn insert_outbox_row(pool: &AnyPool, id: &str, published_at: Option<i64>) {
    sqlx::query(
        "INSERT INTO switchyard_outbox (id, event_type, aggregate_id, occurred_at, payload,
         published_at) VALUES ($1, 'member.created', 'x', $2, '{}', $3)",
    )
    .bind(id.to_owned())
    .bind(now_micros())
    .bind(published_at)
    .execute(pool)
    .await
    .unwrap();
}

async fn insert_processed(pool: &AnyPool, event_id: &str, processed_at: i64) {
    sqlx::query(
        "INSERT INTO switchyard_processed_events (consumer_group, event_id, processed_at)
         VALUES ('analytics', $1, $2)",
    )
    .bind(event_id.to_owned())
    .bind(processed_at)
    .execute(pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn runner_prunes_old_outbox_rows_and_processed_records_at_start_and_stops_cleanly() {
    let (_dir, pool) = common::sqlite().await;
    let old = now_micros() - 40 * DAY_MICROS;
    let recent = now_micros() - DAY_MICROS;
    // Ids sort before any UUID v7 the test creates, and before each other in age order.
    insert_outbox_row(&pool, "0-old-published", Some(old)).await;
    insert_outbox_row(&pool, "1-recent-published", Some(recent)).await;
    insert_processed(&pool, "0-old", old).await;
    insert_processed(&pool, "1-recent", recent).await;

    let bus = EventBus::in_process();
    let mut runner = ServiceRunner::new("analytics", pool.clone(), bus.clone());
    runner.relay(OutboxRelay::new(pool.clone(), bus.clone()));
    runner
        .consumer(EventConsumer::new(
            pool.clone(),
            "analytics",
            RecordingHandler::default(),
        ))
        .await
        .unwrap();
    let stop_seen = CancellationToken::new();
    let seen = stop_seen.clone();
    runner.task("extra", move |stop| async move {
        stop.cancelled().await;
        seen.cancel();
    });
    let shutdown = CancellationToken::new();
    let task = start(runner, &shutdown).await;

    // Pruned at start, not an hour later.
    eventually("old rows pruned", || async {
        count(&pool, "SELECT COUNT(*) FROM switchyard_outbox").await == 1
            && count(&pool, "SELECT COUNT(*) FROM switchyard_processed_events").await == 1
    })
    .await;
    let kept: String = sqlx::query_scalar("SELECT id FROM switchyard_outbox")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(kept, "1-recent-published", "only rows past retention go");
    let kept: String = sqlx::query_scalar("SELECT event_id FROM switchyard_processed_events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(kept, "1-recent");

    // The relay and the consumer run: an event goes from outbox to handler.
    create_member(&pool, "m1", true).await;
    eventually("event consumed", || async {
        applied(&pool).await == ["m1"]
    })
    .await;

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("runner stops within 10 s")
        .unwrap()
        .unwrap();
    assert!(stop_seen.is_cancelled(), "extra tasks are stopped too");
    assert!(pool.is_closed(), "the runner closes the pool it ran on");
}

#[tokio::test]
async fn runner_relays_what_the_last_requests_committed_before_it_returns() {
    let (_dir, pool) = common::sqlite().await;
    let bus = EventBus::in_process();
    let mut subscription = bus.subscribe("observer").await.unwrap();
    let mut runner = ServiceRunner::new("auth", pool.clone(), bus.clone());
    // A relay that would not look again for an hour: only the shutdown pass can send it.
    runner.relay(
        OutboxRelay::new(pool.clone(), bus.clone()).poll_interval(Duration::from_secs(3600)),
    );
    let shutdown = CancellationToken::new();
    let task = start(runner, &shutdown).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let event = create_member(&pool, "late", true).await;
    shutdown.cancel();
    task.await.unwrap().unwrap();
    let batch = subscription
        .next_batch(10, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(
        batch.iter().map(|d| d.event.id).collect::<Vec<_>>(),
        [event.id]
    );
}

async fn redis_bus() -> Option<(EventBus, String)> {
    let url = common::redis_url().await?;
    let options = RedisBusOptions {
        stream: format!("switchyard:test:{}", uuid::Uuid::now_v7().simple()),
        // Far longer than the test: only the member's own re-read can bring its events back.
        claim_idle: Duration::from_secs(3600),
        ..RedisBusOptions::default()
    };
    let bus = RedisBus::connect(&url, options).await.unwrap();
    Some((EventBus::Redis(bus), url))
}

async fn redis_query<T: redis::FromRedisValue>(url: &str, cmd: &redis::Cmd) -> T {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    cmd.query_async(&mut conn).await.unwrap()
}

#[tokio::test]
async fn restarted_runner_takes_back_its_pending_events_under_the_same_member_name() {
    let Some((bus, url)) = redis_bus().await else {
        return;
    };
    let EventBus::Redis(redis_bus) = &bus else {
        unreachable!()
    };
    let stream = redis_bus.stream().to_owned();
    let (dir, pool) = common::sqlite().await;
    let ids = ["m1", "m2", "m3"];
    for id in ids {
        create_member(&pool, id, true).await;
    }

    // First run: the consumer takes all three, applies one and hangs in the second; then the
    // instance stops with two events handed to it and unacknowledged.
    let hanging = RecordingHandler {
        hang_after: Some(1),
        ..RecordingHandler::default()
    };
    let calls = hanging.calls.clone();
    let mut runner = ServiceRunner::new("analytics", pool.clone(), bus.clone());
    let member = runner.member_name().to_owned();
    assert!(member.starts_with("analytics-"), "{member}");
    runner.relay(OutboxRelay::new(pool.clone(), bus.clone()));
    runner
        .consumer(EventConsumer::new(pool.clone(), "analytics", hanging))
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let task = start(runner, &shutdown).await;
    eventually("consumer stuck in its second event", || async {
        calls.load(Ordering::SeqCst) >= 2
    })
    .await;
    shutdown.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(applied(&common_pool(&dir).await).await, ["m1"]);

    // Second run, a new process for all it knows: same member name, so the two come back at
    // once (the claim timeout is an hour), and the group still has one member.
    let pool = common_pool(&dir).await;
    let mut runner = ServiceRunner::new("analytics", pool.clone(), bus.clone());
    assert_eq!(runner.member_name(), member);
    runner
        .consumer(EventConsumer::new(
            pool.clone(),
            "analytics",
            RecordingHandler::default(),
        ))
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let task = start(runner, &shutdown).await;
    eventually("pending events taken back", || async {
        applied(&pool).await == ids
    })
    .await;
    let mut info = redis::cmd("XINFO");
    info.arg("CONSUMERS").arg(&stream).arg("analytics");
    let members: Vec<std::collections::HashMap<String, redis::Value>> =
        redis_query(&url, &info).await;
    assert_eq!(members.len(), 1, "one member, not one per start");
    shutdown.cancel();
    task.await.unwrap().unwrap();
    let _: i64 = redis_query(&url, redis::cmd("DEL").arg(&stream)).await;

    // A configured name wins over the host-derived one.
    let (_other, pool) = common::sqlite().await;
    let runner =
        ServiceRunner::new("chat", pool, EventBus::in_process()).consumer_name(Some("chat-7"));
    assert_eq!(runner.member_name(), "chat-7");
}

/// A new pool on the test's SQLite file (the runner closed the previous one).
async fn common_pool(dir: &tempfile::TempDir) -> AnyPool {
    db::connect(&db::sqlite_url(&dir.path().join("service.db")), 4)
        .await
        .unwrap()
}
