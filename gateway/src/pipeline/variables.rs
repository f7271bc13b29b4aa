//! Step 6: the request's variable values checked against their declared types, defaults filled
//! in, and the cost re-estimated when a list size comes from a variable. Per request.

use apollo_compiler::ast::Value as AstValue;
use serde_json::{Map, Number, Value};

use super::prepared::PreparedOperation;
use crate::error::{GraphQLError, GraphQLErrors, Location, BAD_USER_INPUT};
use crate::Gateway;

impl PreparedOperation {
    /// The request's variables with defaults filled in; missing or null non-null variables are
    /// errors. Values are passed on as given (subgraphs coerce them).
    pub fn coerce_variables(
        &self,
        provided: Option<Map<String, Value>>,
    ) -> Result<Map<String, Value>, GraphQLErrors> {
        if self.operation().variables.is_empty() {
            return Ok(Map::new());
        }
        let mut provided = provided.unwrap_or_default();
        self.validate_variables(&provided)?;
        let mut out = Map::with_capacity(self.operation().variables.len());
        let mut errors = Vec::new();
        for definition in &self.operation().variables {
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
        // A nullable variable with a default may feed `@skip(if:)` / `@include(if:)`, but an
        // explicit `null` cannot decide the condition: refused here, with the variable named,
        // rather than passed to a subgraph that fails the whole fetch over it.
        for var in self.condition_variables.iter() {
            if matches!(out.get(var.as_str()), Some(Value::Null)) {
                errors.push(GraphQLError::new(
                    format!(
                        "Variable \"${var}\" is null, but it decides an @skip or @include \
                         condition, whose \"if\" must be a Boolean."
                    ),
                    BAD_USER_INPUT,
                ));
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(GraphQLErrors(errors))
        }
    }
    /// Checks variable values against their declared types (input objects, enums, lists,
    /// scalars) so a bad value is one request error instead of a subgraph failure.
    fn validate_variables(&self, provided: &Map<String, Value>) -> Result<(), GraphQLErrors> {
        use apollo_compiler::response::{JsonMap, JsonValue};
        let raw: JsonMap = provided
            .iter()
            .map(|(name, value)| (name.as_str().into(), JsonValue::from(value.clone())))
            .collect();
        apollo_compiler::request::coerce_variable_values(&self.schema, self.operation(), &raw)
            .map(|_| ())
            .map_err(|err| {
                let json = err.to_graphql_error(&self.document().sources);
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

impl Gateway {
    /// For an operation whose list sizes come from variables: its cost with these values.
    /// Everything else was estimated once, when it was planned.
    pub(crate) fn check_variable_cost(
        &self,
        prepared: &PreparedOperation,
        variables: &Map<String, Value>,
    ) -> Result<(), GraphQLErrors> {
        if !prepared.cost.uses_variables {
            return Ok(());
        }
        let cost =
            self.inner
                .cost_model
                .cost(prepared.document(), prepared.operation(), Some(variables));
        self.inner.limits.check_cost(cost.value)
    }
}
