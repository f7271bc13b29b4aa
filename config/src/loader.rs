//! [`ConfigLoader`]: defaults, then a file, then the environment, into one typed struct.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::values::{parse_bool, parse_list};

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
    /// An environment variable holds a value its setting cannot take.
    #[error("environment variable {name}: {message}")]
    Env {
        /// The variable.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// The merged settings do not fit the config struct (the message names the key).
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// How environment variable names map onto keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EnvNames {
    /// `PREFIX_FIELD`, with `__` between nesting levels (`AUTH_DATABASE__URL` sets
    /// `database.url`); a name no default has still creates its key (the services' style).
    #[default]
    Nested,
    /// `PREFIX_` and the key's path joined by `_` (`SWITCHYARD_CORS_MAX_AGE` sets
    /// `cors.max_age`), matched against the keys the defaults have; other names are ignored
    /// (the gateway's style, where one `_` cannot tell nesting from a word break by itself).
    Flat,
}

/// Builds a typed config from defaults, a file and the environment.
///
/// The defaults (`T::default()`, or the value being updated) are serialized to a JSON tree
/// first: the file is merged over it key by key, and each environment value is typed by the
/// value it replaces — a string field stays a string even if the value looks numeric, a
/// boolean takes `yes`/`on`/`1`, a list takes comma-separated items. A field whose default is
/// `None` has no type to go by: its value is read as JSON when it parses as a number, boolean,
/// array or object, else as a string (quote it, `'"123"'`, or give the field a helper such as
/// [`crate::optional_text`]). The tree is then deserialized once, so an error names the key, or
/// the variable that set it.
#[derive(Debug, Clone)]
pub struct ConfigLoader {
    prefix: String,
    names: EnvNames,
    file: Option<PathBuf>,
    toml_text: Option<String>,
    file_variable: bool,
    aliases: Vec<(String, String)>,
    fallbacks: Vec<(String, String)>,
    renames: Vec<(String, String)>,
    env_skip: Vec<String>,
    keyed: Vec<(String, String, String)>,
    env: Option<Vec<(String, String)>>,
}

impl ConfigLoader {
    /// A loader reading variables named `{prefix}_…` (prefix matched case-insensitively).
    pub fn new(prefix: &str) -> Self {
        ConfigLoader {
            prefix: prefix.trim_end_matches('_').to_ascii_uppercase(),
            names: EnvNames::Nested,
            file: None,
            toml_text: None,
            file_variable: true,
            aliases: Vec::new(),
            fallbacks: Vec::new(),
            renames: Vec::new(),
            env_skip: Vec::new(),
            keyed: Vec::new(),
            env: None,
        }
    }

    /// How variable names map onto keys (default [`EnvNames::Nested`]).
    pub fn env_names(mut self, names: EnvNames) -> Self {
        self.names = names;
        self
    }

    /// Reads this file (format by extension: `.toml`, `.yaml`/`.yml`, `.json`; anything else
    /// is TOML); without one, the file `{prefix}_CONFIG` names, if set. (Each program has its
    /// own variable, so the gateway's `SWITCHYARD_CONFIG` never reaches a service.)
    pub fn file(mut self, path: Option<impl AsRef<Path>>) -> Self {
        self.file = path.map(|p| p.as_ref().to_path_buf());
        self
    }

    /// Uses this TOML text as the file.
    pub fn toml_text(mut self, text: &str) -> Self {
        self.toml_text = Some(text.to_owned());
        self
    }

    /// Whether `{prefix}_CONFIG` names the file when none is given (default: yes).
    pub fn file_variable(mut self, read: bool) -> Self {
        self.file_variable = read;
        self
    }

    /// Maps an unprefixed variable (e.g. `DATABASE_URL`) onto a dotted key path
    /// (e.g. `database.url`). Prefixed variables win over aliases; the file does not.
    pub fn alias(mut self, variable: &str, key_path: &str) -> Self {
        self.aliases
            .push((variable.to_owned(), key_path.to_owned()));
        self
    }

