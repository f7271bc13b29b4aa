//! Account erasure as a tracked saga: every service erases what it holds for a deleted member,
//! records that it has, and says so with an `erasure.completed` event.
//!
//! One copy for every service (auth included, which erases its own rows in the deletion's
//! transaction):
//!
//! 1. **Start, in the consumer's transaction.** [`Erasure::track`] wraps the service's event
//!    handler: on `account.deleted` it writes a *started* row into `switchyard_erasure` (the
//!    service's own database) in the same transaction as the service's own deletions, so the
//!    rows that are deleted and the record that erasure began commit together (a crash before
//!    the commit leaves neither, and the event is redelivered).
//! 2. **Finish, outside it.** What a transaction cannot do runs afterwards in
//!    [`Erasure::run`], a task on the service's runner: the service's own finishing step
//!    ([`Erasure::finishing`]; content purges deleted documents from its search index), then the
//!    SQLite write-ahead log is checkpointed and truncated (with `secure_delete` on, set by
//!    [`crate::db::connect`], deleted rows are zeroed in the pages, and the old page images in
//!    the WAL are what remains; a truncated WAL holds none). Only then is the row marked
//!    *completed*, in one transaction with an `erasure.completed` event in the outbox.
//! 3. **Crash recovery.** At start the task finishes every row still *started*, so a process
//!    killed between 1 and 2 completes the erasure when it comes back; it also retries on a
//!    timer (a checkpoint blocked by a long reader, a finishing step that failed).
//!
//! Auth consumes `erasure.completed` and answers `Query.accountErasure` from it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::json;
use sqlx::{AnyConnection, AnyPool, Row};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::events::{outbox, BoxError, Event, EventHandler, OutboxRelay};

/// Name of the erasure record table (in each service's own database).
pub const ERASURE_TABLE: &str = "switchyard_erasure";

/// The event a service raises once it has erased a member: payload `service`, `memberId`,
/// `startedAt`, `completedAt`.
pub const COMPLETED_EVENT: &str = "erasure.completed";

/// Environment variable naming services (comma-separated, or `all`) whose erasures are started
/// but never finished: fault injection for the crash test, which kills the process while an
/// erasure is held open and checks that the next start finishes it. Never set it in service.
pub const HOLD_ENV: &str = "SWITCHYARD_TEST_HOLD_ERASURE";

/// How often unfinished erasures are retried without being woken.
const RETRY_EVERY: Duration = Duration::from_secs(5);

const SCHEMA: [&str; 1] = ["CREATE TABLE IF NOT EXISTS switchyard_erasure (
        member_id TEXT PRIMARY KEY,
        started_at BIGINT NOT NULL,
        completed_at BIGINT
    )"];

/// Creates the erasure table (and the outbox the completion event goes through) if missing.
pub async fn migrate(pool: &AnyPool) -> Result<(), BoxError> {
    for statement in SCHEMA {
        sqlx::query(statement).execute(pool).await?;
    }
    outbox::migrate(pool).await?;
    Ok(())
}

/// Records on `conn` (an open transaction that erases the member's rows) that this service
/// started erasing `member_id`; a repeat keeps the first record.
pub async fn start(conn: &mut AnyConnection, member_id: &str) -> Result<(), BoxError> {
    sqlx::query(
        "INSERT INTO switchyard_erasure (member_id, started_at, completed_at)
         VALUES ($1, $2, NULL) ON CONFLICT (member_id) DO NOTHING",
    )
    .bind(member_id.to_owned())
    .bind(Utc::now().timestamp_micros())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// One service's record of one member's erasure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasureRecord {
    /// The member.
    pub member_id: String,
    /// When the service's deletion transaction committed its start.
    pub started_at: DateTime<Utc>,
    /// When the service finished (files scrubbed, event enqueued); `None` while unfinished.
    pub completed_at: Option<DateTime<Utc>>,
}

type Finishing = Arc<dyn Fn(String) -> BoxFuture<'static, Result<(), BoxError>> + Send + Sync>;

/// A service's erasure saga: its start hook for the consumer and its finishing task.
#[derive(Clone)]
pub struct Erasure {
    inner: Arc<Inner>,
}

struct Inner {
    service: String,
    pool: AnyPool,
    relay: Option<OutboxRelay>,
    wake: Notify,
    finishing: std::sync::OnceLock<Finishing>,
    held: bool,
}

impl std::fmt::Debug for Erasure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Erasure")
            .field("service", &self.inner.service)
            .finish_non_exhaustive()
    }
}

impl Erasure {
    /// The erasure saga of `service` over its own `pool` (migrated here); `relay` is woken when
    /// a completion event is enqueued.
    pub async fn open(
        service: &str,
        pool: AnyPool,
        relay: Option<OutboxRelay>,
    ) -> Result<Erasure, BoxError> {
        migrate(&pool).await?;
        let held = std::env::var(HOLD_ENV).is_ok_and(|value| {
            value
                .split(',')
                .map(str::trim)
                .any(|s| s == "all" || s == service)
        });
        if held {
            tracing::warn!(
                service,
                "{HOLD_ENV} is set: erasures will be started, not finished"
            );
        }
        Ok(Erasure {
            inner: Arc::new(Inner {
                service: service.to_owned(),
                pool,
                relay,
                wake: Notify::new(),
                finishing: std::sync::OnceLock::new(),
                held,
            }),
        })
    }

