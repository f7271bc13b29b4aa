//! Client operations made ready to run: parsed, validated, checked against limits and planned,
//! then cached together (`plan_cache.rs`), so the hot path never re-parses, re-validates or
//! re-plans.

use std::collections::HashSet;
use std::sync::Arc;

use apollo_compiler::ast::{self, OperationType, Value as AstValue};
use apollo_compiler::executable::{Operation, Selection, SelectionSet};
use apollo_compiler::validation::{DiagnosticList, Valid};
use apollo_compiler::{ExecutableDocument, Node, Schema};
use serde_json::{Map, Number, Value};
use switchyard_planner::QueryPlan;

use crate::error::{
    GraphQLError, GraphQLErrors, Location, BAD_USER_INPUT, GRAPHQL_PARSE_FAILED,
    GRAPHQL_VALIDATION_FAILED, MAX_ROOT_FIELDS_EXCEEDED,
};
use crate::execute::{ExecNode, Executor};

/// A validated, planned operation, ready to execute any number of times.
pub struct PreparedOperation {
    pub(crate) document: Valid<ExecutableDocument>,
    pub(crate) operation: Node<Operation>,
    pub(crate) plan: QueryPlan,
    pub(crate) exec: Option<ExecNode>,
    pub(crate) has_introspection: bool,
    /// The estimated cost; redone per request when a list size comes from a variable.
    pub(crate) cost: crate::limits::Cost,
    /// Size of the last response written for this operation, to size the next one's buffer
    /// in one allocation (responses to one operation tend to be alike in size).
    pub(crate) response_size: std::sync::atomic::AtomicUsize,
    /// This operation's metric handles, resolved on its first run.
    pub(crate) metrics: std::sync::OnceLock<Arc<crate::metrics::OperationMetrics>>,
    /// The API schema, for checking variable values.
    schema: Arc<Valid<Schema>>,
}

impl std::fmt::Debug for PreparedOperation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedOperation")
            .field("operation", &self.operation.name)
            .field("plan", &self.plan)
            .finish_non_exhaustive()
    }
}

impl PreparedOperation {
    /// Binds `plan` (made for `operation_name` of `document`) to `executor`'s subgraphs.
    pub fn new(
        executor: &Executor,
        document: Valid<ExecutableDocument>,
        operation_name: Option<&str>,
        plan: QueryPlan,
    ) -> Result<Self, GraphQLErrors> {
        let operation = select_operation(&document, operation_name)?;
        let has_introspection = crate::introspection::selects_introspection(&document, &operation);
        let exec = executor.prepare(&plan);
        Ok(Self {
            document,
            operation,
            plan,
            exec,
            has_introspection,
            cost: crate::limits::Cost {
                value: 0,
                uses_variables: false,
            },
            response_size: std::sync::atomic::AtomicUsize::new(0),
            metrics: std::sync::OnceLock::new(),
            schema: Arc::clone(executor.schema()),
        })
    }

    /// The same operation with its estimated cost recorded.
    pub(crate) fn with_cost(mut self, cost: crate::limits::Cost) -> Self {
        self.cost = cost;
        self
    }

    /// The query plan this operation runs.
    pub fn plan(&self) -> &QueryPlan {
        &self.plan
    }

    /// The validated client document.
    pub fn document(&self) -> &Valid<ExecutableDocument> {
        &self.document
    }

    /// The operation of the document that runs.
    pub fn operation(&self) -> &Node<Operation> {
        &self.operation
    }

    /// Whether the operation is a mutation (never collapsed, never over GET).
    pub fn is_mutation(&self) -> bool {
        self.operation.operation_type == OperationType::Mutation
    }