    /// Like [`ConfigLoader::alias`], but the variable is used only when neither the file nor a
    /// prefixed variable set the key (it is still null): a convention shared by other programs,
    /// such as `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn fallback(mut self, variable: &str, key_path: &str) -> Self {
        self.fallbacks
            .push((variable.to_owned(), key_path.to_owned()));
        self
    }

    /// An older name of a key, still read from the file and (as its variable) from the
    /// environment; the current name wins when a file has both.
    pub fn rename(mut self, old_key: &str, key: &str) -> Self {
        self.renames.push((old_key.to_owned(), key.to_owned()));
        self
    }

    /// A top-level key no variable sets ([`EnvNames::Flat`]; tables of rules, maps by name).
    pub fn env_skip(mut self, key: &str) -> Self {
        self.env_skip.push(key.to_owned());
        self
    }

    /// `{prefix}_{infix}<NAME>` sets `{map_key}.<name>.{leaf}` (the name lower-cased), as a
    /// string: one variable per entry of a map keyed by name.
    pub fn keyed_variable(mut self, infix: &str, map_key: &str, leaf: &str) -> Self {
        self.keyed
            .push((infix.to_owned(), map_key.to_owned(), leaf.to_owned()));
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
        self.load_over(&T::default())
    }

    /// Merges the file and the environment over `base` (instead of `T::default()`).
    pub fn load_over<T>(&self, base: &T) -> Result<T, ConfigError>
    where
        T: Serialize + DeserializeOwned,
    {
        let mut tree =
            serde_json::to_value(base).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let env_keys = self.env_keys(&tree);
        let env = match &self.env {
            Some(vars) => vars.clone(),
            None => std::env::vars().collect(),
        };
        let file_variable = format!("{}_CONFIG", self.prefix);
        let file = self.file.clone().or_else(|| {
            self.file_variable
                .then(|| {
                    env.iter()
                        .find(|(k, v)| {
                            k.eq_ignore_ascii_case(&file_variable) && !v.trim().is_empty()
                        })
                        .map(|(_, v)| PathBuf::from(v.trim()))
                })
                .flatten()
        });
        if let Some(path) = &file {
            let layer = self.renamed(read_file(path)?);
            merge(&mut tree, layer);
        }
        if let Some(text) = &self.toml_text {
            let layer: Value =
                toml::from_str(text).map_err(|e| ConfigError::Invalid(format!("TOML: {e}")))?;
            merge(&mut tree, self.renamed(layer));
        }

        // Which variable set each key, so a bad value is reported by the variable's name.
        let mut sources: Vec<(Vec<String>, String)> = Vec::new();
        for (variable, key_path) in &self.aliases {
            if let Some((_, value)) = env.iter().find(|(k, _)| k == variable) {
                let path = split_path(key_path);
                set_path(&mut tree, &path, value);
                sources.push((path, variable.clone()));
            }
        }
        let mut prefixed: Vec<(Vec<String>, &str, &str, bool)> = Vec::new();
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
            if let Some((path, string)) = self.keyed_path(rest) {
                prefixed.push((path, key.as_str(), value.as_str(), string));
                continue;
            }
            let path = match self.names {
                EnvNames::Nested => rest.split("__").map(str::to_ascii_lowercase).collect(),
                EnvNames::Flat => match env_keys.get(rest) {
                    Some(path) => path.clone(),
                    None => continue,
                },
            };
            prefixed.push((path, key.as_str(), value.as_str(), false));
        }
        // An older name first, so the current one wins when both are set.
        prefixed.sort_by_key(|(path, ..)| !self.is_old_key(path));
        for (path, variable, value, string) in prefixed {
            let path = self.current_key(path);
            if string {
                set_path_value(&mut tree, &path, Value::String(value.to_owned()));
            } else {
                set_path(&mut tree, &path, value);
            }
            sources.push((path, variable.to_owned()));
        }
        for (variable, key_path) in &self.fallbacks {
            let path = split_path(key_path);
            let unset = get_path(&tree, &path)
                .is_none_or(|v| v.is_null() || v.as_str().is_some_and(|s| s.trim().is_empty()));
            if let Some((_, value)) = env.iter().find(|(k, _)| k == variable) {
                if unset && !value.trim().is_empty() {
                    set_path(&mut tree, &path, value);
                    sources.push((path, variable.clone()));
                }
            }
        }

        serde_path_to_error::deserialize(tree).map_err(|err| {
            let key = err.path().to_string();
            let message = shorter_unknown_field(&err.inner().to_string());
            let from_variable = sources.iter().rev().find(|(path, _)| {
                let set = path.join(".");
                key == set
                    || key
                        .strip_prefix(&set)
                        .is_some_and(|rest| rest.starts_with(['.', '[']))
            });
            if let Some((_, name)) = from_variable {
                return ConfigError::Env {
                    name: name.clone(),
                    message,
                };
            }
            // Not from a variable: from the file (the defaults always fit).
            let mut origin = Vec::new();
            if let Some(path) = &file {
                origin.push(path.display().to_string());
            }
            if key != "." {
                origin.push(key);
            }
            origin.push(message);
            ConfigError::Invalid(origin.join(": "))
        })
    }

    /// Every key of `T` (dotted paths of the defaults' leaves, and older names) with the
    /// variables that set it, in the order they are applied (the last wins). Keys of maps by
    /// name use `<name>`: `subgraphs.<name>.url`.
    pub fn variables<T: Serialize + Default>(&self) -> BTreeMap<String, Vec<String>> {
        let tree = serde_json::to_value(T::default()).unwrap_or(Value::Null);
        let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut leaves = Vec::new();
        leaf_paths(&tree, &mut Vec::new(), &mut leaves);
        for path in &leaves {
            keys.entry(path.join(".")).or_default();
        }
        for (variable, key_path) in &self.aliases {
            keys.entry(key_path.clone())
                .or_default()
                .push(variable.clone());
        }
        match self.names {
            EnvNames::Nested => {
                for path in &leaves {
                    let name = format!("{}_{}", self.prefix, path.join("__")).to_ascii_uppercase();
                    keys.entry(path.join(".")).or_default().push(name);
                }
            }
            EnvNames::Flat => {
                for (name, path) in self.env_keys(&tree) {
                    keys.entry(path.join("."))
                        .or_default()
                        .push(format!("{}_{name}", self.prefix));
                }
            }
        }
        if self.names == EnvNames::Nested {
            for (old, _) in &self.renames {
                let name =
                    format!("{}_{}", self.prefix, old.replace('.', "__")).to_ascii_uppercase();
                keys.entry(old.clone()).or_default().push(name);
            }
        }
        for (infix, map_key, leaf) in &self.keyed {
            keys.entry(format!("{map_key}.<name>.{leaf}"))
                .or_default()
                .push(format!("{}_{infix}<NAME>", self.prefix));
        }
        for (variable, key_path) in &self.fallbacks {
            keys.entry(key_path.clone())
                .or_default()
                .push(variable.clone());
        }
        keys
    }

    /// [`EnvNames::Flat`]: variable name after the prefix -> key path, from the defaults' leaves.
    fn env_keys(&self, tree: &Value) -> BTreeMap<String, Vec<String>> {
        let mut leaves = Vec::new();
        leaf_paths(tree, &mut Vec::new(), &mut leaves);
        let old_names = self.renames.iter().map(|(old, _)| split_path(old));
        leaves
            .into_iter()
            .filter(|path| !self.env_skip.iter().any(|skip| path[0] == *skip))
            .chain(old_names)
            .map(|path| (path.join("_").to_ascii_uppercase(), path))
            .collect()
    }

    fn keyed_path(&self, rest: &str) -> Option<(Vec<String>, bool)> {
        self.keyed.iter().find_map(|(infix, map_key, leaf)| {
            let name = rest.strip_prefix(infix.as_str())?;
            (!name.is_empty()).then(|| {
                (
                    vec![map_key.clone(), name.to_ascii_lowercase(), leaf.clone()],
                    true,
                )
            })
        })
    }

    fn is_old_key(&self, path: &[String]) -> bool {
        let key = path.join(".");
        self.renames.iter().any(|(old, _)| *old == key)
    }

    fn current_key(&self, path: Vec<String>) -> Vec<String> {
        let key = path.join(".");
        match self.renames.iter().find(|(old, _)| *old == key) {
            Some((_, new)) => split_path(new),
            None => path,
        }
    }

    /// A file's tree with older key names moved to the current ones (the current name wins).
    fn renamed(&self, mut layer: Value) -> Value {
        for (old, new) in &self.renames {
            let old = split_path(old);
            let Some(value) = remove_path(&mut layer, &old) else {
                continue;
            };
            let new = split_path(new);
            if get_path(&layer, &new).is_none() {
                set_path_value(&mut layer, &new, value);
            }
        }
        layer
    }
}

