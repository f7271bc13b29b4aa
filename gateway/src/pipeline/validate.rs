//! Step 3: the parsed document validated against the API schema, the operation to run chosen
//! (the only place it is chosen), and the introspection switch applied. Once per distinct
//! operation.

use apollo_compiler::ast;
use apollo_compiler::executable::Operation;
use apollo_compiler::validation::Valid;
use apollo_compiler::{ExecutableDocument, Node, Schema};

use super::parse::{diagnostics, parse};
use crate::error::{GraphQLError, GraphQLErrors, GRAPHQL_VALIDATION_FAILED};
use crate::execute::Executor;

/// Parses and validates a client document against the API schema; parse errors carry
/// `GRAPHQL_PARSE_FAILED`, validation errors `GRAPHQL_VALIDATION_FAILED`, both with locations.
pub fn parse_and_validate(
    schema: &Valid<Schema>,
    query: &str,
) -> Result<Valid<ExecutableDocument>, GraphQLErrors> {
    validate(schema, parse(query)?)
}

/// Validates a parsed client document against the API schema.
pub(crate) fn validate(
    schema: &Valid<Schema>,
    document: ast::Document,
) -> Result<Valid<ExecutableDocument>, GraphQLErrors> {
    document
        .to_executable_validate(schema)
        .map_err(|with| diagnostics(&with.errors, GRAPHQL_VALIDATION_FAILED))
}

/// The operation of `document` that runs: the one named, or the only one.
pub(crate) fn select_operation(
    document: &ExecutableDocument,
    operation_name: Option<&str>,
) -> Result<Node<Operation>, GraphQLErrors> {
    document
        .operations
        .get(operation_name)
        .cloned()
        .map_err(|_| {
            let message = match operation_name {
                Some(name) => format!("Unknown operation named \"{name}\"."),
                None => {
                    "Must provide operation name if query contains multiple operations.".to_owned()
                }
            };
            GraphQLErrors::single(GraphQLError::new(message, GRAPHQL_VALIDATION_FAILED))
        })
}

/// Refuses `__schema` / `__type` in `operation` when introspection is off.
pub(crate) fn check_introspection(
    executor: &Executor,
    document: &Valid<ExecutableDocument>,
    operation: &Operation,
) -> Result<(), GraphQLErrors> {
    executor
        .introspection()
        .check(document, operation)
        .map_err(|err| {
            GraphQLErrors::single(crate::execute::introspection_error(err.to_graphql_error()))
        })
}
