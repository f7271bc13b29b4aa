//! Typed service configuration: defaults, then a file, then the environment.
//!
//! Every service has one config struct (`Serialize + Deserialize + Default`). [`ConfigLoader`]
//! layers the struct's defaults, an optional TOML/YAML/JSON file and environment variables, and
//! deserializes the result. Environment values are typed by the field they override (a string
//! field stays a string even if it looks like a number), which is why the defaults are
//! serialized first: they tell the loader each field's type.
//!
//! A field whose default is `None` has no type to go by: its value is read as JSON when it parses
//! as a number, boolean, array or object, else as a string (so give `Option<String>` fields that
//! may look numeric a `Some` default, or quote the value: `'"123"'`).
//!
//! Variables are `PREFIX_FIELD`, with `__` between nesting levels: for prefix `AUTH`,
//! `AUTH_LISTEN` sets `listen` and `AUTH_DATABASE__URL` sets `database.url`; `AUTH_CONFIG` names
//! the file when the program was given none. Conventional
//! unprefixed names (`DATABASE_URL`, `REDIS_URL`) are mapped with [`ConfigLoader::alias`].

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid for its format.
    #[error("cannot parse config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// The merged settings do not fit the config struct.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Builds a typed config from defaults, a file and the environment.
#[derive(Debug, Clone)]
pub struct ConfigLoader {
    prefix: String,
    file: Option<PathBuf>,
    aliases: Vec<(String, String)>,
    env: Option<Vec<(String, String)>>,
}

/// The name a service instance uses in its event consumer group: the configured one, else
/// `<service>-<hostname>`. A host name is stable across container restarts, which lets a
/// restarted instance take back its own unacknowledged events at once instead of after the
/// group's claim timeout.
pub fn consumer_name(configured: Option<&str>, service: &str) -> String {
    if let Some(name) = configured.map(str::trim).filter(|n| !n.is_empty()) {
        return name.to_owned();
    }
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "local".to_owned());
    format!("{service}-{host}")
}

impl ConfigLoader {
    /// A loader reading variables named `{prefix}_…` (prefix matched case-insensitively).
    pub fn new(prefix: &str) -> Self {
        ConfigLoader {
            prefix: prefix.trim_end_matches('_').to_ascii_uppercase(),
            file: None,
            aliases: Vec::new(),
            env: None,
        }
    }

    /// Reads this file (format by extension: `.toml`, `.yaml`/`.yml`, `.json`); without one,
    /// the file `{prefix}_CONFIG` names, if set. (Each program has its own variable, so the
    /// gateway's `SWITCHYARD_CONFIG` never reaches a service.)
    pub fn file(mut self, path: Option<impl AsRef<Path>>) -> Self {
        self.file = path.map(|p| p.as_ref().to_path_buf());
        self
    }

    /// Maps an unprefixed variable (e.g. `DATABASE_URL`) onto a dotted field path
    /// (e.g. `database.url`). Prefixed variables win over aliases.
    pub fn alias(mut self, variable: &str, field_path: &str) -> Self {
        self.aliases
            .push((variable.to_owned(), field_path.to_owned()));
        self
    }

    /// Uses these variables instead of the process environment (for tests).
    pub fn env_vars(mut self, vars: impl IntoIterator<Item = (String, String)>) -> Self {
        self.env = Some(vars.into_iter().collect());
        self
    }

