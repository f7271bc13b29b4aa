//! Idempotent consumers: at-least-once delivery in, effectively-once processing out.
//!
//! The bus may deliver an event more than once (relay crash before marking a row published,
//! consumer crash before acknowledging). [`process_event`] therefore claims the event id in the
//! consumer's own `switchyard_processed_events` table and runs the handler **in the same
//! transaction**: the claim commits exactly when the handler's changes do, so a replay finds the
//! id and is skipped, and a failed handler leaves no claim behind and is retried.

use std::future::Future;
use std::time::Duration;

use chrono::Utc;
use sqlx::{AnyConnection, AnyPool};
use tokio_util::sync::CancellationToken;

use super::{BoxError, Delivery, Event, EventError, Subscription};

/// What a consumer does with one event, inside the consumer's database transaction.
pub trait EventHandler: Send + Sync {
    /// Applies `event`, writing through `conn` (the open transaction). Returning an error rolls
    /// the transaction back and leaves the event for redelivery.
    fn handle(
        &self,
        conn: &mut AnyConnection,
        event: &Event,
    ) -> impl Future<Output = Result<(), BoxError>> + Send;

    /// Called after the transaction in which `event` was handled committed (not for
    /// duplicates): for work that must see the committed state, such as waking a task that
    /// reads it. Does nothing unless overridden.
    fn committed(&self, event: &Event) {
        let _ = event;
    }
}

/// The outcome of [`process_event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Processed {
    /// The handler ran and its changes committed.
    Handled,
    /// This group had already processed the event; the handler did not run.
    Duplicate,
}

