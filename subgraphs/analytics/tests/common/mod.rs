//! Real stores for the analytics tests: SQLite in a temp dir, a throwaway PostgreSQL database
//! per test, a private Redis stream per test. An unreachable server skips the test with a
//! printed notice, except under `CI=true`, where it fails.
#![allow(dead_code)]

use std::time::Duration;

use sqlx::{AnyPool, Row};
use switchyard_analytics::Store;
use switchyard_subgraph_kit::db;
use switchyard_subgraph_kit::events::{EventBus, RedisBus, RedisBusOptions};

/// `None` (skip, with a notice on stderr) or a panic under CI.
pub fn unavailable<T>(what: &str, error: impl std::fmt::Display) -> Option<T> {
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{what} is required under CI=true but unreachable: {error}");
    }
    let notice =
        format!("\nSKIPPED: {what} unreachable ({error}); start it with scripts/ci-services.sh\n");
    // Straight to stderr: the harness swallows `eprintln!` from passing tests.
    let _ = std::io::Write::write_all(&mut std::io::stderr(), notice.as_bytes());
    None
}

/// A migrated SQLite store in a fresh temp dir.
pub async fn sqlite_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let pool = db::connect(&db::sqlite_url(&dir.path().join("analytics.db")), 4)
        .await
        .unwrap();
    (dir, Store::open(pool).await.unwrap())
}

const PG_PREFIX: &str = "switchyard_analytics_test_";

/// A PostgreSQL database made for one test; drop it with [`PgDatabase::drop_now`].
pub struct PgDatabase {
    admin: AnyPool,
    name: String,
    /// The test database's URL.
    pub url: String,
}

/// Creates a uniquely named database, or `None` (skip) when PostgreSQL is unreachable.
pub async fn postgres() -> Option<PgDatabase> {
    let admin_url = std::env::var("SWITCHYARD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    sqlx::any::install_default_drivers();
    let admin = match sqlx::any::AnyPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(3))
        .connect(&admin_url)
        .await
    {
        Ok(pool) => pool,
        Err(e) => return unavailable("PostgreSQL", e),
    };
    drop_abandoned(&admin).await;
    let name = format!("{PG_PREFIX}{}", uuid::Uuid::now_v7().simple());
    // The name comes from a UUID made here, never from input.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .unwrap();
    let base = admin_url
        .rsplit_once('/')
        .map_or(admin_url.as_str(), |(b, _)| b);
    let url = format!("{base}/{name}");
    Some(PgDatabase { admin, name, url })
}

/// Drops this suite's databases older than an hour (left by tests that panicked); the UUID v7
/// in the name says when each was made.
async fn drop_abandoned(admin: &AnyPool) {
    let Ok(rows) = sqlx::query("SELECT datname FROM pg_database WHERE datname LIKE $1")
        .bind(format!("{PG_PREFIX}%"))
        .fetch_all(admin)
        .await
    else {
        return;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for row in rows {
        let name: String = row.get(0);
        let made = uuid::Uuid::parse_str(&name[PG_PREFIX.len()..])
            .ok()
            .and_then(|id| id.get_timestamp())
            .map(|ts| ts.to_unix().0);
        if made.is_some_and(|secs| now.saturating_sub(secs) > 3600) {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(admin)
            .await;
        }
    }
}

impl PgDatabase {
    /// A migrated store on this database.
    pub async fn store(&self) -> Store {
        Store::open(db::connect(&self.url, 4).await.unwrap())
            .await
            .unwrap()
    }

    /// Drops the database (closing whatever still holds it).
    pub async fn drop_now(self) {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&self.admin)
        .await
        .unwrap();
    }
}

/// The Redis URL, or `None` (skip) when Redis does not answer.
pub async fn redis_url() -> Option<String> {
    let url = std::env::var("SWITCHYARD_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let client = redis::Client::open(url.as_str()).unwrap();
    let answer = match client.get_multiplexed_async_connection().await {
        Ok(mut conn) => redis::cmd("PING").query_async::<String>(&mut conn).await,
        Err(e) => Err(e),
    };
    match answer {
        Ok(_) => Some(url),
        Err(e) => unavailable("Redis", e),
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
