//! The profile service's configuration: defaults → optional file → environment.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use switchyard_subgraph_kit::ConfigLoader;

/// Settings of the profile service (environment prefix `PROFILE_`).
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
    /// Where embedded stores live (`profile.db` when no `database_url` is set).
    pub data_dir: PathBuf,
    /// `postgres://…` to keep the SQL side (graph rows for the embedded store, outbox,
    /// consumer de-duplication) in PostgreSQL; `None` uses SQLite under `data_dir`.
    #[serde(deserialize_with = "switchyard_subgraph_kit::config::optional_text")]
    pub database_url: Option<String>,
    /// Redis Streams event bus; `None` uses the in-process bus.
    #[serde(deserialize_with = "switchyard_subgraph_kit::config::optional_text")]
    pub redis_url: Option<String>,
    /// Where access-token keys are published (the auth service's JWKS).
    pub jwks_url: String,
    /// Where the graph lives instead of the embedded graph store: `falkor://[:password@]host:port`
    /// (FalkorDB; also `falkors://` for TLS) or `bolt://host:7687` / `neo4j://…` (Neo4j, Memgraph).
    /// Needs the `falkordb` / `neo4j` cargo feature (both on by default).
    #[serde(deserialize_with = "switchyard_subgraph_kit::config::optional_text")]
    pub graph_url: Option<String>,
    /// The FalkorDB graph (Redis key) holding the profile data.
    pub graph_name: String,
    /// The older name for a Neo4j `graph_url`; `graph_url` wins when both are set.
    #[serde(deserialize_with = "switchyard_subgraph_kit::config::optional_text")]
    pub neo4j_uri: Option<String>,
    /// Neo4j user.
    pub neo4j_user: String,
    /// Neo4j password.
    pub neo4j_password: String,
    /// SQL pool size.
    pub max_connections: u32,
    /// This instance's member name in the `profile` consumer group (stable across restarts).
    /// Default: `profile-<hostname>`.
    #[serde(deserialize_with = "switchyard_subgraph_kit::config::optional_text")]
    pub consumer_name: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 4102)),
            metrics_listen: None,
            otlp_endpoint: None,
            data_dir: PathBuf::from("data/profile"),
            database_url: None,
            redis_url: None,
            jwks_url: "http://127.0.0.1:4101/.well-known/jwks.json".to_owned(),
            graph_url: None,
            graph_name: "profile".to_owned(),
            neo4j_uri: None,
            neo4j_user: "neo4j".to_owned(),
            neo4j_password: String::new(),
            max_connections: 8,
            consumer_name: None,
        }
    }
}

impl Config {
    /// Defaults → optional file (TOML/YAML/JSON) → environment (`PROFILE_*`, plus
    /// `DATABASE_URL`, `REDIS_URL`, `JWKS_URL`, `NEO4J_URI`, `NEO4J_USER`, `NEO4J_PASSWORD`).
    pub fn load(file: Option<&Path>) -> anyhow::Result<Config> {
        Ok(loader(file).load()?)
    }

    /// The SQL database URL to open: the configured server, or SQLite under `data_dir`.
    pub fn effective_database_url(&self) -> String {
        switchyard_subgraph_kit::db::url_or_sqlite(
            self.database_url.as_deref(),
            &self.data_dir,
            "profile.db",
        )
    }

    /// The graph server to use, when one is configured (`graph_url`, else `neo4j_uri`).
    pub fn effective_graph_url(&self) -> Option<&str> {
        self.graph_url
            .as_deref()
            .filter(|u| !u.is_empty())
            .or_else(|| self.neo4j_uri.as_deref().filter(|u| !u.is_empty()))
    }

    /// Which graph store the configuration selects.
    pub fn graph_backend(&self) -> anyhow::Result<GraphBackend> {
        let Some(url) = self.effective_graph_url() else {
            return Ok(GraphBackend::Embedded);
        };
        let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
        match scheme.to_ascii_lowercase().as_str() {
            "falkor" | "falkors" | "redis" | "rediss" => Ok(GraphBackend::FalkorDb),
            "bolt" | "bolt+s" | "bolt+ssc" | "neo4j" | "neo4j+s" | "neo4j+ssc" => {
                Ok(GraphBackend::Neo4j)
            }
            _ => anyhow::bail!(
                "graph_url must start with falkor://, falkors://, bolt:// or neo4j:// (got a URL with scheme {scheme:?})"
            ),
        }
    }

