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
    /// Where embedded stores live (`profile.db` when no `database_url` is set).
    pub data_dir: PathBuf,
    /// `postgres://…` to keep the SQL side (graph rows for the embedded store, outbox,
    /// consumer de-duplication) in PostgreSQL; `None` uses SQLite under `data_dir`.
    pub database_url: Option<String>,
    /// Redis Streams event bus; `None` uses the in-process bus.
    pub redis_url: Option<String>,
    /// Where access-token keys are published (the auth service's JWKS).
    pub jwks_url: String,
    /// `bolt://host:7687` (or `neo4j://…`) to keep the graph in Neo4j / Memgraph instead of the
    /// embedded graph store. Needs the `neo4j` cargo feature (on by default).
    pub neo4j_uri: Option<String>,
    /// Neo4j user.
    pub neo4j_user: String,
    /// Neo4j password.
    pub neo4j_password: String,
    /// SQL pool size.
    pub max_connections: u32,
    /// This instance's member name in the `profile` consumer group (stable across restarts).
    /// Default: `profile-<hostname>`.
    pub consumer_name: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 4102)),
            data_dir: PathBuf::from("data/profile"),
            database_url: None,
            redis_url: None,
            jwks_url: "http://127.0.0.1:4101/.well-known/jwks.json".to_owned(),
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

    /// The Neo4j URI, when one is configured.
    pub fn effective_neo4j_uri(&self) -> Option<&str> {
        self.neo4j_uri.as_deref().filter(|u| !u.is_empty())
    }

    /// The consumer-group member name to use.
    pub fn effective_consumer_name(&self) -> String {
        switchyard_subgraph_kit::config::consumer_name(self.consumer_name.as_deref(), "profile")
    }
}

fn loader(file: Option<&Path>) -> ConfigLoader {
    ConfigLoader::new("PROFILE")
        .file(file)
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
        assert_eq!(config.effective_neo4j_uri(), None);

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
        assert_eq!(config.effective_neo4j_uri(), Some("bolt://127.0.0.1:7687"));
        assert_eq!(config.neo4j_user, "neo", "environment beats the file");
        assert_eq!(
            config.neo4j_password, "12345",
            "numeric-looking stays a string"
        );
    }
}
