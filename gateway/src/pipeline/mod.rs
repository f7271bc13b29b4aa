//! The request pipeline: what happens to a client request between a transport (HTTP in
//! `http/`, WebSocket and multipart in `subscription.rs`, or a library call) and its response,
//! one module per step, each check made once:
//!
//! 1. `parse` — the request has a document ("Missing query", checked where a transport reads
//!    the request) and it parses.
//! 2. `limits` — fields, aliases and depth with fragments expanded, on the AST.
//! 3. `validate` — against the API schema; the operation to run chosen; introspection switch.
//! 4. `limits` — root fields and the cost estimate.
//! 5. `plan` — plan cache lookup (`plan_cache`), single-flight planning on a miss, the plan
//!    bound to the executor: a [`PreparedOperation`] (`prepared`).
//! 6. `variables` — values checked and defaults filled in; cost redone if it depends on them.
//!    `specialise` — the plan for the values of the variables `@skip` / `@include` use.
//! 7. `execute` — forwarded headers, client-request collapsing, the executor.
//!
//! Steps 1–5 run once per distinct operation and are cached together; 6 and 7 run per request.
//! The pipeline depends on the executor (`crate::execute`), never the other way round: the
//! executor runs a `BoundPlan` and knows nothing of requests, caches or limits.

pub(crate) mod execute;
pub(crate) mod limits;
pub(crate) mod parse;
pub(crate) mod plan;
pub(crate) mod plan_cache;
pub(crate) mod prepared;
pub(crate) mod specialise;
pub(crate) mod validate;
pub(crate) mod variables;

use std::sync::Arc;

use apollo_compiler::ast::OperationType;
use bytes::Bytes;
use http::header::HeaderMap;
use serde::Deserialize;
use serde_json::{Map, Value};

pub(crate) use parse::Request;
pub use prepared::PreparedOperation;

use crate::error::{self, GraphQLError, GraphQLErrors, BAD_REQUEST};
use crate::metrics::{self, Outcome};
use crate::Gateway;

/// A GraphQL request as clients send it (POST body, or GET parameters decoded).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphQLRequest {
    /// The document.
    #[serde(default)]
    pub query: Option<String>,
    /// Which operation of the document to run.
    #[serde(default)]
    pub operation_name: Option<String>,
    /// Variable values.
    #[serde(default)]
    pub variables: Option<Map<String, Value>>,
    /// Protocol extensions (accepted, unused).
    #[serde(default)]
    pub extensions: Option<Value>,
}

/// How a response should be reported at the HTTP level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseStatus {
    /// The operation ran (possibly with field errors).
    Executed,
    /// The request was rejected before execution (parse, validation, limits, variables).
    RequestError,
    /// The operation could not be planned.
    PlanningFailed,
    /// A mutation arrived over GET.
    MutationOverGet,
}

/// Why an operation could not be prepared, and how to report it.
pub(crate) type PrepareError = (GraphQLErrors, ResponseStatus);

/// The front half's result for one request: the prepared operation or why there is none.
pub(crate) type Prepared = Result<Arc<PreparedOperation>, PrepareError>;

/// A serialized GraphQL response and its classification.
#[derive(Debug, Clone)]
pub struct GraphQLResponse {
    /// The JSON body.
    pub body: Bytes,
    /// What happened.
    pub status: ResponseStatus,
    /// Subgraph response headers the header rules pass back (e.g. a merged `Cache-Control`).
    pub headers: HeaderMap,
}

impl GraphQLResponse {
    pub(crate) fn errors(status: ResponseStatus, errors: &[GraphQLError]) -> Self {
        let mut body = Vec::with_capacity(128);
        // A valid operation that cannot be planned is answered like one whose execution
        // failed at the root (`data: null`), as the reference routers do; other request
        // errors happen before execution and carry no `data`.
        if status == ResponseStatus::PlanningFailed {
            body.extend_from_slice(b"{\"data\":null,\"errors\":");
        } else {
            body.extend_from_slice(b"{\"errors\":");
        }
        serde_json::to_writer(&mut body, &*error::capped(errors))
            .expect("serializing errors cannot fail");
        body.push(b'}');
        Self {
            body: Bytes::from(body),
            status,
            headers: HeaderMap::new(),
        }
    }

    /// The body parsed back into JSON (convenient in tests).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the gateway writes valid JSON")
    }
}

impl Gateway {
    /// Steps 1–5 for `request`: its prepared operation from the plan cache, or prepared now.
    pub(crate) async fn prepare_request(&self, request: &Request) -> Prepared {
        self.prepare_shared(&request.query, request.operation_name.as_deref())
            .await
    }

