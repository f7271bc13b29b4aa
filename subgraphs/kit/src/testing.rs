//! Test support every service's tests share: throwaway PostgreSQL databases and a reachable
//! Redis, with one rule for a missing server — skip with a visible notice on a laptop, fail
//! under CI (`CI` set), so CI never goes green by testing nothing.
//!
//! Not used by services at run time; it lives in the kit (rather than in each crate's
//! `tests/e2e/common.rs`) so that every crate provisions, names and cleans up test databases the same way.

use std::time::Duration;

use sqlx::{AnyPool, Row};

use crate::db;

/// Whether servers the tests need are required (CI) rather than optional (a laptop).
pub fn servers_required() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Skips (returns `None`, printing a notice) or, under CI, panics: for a server a test needs
/// but cannot reach.
pub fn unavailable<T>(what: &str, error: impl std::fmt::Display) -> Option<T> {
    if servers_required() {
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

/// The PostgreSQL server tests use (`SWITCHYARD_TEST_POSTGRES_URL`, default the local one).
pub fn postgres_admin_url() -> String {
    std::env::var("SWITCHYARD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A throwaway PostgreSQL database named `<prefix><uuid v7>`. Dropped by [`TestDatabase::drop_now`]
/// or, failing that, when the value is dropped; databases a crashed run left behind are swept
/// by the next run with the same prefix once they are an hour old.
pub struct TestDatabase {
    admin: Option<AnyPool>,
    name: String,
    /// The database's URL.
    pub url: String,
}

impl TestDatabase {
    /// Creates a database, or `None` (skip) when PostgreSQL is unreachable outside CI.
    pub async fn create(prefix: &str) -> Option<TestDatabase> {
        let admin_url = postgres_admin_url();
        sqlx::any::install_default_drivers();
        // Fail fast when nothing listens, instead of the pool's acquire timeout.
        let admin = sqlx::any::AnyPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(3))
            .connect(&admin_url)
            .await;
        let admin = match admin {
            Ok(pool) => pool,
            Err(e) => return unavailable("PostgreSQL", e),
        };
        sweep_abandoned(&admin, prefix).await;
        let name = format!("{prefix}{}", uuid::Uuid::now_v7().simple());
        // The name is made here from a prefix and a UUID, never from input.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .unwrap_or_else(|e| panic!("creating test database {name}: {e}"));
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(base, _)| base);
        Some(TestDatabase {
            url: format!("{base}/{name}"),
            admin: Some(admin),
            name,
        })
    }

    /// A pool on the database, through [`db::connect`] like a service opens its own.
    pub async fn connect(&self, max_connections: u32) -> AnyPool {
        db::connect(&self.url, max_connections)
            .await
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", self.url))
    }

    /// Drops the database now (closing other sessions on it).
    pub async fn drop_now(mut self) {
        if let Some(admin) = self.admin.take() {
            drop_database(&admin, &self.name).await;
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(admin) = self.admin.take() else {
            return;
        };
        let name = std::mem::take(&mut self.name);
        // `Drop` cannot await and the test's runtime may be shutting down: drop the database
        // from a runtime of its own, on a connection of its own.
        let url = postgres_admin_url();
        drop(admin);
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                if let Ok(admin) = AnyPool::connect(&url).await {
                    drop_database(&admin, &name).await;
                    admin.close().await;
                }
            });
        })
        .join();
    }
}

async fn drop_database(admin: &AnyPool, name: &str) {
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(admin)
    .await;
}

/// Drops `prefix` databases over an hour old: a panicking test never reaches `drop_now`, and
/// the UUID v7 in each name says when it was made.
async fn sweep_abandoned(admin: &AnyPool, prefix: &str) {
    let Ok(rows) = sqlx::query("SELECT datname FROM pg_database WHERE datname LIKE $1")
        .bind(format!("{prefix}%"))
        .fetch_all(admin)
        .await
    else {
        return;
    };
    let now = chrono::Utc::now().timestamp().max(0).unsigned_abs();
    for row in rows {
        let Ok(name) = row.try_get::<String, _>(0) else {
            continue;
        };
        let made = uuid::Uuid::parse_str(&name[prefix.len()..])
            .ok()
            .and_then(|id| id.get_timestamp())
            .map(|ts| ts.to_unix().0);
        if made.is_some_and(|secs| now.saturating_sub(secs) > 3600) {
            // Best effort: a concurrent run may be dropping it too.
            drop_database(admin, &name).await;
        }
    }
}

/// The Redis tests use (`SWITCHYARD_TEST_REDIS_URL`, default the local one), or `None` (skip)
/// when it does not answer outside CI.
pub async fn redis_url() -> Option<String> {
    let url = std::env::var("SWITCHYARD_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let client = match redis::Client::open(url.as_str()) {
        Ok(client) => client,
        Err(e) => return unavailable("Redis", e),
    };
    let ping = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    match tokio::time::timeout(Duration::from_secs(3), ping).await {
        Ok(Ok(_)) => Some(url),
        Ok(Err(e)) => unavailable("Redis", e),
        Err(_) => unavailable("Redis", "no answer within 3 s"),
    }
}
