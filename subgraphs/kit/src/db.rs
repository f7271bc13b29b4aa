//! Database connections for services whose store is SQLite (embedded) or PostgreSQL.
//!
//! Services reach both through `sqlx::Any`, so the same code (and the event outbox) runs on the
//! embedded default and on the server backend; the URL scheme picks the driver.
//!
//! SQLite databases are switched to WAL with `synchronous = NORMAL`: readers no longer block the
//! writer, and a commit no longer waits for an fsync (measured: ~80 → thousands of outbox
//! transactions per second). A power loss can drop the last commits, but never half of one, so a
//! change and its outbox event still stand or fall together; an application crash loses nothing.

use std::path::Path;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyConnection, AnyPool, Connection, Executor};

/// Opens a pool for `url` (`sqlite://…` or `postgres://…`).
pub async fn connect(url: &str, max_connections: u32) -> Result<AnyPool, sqlx::Error> {
    sqlx::any::install_default_drivers();
    // A dead database must fail requests quickly (the gateway then reports the affected fields)
    // rather than hold them for sqlx's default 30 s.
    let options = AnyPoolOptions::new()
        .max_connections(max_connections.max(1))
        .acquire_timeout(std::time::Duration::from_secs(5));
    if !url.starts_with("sqlite:") {
        return options.connect(url).await;
    }
    // WAL is a property of the file; setting it needs an exclusive lock that busy_timeout does
    // not wait for, so set it once on a lone connection rather than racing from every pool one.
    let mut first = AnyConnection::connect(url).await?;
    first.execute("PRAGMA journal_mode = WAL").await?;
    first.close().await?;
    options
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute("PRAGMA synchronous = NORMAL").await?;
                Ok(())
            })
        })
        .connect(url)
        .await
}

/// The URL of a SQLite database file at `path`, created if missing.
pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Row;

    #[test]
    fn sqlite_url_creates_the_file() {
        assert_eq!(
            sqlite_url(Path::new("/tmp/x.db")),
            "sqlite:///tmp/x.db?mode=rwc"
        );
    }

    #[tokio::test]
    async fn sqlite_pools_use_wal_and_normal_sync() {
        let dir = tempfile::tempdir().unwrap();
        let pool = connect(&sqlite_url(&dir.path().join("a.db")), 2)
            .await
            .unwrap();
        let mode: String = sqlx::query("PRAGMA journal_mode")
            .fetch_one(&pool)
            .await
            .unwrap()
            .get(0);
        assert_eq!(mode, "wal");
        // 1 = NORMAL.
        let sync: i64 = sqlx::query("PRAGMA synchronous")
            .fetch_one(&pool)
            .await
            .unwrap()
            .get(0);
        assert_eq!(sync, 1);
    }
}
