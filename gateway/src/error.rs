//! GraphQL errors as they appear in responses, and the gateway's own error type.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `extensions.code` for a document that does not parse.
pub const GRAPHQL_PARSE_FAILED: &str = "GRAPHQL_PARSE_FAILED";
/// `extensions.code` for a document that does not validate against the API schema.
pub const GRAPHQL_VALIDATION_FAILED: &str = "GRAPHQL_VALIDATION_FAILED";
/// `extensions.code` for a subgraph that failed, timed out or answered garbage.
pub const SUBGRAPH_REQUEST_FAILED: &str = "SUBGRAPH_REQUEST_FAILED";
/// `extensions.code` for a fetch not sent because the subgraph's circuit breaker is open.
pub const SUBGRAPH_CIRCUIT_OPEN: &str = "SUBGRAPH_CIRCUIT_OPEN";
/// `extensions.code` for a malformed HTTP request (bad JSON, no query).
pub const BAD_REQUEST: &str = "BAD_REQUEST";
/// `extensions.code` for an operation the planner cannot plan.
pub const QUERY_PLANNING_FAILED: &str = "QUERY_PLANNING_FAILED";
/// `extensions.code` for an operation nested deeper than `max_depth`.
pub const MAX_DEPTH_EXCEEDED: &str = "MAX_DEPTH_EXCEEDED";
/// `extensions.code` for an operation with more aliases than `max_aliases`.
pub const MAX_ALIASES_EXCEEDED: &str = "MAX_ALIASES_EXCEEDED";
/// `extensions.code` for an operation with more root fields than `max_root_fields`.
pub const MAX_ROOT_FIELDS_EXCEEDED: &str = "MAX_ROOT_FIELDS_EXCEEDED";
/// `extensions.code` for an operation selecting more fields than `max_fields` (fragments expanded).
pub const MAX_FIELDS_EXCEEDED: &str = "MAX_FIELDS_EXCEEDED";
/// `extensions.code` for an operation whose estimated cost is over `max_cost`.
pub const MAX_COST_EXCEEDED: &str = "MAX_COST_EXCEEDED";
/// `extensions.code` for introspection when it is switched off.
pub const INTROSPECTION_DISABLED: &str = "INTROSPECTION_DISABLED";
/// `extensions.code` for a request body over `max_body_bytes`.
pub const PAYLOAD_TOO_LARGE: &str = "PAYLOAD_TOO_LARGE";
/// `extensions.code` for bad or missing variable values.
pub const BAD_USER_INPUT: &str = "BAD_USER_INPUT";

/// `extensions.code` of the error that stands for the errors left out of a long list.
pub const TOO_MANY_ERRORS: &str = "TOO_MANY_ERRORS";

/// Most errors one response lists. A subgraph that fails 20,000 list items would otherwise
/// send the client megabytes of near-identical errors; the first ones say what went wrong.
pub const MAX_ERRORS: usize = 100;

/// Shortens `errors` to at most [`MAX_ERRORS`], the last one saying how many were left out.
pub(crate) fn cap_errors(errors: &mut Vec<GraphQLError>) {
    if errors.len() > MAX_ERRORS {
        let omitted = omitted_error(errors.len());
        errors.truncate(MAX_ERRORS - 1);
        errors.push(omitted);
    }
}

/// `errors`, or its first [`MAX_ERRORS`]` - 1` and one saying how many were left out.
pub(crate) fn capped(errors: &[GraphQLError]) -> std::borrow::Cow<'_, [GraphQLError]> {
    if errors.len() <= MAX_ERRORS {
        return std::borrow::Cow::Borrowed(errors);
    }
    let mut kept = errors[..MAX_ERRORS - 1].to_vec();
    kept.push(omitted_error(errors.len()));
    std::borrow::Cow::Owned(kept)
}

fn omitted_error(total: usize) -> GraphQLError {
    let omitted = total - (MAX_ERRORS - 1);
    GraphQLError::new(
        format!("{omitted} more errors were left out of this response."),
        TOO_MANY_ERRORS,
    )
    .with_extension("omitted", omitted)
}

/// A line/column position in the client's document (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

/// One step of an error path: an object key or a list index.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PathSegment {
    /// An object key (response key).
    Key(String),
    /// A list index.
    Index(usize),
}

impl From<&str> for PathSegment {
    fn from(key: &str) -> Self {
        PathSegment::Key(key.to_owned())
    }
}

impl From<usize> for PathSegment {
    fn from(index: usize) -> Self {
        PathSegment::Index(index)
    }
}

/// A GraphQL error, as serialized in a response's `errors` list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphQLError {
    /// Human-readable description.
    pub message: String,
    /// Where in the client's document, if known.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locations: Vec<Location>,
    /// Where in the response data, for field errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<Vec<PathSegment>>,
    /// Machine-readable details (`code`, `serviceName`, ...).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub extensions: Map<String, Value>,
}

impl GraphQLError {
    /// An error with a message and an `extensions.code`.
    pub fn new(message: impl Into<String>, code: &str) -> Self {
        let mut extensions = Map::new();
        extensions.insert("code".to_owned(), Value::String(code.to_owned()));
        Self {
            message: message.into(),
            locations: Vec::new(),
            path: None,
            extensions,
        }
    }

    /// The same error at `path`.
    pub fn with_path(mut self, path: Vec<PathSegment>) -> Self {
        self.path = Some(path);
        self
    }

    /// The same error with `extensions[key] = value`.
    pub fn with_extension(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extensions.insert(key.to_owned(), value.into());
        self
    }

    /// `extensions.code`, if any.
    pub fn code(&self) -> Option<&str> {
        self.extensions.get("code").and_then(Value::as_str)
    }
}

/// A list of GraphQL errors that stopped a request before execution.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphQLErrors(pub Vec<GraphQLError>);

impl GraphQLErrors {
    /// One error.
    pub fn single(error: GraphQLError) -> Self {
        Self(vec![error])
    }
}

impl std::fmt::Display for GraphQLErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, err) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            f.write_str(&err.message)?;
            if let Some(loc) = err.locations.first() {
                write!(f, " (at {}:{})", loc.line, loc.column)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for GraphQLErrors {}

/// Why a gateway could not be built.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The supergraph SDL is unusable.
    #[error(transparent)]
    Supergraph(#[from] switchyard_planner::SupergraphError),
    /// A subgraph URL is not a valid `http://` URL.
    #[error("subgraph {subgraph}: invalid URL {url:?}: {message}")]
    SubgraphUrl {
        /// The subgraph.
        subgraph: String,
        /// The URL given.
        url: String,
        /// What is wrong with it.
        message: String,
    },
    /// A subgraph's TLS settings are unusable (unreadable CA bundle, certificate or key).
    #[error("subgraph {subgraph}: TLS settings: {message}")]
    SubgraphTls {
        /// The subgraph.
        subgraph: String,
        /// What is wrong.
        message: String,
    },
    /// Tracing is switched on but cannot export (a bad `otlp_endpoint`).
    #[error(transparent)]
    Tracing(#[from] switchyard_telemetry::trace::TraceError),
}
