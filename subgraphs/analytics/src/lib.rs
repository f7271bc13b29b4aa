//! The analytics subgraph: counters and time series fed by events.
//!
//! It reads the bus in its own consumer group ([`CONSUMER_GROUP`], `"analytics"`) and turns
//! `post.created`/`post.deleted`, `post.viewed`, `reaction.added`, `comment.added`,
//! `message.sent`, `connection.accepted` and `profile.viewed` into rollups (see [`store`]);
//! `account.deleted` erases the member's counters and takes their posts out of trending. Each
//! event's id is recorded in the same transaction as its counter changes (the kit's
//! `process_event`), so redelivered and replayed events never count twice.
//!
//! It contributes `Member.stats`, `Post.stats` and `Query.trendingPosts` to the supergraph
//! (see [`schema`]). Analytics publishes no events, so it runs no outbox relay.

pub mod batch;
pub mod config;
pub mod schema;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use switchyard_subgraph_kit::events::outbox;
use switchyard_subgraph_kit::server::{self, ReadinessCheck};
use switchyard_subgraph_kit::{db, EventBus, EventConsumer, ServiceMetrics};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Config;
pub use schema::{build_schema, AnalyticsSchema};
pub use store::{AnalyticsHandler, Store, CONSUMER_GROUP};

/// How long de-duplication records are kept: longer than any redelivery can take (the Redis
/// claim timeout is 30 s; outages of days are covered too).
const PROCESSED_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// The subgraph's federation SDL (what `--print-schema` prints); needs no store.
pub fn sdl() -> String {
    switchyard_subgraph_kit::federation_sdl(&build_schema(None))
}

/// A consumer that applies bus events to `store` in group [`CONSUMER_GROUP`].
pub fn consumer(store: &Store) -> EventConsumer<AnalyticsHandler> {
    EventConsumer::new(store.pool().clone(), CONSUMER_GROUP, AnalyticsHandler)
        .batch_size(128)
        .wait(Duration::from_millis(500))
}

/// The analytics service: its store, schema and bus, ready to serve.
pub struct Service {
    config: Config,
    store: Store,
    schema: AnalyticsSchema,
    bus: EventBus,
}

impl Service {
    /// Opens/creates the store (SQLite under `config.data_dir` unless `database_url` is set),
    /// migrates it and builds the schema. Events are consumed from `bus` once [`Service::serve`]
    /// runs.
    pub async fn open(config: Config, bus: EventBus) -> anyhow::Result<Service> {
        let url = config.effective_database_url();
        if config.database_url.is_none() {
            std::fs::create_dir_all(&config.data_dir).with_context(|| {
                format!("creating data directory {}", config.data_dir.display())
            })?;
        }
        let pool = db::connect(&url, config.max_connections)
            .await
            .context("opening the analytics database")?;
        let store = Store::open(pool)
            .await
            .context("migrating the analytics database")?;
        let schema = build_schema(Some(store.clone()));
        Ok(Service {
            config,
            store,
            schema,
            bus,
        })
    }

    /// The executable schema (for tests and embedding).
    pub fn schema(&self) -> AnalyticsSchema {
        self.schema.clone()
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Serves `/graphql`, `/health` and `/ready` on `listener` and consumes events until
    /// `shutdown` is cancelled; then drains in-flight requests and stops the consumer.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let member = self.config.effective_consumer_name();
        let subscription = self
            .bus
            .subscribe_as(CONSUMER_GROUP, &member)
            .await
            .context("joining the analytics consumer group")?;
        let metrics = ServiceMetrics::new("analytics");
        metrics
            .trace_to(self.config.otlp_endpoint.as_deref())
            .context("setting up tracing")?;
        metrics.watch_database(self.store.pool().clone());
        metrics.watch_consumer(self.bus.clone(), CONSUMER_GROUP);
        let metrics_task =
            server::serve_metrics(self.config.metrics_listen, &metrics, shutdown.clone())
                .await
                .context("starting the analytics metrics listener")?;
        let consumer_task = tokio::spawn(
            consumer(&self.store)
                .metrics(&metrics)
                .run(subscription, shutdown.clone()),
        );
        let prune_task = tokio::spawn(prune_processed(self.store.clone(), shutdown.clone()));

        let readiness: Vec<Arc<dyn ReadinessCheck>> = vec![
            Arc::new(self.store.pool().clone()),
            Arc::new(self.bus.clone()),
        ];
        let router = server::service_router(self.schema.clone(), Arc::new(readiness), &metrics);
        let served = server::serve(listener, router, shutdown.clone().cancelled_owned()).await;
        // Whatever ended serving, stop the background tasks too.
        shutdown.cancel();
        if let Some(task) = metrics_task {
            task.await.context("metrics listener task")?;
        }
        consumer_task.await.context("event consumer task")?;
        prune_task.await.context("pruning task")?;
        self.store.pool().close().await;
        served.context("serving HTTP")?;
        Ok(())
    }
}

/// Drops old de-duplication records every hour so the table does not grow without bound.
async fn prune_processed(store: Store, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
        }
        match outbox::prune_processed(store.pool(), PROCESSED_RETENTION).await {
            Ok(n) if n > 0 => tracing::info!(pruned = n, "pruned processed-event records"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "pruning processed-event records failed"),
        }
    }
}
