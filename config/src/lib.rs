//! Switchyard's one config loader, shared by the gateway and every service.
//!
//! Each program has one typed config struct (`Serialize + Deserialize + Default`, keys defined
//! once, by its fields). [`ConfigLoader`] layers the struct's defaults, an optional TOML / YAML /
//! JSON file and environment variables, and deserializes the result once, so an error names the
//! key or the variable it came from. The value forms every program accepts — durations with
//! units, sizes, optional listen addresses, booleans and lists from the environment — are the
//! parsers and serde helpers in this crate. [`docs`] checks a README's settings table against
//! the keys and variables the loader really reads.

pub mod docs;
mod loader;
mod values;

pub use loader::{ConfigError, ConfigLoader, EnvNames};
pub use values::{
    duration, format_duration, listen, optional_path, optional_text, parse_bool, parse_bytes,
    parse_duration, parse_list, parse_optional_addr, size,
};
