//! QueryPlan + variables -> response: runs fetches (in parallel and in sequence), batches and
//! de-duplicates entity representations, merges subgraph data, then shapes the client response
//! (field order, `@skip`/`@include`, type conditions, null propagation) and re-paths errors.

mod breaker;
mod data;
mod fetch;
mod json;
mod merge;
mod shape;
pub(crate) mod transport;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apollo_compiler::executable::Operation;
use apollo_compiler::validation::Valid;
use apollo_compiler::{ExecutableDocument, Node, Schema};
use bytes::Bytes;
use futures::future::{join_all, BoxFuture, FutureExt};
use http::header::{HeaderName, HeaderValue};
use http::Uri;
use serde_json::{Map, Value};
use switchyard_planner::plan::{
    FetchNode, OperationKind, PathElement, PlanNode, QueryPlan, RequiresSelection, ValueRewrite,
};
use switchyard_telemetry::trace::{Span, SpanKind, TraceContext, Tracer};
use tracing::Instrument;

use crate::config::{GatewayConfig, SubgraphPolicy, SubgraphTransport};
use crate::error::{GatewayError, GraphQLError, PathSegment};
use crate::headers::{RequestHeaderRule, ResponseHeaderRule, ResponseHeaders};
use crate::introspection::{IntrospectionOptions, SchemaIntrospection};
use crate::metrics::{FetchOutcome, SubgraphMetrics};
use data::{Map as DataMap, Value as Data};
pub(crate) use fetch::CircuitState;
use fetch::{FetchError, Fetched, SubgraphClient};

pub(crate) use merge::{introspection_error, subgraph_error};
pub(crate) use shape::write_response;

/// How the executor talks to subgraphs.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// Request timeout for subgraphs without an entry in `subgraph_policies`.
    pub subgraph_timeout: Duration,
    /// Timeout, circuit breaker and in-flight cap per subgraph name; a subgraph missing here
    /// gets `subgraph_timeout` and the default breaker and cap.
    pub subgraph_policies: HashMap<String, SubgraphPolicy>,
    /// Collapse identical in-flight subgraph queries into one request.
    pub dedupe: bool,
    /// Whether `__schema` / `__type` are answered.
    pub introspection: bool,
    /// Where the per-subgraph series are registered.
    pub metrics: switchyard_telemetry::metrics::MetricsRegistry,
    /// TLS, HTTP/2 and pool settings per subgraph name; a subgraph missing here gets the
    /// defaults of [`GatewayConfig`].
    pub subgraph_transports: HashMap<String, SubgraphTransport>,
    /// Request and response header rules per subgraph name; a subgraph missing here gets the
    /// defaults of [`GatewayConfig`] (the client's `Authorization` propagated).
    pub header_rules: HashMap<String, (Vec<RequestHeaderRule>, Vec<ResponseHeaderRule>)>,
    /// Spans per plan node and per subgraph fetch go here (off by default).
    pub tracer: Tracer,
}

impl Default for ExecutorOptions {
    fn default() -> Self {
        Self {
            subgraph_timeout: Duration::from_secs(30),
            subgraph_policies: HashMap::new(),
            dedupe: true,
            introspection: true,
            metrics: switchyard_telemetry::metrics::MetricsRegistry::new(),
            subgraph_transports: HashMap::new(),
            header_rules: HashMap::new(),
            tracer: Tracer::disabled(),
        }
    }
}

/// One subgraph as monitoring sees it.
pub(crate) struct SubgraphState<'a> {
    pub(crate) name: &'a str,
    pub(crate) url: &'a Uri,
    pub(crate) metrics: &'a SubgraphMetrics,
    pub(crate) circuit: fetch::CircuitState,
    pub(crate) inflight: usize,
    /// The pooled client its requests go through.
    pub(crate) http: &'a transport::HttpClient,
}

/// One subgraph the executor can send requests to.
#[derive(Debug, Clone)]
struct Endpoint {
    uri: Uri,
}

/// Runs query plans against subgraphs. Shared by all requests (hold it in an `Arc`).
pub struct Executor {
    schema: Arc<Valid<Schema>>,
    endpoints: Vec<Endpoint>,
    by_name: HashMap<String, usize>,
    client: SubgraphClient,
    dedupe: bool,
    introspection: SchemaIntrospection,
    /// Per subgraph, indexed like `endpoints`.
    subgraph_metrics: Vec<Arc<SubgraphMetrics>>,
    /// Distinct request header rule lists; subgraphs with the same rules share one, so the
    /// usual configuration computes one header list per request.
    header_groups: Vec<Vec<RequestHeaderRule>>,
    /// Per subgraph: its index into `header_groups`.
    header_group_of: Vec<usize>,
    /// Per subgraph: TLS settings for WebSocket (`wss://`) subscriptions (HTTP/1.1 only).
    websocket_tls: Vec<Arc<rustls::ClientConfig>>,
    tracer: Tracer,
}

