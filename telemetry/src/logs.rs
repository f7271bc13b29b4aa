//! Log setup shared by every binary (the `switchyard` CLI and each service), so logs look and
//! filter the same everywhere.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global tracing subscriber.
///
/// The filter comes from `RUST_LOG` when set, else `default_filter` (e.g. `"info"`). `json`
/// switches to one JSON object per line for log shippers. Logs go to standard error, so what a
/// program prints on standard output (a schema, a report) stays clean when redirected, and are
/// coloured only when standard error is a terminal. Returns `false` if a subscriber was already
/// installed (tests call this repeatedly), which is not an error.
pub fn init_tracing(default_filter: &str, json: bool) -> bool {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if json {
        builder.json().try_init().is_ok()
    } else {
        builder.try_init().is_ok()
    }
}