    /// Merges defaults, file and environment into `T`.
    pub fn load<T>(&self) -> Result<T, ConfigError>
    where
        T: Serialize + DeserializeOwned + Default,
    {
        let mut tree =
            serde_json::to_value(T::default()).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let env = match &self.env {
            Some(vars) => vars.clone(),
            None => std::env::vars().collect(),
        };
        let file_variable = format!("{}_CONFIG", self.prefix);
        let file = self.file.clone().or_else(|| {
            env.iter()
                .find(|(k, v)| k.eq_ignore_ascii_case(&file_variable) && !v.trim().is_empty())
                .map(|(_, v)| PathBuf::from(v.trim()))
        });
        if let Some(path) = &file {
            merge(&mut tree, read_file(path)?);
        }
        for (variable, field_path) in &self.aliases {
            if let Some((_, value)) = env.iter().find(|(k, _)| k == variable) {
                let path: Vec<String> = field_path.split('.').map(str::to_owned).collect();
                set_path(&mut tree, &path, value);
            }
        }
        let wanted = format!("{}_", self.prefix);
        for (key, value) in &env {
            let upper = key.to_ascii_uppercase();
            let Some(rest) = upper.strip_prefix(&wanted) else {
                continue;
            };
            // `{PREFIX}_CONFIG` names the file (above), not a field.
            if rest.is_empty() || rest == "CONFIG" {
                continue;
            }
            let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
            set_path(&mut tree, &path, value);
        }
        serde_json::from_value(tree).map_err(|e| ConfigError::Invalid(e.to_string()))
    }
}

fn read_file(path: &Path) -> Result<Value, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let parse_err = |message: String| ConfigError::Parse {
        path: path.to_path_buf(),
        message,
    };
    match path.extension().and_then(|e| e.to_str()) {
        Some("yaml" | "yml") => {
            serde_yaml_ng::from_str(&text).map_err(|e| parse_err(e.to_string()))
        }
        Some("json") => serde_json::from_str(&text).map_err(|e| parse_err(e.to_string())),
        _ => toml::from_str(&text).map_err(|e| parse_err(e.to_string())),
    }
}

