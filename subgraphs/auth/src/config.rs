//! The auth service's configuration: defaults, then an optional file, then `AUTH_*` variables
//! (plus the conventional `DATABASE_URL` / `REDIS_URL`).
//!
//! Secrets are not config fields: they come from `AUTH_JWT_SIGNING_KEYS[_FILE]`,
//! `AUTH_DATA_KEYS[_FILE]` and `AUTH_HASH_KEY[_FILE]`, or are generated under
//! `<data_dir>/secrets/` for embedded development.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use switchyard_subgraph_kit::ConfigLoader;

/// Auth service settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Where to listen (standalone default 127.0.0.1:4101).
    pub listen: SocketAddr,
    /// Address of the metrics listener (`/metrics`, `/status`), apart from the GraphQL port;
    /// `None` / `off` (the default for a lone service; `switchyard dev` picks a free port)
    /// serves no metrics listener.
    #[serde(with = "switchyard_subgraph_kit::config::listen")]
    pub metrics_listen: Option<SocketAddr>,
    /// OTLP/HTTP endpoint to export traces to (`http://collector:4318`); `None` (the default)
    /// turns tracing off. `OTEL_EXPORTER_OTLP_ENDPOINT` sets it too.
    #[serde(deserialize_with = "switchyard_subgraph_kit::config::optional_text")]
    pub otlp_endpoint: Option<String>,
    /// Embedded stores live here (and generated secrets, unless `secrets_dir` is set).
    pub data_dir: PathBuf,
    /// Where generated secrets (data keys, hash key, JWT signing keys) live; default
    /// `<data_dir>/secrets`. Set it to keep keys apart from the ciphertext they protect.
    pub secrets_dir: Option<PathBuf>,
    /// `None` → SQLite at `<data_dir>/auth.db`; `postgres://…` → PostgreSQL.
    #[serde(deserialize_with = "switchyard_subgraph_kit::config::optional_text")]
    pub database_url: Option<String>,
    /// Redis for the event bus; `None` → in-process bus.
    #[serde(deserialize_with = "switchyard_subgraph_kit::config::optional_text")]
    pub redis_url: Option<String>,
    /// Access-token lifetime in seconds (default 15 minutes).
    pub access_token_ttl_secs: u64,
    /// Refresh-token lifetime in seconds (default 30 days).
    pub refresh_token_ttl_secs: u64,
    /// Argon2id memory cost in KiB for new password hashes (default 19 MiB, OWASP's minimum).
    pub argon2_memory_kib: u32,
    /// Argon2id iterations for new password hashes.
    pub argon2_iterations: u32,
    /// Maximum database connections.
    pub max_connections: u32,
    /// How often the outbox relay polls when nobody wakes it (commits wake it at once).
    pub outbox_poll_interval_ms: u64,
    /// Failed log-ins in a row per account (by email, registered or not) before each further
    /// attempt blocks the account's log-ins for a growing time.
    pub login_failures_per_account: u32,
    /// Failed log-ins in a row per client address before blocking starts (higher: many people
    /// can share one address).
    pub login_failures_per_address: u32,
    /// Sign-ups per client address before blocking starts.
    pub sign_ups_per_address: u32,
    /// The first block in milliseconds; each further attempt doubles it.
    pub throttle_base_delay_ms: u64,
    /// The longest block in seconds.
    pub throttle_max_delay_secs: u64,
    /// Quiet time in seconds after which a key's count starts afresh.
    pub throttle_forget_after_secs: u64,
    /// Password hashes (argon2, `argon2_memory_kib` each) running at once; 0: one per core.
    pub max_concurrent_hashes: usize,
    /// Password hashes waiting for a slot before more log-ins and sign-ups are refused with
    /// `RATE_LIMITED`.
    pub max_queued_hashes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 4101)),
            metrics_listen: None,
            otlp_endpoint: None,
            data_dir: PathBuf::from("data/auth"),
            secrets_dir: None,
            database_url: None,
            redis_url: None,
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            argon2_memory_kib: 19 * 1024,
            argon2_iterations: 2,
            max_connections: 8,
            outbox_poll_interval_ms: 500,
            login_failures_per_account: 5,
            login_failures_per_address: 20,
            sign_ups_per_address: 20,
            throttle_base_delay_ms: 1000,
            throttle_max_delay_secs: 900,
            throttle_forget_after_secs: 900,
            max_concurrent_hashes: 0,
            max_queued_hashes: 64,
        }
    }
}

