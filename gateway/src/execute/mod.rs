//! QueryPlan + variables -> response: runs fetches (in parallel and in sequence), batches and
//! de-duplicates entity representations, merges subgraph data, then shapes the client response
//! (field order, `@skip`/`@include`, type conditions, null propagation) and re-paths errors.

mod batch;
mod breaker;
pub(crate) mod data;
mod fetch;
pub(crate) mod json;
mod memo;
mod merge;
mod shape;
pub(crate) mod transport;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use apollo_compiler::executable::Operation;
use apollo_compiler::validation::Valid;
use apollo_compiler::{ExecutableDocument, Node, Schema};
use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
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
use data::{Map as DataMap, NodeRef, Value as Data};
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
    /// Treat every subgraph response as shared with another request, as a de-duplicated fetch
    /// is, so the path that reads shared responses in place runs on every fetch. For tests
    /// (the federation suite runs each case both ways); it only costs speed.
    #[doc(hidden)]
    pub share_every_response: bool,
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
            share_every_response: false,
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
    share_every_response: bool,
    /// Counts results reused (`memo.rs`): representations, responses.
    reused: (
        switchyard_telemetry::prometheus::IntCounter,
        switchyard_telemetry::prometheus::IntCounter,
    ),
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
    /// Combined documents of the entity fetches this plan has sent together.
    batches: batch::Batches,
    /// Size of the last response written for this plan, to size the next one's buffer in one
    /// allocation (responses to one operation tend to be alike in size).
    response_size: AtomicUsize,
    /// The key under which its client responses are kept for reuse (`memo.rs`).
    node: u64,
}

/// A client response as written, with what else it was derived from.
struct WrittenResponse {
    /// The request's variables (`@skip`/`@include` and introspection arguments shape it).
    variables: Map<String, Value>,
    body: bytes::Bytes,
    errors: usize,
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

