//! A real async-graphql federation subgraph whose schema comes from a supergraph and whose data
//! comes from a JSON fixture (format: gateway/tests/federation/README.md).
//!
//! Resolvers never fail towards async-graphql: errors and nulls go through the `fixups` module.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use async_graphql::dynamic::{
    Enum, Field, FieldFuture, FieldValue, InputObject, InputValue, Interface, InterfaceField,
    Object, ResolverContext, Scalar, Schema, TypeRef, Union,
};
use async_graphql::Pos;
use axum::body::Bytes;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use crate::extract::{
    named_type, CompositeModel, FieldModel, SubgraphModel, SupergraphSource, TypeModel,
};
use crate::fieldset;
use crate::fixups::{path_of, Fixups, Path};
use crate::server::{RecordedRequest, RequestLog, SubgraphHandle};
use crate::TestkitError;

/// A subgraph built from a supergraph and a fixture, ready to execute requests or to serve them.
#[derive(Clone)]
pub struct FixtureSubgraph {
    name: String,
    schema: Schema,
    /// The same schema for apollo-compiler: requests are validated against it first, because
    /// async-graphql accepts some operations the spec (and graphql-js subgraphs) reject, e.g.
    /// same-named fields of different nullability in sibling fragments.
    strict: Arc<apollo_compiler::validation::Valid<apollo_compiler::Schema>>,
    data: Arc<DataSource>,
}

impl std::fmt::Debug for FixtureSubgraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FixtureSubgraph")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl FixtureSubgraph {
    /// Builds subgraph `name` (its `join__graph(name:)`) of `supergraph_sdl`, serving `fixture`.
    pub fn new(supergraph_sdl: &str, name: &str, fixture: Value) -> Result<Self, TestkitError> {
        let source = SupergraphSource::parse(supergraph_sdl)?;
        Self::from_model(source.subgraph(name)?, fixture)
    }

    /// Builds a subgraph from an already extracted model.
    pub fn from_model(model: SubgraphModel, fixture: Value) -> Result<Self, TestkitError> {
        Self::from_model_with_counters(model, fixture, Arc::default())
    }

    /// Builds a subgraph from an already extracted model whose `{"$count": ...}` values read
    /// `counters` (shared with the other subgraphs of its supergraph).
    pub fn from_model_with_counters(
        model: SubgraphModel,
        fixture: Value,
        counters: Arc<Counters>,
    ) -> Result<Self, TestkitError> {
        if !fixture.is_object() {
            return Err(TestkitError::Fixture(format!(
                "fixture of `{}` is not a JSON object",
                model.name
            )));
        }
        check_fixture(&model, &fixture)?;
        let data = Arc::new(DataSource {
            model,
            fixture,
            counters,
        });
        let schema = build_schema(&data)?;
        let strict = Arc::new(strict_schema(&schema.sdl()));
        Ok(Self {
            name: data.model.name.clone(),
            schema,
            strict,
            data,
        })
    }

    /// The subgraph's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The extracted schema model.
    pub fn model(&self) -> &SubgraphModel {
        &self.data.model
    }

    /// The underlying async-graphql schema.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The subgraph SDL with federation directives (what `_service { sdl }` returns).
    pub fn sdl(&self) -> String {
        self.schema
            .sdl_with_options(async_graphql::SDLExportOptions::new().federation())
    }

    /// Executes one GraphQL request body (`{"query", "variables", "operationName"}`) and returns
    /// the spec-shaped JSON response.
    pub async fn execute_json(&self, body: &Value) -> Value {
        if let Some(query) = body.get("query").and_then(Value::as_str) {
            if let Err(e) = apollo_compiler::ExecutableDocument::parse_and_validate(
                &self.strict,
                query,
                "operation.graphql",
            ) {
                let errors: Vec<Value> = e
                    .errors
                    .iter()
                    .map(|d| json!({"message": d.error.to_string()}))
                    .collect();
                return json!({ "errors": errors });
            }
        }
        let mut body = body.clone();
        self.data.fill_missing_variables(&mut body);
        let request: async_graphql::Request = match serde_json::from_value(body) {
            Ok(r) => r,
            Err(e) => return json!({"errors": [{"message": format!("invalid request body: {e}")}]}),
        };
        let fixups = Arc::new(Fixups::default());
        let response = self.schema.execute(request.data(fixups.clone())).await;
        let mut out = serde_json::to_value(&response).unwrap_or_else(
            |e| json!({"errors": [{"message": format!("cannot serialize response: {e}")}]}),
        );
        fixups.apply(&mut out);
        out
    }

    /// An axum router answering GraphQL POSTs on any path, recording each request in `log`.
    pub fn router(&self, log: Arc<RequestLog>) -> axum::Router {
        let subgraph = self.clone();
        axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
            let subgraph = subgraph.clone();
            let log = log.clone();
            async move { subgraph.handle_http(&log, headers, body).await }
        })
    }

    async fn handle_http(&self, log: &RequestLog, headers: HeaderMap, body: Bytes) -> Response {
        let parsed: Result<Value, _> = serde_json::from_slice(&body);
        log.record(RecordedRequest {
            body: parsed
                .as_ref()
                .cloned()
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned())),
            headers: headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
        });
        let out = match parsed {
            Ok(Value::Array(batch)) => {
                let mut results = Vec::with_capacity(batch.len());
                for item in &batch {
                    results.push(self.execute_json(item).await);
                }
                Value::Array(results)
            }
            Ok(single) => self.execute_json(&single).await,
            Err(e) => {
                return (
                    StatusCode::BAD_REQUEST,
                    [(header::CONTENT_TYPE, "application/json")],
                    json!({"errors": [{"message": format!("invalid JSON body: {e}")}]}).to_string(),
                )
                    .into_response()
            }
        };
        (
            [(header::CONTENT_TYPE, "application/json")],
            out.to_string(),
        )
            .into_response()
    }

    /// Serves the subgraph on `listener` (spawned on the current tokio runtime).
    pub fn serve(&self, listener: tokio::net::TcpListener) -> Result<SubgraphHandle, TestkitError> {
        let addr = listener.local_addr().map_err(TestkitError::Io)?;
        let log = Arc::new(RequestLog::default());
        let router = self.router(log.clone());
        let task = tokio::spawn(async move {
            // A serve error only ends this test subgraph; the test sees failed requests.
            let _ = axum::serve(listener, router).await;
        });
        Ok(SubgraphHandle {
            name: self.name.clone(),
            addr,
            url: format!("http://{addr}/graphql"),
            log,
            task,
        })
    }
}