/// The headers of one client request as each subgraph gets them: one list per distinct rule
/// group (see [`Executor::forward`]), or one list for every subgraph.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Forwarded<'a> {
    /// The same headers to every subgraph.
    Same(&'a [(HeaderName, HeaderValue)]),
    /// Lists indexed by the executor's header groups.
    PerGroup(&'a [Vec<(HeaderName, HeaderValue)>]),
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("endpoints", &self.endpoints)
            .field("dedupe", &self.dedupe)
            .finish_non_exhaustive()
    }
}

/// A query plan bound to one executor's subgraphs, with the client operation its response is
/// shaped by: what the executor runs. Made once per cached operation ([`Executor::bind`]).
pub struct BoundPlan {
    document: Arc<Valid<ExecutableDocument>>,
    operation: Node<Operation>,
    exec: Option<ExecNode>,
    has_introspection: bool,
    /// Size of the last response written for this plan, to size the next one's buffer in one
    /// allocation (responses to one operation tend to be alike in size).
    response_size: AtomicUsize,
}

impl BoundPlan {
    /// The validated client document.
    pub fn document(&self) -> &Valid<ExecutableDocument> {
        &self.document
    }

    /// The operation of the document that runs.
    pub fn operation(&self) -> &Node<Operation> {
        &self.operation
    }
}

impl std::fmt::Debug for BoundPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundPlan")
            .field("operation", &self.operation.name)
            .field("exec", &self.exec)
            .finish_non_exhaustive()
    }
}

/// A plan made ready to run: subgraph names resolved, request-body prefixes pre-encoded.
#[derive(Debug)]
pub(crate) enum ExecNode {
    Sequence(Vec<ExecNode>),
    Parallel(Vec<ExecNode>),
    Fetch(Box<PreparedFetch>),
    Flatten {
        /// The plan's `path` followed by its `other_paths`.
        paths: Vec<Vec<PathElement>>,
        node: Box<ExecNode>,
    },
    Condition {
        variable: String,
        if_clause: Option<Box<ExecNode>>,
        else_clause: Option<Box<ExecNode>>,
    },
}

/// A fetch node with everything the hot path needs precomputed.
#[derive(Debug)]
pub(crate) struct PreparedFetch {
    /// Index into the executor's endpoints; `None` when the plan names an unknown subgraph.
    service: Option<usize>,
    service_name: Arc<str>,
    /// `{"query":"...","operationName":"...","variables":` — the variables object and the
    /// closing brace are appended per request.
    body_prefix: Vec<u8>,
    variable_usages: Vec<String>,
    requires: Option<Vec<RequiresSelection>>,
    input_rewrites: Vec<ValueRewrite>,
    output_rewrites: Vec<ValueRewrite>,
    collapsible: bool,
    /// Response keys of the root fields a root fetch provides, for error paths when it fails.
    root_keys: Vec<String>,
}

impl Executor {
    /// An executor over the API schema and `(name, url)` subgraph endpoints.
    pub fn new(
        schema: Arc<Valid<Schema>>,
        subgraphs: &[(String, String)],
        options: ExecutorOptions,
    ) -> Result<Self, GatewayError> {
        let families = crate::metrics::SubgraphFamilies::register(&options.metrics);
        Self::with_metrics(schema, subgraphs, options, &families)
    }

