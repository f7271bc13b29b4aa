//! Schema introspection (`__schema`, `__type`) answered in-process from the API schema.
//!
//! Subgraphs never see introspection: their schemas are not the API schema. The executor asks
//! [`root_fields`] whether an operation selects introspection, runs [`SchemaIntrospection::execute`]
//! for those root fields, and merges the returned data object with the subgraph results.

use apollo_compiler::collections::HashMap;
use apollo_compiler::executable::{Field, Operation, Selection, SelectionSet};
use apollo_compiler::request::{coerce_variable_values, RequestError};
use apollo_compiler::response::{GraphQLError, JsonMap, JsonValue};
use apollo_compiler::schema::Implementers;
use apollo_compiler::validation::Valid;
use apollo_compiler::{ExecutableDocument, Name, Node, Schema};
use serde_json::{Map, Value};

/// Introspection settings; the executor fills them from the gateway config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntrospectionOptions {
    /// When false, `__schema` and `__type` are rejected with `INTROSPECTION_DISABLED`
    /// (root `__typename` keeps working: clients rely on it).
    pub enabled: bool,
    /// Deepest allowed chain of nested `ofType` selections. GraphiQL's query nests 9; wrapping
    /// types never need more than a handful, so anything far deeper is a resource attack.
    pub max_of_type_depth: usize,
    /// Deepest allowed nesting of the list fields `fields`, `inputFields`, `interfaces` and
    /// `possibleTypes`. Each level multiplies the response by the schema size, so this is the
    /// limit that matters; IDE queries use 1.
    pub max_list_depth: usize,
}

impl Default for IntrospectionOptions {
    fn default() -> Self {
        Self {
            enabled: true,
            max_of_type_depth: 16,
            max_list_depth: 2,
        }
    }
}

/// Which kinds of root fields an operation selects (fragments included, `@skip`/`@include`
/// ignored, so this errs on the side of "selected").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RootFields {
    /// `__schema` or `__type`: answered by [`SchemaIntrospection::execute`].
    pub schema_introspection: bool,
    /// `__typename` on the root type: answered by [`SchemaIntrospection::execute`] as well.
    pub root_typename: bool,
    /// Any field defined by the schema: needs the query plan.
    pub concrete: bool,
}

/// Classifies the root fields of `operation`.
pub fn root_fields(document: &ExecutableDocument, operation: &Operation) -> RootFields {
    let mut kinds = RootFields::default();
    for field in operation.root_fields(document) {
        match field.name.as_str() {
            "__schema" | "__type" => kinds.schema_introspection = true,
            "__typename" => kinds.root_typename = true,
            _ => kinds.concrete = true,
        }
    }
    kinds
}

/// Whether `operation` selects `__schema` or `__type` at its root.
pub fn selects_introspection(document: &ExecutableDocument, operation: &Operation) -> bool {
    root_fields(document, operation).schema_introspection
}

/// Why an introspection request was refused; each maps to a GraphQL request error.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IntrospectionError {
    /// Introspection is switched off in the gateway config.
    #[error("GraphQL introspection is disabled on this gateway")]
    Disabled,
    /// The selection nests `ofType` (or introspection lists) deeper than allowed.
    #[error("{message}")]
    TooDeep {
        /// Human-readable reason, naming the depth and the limit.
        message: String,
        /// `(line, column)` of the offending selection, 1-based, when known.
        locations: Vec<(usize, usize)>,
    },
    /// Variable values do not fit the operation (e.g. `__type(name: $n)` with `$n` missing).
    #[error("{message}")]
    InvalidRequest {
        /// Coercion error from apollo-compiler.
        message: String,
        /// `(line, column)` of the offending input, 1-based, when known.
        locations: Vec<(usize, usize)>,
    },
}

impl IntrospectionError {
    /// Value for the error's `extensions.code`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Disabled => "INTROSPECTION_DISABLED",
            Self::TooDeep { .. } => "MAX_INTROSPECTION_DEPTH_EXCEEDED",
            Self::InvalidRequest { .. } => "BAD_USER_INPUT",
        }
    }

    /// The error as a GraphQL response error object (`message`, `locations`, `extensions.code`).
    pub fn to_graphql_error(&self) -> Value {
        let mut error = Map::new();
        error.insert("message".into(), Value::String(self.to_string()));
        let locations = match self {
            Self::Disabled => &[][..],
            Self::TooDeep { locations, .. } | Self::InvalidRequest { locations, .. } => locations,
        };
        if !locations.is_empty() {
            let locations = locations
                .iter()
                .map(|(line, column)| serde_json::json!({ "line": line, "column": column }))
                .collect();
            error.insert("locations".into(), Value::Array(locations));
        }
        error.insert(
            "extensions".into(),
            serde_json::json!({ "code": self.code() }),
        );
        Value::Object(error)
    }
}