    /// Sets the service's own finishing step, run before the files are scrubbed (for data that
    /// lives outside the database, such as a search index). It must be idempotent: a crash
    /// after it ran runs it again.
    pub fn finishing<F, Fut>(self, step: F) -> Self
    where
        F: Fn(String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        let step: Finishing = Arc::new(move |member| Box::pin(step(member)));
        // Set once, before the saga is shared; a second call keeps the first step.
        let _ = self.inner.finishing.set(step);
        self
    }

    /// The service this saga belongs to.
    pub fn service(&self) -> &str {
        &self.inner.service
    }

    /// `handler` with erasures started in its transaction on `account.deleted` (run the
    /// service's consumer with this).
    pub fn track<H: EventHandler>(&self, handler: H) -> ErasureTracked<H> {
        ErasureTracked {
            erasure: self.clone(),
            handler,
        }
    }

    /// Asks the finishing task to look now (after a transaction that called [`start`] committed).
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// This service's record for `member_id`, if it has started erasing it.
    pub async fn record(&self, member_id: &str) -> Result<Option<ErasureRecord>, BoxError> {
        let row = sqlx::query(
            "SELECT member_id, started_at, completed_at FROM switchyard_erasure
             WHERE member_id = $1",
        )
        .bind(member_id.to_owned())
        .fetch_optional(&self.inner.pool)
        .await?;
        row.map(|row| decode(&row)).transpose()
    }

    /// Finishes every erasure this service started and has not completed; returns how many it
    /// completed. Stops at the first failure (the rest are retried later).
    pub async fn finish_pending(&self) -> Result<usize, BoxError> {
        if self.inner.held {
            return Ok(0);
        }
        let rows = sqlx::query(
            "SELECT member_id, started_at, completed_at FROM switchyard_erasure
             WHERE completed_at IS NULL ORDER BY started_at",
        )
        .fetch_all(&self.inner.pool)
        .await?;
        let pending = rows.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
        if pending.is_empty() {
            return Ok(0);
        }
        if let Some(step) = self.inner.finishing.get() {
            for record in &pending {
                step(record.member_id.clone()).await?;
            }
        }
        scrub_files(&self.inner.pool).await?;
        let mut tx = crate::db::begin(&self.inner.pool).await?;
        let now = Utc::now();
        let now = DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now);
        for record in &pending {
            let marked = sqlx::query(
                "UPDATE switchyard_erasure SET completed_at = $1
                 WHERE member_id = $2 AND completed_at IS NULL",
            )
            .bind(now.timestamp_micros())
            .bind(record.member_id.clone())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if marked == 0 {
                continue; // Another replica finished it first.
            }
            let event = Event::new(
                COMPLETED_EVENT,
                record.member_id.clone(),
                json!({
                    "service": self.inner.service,
                    "memberId": record.member_id,
                    "startedAt": record.started_at,
                    "completedAt": now,
                }),
            )?;
            outbox::enqueue(&mut *tx, &event).await?;
        }
        tx.commit().await?;
        if let Some(relay) = &self.inner.relay {
            relay.wake();
        }
        tracing::info!(
            service = %self.inner.service,
            members = pending.len(),
            "account erasure completed"
        );
        Ok(pending.len())
    }

    /// The finishing task (run it on the service's runner): finishes what an earlier run left
    /// unfinished at once, then whenever woken and every few seconds, until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        loop {
            if let Err(e) = self.finish_pending().await {
                tracing::warn!(service = %self.inner.service, error = %e, "finishing account erasures failed; will retry");
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.inner.wake.notified() => {}
                _ = tokio::time::sleep(RETRY_EVERY) => {}
            }
        }
    }
}

fn decode(row: &sqlx::any::AnyRow) -> Result<ErasureRecord, BoxError> {
    let micros = |v: i64| {
        DateTime::from_timestamp_micros(v).ok_or_else(|| format!("timestamp {v} out of range"))
    };
    Ok(ErasureRecord {
        member_id: row.try_get("member_id")?,
        started_at: micros(row.try_get("started_at")?)?,
        completed_at: row
            .try_get::<Option<i64>, _>("completed_at")?
            .map(micros)
            .transpose()?,
    })
}

/// Leaves no copy of deleted rows in the database's files. On SQLite, deleted content is
/// zeroed in the pages (`secure_delete`), but the write-ahead log still holds the pages as
/// they were: checkpoint it into the database and truncate it. PostgreSQL keeps dead tuples
/// until vacuum; that is the server's operator's to schedule (autovacuum), not a file here.
async fn scrub_files(pool: &AnyPool) -> Result<(), BoxError> {
    if !crate::db::is_sqlite(pool) {
        return Ok(());
    }
    for attempt in 0..20u64 {
        let row = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(pool)
            .await?;
        let busy: i64 = row.try_get(0)?;
        if busy == 0 {
            return Ok(());
        }
        // A reader holds an old snapshot; it is short-lived (one request).
        tokio::time::sleep(Duration::from_millis(50 * (attempt + 1))).await;
    }
    Err("the write-ahead log could not be truncated (readers kept it busy)".into())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccountDeleted {
    member_id: String,
}

/// An event handler that also starts erasures (see [`Erasure::track`]).
pub struct ErasureTracked<H> {
    erasure: Erasure,
    handler: H,
}

impl<H: EventHandler> EventHandler for ErasureTracked<H> {
    async fn handle(&self, conn: &mut AnyConnection, event: &Event) -> Result<(), BoxError> {
        if event.event_type == "account.deleted" {
            let AccountDeleted { member_id } = event.payload_as()?;
            start(conn, &member_id).await?;
        }
        self.handler.handle(conn, event).await
    }

    fn committed(&self, event: &Event) {
        self.handler.committed(event);
        if event.event_type == "account.deleted" {
            self.erasure.wake();
        }
    }
}