    /// The validated client document, for binding another plan of the same operation.
    pub(crate) fn shared_document(&self) -> &Arc<Valid<ExecutableDocument>> {
        &self.document
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
    /// `requires`, prepared for writing representations.
    representation: Option<merge::RepresentationPlan>,
    input_rewrites: Vec<ValueRewrite>,
    output_rewrites: Vec<ValueRewrite>,
    collapsible: bool,
    /// Response keys of the root fields a root fetch provides, for error paths when it fails.
    root_keys: Vec<String>,
    /// Position in the plan (depth first). A response lists errors in this order, not in the
    /// order fetches happened to complete, so the same failure reads the same every time.
    order: u32,
    /// The operation text, for the combined document when the fetch is batched (`batch.rs`).
    operation: Box<str>,
    /// The key under which the objects it is prepared for are kept for reuse (`memo.rs`).
    node: u64,
    /// Whether equal objects this entity fetch resolves may become one node (`data::NodeRef`):
    /// their representations are their own fields (no input rewrites), and no fetch of the
    /// plan picks objects by the type of an object above them ([`filters_ancestors`]), which
    /// could write to some places holding a node and not to others.
    may_share: bool,
}

/// Whether a fetch of the plan at `node` picks the objects it writes by the type of an object
/// above them (a type condition followed by a key on its path, as for a field under
/// `... on Book` of a list of an interface): equal objects under parents of different types
/// must then stay apart.
fn filters_ancestors(node: &PlanNode) -> bool {
    let filters = |path: &Vec<PathElement>| {
        path.iter()
            .skip_while(|e| !matches!(e, PathElement::TypeCondition(_)))
            .any(|e| matches!(e, PathElement::Key(_)))
    };
    match node {
        PlanNode::Sequence { nodes } | PlanNode::Parallel { nodes } => {
            nodes.iter().any(filters_ancestors)
        }
        PlanNode::Fetch(_) => false,
        PlanNode::Flatten(flatten) => {
            std::iter::once(&flatten.path)
                .chain(&flatten.other_paths)
                .any(filters)
                || filters_ancestors(&flatten.node)
        }
        PlanNode::Condition(condition) => condition
            .if_clause
            .iter()
            .chain(&condition.else_clause)
            .any(|n| filters_ancestors(n)),
    }
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
            share_every_response: options.share_every_response,
            reused: (
                families.reused_representations.clone(),
                families.reused_responses.clone(),
            ),
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
            exec: plan
                .node
                .as_ref()
                .map(|node| self.prepare_node(node, &mut 0, !filters_ancestors(node))),
            document,
            operation,
            has_introspection,
            batches: batch::Batches::default(),
            response_size: AtomicUsize::new(0),
            node: memo::node_id(),
        }
    }

    /// `order` numbers the fetches in plan order; `share` is whether entity fetches may make
    /// equal objects one node ([`PreparedFetch::may_share`]).
    fn prepare_node(&self, node: &PlanNode, order: &mut u32, share: bool) -> ExecNode {
        match node {
            PlanNode::Sequence { nodes } => ExecNode::Sequence(
                nodes
                    .iter()
                    .map(|n| self.prepare_node(n, order, share))
                    .collect(),
            ),
            PlanNode::Parallel { nodes } => ExecNode::Parallel(
                nodes
                    .iter()
                    .map(|n| self.prepare_node(n, order, share))
                    .collect(),
            ),
            PlanNode::Fetch(fetch) => {
                *order += 1;
                ExecNode::Fetch(Box::new(self.prepare_fetch(fetch, *order, share)))
            }
            PlanNode::Flatten(flatten) => ExecNode::Flatten {
                paths: std::iter::once(&flatten.path)
                    .chain(&flatten.other_paths)
                    .cloned()
                    .collect(),
                node: Box::new(self.prepare_node(&flatten.node, order, share)),
            },
            PlanNode::Condition(cond) => ExecNode::Condition {
                variable: cond.condition.clone(),
                if_clause: cond
                    .if_clause
                    .as_ref()
                    .map(|n| Box::new(self.prepare_node(n, order, share))),
                else_clause: cond
                    .else_clause
                    .as_ref()
                    .map(|n| Box::new(self.prepare_node(n, order, share))),
            },
        }
    }

    fn prepare_fetch(&self, fetch: &FetchNode, order: u32, share: bool) -> PreparedFetch {
        PreparedFetch {
            may_share: share && fetch.input_rewrites.is_empty(),
            service: self.by_name.get(&fetch.service_name).copied(),
            service_name: Arc::from(fetch.service_name.as_str()),
            body_prefix: body_prefix(&fetch.operation, fetch.operation_name.as_deref()),
            variable_usages: fetch.variable_usages.clone(),
            requires: fetch.requires.clone(),
            representation: fetch
                .requires
                .as_deref()
                .map(merge::RepresentationPlan::new),
            input_rewrites: fetch.input_rewrites.clone(),
            output_rewrites: fetch.output_rewrites.clone(),
            collapsible: self.dedupe && fetch.operation_kind == OperationKind::Query,
            root_keys: fetch.root_keys.clone(),
            order,
            operation: fetch.operation.as_str().into(),
            node: memo::node_id(),
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
            .into()
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
    ) -> (bytes::Bytes, usize, http::HeaderMap) {
        let mut run = Run::new(
            self,
            &operation.batches,
            variables,
            headers,
            trace,
            Data::Object(DataMap::new()),
            Vec::new(),
        );
        if let Some(node) = &operation.exec {
            run.run(node).await;
        }
        // A request that merged the same responses with the same variables wrote this response.
        let reuse = run.reusable();
        let mut check = None;
        if reuse {
            if let Some(kept) = run
                .history
                .get::<WrittenResponse>(operation.node, |kept| kept.variables == *variables)
            {
                self.reused.1.inc();
                if !self.share_every_response {
                    let headers = run.response_headers.finish();
                    return (kept.body.clone(), kept.errors, headers);
                }
                // Tests: write it afresh and compare.
                check = Some(kept);
            }
        }
        run.flush();
        let mut errors = run.errors_in_plan_order();
        let Run {
            mut data,
            bytes_in,
            response_headers,
            history,
            ..
        } = run;
        let response_headers = response_headers.finish();
        if operation.has_introspection {
            self.resolve_introspection(operation, variables, &mut data, &mut errors);
        }
        // Size the buffer once: like the last response to this operation, or (the first time)
        // like what the subgraphs sent.
        let last = operation.response_size.load(Ordering::Relaxed);
        let capacity = last.max(bytes_in).clamp(1024, 8 << 20);
        let error_count = errors.len();
        let response = write_response(&self.schema, operation, variables, &data, errors, capacity);
        operation
            .response_size
            .store(response.len() + response.len() / 8, Ordering::Relaxed);
        let response = bytes::Bytes::from(response);
        if let Some(kept) = check {
            assert!(
                kept.body == response && kept.errors == error_count,
                "a reused response differs from a fresh one"
            );
        }
        if reuse {
            history.put(
                operation.node,
                Arc::new(WrittenResponse {
                    variables: variables.clone(),
                    body: response.clone(),
                    errors: error_count,
                }),
            );
        }
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

/// An address as a key for a [`PassThroughHash`] map: murmur3's finaliser, a bijection (so
/// distinct addresses stay distinct keys) that spreads the aligned low bits and the constant
/// high bits of an address over the whole word.
pub(crate) fn address_key(address: usize) -> u64 {
    let mut key = address as u64;
    key ^= key >> 33;
    key = key.wrapping_mul(0xff51_afd7_ed55_8ccd);
    key ^= key >> 33;
    key = key.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    key ^ (key >> 33)
}

/// A `BuildHasher` for keys that are already hashes.
#[derive(Default, Clone, Copy)]
pub(crate) struct PassThroughHash;

impl std::hash::BuildHasher for PassThroughHash {
    type Hasher = PassThroughHasher;
    fn build_hasher(&self) -> PassThroughHasher {
        PassThroughHasher(0)
    }
}

/// Returns the `u64` it was given.
#[derive(Default)]
pub(crate) struct PassThroughHasher(u64);

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

/// `{"query":"...","operationName":"...","variables":` — what every request for `operation`
/// starts with.
pub(crate) fn body_prefix(operation: &str, name: Option<&str>) -> Vec<u8> {
    let mut prefix = Vec::with_capacity(operation.len() + 64);
    prefix.extend_from_slice(b"{\"query\":");
    write_json(&mut prefix, operation);
    if let Some(name) = name {
        prefix.extend_from_slice(b",\"operationName\":");
        write_json(&mut prefix, name);
    }
    prefix.extend_from_slice(b",\"variables\":");
    prefix
}

fn write_json(out: &mut Vec<u8>, value: &(impl serde::Serialize + ?Sized)) {
    serde_json::to_writer(out, value).expect("serializing to a Vec cannot fail");
}

/// The state of one plan run, owned by the one task that runs it: merged data, errors and
/// passed-back headers so far, and where in the plan it is. A fetch is prepared from `&self.data`
/// (representations, variables), sent without borrowing anything of the run, and merged into
/// `&mut self.data` once it has completed (when collapsing is on, only when something next reads
/// the data: `memo.rs`), so nothing here is shared and nothing needs a lock.
struct Run<'a> {
    executor: &'a Executor,
    /// The bound plan's combined batch documents.
    batches: &'a batch::Batches,
    variables: &'a Map<String, Value>,
    headers: Forwarded<'a>,
    /// The span the plan's root node hangs under (the request's), if traced.
    trace: Option<TraceContext>,
    data: Data,
    errors: Vec<GraphQLError>,
    /// Where each merged fetch's errors start in `errors`, with the fetch's plan order; each
    /// fetch appends its errors in one block when it completes.
    error_blocks: Vec<(u32, usize)>,
    /// Total size of the subgraph response bodies, to size the client response buffer.
    bytes_in: usize,
    /// Subgraph response headers passed back to the client.
    response_headers: ResponseHeaders,
    /// The Sequence, Parallel, Flatten and Condition nodes started so far, by index; a
    /// finished one stays (its span ended) so that indexes stay valid for the whole run.
    frames: Vec<Frame<'a>>,
    /// What to do before waiting for the next fetch to complete. A queue, not recursion, so a
    /// long Sequence of nodes that finish at once (entity fetches with no object to send) does
    /// not nest a call per node; first in first out, so a Parallel's fetches go out in plan order.
    steps: VecDeque<Step<'a>>,
    /// Fetches prepared and not sent yet.
    outgoing: Vec<Outgoing<'a>>,
    /// The responses `data` is built from, with those still waiting in `unmerged`, in order.
    history: memo::History,
    /// Completed fetches not merged yet: merging waits until something reads `data`, which a
    /// request that reuses every derivation never does (`memo.rs`). Merged in this order.
    unmerged: Vec<Unmerged<'a>>,
    /// Whether work derived from shared responses may be reused: collapsing is on, `data` did
    /// not start from a seed, and no fetch has failed (a failure is not in the history).
    reuse: bool,
}

/// A completed fetch whose merge is deferred.
struct Unmerged<'a> {
    fetch: &'a PreparedFetch,
    log_span: tracing::Span,
    entities: Option<EntityRequest<'a>>,
    fetched: Arc<Fetched>,
}

