//! `switchyard-subgraph-kit`: what every Switchyard subgraph service stands on.
//!
//! Services (auth, profile, content, chat, analytics) are independent Apollo Federation v2
//! subgraphs, each on its own database. What they must agree on lives here, once, so they cannot
//! drift apart:
//!
//! - [`server`]: the axum router (`/graphql` incl. WebSocket subscriptions, `/health`, `/ready`)
//!   and graceful shutdown.
//! - [`config`]: typed config from defaults + file + environment.
//! - [`telemetry`]: tracing init with `RUST_LOG` filters and optional JSON.
//! - [`schema`]: the federation SDL for `--print-schema` and the shared CLI flags.
//! - [`db`]: SQLite/PostgreSQL pools behind `sqlx::Any`.
//! - [`events`]: the event bus with a transactional outbox and idempotent consumers — the only
//!   way data moves between services besides federated entities.
//!
//! The kit must never depend on a service crate, and services must not depend on each other;
//! `tests/dependency_rule.rs` enforces that from `cargo metadata`.

pub mod config;
pub mod db;
pub mod events;
pub mod schema;
pub mod server;
pub mod telemetry;

pub use config::{ConfigError, ConfigLoader};
pub use events::{
    process_event, Delivery, Event, EventBus, EventConsumer, EventError, EventHandler, OutboxRelay,
    Processed, Subscription,
};
pub use schema::{federation_sdl, SubgraphArgs};
pub use server::{router, serve, shutdown_signal, AlwaysReady, NotReady, ReadinessCheck};
pub use telemetry::init_tracing;
