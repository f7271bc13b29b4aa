//! Database connections for services whose store is SQLite (embedded) or PostgreSQL.
//!
//! Services reach both through `sqlx::Any`, so the same code (and the event outbox) runs on the
//! embedded default and on the server backend; the URL scheme picks the driver.
//!
//! SQLite databases are switched to WAL with `synchronous = NORMAL`: readers no longer block the
//! writer, and a commit no longer waits for an fsync (measured: ~80 → thousands of outbox
//! transactions per second). A power loss can drop the last commits, but never half of one, so a
//! change and its outbox event still stand or fall together; an application crash loses nothing.
//!
//! SQLite files are the owner's only (0600): the database is created that way before SQLite
//! opens it, an existing one is narrowed to it, and SQLite gives its `-wal` and `-shm` files the
//! database file's mode. They hold personal data, keyed hashes and refresh-token hashes.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use sqlx::any::{AnyPoolOptions, AnyQueryResult, AnyRow, AnyStatement, AnyTypeInfo};
use sqlx::{Any, AnyConnection, AnyPool, Connection, Either, Execute, Executor};

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
    if let Some(path) = sqlite_path(url) {
        make_private(&path).map_err(sqlx::Error::Io)?;
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
                // Deleted rows are overwritten with zeros rather than left in free space, so an
                // erased member's data does not outlive its rows in the file (`erasure`).
                conn.execute("PRAGMA secure_delete = ON").await?;
                Ok(())
            })
        })
        .connect(url)
        .await
}

/// The file a `sqlite:` URL names, if it names one (not `:memory:`).
fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.starts_with(":memory:")).then(|| std::path::PathBuf::from(path))
}

/// Creates the database file with mode 0600 if it is missing, and narrows an existing one (and
/// its `-wal` / `-shm` files) to it, so nothing opened later widens it.
fn make_private(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)?;
            }
        }
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)?;
        for suffix in ["", "-wal", "-shm"] {
            let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
            match std::fs::metadata(&file) {
                Ok(meta) if meta.permissions().mode() & 0o077 != 0 => {
                    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Begins a write transaction. On SQLite it is `BEGIN IMMEDIATE`: a default (deferred)
/// transaction that reads before it writes must upgrade its lock at the first write, and if another
/// connection committed in between SQLite fails it at once with `SQLITE_BUSY` — busy_timeout does
/// not apply to that upgrade. Taking the write lock up front makes concurrent writers queue
/// instead. PostgreSQL gets a plain `BEGIN`.
pub async fn begin(pool: &AnyPool) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
    if is_sqlite(pool) {
        pool.begin_with("BEGIN IMMEDIATE").await
    } else {
        pool.begin().await
    }
}

/// A service store's pool that counts the statements sent through it, so tests can pin how
/// many round trips a request costs (a page of 20 must not cost 20 × anything).
///
/// Stores run their reads as `query.fetch_all(&self.pool)` on a `Db` exactly as on an
/// `AnyPool` (it dereferences to one for transactions, the outbox relay and readiness checks).
/// What it counts is every statement executed on the `Db` itself; statements inside a
/// transaction (`pool.begin()`) run on the transaction's connection and are not counted. The
/// count is one relaxed atomic add per statement, against a database round trip of tens of
/// microseconds, so it is always on rather than behind a switch.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    statements: Arc<AtomicU64>,
}

impl Db {
    /// Wraps `pool`, counting from zero.
    pub fn new(pool: AnyPool) -> Db {
        Db {
            pool,
            statements: Arc::default(),
        }
    }

    /// The pool underneath.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// How many statements this `Db` (and its clones) executed so far.
    pub fn statements(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }

    fn count(&self) {
        self.statements.fetch_add(1, Ordering::Relaxed);
    }
}

impl std::ops::Deref for Db {
    type Target = AnyPool;

    fn deref(&self) -> &AnyPool {
        &self.pool
    }
}

impl<'p> Executor<'p> for &'_ Db {
    type Database = Any;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>>
    where
        E: 'q + Execute<'q, Any>,
    {
        self.count();
        (&self.pool).fetch_many(query)
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<AnyRow>, sqlx::Error>>
    where
        E: 'q + Execute<'q, Any>,
    {
        self.count();
        (&self.pool).fetch_optional(query)
    }

    fn prepare_with<'e>(
        self,
        sql: sqlx::SqlStr,
        parameters: &'e [AnyTypeInfo],
    ) -> BoxFuture<'e, Result<AnyStatement, sqlx::Error>>
    where
        'p: 'e,
    {
        (&self.pool).prepare_with(sql, parameters)
    }
}

/// Whether `pool` talks to SQLite (as opposed to PostgreSQL).
pub fn is_sqlite(pool: &AnyPool) -> bool {
    pool.connect_options().database_url.scheme() == "sqlite"
}