/// The introspection part of a response.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IntrospectionResponse {
    /// Response keys (aliases honoured) of the root `__schema`, `__type` and `__typename`
    /// selections, in selection order; concrete root fields are absent.
    pub data: Map<String, Value>,
    /// Field errors raised while resolving introspection (rare: the schema is valid).
    pub errors: Vec<Value>,
}

/// Answers introspection for one API schema; build once per schema, share across requests.
#[derive(Debug, Clone)]
pub struct SchemaIntrospection {
    schema: Valid<Schema>,
    implementers: HashMap<Name, Implementers>,
    options: IntrospectionOptions,
}

impl SchemaIntrospection {
    /// Prepares introspection of `api_schema` (computes the interface implementers map once).
    pub fn new(api_schema: &Valid<Schema>, options: IntrospectionOptions) -> Self {
        Self {
            implementers: api_schema.implementers_map(),
            schema: api_schema.clone(),
            options,
        }
    }

    /// The settings this instance enforces.
    pub fn options(&self) -> &IntrospectionOptions {
        &self.options
    }

    /// Rejects disabled or too-deep introspection without executing anything; `execute` calls
    /// it too, so the executor only needs it to fail fast before planning.
    pub fn check(
        &self,
        document: &Valid<ExecutableDocument>,
        operation: &Operation,
    ) -> Result<(), IntrospectionError> {
        if !selects_introspection(document, operation) {
            return Ok(());
        }
        if !self.options.enabled {
            return Err(IntrospectionError::Disabled);
        }
        let mut walk = DepthWalk {
            document,
            visited_root_fragments: std::collections::HashSet::new(),
            fragment_depths: std::collections::HashMap::new(),
        };
        let too_deep = |what: &str, depth: usize, limit: usize, field: &Node<Field>| {
            let locations = field
                .location()
                .and_then(|span| span.line_column_range(&document.sources))
                .map(|range| vec![(range.start.line, range.start.column)])
                .unwrap_or_default();
            IntrospectionError::TooDeep {
                message: format!(
                    "Maximum introspection depth exceeded: {what} nested {depth} levels deep, \
                     the limit is {limit}"
                ),
                locations,
            }
        };
        for (field, depth) in walk.root_fields(&operation.selection_set) {
            if depth.lists > self.options.max_list_depth {
                return Err(too_deep(
                    "`fields`/`inputFields`/`interfaces`/`possibleTypes`",
                    depth.lists,
                    self.options.max_list_depth,
                    field,
                ));
            }
            if depth.of_type > self.options.max_of_type_depth {
                return Err(too_deep(
                    "`ofType`",
                    depth.of_type,
                    self.options.max_of_type_depth,
                    field,
                ));
            }
        }
        Ok(())
    }

    /// Executes the root `__schema`, `__type` and `__typename` selections of `operation`
    /// (aliases, fragments and `@skip`/`@include` honoured) and returns their data.
    ///
    /// `document` must have been validated against the same API schema. `variables` are the
    /// request's raw variable values.
    pub fn execute(
        &self,
        document: &Valid<ExecutableDocument>,
        operation: &Operation,
        variables: &Map<String, Value>,
    ) -> Result<IntrospectionResponse, IntrospectionError> {
        self.check(document, operation)?;
        let raw: JsonMap = variables
            .iter()
            .map(|(name, value)| (name.as_str().into(), JsonValue::from(value.clone())))
            .collect();
        let variables = coerce_variable_values(&self.schema, operation, &raw)
            .map_err(|err| invalid_request(document, &err))?;
        let response = apollo_compiler::introspection::partial_execute(
            &self.schema,
            &self.implementers,
            document,
            operation,
            &variables,
        )
        .map_err(|err| invalid_request(document, &err))?;
        let data = response
            .data
            .map(|data| {
                data.into_iter()
                    .map(|(key, value)| (key.as_str().to_owned(), into_serde_json(value)))
                    .collect()
            })
            .unwrap_or_default();
        let errors = response.errors.iter().map(graphql_error_to_json).collect();
        Ok(IntrospectionResponse { data, errors })
    }
}

/// Nesting depths below an introspection root field.
#[derive(Debug, Clone, Copy, Default)]
struct Depth {
    /// Nested `fields`/`inputFields`/`interfaces`/`possibleTypes` selections.
    lists: usize,
    /// Nested `ofType` selections.
    of_type: usize,
}

