//! Real stores for the kit's tests: SQLite in a temp dir, a throwaway PostgreSQL database, a
//! private Redis stream. A missing server skips the test with a notice, except under CI (`CI`
//! set), where it fails: CI must not go green by testing nothing.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use sqlx::{AnyConnection, AnyPool, Row};
use switchyard_subgraph_kit::db;
use switchyard_subgraph_kit::events::{outbox, BoxError, Event, EventHandler};
use switchyard_subgraph_kit::testing::TestDatabase;

// Not every test binary that includes this module uses both.
#[allow(unused_imports)]
pub use switchyard_subgraph_kit::testing::{redis_url, unavailable};

/// A SQLite database in a fresh temp dir, migrated.
pub async fn sqlite() -> (tempfile::TempDir, AnyPool) {
    let dir = tempfile::tempdir().unwrap();
    let pool = db::connect(&db::sqlite_url(&dir.path().join("service.db")), 4)
        .await
        .unwrap();
    prepare(&pool).await;
    (dir, pool)
}

/// A throwaway PostgreSQL database with a migrated pool on it.
pub struct PgDatabase {
    database: TestDatabase,
    pub pool: AnyPool,
}

/// Creates and migrates a fresh PostgreSQL database, or `None` (skip) when none is reachable.
pub async fn postgres() -> Option<PgDatabase> {
    let database = TestDatabase::create("switchyard_kit_test_").await?;
    let pool = database.connect(4).await;
    prepare(&pool).await;
    Some(PgDatabase { database, pool })
}

impl PgDatabase {
    /// Drops the database.
    pub async fn drop_now(self) {
        self.pool.close().await;
        self.database.drop_now().await;
    }
}

/// Outbox tables plus the tables the test service and test consumer write.
async fn prepare(pool: &AnyPool) {
    outbox::migrate(pool).await.unwrap();
    // Twice: migration must be idempotent, services run it on every start.
    outbox::migrate(pool).await.unwrap();
    for ddl in [
        "CREATE TABLE members (id TEXT PRIMARY KEY, name TEXT NOT NULL)",
        // No key on event_id on purpose: a double application would show up as two rows.
        "CREATE TABLE applied (event_id TEXT NOT NULL, aggregate_id TEXT NOT NULL)",
    ] {
        sqlx::query(ddl).execute(pool).await.unwrap();
    }
}

/// The test consumer: records each event it applies in `applied`.
#[derive(Clone, Default)]
pub struct RecordingHandler {
    pub calls: Arc<AtomicUsize>,
    /// After this many calls, hang forever (a consumer stuck mid-batch, about to be killed).
    pub hang_after: Option<usize>,
}

impl EventHandler for RecordingHandler {
    async fn handle(&self, conn: &mut AnyConnection, event: &Event) -> Result<(), BoxError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if self.hang_after.is_some_and(|limit| n >= limit) {
            std::future::pending::<()>().await;
        }
        if event.aggregate_id == "reject" {
            return Err("this consumer rejects aggregate `reject`".into());
        }
        sqlx::query("INSERT INTO applied (event_id, aggregate_id) VALUES ($1, $2)")
            .bind(event.id.to_string())
            .bind(event.aggregate_id.clone())
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}

/// Aggregate ids in `applied`, in insertion order (duplicates kept).
pub async fn applied(pool: &AnyPool) -> Vec<String> {
    sqlx::query("SELECT aggregate_id FROM applied ORDER BY event_id")
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>("aggregate_id"))
        .collect()
}

/// Creates a member and enqueues `member.created` in one transaction, committing or not.
pub async fn create_member(pool: &AnyPool, id: &str, commit: bool) -> Event {
    let event = Event::new("member.created", id, serde_json::json!({ "name": id })).unwrap();
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("INSERT INTO members (id, name) VALUES ($1, $2)")
        .bind(id.to_owned())
        .bind(id.to_owned())
        .execute(&mut *tx)
        .await
        .unwrap();
    outbox::enqueue(&mut *tx, &event).await.unwrap();
    if commit {
        tx.commit().await.unwrap();
    } else {
        tx.rollback().await.unwrap();
    }
    event
}
