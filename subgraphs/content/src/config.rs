//! The content service's configuration: defaults → optional file → environment
//! (`CONTENT_*`, plus `DATABASE_URL`, `REDIS_URL`, `JWKS_URL`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use switchyard_subgraph_kit::ConfigLoader;

/// Settings of the content service.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Address to serve GraphQL on.
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
    /// Where the embedded stores live: `content.db` (unless `database_url` is set) and
    /// `search/` (the full-text index, always local).
    pub data_dir: PathBuf,
    /// `postgres://…` to use PostgreSQL; unset for SQLite under `data_dir`.
    #[serde(deserialize_with = "switchyard_subgraph_kit::config::optional_text")]
    pub database_url: Option<String>,
    /// `redis://…` for the Redis Streams event bus; unset for the in-process bus.
    #[serde(deserialize_with = "switchyard_subgraph_kit::config::optional_text")]
    pub redis_url: Option<String>,
    /// Where the auth service publishes its token verification keys.
    pub jwks_url: String,
    /// Database pool size.
    pub max_connections: u32,
    /// This instance's member name in the `content` consumer group; keep it stable across
    /// restarts so a restarted instance takes back what it held. Default: `content-<hostname>`.
    #[serde(deserialize_with = "switchyard_subgraph_kit::config::optional_text")]
    pub consumer_name: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 4103)),
            metrics_listen: None,
            otlp_endpoint: None,
            data_dir: PathBuf::from("data/content"),
            database_url: None,
            redis_url: None,
            jwks_url: "http://127.0.0.1:4101/.well-known/jwks.json".into(),
            max_connections: 8,
            consumer_name: None,
        }
    }
}

impl Config {
    /// Defaults → optional file (TOML/YAML/JSON) → environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Config> {
        Ok(loader(file).load()?)
    }

    /// The database URL: `database_url`, or the SQLite file `<data_dir>/content.db`.
    pub fn effective_database_url(&self) -> String {
        switchyard_subgraph_kit::db::url_or_sqlite(
            self.database_url.as_deref(),
            &self.data_dir,
            "content.db",
        )
    }

    /// The search index directory, `<data_dir>/search`.
    pub fn search_dir(&self) -> PathBuf {
        self.data_dir.join("search")
    }
}

fn loader(file: Option<&Path>) -> ConfigLoader {
    ConfigLoader::new("CONTENT")
        .file(file)
        .alias("OTEL_EXPORTER_OTLP_ENDPOINT", "otlp_endpoint")
        .alias("DATABASE_URL", "database_url")
        .alias("REDIS_URL", "redis_url")
        .alias("JWKS_URL", "jwks_url")
}

#[cfg(test)]
mod tests {
    use super::*;

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