impl Depth {
    fn max(self, other: Depth) -> Depth {
        Depth {
            lists: self.lists.max(other.lists),
            of_type: self.of_type.max(other.of_type),
        }
    }
}

/// Measures introspection nesting. Only the subtrees of root `__schema`/`__type` fields count, so
/// a schema's own field that happens to be called `fields` or `ofType` is never limited.
/// Fragment results are memoized: the depth below a fragment does not depend on where it is
/// spread, and a chain of doubly-spread fragments would otherwise make the walk exponential.
struct DepthWalk<'doc> {
    document: &'doc ExecutableDocument,
    visited_root_fragments: std::collections::HashSet<&'doc str>,
    fragment_depths: std::collections::HashMap<&'doc str, Depth>,
}

impl<'doc> DepthWalk<'doc> {
    /// Each root introspection field (through root-level fragments) with its depth.
    fn root_fields(
        &mut self,
        selection_set: &'doc SelectionSet,
    ) -> Vec<(&'doc Node<Field>, Depth)> {
        let mut found = Vec::new();
        for selection in &selection_set.selections {
            match selection {
                Selection::Field(field) => {
                    if matches!(field.name.as_str(), "__schema" | "__type") {
                        found.push((field, self.below(&field.selection_set)));
                    }
                }
                Selection::InlineFragment(inline) => {
                    found.extend(self.root_fields(&inline.selection_set));
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.fragment_name.as_str();
                    if self.visited_root_fragments.insert(name) {
                        if let Some(fragment) = self.document.fragments.get(name) {
                            found.extend(self.root_fields(&fragment.selection_set));
                        }
                    }
                }
            }
        }
        found
    }

    fn below(&mut self, selection_set: &'doc SelectionSet) -> Depth {
        let mut deepest = Depth::default();
        for selection in &selection_set.selections {
            let depth = match selection {
                Selection::Field(field) => {
                    let mut depth = self.below(&field.selection_set);
                    match field.name.as_str() {
                        "fields" | "inputFields" | "interfaces" | "possibleTypes" => {
                            depth.lists += 1
                        }
                        "ofType" => depth.of_type += 1,
                        _ => {}
                    }
                    depth
                }
                Selection::InlineFragment(inline) => self.below(&inline.selection_set),
                Selection::FragmentSpread(spread) => {
                    let name = spread.fragment_name.as_str();
                    if let Some(depth) = self.fragment_depths.get(name) {
                        *depth
                    } else if let Some(fragment) = self.document.fragments.get(name) {
                        let depth = self.below(&fragment.selection_set);
                        self.fragment_depths.insert(name, depth);
                        depth
                    } else {
                        Depth::default()
                    }
                }
            };
            deepest = deepest.max(depth);
        }
        deepest
    }
}

fn locations_of(document: &ExecutableDocument, err: &RequestError) -> Vec<(usize, usize)> {
    err.location()
        .and_then(|span| span.line_column_range(&document.sources))
        .map(|range| vec![(range.start.line, range.start.column)])
        .unwrap_or_default()
}

fn invalid_request(document: &ExecutableDocument, err: &RequestError) -> IntrospectionError {
    IntrospectionError::InvalidRequest {
        message: err.message().to_string(),
        locations: locations_of(document, err),
    }
}

fn graphql_error_to_json(error: &GraphQLError) -> Value {
    // GraphQLError serializes in the response shape; it cannot fail (string keys only).
    serde_json::to_value(error).unwrap_or_else(|_| serde_json::json!({ "message": error.message }))
}