    /// Runs one request through the whole pipeline, measured (request metrics, the request's
    /// trace span). `prepared` is the front half's result when the transport already has it.
    pub(crate) async fn run(
        &self,
        request: Request,
        headers: &HeaderMap,
        via_get: bool,
        prepared: Option<Prepared>,
    ) -> GraphQLResponse {
        let started = std::time::Instant::now();
        let tracer = self.inner.executor.tracer();
        // Off, tracing costs this one branch: no header is read and no span made.
        let mut span = if tracer.is_enabled() {
            let parent = switchyard_telemetry::trace::TraceContext::from_headers(headers);
            tracer.start(
                "graphql",
                switchyard_telemetry::trace::SpanKind::Server,
                parent.as_ref(),
            )
        } else {
            switchyard_telemetry::trace::Span::none()
        };
        let prepared = match prepared {
            Some(prepared) => prepared,
            None => self.prepare_request(&request).await,
        };
        let (response, outcome) = match &prepared {
            Ok(prepared) => {
                self.run_prepared(prepared, request, headers, via_get, span.context())
                    .await
            }
            Err((errors, status)) => {
                let outcome = if *status == ResponseStatus::PlanningFailed {
                    Outcome::PlanningFailed
                } else {
                    Outcome::RequestError
                };
                (GraphQLResponse::errors(*status, &errors.0), outcome)
            }
        };
        let operation = prepared.as_ref().ok();
        let handles = operation.map(|prepared| {
            &**prepared.metrics.get_or_init(|| {
                self.inner
                    .shared
                    .metrics
                    .operation(prepared.operation().name.as_ref().map(|n| n.as_str()))
            })
        });
        self.inner
            .shared
            .metrics
            .record_request(handles, outcome, started);
        if span.is_recording() {
            trace_request(&mut span, operation.map(|p| &**p), outcome);
        }
        response
    }

    /// Answers a request the transport refused before the pipeline (no document), counted
    /// like any other rejected request.
    pub(crate) fn reject(&self, error: GraphQLError) -> GraphQLResponse {
        let started = std::time::Instant::now();
        let response = GraphQLResponse::errors(ResponseStatus::RequestError, &[error]);
        self.inner
            .shared
            .metrics
            .record_request(None, Outcome::RequestError, started);
        response
    }

    /// Steps 6 and 7 for a prepared operation.
    async fn run_prepared(
        &self,
        prepared: &Arc<PreparedOperation>,
        request: Request,
        headers: &HeaderMap,
        via_get: bool,
        trace: Option<switchyard_telemetry::trace::TraceContext>,
    ) -> (GraphQLResponse, Outcome) {
        let request_error = |errors: &[GraphQLError]| {
            let response = GraphQLResponse::errors(ResponseStatus::RequestError, errors);
            (response, Outcome::RequestError)
        };
        if prepared.is_subscription() {
            return request_error(&[GraphQLError::new(
                "Subscriptions need a streaming transport: open a WebSocket to /graphql with \
                 the graphql-transport-ws protocol, or POST with \
                 Accept: multipart/mixed;subscriptionSpec=\"1.0\".",
                BAD_REQUEST,
            )]);
        }
        if via_get && prepared.is_mutation() {
            let response = GraphQLResponse::errors(
                ResponseStatus::MutationOverGet,
                &[GraphQLError::new(
                    "Mutations cannot be sent over GET; use POST.",
                    BAD_REQUEST,
                )],
            );
            return (response, Outcome::RequestError);
        }
        let variables = match prepared.coerce_variables(request.variables) {
            Ok(variables) => variables,
            Err(errors) => return request_error(&errors.0),
        };
        if let Err(errors) = self.check_variable_cost(prepared, &variables) {
            return request_error(&errors.0);
        }
        let key = (request.query.as_str(), request.operation_name.as_deref());
        let prepared = &self.specialise(prepared, key, &variables).await;
        let executed = self
            .execute_prepared(prepared, variables, headers, trace)
            .await;
        let outcome = if executed.errors == 0 {
            Outcome::Ok
        } else {
            Outcome::FieldErrors
        };
        let response = GraphQLResponse {
            body: executed.body.clone(),
            status: ResponseStatus::Executed,
            headers: executed.headers.clone(),
        };
        (response, outcome)
    }
}

/// Names the request span after its operation (`query Me`, as OpenTelemetry's GraphQL
/// conventions have it) and records how the request ended.
fn trace_request(
    span: &mut switchyard_telemetry::trace::Span,
    operation: Option<&PreparedOperation>,
    outcome: metrics::Outcome,
) {
    if let Some(prepared) = operation {
        let operation = prepared.operation();
        let kind = match operation.operation_type {
            OperationType::Query => "query",
            OperationType::Mutation => "mutation",
            OperationType::Subscription => "subscription",
        };
        span.set_attribute("graphql.operation.type", kind);
        match &operation.name {
            Some(name) => {
                span.set_attribute("graphql.operation.name", name.to_string());
                span.set_name(format!("{kind} {name}"));
            }
            None => span.set_name(kind),
        }
    }
    span.set_attribute("switchyard.outcome", outcome.label());
    match outcome {
        metrics::Outcome::Ok | metrics::Outcome::FieldErrors => {}
        metrics::Outcome::RequestError | metrics::Outcome::PlanningFailed => {
            span.set_error(outcome.label())
        }
    }
}
