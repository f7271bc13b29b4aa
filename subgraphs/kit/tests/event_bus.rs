//! The event bus against real stores: outbox atomicity, relay delivery, crash recovery and
//! replay de-duplication, on SQLite and PostgreSQL, over the in-process bus and Redis Streams.

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap is the test failing, at that line"
)]

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::{applied, create_member, RecordingHandler};
use sqlx::{AnyConnection, AnyPool};
use switchyard_subgraph_kit::events::outbox;
use switchyard_subgraph_kit::events::{
    process_event, BoxError, Event, EventBus, EventConsumer, EventError, EventHandler, OutboxRelay,
    Processed, RedisBus, RedisBusOptions, Subscription,
};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_millis(50);

async fn redis_bus(claim_idle: Duration) -> Option<EventBus> {
    let url = common::redis_url().await?;
    let options = RedisBusOptions {
        stream: format!("switchyard:test:{}", uuid::Uuid::now_v7().simple()),
        claim_idle,
        ..RedisBusOptions::default()
    };
    Some(EventBus::Redis(
        RedisBus::connect(&url, options).await.unwrap(),
    ))
}

async fn cleanup(bus: &EventBus) {
    if let EventBus::Redis(redis_bus) = bus {
        let url = common::redis_url().await.unwrap();
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let _: i64 = redis::cmd("DEL")
            .arg(redis_bus.stream())
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}

/// Runs `test` on two fresh PostgreSQL databases (a service's and a consumer's) and a Redis
/// bus with a 30 s claim timeout, then drops them all; skips when a server is missing.
async fn on_postgres_over_redis<F, T>(test: F)
where
    F: FnOnce(AnyPool, AnyPool, EventBus) -> T,
    T: std::future::Future<Output = ()>,
{
    let Some(bus) = redis_bus(Duration::from_secs(30)).await else {
        return;
    };
    let Some(service) = common::postgres().await else {
        return;
    };
    let Some(consumer_db) = common::postgres().await else {
        return;
    };
    test(service.pool.clone(), consumer_db.pool.clone(), bus.clone()).await;
    service.drop_now().await;
    consumer_db.drop_now().await;
    cleanup(&bus).await;
}

/// Pulls batches until `consumer_pool` has applied `expected` events (or 10 s pass).
async fn consume_until(
    consumer: &EventConsumer<RecordingHandler>,
    subscription: &mut Subscription,
    consumer_pool: &AnyPool,
    expected: usize,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while applied(consumer_pool).await.len() < expected {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {:?} applied, expected {expected}",
            applied(consumer_pool).await
        );
        consumer.run_batch(subscription).await.unwrap();
    }
}

// ---- the outbox is written in the service's transaction -------------------------------------

async fn outbox_is_transactional(pool: &AnyPool) {
    create_member(pool, "rolled-back", false).await;
    assert!(outbox::unpublished(pool, 10).await.unwrap().is_empty());
    let members: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM members")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(members, 0);

    let event = create_member(pool, "committed", true).await;
    assert_eq!(outbox::unpublished(pool, 10).await.unwrap(), vec![event]);
}

#[tokio::test]
async fn sqlite_outbox_is_transactional() {
    let (_dir, pool) = common::sqlite().await;
    outbox_is_transactional(&pool).await;
}

#[tokio::test]
async fn postgres_outbox_is_transactional() {
    let Some(db) = common::postgres().await else {
        return;
    };
    outbox_is_transactional(&db.pool).await;
    db.drop_now().await;
}

/// A copy repeated (after a crash, or by a second replica) stays one row, even once published.
async fn enqueue_once_keeps_one_row(pool: &AnyPool) {
    let event = switchyard_subgraph_kit::Event::new(
        "member.created",
        "m-once",
        serde_json::json!({"n": 1}),
    )
    .unwrap();
    assert!(outbox::enqueue_once(pool, &event).await.unwrap());
    assert!(!outbox::enqueue_once(pool, &event).await.unwrap());
    assert_eq!(
        outbox::unpublished(pool, 10).await.unwrap(),
        vec![event.clone()]
    );
    sqlx::query("UPDATE switchyard_outbox SET published_at = 1 WHERE id = $1")
        .bind(event.id.to_string())
        .execute(pool)
        .await
        .unwrap();
    assert!(!outbox::enqueue_once(pool, &event).await.unwrap());
    assert!(
        outbox::unpublished(pool, 10).await.unwrap().is_empty(),
        "a published event is not queued again"
    );
}

