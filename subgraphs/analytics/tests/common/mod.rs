//! Real stores for the analytics tests: SQLite in a temp dir, a throwaway PostgreSQL database
//! per test, a private Redis stream per test. An unreachable server skips the test with a
//! printed notice, except under `CI=true`, where it fails.
#![allow(dead_code)]

use std::time::Duration;

use switchyard_analytics::Store;
use switchyard_subgraph_kit::db;
use switchyard_subgraph_kit::events::{EventBus, RedisBus, RedisBusOptions};
use switchyard_subgraph_kit::testing::TestDatabase;

// Not every test binary that includes this module uses both.
#[allow(unused_imports)]
pub use switchyard_subgraph_kit::testing::{redis_url, unavailable};

/// A migrated SQLite store in a fresh temp dir.
pub async fn sqlite_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let pool = db::connect(&db::sqlite_url(&dir.path().join("analytics.db")), 4)
        .await
        .unwrap();
    (dir, Store::open(pool).await.unwrap())
}

/// A PostgreSQL database made for one test; drop it with [`PgDatabase::drop_now`].
pub struct PgDatabase {
    database: TestDatabase,
    /// The test database's URL.
    pub url: String,
}

/// Creates a uniquely named database, or `None` (skip) when PostgreSQL is unreachable.
pub async fn postgres() -> Option<PgDatabase> {
    let database = TestDatabase::create("switchyard_analytics_test_").await?;
    Some(PgDatabase {
        url: database.url.clone(),
        database,
    })
}

impl PgDatabase {
    /// A migrated store on this database.
    pub async fn store(&self) -> Store {
        Store::open(self.database.connect(4).await).await.unwrap()
    }

    /// Drops the database (closing whatever still holds it).
    pub async fn drop_now(self) {
        self.database.drop_now().await;
    }
}

/// A Redis Streams bus on a stream of its own (so parallel tests and a running stack do not
/// see each other's events), with a short claim timeout so a dead member's events move on fast.
pub async fn redis_bus() -> Option<(EventBus, String)> {
    let url = redis_url().await?;
    let options = RedisBusOptions {
        stream: format!(
            "switchyard:analytics-test:{}",
            uuid::Uuid::now_v7().simple()
        ),
        claim_idle: Duration::from_millis(1000),
        ..RedisBusOptions::default()
    };
    let bus = RedisBus::connect(&url, options).await.unwrap();
    Some((EventBus::Redis(bus), url))
}

/// Deletes a test bus's stream.
pub async fn delete_stream(bus: &EventBus, url: &str) {
    if let EventBus::Redis(redis_bus) = bus {
        let client = redis::Client::open(url).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let _: i64 = redis::cmd("DEL")
            .arg(redis_bus.stream())
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}