/// Deep-merges `overlay` into `base`: objects merge key by key, anything else replaces.
fn merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Object(base), Value::Object(overlay)) => {
            for (key, value) in overlay {
                match base.get_mut(&key) {
                    Some(slot) => merge(slot, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (slot, value) => *slot = value,
    }
}

fn set_path(tree: &mut Value, path: &[String], raw: &str) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = tree;
    for key in parents {
        if !node.is_object() {
            *node = Value::Object(Map::new());
        }
        let Value::Object(map) = node else {
            return;
        };
        node = map
            .entry(key.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if !node.is_object() {
        *node = Value::Object(Map::new());
    }
    if let Value::Object(map) = node {
        let typed = typed_value(map.get(last), raw);
        map.insert(last.clone(), typed);
    }
}

/// Interprets `raw` as the type of the value it replaces.
fn typed_value(existing: Option<&Value>, raw: &str) -> Value {
    match existing {
        Some(Value::String(_)) => Value::String(raw.to_owned()),
        _ => serde_json::from_str::<Value>(raw).unwrap_or_else(|_| Value::String(raw.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(default)]
    struct Database {
        url: String,
        max_connections: u32,
    }

    impl Default for Database {
        fn default() -> Self {
            Database {
                url: "sqlite://data/auth.db?mode=rwc".into(),
                max_connections: 5,
            }
        }
    }

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(default)]
    struct AuthConfig {
        listen: String,
        password: String,
        debug: bool,
        redis_url: Option<String>,
        tenant: Option<String>,
        database: Database,
    }

    impl Default for AuthConfig {
        fn default() -> Self {
            AuthConfig {
                listen: "127.0.0.1:4101".into(),
                password: "secret".into(),
                debug: false,
                redis_url: None,
                tenant: None,
                database: Database::default(),
            }
        }
    }

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_when_nothing_is_set() {
        let cfg: AuthConfig = ConfigLoader::new("AUTH").env_vars(vec![]).load().unwrap();
        assert_eq!(cfg, AuthConfig::default());
    }

    #[test]
    fn file_then_environment_with_types_from_the_fields() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.toml");
        std::fs::write(
            &path,
            "listen = \"0.0.0.0:9000\"\n[database]\nmax_connections = 9\n",
        )
        .unwrap();
        let cfg: AuthConfig = ConfigLoader::new("auth")
            .file(Some(&path))
            .alias("DATABASE_URL", "database.url")
            .alias("REDIS_URL", "redis_url")
            .env_vars(vars(&[
                ("AUTH_PASSWORD", "12345"),
                ("AUTH_DEBUG", "true"),
                ("AUTH_DATABASE__MAX_CONNECTIONS", "20"),
                ("DATABASE_URL", "postgres://db/auth"),
                ("REDIS_URL", "redis://127.0.0.1:6379"),
                ("OTHER_DEBUG", "false"),
                ("AUTH_TENANT", "\"007\""),
            ]))
            .load()
            .unwrap();
        assert_eq!(cfg.listen, "0.0.0.0:9000");
        assert_eq!(
            cfg.password, "12345",
            "a numeric-looking value stays a string"
        );
        assert!(cfg.debug);
        assert_eq!(cfg.database.max_connections, 20, "env beats file");
        assert_eq!(cfg.database.url, "postgres://db/auth");
        assert_eq!(cfg.redis_url.as_deref(), Some("redis://127.0.0.1:6379"));
        assert_eq!(
            cfg.tenant.as_deref(),
            Some("007"),
            "quoted JSON for an untyped field"
        );
    }

    #[test]
    fn yaml_file_and_prefixed_variable_beats_alias() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.yaml");
        std::fs::write(&path, "database:\n  url: sqlite://file.db\n").unwrap();
        let cfg: AuthConfig = ConfigLoader::new("AUTH")
            .file(Some(&path))
            .alias("DATABASE_URL", "database.url")
            .env_vars(vars(&[
                ("DATABASE_URL", "postgres://alias"),
                ("AUTH_DATABASE__URL", "postgres://prefixed"),
            ]))
            .load()
            .unwrap();
        assert_eq!(cfg.database.url, "postgres://prefixed");
    }

    #[test]
    fn prefix_config_variable_names_the_file_unless_one_is_given() {
        let dir = tempfile::tempdir().unwrap();
        let from_env = dir.path().join("env.toml");
        let given = dir.path().join("given.toml");
        std::fs::write(&from_env, "listen = \"0.0.0.0:1\"\n").unwrap();
        std::fs::write(&given, "listen = \"0.0.0.0:2\"\n").unwrap();
        let env = vars(&[
            ("AUTH_CONFIG", from_env.to_str().unwrap()),
            ("SWITCHYARD_CONFIG", "/nonexistent/gateway.toml"),
        ]);
        let cfg: AuthConfig = ConfigLoader::new("AUTH")
            .env_vars(env.clone())
            .load()
            .unwrap();
        assert_eq!(cfg.listen, "0.0.0.0:1");
        let cfg: AuthConfig = ConfigLoader::new("AUTH")
            .file(Some(&given))
            .env_vars(env)
            .load()
            .unwrap();
        assert_eq!(cfg.listen, "0.0.0.0:2", "--config wins over AUTH_CONFIG");
    }

    #[test]
    fn bad_values_and_files_are_reported() {
        let err = ConfigLoader::new("AUTH")
            .env_vars(vars(&[("AUTH_DATABASE__MAX_CONNECTIONS", "many")]))
            .load::<AuthConfig>()
            .unwrap_err();
        assert!(matches!(err, ConfigError::Invalid(_)), "{err}");
        let err = ConfigLoader::new("AUTH")
            .file(Some("/nonexistent/auth.toml"))
            .env_vars(vec![])
            .load::<AuthConfig>()
            .unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.toml");
        std::fs::write(&path, "listen = ").unwrap();
        let err = ConfigLoader::new("AUTH")
            .file(Some(&path))
            .env_vars(vec![])
            .load::<AuthConfig>()
            .unwrap_err();
        assert!(matches!(err, ConfigError::Parse { .. }), "{err}");
    }
}