/// serde's "unknown field `x`, expected one of …" lists every key; a misspelt key is better
/// served by the nearest one.
fn shorter_unknown_field(message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message.to_owned();
    };
    let Some((unknown, expected)) = rest.split_once('`') else {
        return message.to_owned();
    };
    let nearest = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|known| (edit_distance(unknown, known), known))
        .filter(|(distance, _)| *distance <= 2.max(unknown.len() / 4))
        .min();
    match nearest {
        Some((_, known)) => format!("unknown key `{unknown}` (did you mean `{known}`?)"),
        None => format!("unknown key `{unknown}`"),
    }
}

/// Levenshtein distance, by the two-row method.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != *cb);
            current.push(substitute.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

fn split_path(dotted: &str) -> Vec<String> {
    dotted.split('.').map(str::to_owned).collect()
}

/// Collects the paths of every non-object value (an empty object counts as a leaf too, so a
/// map with no entries by default still has a key).
fn leaf_paths(tree: &Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match tree {
        Value::Object(map) if !map.is_empty() => {
            for (key, value) in map {
                path.push(key.clone());
                leaf_paths(value, path, out);
                path.pop();
            }
        }
        _ if !path.is_empty() => out.push(path.clone()),
        _ => {}
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

fn get_path<'a>(tree: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(tree, |node, key| node.get(key))
}

fn remove_path(tree: &mut Value, path: &[String]) -> Option<Value> {
    let (last, parents) = path.split_last()?;
    let mut node = tree;
    for key in parents {
        node = node.get_mut(key)?;
    }
    node.as_object_mut()?.remove(last)
}

/// Sets the value at `path` to `raw`, typed by the value it replaces.
fn set_path(tree: &mut Value, path: &[String], raw: &str) {
    let typed = typed_value(get_path(tree, path), raw);
    set_path_value(tree, path, typed);
}

fn set_path_value(tree: &mut Value, path: &[String], value: Value) {
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
        map.insert(last.clone(), value);
    }
}

/// Interprets `raw` as the type of the value it replaces. A value that does not fit stays a
/// string, so deserializing reports it against the key (and so the variable).
fn typed_value(existing: Option<&Value>, raw: &str) -> Value {
    let json_or_string =
        || serde_json::from_str::<Value>(raw).unwrap_or_else(|_| Value::String(raw.to_owned()));
    match existing {
        Some(Value::String(_)) => Value::String(raw.to_owned()),
        Some(Value::Bool(_)) => {
            parse_bool(raw).map_or_else(|_| Value::String(raw.to_owned()), Value::Bool)
        }
        Some(Value::Number(_)) => match serde_json::from_str::<Value>(raw) {
            Ok(number @ Value::Number(_)) => number,
            _ => Value::String(raw.to_owned()),
        },
        Some(Value::Array(items)) => match serde_json::from_str::<Value>(raw) {
            Ok(array @ Value::Array(_)) => array,
            // Comma-separated, each item typed like the default's items (text when it has none).
            _ => {
                let like = items
                    .first()
                    .cloned()
                    .unwrap_or(Value::String(String::new()));
                Value::Array(
                    parse_list(raw)
                        .iter()
                        .map(|item| typed_value(Some(&like), item))
                        .collect(),
                )
            }
        },
        _ => json_or_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::time::Duration;

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
                ("AUTH_DEBUG", "yes"),
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
        assert!(cfg.debug, "yes is a boolean");
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
            .env_vars(env.clone())
            .load()
            .unwrap();
        assert_eq!(cfg.listen, "0.0.0.0:2", "--config wins over AUTH_CONFIG");
        let cfg: AuthConfig = ConfigLoader::new("AUTH")
            .file_variable(false)
            .env_vars(env)
            .load()
            .unwrap();
        assert_eq!(cfg.listen, "127.0.0.1:4101", "AUTH_CONFIG switched off");
    }

    #[test]
    fn bad_values_and_files_are_reported() {
        let err = ConfigLoader::new("AUTH")
            .env_vars(vars(&[("AUTH_DATABASE__MAX_CONNECTIONS", "many")]))
            .load::<AuthConfig>()
            .unwrap_err();
        assert!(
            matches!(&err, ConfigError::Env { name, .. } if name == "AUTH_DATABASE__MAX_CONNECTIONS"),
            "{err}"
        );
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
        std::fs::write(&path, "[database]\nmax_connections = \"x\"").unwrap();
        let err = ConfigLoader::new("AUTH")
            .file(Some(&path))
            .env_vars(vec![])
            .load::<AuthConfig>()
            .unwrap_err();
        assert!(
            err.to_string().contains("database.max_connections"),
            "names the key: {err}"
        );
    }

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Cors {
        allow_origins: Vec<String>,
        #[serde(with = "crate::duration")]
        max_age: Duration,
    }

    impl Default for Cors {
        fn default() -> Self {
            Cors {
                allow_origins: Vec::new(),
                max_age: Duration::from_secs(600),
            }
        }
    }

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Gateway {
        #[serde(with = "crate::duration")]
        timeout: Duration,
        max_depth: usize,
        dedupe: bool,
        #[serde(deserialize_with = "crate::optional_text")]
        otlp_endpoint: Option<String>,
        cors: Cors,
        urls: BTreeMap<String, BTreeMap<String, String>>,
    }

    impl Default for Gateway {
        fn default() -> Self {
            Gateway {
                timeout: Duration::from_secs(30),
                max_depth: 64,
                dedupe: true,
                otlp_endpoint: None,
                cors: Cors::default(),
                urls: BTreeMap::new(),
            }
        }
    }

    fn flat() -> ConfigLoader {
        ConfigLoader::new("GW")
            .env_names(EnvNames::Flat)
            .file_variable(false)
            .rename("timeout_ms", "timeout")
            .env_skip("urls")
            .keyed_variable("URL_", "urls", "url")
            .fallback("OTEL_ENDPOINT", "otlp_endpoint")
    }

    #[test]
    fn flat_names_renames_keyed_variables_and_fallbacks() {
        let config: Gateway = flat()
            .toml_text("timeout_ms = 1500\n[cors]\nmax_age = \"1m\"")
            .env_vars(vars(&[
                ("GW_CORS_ALLOW_ORIGINS", "https://a.test, https://b.test"),
                ("GW_DEDUPE", "off"),
                ("GW_URL_USER_ACCOUNTS", "http://a"),
                ("GW_UNKNOWN", "ignored"),
                ("OTEL_ENDPOINT", "http://otel"),
            ]))
            .load()
            .unwrap();
        assert_eq!(config.timeout, Duration::from_millis(1500));
        assert_eq!(config.cors.max_age, Duration::from_secs(60));
        assert_eq!(
            config.cors.allow_origins,
            ["https://a.test", "https://b.test"]
        );
        assert!(!config.dedupe);
        assert_eq!(config.urls["user_accounts"]["url"], "http://a");
        assert_eq!(config.otlp_endpoint.as_deref(), Some("http://otel"));

        let config: Gateway = flat()
            .toml_text("timeout = \"2s\"\ntimeout_ms = 1500\notlp_endpoint = \"http://mine\"")
            .env_vars(vars(&[("OTEL_ENDPOINT", "http://otel")]))
            .load()
            .unwrap();
        assert_eq!(
            config.timeout,
            Duration::from_secs(2),
            "the current name wins"
        );
        assert_eq!(
            config.otlp_endpoint.as_deref(),
            Some("http://mine"),
            "fallback loses"
        );

        let config: Gateway = flat()
            .env_vars(vars(&[("GW_TIMEOUT", "250ms"), ("GW_TIMEOUT_MS", "40")]))
            .load()
            .unwrap();
        assert_eq!(config.timeout, Duration::from_millis(250));

        let err = flat()
            .env_vars(vars(&[("GW_MAX_DEPTH", "deep")]))
            .load::<Gateway>()
            .unwrap_err();
        assert!(err.to_string().contains("GW_MAX_DEPTH"), "{err}");
        let err = flat()
            .env_vars(vars(&[("GW_CORS_MAX_AGE", "soon")]))
            .load::<Gateway>()
            .unwrap_err();
        assert!(err.to_string().contains("GW_CORS_MAX_AGE"), "{err}");
        let err = flat()
            .toml_text("[cors]\nmax_agee = 5")
            .env_vars(vec![])
            .load::<Gateway>()
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("unknown key `max_agee` (did you mean `max_age`?)"),
            "{err}"
        );
        let err = flat()
            .toml_text("frobnicate = 5")
            .env_vars(vec![])
            .load::<Gateway>()
            .unwrap_err();
        assert!(
            err.to_string()
                .ends_with("frobnicate: unknown key `frobnicate`"),
            "{err}"
        );

        let variables = flat().variables::<Gateway>();
        assert_eq!(variables["cors.max_age"], ["GW_CORS_MAX_AGE"]);
        assert_eq!(variables["timeout_ms"], ["GW_TIMEOUT_MS"]);
        assert_eq!(variables["urls.<name>.url"], ["GW_URL_<NAME>"]);
        assert_eq!(
            variables["otlp_endpoint"],
            ["GW_OTLP_ENDPOINT", "OTEL_ENDPOINT"]
        );
        assert!(variables["urls"].is_empty());
    }

    #[test]
    fn load_over_keeps_what_the_layers_do_not_set() {
        let base = Gateway {
            max_depth: 7,
            ..Gateway::default()
        };
        let config: Gateway = flat()
            .toml_text("dedupe = false")
            .env_vars(vec![])
            .load_over(&base)
            .unwrap();
        assert_eq!(config.max_depth, 7);
        assert!(!config.dedupe);
    }
}
