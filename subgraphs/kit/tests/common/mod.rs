//! Real stores for the kit's tests: SQLite in a temp dir, a throwaway PostgreSQL database, a
//! private Redis stream. A missing server skips the test with a notice, except under CI (`CI`
//! set), where it fails: CI must not go green by testing nothing.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use sqlx::{AnyConnection, AnyPool, Row};
use switchyard_subgraph_kit::db;
use switchyard_subgraph_kit::events::{outbox, BoxError, Event, EventHandler};

/// Skips (returns `None`) or fails, depending on `CI`, when a server is unreachable.
pub fn unavailable<T>(what: &str, error: impl std::fmt::Display) -> Option<T> {
    if std::env::var_os("CI").is_some() {
        panic!("{what} is required under CI but unreachable: {error}");
    }
    // Straight to the process's stderr: the test harness captures `eprintln!` of passing tests,
    // and a skip must be visible.
    let notice = format!(
        "\nSKIPPED: {what} unreachable ({error}); run scripts/ci-services.sh to start it\n"
    );
    let _ = std::io::Write::write_all(&mut std::io::stderr(), notice.as_bytes());
    None
}

/// A SQLite database in a fresh temp dir, migrated.
pub async fn sqlite() -> (tempfile::TempDir, AnyPool) {
    let dir = tempfile::tempdir().unwrap();
    let pool = db::connect(&db::sqlite_url(&dir.path().join("service.db")), 4)
        .await
        .unwrap();
    prepare(&pool).await;
    (dir, pool)
}

/// A throwaway PostgreSQL database, dropped by [`PgDatabase::drop_now`].
pub struct PgDatabase {
    admin: AnyPool,
    name: String,
    pub pool: AnyPool,
}

fn pg_admin_url() -> String {
    std::env::var("SWITCHYARD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Creates and migrates a fresh PostgreSQL database, or `None` (skip) when none is reachable.
pub async fn postgres() -> Option<PgDatabase> {
    let admin_url = pg_admin_url();
    sqlx::any::install_default_drivers();
    // Fail fast when nothing listens, instead of the pool's 30 s acquire timeout.
    let admin = sqlx::any::AnyPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(std::time::Duration::from_secs(3))
        .connect(&admin_url)
        .await;
    let admin = match admin {
        Ok(pool) => pool,
        Err(e) => return unavailable("PostgreSQL", e),
    };
    sweep_abandoned(&admin).await;
    let name = format!("{PG_PREFIX}{}", uuid::Uuid::now_v7().simple());
    // The name is generated here from a UUID, never from input.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .unwrap();
    let base = admin_url
        .rsplit_once('/')
        .map_or(admin_url.as_str(), |(b, _)| b);
    let pool = db::connect(&format!("{base}/{name}"), 4).await.unwrap();
    prepare(&pool).await;
    Some(PgDatabase { admin, name, pool })
}

const PG_PREFIX: &str = "switchyard_kit_test_";

/// Drops test databases more than an hour old: a panicking test never reaches `drop_now`, and
/// the UUID v7 in each name says when it was made.
async fn sweep_abandoned(admin: &AnyPool) {
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
            // Best effort: a concurrent run may be dropping it too.
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(admin)
            .await;
        }
    }
}

impl PgDatabase {
    /// Drops the database.
    pub async fn drop_now(self) {
        self.pool.close().await;
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
    match client.get_multiplexed_async_connection().await {
        Ok(mut conn) => match redis::cmd("PING").query_async::<String>(&mut conn).await {
            Ok(_) => Some(url),
            Err(e) => unavailable("Redis", e),
        },
        Err(e) => unavailable("Redis", e),
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