/// A plan node that waits for its children.
struct Frame<'a> {
    /// Ended when the node finishes.
    span: Span,
    /// The frame of the enclosing node; `None` at the plan's root.
    parent: Option<usize>,
    kind: FrameKind<'a>,
}

enum FrameKind<'a> {
    /// The children not started yet, in order, and the paths they run under.
    Sequence {
        rest: std::slice::Iter<'a, ExecNode>,
        paths: &'a [Vec<PathElement>],
    },
    /// How many children have not finished.
    Parallel { pending: usize },
    /// Flatten and Condition: one child, whose end is this node's end.
    Single,
}

/// One step of the plan walk.
enum Step<'a> {
    /// Start `node`, a child of frame `parent`.
    Start {
        node: &'a ExecNode,
        paths: &'a [Vec<PathElement>],
        parent: Option<usize>,
    },
    /// A child of this frame finished (`None`: the plan's root did).
    Finished(Option<usize>),
}

/// A fetch prepared from the merged data: the request body and what merging needs.
struct Outgoing<'a> {
    body: Vec<u8>,
    pending: Pending<'a>,
    /// The other members of a batch sent in this one request (`pending` is the first).
    batched: Vec<Pending<'a>>,
}

/// What merging a sent fetch's result needs; travels with the request and comes back with the
/// response.
struct Pending<'a> {
    fetch: &'a PreparedFetch,
    parent: Option<usize>,
    /// The `Fetch` node's span, ended once the result is merged.
    span: Span,
    log_span: tracing::Span,
    /// For an entity fetch: the objects its representations were built from.
    entities: Option<EntityRequest<'a>>,
}

/// The objects an entity fetch was sent for: the Flatten node's paths and, per object, which
/// representation it sent and where the object is.
struct EntityRequest<'a> {
    paths: &'a [Vec<PathElement>],
    /// Where the representation list (`[...]`) is in the request body.
    representations: std::ops::Range<usize>,
    located: Arc<Located>,
}

/// What an entity fetch sends and for which objects, as found in the merged data.
#[derive(Debug, PartialEq)]
struct Located {
    /// The representation list, `[...]`, each distinct representation once.
    representations: Vec<u8>,
    targets: Vec<EntityTarget>,
    /// The list indexes of every target, each target holding a range of it.
    index_buffer: Vec<u32>,
}

/// One object an entity fetch resolves: which representation it sent, which of the `Flatten`
/// node's paths it was found at, and the list indexes (a range of a shared buffer) that lead to
/// it along that path.
#[derive(Debug, PartialEq)]
struct EntityTarget {
    representation: usize,
    path: usize,
    indexes: std::ops::Range<usize>,
    /// No other place leads to the object (it was not found through a node) and its
    /// representation is the object's own fields (no input rewrites): when the entity comes
    /// back, equal places like it can become one node ([`Run::merge_entities`]).
    shareable: bool,
    /// Found through a node: another target of the fetch may be the same object, reached
    /// through another place holding the node, and its entity is then merged once.
    through_node: bool,
}

/// Reorders `errors` so that the blocks starting at `blocks` (`(plan order, start)`, in the
/// order they were appended, each running to the next one's start) come in plan order, keeping
/// the order within each block and everything before the first block in place.
fn in_plan_order<E>(mut errors: Vec<E>, blocks: &[(u32, usize)]) -> Vec<E> {
    if blocks.windows(2).all(|w| w[0].0 <= w[1].0) {
        return errors;
    }
    let first = blocks[0].1;
    let mut ranges: Vec<(u32, std::ops::Range<usize>)> = blocks
        .iter()
        .enumerate()
        .map(|(i, &(order, start))| {
            let end = blocks.get(i + 1).map_or(errors.len(), |next| next.1);
            (order, start - first..end - first)
        })
        .collect();
    ranges.sort_by_key(|(order, _)| *order);
    let mut tail: Vec<Option<E>> = errors.drain(first..).map(Some).collect();
    for (_, range) in ranges {
        errors.extend(tail[range].iter_mut().filter_map(Option::take));
    }
    errors
}

/// Sends one prepared fetch. The future owns what merging needs and hands it back with the
/// result, so in-flight fetches hold no borrow of the run's data.
async fn send<'a>(
    executor: &'a Executor,
    headers: Forwarded<'a>,
    outgoing: Outgoing<'a>,
) -> (
    Pending<'a>,
    Vec<Pending<'a>>,
    Result<Arc<Fetched>, FetchError>,
) {
    let Outgoing {
        body,
        pending,
        batched,
    } = outgoing;
    let result = executor
        .send(pending.fetch, body, headers, pending.span.context())
        .instrument(pending.log_span.clone())
        .await;
    (pending, batched, result)
}

