//! Typed service configuration: defaults, then a file, then the environment.
//!
//! The loader and the value helpers live in `switchyard-config`, shared with the gateway, and
//! are re-exported here so a service needs only the kit. Every service has one config struct
//! (`Serialize + Deserialize + Default`); [`ConfigLoader`] layers its defaults, an optional
//! TOML/YAML/JSON file and environment variables, typing each variable by the field it sets.
//!
//! Variables are `PREFIX_FIELD`, with `__` between nesting levels: for prefix `AUTH`,
//! `AUTH_LISTEN` sets `listen` and `AUTH_DATABASE__URL` sets `database.url`; `AUTH_CONFIG` names
//! the file when the program was given none. Conventional
//! unprefixed names (`DATABASE_URL`, `REDIS_URL`) are mapped with [`ConfigLoader::alias`].

pub use switchyard_config::*;

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
