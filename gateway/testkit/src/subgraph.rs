//! A real async-graphql federation subgraph whose schema comes from a supergraph and whose data
//! comes from a JSON fixture (format: gateway/tests/federation/README.md).
//!
//! async-graphql's dynamic executor omits errored fields instead of nulling them and cannot put
//! `null` inside a list of objects, so resolvers here never fail: they record errors and null
//! positions in a per-request [`Fixups`] and return a placeholder; after execution the response is
//! patched per the GraphQL spec (null at the position, propagated up to the nearest nullable one).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use async_graphql::dynamic::{
    Enum, Field, FieldFuture, FieldValue, InputObject, InputValue, Interface, InterfaceField,
    Object, ResolverContext, Scalar, Schema, TypeRef, Union,
};
use async_graphql::{Pos, QueryPathNode, QueryPathSegment};
use axum::body::Bytes;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use crate::extract::{
    named_type, CompositeModel, FieldModel, SubgraphModel, SupergraphSource, TypeModel,
};
use crate::fieldset;
use crate::TestkitError;

/// A subgraph built from a supergraph and a fixture, ready to execute requests or to serve them.
#[derive(Clone)]
pub struct FixtureSubgraph {
    name: String,
    schema: Schema,
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
        if !fixture.is_object() {
            return Err(TestkitError::Fixture(format!(
                "fixture of `{}` is not a JSON object",
                model.name
            )));
        }
        let data = Arc::new(DataSource { model, fixture });
        let schema = build_schema(&data)?;
        Ok(Self {
            name: data.model.name.clone(),
            schema,
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

/// A running subgraph server; stops when dropped.
#[derive(Debug)]
pub struct SubgraphHandle {
    name: String,
    addr: SocketAddr,
    url: String,
    log: Arc<RequestLog>,
    task: tokio::task::JoinHandle<()>,
}

impl SubgraphHandle {
    /// The subgraph's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The GraphQL endpoint URL (`http://127.0.0.1:<port>/graphql`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// How many HTTP requests it has received.
    pub fn request_count(&self) -> usize {
        self.log.count()
    }

    /// The requests it has received, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.log.requests()
    }

    /// The shared request log.
    pub fn log(&self) -> &Arc<RequestLog> {
        &self.log
    }
}

impl Drop for SubgraphHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One HTTP request a subgraph received.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// The JSON body (a JSON string holding the raw text when it was not JSON).
    pub body: Value,
    /// Header names (lowercase) and values.
    pub headers: Vec<(String, String)>,
}

/// Requests received by one subgraph.
#[derive(Debug, Default)]
pub struct RequestLog {
    requests: Mutex<Vec<RecordedRequest>>,
}

impl RequestLog {
    fn record(&self, request: RecordedRequest) {
        self.lock().push(request);
    }

    /// Number of requests received.
    pub fn count(&self) -> usize {
        self.lock().len()
    }

    /// A copy of the requests received.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<RecordedRequest>> {
        // A panic while holding the lock cannot leave the Vec half-written; keep going.
        self.requests.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// All subgraphs of one supergraph, started on loopback ports.
#[derive(Debug, Default)]
pub struct RunningSubgraphs {
    /// Running subgraphs by name (down ones are absent).
    pub handles: BTreeMap<String, SubgraphHandle>,
    /// URL of every subgraph by name; down ones point at a port nothing listens on.
    pub urls: HashMap<String, String>,
}

impl RunningSubgraphs {
    /// Requests received by `name` (0 for down or unknown subgraphs).
    pub fn request_count(&self, name: &str) -> usize {
        self.handles
            .get(name)
            .map_or(0, SubgraphHandle::request_count)
    }
}

/// Starts every subgraph of `supergraph_sdl` on 127.0.0.1 with its fixture (`{}` when absent);
/// subgraphs named in `down` are not started and get the URL of a closed port.
pub async fn start_subgraphs(
    supergraph_sdl: &str,
    fixtures: &BTreeMap<String, Value>,
    down: &[String],
) -> Result<RunningSubgraphs, TestkitError> {
    let source = SupergraphSource::parse(supergraph_sdl)?;
    for name in fixtures.keys().chain(down) {
        if !source.graphs().iter().any(|g| &g.name == name) {
            return Err(TestkitError::UnknownSubgraph(name.clone()));
        }
    }
    let mut running = RunningSubgraphs::default();
    for graph in source.graphs() {
        if down.contains(&graph.name) {
            running
                .urls
                .insert(graph.name.clone(), closed_port_url().await?);
            continue;
        }
        let fixture = fixtures
            .get(&graph.name)
            .cloned()
            .unwrap_or_else(|| json!({}));
        let subgraph = FixtureSubgraph::from_model(source.subgraph(&graph.name)?, fixture)?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(TestkitError::Io)?;
        let handle = subgraph.serve(listener)?;
        running
            .urls
            .insert(graph.name.clone(), handle.url().to_string());
        running.handles.insert(graph.name.clone(), handle);
    }
    Ok(running)
}

/// A URL on a loopback port that was just bound and released, so connections are refused.
async fn closed_port_url() -> Result<String, TestkitError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(TestkitError::Io)?;
    let addr = listener.local_addr().map_err(TestkitError::Io)?;
    drop(listener);
    Ok(format!("http://{addr}/graphql"))
}

/// The schema model plus the fixture: everything resolvers read.
struct DataSource {
    model: SubgraphModel,
    fixture: Value,
}

/// A parent object being resolved: the JSON object its fields are read from.
struct Node {
    data: Map<String, Value>,
}

/// Stands in for a value that post-processing replaces with `null`; its fields resolve to more
/// placeholders and record nothing.
struct Placeholder;

type Path = Vec<Value>;

/// Errors and null positions recorded while executing one request.
#[derive(Default)]
struct Fixups {
    inner: Mutex<FixupsInner>,
}

#[derive(Default)]
struct FixupsInner {
    errors: Vec<Value>,
    nulls: Vec<Path>,
    non_null: HashSet<Path>,
}

impl Fixups {
    fn lock(&self) -> std::sync::MutexGuard<'_, FixupsInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn error(&self, message: String, path: &Path, pos: Option<Pos>, extensions: Option<Value>) {
        let mut error = Map::new();
        error.insert("message".into(), Value::String(message));
        if let Some(pos) = pos {
            error.insert(
                "locations".into(),
                json!([{"line": pos.line, "column": pos.column}]),
            );
        }
        error.insert("path".into(), Value::Array(path.clone()));
        if let Some(extensions) = extensions {
            error.insert("extensions".into(), extensions);
        }
        self.lock().errors.push(Value::Object(error));
    }

