//! Supergraph SDL (link + join specs) -> `Supergraph` model + API schema.

use apollo_compiler::validation::Valid;
use apollo_compiler::Schema;

/// One subgraph named by `join__graph`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubgraphInfo {
    /// Subgraph name as written in `@join__graph(name:)`.
    pub name: String,
    /// Routing URL from `@join__graph(url:)`.
    pub url: String,
}

/// Errors reading a supergraph.
#[derive(Debug, thiserror::Error)]
pub enum SupergraphError {
    /// The SDL does not parse or validate as GraphQL.
    #[error("invalid supergraph SDL: {0}")]
    Invalid(String),
    /// The SDL is GraphQL but not a supported Federation 2 supergraph.
    #[error("unsupported supergraph: {0}")]
    Unsupported(String),
}

/// A parsed Federation 2 supergraph: which subgraph owns what, and the client-facing API schema.
#[derive(Debug)]
pub struct Supergraph {
    api_schema: Valid<Schema>,
    subgraphs: Vec<SubgraphInfo>,
}

impl Supergraph {
    /// Parses a supergraph SDL (`@link` v1.0, `join` v0.3–v0.5).
    pub fn parse(_sdl: &str) -> Result<Self, SupergraphError> {
        Err(SupergraphError::Unsupported("not implemented yet".into()))
    }

    /// The API schema clients see: no join/link machinery, no `@inaccessible` elements.
    pub fn api_schema(&self) -> &Valid<Schema> {
        &self.api_schema
    }

    /// Subgraphs in declaration order.
    pub fn subgraphs(&self) -> &[SubgraphInfo] {
        &self.subgraphs
    }
}