impl Config {
    /// defaults → optional file (TOML/YAML via kit ConfigLoader) → environment
    pub fn load(file: Option<&Path>) -> anyhow::Result<Config> {
        Ok(Self::loader(file).load()?)
    }

    /// Like [`Config::load`] with explicit variables instead of the process environment.
    pub fn load_from_vars(
        file: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Config> {
        Ok(Self::loader(file).env_vars(vars).load()?)
    }

    fn loader(file: Option<&Path>) -> ConfigLoader {
        ConfigLoader::new("AUTH")
            .file(file)
            .alias("OTEL_EXPORTER_OTLP_ENDPOINT", "otlp_endpoint")
            .alias("DATABASE_URL", "database_url")
            .alias("REDIS_URL", "redis_url")
    }

    /// The database URL in effect (SQLite under `data_dir` unless a server URL is set).
    pub fn effective_database_url(&self) -> String {
        switchyard_subgraph_kit::db::url_or_sqlite(
            self.database_url.as_deref(),
            &self.data_dir,
            "auth.db",
        )
    }

    /// The brute-force limits these settings describe.
    pub fn limits(&self) -> crate::core::Limits {
        let policy = |free| crate::throttle::ThrottlePolicy {
            free,
            base_delay: std::time::Duration::from_millis(self.throttle_base_delay_ms.max(1)),
            max_delay: std::time::Duration::from_secs(self.throttle_max_delay_secs.max(1)),
            forget_after: std::time::Duration::from_secs(self.throttle_forget_after_secs),
        };
        crate::core::Limits {
            log_ins_per_account: policy(self.login_failures_per_account),
            log_ins_per_address: policy(self.login_failures_per_address),
            sign_ups_per_address: policy(self.sign_ups_per_address),
            concurrent_hashes: self.max_concurrent_hashes,
            queued_hashes: self.max_queued_hashes,
        }
    }

    /// Where generated secrets live.
    pub fn secrets_dir(&self) -> switchyard_subgraph_kit::crypto::SecretsDir {
        switchyard_subgraph_kit::crypto::SecretsDir::new(
            self.secrets_dir.as_deref(),
            &self.data_dir,
        )
    }

    /// Where the embedded SQLite database lives.
    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir.join("auth.db")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_then_environment() {
        let c = Config::load_from_vars(None, []).unwrap();
        assert_eq!(c.listen.port(), 4101);
        assert_eq!(c.data_dir, PathBuf::from("data/auth"));
        assert!(c
            .effective_database_url()
            .ends_with("data/auth/auth.db?mode=rwc"));
        let c = Config::load_from_vars(
            None,
            [
                ("AUTH_DATA_DIR".to_owned(), "/tmp/x".to_owned()),
                ("DATABASE_URL".to_owned(), "postgres://h/db".to_owned()),
                ("AUTH_ACCESS_TOKEN_TTL_SECS".to_owned(), "60".to_owned()),
                // Secret variables share the prefix and must not break loading.
                ("AUTH_DATA_KEYS".to_owned(), "k:AAAA".to_owned()),
            ],
        )
        .unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.effective_database_url(), "postgres://h/db");
        assert_eq!(c.access_token_ttl_secs, 60);
    }

    /// README.md's settings table has a row for every field and names exactly the variables
    /// the loader reads for it; every row names a real field.
    #[test]
    fn readme_table_matches_the_fields_and_variables() {
        let variables = Config::loader(None).variables::<Config>();
        switchyard_subgraph_kit::config::docs::check_readme(
            include_str!("../README.md"),
            &variables,
        )
        .unwrap();
    }
}