#[tokio::test]
async fn sqlite_enqueue_once_keeps_one_row() {
    let (_dir, pool) = common::sqlite().await;
    enqueue_once_keeps_one_row(&pool).await;
}

#[tokio::test]
async fn postgres_enqueue_once_keeps_one_row() {
    let Some(db) = common::postgres().await else {
        return;
    };
    enqueue_once_keeps_one_row(&db.pool).await;
    db.drop_now().await;
}

// ---- the relay moves committed events to the bus ---------------------------------------------

async fn relay_delivers(pool: &AnyPool, bus: &EventBus) {
    let mut subscription = bus.subscribe("analytics").await.unwrap();
    let mut sent = Vec::new();
    for id in ["m1", "m2", "m3"] {
        sent.push(create_member(pool, id, true).await);
    }
    let relay = OutboxRelay::new(pool.clone(), bus.clone()).batch_size(2);
    assert_eq!(relay.relay_once().await.unwrap(), 2);
    assert_eq!(relay.relay_once().await.unwrap(), 1);
    assert_eq!(
        relay.relay_once().await.unwrap(),
        0,
        "published rows are not sent again"
    );

    let got = subscription.next_batch(10, WAIT).await.unwrap();
    let events: Vec<_> = got.iter().map(|d| d.event.clone()).collect();
    assert_eq!(events, sent, "delivered in commit order, envelopes intact");
    for d in &got {
        subscription.ack(d).await.unwrap();
    }

    // The background relay picks up a new commit as soon as it is woken.
    let shutdown = CancellationToken::new();
    // (No start-up replay: this bus did not die, so the three would arrive again.)
    let running = OutboxRelay::new(pool.clone(), bus.clone())
        .poll_interval(Duration::from_secs(60))
        .replay_window(Duration::ZERO);
    let task = running.spawn(shutdown.clone());
    let fresh = create_member(pool, "m4", true).await;
    running.wake();
    let got = subscription
        .next_batch(10, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].event, fresh);
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("relay stops on shutdown")
        .unwrap();

    // Published history can be pruned.
    assert_eq!(
        outbox::prune_published(pool, Duration::ZERO).await.unwrap(),
        4
    );
}

#[tokio::test]
async fn sqlite_relay_delivers_in_process() {
    let (_dir, pool) = common::sqlite().await;
    relay_delivers(&pool, &EventBus::in_process()).await;
}

#[tokio::test]
async fn postgres_relay_delivers_in_process() {
    let Some(db) = common::postgres().await else {
        return;
    };
    relay_delivers(&db.pool, &EventBus::in_process()).await;
    db.drop_now().await;
}

#[tokio::test]
async fn sqlite_relay_delivers_over_redis() {
    let Some(bus) = redis_bus(Duration::from_secs(30)).await else {
        return;
    };
    let (_dir, pool) = common::sqlite().await;
    relay_delivers(&pool, &bus).await;
    cleanup(&bus).await;
}

// ---- a consumer killed mid-batch loses nothing on restart ------------------------------------

