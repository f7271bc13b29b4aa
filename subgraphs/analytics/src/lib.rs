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
//! (see [`schema`]). The only event it publishes is `erasure.completed` (the kit's erasure
//! saga, started by `account.deleted`), through an outbox relay like every publisher.

pub mod config;
pub mod schema;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use switchyard_subgraph_kit::server::{self, ReadinessCheck};
use switchyard_subgraph_kit::{db, Erasure, EventBus, EventConsumer, OutboxRelay, ServiceRunner};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Config;
pub use schema::{build_schema, AnalyticsSchema};
pub use store::{AnalyticsHandler, Store, CONSUMER_GROUP};

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
        let mut runner =
            ServiceRunner::new("analytics", self.store.pool().clone(), self.bus.clone())
                .consumer_name(self.config.consumer_name.as_deref());
        runner
            .metrics()
            .trace_to(self.config.otlp_endpoint.as_deref())
            .context("setting up tracing")?;
        // Analytics publishes one event of its own, `erasure.completed`.
        let pool = self.store.pool().clone();
        let relay = OutboxRelay::new(pool.clone(), self.bus.clone());
        runner.relay(relay.clone());
        let erasure = Erasure::open("analytics", pool.clone(), Some(relay))
            .await
            .map_err(|e| anyhow::anyhow!(e))
            .context("opening analytics' erasure record")?;
        runner
            .consumer(
                EventConsumer::new(pool, CONSUMER_GROUP, erasure.track(AnalyticsHandler))
                    .batch_size(128)
                    .wait(Duration::from_millis(500)),
            )
            .await
            .context("joining the analytics consumer group")?;
        runner.erasure(erasure);
        let readiness: Vec<Arc<dyn ReadinessCheck>> = vec![
            Arc::new(self.store.pool().clone()),
            Arc::new(self.bus.clone()),
        ];
        let router =
            server::service_router(self.schema.clone(), Arc::new(readiness), runner.metrics());
        runner
            .serve(listener, router, self.config.metrics_listen, shutdown)
            .await
            .context("serving the analytics service")
    }
}