/// async-graphql's printed SDL as an apollo-compiler schema. Federation directives it prints
/// without definitions are not needed to validate operations, so a partial schema is fine.
fn strict_schema(sdl: &str) -> apollo_compiler::validation::Valid<apollo_compiler::Schema> {
    let schema =
        apollo_compiler::Schema::parse(sdl, "subgraph.graphql").unwrap_or_else(|e| e.partial);
    apollo_compiler::validation::Valid::assume_valid(schema)
}

/// Rejects fixture keys that can never be read, so a typo fails loudly instead of reading as null.
fn check_fixture(model: &SubgraphModel, fixture: &Value) -> Result<(), TestkitError> {
    let Some(object) = fixture.as_object() else {
        return Ok(());
    };
    for (key, value) in object {
        let is_root = *key == model.query_type || Some(key) == model.mutation_type.as_ref();
        if key == "entities" {
            let Some(entities) = value.as_object() else {
                return Err(TestkitError::Fixture(format!(
                    "`{}`: \"entities\" must be an object of lists",
                    model.name
                )));
            };
            for (type_name, entries) in entities {
                let known = matches!(
                    model.types.get(type_name),
                    Some(TypeModel::Object(_) | TypeModel::Interface(_))
                );
                if !known || !entries.is_array() {
                    return Err(TestkitError::Fixture(format!(
                        "`{}`: entities[\"{type_name}\"] must be a list and `{type_name}` an object \
                         or interface type of this subgraph",
                        model.name
                    )));
                }
            }
        } else if !is_root || !value.is_object() {
            return Err(TestkitError::Fixture(format!(
                "`{}`: unexpected top-level key \"{key}\" (expected \"{}\"{}, \"entities\")",
                model.name,
                model.query_type,
                model
                    .mutation_type
                    .as_ref()
                    .map(|m| format!(", \"{m}\""))
                    .unwrap_or_default()
            )));
        }
    }
    Ok(())
}