impl<'a> Run<'a> {
    fn new(
        executor: &'a Executor,
        batches: &'a batch::Batches,
        variables: &'a Map<String, Value>,
        headers: Forwarded<'a>,
        trace: Option<TraceContext>,
        data: Data,
        errors: Vec<GraphQLError>,
    ) -> Self {
        Run {
            executor,
            batches,
            variables,
            headers,
            trace,
            data,
            errors,
            error_blocks: Vec::new(),
            bytes_in: 0,
            response_headers: ResponseHeaders::default(),
            frames: Vec::new(),
            steps: VecDeque::new(),
            outgoing: Vec::new(),
            history: memo::History::default(),
            unmerged: Vec::new(),
            reuse: executor.dedupe,
        }
    }

    /// Takes the errors so far, each fetch's block of them in plan order (errors from before
    /// the run, such as a subscription event's own, first).
    fn errors_in_plan_order(&mut self) -> Vec<GraphQLError> {
        in_plan_order(
            std::mem::take(&mut self.errors),
            &std::mem::take(&mut self.error_blocks),
        )
    }

    /// Runs the plan from `root` to its end: starts every fetch that is ready, waits for any one
    /// to complete, merges it, starts what that unblocks (the next node of a Sequence, ...), and
    /// so on. Siblings of a Parallel are in flight together, and a Sequence moves on as soon as
    /// its own step is merged, whatever other branches are doing.
    async fn run(&mut self, root: &'a ExecNode) {
        let (executor, headers) = (self.executor, self.headers);
        let mut inflight = FuturesUnordered::new();
        self.steps.push_back(Step::Start {
            node: root,
            paths: &[],
            parent: None,
        });
        loop {
            self.take_steps();
            self.join_batches();
            for outgoing in self.outgoing.drain(..) {
                inflight.push(send(executor, headers, outgoing));
            }
            let Some((pending, batched, result)) = inflight.next().await else {
                break;
            };
            if batched.is_empty() {
                self.complete(pending, result, None);
            } else {
                self.complete_batch(pending, batched, result);
            }
        }
    }

    fn take_steps(&mut self) {
        while let Some(step) = self.steps.pop_front() {
            match step {
                Step::Start {
                    node,
                    paths,
                    parent,
                } => self.start(node, paths, parent),
                Step::Finished(frame) => self.child_finished(frame),
            }
        }
    }

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

    /// The trace context children of frame `parent` hang under.
    fn context(&self, parent: Option<usize>) -> Option<TraceContext> {
        match parent {
            Some(index) => self.frames[index].span.context(),
            None => self.trace,
        }
    }

    fn open(&mut self, parent: Option<usize>, name: &'static str, kind: FrameKind<'a>) -> usize {
        let span = self.node_span(self.context(parent), name);
        self.frames.push(Frame { span, parent, kind });
        self.frames.len() - 1
    }

    /// Ends frame `index` and tells its parent.
    fn close(&mut self, index: usize) {
        let frame = &mut self.frames[index];
        std::mem::replace(&mut frame.span, Span::none()).end();
        self.steps.push_back(Step::Finished(frame.parent));
    }

    fn start(&mut self, node: &'a ExecNode, paths: &'a [Vec<PathElement>], parent: Option<usize>) {
        match node {
            ExecNode::Sequence(nodes) => {
                let kind = FrameKind::Sequence {
                    rest: nodes.iter(),
                    paths,
                };
                let frame = self.open(parent, "Sequence", kind);
                self.child_finished(Some(frame));
            }
            ExecNode::Parallel(nodes) => {
                let kind = FrameKind::Parallel {
                    pending: nodes.len(),
                };
                let frame = self.open(parent, "Parallel", kind);
                if nodes.is_empty() {
                    self.close(frame);
                }
                for node in nodes {
                    self.steps.push_back(Step::Start {
                        node,
                        paths,
                        parent: Some(frame),
                    });
                }
            }
            ExecNode::Fetch(fetch) => self.start_fetch(fetch, paths, parent),
            ExecNode::Flatten { paths, node } => {
                let frame = self.open(parent, "Flatten", FrameKind::Single);
                self.steps.push_back(Step::Start {
                    node,
                    paths,
                    parent: Some(frame),
                });
            }
            ExecNode::Condition {
                variable,
                if_clause,
                else_clause,
            } => {
                let on = self
                    .variables
                    .get(variable)
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                let branch = if on { if_clause } else { else_clause };
                let frame = self.open(parent, "Condition", FrameKind::Single);
                match branch {
                    Some(node) => self.steps.push_back(Step::Start {
                        node,
                        paths,
                        parent: Some(frame),
                    }),
                    None => self.close(frame),
                }
            }
        }
    }

    /// A child of frame `index` (`None`: the root) finished: start a Sequence's next child, or
    /// end the frame once nothing of it is left.
    fn child_finished(&mut self, index: Option<usize>) {
        let Some(index) = index else {
            return;
        };
        match &mut self.frames[index].kind {
            FrameKind::Sequence { rest, paths } => match rest.next() {
                Some(node) => {
                    let paths = *paths;
                    self.steps.push_back(Step::Start {
                        node,
                        paths,
                        parent: Some(index),
                    });
                }
                None => self.close(index),
            },
            FrameKind::Parallel { pending } => {
                *pending = pending.saturating_sub(1);
                if *pending == 0 {
                    self.close(index);
                }
            }
            FrameKind::Single => self.close(index),
        }
    }

    /// Prepares a fetch from the merged data and queues it to be sent; a fetch with no object
    /// to send finishes at once.
    fn start_fetch(
        &mut self,
        fetch: &'a PreparedFetch,
        paths: &'a [Vec<PathElement>],
        parent: Option<usize>,
    ) {
        let mut span = self.node_span(self.context(parent), "Fetch");
        if span.is_recording() {
            span.set_attribute("subgraph.name", fetch.service_name.as_ref().to_owned());
        }
        let log_span = tracing::info_span!("fetch", service = &*fetch.service_name);
        let prepared = log_span.in_scope(|| {
            if fetch.requires.is_some() {
                self.entity_request(fetch, paths)
                    .map(|(body, entities)| (body, Some(entities)))
            } else {
                Some((self.root_request(fetch), None))
            }
        });
        match prepared {
            Some((body, entities)) => self.outgoing.push(Outgoing {
                body,
                batched: Vec::new(),
                pending: Pending {
                    fetch,
                    parent,
                    span,
                    log_span,
                    entities,
                },
            }),
            None => {
                span.end();
                self.steps.push_back(Step::Finished(parent));
            }
        }
    }

