//! What every service inherits from the kit's runner, checked on each of the five: published
//! outbox rows and de-duplication records past their retention are pruned when the service
//! starts (and hourly after), recent ones kept.

use crate::common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::start_stack;
use sqlx::AnyPool;
use switchyard::stack::{service_data_dir, SERVICES};

/// Services that publish events (run an outbox relay).
const PUBLISHERS: [&str; 4] = ["auth", "profile", "content", "chat"];
/// Services that consume events (keep de-duplication records).
const CONSUMERS: [&str; 4] = ["profile", "content", "chat", "analytics"];

const DAY_MICROS: i64 = 24 * 3600 * 1_000_000;

fn now_micros() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(since.as_micros()).unwrap()
}

/// The service's SQLite file: the one `.db` file in its data directory.
async fn open_service_db(root: &std::path::Path, service: &str) -> AnyPool {
    let dir = service_data_dir(root, service);
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "db"))
        .collect();
    assert_eq!(files.len(), 1, "{service}: one database file in {dir:?}");
    sqlx::any::install_default_drivers();
    sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(&format!("sqlite://{}", files[0].display()))
        .await
        .unwrap()
}

async fn count(pool: &AnyPool, table: &str, id_column: &str, id: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM {table} WHERE {id_column} = $1"
    )))
    .bind(id.to_owned())
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn every_service_prunes_its_event_tables_when_it_starts() {
    let mut test = start_stack(|_| {}).await;
    let root = test.dir.path().to_owned();
    let old = now_micros() - 40 * DAY_MICROS;
    let recent = now_micros() - DAY_MICROS;
    for service in SERVICES {
        test.stack.stop_service(service).await.unwrap();
        let pool = open_service_db(&root, service).await;
        for (id, at) in [("old", old), ("recent", recent)] {
            sqlx::query(
                "INSERT INTO switchyard_outbox (id, event_type, aggregate_id, occurred_at,
                 payload, published_at) VALUES ($1, 'test.event', 'x', $2, '{}', $2)",
            )
            .bind(format!("{id}-outbox"))
            .bind(at)
            .execute(&pool)
            .await
            .unwrap();
            sqlx::query(
                "INSERT INTO switchyard_processed_events (consumer_group, event_id,
                 processed_at) VALUES ('test', $1, $2)",
            )
            .bind(format!("{id}-processed"))
            .bind(at)
            .execute(&pool)
            .await
            .unwrap();
        }
        pool.close().await;
        test.stack.restart_service(service).await.unwrap();

        let pool = open_service_db(&root, service).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let outbox_old = count(&pool, "switchyard_outbox", "id", "old-outbox").await;
            let processed_old = count(
                &pool,
                "switchyard_processed_events",
                "event_id",
                "old-processed",
            )
            .await;
            let outbox_done = !PUBLISHERS.contains(&service) || outbox_old == 0;
            let processed_done = !CONSUMERS.contains(&service) || processed_old == 0;
            if outbox_done && processed_done {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{service}: old outbox rows {outbox_old}, old processed records \
                 {processed_old} 10 s after start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            count(&pool, "switchyard_outbox", "id", "recent-outbox").await,
            1,
            "{service}: recent outbox rows are kept"
        );
        assert_eq!(
            count(
                &pool,
                "switchyard_processed_events",
                "event_id",
                "recent-processed"
            )
            .await,
            1,
            "{service}: recent processed records are kept"
        );
        pool.close().await;
    }
    test.stack.shutdown().await.unwrap();
}