    fn null(&self, path: &Path) {
        self.lock().nulls.push(path.clone());
    }

    fn non_null(&self, path: &Path) {
        self.lock().non_null.insert(path.clone());
    }

    /// Writes the recorded nulls (propagated) and errors into a serialized response.
    fn apply(&self, response: &mut Value) {
        let inner = self.lock();
        let Some(object) = response.as_object_mut() else {
            return;
        };
        if !inner.errors.is_empty() {
            let errors = object
                .entry("errors")
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(list) = errors {
                list.extend(inner.errors.iter().cloned());
            }
        }
        let Some(data) = object.get_mut("data") else {
            return;
        };
        for path in &inner.nulls {
            let mut position = path.clone();
            loop {
                if position.is_empty() {
                    *data = Value::Null;
                    break;
                }
                if !set_null(data, &position) {
                    // Already inside a nulled subtree.
                    break;
                }
                if !inner.non_null.contains(&position) {
                    break;
                }
                position.pop();
            }
        }
    }
}

/// Sets the value at `path` to null; false when the path does not lead anywhere.
fn set_null(data: &mut Value, path: &[Value]) -> bool {
    let mut current = data;
    for segment in path {
        current = match (current, segment) {
            (Value::Object(map), Value::String(key)) => match map.get_mut(key) {
                Some(v) => v,
                None => return false,
            },
            (Value::Array(items), Value::Number(n)) => {
                match n.as_u64().and_then(|i| items.get_mut(i as usize)) {
                    Some(v) => v,
                    None => return false,
                }
            }
            _ => return false,
        };
    }
    *current = Value::Null;
    true
}

fn path_of(node: Option<&QueryPathNode<'_>>) -> Path {
    let mut segments = Vec::new();
    let mut current = node;
    while let Some(n) = current {
        segments.push(match n.segment {
            QueryPathSegment::Index(i) => Value::from(i),
            QueryPathSegment::Name(name) => Value::String(name.to_string()),
        });
        current = n.parent;
    }
    segments.reverse();
    segments
}

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
        let variables = body
            .as_object_mut()
            .map(|b| b.entry("variables").or_insert_with(|| json!({})));
        if let Some(Value::Null) = variables {
            if let Some(v) = variables {
                *v = json!({});
            }
        }
        if let Some(Value::Object(vars)) = body.get_mut("variables") {
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
        Node {
            data: self
                .fixture
                .get(type_name)
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
        }
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
            if let Some(missing) = fieldset::first_missing(&node.data, required) {
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
        let value = read(&node.data)
            .or_else(|| {
                self.find_entity(parent_type, &node.data, false)
                    .and_then(|(_, entry)| read(&entry))
            })
            .unwrap_or(Value::Null);
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
                    Value::Object(map) => Some(FieldValue::owned_any(Node { data: map.clone() })),
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
                            FieldValue::owned_any(Node { data: map.clone() })
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
                    items.push(FieldValue::owned_any(Node { data: merged }).with_type(concrete));
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