    /// Like [`Executor::new`], with the per-subgraph series taken from `families` (which a
    /// reloaded gateway shares with the one it replaces) instead of registered anew.
    pub(crate) fn with_metrics(
        schema: Arc<Valid<Schema>>,
        subgraphs: &[(String, String)],
        options: ExecutorOptions,
        families: &crate::metrics::SubgraphFamilies,
    ) -> Result<Self, GatewayError> {
        let mut endpoints = Vec::with_capacity(subgraphs.len());
        let mut policies = Vec::with_capacity(subgraphs.len());
        let mut by_name = HashMap::new();
        let defaults = GatewayConfig::default();
        // Subgraphs with equal transport settings share a client and so a connection pool.
        let mut clients: Vec<(SubgraphTransport, transport::HttpClient)> = Vec::new();
        let mut header_groups: Vec<Vec<RequestHeaderRule>> = Vec::new();
        let mut header_group_of = Vec::with_capacity(subgraphs.len());
        let mut websocket_tls = Vec::with_capacity(subgraphs.len());
        for (name, url) in subgraphs {
            let uri: Uri =
                url.parse()
                    .map_err(|err: http::uri::InvalidUri| GatewayError::SubgraphUrl {
                        subgraph: name.clone(),
                        url: url.clone(),
                        message: err.to_string(),
                    })?;
            if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                return Err(GatewayError::SubgraphUrl {
                    subgraph: name.clone(),
                    url: url.clone(),
                    message: "expected an http:// or https:// URL with a host".into(),
                });
            }
            by_name.insert(name.clone(), endpoints.len());
            endpoints.push(Endpoint { uri });
            let policy = options
                .subgraph_policies
                .get(name)
                .copied()
                .unwrap_or(SubgraphPolicy {
                    timeout: options.subgraph_timeout,
                    ..defaults.subgraph_policy(name)
                });
            let wanted = options
                .subgraph_transports
                .get(name)
                .cloned()
                .unwrap_or_else(|| defaults.subgraph_transport(name));
            let tls_error = |message| GatewayError::SubgraphTls {
                subgraph: name.clone(),
                message,
            };
            websocket_tls.push(Arc::new(transport::tls_config(&wanted).map_err(tls_error)?));
            let http = match clients.iter().find(|(t, _)| *t == wanted) {
                Some((_, client)) => client.clone(),
                None => {
                    let client = transport::client(&wanted).map_err(tls_error)?;
                    clients.push((wanted, client.clone()));
                    client
                }
            };
            let (request_rules, response_rules) =
                options.header_rules.get(name).cloned().unwrap_or_else(|| {
                    (
                        defaults.request_header_rules(name),
                        defaults.response_header_rules(name),
                    )
                });
            let group = match header_groups.iter().position(|g| *g == request_rules) {
                Some(group) => group,
                None => {
                    header_groups.push(request_rules);
                    header_groups.len() - 1
                }
            };
            header_group_of.push(group);
            policies.push((name.clone(), policy, http, response_rules));
        }
        let introspection = SchemaIntrospection::new(
            &schema,
            IntrospectionOptions {
                enabled: options.introspection,
                ..IntrospectionOptions::default()
            },
        );
        let names: Vec<String> = subgraphs.iter().map(|(name, _)| name.clone()).collect();
        let subgraph_metrics = families.resolve(&names);
        let collapsed: Vec<_> = subgraph_metrics
            .iter()
            .map(|m| m.collapsed.clone())
            .collect();
        Ok(Self {
            introspection,
            schema,
            endpoints,
            by_name,
            client: SubgraphClient::new(policies, &collapsed),
            dedupe: options.dedupe,
            subgraph_metrics,
            header_groups,
            header_group_of,
            websocket_tls,
            tracer: options.tracer,
        })
    }

    /// TLS settings for a `wss://` connection to subgraph `name`.
    pub(crate) fn websocket_tls(&self, name: &str) -> Option<Arc<rustls::ClientConfig>> {
        self.by_name
            .get(name)
            .map(|&service| Arc::clone(&self.websocket_tls[service]))
    }

    /// The headers each subgraph gets for a client request with `client` headers, one list per
    /// header group; pass them to the executor as [`Forwarded::PerGroup`].
    pub(crate) fn forward(&self, client: &http::HeaderMap) -> Vec<Vec<(HeaderName, HeaderValue)>> {
        self.header_groups
            .iter()
            .map(|rules| crate::headers::apply(rules, client))
            .collect()
    }

    /// The headers subgraph `name` gets out of `forwarded` (for subscriptions' upstream sockets).
    pub(crate) fn forwarded_to<'f>(
        &self,
        forwarded: &'f [Vec<(HeaderName, HeaderValue)>],
        name: &str,
    ) -> &'f [(HeaderName, HeaderValue)] {
        self.by_name
            .get(name)
            .and_then(|&service| forwarded.get(self.header_group_of[service]))
            .map_or(&[], Vec::as_slice)
    }

    fn headers_for<'f>(
        &self,
        forwarded: Forwarded<'f>,
        service: usize,
    ) -> &'f [(HeaderName, HeaderValue)] {
        match forwarded {
            Forwarded::Same(list) => list,
            Forwarded::PerGroup(lists) => lists
                .get(self.header_group_of[service])
                .map_or(&[], Vec::as_slice),
        }
    }

    /// The API schema responses are shaped against.
    pub fn schema(&self) -> &Arc<Valid<Schema>> {
        &self.schema
    }

    /// Where this executor's spans go.
    pub(crate) fn tracer(&self) -> &Tracer {
        &self.tracer
    }

    /// The introspection resolver for the API schema.
    pub(crate) fn introspection(&self) -> &SchemaIntrospection {
        &self.introspection
    }

    /// Binds `plan` (made for `operation` of `document`) to this executor: subgraph names
    /// resolved, request bodies pre-encoded. Once per cached plan.
    pub fn bind(
        &self,
        document: Arc<Valid<ExecutableDocument>>,
        operation: Node<Operation>,
        plan: &QueryPlan,
    ) -> BoundPlan {
        let has_introspection = crate::introspection::selects_introspection(&document, &operation);
        BoundPlan {
            exec: plan.node.as_ref().map(|node| self.prepare_node(node)),
            document,
            operation,
            has_introspection,
            response_size: AtomicUsize::new(0),
        }
    }

    fn prepare_node(&self, node: &PlanNode) -> ExecNode {
        match node {
            PlanNode::Sequence { nodes } => {
                ExecNode::Sequence(nodes.iter().map(|n| self.prepare_node(n)).collect())
            }
            PlanNode::Parallel { nodes } => {
                ExecNode::Parallel(nodes.iter().map(|n| self.prepare_node(n)).collect())
            }
            PlanNode::Fetch(fetch) => ExecNode::Fetch(Box::new(self.prepare_fetch(fetch))),
            PlanNode::Flatten(flatten) => ExecNode::Flatten {
                paths: std::iter::once(&flatten.path)
                    .chain(&flatten.other_paths)
                    .cloned()
                    .collect(),
                node: Box::new(self.prepare_node(&flatten.node)),
            },
            PlanNode::Condition(cond) => ExecNode::Condition {
                variable: cond.condition.clone(),
                if_clause: cond
                    .if_clause
                    .as_ref()
                    .map(|n| Box::new(self.prepare_node(n))),
                else_clause: cond
                    .else_clause
                    .as_ref()
                    .map(|n| Box::new(self.prepare_node(n))),
            },
        }
    }

    fn prepare_fetch(&self, fetch: &FetchNode) -> PreparedFetch {
        let mut body_prefix = Vec::with_capacity(fetch.operation.len() + 64);
        body_prefix.extend_from_slice(b"{\"query\":");
        write_json(&mut body_prefix, &fetch.operation);
        if let Some(name) = &fetch.operation_name {
            body_prefix.extend_from_slice(b",\"operationName\":");
            write_json(&mut body_prefix, name);
        }
        body_prefix.extend_from_slice(b",\"variables\":");
        PreparedFetch {
            service: self.by_name.get(&fetch.service_name).copied(),
            service_name: Arc::from(fetch.service_name.as_str()),
            body_prefix,
            variable_usages: fetch.variable_usages.clone(),
            requires: fetch.requires.clone(),
            input_rewrites: fetch.input_rewrites.clone(),
            output_rewrites: fetch.output_rewrites.clone(),
            collapsible: self.dedupe && fetch.operation_kind == OperationKind::Query,
            root_keys: fetch.root_keys.clone(),
        }
    }

    /// Runs `operation` (a bound plan) with coerced `variables`, forwarding `headers` to
    /// subgraphs, and returns the serialized client response (`{"data":...,"errors":[...]}`).
    pub async fn execute(
        &self,
        operation: &BoundPlan,
        variables: &Map<String, Value>,
        headers: &[(HeaderName, HeaderValue)],
    ) -> Vec<u8> {
        self.execute_counting_errors(operation, variables, Forwarded::Same(headers), None)
            .await
            .0
    }

    /// Like [`Executor::execute`], also saying how many errors the response carries (for the
    /// request metrics' outcome), and with the subgraph response headers passed back; plan-node
    /// spans are children of `trace` (the request's span).
    pub(crate) async fn execute_counting_errors(
        &self,
        operation: &BoundPlan,
        variables: &Map<String, Value>,
        headers: Forwarded<'_>,
        trace: Option<TraceContext>,
    ) -> (Vec<u8>, usize, http::HeaderMap) {
        let run = Run {
            executor: self,
            data: Mutex::new(Data::Object(DataMap::new())),
            errors: Mutex::new(Vec::new()),
            variables,
            headers,
            bytes_in: AtomicUsize::new(0),
            response_headers: Mutex::new(ResponseHeaders::default()),
        };
        if let Some(node) = &operation.exec {
            run.node(node, &[], trace).await;
        }
        let Run {
            data,
            errors,
            bytes_in,
            response_headers,
            ..
        } = run;
        let response_headers = response_headers
            .into_inner()
            .expect("response headers lock poisoned")
            .finish();
        let mut data = data.into_inner().expect("data lock poisoned");
        let mut errors = errors.into_inner().expect("errors lock poisoned");
        if operation.has_introspection {
            self.resolve_introspection(operation, variables, &mut data, &mut errors);
        }
        // Size the buffer once: like the last response to this operation, or (the first time)
        // like what the subgraphs sent.
        let last = operation.response_size.load(Ordering::Relaxed);
        let capacity = last.max(bytes_in.into_inner()).clamp(1024, 8 << 20);
        let error_count = errors.len();
        let response = write_response(&self.schema, operation, variables, &data, errors, capacity);
        operation
            .response_size
            .store(response.len() + response.len() / 8, Ordering::Relaxed);
        (response, error_count, response_headers)
    }

    /// Subgraph names with their metrics and live state, for `/metrics` and the status view.
    pub(crate) fn subgraph_states(&self) -> Vec<SubgraphState<'_>> {
        let mut names: Vec<(&String, &usize)> = self.by_name.iter().collect();
        names.sort();
        names
            .into_iter()
            .map(|(name, &index)| SubgraphState {
                name,
                url: &self.endpoints[index].uri,
                metrics: &self.subgraph_metrics[index],
                circuit: self.client.circuit(index),
                inflight: self.client.inflight(index),
                http: self.client.http(index),
            })
            .collect()
    }
}