/// The schema model plus the fixture: everything resolvers read.
struct DataSource {
    model: SubgraphModel,
    fixture: Value,
    counters: Arc<Counters>,
}

/// The counters behind `{"$count": name}` fixture values, shared by subgraphs started together
/// so that the order in which a gateway ran mutations across them shows in the answers.
#[derive(Debug, Default)]
pub struct Counters(std::sync::Mutex<HashMap<String, i64>>);

impl Counters {
    /// Increments counter `key` and returns its new value (1 the first time).
    fn next(&self, key: String) -> i64 {
        // A panic while holding the lock cannot leave the map half-written; keep going.
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = map.entry(key).or_insert(0);
        *count += 1;
        *count
    }
}

/// A parent object being resolved: the JSON object its fields are read from.
struct Node {
    data: Map<String, Value>,
    /// For `_entities` results: what the gateway sent, which is what `@requires` is checked
    /// against (the fixture entry merged into `data` must not hide a missing required field).
    representation: Option<Map<String, Value>>,
}

impl Node {
    fn plain(data: Map<String, Value>) -> Self {
        Self {
            data,
            representation: None,
        }
    }
}

/// Stands in for a value that post-processing replaces with `null`; its fields resolve to more
/// placeholders and record nothing.
struct Placeholder;

/// Parses an SDL type string into an async-graphql type reference.
fn type_ref(ty: &str) -> TypeRef {
    let ty = ty.trim();
    if let Some(inner) = ty.strip_suffix('!') {
        TypeRef::NonNull(Box::new(type_ref(inner)))
    } else if let Some(inner) = ty.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        TypeRef::List(Box::new(type_ref(inner)))
    } else {
        TypeRef::Named(ty.to_string().into())
    }
}

/// Compact JSON of the arguments with object keys sorted at every level.
fn canonical_json(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let ordered: BTreeMap<&String, Value> =
                    map.iter().map(|(k, v)| (k, sorted(v))).collect();
                Value::Object(ordered.into_iter().map(|(k, v)| (k.clone(), v)).collect())
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}

impl DataSource {
    /// async-graphql fails on a declared variable that has no default and no value, where the spec
    /// says the argument it feeds is simply not provided (so the argument's default applies). The
    /// request is patched to give such variables the default of the argument they feed, or null.
    fn fill_missing_variables(&self, body: &mut Value) {
        use async_graphql::parser::types::DocumentOperations;
        let Some(query) = body.get("query").and_then(Value::as_str) else {
            return;
        };
        let Ok(document) = async_graphql::parser::parse_query(query) else {
            return;
        };
        let operation_name = body.get("operationName").and_then(Value::as_str);
        let operation = match (&document.operations, operation_name) {
            (DocumentOperations::Single(op), _) => op,
            (DocumentOperations::Multiple(ops), Some(name)) => match ops.get(name) {
                Some(op) => op,
                None => return,
            },
            (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
                match ops.values().next() {
                    Some(op) => op,
                    None => return,
                }
            }
            _ => return,
        };
        let given = body.get("variables").and_then(Value::as_object);
        let mut missing: HashMap<String, Option<Value>> = operation
            .node
            .variable_definitions
            .iter()
            .filter(|d| d.node.default_value.is_none())
            .map(|d| d.node.name.node.to_string())
            .filter(|name| given.is_none_or(|vars| !vars.contains_key(name)))
            .map(|name| (name, None))
            .collect();
        if missing.is_empty() {
            return;
        }
        let root = match operation.node.ty {
            async_graphql::parser::types::OperationType::Mutation => {
                self.model.mutation_type.clone().unwrap_or_default()
            }
            _ => self.model.query_type.clone(),
        };
        self.find_variable_defaults(
            &operation.node.selection_set.node,
            &root,
            &document.fragments,
            &mut missing,
            &mut HashSet::new(),
        );
        let Some(object) = body.as_object_mut() else {
            return;
        };
        let variables = object.entry("variables").or_insert_with(|| json!({}));
        if variables.is_null() {
            *variables = json!({});
        }
        if let Value::Object(vars) = variables {
            for (name, default) in missing {
                vars.insert(name, default.unwrap_or(Value::Null));
            }
        }
    }

