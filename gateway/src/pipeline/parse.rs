//! Step 1: the request's document is there and parses. Runs once per distinct operation (the
//! result is cached with the plan), except the "Missing query" check, which the transports make
//! when they read a request.

use apollo_compiler::ast;
use apollo_compiler::validation::DiagnosticList;
use serde_json::{Map, Value};

use crate::error::{GraphQLError, GraphQLErrors, Location, BAD_REQUEST, GRAPHQL_PARSE_FAILED};
use crate::GraphQLRequest;

/// A client request that has a document: what the pipeline runs.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub(crate) query: String,
    pub(crate) operation_name: Option<String>,
    pub(crate) variables: Option<Map<String, Value>>,
}

impl TryFrom<GraphQLRequest> for Request {
    type Error = MissingQuery;

    /// The request, or [`MissingQuery`] when it has no document.
    fn try_from(request: GraphQLRequest) -> Result<Self, MissingQuery> {
        Ok(Request {
            query: require_query(request.query)?,
            operation_name: request.operation_name,
            variables: request.variables,
        })
    }
}

/// A request without a document.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MissingQuery;

impl MissingQuery {
    /// What the client is told (HTTP POST and GET, and library callers, all come through
    /// [`require_query`]).
    pub(crate) const MESSAGE: &'static str = "Missing query";

    /// As a GraphQL error.
    pub(crate) fn error(self) -> GraphQLError {
        GraphQLError::new(Self::MESSAGE, BAD_REQUEST)
    }
}

/// The document of a request, or [`MissingQuery`]: the one place that check is made.
pub(crate) fn require_query(query: Option<String>) -> Result<String, MissingQuery> {
    query.ok_or(MissingQuery)
}

/// Parses a client document (no validation yet).
pub(crate) fn parse(query: &str) -> Result<ast::Document, GraphQLErrors> {
    ast::Document::parse(query, "operation.graphql")
        .map_err(|with| diagnostics(&with.errors, GRAPHQL_PARSE_FAILED))
}

/// The parser's or validator's diagnostics as client errors with `code` and locations.
pub(crate) fn diagnostics(list: &DiagnosticList, code: &str) -> GraphQLErrors {
    GraphQLErrors(
        list.iter()
            .map(|diagnostic| {
                let json = diagnostic.to_json();
                let mut error = GraphQLError::new(readable_tokens(&json.message), code);
                error.locations = json
                    .locations
                    .iter()
                    .map(|l| Location {
                        line: l.line,
                        column: l.column,
                    })
                    .collect();
                error
            })
            .collect(),
    )
}

/// `message` with the parser's token names (`expected R_CURLY, got EOF`) replaced by what a
/// person typed or left out (`expected }, got the end of the document`).
fn readable_tokens(message: &str) -> String {
    const TOKENS: [(&str, &str); 17] = [
        ("L_CURLY", "{"),
        ("R_CURLY", "}"),
        ("L_PAREN", "("),
        ("R_PAREN", ")"),
        ("L_BRACK", "["),
        ("R_BRACK", "]"),
        ("COLON", ":"),
        ("BANG", "!"),
        ("DOLLAR", "$"),
        ("AT", "@"),
        ("EQ", "="),
        ("PIPE", "|"),
        ("AMP", "&"),
        ("SPREAD", "..."),
        ("COMMA", ","),
        ("EOF", "the end of the document"),
        ("IDENT", "a name"),
    ];
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find(|c: char| c.is_ascii_uppercase()) {
        out.push_str(&rest[..start]);
        let word = &rest[start..];
        let end = word
            .find(|c: char| !(c.is_ascii_uppercase() || c == '_'))
            .unwrap_or(word.len());
        let (token, after) = word.split_at(end);
        // Only whole words: `EOF` but not the capitals of `Query` or `GRAPHQL_X` inside a name.
        let before_ok = !out.ends_with(|c: char| c.is_alphanumeric() || c == '_');
        let after_ok = !after.starts_with(|c: char| c.is_alphanumeric() || c == '_');
        match TOKENS.iter().find(|(name, _)| *name == token) {
            Some((_, text)) if before_ok && after_ok => out.push_str(text),
            _ => out.push_str(token),
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_name_the_characters_not_the_parser_tokens() {
        assert_eq!(
            readable_tokens("expected R_CURLY, got EOF"),
            "expected }, got the end of the document"
        );
        assert_eq!(
            readable_tokens("expected a Name, got L_PAREN"),
            "expected a Name, got ("
        );
        // Names that merely contain the capitals stay as they are.
        assert_eq!(
            readable_tokens("Cannot query field `MY_EOF` on type `Query`"),
            "Cannot query field `MY_EOF` on type `Query`"
        );
        let errors = parse("{ me { id }").unwrap_err();
        let message = &errors.0[0].message;
        assert!(!message.contains("R_CURLY"), "{message}");
        assert!(message.contains('}'), "{message}");
    }
}
