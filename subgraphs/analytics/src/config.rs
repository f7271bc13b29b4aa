//! The analytics service's configuration: defaults → optional file → environment.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use switchyard_subgraph_kit::ConfigLoader;

/// Settings of the analytics service (environment prefix `ANALYTICS_`).
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
    /// Where embedded stores live (`analytics.db` when no `database_url` is set).
    pub data_dir: PathBuf,
    /// `postgres://…` to use PostgreSQL; `None` uses SQLite under `data_dir`.
    #[serde(deserialize_with = "switchyard_subgraph_kit::config::optional_text")]
    pub database_url: Option<String>,
    /// Redis Streams event bus; `None` uses the in-process bus.
    #[serde(deserialize_with = "switchyard_subgraph_kit::config::optional_text")]
    pub redis_url: Option<String>,
    /// Where access-token keys are published. Reserved: every analytics field is public today.
    pub jwks_url: String,
    /// Database pool size.
    pub max_connections: u32,
    /// This instance's member name in the `analytics` consumer group; keep it stable across
    /// restarts so a restarted instance re-reads what it held. Default: `analytics-<hostname>`.
    #[serde(deserialize_with = "switchyard_subgraph_kit::config::optional_text")]
    pub consumer_name: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 4105)),
            metrics_listen: None,
            otlp_endpoint: None,
            data_dir: PathBuf::from("data/analytics"),
            database_url: None,
            redis_url: None,
            jwks_url: "http://127.0.0.1:4101/.well-known/jwks.json".to_owned(),
            max_connections: 8,
            consumer_name: None,
        }
    }
}

impl Config {
    /// Defaults → optional file (TOML/YAML/JSON) → environment (`ANALYTICS_*`, plus
    /// `DATABASE_URL`, `REDIS_URL`, `JWKS_URL`).
    pub fn load(file: Option<&Path>) -> anyhow::Result<Config> {
        Ok(loader(file).load()?)
    }

    /// The database URL to open: the configured server, or SQLite under `data_dir`.
    pub fn effective_database_url(&self) -> String {
        switchyard_subgraph_kit::db::url_or_sqlite(
            self.database_url.as_deref(),
            &self.data_dir,
            "analytics.db",
        )
    }

    /// The consumer-group member name to use.
    pub fn effective_consumer_name(&self) -> String {
        switchyard_subgraph_kit::config::consumer_name(self.consumer_name.as_deref(), "analytics")
    }
}

fn loader(file: Option<&Path>) -> ConfigLoader {
    ConfigLoader::new("ANALYTICS")
        .file(file)
        .alias("OTEL_EXPORTER_OTLP_ENDPOINT", "otlp_endpoint")
        .alias("DATABASE_URL", "database_url")
        .alias("REDIS_URL", "redis_url")
        .alias("JWKS_URL", "jwks_url")
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
    fn defaults_file_and_environment() {
        let config: Config = loader(None).env_vars(vec![]).load().unwrap();
        assert_eq!(config.listen.port(), 4105);
        assert_eq!(config.data_dir, PathBuf::from("data/analytics"));
        assert!(config
            .effective_database_url()
            .ends_with("data/analytics/analytics.db?mode=rwc"));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("analytics.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9105\"\nmax_connections = 3\n").unwrap();
        let config: Config = loader(Some(&path))
            .env_vars(vars(&[
                ("ANALYTICS_DATA_DIR", "/tmp/a"),
                ("ANALYTICS_MAX_CONNECTIONS", "5"),
                ("DATABASE_URL", "postgres://db/analytics"),
                ("REDIS_URL", "redis://127.0.0.1:6379"),
                ("JWKS_URL", "http://auth/jwks"),
                ("ANALYTICS_CONSUMER_NAME", "a-1"),
            ]))
            .load()
            .unwrap();
        assert_eq!(config.listen.port(), 9105);
        assert_eq!(config.max_connections, 5, "environment beats the file");
        assert_eq!(config.data_dir, PathBuf::from("/tmp/a"));
        assert_eq!(config.effective_database_url(), "postgres://db/analytics");
        assert_eq!(config.redis_url.as_deref(), Some("redis://127.0.0.1:6379"));
        assert_eq!(config.jwks_url, "http://auth/jwks");
        assert_eq!(config.effective_consumer_name(), "a-1");
    }

    /// README.md's settings table has a row for every field and names exactly the variables
    /// the loader reads for it; every row names a real field.
    #[test]
    fn readme_table_matches_the_fields_and_variables() {
        let variables = loader(None).variables::<Config>();
        switchyard_subgraph_kit::config::docs::check_readme(
            include_str!("../README.md"),
            &variables,
        )
        .unwrap();
    }
}