impl Executor {
    /// Puts the answers to root `__schema` / `__type` into `data` under their response keys, so
    /// response shaping treats them like any other field.
    fn resolve_introspection(
        &self,
        operation: &BoundPlan,
        variables: &Map<String, Value>,
        data: &mut Data,
        errors: &mut Vec<GraphQLError>,
    ) {
        match self
            .introspection
            .execute(&operation.document, &operation.operation, variables)
        {
            Ok(response) => {
                if let Data::Object(root) = data {
                    for (key, value) in response.data {
                        root.insert(data::Str::from_string(key), Data::from(value));
                    }
                }
                errors.extend(response.errors.into_iter().map(merge::introspection_error));
            }
            Err(err) => errors.push(merge::introspection_error(err.to_graphql_error())),
        }
    }
}

/// A word-at-a-time multiply-rotate hash (FxHash's step) with a final avalanche.
/// Representations run to hundreds of bytes, and FNV-1a's byte-serial multiply chain was the
/// single hottest loop of entity fetches; de-duplication only needs a fast, decent hash
/// (equality is always confirmed on the bytes).
fn fast_hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut hash = bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().expect("chunks_exact yields 8 bytes"));
        hash = (hash.rotate_left(5) ^ word).wrapping_mul(K);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut tail = [0u8; 8];
        tail[..rest.len()].copy_from_slice(rest);
        hash = (hash.rotate_left(5) ^ u64::from_le_bytes(tail)).wrapping_mul(K);
    }
    // Murmur3's finaliser spreads the high bits into the low ones the hash table indexes by.
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash
}

