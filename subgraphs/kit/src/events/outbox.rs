//! The transactional outbox and its relay.
//!
//! The outbox is a table in the service's own database. [`enqueue`] takes the service's open
//! transaction, so the event row commits or rolls back with the change it describes. The
//! [`OutboxRelay`] then moves committed rows to the bus. It marks a row published only after the
//! bus accepted it, so a crash re-publishes at most the batch in flight, and consumers'
//! de-duplication absorbs that. On PostgreSQL the batch is locked with `FOR UPDATE SKIP LOCKED`
//! inside one transaction, so replicas of a service can each run a relay without
//! double-publishing; SQLite has one embedded writer and needs no lock.
//!
//! One code path serves SQLite (embedded) and PostgreSQL through `sqlx::Any`: the schema uses
//! only `TEXT` and `BIGINT`, and statements use `$n` placeholders, which both accept.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, AnyPool, Connection, Executor, Row};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Event, EventBus, EventError};

/// Name of the outbox table.
pub const OUTBOX_TABLE: &str = "switchyard_outbox";
/// Name of the consumers' de-duplication table.
pub const PROCESSED_TABLE: &str = "switchyard_processed_events";

const SCHEMA: [&str; 3] = [
    "CREATE TABLE IF NOT EXISTS switchyard_outbox (
        id TEXT PRIMARY KEY,
        event_type TEXT NOT NULL,
        aggregate_id TEXT NOT NULL,
        occurred_at BIGINT NOT NULL,
        payload TEXT NOT NULL,
        published_at BIGINT
    )",
    // The relay only ever scans unpublished rows; keep that scan independent of history size.
    "CREATE INDEX IF NOT EXISTS switchyard_outbox_unpublished
        ON switchyard_outbox (id) WHERE published_at IS NULL",
    "CREATE TABLE IF NOT EXISTS switchyard_processed_events (
        consumer_group TEXT NOT NULL,
        event_id TEXT NOT NULL,
        processed_at BIGINT NOT NULL,
        PRIMARY KEY (consumer_group, event_id)
    )",
];

/// Creates the outbox and de-duplication tables if missing, and adds columns later versions
/// need to tables made by earlier ones (idempotent; run at startup).
pub async fn migrate(pool: &AnyPool) -> Result<(), EventError> {
    for statement in SCHEMA {
        sqlx::query(statement).execute(pool).await?;
    }
    // The trace context of each event (a `traceparent` value; NULL when tracing was off).
    let mut conn = pool.acquire().await?;
    if conn.backend_name() == "PostgreSQL" {
        // Replicas may migrate at once; IF NOT EXISTS makes the race harmless.
        sqlx::query("ALTER TABLE switchyard_outbox ADD COLUMN IF NOT EXISTS trace_parent TEXT")
            .execute(&mut *conn)
            .await?;
    } else if sqlx::query("SELECT trace_parent FROM switchyard_outbox WHERE 1 = 0")
        .execute(&mut *conn)
        .await
        .is_err()
    {
        // SQLite has no ADD COLUMN IF NOT EXISTS; it has one writer, so check-then-add holds.
        sqlx::query("ALTER TABLE switchyard_outbox ADD COLUMN trace_parent TEXT")
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// The columns an outbox row is read with ([`decode_row`]).
const COLUMNS: &str = "id, event_type, aggregate_id, occurred_at, payload, trace_parent";

/// Writes `event` to the outbox on `conn`: pass the transaction that makes the change.
///
/// ```ignore
/// let mut tx = db::begin(&pool).await?; // BEGIN IMMEDIATE on SQLite
/// sqlx::query("INSERT INTO members ...").execute(&mut *tx).await?;
/// outbox::enqueue(&mut *tx, &Event::new("member.created", id, &member)?).await?;
/// tx.commit().await?;
/// relay.wake();
/// ```
pub async fn enqueue<'c, E>(conn: E, event: &Event) -> Result<(), EventError>
where
    E: Executor<'c, Database = Any>,
{
    sqlx::query(
        "INSERT INTO switchyard_outbox
             (id, event_type, aggregate_id, occurred_at, payload, trace_parent)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(event.id.to_string())
    .bind(event.event_type.clone())
    .bind(event.aggregate_id.clone())
    .bind(event.occurred_at.timestamp_micros())
    .bind(serde_json::to_string(&event.payload)?)
    .bind(event.trace_parent.clone())
    .execute(conn)
    .await?;
    Ok(())
}

/// Writes `event` to the outbox unless a row with its id is already there (published or not);
/// true if it wrote the row. For a service whose change commits in another database and is
/// copied here afterwards: a copy repeated after a crash, or by two replicas, stays one event.
pub async fn enqueue_once<'c, E>(conn: E, event: &Event) -> Result<bool, EventError>
where
    E: Executor<'c, Database = Any>,
{
    let done = sqlx::query(
        "INSERT INTO switchyard_outbox
             (id, event_type, aggregate_id, occurred_at, payload, trace_parent)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
    )
    .bind(event.id.to_string())
    .bind(event.event_type.clone())
    .bind(event.aggregate_id.clone())
    .bind(event.occurred_at.timestamp_micros())
    .bind(serde_json::to_string(&event.payload)?)
    .bind(event.trace_parent.clone())
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Outbox rows not yet published, oldest first.
pub async fn unpublished(pool: &AnyPool, limit: usize) -> Result<Vec<Event>, EventError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM switchyard_outbox
         WHERE published_at IS NULL ORDER BY id LIMIT $1"
    )))
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await?;
    rows.iter().map(decode_row).collect()
}

