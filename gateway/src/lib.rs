//! Switchyard's federation gateway: runs query plans against subgraphs and serves GraphQL over HTTP.

pub use switchyard_planner as planner;

use std::collections::HashMap;
use std::time::Duration;

/// Gateway settings (from the config file, with environment overrides applied by the CLI).
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Subgraph name -> URL, replacing the supergraph's `join__graph(url:)` for that subgraph.
    pub subgraph_url_overrides: HashMap<String, String>,
    /// Per-subgraph request timeout.
    pub subgraph_timeout: Duration,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            subgraph_url_overrides: HashMap::new(),
            subgraph_timeout: Duration::from_secs(30),
        }
    }
}
