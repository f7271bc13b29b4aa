//! `switchyard-subgraph-kit`: what every Switchyard subgraph service stands on.
//!
//! Services (auth, profile, content, chat, analytics) are independent Apollo Federation v2
//! subgraphs, each on its own database. What they must agree on lives here, once, so they cannot
//! drift apart:
//!
//! - [`server`]: the axum router (`/graphql` incl. WebSocket subscriptions, `/health`, `/ready`)
//!   and graceful shutdown, on the gateway's guarded server loop.
//! - [`guards`]: the gateway's request limits in every service (body, depth, aliases, fields,
//!   root fields with fragments expanded; no batching; no mutations over GET; introspection
//!   settable), from `switchyard-guard`.
//! - [`config`]: typed config from defaults + file + environment.
//! - [`init_tracing`]: tracing init with `RUST_LOG` filters and optional JSON (it lives in
//!   switchyard-telemetry, so the gateway-only CLI build shares it without linking the kit).
//! - [`metrics`]: each service's Prometheus series and `/status` report (database, outbox
//!   backlog, consumer lag, the store's own gauges), served apart from the GraphQL port.
//! - [`schema`]: the federation SDL for `--print-schema` and the shared CLI flags.
//! - [`db`]: SQLite/PostgreSQL pools behind `sqlx::Any`, and [`db::Db`], a store's pool that
//!   counts its statements (tests pin per-request round trips with it).
//! - [`batch`]: [`batch::Batcher`], which merges the concurrent per-item lookups of one list
//!   (an `_entities` request, a page's per-item fields) into one set-based query.
//! - [`auth`]: who is calling — access-token (JWT EdDSA) verification against the auth
//!   service's JWKS, and `caller(ctx)` for resolvers.
//! - [`crypto`]: encryption at rest for personal data (AEAD keyring with rotation, keyed hashes
//!   for lookups on encrypted columns).
//! - [`pagination`]: the shared `PageInfo` type and opaque cursors.
//! - [`testing`]: test support (throwaway PostgreSQL databases, Redis) shared by every crate's tests.
//! - [`members`]: each service's own record of existing and deleted members (from auth's
//!   events): refuses deleted accounts' tokens, validates member ids clients send.
//! - [`erasure`]: account erasure as a tracked saga — started in the consumer's transaction,
//!   finished (files scrubbed, `erasure.completed` raised) by a task that resumes after a crash.
//! - [`events`]: the event bus with a transactional outbox and idempotent consumers — the only
//!   way data moves between services besides federated entities.
//! - [`runner`]: a service's lifecycle — serving, outbox relay, consumers under a stable name,
//!   pruning of the event tables, shutdown — which every service runs through.
//!
//! A service's `main`, end to end (compiled as a doctest so it stays true):
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema};
//! use clap::Parser;
//! use serde::{Deserialize, Serialize};
//! use switchyard_subgraph_kit::events::{outbox, EventBus, OutboxRelay};
//! use switchyard_subgraph_kit::{db, server, ConfigLoader, ServiceRunner, SubgraphArgs};
//!
//! #[derive(Serialize, Deserialize)]
//! #[serde(default)]
//! struct ProfileConfig {
//!     listen: std::net::SocketAddr,
//!     database_url: String,
//!     redis_url: Option<String>,
//! }
//!
//! impl Default for ProfileConfig {
//!     fn default() -> Self {
//!         ProfileConfig {
//!             listen: "127.0.0.1:4102".parse().unwrap(),
//!             database_url: "sqlite://data/profile.db?mode=rwc".into(),
//!             redis_url: None,
//!         }
//!     }
//! }
//!
//! struct Query;
//!
//! #[Object]
//! impl Query {
//!     async fn hello(&self) -> &str {
//!         "hello"
//!     }
//! }
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     common: SubgraphArgs,
//! }
//!
//! #[tokio::main]
//! async fn main() -> anyhow::Result<()> {
//!     let cli = Cli::parse();
//!     let schema = Schema::build(Query, EmptyMutation, EmptySubscription)
//!         .enable_federation()
//!         .finish();
//!     if cli.common.print_schema {
//!         print!("{}", switchyard_subgraph_kit::federation_sdl(&schema));
//!         return Ok(());
//!     }
//!     cli.common.init_tracing("info");
//!     let config: ProfileConfig = ConfigLoader::new("PROFILE")
//!         .file(cli.common.config.as_ref())
//!         .alias("DATABASE_URL", "database_url")
//!         .alias("REDIS_URL", "redis_url")
//!         .load()?;
//!     let pool = db::connect(&config.database_url, 8).await?;
//!     outbox::migrate(&pool).await?;
//!     let bus = EventBus::from_redis_url(config.redis_url.as_deref()).await?;
//!     let mut runner = ServiceRunner::new("profile", pool.clone(), bus.clone());
//!     runner.relay(OutboxRelay::new(pool.clone(), bus));
//!     let router = server::service_router(schema, Arc::new(pool), runner.metrics());
//!     let listener = server::bind(config.listen).await?;
//!     runner.serve(listener, router, None, server::shutdown_on_signal()).await?;
//!     Ok(())
//! }
//! ```
//!
//! The kit must never depend on a service crate, and services must not depend on each other;
//! `tests/dependency_rule.rs` enforces that from `cargo metadata`.

pub mod auth;
pub mod batch;
pub mod config;
pub mod crypto;
pub mod db;
pub mod erasure;
pub mod events;
pub mod guards;
pub mod members;
pub mod metrics;
pub mod pagination;
pub mod runner;
pub mod schema;
pub mod server;
pub mod testing;

pub use config::{ConfigError, ConfigLoader};
pub use erasure::Erasure;
pub use events::{
    process_event, Delivery, Event, EventBus, EventConsumer, EventError, EventHandler, GroupLag,
    OutboxRelay, Processed, Subscription,
};
pub use members::{MemberDirectory, MemberState};
pub use metrics::{Check, Level, ServiceMetrics, StatusReport};
pub use runner::ServiceRunner;
pub use schema::{federation_sdl, SubgraphArgs};
pub use server::{
    router, serve, service_router, shutdown_on_signal, shutdown_signal, AlwaysReady, ClientAddress,
    NotReady, ReadinessCheck,
};
pub use switchyard_telemetry::init_tracing;
