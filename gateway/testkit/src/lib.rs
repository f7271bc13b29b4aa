//! Test support: async-graphql subgraphs built from a supergraph's join directives and served from
//! JSON fixtures, plus the federation case-file format, response matching and a tiny HTTP client.
//!
//! The case and fixture formats are specified in gateway/tests/federation/README.md.

#![warn(missing_docs)]

pub mod case;
pub mod client;
pub mod compare;
pub mod extract;
pub mod fieldset;
mod fixups;
pub mod generate;
pub mod server;
pub mod subgraph;

pub use case::{Case, CaseOptions, SupergraphSource as CaseSupergraph};
pub use client::{post_json, JsonResponse};
pub use compare::match_response;
pub use extract::{GraphInfo, SubgraphModel, SupergraphSource};
pub use server::{start_subgraphs, RecordedRequest, RequestLog, RunningSubgraphs, SubgraphHandle};
pub use subgraph::{Counters, FixtureSubgraph};

/// Everything that can go wrong in the test kit.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// The supergraph SDL is not usable.
    #[error("supergraph: {0}")]
    Supergraph(String),
    /// No `join__graph` has this name.
    #[error("unknown subgraph `{0}`")]
    UnknownSubgraph(String),
    /// A field set (`key`, `requires`) does not parse.
    #[error("field set: {0}")]
    FieldSet(String),
    /// async-graphql rejected the extracted schema.
    #[error("schema: {0}")]
    Schema(String),
    /// A fixture is malformed.
    #[error("fixture: {0}")]
    Fixture(String),
    /// A case file is malformed.
    #[error("case: {0}")]
    Case(String),
    /// An HTTP request failed.
    #[error("http: {0}")]
    Http(String),
    /// An I/O operation failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