    fn find_variable_defaults(
        &self,
        selection_set: &async_graphql::parser::types::SelectionSet,
        parent_type: &str,
        fragments: &HashMap<
            async_graphql::Name,
            async_graphql::Positioned<async_graphql::parser::types::FragmentDefinition>,
        >,
        missing: &mut HashMap<String, Option<Value>>,
        visited: &mut HashSet<String>,
    ) {
        use async_graphql::parser::types::Selection;
        for selection in &selection_set.items {
            match &selection.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    let model = self
                        .composite(parent_type)
                        .and_then(|c| c.fields.get(field.name.node.as_str()));
                    for (name, value) in &field.arguments {
                        // async-graphql does not export its non-constant value type; a variable
                        // prints as `$name` and nothing else starts with `$`.
                        let printed = value.node.to_string();
                        let Some(var) = printed.strip_prefix('$') else {
                            continue;
                        };
                        let default = model
                            .and_then(|m| m.arguments.iter().find(|a| a.name == name.node.as_str()))
                            .and_then(|a| a.default.clone())
                            .and_then(|d| d.into_json().ok());
                        if let (Some(slot @ None), Some(default)) = (missing.get_mut(var), default)
                        {
                            *slot = Some(default);
                        }
                    }
                    let child = model
                        .map(|m| named_type(&m.ty).to_string())
                        .unwrap_or_default();
                    self.find_variable_defaults(
                        &field.selection_set.node,
                        &child,
                        fragments,
                        missing,
                        visited,
                    );
                }
                Selection::InlineFragment(fragment) => {
                    let ty = fragment
                        .node
                        .type_condition
                        .as_ref()
                        .map(|t| t.node.on.node.to_string())
                        .unwrap_or_else(|| parent_type.to_string());
                    self.find_variable_defaults(
                        &fragment.node.selection_set.node,
                        &ty,
                        fragments,
                        missing,
                        visited,
                    );
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.to_string();
                    if !visited.insert(name.clone()) {
                        continue;
                    }
                    if let Some(fragment) = fragments.get(name.as_str()) {
                        let ty = fragment.node.type_condition.node.on.node.to_string();
                        self.find_variable_defaults(
                            &fragment.node.selection_set.node,
                            &ty,
                            fragments,
                            missing,
                            visited,
                        );
                    }
                }
            }
        }
    }

    fn composite(&self, type_name: &str) -> Option<&CompositeModel> {
        match self.model.types.get(type_name)? {
            TypeModel::Object(c) | TypeModel::Interface(c) => Some(c),
            _ => None,
        }
    }

    fn root_node(&self, type_name: &str) -> Node {
        Node::plain(
            self.fixture
                .get(type_name)
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
        )
    }

    /// Finds the fixture entity of `type_name` matching one of its keys in `object`. Returns the
    /// concrete type (an entity interface's entries may be of any implementing type) and the entry.
    fn find_entity(
        &self,
        type_name: &str,
        object: &Map<String, Value>,
        resolvable_only: bool,
    ) -> Option<(String, Map<String, Value>)> {
        let composite = self.composite(type_name)?;
        let keys: Vec<_> = composite
            .keys
            .iter()
            .filter(|k| k.resolvable || !resolvable_only)
            .collect();
        if keys.is_empty() {
            return None;
        }
        let is_interface = matches!(
            self.model.types.get(type_name),
            Some(TypeModel::Interface(_))
        );
        let mut candidates = vec![type_name.to_string()];
        if is_interface {
            for (name, ty) in &self.model.types {
                if let TypeModel::Object(c) = ty {
                    if c.implements.iter().any(|i| i == type_name) {
                        candidates.push(name.clone());
                    }
                }
            }
        }
        let entities = self.fixture.get("entities")?;
        for candidate in candidates {
            let Some(Value::Array(entries)) = entities.get(&candidate) else {
                continue;
            };
            for entry in entries.iter().filter_map(Value::as_object) {
                let matched =
                    keys.iter()
                        .any(|key| match fieldset::project(object, &key.selections) {
                            Some(wanted) => {
                                fieldset::project(entry, &key.selections) == Some(wanted)
                            }
                            None => false,
                        });
                if matched {
                    let concrete = match entry.get("__typename").and_then(Value::as_str) {
                        Some(t) if is_interface => t.to_string(),
                        _ => candidate.clone(),
                    };
                    return Some((concrete, entry.clone()));
                }
            }
        }
        None
    }

    fn resolve_field(
        &self,
        parent_type: &str,
        field: &FieldModel,
        ctx: &ResolverContext<'_>,
    ) -> Option<FieldValue<'static>> {
        let ty = type_ref(&field.ty);
        if ctx.parent_value.downcast_ref::<Placeholder>().is_some() {
            return Some(self.placeholder(&ty));
        }
        let Some(fixups) = ctx.ctx.data_opt::<Arc<Fixups>>() else {
            return Some(self.placeholder(&ty));
        };
        let path = path_of(ctx.ctx.path_node.as_ref());
        let pos = Some(ctx.ctx.item.pos);
        let root;
        let node = match ctx.parent_value.downcast_ref::<Node>() {
            Some(node) => node,
            None => {
                root = self.root_node(parent_type);
                &root
            }
        };
        if let (Some((_, required)), false) = (&field.requires, field.external) {
            let carried = node.representation.as_ref().unwrap_or(&node.data);
            if let Some(missing) = fieldset::first_missing(carried, required) {
                fixups.error(
                    format!("missing required field {missing}"),
                    &path,
                    pos,
                    None,
                );
                self.mark_null(fixups, &ty, &path);
                return Some(self.placeholder(&ty));
            }
        }
        let args_key = if field.arguments.is_empty() {
            None
        } else {
            let given = ctx.args.as_index_map();
            let args: Map<String, Value> = field
                .arguments
                .iter()
                .filter_map(|arg| {
                    let value = given.get(arg.name.as_str())?;
                    let json = value.clone().into_json().unwrap_or(Value::Null);
                    Some((arg.name.clone(), self.coerce_input(json, &arg.ty)))
                })
                .collect();
            Some(format!(
                "{}({})",
                field.name,
                canonical_json(&Value::Object(args))
            ))
        };
        let read = |data: &Map<String, Value>| -> Option<Value> {
            args_key
                .as_ref()
                .and_then(|k| data.get(k))
                .or_else(|| data.get(&field.name))
                .cloned()
        };
        // An external field is only known from the object itself (a provided value or the
        // representation), never from this subgraph's own entity data: a plan that reads it where
        // it is neither provided nor sent must see null, as from a real subgraph.
        let value = read(&node.data)
            .or_else(|| {
                if field.external {
                    return None;
                }
                self.find_entity(parent_type, &node.data, false)
                    .and_then(|(_, entry)| read(&entry))
            })
            .unwrap_or(Value::Null);
        // `{"$echo": "f"}` answers what the object carries under `f` (the representation the
        // gateway sent, for `_entities`): a resolver computing from its `@requires` inputs.
        let value = match value.as_object().and_then(|o| o.get("$echo")) {
            Some(Value::String(key)) => node
                .representation
                .as_ref()
                .unwrap_or(&node.data)
                .get(key)
                .cloned()
                .unwrap_or(Value::Null),
            _ => value,
        };
        // `{"$count": "c"}` answers the next value of counter `c`, one counter per value of the
        // field's `session` argument: a mutation whose answer shows the order it ran in.
        let value = match value.as_object().and_then(|o| o.get("$count")) {
            Some(Value::String(name)) => {
                let session = ctx
                    .args
                    .get("session")
                    .and_then(|v| v.string().ok().map(str::to_string))
                    .unwrap_or_default();
                json!(self.counters.next(format!("{name}/{session}")))
            }
            _ => value,
        };
        let context = ConvertContext {
            fixups,
            pos,
            field: format!("{parent_type}.{}", field.name),
        };
        self.convert(&context, &value, &ty, &path)
    }

    /// Applies input-object field defaults and list coercion, which async-graphql's dynamic
    /// arguments do not, so fixture keys see fully coerced arguments.
    fn coerce_input(&self, value: Value, ty: &str) -> Value {
        let ty = ty.trim();
        let ty = ty.strip_suffix('!').unwrap_or(ty);
        if value.is_null() {
            return value;
        }
        if let Some(inner) = ty.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            return match value {
                Value::Array(items) => Value::Array(
                    items
                        .into_iter()
                        .map(|item| self.coerce_input(item, inner))
                        .collect(),
                ),
                single => Value::Array(vec![self.coerce_input(single, inner)]),
            };
        }
        let (Some(TypeModel::InputObject(fields)), Value::Object(mut given)) =
            (self.model.types.get(ty), value.clone())
        else {
            return value;
        };
        let mut out = Map::new();
        for field in fields {
            match given.remove(&field.name) {
                Some(v) => {
                    out.insert(field.name.clone(), self.coerce_input(v, &field.ty));
                }
                None => {
                    if let Some(default) = &field.default {
                        let json = default.clone().into_json().unwrap_or(Value::Null);
                        out.insert(field.name.clone(), self.coerce_input(json, &field.ty));
                    }
                }
            }
        }
        out.extend(given);
        Value::Object(out)
    }

    /// Records that the value at `path` must end up null, erroring when the position is non-null.
    fn mark_null(&self, fixups: &Fixups, ty: &TypeRef, path: &Path) {
        if matches!(ty, TypeRef::NonNull(_)) {
            fixups.non_null(path);
        }
        fixups.null(path);
    }

    /// Turns fixture JSON into a field value of type `ty`; `None` is a plain (nullable) null.
    fn convert(
        &self,
        cx: &ConvertContext<'_>,
        value: &Value,
        ty: &TypeRef,
        path: &Path,
    ) -> Option<FieldValue<'static>> {
        if let Some(message) = value.get("$error") {
            let message = message
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| message.to_string());
            cx.fixups
                .error(message, path, cx.pos, value.get("extensions").cloned());
            self.mark_null(cx.fixups, ty, path);
            return Some(self.placeholder(ty));
        }
        match ty {
            TypeRef::NonNull(inner) => {
                cx.fixups.non_null(path);
                if value.is_null() {
                    cx.fixups.error(
                        format!("Cannot return null for non-nullable field {}.", cx.field),
                        path,
                        cx.pos,
                        None,
                    );
                    cx.fixups.null(path);
                    return Some(self.placeholder(inner));
                }
                match self.convert(cx, value, inner, path) {
                    Some(v) => Some(v),
                    None => {
                        cx.fixups.null(path);
                        Some(self.placeholder(inner))
                    }
                }
            }
            _ if value.is_null() => None,
            TypeRef::List(inner) => {
                let Value::Array(items) = value else {
                    return self.fail(
                        cx,
                        ty,
                        path,
                        format!("fixture value for {} is not a list", cx.field),
                    );
                };
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let mut item_path = path.clone();
                    item_path.push(Value::from(i));
                    match self.convert(cx, item, inner, &item_path) {
                        Some(v) => out.push(v),
                        None => {
                            cx.fixups.null(&item_path);
                            out.push(self.placeholder(inner));
                        }
                    }
                }
                Some(FieldValue::list(out))
            }
            TypeRef::Named(name) => match self.model.types.get(name.as_ref()) {
                Some(TypeModel::Object(_)) => match value {
                    Value::Object(map) => Some(FieldValue::owned_any(Node::plain(map.clone()))),
                    _ => self.fail(
                        cx,
                        ty,
                        path,
                        format!("fixture value for {} is not an object", cx.field),
                    ),
                },
                Some(TypeModel::Interface(_) | TypeModel::Union(_)) => {
                    let typename = value.get("__typename").and_then(Value::as_str);
                    match (value, typename) {
                        (Value::Object(map), Some(typename)) => Some(
                            FieldValue::owned_any(Node::plain(map.clone()))
                                .with_type(typename.to_string()),
                        ),
                        _ => self.fail(
                            cx,
                            ty,
                            path,
                            format!(
                                "fixture value for {} needs an object with \"__typename\"",
                                cx.field
                            ),
                        ),
                    }
                }
                _ => match async_graphql::Value::from_json(value.clone()) {
                    Ok(v) => Some(FieldValue::value(v)),
                    Err(e) => self.fail(cx, ty, path, e.to_string()),
                },
            },
        }
    }

    fn fail(
        &self,
        cx: &ConvertContext<'_>,
        ty: &TypeRef,
        path: &Path,
        message: String,
    ) -> Option<FieldValue<'static>> {
        cx.fixups.error(message, path, cx.pos, None);
        self.mark_null(cx.fixups, ty, path);
        Some(self.placeholder(ty))
    }

    /// A value of type `ty` that async-graphql accepts without errors; post-processing replaces it.
    fn placeholder(&self, ty: &TypeRef) -> FieldValue<'static> {
        match ty {
            TypeRef::NonNull(inner) => self.placeholder(inner),
            TypeRef::List(_) => FieldValue::list(Vec::<FieldValue<'static>>::new()),
            TypeRef::Named(name) => match self.model.types.get(name.as_ref()) {
                Some(TypeModel::Object(_)) => FieldValue::owned_any(Placeholder),
                Some(TypeModel::Interface(_)) => {
                    let implementor = self.model.types.iter().find_map(|(n, t)| match t {
                        TypeModel::Object(c) if c.implements.iter().any(|i| i == name.as_ref()) => {
                            Some(n.clone())
                        }
                        _ => None,
                    });
                    match implementor {
                        Some(t) => FieldValue::owned_any(Placeholder).with_type(t),
                        None => FieldValue::NULL,
                    }
                }
                Some(TypeModel::Union(members)) => match members.first() {
                    Some(m) => FieldValue::owned_any(Placeholder).with_type(m.clone()),
                    None => FieldValue::NULL,
                },
                Some(TypeModel::Enum(values)) => match values.first() {
                    Some(v) => {
                        FieldValue::value(async_graphql::Value::Enum(async_graphql::Name::new(v)))
                    }
                    None => FieldValue::NULL,
                },
                _ => FieldValue::NULL,
            },
        }
    }

    fn resolve_entities(&self, ctx: &ResolverContext<'_>) -> Option<FieldValue<'static>> {
        let fixups = ctx.ctx.data_opt::<Arc<Fixups>>()?;
        let path = path_of(ctx.ctx.path_node.as_ref());
        fixups.non_null(&path);
        let representations: Vec<Value> = ctx
            .args
            .get("representations")
            .and_then(|v| v.as_value().clone().into_json().ok())
            .and_then(|v| match v {
                Value::Array(items) => Some(items),
                _ => None,
            })
            .unwrap_or_default();
        let fallback = self.model.types.iter().find_map(|(n, t)| match t {
            TypeModel::Object(c) if !c.keys.is_empty() => Some(n.clone()),
            _ => None,
        });
        let mut items = Vec::with_capacity(representations.len());
        for (i, representation) in representations.iter().enumerate() {
            let mut item_path = path.clone();
            item_path.push(Value::from(i));
            let typename = representation
                .get("__typename")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let found = representation
                .as_object()
                .and_then(|rep| self.find_entity(typename, rep, true).map(|f| (rep, f)));
            match found {
                Some((rep, (concrete, entry))) => {
                    let mut merged = rep.clone();
                    merged.extend(entry);
                    merged.insert("__typename".into(), Value::String(concrete.clone()));
                    let node = Node {
                        data: merged,
                        representation: Some(rep.clone()),
                    };
                    items.push(FieldValue::owned_any(node).with_type(concrete));
                }
                None => {
                    fixups.null(&item_path);
                    let ty = if self.composite(typename).is_some_and(|c| !c.keys.is_empty()) {
                        Some(typename.to_string())
                    } else {
                        fallback.clone()
                    };
                    items.push(match ty {
                        Some(t) => FieldValue::owned_any(Placeholder).with_type(t),
                        None => FieldValue::NULL,
                    });
                }
            }
        }
        Some(FieldValue::list(items))
    }
}

