//! The chat subgraph: conversations between members, messages encrypted at rest, unread counts,
//! and live delivery of new messages over GraphQL subscriptions, across replicas.
//!
//! - [`store`]: SQLite (embedded) or PostgreSQL; messages keyed by `(conversation, seq)`.
//! - [`fanout`]: in-process broadcast or Redis pub/sub, so a message sent through one replica
//!   reaches `messageAdded` subscribers on every replica.
//! - [`schema`]: the GraphQL API (a federation v2 subgraph).
//!
//! Emits `message.sent` through the transactional outbox.

pub mod config;
pub mod consumers;
pub mod fanout;
pub mod schema;
pub mod store;

use std::sync::Arc;

use anyhow::Context as _;
use switchyard_subgraph_kit::auth::JwtVerifier;
use switchyard_subgraph_kit::crypto::FieldCipher;
use switchyard_subgraph_kit::events::{EventConsumer, OutboxRelay};
use switchyard_subgraph_kit::server::{self, ReadinessCheck};
use switchyard_subgraph_kit::{db, Erasure, EventBus, MemberDirectory, ServiceRunner};
use tokio_util::sync::CancellationToken;

pub use config::Config;
pub use fanout::{Fanout, FanoutCounts, InProcessFanout, RedisFanout};
pub use schema::{build_schema, ChatSchema, ChatState};
pub use store::Store;

/// The subgraph's federation SDL (what `--print-schema` prints); needs no store.
pub fn sdl() -> String {
    switchyard_subgraph_kit::federation_sdl(&build_schema(None, None))
}

/// A chat instance, opened and ready to serve.
pub struct Service {
    schema: ChatSchema,
    state: ChatState,
    bus: EventBus,
    metrics_listen: Option<std::net::SocketAddr>,
    otlp_endpoint: Option<String>,
    consumer_name: Option<String>,
}

impl Service {
    /// Opens/creates the stores (under `config.data_dir` unless a server URL is set), migrates,
    /// builds the schema. Tokens are checked against `config.jwks_url`.
    pub async fn open(config: Config, bus: EventBus) -> anyhow::Result<Service> {
        let verifier = JwtVerifier::from_jwks_url(config.jwks_url.clone());
        Self::open_with_verifier(config, bus, verifier).await
    }

    /// [`Service::open`] with a given token verifier (tests, or a JWKS known in advance).
    pub async fn open_with_verifier(
        config: Config,
        bus: EventBus,
        verifier: JwtVerifier,
    ) -> anyhow::Result<Service> {
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!("cannot create data directory {}", config.data_dir.display())
        })?;
        let pool = db::connect(&config.effective_database_url(), config.max_connections)
            .await
            .context("cannot open the chat database")?;
        let cipher = FieldCipher::load("CHAT", &config.secrets_dir())
            .context("cannot load the chat data keys")?;
        let store = Store::open(pool.clone(), cipher).await?;
        let members = MemberDirectory::open(pool.clone())
            .await
            .context("cannot open chat's member directory")?;
        let fanout: Arc<dyn Fanout> = match config.redis_url.as_deref().filter(|u| !u.is_empty()) {
            Some(url) => Arc::new(
                RedisFanout::connect(url)
                    .await
                    .context("cannot connect live delivery to Redis")?,
            ),
            None => Arc::new(InProcessFanout::new()),
        };
        let state = ChatState {
            store,
            fanout,
            relay: OutboxRelay::new(pool, bus.clone()),
            shutdown: CancellationToken::new(),
            members,
        };
        let schema = build_schema(Some(state.clone()), Some(verifier));
        Ok(Service {
            schema,
            state,
            bus,
            metrics_listen: config.metrics_listen,
            otlp_endpoint: config.otlp_endpoint.clone(),
            consumer_name: config.consumer_name.clone(),
        })
    }

    /// The executable schema (to run operations in-process).
    pub fn schema(&self) -> &ChatSchema {
        &self.schema
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.state.store
    }

    /// Which members chat knows to exist (kept by its event consumer).
    pub fn members(&self) -> &MemberDirectory {
        &self.state.members
    }

    /// Serves `/graphql` (POST, GET, WebSocket), `/health` and `/ready` on `listener` and runs
    /// the outbox relay and the event consumer until `shutdown` is cancelled; then ends open
    /// subscriptions, drains in-flight requests and returns.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let pool = self.state.store.pool().clone();
        let mut runner = ServiceRunner::new("chat", pool.clone(), self.bus.clone())
            .consumer_name(self.consumer_name.as_deref());
        runner
            .metrics()
            .trace_to(self.otlp_endpoint.as_deref())
            .context("setting up tracing")?;
        runner.relay(self.state.relay.clone());
        let erasure = Erasure::open("chat", pool.clone(), Some(self.state.relay.clone()))
            .await
            .map_err(|e| anyhow::anyhow!(e))
            .context("cannot open chat's erasure record")?;
        runner
            .consumer(EventConsumer::new(
                pool.clone(),
                consumers::CONSUMER_GROUP,
                self.state
                    .members
                    .track(erasure.track(consumers::ChatEvents)),
            ))
            .await
            .context("cannot subscribe to the event bus")?;
        runner.erasure(erasure);
        // Open subscriptions end with the service rather than hold its shutdown up.
        let subscriptions = self.state.shutdown.clone();
        runner.task("subscription shutdown", move |stop| async move {
            stop.cancelled().await;
            subscriptions.cancel();
        });
        watch_fanout(runner.metrics(), self.state.fanout.clone());
        let checks: Vec<Arc<dyn ReadinessCheck>> = vec![Arc::new(pool), Arc::new(self.bus.clone())];
        let router = server::service_router(self.schema, Arc::new(checks), runner.metrics());
        runner
            .serve(listener, router, self.metrics_listen, shutdown)
            .await
            .context("serving the chat service")
    }
}

/// Live delivery's gauges, refreshed when scraped: local subscribers and the conversations
/// they watch on this replica.
fn watch_fanout(metrics: &switchyard_subgraph_kit::ServiceMetrics, fanout: Arc<dyn Fanout>) {
    let subscribers = metrics.registry().gauge(
        "switchyard_chat_fanout_subscribers",
        "messageAdded subscriptions this replica delivers to now.",
    );
    let conversations = metrics.registry().gauge(
        "switchyard_chat_fanout_conversations",
        "Conversations with at least one subscriber on this replica.",
    );
    metrics.add_probe_fn(move || {
        let counts = fanout.local_counts();
        subscribers.set(i64::try_from(counts.subscribers).unwrap_or(i64::MAX));
        conversations.set(i64::try_from(counts.conversations).unwrap_or(i64::MAX));
        async { Vec::new() }
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn sdl_is_a_federation_2_subgraph_with_the_chat_api() {
        let sdl = super::sdl();
        for expected in [
            "specs.apollo.dev/federation/v2",
            "type Conversation @key(fields: \"id\")",
            "type Member @key(fields: \"id\")",
            "conversations(first: Int = 20, after: String): ConversationConnection\n",
            "messages(last: Int = 20, before: String): MessageConnection!",
            "startConversation(with: [ID!]!): Conversation!",
            "sendMessage(conversationId: ID!, body: String!): Message!",
            "markRead(conversationId: ID!): Conversation!",
            "unreadConversations: Int!",
            "type Subscription {",
            "messageAdded(conversationId: ID!): Message!",
            "type PageInfo @shareable",
        ] {
            assert!(sdl.contains(expected), "missing `{expected}` in:\n{sdl}");
        }
        assert!(!sdl.contains("_entities"), "{sdl}");
    }
}
