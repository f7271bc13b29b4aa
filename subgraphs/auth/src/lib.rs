//! The auth subgraph service: accounts, passwords, sessions, and the keys other services verify
//! access tokens with.
//!
//! - `signUp` / `logIn` return a short-lived JWT access token (EdDSA, 15 min) and an opaque
//!   refresh token (30 days, single use, rotated on every `refresh`; presenting a used one
//!   revokes its whole family — theft detection).
//! - Passwords are argon2id (PHC strings), hashed off the async workers, a bounded number at
//!   once; failed log-ins are throttled per account and per client address, sign-ups per
//!   address ([`throttle`]).
//! - Email and phone are encrypted at rest with the kit's `FieldCipher` (AAD = account id and
//!   field); logins find accounts by a keyed hash of the normalised email.
//! - `GET /.well-known/jwks.json` publishes the token-signing public keys.
//! - `account.created` / `account.deleted` leave through the transactional outbox.
//! - Account erasure: `deleteAccount` requests it from every service; their
//!   `erasure.completed` events (consumed in group `auth`) answer `Query.accountErasure`
//!   ([`erasures`]).

pub mod config;
pub mod core;
pub mod erasures;
pub mod keys;
pub mod rotate;
pub mod schema;
pub mod store;
pub mod throttle;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::routing::get;
use axum::Json;
use sqlx::AnyPool;
use switchyard_subgraph_kit::crypto::FieldCipher;
use switchyard_subgraph_kit::events::OutboxRelay;
use switchyard_subgraph_kit::{db, server, Erasure, EventBus, EventConsumer, ServiceRunner};
use tokio_util::sync::CancellationToken;

pub use config::Config;
pub use rotate::RotationReport;
pub use schema::AuthSchema;

use crate::core::{AuthCore, HashCost};
use crate::keys::SigningKeys;

/// The subgraph's federation SDL (what `--print-schema` prints); needs no store.
pub fn sdl() -> String {
    switchyard_subgraph_kit::federation_sdl(&schema::build(None))
}

/// A ready-to-serve auth service.
pub struct Service {
    pool: AnyPool,
    relay: OutboxRelay,
    erasure: Erasure,
    core: AuthCore,
    schema: AuthSchema,
    bus: EventBus,
    metrics_listen: Option<std::net::SocketAddr>,
    otlp_endpoint: Option<String>,
}

impl Service {
    /// Opens/creates the stores (under config.data_dir unless a server URL is set), migrates,
    /// builds the schema. `bus` is the event bus to publish to (via outbox).
    pub async fn open(config: Config, bus: EventBus) -> anyhow::Result<Service> {
        let pool = open_pool(&config).await?;
        let secrets = config.secrets_dir();
        let cipher = FieldCipher::load("AUTH", &secrets)?;
        let keys = SigningKeys::load(&secrets, |name| std::env::var(name).ok())?;
        let relay = OutboxRelay::new(pool.clone(), bus.clone()).poll_interval(
            Duration::from_millis(config.outbox_poll_interval_ms.max(10)),
        );
        let core = AuthCore::new(
            pool.clone(),
            cipher,
            keys,
            relay.clone(),
            Duration::from_secs(config.access_token_ttl_secs.max(1)),
            Duration::from_secs(config.refresh_token_ttl_secs.max(1)),
            HashCost {
                memory_kib: config.argon2_memory_kib,
                iterations: config.argon2_iterations,
            },
        )
        .with_limits(config.limits());
        let erasure = Erasure::open("auth", pool.clone(), Some(relay.clone()))
            .await
            .map_err(|e| anyhow::anyhow!(e))
            .context("opening auth's erasure record")?;
        core.set_erasure(erasure.clone());
        let schema = schema::build(Some(core.clone()));
        Ok(Service {
            pool,
            relay,
            erasure,
            core,
            schema,
            bus,
            metrics_listen: config.metrics_listen,
            otlp_endpoint: config.otlp_endpoint.clone(),
        })
    }

