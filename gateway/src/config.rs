//! Gateway settings: defaults, a TOML file, then `SWITCHYARD_*` environment overrides.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Gateway settings (from the config file, with environment overrides applied by [`GatewayConfig::load`]).
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Subgraph name -> URL, replacing the supergraph's `join__graph(url:)` for that subgraph.
    pub subgraph_url_overrides: HashMap<String, String>,
    /// Per-subgraph request timeout.
    pub subgraph_timeout: Duration,
    /// Address the HTTP server listens on.
    pub listen: SocketAddr,
    /// Largest accepted request body; bigger bodies get 413.
    pub max_body_bytes: usize,
    /// Deepest field nesting an operation may have (fragments expanded).
    pub max_depth: usize,
    /// Most aliased fields an operation may have.
    pub max_aliases: usize,
    /// Most root fields an operation may select.
    pub max_root_fields: usize,
    /// Whether `__schema` / `__type` queries are answered.
    pub introspection: bool,
    /// Whether GraphiQL is served to browsers on `GET /graphql`.
    pub graphiql: bool,
    /// Collapse identical in-flight subgraph queries into one request.
    pub dedupe: bool,
    /// Client request headers (lower-case names) forwarded to every subgraph.
    pub propagate_headers: Vec<String>,
    /// Progressive-override labels treated as enabled for every request.
    pub override_labels: Vec<String>,
    /// How many planned operations the plan cache keeps.
    pub plan_cache_size: usize,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            subgraph_url_overrides: HashMap::new(),
            subgraph_timeout: Duration::from_secs(30),
            listen: SocketAddr::from(([127, 0, 0, 1], 4000)),
            max_body_bytes: 2 * 1024 * 1024,
            max_depth: 64,
            max_aliases: 256,
            max_root_fields: 64,
            introspection: true,
            graphiql: true,
            dedupe: true,
            propagate_headers: vec!["authorization".to_owned()],
            override_labels: Vec::new(),
            plan_cache_size: 1024,
        }
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("reading config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The config file is not valid TOML for this struct.
    #[error("parsing config file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML error.
        source: Box<toml::de::Error>,
    },
    /// An environment variable holds a value of the wrong shape.
    #[error("environment variable {name}: {message}")]
    Env {
        /// The variable.
        name: String,
        /// What is wrong.
        message: String,
    },
}

/// The file format: every key optional, durations in milliseconds.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    subgraph_timeout_ms: Option<u64>,
    max_body_bytes: Option<usize>,
    max_depth: Option<usize>,
    max_aliases: Option<usize>,
    max_root_fields: Option<usize>,
    introspection: Option<bool>,
    graphiql: Option<bool>,
    dedupe: Option<bool>,
    propagate_headers: Option<Vec<String>>,
    override_labels: Option<Vec<String>>,
    plan_cache_size: Option<usize>,
    #[serde(default)]
    subgraphs: HashMap<String, FileSubgraph>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSubgraph {
    url: Option<String>,
}

