//! The chat service's configuration: defaults, then an optional file, then the environment
//! (`CHAT_*`, plus the conventional `DATABASE_URL`, `REDIS_URL`, `JWKS_URL`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use switchyard_subgraph_kit::ConfigLoader;

/// Settings of one chat instance.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Address to serve `/graphql`, `/health` and `/ready` on.
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
    /// Where embedded stores live: `chat.db` (SQLite), and `secrets/` (generated data keys)
    /// unless `secrets_dir` is set.
    pub data_dir: PathBuf,
    /// Where generated data keys live; default `<data_dir>/secrets`. Set it to keep keys apart
    /// from the ciphertext they protect.
    pub secrets_dir: Option<PathBuf>,
    /// `postgres://…` selects PostgreSQL; unset means SQLite in `data_dir`.
    #[serde(deserialize_with = "switchyard_subgraph_kit::config::optional_text")]
    pub database_url: Option<String>,
    /// Redis for the event bus and for live-delivery fan-out across replicas; unset means
    /// in-process (one instance).
    #[serde(deserialize_with = "switchyard_subgraph_kit::config::optional_text")]
    pub redis_url: Option<String>,
    /// Where the auth service publishes the keys that sign access tokens.
    pub jwks_url: String,
    /// Maximum database connections in the pool.
    pub max_connections: u32,
    /// This instance's member name in the `chat` consumer group; keep it stable across
    /// restarts so a restarted instance takes back what it held. Default: `chat-<hostname>`.
    #[serde(deserialize_with = "switchyard_subgraph_kit::config::optional_text")]
    pub consumer_name: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 4104)),
            metrics_listen: None,
            otlp_endpoint: None,
            data_dir: PathBuf::from("data/chat"),
            secrets_dir: None,
            database_url: None,
            redis_url: None,
            jwks_url: "http://127.0.0.1:4101/.well-known/jwks.json".to_owned(),
            max_connections: 8,
            consumer_name: None,
        }
    }
}

impl Config {
    /// Defaults → optional file (TOML/YAML/JSON) → environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Config> {
        Ok(Self::loader(file).load()?)
    }

    /// The loader with the service's prefix and aliases (tests swap in their own variables).
    pub fn loader(file: Option<&Path>) -> ConfigLoader {
        ConfigLoader::new("CHAT")
            .file(file)
            .alias("OTEL_EXPORTER_OTLP_ENDPOINT", "otlp_endpoint")
            .alias("DATABASE_URL", "database_url")
            .alias("REDIS_URL", "redis_url")
            .alias("JWKS_URL", "jwks_url")
    }

    /// Where generated data keys live.
    pub fn secrets_dir(&self) -> switchyard_subgraph_kit::crypto::SecretsDir {
        switchyard_subgraph_kit::crypto::SecretsDir::new(
            self.secrets_dir.as_deref(),
            &self.data_dir,
        )
    }

    /// The database URL this config selects: the server URL, or the SQLite file in `data_dir`.
    pub fn effective_database_url(&self) -> String {
        switchyard_subgraph_kit::db::url_or_sqlite(
            self.database_url.as_deref(),
            &self.data_dir,
            "chat.db",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_and_environment() {
        let cfg: Config = Config::loader(None).env_vars(vec![]).load().unwrap();
        assert_eq!(cfg.listen.port(), 4104);
        assert_eq!(cfg.data_dir, PathBuf::from("data/chat"));
        assert!(cfg
            .effective_database_url()
            .ends_with("data/chat/chat.db?mode=rwc"));

        let cfg: Config = Config::loader(None)
            .env_vars(vars(&[
                ("CHAT_DATA_DIR", "/tmp/chat-x"),
                ("DATABASE_URL", "postgres://db/chat"),
                ("REDIS_URL", "redis://127.0.0.1:6379"),
                ("JWKS_URL", "http://auth/jwks"),
                ("CHAT_LISTEN", "127.0.0.1:0"),
                // A number-looking value for a text field with no default to type it by.
                ("CHAT_CONSUMER_NAME", "42"),
            ]))
            .load()
            .unwrap();
        assert_eq!(cfg.data_dir, PathBuf::from("/tmp/chat-x"));
        assert_eq!(cfg.effective_database_url(), "postgres://db/chat");
        assert_eq!(cfg.redis_url.as_deref(), Some("redis://127.0.0.1:6379"));
        assert_eq!(cfg.jwks_url, "http://auth/jwks");
        assert_eq!(cfg.listen.port(), 0);
        assert_eq!(cfg.consumer_name.as_deref(), Some("42"));
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