fn decode_row(row: &AnyRow) -> Result<Event, EventError> {
    let id: String = row.try_get("id")?;
    let micros: i64 = row.try_get("occurred_at")?;
    let payload: String = row.try_get("payload")?;
    Ok(Event {
        id: Uuid::parse_str(&id)
            .map_err(|e| EventError::Malformed(format!("outbox id {id:?}: {e}")))?,
        event_type: row.try_get("event_type")?,
        aggregate_id: row.try_get("aggregate_id")?,
        occurred_at: DateTime::from_timestamp_micros(micros).ok_or_else(|| {
            EventError::Malformed(format!("outbox occurred_at {micros} out of range"))
        })?,
        payload: serde_json::from_str(&payload)?,
        trace_parent: row.try_get("trace_parent")?,
    })
}

/// Deletes rows published more than `older_than` ago; returns how many.
pub async fn prune_published(pool: &AnyPool, older_than: Duration) -> Result<u64, EventError> {
    let age = chrono::Duration::from_std(older_than).unwrap_or(chrono::Duration::MAX);
    let cutoff = Utc::now()
        .checked_sub_signed(age)
        .map_or(i64::MIN, |t| t.timestamp_micros());
    let done = sqlx::query(
        "DELETE FROM switchyard_outbox WHERE published_at IS NOT NULL AND published_at < $1",
    )
    .bind(cutoff)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Deletes de-duplication records older than `older_than`; returns how many.
///
/// Keep them longer than any event can take to be redelivered (bus retention, outage length):
/// an event replayed after its record is gone would be processed again.
pub async fn prune_processed(pool: &AnyPool, older_than: Duration) -> Result<u64, EventError> {
    let age = chrono::Duration::from_std(older_than).unwrap_or(chrono::Duration::MAX);
    let cutoff = Utc::now()
        .checked_sub_signed(age)
        .map_or(i64::MIN, |t| t.timestamp_micros());
    let done = sqlx::query("DELETE FROM switchyard_processed_events WHERE processed_at < $1")
        .bind(cutoff)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

/// Moves committed outbox rows to the bus, in the background.
///
/// It wakes on [`OutboxRelay::wake`] (call it after committing a transaction that enqueued
/// events, for low latency) and otherwise polls, which also covers events committed by another
/// process or left over from before a crash.
#[derive(Clone)]
pub struct OutboxRelay {
    pool: AnyPool,
    bus: EventBus,
    batch_size: usize,
    poll_interval: Duration,
    replay_window: Duration,
    wake: Arc<Notify>,
    metrics: Option<crate::metrics::OutboxMetrics>,
}

/// How far back [`OutboxRelay::run`] republishes on an in-process bus at start (see
/// [`OutboxRelay::replay_window`]).
pub const IN_PROCESS_REPLAY_WINDOW: Duration = Duration::from_secs(3600);

impl OutboxRelay {
    /// A relay from `pool`'s outbox to `bus` (batches of 100, polling every 500 ms; on an
    /// in-process bus it republishes the last hour's events when it starts).
    pub fn new(pool: AnyPool, bus: EventBus) -> Self {
        let replay_window = match bus {
            EventBus::InProcess(_) => IN_PROCESS_REPLAY_WINDOW,
            EventBus::Redis(_) => Duration::ZERO,
        };
        OutboxRelay {
            pool,
            bus,
            batch_size: 100,
            poll_interval: Duration::from_millis(500),
            replay_window,
            wake: Arc::new(Notify::new()),
            metrics: None,
        }
    }

    /// Sets how far back [`OutboxRelay::run`] republishes already-published events when it
    /// starts (zero: not at all).
    ///
    /// An in-process bus lives in memory: an event marked published but not yet consumed when
    /// the process died (a crash, `kill -9`, or a shutdown that stopped a consumer before the
    /// last relay pass) is gone with it, and the consumer would never learn of the change.
    /// Republishing recent events at start closes that gap; consumers de-duplicate by event id
    /// ([`super::process_event`]), so what they had already processed is skipped. Redis Streams
    /// keeps undelivered events itself and needs no replay.
    pub fn replay_window(mut self, window: Duration) -> Self {
        self.replay_window = window;
        self
    }

    /// Republishes the events published within the replay window, oldest first; returns how
    /// many.
    pub async fn replay_recent(&self) -> Result<usize, EventError> {
        if self.replay_window.is_zero() {
            return Ok(0);
        }
        let age = chrono::Duration::from_std(self.replay_window).unwrap_or(chrono::Duration::MAX);
        let cutoff = Utc::now()
            .checked_sub_signed(age)
            .map_or(i64::MIN, |t| t.timestamp_micros());
        let mut after = String::new();
        let mut replayed = 0;
        loop {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM switchyard_outbox
                 WHERE published_at IS NOT NULL AND published_at >= $1 AND id > $2
                 ORDER BY id LIMIT $3"
            )))
            .bind(cutoff)
            .bind(after.clone())
            .bind(i64::try_from(self.batch_size).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?;
            let events = rows.iter().map(decode_row).collect::<Result<Vec<_>, _>>()?;
            let Some(last) = events.last() else {
                return Ok(replayed);
            };
            after = last.id.to_string();
            self.bus.publish_batch(&events).await?;
            replayed += events.len();
        }
    }

    /// Counts published events and failed passes in `metrics`.
    pub fn metrics(mut self, metrics: &crate::metrics::ServiceMetrics) -> Self {
        self.metrics = Some(metrics.outbox());
        self
    }

    /// Sets how many rows one pass reads (1..=1000; each is a bind parameter when marking).
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.clamp(1, 1000);
        self
    }

    /// Sets how often the relay looks for rows when nobody wakes it.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Asks the running relay to look now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// One pass: publishes up to one batch and returns how many rows it published.
    pub async fn relay_once(&self) -> Result<usize, EventError> {
        let mut conn = self.pool.acquire().await?;
        if conn.backend_name() == "PostgreSQL" {
            // Several replicas of a service may relay the same outbox: lock the batch and skip
            // rows another relay holds, so each row is published by one of them.
            let mut tx = conn.begin().await?;
            let result = self.relay_batch(&mut tx, " FOR UPDATE SKIP LOCKED").await;
            let committed = tx.commit().await;
            let published = result?;
            committed?;
            Ok(published)
        } else {
            // SQLite is one embedded writer; autocommit statements avoid upgrading a read
            // transaction to a write one, which SQLite refuses instead of waiting.
            self.relay_batch(&mut conn, "").await
        }
    }

    async fn relay_batch(&self, conn: &mut AnyConnection, lock: &str) -> Result<usize, EventError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM switchyard_outbox
             WHERE published_at IS NULL ORDER BY id LIMIT $1{lock}"
        )))
        .bind(i64::try_from(self.batch_size).unwrap_or(i64::MAX))
        .fetch_all(&mut *conn)
        .await?;
        let mut events = rows.iter().map(decode_row).collect::<Result<Vec<_>, _>>()?;
        if events.is_empty() {
            return Ok(0);
        }
        // A producer span per traced event, from when the change committed to when the bus took
        // it (time spent in the outbox shows); consumers continue under it.
        let spans = self.publish_spans(&mut events);
        // One bus round trip and one statement marking the batch (one commit, not one per
        // row). If publishing fails nothing is marked: the whole batch goes again next pass.
        if let Err(e) = self.bus.publish_batch(&events).await {
            for mut span in spans {
                span.set_error(e.to_string());
            }
            return Err(e);
        }
        drop(spans);
        let placeholders: Vec<String> = (2..events.len() + 2).map(|i| format!("${i}")).collect();
        let mut mark = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE switchyard_outbox SET published_at = $1 WHERE id IN ({})",
            placeholders.join(", ")
        )))
        .bind(Utc::now().timestamp_micros());
        for event in &events {
            mark = mark.bind(event.id.to_string());
        }
        mark.execute(&mut *conn).await?;
        Ok(events.len())
    }

    /// Starts a producer span for each event that carries a trace context and points the event
    /// at it (only the published copy; the outbox row keeps the original).
    fn publish_spans(&self, events: &mut [Event]) -> Vec<switchyard_telemetry::trace::Span> {
        let Some(tracer) = self.metrics.as_ref().map(|m| m.tracer()) else {
            return Vec::new();
        };
        if !tracer.is_enabled() {
            return Vec::new();
        }
        let mut spans = Vec::new();
        for event in events.iter_mut() {
            let Some(parent) = event.trace_context() else {
                continue;
            };
            let mut span = tracer.start(
                format!("publish {}", event.event_type),
                switchyard_telemetry::trace::SpanKind::Producer,
                Some(&parent),
            );
            span.set_start(event.occurred_at.into());
            span.set_attribute("messaging.operation.type", "send");
            span.set_attribute("messaging.message.id", event.id.to_string());
            if let Some(context) = span.context() {
                event.trace_parent = Some(context.to_traceparent());
            }
            spans.push(span);
        }
        spans
    }

    /// Relays until `shutdown` is cancelled; errors are logged and retried after a poll interval.
    /// Starts by republishing the replay window ([`OutboxRelay::replay_window`]).
    pub async fn run(self, shutdown: CancellationToken) {
        match self.replay_recent().await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(
                events = n,
                "republished recent events to the in-process bus"
            ),
            Err(e) => tracing::warn!(error = %e, "republishing recent events failed"),
        }
        loop {
            let full_batch = match self.relay_once().await {
                Ok(n) => {
                    if let Some(metrics) = &self.metrics {
                        metrics.published(n);
                    }
                    n == self.batch_size
                }
                Err(e) => {
                    if let Some(metrics) = &self.metrics {
                        metrics.failed(matches!(e, EventError::Database(_)));
                    }
                    tracing::warn!(error = %e, "outbox relay pass failed; retrying");
                    false
                }
            };
            if full_batch && !shutdown.is_cancelled() {
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.poll_interval) => {}
            }
        }
    }

    /// Spawns [`OutboxRelay::run`] on the current runtime.
    pub fn spawn(&self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.clone().run(shutdown))
    }
}
