//! Measures the event path end to end: service transactions that enqueue events, the outbox
//! relay, and an idempotent consumer writing to its own database.
//!
//! `cargo run --release -p switchyard-subgraph-kit --example event_throughput -- [N] [redis-url]`
//! uses SQLite files in a temp dir for both databases and the in-process bus, or Redis Streams
//! when a URL is given.

use std::time::{Duration, Instant};

use sqlx::AnyConnection;
use switchyard_subgraph_kit::db;
use switchyard_subgraph_kit::events::{
    outbox, BoxError, Event, EventBus, EventConsumer, EventHandler, OutboxRelay, RedisBus,
    RedisBusOptions,
};

struct CountByType;

impl EventHandler for CountByType {
    async fn handle(&self, conn: &mut AnyConnection, event: &Event) -> Result<(), BoxError> {
        sqlx::query(
            "INSERT INTO counters (event_type, n) VALUES ($1, 1)
             ON CONFLICT (event_type) DO UPDATE SET n = counters.n + 1",
        )
        .bind(event.event_type.clone())
        .execute(conn)
        .await?;
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5_000);
    let redis_url = args.next();
    let dir = tempfile::tempdir()?;
    let service = db::connect(&db::sqlite_url(&dir.path().join("service.db")), 4).await?;
    let consumer_db = db::connect(&db::sqlite_url(&dir.path().join("consumer.db")), 4).await?;
    for pool in [&service, &consumer_db] {
        outbox::migrate(pool).await?;
    }
    sqlx::query("CREATE TABLE posts (id TEXT PRIMARY KEY)")
        .execute(&service)
        .await?;
    sqlx::query("CREATE TABLE counters (event_type TEXT PRIMARY KEY, n BIGINT NOT NULL)")
        .execute(&consumer_db)
        .await?;
    let bus = match &redis_url {
        Some(url) => {
            let options = RedisBusOptions {
                stream: format!("switchyard:bench:{}", uuid::Uuid::now_v7().simple()),
                ..RedisBusOptions::default()
            };
            EventBus::Redis(RedisBus::connect(url, options).await?)
        }
        None => EventBus::in_process(),
    };
    let mut subscription = bus.subscribe("analytics").await?;

    let started = Instant::now();
    for i in 0..n {
        let id = format!("post-{i}");
        let mut tx = service.begin().await?;
        sqlx::query("INSERT INTO posts (id) VALUES ($1)")
            .bind(id.clone())
            .execute(&mut *tx)
            .await?;
        outbox::enqueue(&mut *tx, &Event::new("post.created", id, i)?).await?;
        tx.commit().await?;
    }
    let enqueued = started.elapsed();

    let started = Instant::now();
    let relay = OutboxRelay::new(service.clone(), bus.clone()).batch_size(500);
    while relay.relay_once().await? > 0 {}
    let relayed = started.elapsed();

    let started = Instant::now();
    let consumer = EventConsumer::new(consumer_db.clone(), "analytics", CountByType)
        .batch_size(500)
        .wait(Duration::from_millis(100));
    let mut handled = 0;
    while handled < n {
        handled += consumer.run_batch(&mut subscription).await?;
    }
    let consumed = started.elapsed();

    let count: i64 = sqlx::query_scalar("SELECT n FROM counters WHERE event_type = 'post.created'")
        .fetch_one(&consumer_db)
        .await?;
    assert_eq!(count as usize, n);
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    println!(
        "bus={} events={n}\n  enqueue (1 tx each): {:>9.0} events/s\n  relay:               {:>9.0} events/s\n  consume (dedupe+tx): {:>9.0} events/s",
        if redis_url.is_some() { "redis" } else { "in-process" },
        rate(enqueued),
        rate(relayed),
        rate(consumed),
    );
    if let EventBus::Redis(redis_bus) = &bus {
        let client = redis::Client::open(redis_url.as_deref().unwrap_or_default())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        let _: i64 = redis::cmd("DEL")
            .arg(redis_bus.stream())
            .query_async(&mut conn)
            .await?;
    }
    Ok(())
}