/// Moves a `serde_json_bytes` value into `serde_json` without a serialize/parse round trip.
fn into_serde_json(value: JsonValue) -> Value {
    match value {
        JsonValue::Null => Value::Null,
        JsonValue::Bool(b) => Value::Bool(b),
        JsonValue::Number(n) => Value::Number(n),
        JsonValue::String(s) => Value::String(s.as_str().to_owned()),
        JsonValue::Array(items) => Value::Array(items.into_iter().map(into_serde_json).collect()),
        JsonValue::Object(map) => Value::Object(
            map.into_iter()
                .map(|(key, value)| (key.as_str().to_owned(), into_serde_json(value)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apollo_compiler::schema::ExtendedType;
    use serde_json::json;
    use std::fmt::Write as _;

    /// What GraphiQL 3 sends (graphql-js 16 `getIntrospectionQuery` with every option on).
    const GRAPHIQL_INTROSPECTION_QUERY: &str = r#"
query IntrospectionQuery {
  __schema {
    description
    queryType { name kind }
    mutationType { name kind }
    subscriptionType { name kind }
    types {
      ...FullType
    }
    directives {
      name
      description
      isRepeatable
      locations
      args(includeDeprecated: true) {
        ...InputValue
      }
    }
  }
}
fragment FullType on __Type {
  kind
  name
  description
  specifiedByURL
  fields(includeDeprecated: true) {
    name
    description
    args(includeDeprecated: true) {
      ...InputValue
    }
    type {
      ...TypeRef
    }
    isDeprecated
    deprecationReason
  }
  inputFields(includeDeprecated: true) {
    ...InputValue
  }
  interfaces {
    ...TypeRef
  }
  enumValues(includeDeprecated: true) {
    name
    description
    isDeprecated
    deprecationReason
  }
  possibleTypes {
    ...TypeRef
  }
}
fragment InputValue on __InputValue {
  name
  description
  type { ...TypeRef }
  defaultValue
  isDeprecated
  deprecationReason
}
fragment TypeRef on __Type {
  kind
  name
  ofType {
    name
    kind
    ofType {
      name
      kind
      ofType {
        name
        kind
        ofType {
          name
          kind
          ofType {
            name
            kind
            ofType {
              name
              kind
              ofType {
                name
                kind
                ofType {
                  name
                  kind
                  ofType {
                    name
                    kind
                  }
                }
              }
            }
          }
        }
      }
    }
  }
}
"#;

    const SCHEMA: &str = r#"
"The catalogue API"
schema { query: Query mutation: Mutation }

"Lower-cases a string field"
directive @lowercase(locale: String = "en") on FIELD
directive @trace repeatable on QUERY | MUTATION

type Query {
  "The signed-in user"
  me: User
  node(id: ID!): Node
  search(text: String!, first: Int = 10, filter: SearchFilter, legacyMode: Boolean @deprecated(reason: "ignored")): [SearchResult!]!
  colors: [[Color!]]!
  old: String @deprecated(reason: "use me")
  form: Form
}

"Named like introspection fields on purpose: depth limits must not apply to them"
type Form {
  fields: [Form]
  ofType: Form
}

type Mutation {
  rename(id: ID!, name: String!): User
}

interface Node {
  id: ID!
}

interface Named implements Node {
  id: ID!
  name: String
}

"A person"
type User implements Node & Named {
  id: ID!
  name: String
  joined: DateTime
  favourite: Color
}

type Bot implements Node {
  id: ID!
  owner: User!
}

union SearchResult = User | Bot

enum Color {
  RED
  "Greenish"
  GREEN
  BLUE @deprecated(reason: "too blue")
}

input SearchFilter {
  colors: [Color!] = [RED, GREEN]
  since: DateTime
  exact: Boolean! = false
  nested: SearchFilter
}

scalar DateTime @specifiedBy(url: "https://tools.ietf.org/html/rfc3339")
"#;

    fn schema() -> Valid<Schema> {
        Schema::parse_and_validate(SCHEMA, "schema.graphql").expect("test schema is valid")
    }

    fn document(schema: &Valid<Schema>, query: &str) -> Valid<ExecutableDocument> {
        ExecutableDocument::parse_and_validate(schema, query, "query.graphql")
            .unwrap_or_else(|err| panic!("invalid test query: {err}"))
    }

    fn run(
        introspection: &SchemaIntrospection,
        query: &str,
        variables: Value,
    ) -> Result<IntrospectionResponse, IntrospectionError> {
        let doc = document(&introspection.schema, query);
        let operation = doc.operations.get(None).expect("one operation");
        let Value::Object(variables) = variables else {
            panic!("variables must be an object")
        };
        introspection.execute(&doc, operation, &variables)
    }

    /// Renders an introspection type reference (`{kind, name, ofType}`) as GraphQL type syntax.
    fn type_ref(value: &Value) -> String {
        match value["kind"].as_str() {
            Some("NON_NULL") => format!("{}!", type_ref(&value["ofType"])),
            Some("LIST") => format!("[{}]", type_ref(&value["ofType"])),
            _ => value["name"].as_str().expect("named type").to_owned(),
        }
    }

    fn description(out: &mut String, value: &Value) {
        if let Some(text) = value["description"].as_str() {
            // JSON string escapes are valid GraphQL string escapes.
            writeln!(out, "{}", Value::String(text.into())).unwrap();
        }
    }

    fn deprecation(value: &Value) -> String {
        match value["deprecationReason"].as_str() {
            Some(reason) if value["isDeprecated"] == json!(true) => {
                format!(" @deprecated(reason: {})", Value::String(reason.into()))
            }
            _ => String::new(),
        }
    }

    fn input_values(values: &Value) -> String {
        values
            .as_array()
            .expect("input values")
            .iter()
            .map(|arg| {
                let mut out = String::new();
                description(&mut out, arg);
                write!(
                    out,
                    "{}: {}",
                    arg["name"].as_str().unwrap(),
                    type_ref(&arg["type"])
                )
                .unwrap();
                if let Some(default) = arg["defaultValue"].as_str() {
                    write!(out, " = {default}").unwrap();
                }
                out.push_str(&deprecation(arg));
                out
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// A client-side schema rebuilt from an introspection result, the way graphql-js's
    /// `buildClientSchema` does: if introspection is right, this equals the served schema.
    fn build_client_schema(result: &Value) -> Schema {
        let schema = &result["__schema"];
        let mut sdl = String::new();
        description(&mut sdl, schema);
        sdl.push_str("schema {\n");
        for (root, key) in [
            ("query", "queryType"),
            ("mutation", "mutationType"),
            ("subscription", "subscriptionType"),
        ] {
            if let Some(name) = schema[key]["name"].as_str() {
                writeln!(sdl, "  {root}: {name}").unwrap();
            }
        }
        sdl.push_str("}\n");
        for directive in schema["directives"].as_array().expect("directives") {
            let name = directive["name"].as_str().unwrap();
            if ["skip", "include", "deprecated", "specifiedBy"].contains(&name) {
                continue;
            }
            description(&mut sdl, directive);
            let args = input_values(&directive["args"]);
            let args = if args.is_empty() {
                args
            } else {
                format!("({args})")
            };
            let repeatable = if directive["isRepeatable"] == json!(true) {
                " repeatable"
            } else {
                ""
            };
            let locations: Vec<&str> = directive["locations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l.as_str().unwrap())
                .collect();
            writeln!(
                sdl,
                "directive @{name}{args}{repeatable} on {}",
                locations.join(" | ")
            )
            .unwrap();
        }
        for ty in schema["types"].as_array().expect("types") {
            let name = ty["name"].as_str().unwrap();
            if name.starts_with("__") || ["String", "Int", "Float", "Boolean", "ID"].contains(&name)
            {
                continue;
            }
            description(&mut sdl, ty);
            let interfaces = match ty["interfaces"].as_array() {
                Some(list) if !list.is_empty() => format!(
                    " implements {}",
                    list.iter().map(type_ref).collect::<Vec<_>>().join(" & ")
                ),
                _ => String::new(),
            };
            let fields = |sdl: &mut String| {
                for field in ty["fields"].as_array().unwrap() {
                    description(sdl, field);
                    let args = input_values(&field["args"]);
                    let args = if args.is_empty() {
                        args
                    } else {
                        format!("({args})")
                    };
                    writeln!(
                        sdl,
                        "  {}{args}: {}{}",
                        field["name"].as_str().unwrap(),
                        type_ref(&field["type"]),
                        deprecation(field)
                    )
                    .unwrap();
                }
            };
            match ty["kind"].as_str().unwrap() {
                "SCALAR" => {
                    let specified_by = ty["specifiedByURL"]
                        .as_str()
                        .map(|url| format!(" @specifiedBy(url: {})", Value::String(url.into())))
                        .unwrap_or_default();
                    writeln!(sdl, "scalar {name}{specified_by}").unwrap();
                }
                "OBJECT" | "INTERFACE" => {
                    let keyword = if ty["kind"] == "OBJECT" {
                        "type"
                    } else {
                        "interface"
                    };
                    writeln!(sdl, "{keyword} {name}{interfaces} {{").unwrap();
                    fields(&mut sdl);
                    sdl.push_str("}\n");
                }
                "UNION" => {
                    let members: Vec<String> = ty["possibleTypes"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(type_ref)
                        .collect();
                    writeln!(sdl, "union {name} = {}", members.join(" | ")).unwrap();
                }
                "ENUM" => {
                    writeln!(sdl, "enum {name} {{").unwrap();
                    for value in ty["enumValues"].as_array().unwrap() {
                        description(&mut sdl, value);
                        writeln!(
                            sdl,
                            "  {}{}",
                            value["name"].as_str().unwrap(),
                            deprecation(value)
                        )
                        .unwrap();
                    }
                    sdl.push_str("}\n");
                }
                "INPUT_OBJECT" => {
                    writeln!(sdl, "input {name} {{").unwrap();
                    let fields = input_values(&ty["inputFields"]);
                    for field in fields.split(", ") {
                        writeln!(sdl, "  {field}").unwrap();
                    }
                    sdl.push_str("}\n");
                }
                other => panic!("unexpected kind {other}"),
            }
        }
        Schema::parse_and_validate(&sdl, "client.graphql")
            .unwrap_or_else(|err| panic!("client schema invalid: {err}\n{sdl}"))
            .into_inner()
    }

    fn type_sdl(ty: &ExtendedType) -> String {
        match ty {
            ExtendedType::Scalar(t) => t.serialize().to_string(),
            ExtendedType::Object(t) => t.serialize().to_string(),
            ExtendedType::Interface(t) => t.serialize().to_string(),
            ExtendedType::Union(t) => t.serialize().to_string(),
            ExtendedType::Enum(t) => t.serialize().to_string(),
            ExtendedType::InputObject(t) => t.serialize().to_string(),
        }
    }

    /// Every user-defined type and directive, printed: equal maps mean equal schemas.
    fn definitions(schema: &Schema) -> Vec<(String, String)> {
        let types = schema
            .types
            .iter()
            .filter(|(_, ty)| !ty.is_built_in())
            .map(|(name, ty)| (name.to_string(), type_sdl(ty)));
        let directives = schema
            .directive_definitions
            .iter()
            .map(|(name, def)| (format!("@{name}"), def.serialize().to_string()));
        let mut all: Vec<_> = types.chain(directives).collect();
        all.sort();
        all
    }

    #[test]
    fn graphiql_introspection_round_trips_to_the_same_schema() {
        let introspection = SchemaIntrospection::new(&schema(), IntrospectionOptions::default());
        let response = run(&introspection, GRAPHIQL_INTROSPECTION_QUERY, json!({}))
            .expect("introspection runs");
        assert!(response.errors.is_empty(), "{:?}", response.errors);
        let data = Value::Object(response.data);
        let client = build_client_schema(&data);
        let served = schema();
        let names = |schema: &Schema| -> Vec<String> {
            schema
                .types
                .iter()
                .filter(|(_, ty)| !ty.is_built_in())
                .map(|(name, _)| name.to_string())
                .collect()
        };
        assert_eq!(names(&client), names(&served));
        assert_eq!(definitions(&client), definitions(&served));
        assert_eq!(data["__schema"]["description"], json!("The catalogue API"));
        assert_eq!(data["__schema"]["mutationType"]["name"], json!("Mutation"));
        assert_eq!(data["__schema"]["subscriptionType"], Value::Null);
    }

    #[test]
    fn type_lookup_honours_aliases_and_missing_types() {
        let introspection = SchemaIntrospection::new(&schema(), IntrospectionOptions::default());
        let response = run(
            &introspection,
            r#"{
              user: __type(name: "User") { name kind interfaces { name } fields { name } }
              missing: __type(name: "Nope") { name }
              __type(name: "Color") { enumValues(includeDeprecated: false) { name } }
            }"#,
            json!({}),
        )
        .expect("runs");
        assert_eq!(
            Value::Object(response.data),
            json!({
                "user": {
                    "name": "User",
                    "kind": "OBJECT",
                    "interfaces": [{ "name": "Node" }, { "name": "Named" }],
                    "fields": [
                        { "name": "id" }, { "name": "name" }, { "name": "joined" }, { "name": "favourite" }
                    ]
                },
                "missing": null,
                "__type": { "enumValues": [{ "name": "RED" }, { "name": "GREEN" }] }
            })
        );
    }

    #[test]
    fn fragments_directives_and_variables_are_applied() {
        let introspection = SchemaIntrospection::new(&schema(), IntrospectionOptions::default());
        let query = r#"
            query Q($name: String!, $skipSchema: Boolean!) {
              ...Root
              me { id }
              kind: __typename
              __schema @skip(if: $skipSchema) { queryType { name } }
              ... on Query @include(if: true) { t: __type(name: $name) { name } }
            }
            fragment Root on Query { first: __type(name: "SearchResult") { possibleTypes { name } } }
        "#;
        let response = run(
            &introspection,
            query,
            json!({ "name": "DateTime", "skipSchema": true }),
        )
        .expect("runs");
        // Concrete fields (`me`) are left to the query plan; keys keep selection order.
        let data = Value::Object(response.data);
        assert_eq!(
            data,
            json!({
                "first": { "possibleTypes": [{ "name": "User" }, { "name": "Bot" }] },
                "kind": "Query",
                "t": { "name": "DateTime" }
            })
        );
        let keys: Vec<&String> = data.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["first", "kind", "t"]);

        let response = run(
            &introspection,
            query,
            json!({ "name": "DateTime", "skipSchema": false }),
        )
        .expect("runs");
        assert_eq!(
            response.data["__schema"],
            json!({ "queryType": { "name": "Query" } })
        );
    }

    #[test]
    fn missing_variable_is_a_bad_user_input_error() {
        let introspection = SchemaIntrospection::new(&schema(), IntrospectionOptions::default());
        let err = run(
            &introspection,
            "query($name: String!) { __type(name: $name) { name } }",
            json!({}),
        )
        .expect_err("missing $name");
        assert_eq!(err.code(), "BAD_USER_INPUT");
        let json = err.to_graphql_error();
        assert_eq!(json["extensions"]["code"], json!("BAD_USER_INPUT"));
        assert_eq!(json["locations"][0]["line"], json!(1));
    }

    #[test]
    fn disabled_introspection_is_rejected_but_typename_still_works() {
        let options = IntrospectionOptions {
            enabled: false,
            ..IntrospectionOptions::default()
        };
        let introspection = SchemaIntrospection::new(&schema(), options);
        let err = run(&introspection, "{ __schema { types { name } } }", json!({}))
            .expect_err("disabled");
        assert_eq!(err, IntrospectionError::Disabled);
        assert_eq!(
            err.to_graphql_error(),
            json!({
                "message": "GraphQL introspection is disabled on this gateway",
                "extensions": { "code": "INTROSPECTION_DISABLED" }
            })
        );
        let err = run(
            &introspection,
            "{ a: __type(name: \"User\") { name } }",
            json!({}),
        )
        .expect_err("disabled");
        assert_eq!(err.code(), "INTROSPECTION_DISABLED");
        let response = run(&introspection, "{ __typename me { id } }", json!({})).expect("runs");
        assert_eq!(
            Value::Object(response.data),
            json!({ "__typename": "Query" })
        );
    }

    #[test]
    fn deep_of_type_nesting_is_rejected() {
        let introspection = SchemaIntrospection::new(&schema(), IntrospectionOptions::default());
        let nested = |levels: usize| {
            let mut selection = "name".to_owned();
            for _ in 0..levels {
                selection = format!("name ofType {{ {selection} }}");
            }
            format!("{{ __type(name: \"Query\") {{ {selection} }} }}")
        };
        run(&introspection, &nested(16), json!({})).expect("16 levels is the limit");
        let err = run(&introspection, &nested(17), json!({})).expect_err("too deep");
        assert_eq!(err.code(), "MAX_INTROSPECTION_DEPTH_EXCEEDED");
        assert!(
            err.to_string()
                .contains("nested 17 levels deep, the limit is 16"),
            "{err}"
        );

        // Depth through fragments counts too, and is computed once per fragment.
        let query = r#"
            { __type(name: "Query") { ...A } }
            fragment A on __Type { ofType { ...B } ofType { ...B } }
            fragment B on __Type { ofType { ...C } ofType { ...C } }
            fragment C on __Type { ofType { ofType { name } } }
        "#;
        let strict = SchemaIntrospection::new(
            &schema(),
            IntrospectionOptions {
                max_of_type_depth: 3,
                ..IntrospectionOptions::default()
            },
        );
        let err = run(&strict, query, json!({})).expect_err("4 > 3");
        assert!(err.to_string().contains("nested 4 levels"), "{err}");
    }

    #[test]
    fn deep_list_nesting_is_rejected_with_a_location() {
        let introspection = SchemaIntrospection::new(&schema(), IntrospectionOptions::default());
        let two = "{ __schema { types { fields { type { interfaces { name } } } } } }";
        run(&introspection, two, json!({})).expect("two list levels are allowed");
        let query =
            "{\n  __schema { types { fields { type { fields { type { fields { name } } } } } } } }";
        let err = run(&introspection, query, json!({})).expect_err("too deep");
        assert_eq!(err.code(), "MAX_INTROSPECTION_DEPTH_EXCEEDED");
        let json = err.to_graphql_error();
        assert_eq!(json["locations"], json!([{ "line": 2, "column": 3 }]));
        assert!(
            json["message"]
                .as_str()
                .unwrap()
                .contains("nested 3 levels deep, the limit is 2"),
            "{json}"
        );
    }

    #[test]
    fn schema_fields_named_like_introspection_are_not_limited() {
        let introspection = SchemaIntrospection::new(&schema(), IntrospectionOptions::default());
        let mut deep = "ofType { fields { __typename } }".to_owned();
        for _ in 0..20 {
            deep = format!("fields {{ ofType {{ {deep} }} }}");
        }
        let query = format!("{{ form {{ {deep} }} __type(name: \"Form\") {{ name }} }}");
        let response = run(&introspection, &query, json!({})).expect("not introspection depth");
        assert_eq!(
            Value::Object(response.data),
            json!({ "__type": { "name": "Form" } })
        );
    }

    #[test]
    fn root_fields_are_classified() {
        let schema = schema();
        let classify = |query: &str| {
            let doc = document(&schema, query);
            let operation = doc.operations.get(None).unwrap();
            root_fields(&doc, operation)
        };
        assert_eq!(
            classify("{ me { id } }"),
            RootFields {
                concrete: true,
                ..RootFields::default()
            }
        );
        assert_eq!(
            classify("{ ...F } fragment F on Query { s: __schema { description } __typename }"),
            RootFields {
                schema_introspection: true,
                root_typename: true,
                concrete: false
            }
        );
        let doc = document(&schema, "mutation { rename(id: 1, name: \"x\") { id } }");
        assert!(!selects_introspection(
            &doc,
            doc.operations.get(None).unwrap()
        ));
        let doc = document(&schema, "{ __type(name: \"User\") { name } }");
        assert!(selects_introspection(
            &doc,
            doc.operations.get(None).unwrap()
        ));
    }

    #[test]
    fn mutation_root_typename_is_answered() {
        let introspection = SchemaIntrospection::new(&schema(), IntrospectionOptions::default());
        let response = run(
            &introspection,
            "mutation { __typename rename(id: 1, name: \"x\") { id } }",
            json!({}),
        )
        .expect("runs");
        assert_eq!(
            Value::Object(response.data),
            json!({ "__typename": "Mutation" })
        );
    }

    #[test]
    fn api_schema_of_a_supergraph_hides_federation_machinery() {
        let supergraph = r#"
schema
  @link(url: "https://specs.apollo.dev/link/v1.0")
  @link(url: "https://specs.apollo.dev/join/v0.3", for: EXECUTION)
  @link(url: "https://specs.apollo.dev/inaccessible/v0.2", for: SECURITY)
{ query: Query }
directive @inaccessible on FIELD_DEFINITION | OBJECT | INTERFACE | UNION | ARGUMENT_DEFINITION | SCALAR | ENUM | ENUM_VALUE | INPUT_OBJECT | INPUT_FIELD_DEFINITION
directive @join__field(graph: join__Graph) repeatable on FIELD_DEFINITION | INPUT_FIELD_DEFINITION
directive @join__graph(name: String!, url: String!) on ENUM_VALUE
directive @join__type(graph: join__Graph!, key: join__FieldSet) repeatable on OBJECT | INTERFACE | UNION | ENUM | INPUT_OBJECT | SCALAR
directive @link(url: String, as: String, for: link__Purpose, import: [link__Import]) repeatable on SCHEMA
scalar join__FieldSet
scalar link__Import
enum join__Graph { A @join__graph(name: "a", url: "http://a") }
enum link__Purpose { SECURITY EXECUTION }
type Query @join__type(graph: A) {
  visible: Int
  hidden: Int @inaccessible
}
"#;
        let supergraph = Schema::parse(supergraph, "supergraph.graphql").unwrap();
        let api = switchyard_planner::supergraph::api_schema::api_schema(&supergraph).unwrap();
        let introspection = SchemaIntrospection::new(&api, IntrospectionOptions::default());
        let doc = document(&api, GRAPHIQL_INTROSPECTION_QUERY);
        let response = introspection
            .execute(&doc, doc.operations.get(None).unwrap(), &Map::new())
            .unwrap();
        let client = build_client_schema(&Value::Object(response.data));
        let names: Vec<&str> = client
            .types
            .iter()
            .filter(|(_, ty)| !ty.is_built_in())
            .map(|(name, _)| name.as_str())
            .collect();
        assert_eq!(names, ["Query"]);
        assert!(client
            .directive_definitions
            .keys()
            .all(|d| !d.starts_with("join__")));
        let ExtendedType::Object(query) = &client.types["Query"] else {
            panic!("Query is an object")
        };
        assert_eq!(
            query.fields.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
            ["visible"]
        );
        let doc = document(
            &api,
            r#"{ graph: __type(name: "join__Graph") { name } query: __type(name: "Query") { fields { name } } }"#,
        );
        let response = introspection
            .execute(&doc, doc.operations.get(None).unwrap(), &Map::new())
            .unwrap();
        assert_eq!(
            Value::Object(response.data),
            json!({ "graph": null, "query": { "fields": [{ "name": "visible" }] } })
        );
    }
}