async fn crash_mid_batch_then_restart(service: &AnyPool, consumer_db: &AnyPool, bus: &EventBus) {
    let ids: Vec<String> = (1..=6).map(|n| format!("m{n}")).collect();
    for id in &ids {
        create_member(service, id, true).await;
    }
    OutboxRelay::new(service.clone(), bus.clone())
        .relay_once()
        .await
        .unwrap();

    // First incarnation: handles two events, then hangs inside the third and is killed.
    let hanging = RecordingHandler {
        hang_after: Some(2),
        ..RecordingHandler::default()
    };
    let calls = hanging.calls.clone();
    let mut subscription = bus.subscribe_as("analytics", "analytics-1").await.unwrap();
    let consumer = EventConsumer::new(consumer_db.clone(), "analytics", hanging).wait(WAIT);
    let task = tokio::spawn(async move {
        loop {
            consumer.run_batch(&mut subscription).await.unwrap();
        }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while calls.load(Ordering::SeqCst) < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "consumer never got going"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    task.abort();
    let _ = task.await;
    assert_eq!(applied(consumer_db).await, ["m1", "m2"]);

    // Restart under the same member name: the rest arrives, nothing twice.
    let mut subscription = bus.subscribe_as("analytics", "analytics-1").await.unwrap();
    let consumer = EventConsumer::new(
        consumer_db.clone(),
        "analytics",
        RecordingHandler::default(),
    )
    .wait(WAIT);
    consume_until(&consumer, &mut subscription, consumer_db, ids.len()).await;
    assert!(subscription.next_batch(10, WAIT).await.unwrap().is_empty());
    assert_eq!(applied(consumer_db).await, ids);
}

#[tokio::test]
async fn sqlite_consumer_crash_then_restart_in_process() {
    let (_a, service) = common::sqlite().await;
    let (_b, consumer_db) = common::sqlite().await;
    crash_mid_batch_then_restart(&service, &consumer_db, &EventBus::in_process()).await;
}

#[tokio::test]
async fn postgres_consumer_crash_then_restart_over_redis() {
    on_postgres_over_redis(|service, consumer_db, bus| async move {
        crash_mid_batch_then_restart(&service, &consumer_db, &bus).await;
    })
    .await;
}

// ---- shutdown mid-batch: the event in hand finishes, the rest go back ------------------------

/// A [`RecordingHandler`] that stops inside the handler for `gated` until released (or forever
/// when `release` is `None`).
struct GatedHandler {
    gated: &'static str,
    entered: Arc<Notify>,
    release: Option<Arc<Semaphore>>,
    records: RecordingHandler,
}

impl EventHandler for GatedHandler {
    async fn handle(&self, conn: &mut AnyConnection, event: &Event) -> Result<(), BoxError> {
        if event.aggregate_id == self.gated {
            self.entered.notify_one();
            match &self.release {
                Some(release) => drop(release.acquire().await?),
                None => std::future::pending::<()>().await,
            }
        }
        self.records.handle(conn, event).await
    }
}

/// Three events; shutdown is asked for while the consumer is inside the second. With `stuck`
/// the handler never returns and the grace runs out; otherwise it is released after the
/// cancel. Returns what was applied and what the same member is handed when it comes back.
async fn shutdown_inside_an_event(
    service: &AnyPool,
    consumer_db: &AnyPool,
    bus: &EventBus,
    stuck: bool,
) -> (Vec<String>, Vec<String>) {
    for id in ["m1", "m2", "m3"] {
        create_member(service, id, true).await;
    }
    OutboxRelay::new(service.clone(), bus.clone())
        .relay_once()
        .await
        .unwrap();
    let entered = Arc::new(Notify::new());
    let release = Arc::new(Semaphore::new(0));
    let handler = GatedHandler {
        gated: "m2",
        entered: entered.clone(),
        release: (!stuck).then(|| release.clone()),
        records: RecordingHandler::default(),
    };
    let subscription = bus.subscribe_as("analytics", "analytics-1").await.unwrap();
    let consumer = EventConsumer::new(consumer_db.clone(), "analytics", handler)
        .wait(WAIT)
        .shutdown_grace(Duration::from_millis(200));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(consumer.run(subscription, shutdown.clone()));
    tokio::time::timeout(Duration::from_secs(10), entered.notified())
        .await
        .expect("the consumer reached the second event");
    shutdown.cancel();
    // Let a consumer that would drop the event at once do so before it is released.
    tokio::time::sleep(Duration::from_millis(50)).await;
    release.add_permits(1);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the consumer stops on shutdown")
        .unwrap();

    let mut subscription = bus.subscribe_as("analytics", "analytics-1").await.unwrap();
    let mut handed = Vec::new();
    loop {
        let batch = subscription.next_batch(10, WAIT).await.unwrap();
        if batch.is_empty() {
            break;
        }
        for delivery in batch {
            // Redis hands a member its pending entries until they are acknowledged.
            subscription.ack(&delivery).await.unwrap();
            handed.push(delivery.event.aggregate_id);
        }
    }
    handed.sort();
    (applied(consumer_db).await, handed)
}

#[tokio::test]
async fn sqlite_shutdown_inside_an_event_finishes_it_and_hands_back_the_rest() {
    let (_a, service) = common::sqlite().await;
    let (_b, consumer_db) = common::sqlite().await;
    let bus = EventBus::in_process();
    let (applied, handed) = shutdown_inside_an_event(&service, &consumer_db, &bus, false).await;
    assert_eq!(applied, ["m1", "m2"], "the event in hand committed");
    assert_eq!(
        handed,
        ["m3"],
        "and was acknowledged; the one not started came back"
    );
}

#[tokio::test]
async fn sqlite_shutdown_gives_up_a_stuck_event_after_the_grace() {
    let (_a, service) = common::sqlite().await;
    let (_b, consumer_db) = common::sqlite().await;
    let bus = EventBus::in_process();
    let (applied, handed) = shutdown_inside_an_event(&service, &consumer_db, &bus, true).await;
    assert_eq!(applied, ["m1"]);
    assert_eq!(handed, ["m2", "m3"], "the stuck event is redelivered");
}

#[tokio::test]
async fn postgres_shutdown_inside_an_event_finishes_it_over_redis() {
    on_postgres_over_redis(|service, consumer_db, bus| async move {
        let (applied, handed) = shutdown_inside_an_event(&service, &consumer_db, &bus, false).await;
        assert_eq!(applied, ["m1", "m2"], "the event in hand committed");
        assert_eq!(
            handed,
            ["m3"],
            "acknowledged; the one not started came back"
        );
    })
    .await;
}

// ---- an in-process bus dies with its process; the relay replays recent events at start -------

#[tokio::test]
async fn sqlite_in_process_events_lost_with_the_process_are_replayed_at_start() {
    let (_a, service) = common::sqlite().await;
    let (_b, consumer_db) = common::sqlite().await;
    let first = create_member(&service, "m1", true).await;
    create_member(&service, "m2", true).await;
    create_member(&service, "m3", true).await;
    // The first process published all three and its consumer applied only the first before
    // the process was killed: the bus (memory) and its two undelivered events are gone.
    let dead_bus = EventBus::in_process();
    let relay = OutboxRelay::new(service.clone(), dead_bus.clone());
    assert_eq!(relay.relay_once().await.unwrap(), 3);
    process_event(
        &consumer_db,
        "analytics",
        &first,
        &RecordingHandler::default(),
    )
    .await
    .unwrap();
    drop((relay, dead_bus));
    // An event published long ago is outside the replay window.
    let old = create_member(&service, "m0", true).await;
    sqlx::query("UPDATE switchyard_outbox SET published_at = 1 WHERE id = $1")
        .bind(old.id.to_string())
        .execute(&service)
        .await
        .unwrap();

    // The next process: without replay the events would never arrive...
    let bus = EventBus::in_process();
    let mut subscription = bus.subscribe("analytics").await.unwrap();
    let silent = OutboxRelay::new(service.clone(), bus.clone()).replay_window(Duration::ZERO);
    assert_eq!(silent.replay_recent().await.unwrap(), 0);
    assert!(subscription.next_batch(10, WAIT).await.unwrap().is_empty());
    // ...with it (the in-process default) the relay republishes them as it starts, and the
    // consumer skips the one it had already applied.
    let shutdown = CancellationToken::new();
    let relay_task = OutboxRelay::new(service.clone(), bus.clone()).spawn(shutdown.clone());
    let consumer = EventConsumer::new(
        consumer_db.clone(),
        "analytics",
        RecordingHandler::default(),
    )
    .wait(WAIT);
    consume_until(&consumer, &mut subscription, &consumer_db, 3).await;
    shutdown.cancel();
    relay_task.await.unwrap();
    assert_eq!(applied(&consumer_db).await, ["m1", "m2", "m3"]);
    // Redis keeps what it was handed: no replay there.
    if let Some(redis) = redis_bus(Duration::from_secs(30)).await {
        let relay = OutboxRelay::new(service.clone(), redis.clone());
        assert_eq!(relay.replay_recent().await.unwrap(), 0);
        cleanup(&redis).await;
    }
}

// ---- replays are absorbed by the consumer's de-duplication -----------------------------------

async fn replays_are_not_processed_twice(service: &AnyPool, consumer_db: &AnyPool, bus: &EventBus) {
    let mut subscription = bus.subscribe("analytics").await.unwrap();
    let first = create_member(service, "m1", true).await;
    create_member(service, "m2", true).await;
    let relay = OutboxRelay::new(service.clone(), bus.clone());
    assert_eq!(relay.relay_once().await.unwrap(), 2);
    // The relay crashed after publishing but before recording it: it publishes again.
    sqlx::query("UPDATE switchyard_outbox SET published_at = NULL")
        .execute(service)
        .await
        .unwrap();
    assert_eq!(relay.relay_once().await.unwrap(), 2);

    let consumer = EventConsumer::new(
        consumer_db.clone(),
        "analytics",
        RecordingHandler::default(),
    )
    .wait(WAIT);
    let mut handled = 0;
    for _ in 0..4 {
        handled += consumer.run_batch(&mut subscription).await.unwrap();
    }
    assert_eq!(handled, 2, "four deliveries, two events");
    assert_eq!(applied(consumer_db).await, ["m1", "m2"]);

    let handler = RecordingHandler::default();
    let again = process_event(consumer_db, "analytics", &first, &handler)
        .await
        .unwrap();
    assert_eq!(again, Processed::Duplicate);
    assert_eq!(
        handler.calls.load(Ordering::SeqCst),
        0,
        "handler not run for a replay"
    );
    // De-duplication is per group: another service's consumer still gets it.
    let other = process_event(consumer_db, "search", &first, &handler)
        .await
        .unwrap();
    assert_eq!(other, Processed::Handled);

    // Records are kept until pruned; pruning with a generous window keeps them.
    let kept = outbox::prune_processed(consumer_db, Duration::from_secs(3600));
    assert_eq!(kept.await.unwrap(), 0);
    let pruned = outbox::prune_processed(consumer_db, Duration::ZERO);
    assert_eq!(pruned.await.unwrap(), 3);
}

#[tokio::test]
async fn sqlite_replays_are_not_processed_twice_in_process() {
    let (_a, service) = common::sqlite().await;
    let (_b, consumer_db) = common::sqlite().await;
    replays_are_not_processed_twice(&service, &consumer_db, &EventBus::in_process()).await;
}

#[tokio::test]
async fn postgres_replays_are_not_processed_twice_over_redis() {
    on_postgres_over_redis(|service, consumer_db, bus| async move {
        replays_are_not_processed_twice(&service, &consumer_db, &bus).await;
    })
    .await;
}

// ---- a failing handler rolls back and is retried ---------------------------------------------

#[tokio::test]
async fn sqlite_failed_handler_leaves_no_trace_and_is_redelivered() {
    let (_a, service) = common::sqlite().await;
    let (_b, consumer_db) = common::sqlite().await;
    let bus = EventBus::in_process();
    let mut subscription = bus.subscribe("analytics").await.unwrap();
    let rejected = create_member(&service, "reject", true).await;
    OutboxRelay::new(service.clone(), bus.clone())
        .relay_once()
        .await
        .unwrap();

    let handler = RecordingHandler::default();
    let err = process_event(&consumer_db, "analytics", &rejected, &handler)
        .await
        .unwrap_err();
    assert!(matches!(err, EventError::Handler(_)), "{err}");
    let claims: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM switchyard_processed_events")
        .fetch_one(&consumer_db)
        .await
        .unwrap();
    assert_eq!(
        claims, 0,
        "the de-duplication claim rolled back with the handler"
    );

    let consumer = EventConsumer::new(consumer_db.clone(), "analytics", handler)
        .wait(WAIT)
        .retry_backoff(Duration::ZERO);
    assert_eq!(consumer.run_batch(&mut subscription).await.unwrap(), 0);
    let retried = subscription.next_batch(10, WAIT).await.unwrap();
    assert_eq!(retried.len(), 1, "nacked event is delivered again");
    assert_eq!(retried[0].event, rejected);
}

// ---- Redis consumer groups -------------------------------------------------------------------

#[tokio::test]
async fn redis_group_members_split_the_stream_and_groups_each_see_all() {
    let Some(bus) = redis_bus(Duration::from_secs(30)).await else {
        return;
    };
    let mut first = bus.subscribe_as("analytics", "a-1").await.unwrap();
    let mut second = bus.subscribe_as("analytics", "a-2").await.unwrap();
    let mut search = bus.subscribe_as("search", "s-1").await.unwrap();
    let mut sent = Vec::new();
    for n in 0..10 {
        let event =
            switchyard_subgraph_kit::Event::new("post.created", format!("p{n}"), n).unwrap();
        bus.publish(&event).await.unwrap();
        sent.push(event);
    }
    let one = first.next_batch(5, WAIT).await.unwrap();
    let two = second.next_batch(10, WAIT).await.unwrap();
    assert_eq!(one.len(), 5);
    assert_eq!(two.len(), 5);
    let mut both: Vec<_> = one.iter().chain(&two).map(|d| d.event.clone()).collect();
    both.sort_by_key(|e| e.id);
    assert_eq!(both, sent, "each event to exactly one member of the group");
    assert_eq!(search.next_batch(20, WAIT).await.unwrap().len(), 10);
    for d in &one {
        first.ack(d).await.unwrap();
    }
    for d in &two {
        second.ack(d).await.unwrap();
    }
    assert!(first.next_batch(10, WAIT).await.unwrap().is_empty());
    cleanup(&bus).await;
}

#[tokio::test]
async fn redis_entries_of_a_dead_member_are_claimed_by_another() {
    // Long enough that a loaded machine does not reach it between the first two reads below.
    let Some(bus) = redis_bus(Duration::from_secs(1)).await else {
        return;
    };
    let mut doomed = bus.subscribe_as("analytics", "doomed").await.unwrap();
    for n in 0..4 {
        let event =
            switchyard_subgraph_kit::Event::new("post.created", format!("p{n}"), n).unwrap();
        bus.publish(&event).await.unwrap();
    }
    let batch = doomed.next_batch(10, WAIT).await.unwrap();
    assert_eq!(batch.len(), 4);
    doomed.ack(&batch[0]).await.unwrap();
    drop(doomed);

    let mut survivor = bus.subscribe_as("analytics", "survivor").await.unwrap();
    // Before the claim timeout, the dead member's entries are still its own.
    assert!(survivor.next_batch(10, WAIT).await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let claimed = survivor.next_batch(10, WAIT).await.unwrap();
    let ids: Vec<_> = claimed
        .iter()
        .map(|d| d.event.aggregate_id.clone())
        .collect();
    assert_eq!(ids, ["p1", "p2", "p3"]);
    cleanup(&bus).await;
}

/// Kills the Redis client connections whose name contains `needle` (as a Redis restart would).
async fn kill_connections(needle: &str) -> usize {
    let url = common::redis_url().await.unwrap();
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut killed = 0;
    for line in list.lines().filter(|l| l.contains(needle)) {
        let id = line
            .split(' ')
            .find_map(|field| field.strip_prefix("id="))
            .unwrap();
        let _: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(id)
            .query_async(&mut conn)
            .await
            .unwrap();
        killed += 1;
    }
    killed
}

/// Calls `next_batch` until it yields something, tolerating errors from a broken connection.
async fn next_non_empty(subscription: &mut Subscription) -> Vec<switchyard_subgraph_kit::Delivery> {
    let mut errors = 0;
    for _ in 0..20 {
        match subscription.next_batch(10, WAIT).await {
            Ok(batch) if !batch.is_empty() => return batch,
            Ok(_) => {}
            Err(_) => errors += 1,
        }
    }
    panic!("nothing delivered ({errors} errors)");
}

#[tokio::test]
async fn redis_bus_recovers_from_dropped_connections_and_a_lost_group() {
    let Some(bus) = redis_bus(Duration::from_secs(30)).await else {
        return;
    };
    let EventBus::Redis(redis_bus_ref) = &bus else {
        unreachable!()
    };
    let stream = redis_bus_ref.stream().to_owned();
    let mut subscription = bus.subscribe_as("analytics", "a-1").await.unwrap();
    let event =
        |n: usize| switchyard_subgraph_kit::Event::new("post.created", format!("p{n}"), n).unwrap();

    // Both the publisher's and the member's connections die.
    assert_eq!(kill_connections(&stream).await, 2);
    let first = event(1);
    if bus.publish(&first).await.is_err() {
        bus.publish(&first).await.expect("publisher reconnects");
    }
    let got = next_non_empty(&mut subscription).await;
    assert_eq!(got[0].event, first);
    subscription.ack(&got[0]).await.unwrap();

    // Redis lost everything (restart without persistence): the group is re-created.
    let url = common::redis_url().await.unwrap();
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: i64 = redis::cmd("DEL")
        .arg(&stream)
        .query_async(&mut conn)
        .await
        .unwrap();
    let second = event(2);
    bus.publish(&second).await.unwrap();
    let got = next_non_empty(&mut subscription).await;
    assert_eq!(got[0].event, second);
    assert!(bus.ping().await.is_ok());
    cleanup(&bus).await;
}

// ---- replicas relaying one PostgreSQL outbox do not double-publish ---------------------------

#[tokio::test]
async fn postgres_concurrent_relays_publish_each_row_once() {
    let Some(db) = common::postgres().await else {
        return;
    };
    let bus = EventBus::in_process();
    let mut subscription = bus.subscribe("analytics").await.unwrap();
    for n in 0..40 {
        create_member(&db.pool, &format!("m{n:02}"), true).await;
    }
    let relays: Vec<_> = (0..3)
        .map(|_| OutboxRelay::new(db.pool.clone(), bus.clone()).batch_size(5))
        .collect();
    let mut tasks = Vec::new();
    for relay in relays {
        tasks.push(tokio::spawn(async move {
            let mut total = 0;
            loop {
                let n = relay.relay_once().await.unwrap();
                if n == 0 {
                    return total;
                }
                total += n;
            }
        }));
    }
    let mut published = 0;
    for task in tasks {
        published += task.await.unwrap();
    }
    assert_eq!(published, 40);
    let mut ids = Vec::new();
    loop {
        let batch = subscription.next_batch(100, WAIT).await.unwrap();
        if batch.is_empty() {
            break;
        }
        ids.extend(batch.into_iter().map(|d| d.event.aggregate_id));
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 40, "every row published exactly once");
    db.drop_now().await;
}

// ---- the whole flow with background tasks, stopped by one token ------------------------------

#[tokio::test]
async fn sqlite_background_relay_and_consumer_deliver_and_stop_on_shutdown() {
    let (_a, service) = common::sqlite().await;
    let (_b, consumer_db) = common::sqlite().await;
    let bus = EventBus::in_process();
    let shutdown = CancellationToken::new();
    let relay =
        OutboxRelay::new(service.clone(), bus.clone()).poll_interval(Duration::from_millis(20));
    let relay_task = relay.spawn(shutdown.clone());
    let subscription = bus.subscribe("analytics").await.unwrap();
    let consumer = EventConsumer::new(
        consumer_db.clone(),
        "analytics",
        RecordingHandler::default(),
    )
    .wait(WAIT);
    let consumer_task = tokio::spawn(consumer.run(subscription, shutdown.clone()));

    for id in ["m1", "m2", "m3"] {
        create_member(&service, id, true).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while applied(&consumer_db).await.len() < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "events did not flow"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(applied(&consumer_db).await, ["m1", "m2", "m3"]);

    shutdown.cancel();
    for task in [relay_task, consumer_task] {
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("background task stops on shutdown")
            .unwrap();
    }
}