impl GatewayConfig {
    /// Defaults, then the TOML file at `path` (if any), then `SWITCHYARD_*` environment variables.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut config = Self::default();
        if let Some(path) = path {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            config
                .apply_toml(&text)
                .map_err(|source| ConfigError::Parse {
                    path: path.to_owned(),
                    source: Box::new(source),
                })?;
        }
        config.apply_env(std::env::vars())?;
        Ok(config)
    }

    /// Applies the settings present in a TOML document over `self`.
    pub fn apply_toml(&mut self, text: &str) -> Result<(), toml::de::Error> {
        let file: FileConfig = toml::from_str(text)?;
        if let Some(v) = file.listen {
            self.listen = v;
        }
        if let Some(v) = file.subgraph_timeout_ms {
            self.subgraph_timeout = Duration::from_millis(v);
        }
        set(&mut self.max_body_bytes, file.max_body_bytes);
        set(&mut self.max_depth, file.max_depth);
        set(&mut self.max_aliases, file.max_aliases);
        set(&mut self.max_root_fields, file.max_root_fields);
        set(&mut self.introspection, file.introspection);
        set(&mut self.graphiql, file.graphiql);
        set(&mut self.dedupe, file.dedupe);
        set(&mut self.plan_cache_size, file.plan_cache_size);
        if let Some(v) = file.propagate_headers {
            self.propagate_headers = v.into_iter().map(|h| h.to_ascii_lowercase()).collect();
        }
        set(&mut self.override_labels, file.override_labels);
        for (name, sub) in file.subgraphs {
            if let Some(url) = sub.url {
                self.subgraph_url_overrides.insert(name, url);
            }
        }
        Ok(())
    }

    /// Applies `SWITCHYARD_*` variables from `vars` over `self`.
    ///
    /// `SWITCHYARD_SUBGRAPH_URL_<NAME>` overrides one subgraph's URL (`<NAME>` matched
    /// case-insensitively against the subgraph name, `-` written as `_`).
    pub fn apply_env(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), ConfigError> {
        for (name, value) in vars {
            let Some(key) = name.strip_prefix("SWITCHYARD_") else {
                continue;
            };
            match key {
                "LISTEN" => self.listen = parse_env(&name, &value)?,
                "SUBGRAPH_TIMEOUT_MS" => {
                    self.subgraph_timeout = Duration::from_millis(parse_env(&name, &value)?)
                }
                "MAX_BODY_BYTES" => self.max_body_bytes = parse_env(&name, &value)?,
                "MAX_DEPTH" => self.max_depth = parse_env(&name, &value)?,
                "MAX_ALIASES" => self.max_aliases = parse_env(&name, &value)?,
                "MAX_ROOT_FIELDS" => self.max_root_fields = parse_env(&name, &value)?,
                "INTROSPECTION" => self.introspection = parse_bool(&name, &value)?,
                "GRAPHIQL" => self.graphiql = parse_bool(&name, &value)?,
                "DEDUPE" => self.dedupe = parse_bool(&name, &value)?,
                "PLAN_CACHE_SIZE" => self.plan_cache_size = parse_env(&name, &value)?,
                "PROPAGATE_HEADERS" => self.propagate_headers = parse_list(&value, true),
                "OVERRIDE_LABELS" => self.override_labels = parse_list(&value, false),
                _ => {
                    if let Some(subgraph) = key.strip_prefix("SUBGRAPH_URL_") {
                        self.subgraph_url_overrides
                            .insert(subgraph.to_ascii_lowercase(), value);
                    }
                }
            }
        }
        Ok(())
    }

    /// The override URL for `subgraph`, if one is configured.
    pub fn url_override(&self, subgraph: &str) -> Option<&str> {
        if let Some(url) = self.subgraph_url_overrides.get(subgraph) {
            return Some(url);
        }
        // Environment-derived keys are lower-case with `_` for `-`.
        let normalized = subgraph.to_ascii_lowercase().replace('-', "_");
        self.subgraph_url_overrides
            .get(&normalized)
            .map(String::as_str)
    }
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

fn parse_env<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    value
        .trim()
        .parse()
        .map_err(|err: T::Err| ConfigError::Env {
            name: name.to_owned(),
            message: err.to_string(),
        })
}

fn parse_bool(name: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        other => Err(ConfigError::Env {
            name: name.to_owned(),
            message: format!("expected a boolean, got {other:?}"),
        }),
    }
}

fn parse_list(value: &str, lowercase: bool) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            if lowercase {
                s.to_ascii_lowercase()
            } else {
                s.to_owned()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_then_env_override_defaults() {
        let mut config = GatewayConfig::default();
        config
            .apply_toml(
                r#"
                listen = "0.0.0.0:5000"
                subgraph_timeout_ms = 1500
                introspection = false
                propagate_headers = ["Authorization", "X-Tenant"]
                [subgraphs.reviews]
                url = "http://reviews:4002/graphql"
                "#,
            )
            .unwrap();
        assert_eq!(config.listen, "0.0.0.0:5000".parse().unwrap());
        assert_eq!(config.subgraph_timeout, Duration::from_millis(1500));
        assert!(!config.introspection);
        assert_eq!(config.propagate_headers, ["authorization", "x-tenant"]);
        assert_eq!(
            config.url_override("reviews"),
            Some("http://reviews:4002/graphql")
        );

        config
            .apply_env([
                ("SWITCHYARD_DEDUPE".to_owned(), "off".to_owned()),
                ("SWITCHYARD_MAX_DEPTH".to_owned(), "7".to_owned()),
                (
                    "SWITCHYARD_SUBGRAPH_URL_USER_ACCOUNTS".to_owned(),
                    "http://a".to_owned(),
                ),
                ("OTHER".to_owned(), "ignored".to_owned()),
            ])
            .unwrap();
        assert!(!config.dedupe);
        assert_eq!(config.max_depth, 7);
        assert_eq!(config.url_override("user-accounts"), Some("http://a"));
    }

    #[test]
    fn bad_values_are_reported() {
        let mut config = GatewayConfig::default();
        let err = config
            .apply_env([("SWITCHYARD_MAX_DEPTH".to_owned(), "deep".to_owned())])
            .unwrap_err();
        assert!(err.to_string().contains("SWITCHYARD_MAX_DEPTH"));
        assert!(config.apply_toml("unknown_key = 1").is_err());
    }
}