/// Runs `handler` for `event` at most once per `consumer_group`, whatever the redeliveries.
pub async fn process_event<H: EventHandler>(
    pool: &AnyPool,
    consumer_group: &str,
    event: &Event,
    handler: &H,
) -> Result<Processed, EventError> {
    let mut tx = crate::db::begin(pool).await?;
    // Writing first takes the write lock at once (SQLite) or blocks a concurrent duplicate on the
    // primary key until this transaction ends (PostgreSQL), so two members racing on one event
    // cannot both run the handler.
    let claimed = sqlx::query(
        "INSERT INTO switchyard_processed_events (consumer_group, event_id, processed_at)
         VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(consumer_group.to_owned())
    .bind(event.id.to_string())
    .bind(Utc::now().timestamp_micros())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if claimed == 0 {
        tx.rollback().await?;
        return Ok(Processed::Duplicate);
    }
    handler
        .handle(&mut tx, event)
        .await
        .map_err(EventError::Handler)?;
    tx.commit().await?;
    Ok(Processed::Handled)
}

/// The consumer loop: pull a batch, process each event idempotently, acknowledge.
pub struct EventConsumer<H> {
    pool: AnyPool,
    group: String,
    handler: H,
    batch_size: usize,
    wait: Duration,
    retry_backoff: Duration,
    shutdown_grace: Duration,
    metrics: Option<crate::metrics::ConsumerMetrics>,
}

impl<H: EventHandler> EventConsumer<H> {
    /// A consumer for `group`, recording processed ids in `pool` (the consumer's own database).
    pub fn new(pool: AnyPool, group: impl Into<String>, handler: H) -> Self {
        EventConsumer {
            pool,
            group: group.into(),
            handler,
            batch_size: 64,
            wait: Duration::from_secs(1),
            retry_backoff: Duration::from_millis(500),
            shutdown_grace: Duration::from_secs(5),
            metrics: None,
        }
    }

    /// Counts handled, duplicate and failed events in `metrics` (under this consumer's group).
    pub fn metrics(mut self, metrics: &crate::metrics::ServiceMetrics) -> Self {
        self.metrics = Some(metrics.consumer(&self.group));
        self
    }

    /// Sets the maximum batch size.
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// Sets how long one pull waits for events before checking for shutdown again.
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// Sets the pause after a failed event, so a persistent failure does not spin.
    pub fn retry_backoff(mut self, backoff: Duration) -> Self {
        self.retry_backoff = backoff;
        self
    }

    /// Sets how long [`EventConsumer::run`] lets the event in hand finish after shutdown is
    /// asked for, before dropping it (uncommitted, so it is redelivered): a stuck handler must
    /// not hold a service's shutdown forever.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// The consumer group name.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Processes one pulled batch; returns how many events were handled (not duplicates).
    ///
    /// A failed event is given back to the bus and the rest of the batch still runs.
    pub async fn run_batch(&self, subscription: &mut Subscription) -> Result<usize, EventError> {
        let batch = subscription.next_batch(self.batch_size, self.wait).await?;
        self.process_batch(subscription, &batch, None).await
    }

    /// Processes and acknowledges `batch` in order. Once `shutdown` is cancelled no further
    /// event is started: the rest are given back to the bus for redelivery.
    async fn process_batch(
        &self,
        subscription: &mut Subscription,
        batch: &[Delivery],
        shutdown: Option<&CancellationToken>,
    ) -> Result<usize, EventError> {
        let mut handled = 0;
        for (at, delivery) in batch.iter().enumerate() {
            if shutdown.is_some_and(CancellationToken::is_cancelled) {
                for rest in &batch[at..] {
                    subscription.nack(rest).await?;
                }
                break;
            }
            let mut span = self.span(&delivery.event);
            let process = process_event(&self.pool, &self.group, &delivery.event, &self.handler);
            // Events the handler raises continue this trace.
            let result = match span.context() {
                Some(context) => switchyard_telemetry::trace::scope(Some(context), process).await,
                None => process.await,
            };
            if span.is_recording() {
                match &result {
                    Ok(outcome) => span.set_attribute(
                        "switchyard.event.duplicate",
                        *outcome == Processed::Duplicate,
                    ),
                    Err(e) => span.set_error(e.to_string()),
                }
            }
            drop(span);
            if let Some(metrics) = &self.metrics {
                match &result {
                    Ok(outcome) => metrics.record(Some(*outcome == Processed::Handled), false),
                    Err(e) => metrics.record(None, matches!(e, EventError::Database(_))),
                }
            }
            match result {
                Ok(outcome) => {
                    subscription.ack(delivery).await?;
                    if outcome == Processed::Handled {
                        self.handler.committed(&delivery.event);
                        handled += 1;
                    } else {
                        tracing::debug!(group = %self.group, id = %delivery.event.id, "skipped replayed event");
                    }
                }
                Err(e) => {
                    tracing::warn!(group = %self.group, id = %delivery.event.id, error = %e, "event processing failed; will retry");
                    subscription.nack(delivery).await?;
                    tokio::time::sleep(self.retry_backoff).await;
                }
            }
        }
        Ok(handled)
    }

    /// A consumer span under the event's trace context (inert when tracing is off or the event
    /// carries none: a trace is only continued here, never started).
    fn span(&self, event: &Event) -> switchyard_telemetry::trace::Span {
        let tracer = match &self.metrics {
            Some(metrics) if metrics.tracer().is_enabled() => metrics.tracer(),
            _ => return switchyard_telemetry::trace::Span::none(),
        };
        let Some(parent) = event.trace_context() else {
            return switchyard_telemetry::trace::Span::none();
        };
        let mut span = tracer.start(
            format!("{} process {}", self.group, event.event_type),
            switchyard_telemetry::trace::SpanKind::Consumer,
            Some(&parent),
        );
        span.set_attribute("messaging.operation.type", "process");
        span.set_attribute("messaging.consumer.group.name", self.group.clone());
        span.set_attribute("messaging.message.id", event.id.to_string());
        span
    }

    /// Runs until `shutdown` is cancelled. Bus errors are logged and retried after a backoff.
    ///
    /// Shutdown stops the wait for the next batch at once, but lets the event in hand finish
    /// (for up to the shutdown grace): cancelling it between its commit and its acknowledgement
    /// would leave a processed event pending, to be claimed and skipped as a duplicate later.
    pub async fn run(self, mut subscription: Subscription, shutdown: CancellationToken) {
        loop {
            let batch = tokio::select! {
                _ = shutdown.cancelled() => return,
                batch = subscription.next_batch(self.batch_size, self.wait) => batch,
            };
            let result = match batch {
                Ok(batch) => {
                    let grace = async {
                        shutdown.cancelled().await;
                        tokio::time::sleep(self.shutdown_grace).await;
                    };
                    tokio::select! {
                        result = self.process_batch(&mut subscription, &batch, Some(&shutdown)) => result,
                        () = grace => return,
                    }
                }
                Err(e) => Err(e),
            };
            if shutdown.is_cancelled() {
                return;
            }
            if let Err(e) = result {
                tracing::warn!(group = %self.group, error = %e, "event consumer pull failed; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(self.retry_backoff) => {}
                }
            }
        }
    }
}