    /// The request's variables with defaults filled in; missing or null non-null variables are
    /// errors. Values are passed on as given (subgraphs coerce them).
    pub fn coerce_variables(
        &self,
        provided: Option<Map<String, Value>>,
    ) -> Result<Map<String, Value>, GraphQLErrors> {
        if self.operation.variables.is_empty() {
            return Ok(Map::new());
        }
        let mut provided = provided.unwrap_or_default();
        self.validate_variables(&provided)?;
        let mut out = Map::with_capacity(self.operation.variables.len());
        let mut errors = Vec::new();
        for definition in &self.operation.variables {
            let name = definition.name.as_str();
            match provided.remove(name) {
                Some(Value::Null) if definition.ty.is_non_null() => errors.push(GraphQLError::new(
                    format!(
                        "Variable \"${name}\" of non-null type \"{}\" must not be null.",
                        definition.ty
                    ),
                    BAD_USER_INPUT,
                )),
                Some(value) => {
                    out.insert(name.to_owned(), value);
                }
                None => match &definition.default_value {
                    Some(default) => {
                        out.insert(name.to_owned(), ast_to_json(default));
                    }
                    None if definition.ty.is_non_null() => errors.push(GraphQLError::new(
                        format!(
                            "Variable \"${name}\" of required type \"{}\" was not provided.",
                            definition.ty
                        ),
                        BAD_USER_INPUT,
                    )),
                    None => {}
                },
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(GraphQLErrors(errors))
        }
    }
}

impl PreparedOperation {
    /// Checks variable values against their declared types (input objects, enums, lists,
    /// scalars) so a bad value is one request error instead of a subgraph failure.
    fn validate_variables(&self, provided: &Map<String, Value>) -> Result<(), GraphQLErrors> {
        use apollo_compiler::response::{JsonMap, JsonValue};
        let raw: JsonMap = provided
            .iter()
            .map(|(name, value)| (name.as_str().into(), JsonValue::from(value.clone())))
            .collect();
        apollo_compiler::request::coerce_variable_values(&self.schema, &self.operation, &raw)
            .map(|_| ())
            .map_err(|err| {
                let json = err.to_graphql_error(&self.document.sources);
                let mut error = GraphQLError::new(json.message, BAD_USER_INPUT);
                error.locations = json
                    .locations
                    .iter()
                    .map(|l| Location {
                        line: l.line,
                        column: l.column,
                    })
                    .collect();
                GraphQLErrors::single(error)
            })
    }
}

fn select_operation(
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

/// Converts a constant GraphQL value (a variable default) to JSON.
pub(crate) fn ast_to_json(value: &AstValue) -> Value {
    match value {
        AstValue::Null | AstValue::Variable(_) => Value::Null,
        AstValue::Enum(name) => Value::String(name.to_string()),
        AstValue::String(s) => Value::String(s.clone()),
        AstValue::Boolean(b) => Value::Bool(*b),
        AstValue::Int(i) => i
            .as_str()
            .parse::<i64>()
            .map(Value::from)
            .or_else(|_| i.try_to_f64().map(float))
            .unwrap_or(Value::Null),
        AstValue::Float(f) => f.try_to_f64().map(float).unwrap_or(Value::Null),
        AstValue::List(items) => Value::Array(items.iter().map(|v| ast_to_json(v)).collect()),
        AstValue::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| (k.to_string(), ast_to_json(v)))
                .collect(),
        ),
    }
}

fn float(f: f64) -> Value {
    Number::from_f64(f)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

/// Parses and validates a client document against the API schema; parse errors carry
/// `GRAPHQL_PARSE_FAILED`, validation errors `GRAPHQL_VALIDATION_FAILED`, both with locations.
pub fn parse_and_validate(
    schema: &Valid<Schema>,
    query: &str,
) -> Result<Valid<ExecutableDocument>, GraphQLErrors> {
    validate(schema, parse(query)?)
}

/// Parses a client document (no validation yet).
pub(crate) fn parse(query: &str) -> Result<ast::Document, GraphQLErrors> {
    ast::Document::parse(query, "operation.graphql")
        .map_err(|with| diagnostics(&with.errors, GRAPHQL_PARSE_FAILED))
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

fn diagnostics(list: &DiagnosticList, code: &str) -> GraphQLErrors {
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

/// Checks the number of root fields (fragments entered, duplicates merged) of `operation`.
pub(crate) fn check_root_fields(
    document: &ExecutableDocument,
    operation: &Operation,
    max_root_fields: usize,
) -> Result<(), GraphQLErrors> {
    let roots = root_fields(document, &operation.selection_set);
    if roots.len() > max_root_fields {
        return Err(GraphQLErrors::single(
            GraphQLError::new(
                format!(
                    "Operation selects {} root fields; the limit is {max_root_fields}.",
                    roots.len(),
                ),
                MAX_ROOT_FIELDS_EXCEEDED,
            )
            .with_extension("rootFields", roots.len())
            .with_extension("maxRootFields", max_root_fields),
        ));
    }
    Ok(())
}

/// Response keys of the root selection, fragments entered, duplicates merged.
fn root_fields<'d>(document: &'d ExecutableDocument, set: &'d SelectionSet) -> Vec<&'d str> {
    let mut names = Vec::new();
    let mut seen_fragments = HashSet::new();
    collect_root(document, set, &mut names, &mut seen_fragments);
    names
}

fn collect_root<'d>(
    document: &'d ExecutableDocument,
    set: &'d SelectionSet,
    names: &mut Vec<&'d str>,
    seen_fragments: &mut HashSet<&'d str>,
) {
    for selection in &set.selections {
        match selection {
            Selection::Field(field) => {
                let key = field.response_key().as_str();
                if !names.contains(&key) {
                    names.push(key);
                }
            }
            Selection::InlineFragment(inline) => {
                collect_root(document, &inline.selection_set, names, seen_fragments)
            }
            Selection::FragmentSpread(spread) => {
                if seen_fragments.insert(spread.fragment_name.as_str()) {
                    if let Some(fragment) = document.fragments.get(&spread.fragment_name) {
                        collect_root(document, &fragment.selection_set, names, seen_fragments);
                    }
                }
            }
        }
    }
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