/// A `BuildHasher` for keys that are already hashes.
#[derive(Default, Clone, Copy)]
struct PassThroughHash;

impl std::hash::BuildHasher for PassThroughHash {
    type Hasher = PassThroughHasher;
    fn build_hasher(&self) -> PassThroughHasher {
        PassThroughHasher(0)
    }
}

/// Returns the `u64` it was given.
#[derive(Default)]
struct PassThroughHasher(u64);

impl std::hash::Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0 = fast_hash(bytes);
    }
    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

fn write_json(out: &mut Vec<u8>, value: &(impl serde::Serialize + ?Sized)) {
    serde_json::to_writer(out, value).expect("serializing to a Vec cannot fail");
}

/// The state of one plan run: merged data and errors so far.
struct Run<'a> {
    executor: &'a Executor,
    data: Mutex<Data>,
    errors: Mutex<Vec<GraphQLError>>,
    variables: &'a Map<String, Value>,
    headers: Forwarded<'a>,
    /// Total size of the subgraph response bodies, to size the client response buffer.
    bytes_in: AtomicUsize,
    /// Subgraph response headers passed back to the client.
    response_headers: Mutex<ResponseHeaders>,
}

/// One object an entity fetch resolves: which representation it sent, which of the `Flatten`
/// node's paths it was found at, and the list indexes (a range of a shared buffer) that lead to
/// it along that path.
struct EntityTarget {
    representation: usize,
    path: usize,
    indexes: std::ops::Range<usize>,
}

impl<'a> Run<'a> {
    /// A span for a plan node (inert when tracing is off; nothing is formatted then).
    fn node_span(&self, parent: Option<TraceContext>, name: &'static str) -> Span {
        match parent {
            Some(parent) => self
                .executor
                .tracer
                .start(name, SpanKind::Internal, Some(&parent)),
            None => Span::none(),
        }
    }