    /// Sends the entity fetches to one subgraph that are ready in this step as one request (at
    /// most `MAX_BATCH` together); a fetch with no object to send has already finished and is
    /// not among them.
    fn join_batches(&mut self) {
        // An entity fetch with objects to send, to a known subgraph: its subgraph.
        // Most steps send to different subgraphs: find that out without allocating.
        let batchable = |o: &Outgoing<'a>| o.pending.entities.as_ref().and(o.pending.fetch.service);
        let any_pair = self.outgoing.iter().enumerate().any(|(i, a)| {
            batchable(a).is_some_and(|s| {
                self.outgoing[i + 1..]
                    .iter()
                    .any(|b| batchable(b) == Some(s))
            })
        });
        if !any_pair {
            return;
        }
        // Per subgraph, its outgoing entity fetches.
        let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
        for (index, outgoing) in self.outgoing.iter().enumerate() {
            let Some(service) = batchable(outgoing) else {
                continue;
            };
            match groups.iter_mut().find(|(s, _)| *s == service) {
                Some((_, members)) => members.push(index),
                None => groups.push((service, vec![index])),
            }
        }
        groups.retain(|(_, members)| members.len() > 1);
        if groups.is_empty() {
            return;
        }
        let mut slots: Vec<Option<Outgoing<'a>>> = self.outgoing.drain(..).map(Some).collect();
        for (_, mut members) in groups {
            // In plan order, so that one set of fetches is one key whatever order they started in.
            members.sort_by_key(|&i| slots[i].as_ref().map_or(0, |o| o.pending.fetch.order));
            for chunk in members.chunks(batch::MAX_BATCH).filter(|c| c.len() > 1) {
                let parts: Vec<Outgoing<'a>> =
                    chunk.iter().filter_map(|&i| slots[i].take()).collect();
                let keys: Vec<(u32, &str, &[String])> = parts
                    .iter()
                    .map(|o| {
                        let fetch = o.pending.fetch;
                        (fetch.order, &*fetch.operation, &fetch.variable_usages[..])
                    })
                    .collect();
                let slot = chunk.iter().copied().min().unwrap_or(0);
                let Some(spec) = self.batches.spec(&keys) else {
                    // Not of the planner's form: each goes alone.
                    for (&i, part) in chunk.iter().zip(parts) {
                        slots[i] = Some(part);
                    }
                    continue;
                };
                slots[slot] = Some(self.combined(&spec, parts));
            }
        }
        self.outgoing = slots.into_iter().flatten().collect();
    }

