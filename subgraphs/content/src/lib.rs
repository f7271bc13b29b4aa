//! `switchyard-content`: the content subgraph — posts, comments, reactions and full-text search.
//!
//! - [`store`]: SQLite/PostgreSQL tables, every change committed with its outbox event and (for
//!   posts) an index queue row.
//! - [`search`]: the tantivy index (BM25, typo tolerance, phrases, highlighted snippets).
//! - [`indexer`]: drains the index queue into the index; `reindex` rebuilds it.
//! - [`graphql`]: the schema; [`consumer`]: events from other services.
//!
//! [`Service`] wires them: `open` migrates the store, opens the index (rebuilding it when it is
//! new but the database is not), applies pending index changes; `serve` runs the HTTP server,
//! the outbox relay, the indexer and the event consumer until shutdown.

pub mod config;
pub mod consumer;
pub mod graphql;
pub mod indexer;
pub mod search;
pub mod store;

use std::sync::Arc;

use anyhow::Context as _;
use switchyard_subgraph_kit::auth::JwtVerifier;
use switchyard_subgraph_kit::server::{self, ReadinessCheck};
use switchyard_subgraph_kit::{
    Erasure, EventBus, EventConsumer, MemberDirectory, OutboxRelay, ServiceMetrics, ServiceRunner,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Config;
pub use graphql::{ContentSchema, ContentState};
pub use indexer::Indexer;
pub use search::SearchIndex;
pub use store::Store;

/// The subgraph's federation SDL (what `--print-schema` prints); needs no store.
pub fn sdl() -> String {
    switchyard_subgraph_kit::federation_sdl(&graphql::schema_builder().finish())
}

/// The content service: store, index, schema and bus, ready to serve.
pub struct Service {
    store: Store,
    members: MemberDirectory,
    index: Arc<SearchIndex>,
    bus: EventBus,
    relay: OutboxRelay,
    schema: ContentSchema,
    metrics_listen: Option<std::net::SocketAddr>,
    otlp_endpoint: Option<String>,
    consumer_name: Option<String>,
}

impl Service {
    /// Opens the stores (SQLite under `config.data_dir` unless `database_url` is set; the search
    /// index always under `<data_dir>/search`), migrates, catches the index up and builds the
    /// schema. Tokens are verified against `config.jwks_url`.
    pub async fn open(config: Config, bus: EventBus) -> anyhow::Result<Service> {
        let verifier = JwtVerifier::from_jwks_url(config.jwks_url.clone());
        Self::open_with_verifier(config, bus, verifier).await
    }

    /// [`Service::open`] with a given token verifier (tests use a JWKS they made).
    pub async fn open_with_verifier(
        config: Config,
        bus: EventBus,
        verifier: JwtVerifier,
    ) -> anyhow::Result<Service> {
        let (store, index) = open_stores(&config).await?;
        let indexer = Indexer::new(store.clone(), index.clone());
        // A new (or deleted) index over a database that has posts is rebuilt rather than left
        // empty: the queue only holds changes not yet applied, not the whole history.
        if index.applied_position()?.is_none() && store.count_posts().await? > 0 {
            let n = indexer.rebuild().await?;
            tracing::info!(
                posts = n,
                "search index was missing; rebuilt from the database"
            );
        }
        let applied = indexer.catch_up().await?;
        if applied > 0 {
            tracing::info!(
                changes = applied,
                "search index caught up with the database"
            );
        }
        let relay = OutboxRelay::new(store.pool().clone(), bus.clone());
        store.set_relay(relay.clone());
        // Refuses deleted accounts' tokens (content stores no member ids but its callers').
        let members = MemberDirectory::open(store.pool().clone())
            .await
            .context("cannot open content's member directory")?;
        let schema = graphql::schema_builder()
            .data(members.clone())
            .data(ContentState {
                store: store.clone(),
                index: index.clone(),
            })
            .data(verifier)
            .finish();
        Ok(Service {
            store,
            members,
            index,
            bus,
            relay,
            schema,
            metrics_listen: config.metrics_listen,
            otlp_endpoint: config.otlp_endpoint.clone(),
            consumer_name: config.consumer_name.clone(),
        })
    }

    /// The executable schema (for in-process tests and tools).
    pub fn schema(&self) -> &ContentSchema {
        &self.schema
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Which members content knows to exist or to be deleted (kept by its event consumer).
    pub fn members(&self) -> &MemberDirectory {
        &self.members
    }

    /// The search index.
    pub fn index(&self) -> &Arc<SearchIndex> {
        &self.index
    }

    /// An indexer over this service's store and index.
    pub fn indexer(&self) -> Indexer {
        Indexer::new(self.store.clone(), self.index.clone())
    }

    /// Serves `/graphql`, `/health`, `/ready` on `listener` and runs the outbox relay, the
    /// indexer and the event consumer until `shutdown` is cancelled; then drains and returns.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let mut runner = ServiceRunner::new("content", self.store.pool().clone(), self.bus.clone())
            .consumer_name(self.consumer_name.as_deref());
        runner
            .metrics()
            .trace_to(self.otlp_endpoint.as_deref())
            .context("setting up tracing")?;
        runner.relay(self.relay.clone());
        let purger = self.indexer();
        let erasure = Erasure::open(
            "content",
            self.store.pool().clone(),
            Some(self.relay.clone()),
        )
        .await
        .map_err(|e| anyhow::anyhow!(e))
        .context("opening content's erasure record")?
        // The member's posts left the database in the consumer's transaction; their
        // documents leave the index's files here.
        .finishing(move |_member| {
            let purger = purger.clone();
            async move {
                purger.purge_deleted().await?;
                Ok(())
            }
        });
        runner
            .consumer(EventConsumer::new(
                self.store.pool().clone(),
                consumer::GROUP,
                self.members.track(erasure.track(consumer::ContentEvents)),
            ))
            .await
            .context("joining the content consumer group")?;
        runner.erasure(erasure);
        let indexer = self.indexer();
        runner.task("search indexer", move |stop| indexer.run(stop));
        watch_search_index(runner.metrics(), self.store.clone(), self.index.clone());
        let readiness: Vec<Arc<dyn ReadinessCheck>> = vec![
            Arc::new(self.store.pool().clone()),
            Arc::new(self.bus.clone()),
        ];
        let router =
            server::service_router(self.schema.clone(), Arc::new(readiness), runner.metrics());
        runner
            .serve(listener, router, self.metrics_listen, shutdown)
            .await
            .context("content server failed")
    }
}

/// Rows waiting in the index queue before the search index is reported degraded.
pub const INDEX_QUEUE_DEGRADED: i64 = 1_000;

/// The search index's gauges and status line: changes waiting in the index queue, documents
/// indexed.
fn watch_search_index(metrics: &ServiceMetrics, store: Store, index: Arc<SearchIndex>) {
    use switchyard_subgraph_kit::{Check, Level};
    let queue = metrics.registry().gauge(
        "switchyard_search_index_queue_depth",
        "Post changes committed to the database but not yet applied to the search index.",
    );
    let documents = metrics.registry().gauge(
        "switchyard_search_index_documents",
        "Documents in the search index.",
    );
    metrics.add_probe_fn(move || {
        let (store, index, queue, documents) = (
            store.clone(),
            index.clone(),
            queue.clone(),
            documents.clone(),
        );
        async move {
            let docs = index.document_count();
            documents.set(i64::try_from(docs).unwrap_or(i64::MAX));
            match store.index_backlog().await {
                Ok(depth) => {
                    queue.set(depth);
                    let status = if depth >= INDEX_QUEUE_DEGRADED {
                        Level::Degraded
                    } else {
                        Level::Ok
                    };
                    let detail = if depth == 0 {
                        format!("up to date, {docs} documents")
                    } else {
                        format!("{depth} changes waiting, {docs} documents")
                    };
                    vec![Check::new("search index", status, detail)
                        .value("queue", depth as f64)
                        .value("documents", docs as f64)]
                }
                Err(e) => vec![Check::new(
                    "search index",
                    Level::Down,
                    format!("cannot read the index queue: {e}"),
                )],
            }
        }
    });
}

/// Opens the store and the index for `config` (shared by the service and `reindex`).
pub async fn open_stores(config: &Config) -> anyhow::Result<(Store, Arc<SearchIndex>)> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    let store = Store::open(&config.effective_database_url(), config.max_connections)
        .await
        .context("cannot open the content database")?;
    let dir = config.search_dir();
    let index = SearchIndex::open(&dir).with_context(|| {
        format!(
            "cannot open the search index at {} (is another switchyard-content using it?)",
            dir.display()
        )
    })?;
    Ok((store, Arc::new(index)))
}