    fn node<'s>(
        &'s self,
        node: &'s ExecNode,
        paths: &'s [Vec<PathElement>],
        parent: Option<TraceContext>,
    ) -> BoxFuture<'s, ()> {
        async move {
            match node {
                ExecNode::Sequence(nodes) => {
                    let span = self.node_span(parent, "Sequence");
                    for n in nodes {
                        self.node(n, paths, span.context()).await;
                    }
                }
                ExecNode::Parallel(nodes) => {
                    let span = self.node_span(parent, "Parallel");
                    let context = span.context();
                    join_all(nodes.iter().map(|n| self.node(n, paths, context))).await;
                }
                ExecNode::Fetch(fetch) => {
                    let mut span = self.node_span(parent, "Fetch");
                    if span.is_recording() {
                        span.set_attribute("subgraph.name", fetch.service_name.as_ref().to_owned());
                    }
                    let context = span.context();
                    let log_span = tracing::info_span!("fetch", service = &*fetch.service_name);
                    if fetch.requires.is_some() {
                        self.entity_fetch(fetch, paths, context)
                            .instrument(log_span)
                            .await;
                    } else {
                        self.root_fetch(fetch, context).instrument(log_span).await;
                    }
                }
                ExecNode::Flatten { paths, node } => {
                    let span = self.node_span(parent, "Flatten");
                    self.node(node, paths, span.context()).await
                }
                ExecNode::Condition {
                    variable,
                    if_clause,
                    else_clause,
                } => {
                    let span = self.node_span(parent, "Condition");
                    let on = self
                        .variables
                        .get(variable)
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                    let branch = if on { if_clause } else { else_clause };
                    if let Some(branch) = branch {
                        self.node(branch, paths, span.context()).await;
                    }
                }
            }
        }
        .boxed()
    }

    fn write_variables(&self, fetch: &PreparedFetch, body: &mut Vec<u8>, mut first: bool) {
        for name in &fetch.variable_usages {
            if let Some(value) = self.variables.get(name) {
                if !first {
                    body.push(b',');
                }
                first = false;
                write_json(body, name);
                body.push(b':');
                write_json(body, value);
            }
        }
    }

    async fn send(
        &self,
        fetch: &PreparedFetch,
        body: Vec<u8>,
        parent: Option<TraceContext>,
    ) -> Result<Arc<Fetched>, FetchError> {
        let Some(service) = fetch.service else {
            return Err(FetchError::Failed(Arc::from(format!(
                "unknown subgraph '{}'",
                fetch.service_name
            ))));
        };
        let endpoint = &self.executor.endpoints[service];
        // The subgraph continues the trace under this span (its context goes as `traceparent`).
        let mut span = match &parent {
            Some(parent) => self.executor.tracer.start(
                format!("subgraph {}", fetch.service_name),
                SpanKind::Client,
                Some(parent),
            ),
            None => Span::none(),
        };
        let traceparent = span.context().map(|context| context.header_value());
        let started = std::time::Instant::now();
        let (result, joined) = self
            .executor
            .client
            .fetch(
                service,
                &endpoint.uri,
                Bytes::from(body),
                self.executor.headers_for(self.headers, service),
                fetch.collapsible,
                traceparent,
            )
            .await;
        if span.is_recording() {
            span.set_attribute("subgraph.name", fetch.service_name.as_ref().to_owned());
            span.set_attribute("url.full", endpoint.uri.to_string());
            // A request collapsed onto one already in flight: the subgraph's spans hang under
            // the request that was sent, not this one.
            span.set_attribute("switchyard.collapsed", joined);
            match &result {
                Ok(fetched) => span.set_attribute(
                    "http.response.body.size",
                    i64::try_from(fetched.bytes).unwrap_or(i64::MAX),
                ),
                Err(reason) => span.set_error(reason.message().to_owned()),
            }
        }
        drop(span);
        let outcome = match &result {
            Ok(_) => FetchOutcome::Ok,
            Err(FetchError::Failed(_)) => FetchOutcome::Failed,
            Err(FetchError::CircuitOpen(_)) => FetchOutcome::CircuitOpen,
            Err(FetchError::Overloaded(_)) => FetchOutcome::Overloaded,
        };
        self.executor.subgraph_metrics[service].record(started, outcome);
        let rules = self.executor.client.response_rules(service);
        if !rules.is_empty() {
            let captured = result.as_ref().ok().map(|f| f.headers.as_slice());
            self.response_headers
                .lock()
                .expect("response headers lock poisoned")
                .add(rules, captured);
        }
        let fetched = result?;
        self.bytes_in.fetch_add(fetched.bytes, Ordering::Relaxed);
        Ok(fetched)
    }

    fn fetch_failed(fetch: &PreparedFetch, reason: &FetchError) -> GraphQLError {
        GraphQLError::new(
            format!(
                "HTTP fetch failed from '{}': {}",
                fetch.service_name,
                reason.message()
            ),
            reason.code(),
        )
        .with_extension("serviceName", &*fetch.service_name)
    }

    async fn root_fetch(&self, fetch: &PreparedFetch, trace: Option<TraceContext>) {
        let mut body = Vec::with_capacity(fetch.body_prefix.len() + 64);
        body.extend_from_slice(&fetch.body_prefix);
        body.push(b'{');
        self.write_variables(fetch, &mut body, true);
        body.extend_from_slice(b"}}");
        match self.send(fetch, body, trace).await {
            Ok(fetched) => {
                // Sole owner: move the values in. Shared with collapsed requests: copy them.
                let (errors, owned, shared) = match Arc::try_unwrap(fetched) {
                    Ok(Fetched { response, .. }) => (response.errors, response.data, None),
                    Err(shared) => (shared.response.errors.clone(), None, Some(shared)),
                };
                if let Some(errors) = errors {
                    let mut all = self.errors.lock().expect("errors lock poisoned");
                    for error in errors {
                        all.push(merge::subgraph_error(error, &fetch.service_name));
                    }
                }
                // Aliased conflicting fields get their client keys back first; that needs a
                // private copy of a shared response.
                let owned = match (owned, &shared) {
                    (Some(data), _) if !fetch.output_rewrites.is_empty() => {
                        Some(self.rewritten(fetch, data))
                    }
                    (None, Some(shared)) if !fetch.output_rewrites.is_empty() => shared
                        .response
                        .data
                        .clone()
                        .map(|data| self.rewritten(fetch, data)),
                    (owned, _) => owned,
                };
                let mut root = self.data.lock().expect("data lock poisoned");
                match (
                    owned,
                    shared.as_ref().and_then(|s| s.response.data.as_ref()),
                ) {
                    (Some(data @ Data::Object(_)), _) => merge::deep_merge(&mut root, data),
                    (None, Some(data @ Data::Object(_))) => merge::deep_merge_ref(&mut root, data),
                    _ => {}
                }
            }
            Err(reason) => {
                let mut all = self.errors.lock().expect("errors lock poisoned");
                if fetch.root_keys.is_empty() {
                    all.push(Self::fetch_failed(fetch, &reason));
                }
                for key in &fetch.root_keys {
                    all.push(
                        Self::fetch_failed(fetch, &reason)
                            .with_path(vec![PathSegment::Key(key.clone())]),
                    );
                }
            }
        }
    }

    /// `data` with the fetch's output rewrites applied.
    fn rewritten(&self, fetch: &PreparedFetch, mut data: Data) -> Data {
        let schema: &Schema = &self.executor.schema;
        for rewrite in &fetch.output_rewrites {
            merge::apply_rewrite(&mut data, rewrite, schema);
        }
        data
    }

    async fn entity_fetch(
        &self,
        fetch: &PreparedFetch,
        paths: &[Vec<PathElement>],
        trace: Option<TraceContext>,
    ) {
        let requires = fetch.requires.as_deref().unwrap_or_default();
        let schema: &Schema = &self.executor.schema;
        let mut targets = Vec::new();
        let mut index_buffer: Vec<u32> = Vec::new();
        let mut body = Vec::with_capacity(fetch.body_prefix.len() + 256);
        body.extend_from_slice(&fetch.body_prefix);
        body.extend_from_slice(b"{\"representations\":[");
        let mut count = 0usize;
        {
            let data = self.data.lock().expect("data lock poisoned");
            // Hash of representation bytes -> (index, its bytes' range in `body`). The keys are
            // already hashes, so the map passes them through instead of re-hashing with SipHash.
            let mut seen: HashMap<u64, (usize, std::ops::Range<usize>), PassThroughHash> =
                HashMap::default();
            let mut scratch = Vec::new();
            for (path_index, path) in paths.iter().enumerate() {
                merge::for_each_object(
                    &data,
                    path,
                    schema,
                    &mut Vec::new(),
                    &mut |object, indexes| {
                        scratch.clear();
                        if fetch.input_rewrites.is_empty() {
                            if !merge::write_representation(object, requires, schema, &mut scratch)
                            {
                                return;
                            }
                        } else {
                            let Some(mut representation) =
                                merge::representation(object, requires, schema)
                            else {
                                return;
                            };
                            for rewrite in &fetch.input_rewrites {
                                merge::apply_rewrite(&mut representation, rewrite, schema);
                            }
                            write_json(&mut scratch, &representation);
                        }
                        let hash = fast_hash(&scratch);
                        let existing = seen
                            .get(&hash)
                            .filter(|(_, range)| body[range.clone()] == scratch[..])
                            .map(|(index, _)| *index);
                        let index = match existing {
                            Some(index) => index,
                            None => {
                                if count > 0 {
                                    body.push(b',');
                                }
                                let start = body.len();
                                body.extend_from_slice(&scratch);
                                // On a (vanishingly rare) hash collision the first entry keeps the slot;
                                // the newcomer is simply not de-duplicated.
                                seen.entry(hash).or_insert((count, start..body.len()));
                                count += 1;
                                count - 1
                            }
                        };
                        let start = index_buffer.len();
                        index_buffer.extend_from_slice(indexes);
                        targets.push(EntityTarget {
                            representation: index,
                            path: path_index,
                            indexes: start..index_buffer.len(),
                        });
                    },
                );
            }
        }
        if count == 0 {
            return;
        }
        body.push(b']');
        self.write_variables(fetch, &mut body, false);
        body.extend_from_slice(b"}}");

        match self.send(fetch, body, trace).await {
            Ok(fetched) => {
                // Sole owner of the parsed response: entities can be moved into the objects.
                // Shared with collapsed requests: they are copied (as they are for an entity
                // that several objects need), unless rewrites need a private copy anyway.
                let (errors, mut entities, shared) = match Arc::try_unwrap(fetched) {
                    Ok(Fetched { response, .. }) => {
                        (response.errors, entities_of(response.data), None)
                    }
                    Err(shared) if fetch.output_rewrites.is_empty() => {
                        (shared.response.errors.clone(), Vec::new(), Some(shared))
                    }
                    Err(shared) => (
                        shared.response.errors.clone(),
                        entities_of(shared.response.data.clone()),
                        None,
                    ),
                };
                let mut root = self.data.lock().expect("data lock poisoned");
                if let Some(errors) = errors {
                    let paths: Vec<Vec<PathSegment>> = targets
                        .iter()
                        .map(|t| {
                            merge::client_path(
                                &root,
                                &paths[t.path],
                                &index_buffer[t.indexes.clone()],
                            )
                        })
                        .collect();
                    let mut all = self.errors.lock().expect("errors lock poisoned");
                    for error in errors {
                        all.extend(merge::entity_errors(
                            error,
                            &fetch.service_name,
                            &targets,
                            &paths,
                        ));
                    }
                }
                // Rewrites depend only on the entity, so each is rewritten once, before it is
                // shared out.
                if !fetch.output_rewrites.is_empty() {
                    for entity in entities.iter_mut().filter(|e| e.is_object()) {
                        for rewrite in &fetch.output_rewrites {
                            merge::apply_rewrite(entity, rewrite, schema);
                        }
                    }
                }
                let shared_entities: &[Data] = shared
                    .as_ref()
                    .and_then(|s| s.response.data.as_ref())
                    .and_then(|data| match data.get("_entities") {
                        Some(Data::Array(entities)) => Some(&entities[..]),
                        _ => None,
                    })
                    .unwrap_or_default();
                let mut uses = vec![0usize; entities.len()];
                for target in &targets {
                    if let Some(n) = uses.get_mut(target.representation) {
                        *n += 1;
                    }
                }
                // Targets were found path by path, each path's in walk order.
                for (path_index, path) in paths.iter().enumerate() {
                    let located: Vec<(usize, &[u32])> = targets
                        .iter()
                        .filter(|t| t.path == path_index)
                        .map(|t| (t.representation, &index_buffer[t.indexes.clone()]))
                        .collect();
                    merge::for_each_target_mut(
                        &mut root,
                        path,
                        &located,
                        &mut |representation, object| {
                            if shared.is_some() {
                                if let Some(entity @ Data::Object(_)) =
                                    shared_entities.get(representation)
                                {
                                    merge::deep_merge_ref(object, entity);
                                }
                                return;
                            }
                            let Some(slot) = entities.get_mut(representation) else {
                                return;
                            };
                            if !slot.is_object() {
                                return;
                            }
                            let remaining = &mut uses[representation];
                            *remaining -= 1;
                            // The last object that needs an entity takes it; earlier ones copy from it.
                            if *remaining == 0 {
                                merge::deep_merge(object, std::mem::take(slot));
                            } else {
                                merge::deep_merge_ref(object, slot);
                            }
                        },
                    );
                }
            }
            Err(reason) => {
                let root = self.data.lock().expect("data lock poisoned");
                let mut all = self.errors.lock().expect("errors lock poisoned");
                for target in &targets {
                    let indexes = &index_buffer[target.indexes.clone()];
                    all.push(
                        Self::fetch_failed(fetch, &reason).with_path(merge::client_path(
                            &root,
                            &paths[target.path],
                            indexes,
                        )),
                    );
                }
            }
        }
    }
}