    /// One request for the entity fetches `parts` (at least one), with the combined document.
    fn combined(&self, spec: &batch::BatchSpec, parts: Vec<Outgoing<'a>>) -> Outgoing<'a> {
        let mut body = Vec::with_capacity(
            spec.body_prefix.len() + parts.iter().map(|p| p.body.len()).sum::<usize>(),
        );
        body.extend_from_slice(&spec.body_prefix);
        body.push(b'{');
        for (part, variable) in parts.iter().zip(&spec.representation_variables) {
            if let Some(entities) = &part.pending.entities {
                if body.len() > spec.body_prefix.len() + 1 {
                    body.push(b',');
                }
                write_json(&mut body, variable);
                body.push(b':');
                body.extend_from_slice(&part.body[entities.representations.clone()]);
            }
        }
        self.write_variables(&spec.variable_usages, &mut body, false);
        body.extend_from_slice(b"}}");
        let mut members = parts.into_iter().map(|o| o.pending);
        let first = members.next().expect("a batch has members");
        Outgoing {
            body,
            pending: first,
            batched: members.collect(),
        }
    }

    /// Merges the response of a batch: each member's share as if it had come alone.
    fn complete_batch(
        &mut self,
        first: Pending<'a>,
        rest: Vec<Pending<'a>>,
        result: Result<Arc<Fetched>, FetchError>,
    ) {
        let count = rest.len() + 1;
        let members = std::iter::once(first).chain(rest);
        match result {
            Ok(fetched) => {
                // Each request splits its own shares, so a share is no response another request
                // has: the history names the batch's response instead (a member's share is a
                // function of it and the member's plan position). Kept only when shared, since
                // holding it makes the split copy what it could have moved.
                let origin = (self.reuse && fetched.waiters > 1).then(|| Arc::clone(&fetched));
                let shares = batch::split(fetched, count);
                for (pending, share) in members.zip(shares) {
                    self.complete(pending, Ok(share), origin.as_ref());
                }
            }
            Err(reason) => {
                for pending in members {
                    self.complete(pending, Err(reason.clone()), None);
                }
            }
        }
    }

    /// Takes a completed fetch's result (merged now, or recorded and merged when the data is
    /// next read: `memo.rs`) and tells its parent.
    /// `origin`: the batch response this result is a member's share of.
    fn complete(
        &mut self,
        pending: Pending<'a>,
        result: Result<Arc<Fetched>, FetchError>,
        origin: Option<&Arc<Fetched>>,
    ) {
        let Pending {
            fetch,
            parent,
            span,
            log_span,
            entities,
        } = pending;
        if let Some(service) = fetch.service {
            let rules = self.executor.client.response_rules(service);
            if !rules.is_empty() {
                let captured = result.as_ref().ok().map(|f| f.headers.as_slice());
                self.response_headers.add(rules, captured);
            }
        }
        if let Ok(fetched) = &result {
            self.bytes_in += fetched.bytes;
        }
        match result {
            Ok(fetched) if self.reuse => {
                self.history.push(fetch.order, origin.unwrap_or(&fetched));
                self.unmerged.push(Unmerged {
                    fetch,
                    log_span,
                    entities,
                    fetched,
                });
            }
            result => {
                self.reuse = false;
                self.flush();
                self.merge(fetch, &log_span, entities, result);
            }
        }
        span.end();
        self.steps.push_back(Step::Finished(parent));
    }

    /// Merges one fetch's result into `data`, its errors into `errors` as one block.
    fn merge(
        &mut self,
        fetch: &PreparedFetch,
        log_span: &tracing::Span,
        entities: Option<EntityRequest<'a>>,
        result: Result<Arc<Fetched>, FetchError>,
    ) {
        let first_error = self.errors.len();
        let second_holder = match &result {
            Ok(fetched) if self.executor.share_every_response => Some(Arc::clone(fetched)),
            _ => None,
        };
        log_span.in_scope(|| match entities {
            Some(entities) => self.merge_entities(fetch, entities, result),
            None => self.merge_root(fetch, result),
        });
        drop(second_holder);
        if self.errors.len() > first_error {
            self.error_blocks.push((fetch.order, first_error));
        }
    }

    /// Whether results derived from this request's data may be looked up and kept: reuse is
    /// still on and another request can have merged the same responses (`memo.rs`).
    fn reusable(&self) -> bool {
        self.reuse && self.history.shareable()
    }

    /// Merges the completed fetches that wait, in the order they completed.
    fn flush(&mut self) {
        for waiting in std::mem::take(&mut self.unmerged) {
            let Unmerged {
                fetch,
                log_span,
                entities,
                fetched,
            } = waiting;
            self.merge(fetch, &log_span, entities, Ok(fetched));
        }
    }

    fn write_variables(&self, usages: &[String], body: &mut Vec<u8>, mut first: bool) {
        for name in usages {
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

    fn root_request(&self, fetch: &PreparedFetch) -> Vec<u8> {
        let mut body = Vec::with_capacity(fetch.body_prefix.len() + 64);
        body.extend_from_slice(&fetch.body_prefix);
        body.push(b'{');
        self.write_variables(&fetch.variable_usages, &mut body, true);
        body.extend_from_slice(b"}}");
        body
    }

    fn merge_root(&mut self, fetch: &PreparedFetch, result: Result<Arc<Fetched>, FetchError>) {
        match result {
            Ok(fetched) => {
                // Sole owner: move the values in. Shared with collapsed requests: refer to them.
                let (errors, owned, shared) = match Arc::try_unwrap(fetched) {
                    Ok(Fetched { response, .. }) => (response.errors, response.data, None),
                    Err(shared) => (shared.response.errors.clone(), None, Some(shared)),
                };
                if let Some(errors) = errors {
                    for error in errors {
                        self.errors
                            .push(merge::subgraph_error(error, &fetch.service_name));
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
                match (
                    owned,
                    shared
                        .as_ref()
                        .and_then(|s| Some((s, s.response.data.as_ref()?))),
                ) {
                    (Some(data @ Data::Object(_)), _) => merge::deep_merge(&mut self.data, data),
                    (None, Some((owner, data @ Data::Object(_)))) => {
                        // SAFETY: `data` is `owner.response.data`.
                        #[allow(unsafe_code, reason = "data is borrowed from owner")]
                        unsafe {
                            merge::deep_merge_shared(&mut self.data, data, owner)
                        }
                    }
                    _ => {}
                }
            }
            Err(reason) => {
                if fetch.root_keys.is_empty() {
                    self.errors.push(Self::fetch_failed(fetch, &reason));
                }
                for key in &fetch.root_keys {
                    self.errors.push(
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

    /// The body of an entity fetch for the objects at `paths` (each distinct representation
    /// once) and where each object is; `None` when no object needs it. What a request that
    /// merged the same responses found is taken as it is (`memo.rs`).
    fn entity_request(
        &mut self,
        fetch: &'a PreparedFetch,
        paths: &'a [Vec<PathElement>],
    ) -> Option<(Vec<u8>, EntityRequest<'a>)> {
        fetch.representation.as_ref()?;
        // A fetch sits at one place in its plan, so this is only a check.
        let at = paths.as_ptr() as usize;
        let reuse = self.reusable();
        let kept = match reuse {
            true => self
                .history
                .get::<(usize, Option<Arc<Located>>)>(fetch.node, |(kept_at, _)| *kept_at == at),
            false => None,
        };
        let located = match kept {
            Some(kept) => {
                self.executor.reused.0.inc();
                if self.executor.share_every_response {
                    // Tests: what is reused must be what this request would have found.
                    self.flush();
                    let fresh = self.locate(fetch, paths);
                    assert_eq!(fresh.as_ref(), kept.1.as_deref(), "reused objects differ");
                }
                kept.1.clone()
            }
            None => {
                self.flush();
                let located = self.locate(fetch, paths).map(Arc::new);
                if reuse {
                    self.history
                        .put(fetch.node, Arc::new((at, located.clone())));
                }
                located
            }
        }?;
        let mut body =
            Vec::with_capacity(fetch.body_prefix.len() + located.representations.len() + 64);
        body.extend_from_slice(&fetch.body_prefix);
        body.extend_from_slice(b"{\"representations\":");
        let start = body.len();
        body.extend_from_slice(&located.representations);
        let representations = start..body.len();
        self.write_variables(&fetch.variable_usages, &mut body, false);
        body.extend_from_slice(b"}}");
        Some((
            body,
            EntityRequest {
                paths,
                representations,
                located,
            },
        ))
    }

    /// The distinct representations of the objects at `paths` and where each object is, from
    /// the merged data; `None` when no object needs the fetch.
    fn locate(&self, fetch: &PreparedFetch, paths: &[Vec<PathElement>]) -> Option<Located> {
        let requires = fetch.requires.as_deref().unwrap_or_default();
        let plan = fetch.representation.as_ref()?;
        let schema: &Schema = &self.executor.schema;
        let mut targets = Vec::new();
        let mut index_buffer: Vec<u32> = Vec::new();
        let mut body = Vec::with_capacity(256);
        body.push(b'[');
        let mut count = 0usize;
        // Hash of representation bytes -> (index, its bytes' range in `body`). The keys are
        // already hashes, so the map passes them through instead of re-hashing with SipHash.
        let mut seen: HashMap<u64, (usize, std::ops::Range<usize>), PassThroughHash> =
            HashMap::default();
        let mut scratch = Vec::new();
        // Writes one object's representation; its index among the distinct ones, or `None`
        // when the object is not sent.
        let mut write_one = |object: &DataMap, scratch: &mut Vec<u8>| -> Option<usize> {
            scratch.clear();
            if fetch.input_rewrites.is_empty() {
                if !merge::write_representation(object, plan, schema, scratch) {
                    return None;
                }
            } else {
                let mut representation = merge::representation(object, requires, schema)?;
                for rewrite in &fetch.input_rewrites {
                    merge::apply_rewrite(&mut representation, rewrite, schema);
                }
                write_json(scratch, &representation);
            }
            let hash = fast_hash(scratch);
            let existing = seen
                .get(&hash)
                .filter(|(_, range)| body[range.clone()] == scratch[..])
                .map(|(index, _)| *index);
            Some(match existing {
                Some(index) => index,
                None => {
                    if count > 0 {
                        body.push(b',');
                    }
                    let start = body.len();
                    body.extend_from_slice(scratch);
                    // On a (vanishingly rare) hash collision the first entry keeps the slot;
                    // the newcomer is simply not de-duplicated.
                    seen.entry(hash).or_insert((count, start..body.len()));
                    count += 1;
                    count - 1
                }
            })
        };
        // An object reached through a node can be reached again through another alias of it:
        // its representation is written once, then found by the object's address.
        let mut by_address: HashMap<u64, Option<usize>, PassThroughHash> = HashMap::default();
        for (path_index, path) in paths.iter().enumerate() {
            merge::for_each_object(
                &self.data,
                path,
                schema,
                &mut Vec::new(),
                &mut |object, indexes, through_node| {
                    let address = address_key(object as *const DataMap as usize);
                    let known = match through_node {
                        true => by_address.get(&address).copied(),
                        false => None,
                    };
                    let index = match known {
                        Some(None) => return,
                        Some(Some(index)) => index,
                        None => {
                            let index = write_one(object, &mut scratch);
                            if through_node {
                                by_address.insert(address, index);
                            }
                            match index {
                                Some(index) => index,
                                None => return,
                            }
                        }
                    };
                    let shareable = !through_node && fetch.may_share;
                    let start = index_buffer.len();
                    index_buffer.extend_from_slice(indexes);
                    targets.push(EntityTarget {
                        representation: index,
                        path: path_index,
                        indexes: start..index_buffer.len(),
                        shareable,
                        through_node,
                    });
                },
            );
        }
        if count == 0 {
            return None;
        }
        body.push(b']');
        Some(Located {
            representations: body,
            targets,
            index_buffer,
        })
    }

    fn merge_entities(
        &mut self,
        fetch: &PreparedFetch,
        request: EntityRequest<'_>,
        result: Result<Arc<Fetched>, FetchError>,
    ) {
        let EntityRequest { paths, located, .. } = request;
        let targets: &[EntityTarget] = &located.targets;
        let index_buffer: &[u32] = &located.index_buffer;
        let schema: &Schema = &self.executor.schema;
        let plan = fetch.representation.as_ref();
        let root = &mut self.data;
        match result {
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
                let shared_entities: &[Data] = shared
                    .as_ref()
                    .and_then(|s| s.response.data.as_ref())
                    .and_then(|data| match data.get("_entities") {
                        Some(Data::Array(entities)) => Some(&entities[..]),
                        _ => None,
                    })
                    .unwrap_or_default();
                if let Some(errors) = errors {
                    let returned = if shared.is_some() {
                        shared_entities
                    } else {
                        &entities[..]
                    };
                    let paths: Vec<Vec<PathSegment>> = targets
                        .iter()
                        .map(|t| {
                            merge::client_path(
                                root,
                                &paths[t.path],
                                &index_buffer[t.indexes.clone()],
                            )
                        })
                        .collect();
                    for error in errors {
                        self.errors.extend(merge::entity_errors(
                            error,
                            &fetch.service_name,
                            targets,
                            &paths,
                            returned,
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
                let slots = entities.len().max(shared_entities.len());
                let mut uses = vec![0usize; slots];
                for target in targets {
                    if let Some(n) = uses.get_mut(target.representation) {
                        *n += 1;
                    }
                }
                // An entity that an object behind a node needs is never taken: how many of its
                // targets are that one object again is only known while merging, and a target
                // that counted on its own merge could otherwise find the slot emptied.
                for target in targets.iter().filter(|t| t.through_node) {
                    if let Some(n) = uses.get_mut(target.representation) {
                        *n = usize::MAX;
                    }
                }
                // A node already reached by this fetch through another alias has its entity.
                let mut merged_nodes: std::collections::HashSet<u64, PassThroughHash> =
                    std::collections::HashSet::default();
                // Targets were found path by path, each path's in walk order.
                for (path_index, path) in paths.iter().enumerate() {
                    let located: Vec<(usize, &[u32])> = targets
                        .iter()
                        .enumerate()
                        .filter(|(_, t)| t.path == path_index)
                        .map(|(i, t)| (i, &index_buffer[t.indexes.clone()]))
                        .collect();
                    // Places share a node only within one path: another path of the fetch is
                    // another place in the operation, which later fetches may treat apart.
                    let mut total = vec![0usize; slots];
                    for &(i, _) in &located {
                        if let Some(n) = total.get_mut(targets[i].representation) {
                            *n += 1;
                        }
                    }
                    // Per representation, the node its equal places share, made when the
                    // first of them gets its entity. Another place takes it instead of a merge
                    // of its own when its entries are the node's first ones, strictly equal
                    // (a merge since the fetch was located may have changed a place): its own
                    // merge of the same entity would then have made it equal to the node.
                    let mut nodes: Vec<Option<NodeRef>> = Vec::new();
                    nodes.resize_with(slots, || None);
                    // Objects behind a node merged on this path, by address: another place
                    // holding the node leads to the same object, which has its entity then.
                    // Within one path's walk an address names one object: targets of one path
                    // never lie inside one another (each is reached by all of the path's keys),
                    // and a merge writes only inside its own target, so no target moves or is
                    // freed while the walk goes on.
                    let mut merged_behind: std::collections::HashSet<u64, PassThroughHash> =
                        std::collections::HashSet::default();
                    merge::for_each_target_mut(root, path, &located, &mut |target, place| {
                        let target = &targets[target];
                        let representation = target.representation;
                        let object = match place {
                            Data::Node(node) => {
                                if !merged_nodes.insert(address_key(node.id())) {
                                    return;
                                }
                                // SAFETY: `place` is the walk's only borrow of the tree
                                // (`for_each_target_mut`), and merging reads only the response.
                                #[allow(unsafe_code, reason = "see NodeRef::get_mut")]
                                unsafe {
                                    node.get_mut()
                                }
                            }
                            place if target.through_node => {
                                let address = address_key(&*place as *const Data as usize);
                                if !merged_behind.insert(address) {
                                    return;
                                }
                                place
                            }
                            place => {
                                let share = target.shareable
                                    && total.get(representation).is_some_and(|&n| n > 1);
                                if share {
                                    if let (Some(Some(node)), Data::Object(object)) =
                                        (nodes.get(representation), &*place)
                                    {
                                        let prefix = node
                                            .get()
                                            .as_object()
                                            .is_some_and(|merged| object.scalar_prefix_of(merged));
                                        if prefix {
                                            *place = node.alias();
                                            return;
                                        }
                                    }
                                }
                                place
                            }
                        };
                        // The first place of a group that holds exactly its representation
                        // (so the group's equal representations mean equal objects) makes the
                        // node.
                        let make_node = match (&*object, target.shareable) {
                            (Data::Object(object), true) => {
                                total.get(representation).is_some_and(|&n| n > 1)
                                    && nodes.get(representation).is_some_and(|node| node.is_none())
                                    && plan.is_some_and(|plan| {
                                        merge::is_its_representation(object, plan, schema)
                                    })
                            }
                            _ => false,
                        };
                        if let Some(owner) = &shared {
                            if let Some(entity @ Data::Object(_)) =
                                shared_entities.get(representation)
                            {
                                // SAFETY: `shared_entities` is borrowed from
                                // `owner.response.data`.
                                #[allow(unsafe_code, reason = "entity is borrowed from owner")]
                                unsafe {
                                    merge::deep_merge_shared(object, entity, owner)
                                }
                            }
                        } else {
                            let Some(slot) = entities.get_mut(representation) else {
                                return;
                            };
                            if !slot.is_object() {
                                return;
                            }
                            let remaining = &mut uses[representation];
                            *remaining -= 1;
                            // The last object that needs an entity takes it; earlier ones copy
                            // from it.
                            if *remaining == 0 {
                                merge::deep_merge(object, std::mem::take(slot));
                            } else {
                                merge::deep_merge_ref(object, slot);
                            }
                        }
                        if make_node {
                            let node = NodeRef::new(std::mem::take(object));
                            *object = node.alias();
                            // Another path of this fetch can lead to the same place again.
                            merged_nodes.insert(address_key(node.id()));
                            nodes[representation] = Some(node);
                        }
                    });
                }
            }
            Err(reason) => {
                for target in targets {
                    let indexes = &index_buffer[target.indexes.clone()];
                    self.errors.push(
                        Self::fetch_failed(fetch, &reason).with_path(merge::client_path(
                            root,
                            &paths[target.path],
                            indexes,
                        )),
                    );
                }
            }
        }
    }
}

impl Executor {
    /// POSTs one fetch's `body` to its subgraph (or joins an identical request in flight),
    /// under a client span that is a child of `parent`, and records the subgraph's metrics.
    async fn send(
        &self,
        fetch: &PreparedFetch,
        body: Vec<u8>,
        headers: Forwarded<'_>,
        parent: Option<TraceContext>,
    ) -> Result<Arc<Fetched>, FetchError> {
        let Some(service) = fetch.service else {
            return Err(FetchError::Failed(Arc::from(format!(
                "unknown subgraph '{}'",
                fetch.service_name
            ))));
        };
        let endpoint = &self.endpoints[service];
        // The subgraph continues the trace under this span (its context goes as `traceparent`).
        let mut span = match &parent {
            Some(parent) => self.tracer.start(
                format!("subgraph {}", fetch.service_name),
                SpanKind::Client,
                Some(parent),
            ),
            None => Span::none(),
        };
        let traceparent = span.context().map(|context| context.header_value());
        let started = std::time::Instant::now();
        let (result, joined) = self
            .client
            .fetch(
                service,
                &endpoint.uri,
                Bytes::from(body),
                self.headers_for(headers, service),
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
        self.subgraph_metrics[service].record(started, outcome);
        result
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
        let mut run = Run::new(
            self,
            &operation.batches,
            variables,
            Forwarded::PerGroup(headers),
            trace,
            root,
            errors,
        );
        // The seed is not in the history: nothing derived here is like another request's.
        run.reuse = false;
        if let Some(node) = &operation.exec {
            run.run(node).await;
        }
        let errors = run.errors_in_plan_order();
        write_response(&self.schema, operation, variables, &run.data, errors, 1024)
    }
}

#[cfg(test)]
mod tests {
    use super::in_plan_order;

    #[test]
    fn errors_are_listed_by_fetch_in_plan_order_whatever_completed_first() {
        // "pre" came before the run; fetch 3 completed first (two errors), then 1, then 2.
        let errors = vec!["pre", "c1", "c2", "a1", "b1", "b2"];
        let blocks = [(3, 1), (1, 3), (2, 4)];
        assert_eq!(
            in_plan_order(errors, &blocks),
            ["pre", "a1", "b1", "b2", "c1", "c2"]
        );
        // Already in order (and the common cases: no block, one block): untouched.
        assert_eq!(in_plan_order(vec!["x", "y"], &[(1, 0), (2, 1)]), ["x", "y"]);
        assert_eq!(in_plan_order(vec!["x"], &[]), ["x"]);
        assert_eq!(in_plan_order(Vec::<&str>::new(), &[]), Vec::<&str>::new());
    }
}
