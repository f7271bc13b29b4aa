//! Database connections for services whose store is SQLite (embedded) or PostgreSQL.
//!
//! Services reach both through `sqlx::Any`, so the same code (and the event outbox) runs on the
//! embedded default and on the server backend; the URL scheme picks the driver.

use std::path::Path;

use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;

/// Opens a pool for `url` (`sqlite://…` or `postgres://…`).
pub async fn connect(url: &str, max_connections: u32) -> Result<AnyPool, sqlx::Error> {
    sqlx::any::install_default_drivers();
    AnyPoolOptions::new()
        .max_connections(max_connections.max(1))
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

    #[test]
    fn sqlite_url_creates_the_file() {
        assert_eq!(
            sqlite_url(Path::new("/tmp/x.db")),
            "sqlite:///tmp/x.db?mode=rwc"
        );
    }
}