/// The `_entities` list of an entity fetch's `data`, or nothing.
fn entities_of(data: Option<Data>) -> Vec<Data> {
    match data {
        Some(Data::Object(mut data)) => match data.shift_remove("_entities") {
            Some(Data::Array(entities)) => entities,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

// ---- Subscription hook (used by `crate::subscription`; kept apart from the hot path) ----

impl Executor {
    /// Like [`Executor::execute`], but the run starts from a subgraph's root response instead of
    /// an empty object: `(data, errors)` are one subscription event from `service`, and
    /// `operation`'s plan holds only the fetches that follow the root fetch (entity fetches).
    /// Their spans hang under `trace` (the event's span) when there is one.
    pub(crate) async fn execute_seeded(
        &self,
        operation: &BoundPlan,
        variables: &Map<String, Value>,
        headers: &[Vec<(HeaderName, HeaderValue)>],
        service: &str,
        (data, errors): (Option<Value>, Vec<Value>),
        trace: Option<TraceContext>,
    ) -> Vec<u8> {
        let mut root = Data::Object(DataMap::new());
        if let Some(data @ Value::Object(_)) = data {
            merge::deep_merge(&mut root, Data::from(data));
        }
        let errors = errors
            .into_iter()
            .map(|error| merge::subgraph_error(error, service))
            .collect();
        let run = Run {
            executor: self,
            data: Mutex::new(root),
            errors: Mutex::new(errors),
            variables,
            headers: Forwarded::PerGroup(headers),
            bytes_in: AtomicUsize::new(0),
            response_headers: Mutex::new(ResponseHeaders::default()),
        };
        if let Some(node) = &operation.exec {
            run.node(node, &[], trace).await;
        }
        let data = run.data.into_inner().expect("data lock poisoned");
        let errors = run.errors.into_inner().expect("errors lock poisoned");
        write_response(&self.schema, operation, variables, &data, errors, 1024)
    }
}
