//! The profile subgraph: members, connections and the graph questions asked of them (degree of
//! connection with a path, mutual connections, people you may know).
//!
//! - [`store`]: the [`GraphStore`] trait, the embedded store (SQL rows + in-memory adjacency
//!   index), the FalkorDB store and the Neo4j/Memgraph store.
//! - [`schema`]: `Member @key(fields: "id")` and the queries and mutations.
//! - [`events`]: consumes `account.created` / `account.deleted` (group `profile`).
//! - [`views`]: rate-limited `profile.viewed` events.
//!
//! Emits `connection.accepted` and `profile.viewed` through the transactional outbox in the
//! service's SQL database (SQLite under `data_dir`, or `database_url`).

// The `falkordb` client's futures nest deeper than the default limit allows once the FalkorDB
// store's reads run inside its batchers' load functions (see `store/falkor.rs`).
#![recursion_limit = "256"]

pub mod config;
pub mod events;
pub mod schema;
pub mod store;
#[cfg(feature = "falkordb")]
pub mod testing;
pub mod views;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures::future::BoxFuture;
use sqlx::AnyPool;
use switchyard_subgraph_kit::auth::JwtVerifier;
use switchyard_subgraph_kit::events::outbox;
use switchyard_subgraph_kit::server::{self, NotReady, ReadinessCheck};
use switchyard_subgraph_kit::{
    db, Erasure, EventBus, EventConsumer, EventHandler, MemberDirectory, OutboxRelay, ServiceRunner,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::{Config, GraphBackend};
pub use events::{AccountEvents, CONSUMER_GROUP};
pub use schema::{build_schema, ProfileDeps, ProfileSchema};
pub use store::{EmbeddedGraphStore, GraphSize, GraphStore, StoreError};
pub use views::ViewTracker;

/// How often leftover graph-store events are handed to the outbox, and how old they must be.
const HAND_OVER_EVERY: Duration = Duration::from_secs(5);

/// The subgraph's federation SDL (what `--print-schema` prints); needs no store.
pub fn sdl() -> String {
    switchyard_subgraph_kit::federation_sdl(&build_schema(None, None))
}

/// A consumer applying account events to `store`, de-duplicating in `pool`.
pub fn consumer(pool: AnyPool, store: Arc<dyn GraphStore>) -> EventConsumer<AccountEvents> {
    consumer_with(pool, AccountEvents::new(store))
}

fn consumer_with<H: EventHandler>(pool: AnyPool, handler: H) -> EventConsumer<H> {
    EventConsumer::new(pool, CONSUMER_GROUP, handler)
        .batch_size(64)
        .wait(Duration::from_millis(500))
}

/// Opens the graph store the configuration names (`graph_url`: FalkorDB or Neo4j; none: the
/// embedded store on `pool`).
pub async fn open_store(config: &Config, pool: AnyPool) -> anyhow::Result<Arc<dyn GraphStore>> {
    let url = config.effective_graph_url().unwrap_or_default();
    match config.graph_backend()? {
        GraphBackend::Embedded => {
            let store = EmbeddedGraphStore::open(pool)
                .await
                .context("loading the embedded graph store")?;
            Ok(Arc::new(store))
        }
        #[cfg(feature = "falkordb")]
        GraphBackend::FalkorDb => {
            let falkor = store::FalkorConfig {
                url: url.to_owned(),
                graph: config.graph_name.clone(),
            };
            let store = store::FalkorGraphStore::connect(&falkor, pool)
                .await
                .context("connecting to FalkorDB")?;
            Ok(Arc::new(store))
        }
        #[cfg(feature = "neo4j")]
        GraphBackend::Neo4j => {
            let neo = store::Neo4jConfig {
                uri: url.to_owned(),
                user: config.neo4j_user.clone(),
                password: config.neo4j_password.clone(),
            };
            let store = store::Neo4jGraphStore::connect(&neo, pool)
                .await
                .context("connecting to Neo4j")?;
            Ok(Arc::new(store))
        }
        #[allow(unreachable_patterns)]
        backend => {
            let _ = url;
            anyhow::bail!(
                "graph_url selects {backend:?}, which this build leaves out (cargo feature)"
            )
        }
    }
}

/// `/ready` for the graph store.
struct StoreReady(Arc<dyn GraphStore>);

impl ReadinessCheck for StoreReady {
    fn check(&self) -> BoxFuture<'_, Result<(), NotReady>> {
        Box::pin(async move {
            self.0
                .ping()
                .await
                .map_err(|e| NotReady(format!("graph store: {e}")))
        })
    }
}

/// The profile service: its stores, schema and bus, ready to serve.
pub struct Service {
    config: Config,
    pool: AnyPool,
    store: Arc<dyn GraphStore>,
    members: MemberDirectory,
    erasure: Erasure,
    relay: OutboxRelay,
    schema: ProfileSchema,
    bus: EventBus,
}