struct ConvertContext<'a> {
    fixups: &'a Fixups,
    pos: Option<Pos>,
    field: String,
}

fn build_schema(data: &Arc<DataSource>) -> Result<Schema, TestkitError> {
    let model = &data.model;
    let mut builder =
        Schema::build(&model.query_type, model.mutation_type.as_deref(), None).enable_federation();
    let has_entities = model
        .types
        .values()
        .any(|t| matches!(t, TypeModel::Object(c) if !c.keys.is_empty()));
    for (name, ty) in &model.types {
        builder = match ty {
            TypeModel::Object(composite) => {
                let mut object = Object::new(name);
                for key in &composite.keys {
                    object = if key.resolvable {
                        object.key(&key.fields)
                    } else {
                        object.unresolvable(&key.fields)
                    };
                }
                if composite.interface_object {
                    object = object.interface_object();
                }
                for interface in &composite.implements {
                    object = object.implement(interface);
                }
                for field in composite.fields.values() {
                    object = object.field(build_field(data, name, field));
                }
                if *name == model.query_type && composite.fields.is_empty() && !has_entities {
                    // async-graphql refuses an empty query root unless `_entities` is on it; a
                    // real subgraph would still answer `_service`. Nobody queries this field.
                    object = object.field(Field::new(
                        "_testkitEmpty",
                        TypeRef::named(TypeRef::BOOLEAN),
                        |_| FieldFuture::new(async { Ok(None::<FieldValue>) }),
                    ));
                }
                builder.register(object)
            }
            TypeModel::Interface(composite) => {
                let mut interface = Interface::new(name);
                // Entity interfaces keep their keys in the model only: async-graphql would put
                // the interface itself into `_Entity`, which must hold objects.
                for parent in &composite.implements {
                    interface = interface.implement(parent);
                }
                for field in composite.fields.values() {
                    let mut f = InterfaceField::new(&field.name, type_ref(&field.ty));
                    for arg in &field.arguments {
                        f = f.argument(input_value(arg));
                    }
                    interface = interface.field(f);
                }
                builder.register(interface)
            }
            TypeModel::Union(members) => {
                let mut union = Union::new(name);
                for member in members {
                    union = union.possible_type(member);
                }
                builder.register(union)
            }
            TypeModel::Enum(values) => {
                builder.register(Enum::new(name).items(values.iter().map(String::as_str)))
            }
            TypeModel::Scalar => builder.register(Scalar::new(name)),
            TypeModel::InputObject(fields) => {
                let mut input = InputObject::new(name);
                for field in fields {
                    input = input.field(input_value(field));
                }
                builder.register(input)
            }
        };
    }
    let entities_source = data.clone();
    builder = builder.entity_resolver(move |ctx| {
        let value = entities_source.resolve_entities(&ctx);
        FieldFuture::new(async move { Ok(value) })
    });
    builder
        .finish()
        .map_err(|e| TestkitError::Schema(format!("subgraph `{}`: {}", model.name, e.0)))
}

fn input_value(model: &crate::extract::InputValueModel) -> InputValue {
    let mut value = InputValue::new(&model.name, type_ref(&model.ty));
    if let Some(default) = &model.default {
        value = value.default_value(default.clone());
    }
    value
}

fn build_field(data: &Arc<DataSource>, parent: &str, field: &FieldModel) -> Field {
    let source = data.clone();
    let parent_type = parent.to_string();
    let model = field.clone();
    let mut built = Field::new(&field.name, type_ref(&field.ty), move |ctx| {
        let value = source.resolve_field(&parent_type, &model, &ctx);
        FieldFuture::new(async move { Ok(value) })
    });
    for arg in &field.arguments {
        built = built.argument(input_value(arg));
    }
    if field.external {
        built = built.external();
    }
    if let Some((fields, _)) = &field.requires {
        built = built.requires(fields);
    }
    if let Some(fields) = &field.provides {
        built = built.provides(fields);
    }
    built
}