    /// The executable schema (for in-process tests and tools).
    pub fn schema(&self) -> AuthSchema {
        self.schema.clone()
    }

    /// The database pool.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The most password hashes that ran at once so far (the hash gate's high-water mark).
    pub fn peak_concurrent_hashes(&self) -> usize {
        self.core.peak_concurrent_hashes()
    }

    /// The JWKS document served at `/.well-known/jwks.json`.
    pub fn jwks(&self) -> serde_json::Value {
        switchyard_subgraph_kit::auth::jwks(self.core.keys().all())
    }

    /// Serves /graphql (POST, GET, WebSocket), /health, /ready, /.well-known/jwks.json on
    /// `listener`, runs the outbox relay, the erasure consumer and saga, until `shutdown` is cancelled; then drains and returns.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let mut runner = ServiceRunner::new("auth", self.pool.clone(), self.bus.clone());
        runner
            .metrics()
            .trace_to(self.otlp_endpoint.as_deref())
            .context("setting up tracing")?;
        runner.relay(self.relay.clone());
        runner
            .consumer(EventConsumer::new(
                self.pool.clone(),
                erasures::CONSUMER_GROUP,
                erasures::AuthEvents,
            ))
            .await
            .context("joining the auth consumer group")?;
        runner.erasure(self.erasure.clone());
        let pool = self.pool.clone();
        runner.task("refresh-token pruning", move |stop| {
            prune_refresh_tokens(pool, stop)
        });
        let jwks = Arc::new(self.jwks());
        let router = server::service_router(
            self.schema.clone(),
            Arc::new(self.pool.clone()),
            runner.metrics(),
        )
        .route(
            "/.well-known/jwks.json",
            get(move || {
                let jwks = jwks.clone();
                async move {
                    (
                        [(axum::http::header::CACHE_CONTROL, "public, max-age=300")],
                        Json((*jwks).clone()),
                    )
                }
            }),
        );
        runner
            .serve(listener, router, self.metrics_listen, shutdown)
            .await
            .context("serving the auth service")
    }
}

async fn open_pool(config: &Config) -> anyhow::Result<AnyPool> {
    if config
        .database_url
        .as_deref()
        .is_none_or(|u| u.trim().is_empty())
    {
        std::fs::create_dir_all(&config.data_dir)?;
    }
    let pool = db::connect(&config.effective_database_url(), config.max_connections).await?;
    store::migrate(&pool).await?;
    Ok(pool)
}

/// `rotate-keys`: optionally generates a new local data key (embedded mode) and re-encrypts
/// every account field not under the active key, in batches of `batch_size`.
pub async fn rotate_keys(
    config: &Config,
    new_local_data_key: bool,
    batch_size: i64,
) -> anyhow::Result<RotationReport> {
    if new_local_data_key {
        anyhow::ensure!(
            std::env::var_os("AUTH_DATA_KEYS").is_none()
                && std::env::var_os("AUTH_DATA_KEYS_FILE").is_none(),
            "data keys come from AUTH_DATA_KEYS[_FILE]: put the new key first in that list instead"
        );
        let id = switchyard_subgraph_kit::crypto::rotate_local_data_key(&config.secrets_dir())?;
        tracing::info!(key = %id, "generated a new active data key");
    }
    let pool = open_pool(config).await?;
    let cipher = FieldCipher::load("AUTH", &config.secrets_dir())?;
    let report = rotate::reencrypt(&pool, &cipher, batch_size).await;
    pool.close().await;
    report
}

/// How often expired refresh tokens are deleted.
const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);

/// Deletes expired refresh tokens at start-up and then hourly, until `shutdown`.
async fn prune_refresh_tokens(pool: sqlx::AnyPool, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(PRUNE_INTERVAL);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        match store::prune_expired_refresh_tokens(&pool, store::now_micros()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(tokens = n, "pruned expired refresh tokens"),
            Err(e) => tracing::warn!(error = %e, "pruning expired refresh tokens failed"),
        }
    }
}