    /// The consumer-group member name to use.
    pub fn effective_consumer_name(&self) -> String {
        switchyard_subgraph_kit::config::consumer_name(self.consumer_name.as_deref(), "profile")
    }
}

/// The graph store a configuration selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphBackend {
    /// SQL rows plus the in-memory index (no `graph_url`).
    Embedded,
    /// FalkorDB (`falkor://`, `falkors://`).
    FalkorDb,
    /// Neo4j or Memgraph (`bolt://`, `neo4j://`).
    Neo4j,
}

fn loader(file: Option<&Path>) -> ConfigLoader {
    ConfigLoader::new("PROFILE")
        .file(file)
        .alias("OTEL_EXPORTER_OTLP_ENDPOINT", "otlp_endpoint")
        .alias("DATABASE_URL", "database_url")
        .alias("REDIS_URL", "redis_url")
        .alias("JWKS_URL", "jwks_url")
        .alias("NEO4J_URI", "neo4j_uri")
        .alias("NEO4J_USER", "neo4j_user")
        .alias("NEO4J_PASSWORD", "neo4j_password")
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
        assert_eq!(config.listen.port(), 4102);
        assert!(config
            .effective_database_url()
            .ends_with("data/profile/profile.db?mode=rwc"));
        assert_eq!(config.effective_graph_url(), None);
        assert_eq!(config.graph_backend().unwrap(), GraphBackend::Embedded);
        assert_eq!(config.graph_name, "profile");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("profile.yaml");
        std::fs::write(&path, "listen: 127.0.0.1:9102\nneo4j_user: file\n").unwrap();
        let config: Config = loader(Some(&path))
            .env_vars(vars(&[
                ("PROFILE_DATA_DIR", "/tmp/p"),
                ("DATABASE_URL", "postgres://db/profile"),
                ("JWKS_URL", "http://auth/jwks"),
                ("NEO4J_URI", "bolt://127.0.0.1:7687"),
                ("NEO4J_USER", "neo"),
                ("NEO4J_PASSWORD", "12345"),
            ]))
            .load()
            .unwrap();
        assert_eq!(config.listen.port(), 9102);
        assert_eq!(config.data_dir, PathBuf::from("/tmp/p"));
        assert_eq!(config.effective_database_url(), "postgres://db/profile");
        assert_eq!(config.jwks_url, "http://auth/jwks");
        assert_eq!(config.effective_graph_url(), Some("bolt://127.0.0.1:7687"));
        assert_eq!(config.graph_backend().unwrap(), GraphBackend::Neo4j);
        assert_eq!(config.neo4j_user, "neo", "environment beats the file");
        assert_eq!(
            config.neo4j_password, "12345",
            "numeric-looking stays a string"
        );

        let config: Config = loader(None)
            .env_vars(vars(&[
                ("NEO4J_URI", "bolt://127.0.0.1:7687"),
                ("PROFILE_GRAPH_URL", "falkor://127.0.0.1:6380"),
                ("PROFILE_GRAPH_NAME", "people"),
            ]))
            .load()
            .unwrap();
        assert_eq!(
            config.effective_graph_url(),
            Some("falkor://127.0.0.1:6380"),
            "graph_url wins over the older neo4j_uri"
        );
        assert_eq!(config.graph_backend().unwrap(), GraphBackend::FalkorDb);
        assert_eq!(config.graph_name, "people");

        let config: Config = loader(None)
            .env_vars(vars(&[("PROFILE_GRAPH_URL", "postgres://db/graph")]))
            .load()
            .unwrap();
        let error = config.graph_backend().unwrap_err().to_string();
        assert!(error.contains("falkor://"), "{error}");
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