impl Service {
    /// Opens/creates the stores (under `config.data_dir` unless a server URL is set), migrates,
    /// loads the graph and builds the schema. `bus` is published to (via the outbox) and
    /// consumed from once [`Service::serve`] runs.
    pub async fn open(config: Config, bus: EventBus) -> anyhow::Result<Service> {
        if config.database_url.as_deref().is_none_or(str::is_empty) {
            std::fs::create_dir_all(&config.data_dir).with_context(|| {
                format!("creating data directory {}", config.data_dir.display())
            })?;
        }
        let pool = db::connect(&config.effective_database_url(), config.max_connections)
            .await
            .context("opening the profile database")?;
        outbox::migrate(&pool)
            .await
            .context("migrating the outbox")?;
        views::migrate(&pool)
            .await
            .context("migrating the profile database")?;
        let store = open_store(&config, pool.clone()).await?;
        // Events a crash left between a graph server and the SQL outbox leave first.
        let recovered = store
            .relay_pending_events(Duration::ZERO)
            .await
            .context("handing over events left in the graph store")?;
        if recovered > 0 {
            tracing::info!(
                recovered,
                "events left in the graph store handed to the outbox"
            );
        }
        let relay = OutboxRelay::new(pool.clone(), bus.clone());
        let members = MemberDirectory::open(pool.clone())
            .await
            .context("opening profile's member directory")?;
        let erasure = Erasure::open("profile", pool.clone(), Some(relay.clone()))
            .await
            .map_err(|e| anyhow::anyhow!(e))
            .context("opening profile's erasure record")?;
        let deps = ProfileDeps {
            store: store.clone(),
            views: ViewTracker::new(pool.clone(), Some(relay.clone())),
            relay: Some(relay.clone()),
            members: Some(members.clone()),
        };
        let verifier = JwtVerifier::from_jwks_url(config.jwks_url.clone());
        let schema = build_schema(Some(deps), Some(verifier));
        Ok(Service {
            config,
            pool,
            store,
            members,
            erasure,
            relay,
            schema,
            bus,
        })
    }

    /// The executable schema (for tests and embedding).
    pub fn schema(&self) -> ProfileSchema {
        self.schema.clone()
    }

    /// The graph store.
    pub fn store(&self) -> Arc<dyn GraphStore> {
        self.store.clone()
    }

    /// Serves `/graphql`, `/health` and `/ready` on `listener`, runs the outbox relay and the
    /// account-event consumer until `shutdown` is cancelled; then drains and returns.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let mut runner = ServiceRunner::new("profile", self.pool.clone(), self.bus.clone())
            .consumer_name(self.config.consumer_name.as_deref());
        runner
            .metrics()
            .trace_to(self.config.otlp_endpoint.as_deref())
            .context("setting up tracing")?;
        runner.relay(self.relay.clone());
        runner
            .consumer(consumer_with(
                self.pool.clone(),
                self.members
                    .track(self.erasure.track(AccountEvents::new(self.store.clone()))),
            ))
            .await
            .context("joining the profile consumer group")?;
        runner.erasure(self.erasure.clone());
        let (store, relay) = (self.store.clone(), self.relay.clone());
        runner.task("graph event hand-over", move |stop| {
            hand_over_events(store, relay, stop)
        });
        watch_graph(runner.metrics(), self.store.clone());
        let readiness: Vec<Arc<dyn ReadinessCheck>> = vec![
            Arc::new(self.pool.clone()),
            Arc::new(StoreReady(self.store.clone())),
            Arc::new(self.bus.clone()),
        ];
        let router =
            server::service_router(self.schema.clone(), Arc::new(readiness), runner.metrics());
        runner
            .serve(listener, router, self.config.metrics_listen, shutdown)
            .await
            .context("serving the profile service")
    }
}

/// Hands events a graph server holds (see [`GraphStore::relay_pending_events`]) to the outbox
/// every few seconds: those an operation could not hand over itself (the SQL database failed
/// just then), or that another instance sharing the graph left behind when it crashed.
/// The graph store's gauges, refreshed when scraped (stores that would need a query per
/// scrape report nothing: see [`GraphStore::graph_size`]).
fn watch_graph(metrics: &switchyard_subgraph_kit::ServiceMetrics, store: Arc<dyn GraphStore>) {
    if store.graph_size().is_none() {
        return;
    }
    let registry = metrics.registry();
    let members = registry.gauge(
        "switchyard_graph_members",
        "Members in the profile graph (deleted ones not counted).",
    );
    let connections = registry.gauge(
        "switchyard_graph_connections",
        "Connections (undirected edges) in the profile graph.",
    );
    let index_bytes = registry.gauge(
        "switchyard_graph_index_bytes",
        "Memory held by the profile graph's in-memory adjacency index.",
    );
    metrics.add_probe_fn(move || {
        if let Some(size) = store.graph_size() {
            let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
            members.set(gauge(size.members));
            connections.set(gauge(size.connections));
            index_bytes.set(gauge(size.index_bytes));
        }
        async { Vec::new() }
    });
}

async fn hand_over_events(
    store: Arc<dyn GraphStore>,
    relay: OutboxRelay,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(HAND_OVER_EVERY) => {}
        }
        match store.relay_pending_events(HAND_OVER_EVERY).await {
            Ok(0) => {}
            Ok(moved) => {
                tracing::info!(moved, "events handed over from the graph store");
                relay.wake();
            }
            Err(e) => tracing::warn!(error = %e, "handing over graph-store events failed"),
        }
    }
}