/// The database a service opens: the configured server URL, or (when none is set, or it is
/// blank) the SQLite file `<data_dir>/<file_name>` — the embedded default.
pub fn url_or_sqlite(configured: Option<&str>, data_dir: &Path, file_name: &str) -> String {
    match configured.map(str::trim).filter(|url| !url.is_empty()) {
        Some(url) => url.to_owned(),
        None => sqlite_url(&data_dir.join(file_name)),
    }
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
    fn a_configured_server_wins_over_the_embedded_file() {
        let dir = Path::new("/srv/data");
        assert_eq!(
            url_or_sqlite(Some("postgres://db/x"), dir, "a.db"),
            "postgres://db/x"
        );
        assert_eq!(
            url_or_sqlite(Some("  "), dir, "a.db"),
            "sqlite:///srv/data/a.db?mode=rwc"
        );
        assert_eq!(
            url_or_sqlite(None, dir, "a.db"),
            "sqlite:///srv/data/a.db?mode=rwc"
        );
    }

    #[test]
    fn sqlite_url_creates_the_file() {
        assert_eq!(
            sqlite_url(Path::new("/tmp/x.db")),
            "sqlite:///tmp/x.db?mode=rwc"
        );
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn database_wal_and_shm_files_are_the_owners_only() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fresh").join("a.db");
        let pool = connect(&sqlite_url(&path), 2).await.unwrap();
        sqlx::query("CREATE TABLE t (n INTEGER)")
            .execute(&pool)
            .await
            .unwrap();
        for suffix in ["", "-wal", "-shm"] {
            let file = dir.path().join(format!("fresh/a.db{suffix}"));
            assert_eq!(mode(&file), 0o600, "{}", file.display());
        }
        assert_eq!(mode(&dir.path().join("fresh")), 0o700);
        pool.close().await;

        // A database an older version left world-readable is narrowed at the next start.
        let old = dir.path().join("old.db");
        std::fs::write(&old, b"").unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
        let pool = connect(&sqlite_url(&old), 2).await.unwrap();
        sqlx::query("CREATE TABLE t (n INTEGER)")
            .execute(&pool)
            .await
            .unwrap();
        for suffix in ["", "-wal", "-shm"] {
            let file = dir.path().join(format!("old.db{suffix}"));
            assert_eq!(mode(&file), 0o600, "{}", file.display());
        }
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(
            sqlite_path("sqlite:///srv/a.db?mode=rwc"),
            Some(std::path::PathBuf::from("/srv/a.db"))
        );
    }

    #[tokio::test]
    async fn concurrent_read_then_write_transactions_queue_instead_of_failing() {
        let dir = tempfile::tempdir().unwrap();
        let pool = connect(&sqlite_url(&dir.path().join("a.db")), 8)
            .await
            .unwrap();
        assert!(is_sqlite(&pool));
        sqlx::query("CREATE TABLE counter (n INTEGER NOT NULL)")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query("INSERT INTO counter (n) VALUES (0)")
            .execute(&pool)
            .await
            .unwrap();
        // Each task reads, yields (so others read too), then writes: with deferred transactions
        // most of them die with SQLITE_BUSY on the lock upgrade.
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    let mut tx = begin(&pool).await?;
                    let n: i64 = sqlx::query("SELECT n FROM counter")
                        .fetch_one(&mut *tx)
                        .await?
                        .get(0);
                    tokio::task::yield_now().await;
                    sqlx::query("UPDATE counter SET n = $1")
                        .bind(n + 1)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let n: i64 = sqlx::query("SELECT n FROM counter")
            .fetch_one(&pool)
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 16, "no lost update, no SQLITE_BUSY");
    }

    #[tokio::test]
    async fn db_counts_each_statement_it_executes_but_not_those_in_transactions() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::new(
            connect(&sqlite_url(&dir.path().join("a.db")), 2)
                .await
                .unwrap(),
        );
        assert_eq!(db.statements(), 0);
        sqlx::query("CREATE TABLE t (n INTEGER)")
            .execute(&db)
            .await
            .unwrap();
        for n in 0..3 {
            sqlx::query("INSERT INTO t (n) VALUES ($1)")
                .bind(n)
                .execute(&db)
                .await
                .unwrap();
        }
        let rows = sqlx::query("SELECT n FROM t").fetch_all(&db).await.unwrap();
        assert_eq!(rows.len(), 3);
        let one = sqlx::query("SELECT n FROM t WHERE n = 2")
            .fetch_optional(&db)
            .await
            .unwrap();
        assert!(one.is_some());
        sqlx::query("SELECT COUNT(*) FROM t")
            .fetch_one(&db.clone())
            .await
            .unwrap();
        assert_eq!(db.statements(), 7, "clones share the count");
        let mut tx = begin(&db).await.unwrap();
        sqlx::query("DELETE FROM t")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(db.statements(), 7);
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
