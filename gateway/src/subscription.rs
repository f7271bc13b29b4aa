//! GraphQL subscriptions through the gateway: a `graphql-transport-ws` server on `GET /graphql`.
//!
//! A subscription's single root field is owned by one subgraph. The gateway plans the operation
//! like a query; the plan's root fetch becomes a `subscribe` on ONE upstream WebSocket per client
//! subscription (the subgraph's URL with a `ws://` scheme), and every upstream `next` event is
//! treated as that root fetch's response: the rest of the plan (entity fetches to other
//! subgraphs) runs through the executor and the shaped result goes to the client as `next`.
//!
//! Queries and mutations sent with `subscribe` are answered with one `next` and a `complete`,
//! as the protocol allows.
//!
//! Over HTTP, a `POST` whose `Accept` offers `multipart/mixed;subscriptionSpec="1.0"` gets the
//! same events as a streamed multipart response (one `{"payload": ...}` part per event, `{}`
//! heartbeats); without it, a subscription over HTTP is a `BAD_REQUEST` error.
//!
//! Traced like a request when tracing is on (`SubscriptionTrace`): one span for the
//! subscription's whole life, continuing the client's `traceparent` (on the upgrade request or
//! the POST), a client span for the upstream subscription whose context goes to the subgraph as
//! `traceparent` on its upgrade request, and a span per event (the first hundred) with that
//! event's entity fetches under it.
//!
//! Close codes follow the protocol: 4400 invalid message, 4401 `subscribe` before the
//! connection was acknowledged, 4408 no `connection_init` in time, 4409 duplicate operation id,
//! 4429 a second `connection_init`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::{SinkExt, StreamExt};
use http::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, SEC_WEBSOCKET_PROTOCOL};
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as UpMessage;

use switchyard_telemetry::trace::{Span, SpanKind, TraceContext, TRACEPARENT};

use crate::error::{GraphQLError, BAD_REQUEST, QUERY_PLANNING_FAILED, SUBGRAPH_REQUEST_FAILED};
use crate::pipeline::{PreparedOperation, Request};
use crate::{Gateway, GraphQLRequest};

/// The WebSocket subprotocol the gateway speaks, to clients and to subgraphs.
pub const PROTOCOL: &str = "graphql-transport-ws";

/// Close code: the client sent something that is not a valid protocol message.
pub const CLOSE_INVALID_MESSAGE: u16 = 4400;
/// Close code: `subscribe` before `connection_ack`.
pub const CLOSE_UNAUTHORIZED: u16 = 4401;
/// Close code: no `connection_init` within the configured timeout.
pub const CLOSE_INIT_TIMEOUT: u16 = 4408;
/// Close code: `subscribe` with an id that is already running.
pub const CLOSE_DUPLICATE_ID: u16 = 4409;
/// Close code: more than one `connection_init`.
pub const CLOSE_TOO_MANY_INITS: u16 = 4429;
/// Close code (RFC 6455 "going away"): the gateway is shutting down; reconnect elsewhere.
pub const CLOSE_GOING_AWAY: u16 = 1001;

/// Messages queued for one client before senders wait.
const OUTGOING_BUFFER: usize = 64;

/// What the connection's writer task sends to the client.
enum Outgoing {
    Text(String),
    Close(u16, String),
}

/// Operations running on one connection: id -> (generation, cancel signal).
type Active = Arc<Mutex<HashMap<String, (u64, oneshot::Sender<()>)>>>;

/// Everything an operation task needs from its connection.
struct Connection {
    gateway: Gateway,
    out: mpsc::Sender<Outgoing>,
    active: Active,
    /// Upgrade-request headers with the `connection_init` payload's `Authorization` applied.
    headers: HeaderMap,
}

impl Connection {
    async fn send(&self, message: Value) {
        self.send_text(message.to_string()).await;
    }

    async fn send_text(&self, text: String) {
        // A closed channel means the client is gone; nothing left to tell it.
        let _ = self.out.send(Outgoing::Text(text)).await;
    }

    /// Ends operation `id` (if `generation` still owns it) and then sends its last message, so
    /// the client may reuse the id as soon as it sees that message.
    async fn finish(&self, id: &str, generation: u64, last: Value) {
        {
            let mut active = self.active.lock().expect("active lock poisoned");
            if active.get(id).is_none_or(|(g, _)| *g != generation) {
                // Cancelled by the client: it expects nothing more for this id.
                return;
            }
            active.remove(id);
        }
        self.send(last).await;
    }

    async fn error(&self, id: &str, generation: u64, errors: &[GraphQLError]) {
        let payload = serde_json::to_value(errors).expect("errors serialize");
        self.finish(
            id,
            generation,
            json!({"id": id, "type": "error", "payload": payload}),
        )
        .await;
    }

    async fn complete(&self, id: &str, generation: u64) {
        self.finish(id, generation, json!({"id": id, "type": "complete"}))
            .await;
    }

    /// Sends a `next` whose payload is an already serialized GraphQL response.
    async fn next(&self, id: &str, payload: &[u8]) {
        let payload = String::from_utf8_lossy(payload);
        self.send_text(format!(
            r#"{{"id":{},"type":"next","payload":{payload}}}"#,
            Value::from(id)
        ))
        .await;
    }
}

/// Whether `headers` ask for a WebSocket upgrade.
pub(crate) fn is_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Whether the client offered the `graphql-transport-ws` subprotocol.
pub(crate) fn offers_protocol(headers: &HeaderMap) -> bool {
    headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == PROTOCOL)
}

/// Runs the protocol on an upgraded client socket until either side closes it.
pub(crate) async fn serve(gateway: Gateway, socket: WebSocket, headers: HeaderMap) {
    let _connected = GaugeGuard::new(&gateway.metrics().websocket_connections);
    let shared = std::sync::Arc::clone(&gateway.inner.shared);
    let _counted = shared.websockets.start();
    let (sink, mut stream) = socket.split();
    // Bounded, so a client that stops reading slows its upstream subscriptions down instead of
    // growing the gateway's memory.
    let (out, outgoing) = mpsc::channel::<Outgoing>(OUTGOING_BUFFER);
    let writer = tokio::spawn(write_outgoing(
        sink,
        outgoing,
        gateway.config().subscription_keepalive,
    ));

    let init_deadline = tokio::time::Instant::now() + gateway.config().subscription_init_timeout;
    let active: Active = Arc::default();
    let generations = AtomicU64::new(0);
    let mut connection: Option<Arc<Connection>> = None;
    let close = |code: u16, reason: String| {
        let out = out.clone();
        async move {
            let _ = out.send(Outgoing::Close(code, reason)).await;
        }
    };

    loop {
        let read = async {
            if connection.is_none() {
                tokio::time::timeout_at(init_deadline, stream.next())
                    .await
                    .ok()
            } else {
                Some(stream.next().await)
            }
        };
        let next = tokio::select! {
            read = read => match read {
                Some(next) => next,
                None => {
                    close(
                        CLOSE_INIT_TIMEOUT,
                        "Connection initialisation timeout".into(),
                    )
                    .await;
                    break;
                }
            },
            () = shared.drain_started() => {
                close(CLOSE_GOING_AWAY, "The gateway is shutting down".into()).await;
                break;
            }
        };
        let text = match next {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(Message::Binary(_))) => {
                close(
                    CLOSE_INVALID_MESSAGE,
                    "Invalid message received: binary frames are not part of graphql-transport-ws"
                        .into(),
                )
                .await;
                break;
            }
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
        };
        let message = match parse_client_message(&text) {
            Ok(message) => message,
            Err(reason) => {
                close(
                    CLOSE_INVALID_MESSAGE,
                    format!("Invalid message received: {reason}"),
                )
                .await;
                break;
            }
        };
        match message {
            ClientMessage::ConnectionInit(payload) => {
                if connection.is_some() {
                    close(
                        CLOSE_TOO_MANY_INITS,
                        "Too many initialisation requests".into(),
                    )
                    .await;
                    break;
                }
                let mut headers = headers.clone();
                if let Some(token) = ["Authorization", "authorization"]
                    .iter()
                    .find_map(|key| payload.get(*key).and_then(Value::as_str))
                    .and_then(|v| HeaderValue::from_str(v).ok())
                {
                    headers.insert(AUTHORIZATION, token);
                }
                connection = Some(Arc::new(Connection {
                    gateway: gateway.clone(),
                    out: out.clone(),
                    active: Arc::clone(&active),
                    headers,
                }));
                let _ = out
                    .send(Outgoing::Text(r#"{"type":"connection_ack"}"#.into()))
                    .await;
            }
            ClientMessage::Ping => {
                let _ = out.send(Outgoing::Text(r#"{"type":"pong"}"#.into())).await;
            }
            ClientMessage::Pong => {}
            ClientMessage::Subscribe { id, request } => {
                let Some(connection) = &connection else {
                    close(CLOSE_UNAUTHORIZED, "Unauthorized".into()).await;
                    break;
                };
                let (cancel, cancelled) = oneshot::channel();
                let generation = generations.fetch_add(1, Ordering::Relaxed);
                let limit = gateway.config().max_subscriptions_per_connection;
                let admitted = admit(&active, &id, generation, cancel, limit);
                match admitted {
                    Admission::Admitted => {}
                    Admission::DuplicateId => {
                        let reason = format!("Subscriber for {id} already exists");
                        close(CLOSE_DUPLICATE_ID, reason).await;
                        break;
                    }
                    Admission::TooMany => {
                        let error = GraphQLError::new(
                            format!(
                                "Too many operations on this connection (at most {limit}); \
                                 complete one first."
                            ),
                            BAD_REQUEST,
                        );
                        connection
                            .send(json!({"id": id, "type": "error", "payload": [error]}))
                            .await;
                        continue;
                    }
                }
                let operation = WsOperation {
                    connection: Arc::clone(connection),
                    id,
                    generation,
                };
                // The drain waits for operations too, so each tells its subgraph `complete`
                // and ends its span before the process exits.
                let running = shared.websockets.start();
                tokio::spawn(async move {
                    let _running = running;
                    let gateway = operation.connection.gateway.clone();
                    // Fires when the client completes the operation or the connection ends
                    // (either drops the sender).
                    let cancelled = async move {
                        let _ = cancelled.await;
                    };
                    run_operation(&gateway, &operation, request, None, cancelled).await;
                });
            }
            ClientMessage::Complete(id) => {
                // Dropping the sender tells the operation task to stop (and close upstream).
                active.lock().expect("active lock poisoned").remove(&id);
            }
        }
    }
    // Every running operation stops with the connection.
    active.lock().expect("active lock poisoned").clear();
    drop(connection);
    drop(out);
    let _ = writer.await;
}

/// Writes what the connection's tasks queue to the client socket, with a WebSocket ping every
/// `keepalive` (zero: none), until the queue closes, a close frame is sent or the client is gone.
async fn write_outgoing(
    mut sink: futures::stream::SplitSink<WebSocket, Message>,
    mut outgoing: mpsc::Receiver<Outgoing>,
    keepalive: std::time::Duration,
) {
    // WebSocket ping frames (answered by every client's WebSocket layer, no protocol
    // support needed) keep proxies from closing a subscription that is quiet for minutes.
    let period = keepalive.max(std::time::Duration::from_millis(1));
    let mut pings = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        let message = tokio::select! {
            message = outgoing.recv() => match message {
                Some(message) => message,
                None => break,
            },
            _ = pings.tick(), if !keepalive.is_zero() => {
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    break;
                }
                continue;
            }
        };
        match message {
            Outgoing::Text(text) => {
                if sink.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
            Outgoing::Close(code, reason) => {
                let frame = CloseFrame {
                    code,
                    reason: reason.into(),
                };
                let _ = sink.send(Message::Close(Some(frame))).await;
                break;
            }
        }
    }
    let _ = sink.close().await;
}

/// Whether a `subscribe` may start on a connection.
enum Admission {
    /// Registered in `active` under its id.
    Admitted,
    /// An operation with this id is running: the protocol closes the connection (4409).
    DuplicateId,
    /// The connection runs its most operations already: an `error` for this one.
    TooMany,
}

/// Registers operation `id` in `active` unless its id is taken or the connection is at `limit`.
/// Decided under the lock; the caller acts (and awaits) after it is released.
fn admit(
    active: &Active,
    id: &str,
    generation: u64,
    cancel: oneshot::Sender<()>,
    limit: usize,
) -> Admission {
    let mut running = active.lock().expect("active lock poisoned");
    if running.contains_key(id) {
        Admission::DuplicateId
    } else if running.len() >= limit {
        Admission::TooMany
    } else {
        running.insert(id.to_owned(), (generation, cancel));
        Admission::Admitted
    }
}

/// A message a client may send.
enum ClientMessage {
    ConnectionInit(Map<String, Value>),
    Ping,
    Pong,
    Subscribe { id: String, request: Request },
    Complete(String),
}

fn parse_client_message(text: &str) -> Result<ClientMessage, String> {
    let value: Value = serde_json::from_str(text).map_err(|err| format!("not JSON ({err})"))?;
    let Value::Object(mut object) = value else {
        return Err("expected a JSON object".into());
    };
    let kind = match object.get("type") {
        Some(Value::String(kind)) => kind.clone(),
        _ => return Err("missing \"type\"".into()),
    };
    let id = |object: &Map<String, Value>| match object.get("id") {
        Some(Value::String(id)) if !id.is_empty() => Ok(id.clone()),
        _ => Err(format!("\"{kind}\" needs a non-empty string \"id\"")),
    };
    match kind.as_str() {
        "connection_init" => match object.remove("payload") {
            None | Some(Value::Null) => Ok(ClientMessage::ConnectionInit(Map::new())),
            Some(Value::Object(payload)) => Ok(ClientMessage::ConnectionInit(payload)),
            Some(_) => Err("connection_init payload must be an object".into()),
        },
        "ping" => Ok(ClientMessage::Ping),
        "pong" => Ok(ClientMessage::Pong),
        "subscribe" => {
            let id = id(&object)?;
            let payload = object.remove("payload").unwrap_or(Value::Null);
            let request: GraphQLRequest = serde_json::from_value(payload)
                .map_err(|err| format!("subscribe payload is not a GraphQL request ({err})"))?;
            let request = Request::try_from(request)
                .map_err(|_| "subscribe payload has no \"query\"".to_owned())?;
            Ok(ClientMessage::Subscribe { id, request })
        }
        "complete" => Ok(ClientMessage::Complete(id(&object)?)),
        other => Err(format!("unexpected message type {other:?}")),
    }
}

/// Runs one client operation to its end (or until `cancelled` resolves), reporting to `delivery`.
/// Holds one unit of a gauge (a connection, a subscription) until dropped, however the task
/// that holds it ends.
struct GaugeGuard(switchyard_telemetry::prometheus::IntGauge);

impl GaugeGuard {
    fn new(gauge: &switchyard_telemetry::prometheus::IntGauge) -> Self {
        gauge.inc();
        GaugeGuard(gauge.clone())
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// `prepared`: the request's prepared operation when the transport already has it.
async fn run_operation<D: Delivery>(
    gateway: &Gateway,
    delivery: &D,
    request: Request,
    prepared: Option<Arc<PreparedOperation>>,
    cancelled: impl Future<Output = ()> + Send,
) {
    let prepared = match prepared {
        Some(prepared) => prepared,
        None => match gateway.prepare_request(&request).await {
            Ok(prepared) => prepared,
            Err((errors, _)) => return delivery.error(&errors.0).await,
        },
    };
    if !prepared.is_subscription() {
        // Queries and mutations over the socket: one result, then complete.
        let prepared = Some(Ok(prepared));
        let response = gateway
            .run(request, delivery.headers(), false, prepared)
            .await;
        if delivery.is_active() {
            delivery.next(&response.body).await;
        }
        return delivery.complete().await;
    }
    let variables = match prepared.coerce_variables(request.variables) {
        Ok(variables) => variables,
        Err(errors) => return delivery.error(&errors.0).await,
    };
    gateway.metrics().subscriptions.inc();
    let _active = GaugeGuard::new(&gateway.metrics().active_subscriptions);
    let mut trace = SubscriptionTrace::start(gateway, &prepared, delivery);
    let ended = run_subscription(
        gateway, delivery, &prepared, &variables, cancelled, &mut trace,
    )
    .await;
    trace.end(ended);
}

/// How a subscription ended, as its span records it.
enum Ended {
    /// The subgraph completed it.
    Completed,
    /// The client completed it or went away (or the gateway drained).
    Cancelled,
    /// It could not be served at all, or failed on the way: why.
    Failed(&'static str, String),
}

/// Runs subscription `prepared` to its end (or until `cancelled` resolves): one upstream
/// subscription at the subgraph owning the root field, each of its events completed by the
/// rest of the plan and delivered.
async fn run_subscription<D: Delivery>(
    gateway: &Gateway,
    delivery: &D,
    prepared: &PreparedOperation,
    variables: &Map<String, Value>,
    cancelled: impl Future<Output = ()> + Send,
    trace: &mut SubscriptionTrace,
) -> Ended {
    let Some(plan) = &prepared.subscription else {
        let message =
            "This subscription cannot be served: its root field must come from one subgraph.";
        delivery
            .error(&[GraphQLError::new(message, QUERY_PLANNING_FAILED)])
            .await;
        return Ended::Failed("planning_failed", message.to_owned());
    };
    let root = &plan.root;
    let forwarded = gateway.forwarded_headers(delivery.headers());
    let service = root.service_name.as_str();
    let upstream_variables: Map<String, Value> = root
        .variable_usages
        .iter()
        .filter_map(|name| variables.get(name).map(|v| (name.clone(), v.clone())))
        .collect();
    let to_service = gateway.inner.executor.forwarded_to(&forwarded, service);
    // The upstream subscription's span: its context goes to the subgraph as `traceparent`,
    // and it lasts as long as the upstream subscription does.
    let mut upstream_span = trace.upstream(gateway, service);
    let traceparent = upstream_span
        .context()
        .map(|context| context.header_value());
    let failed = |span: &mut Span, reason: String| {
        span.set_error(reason.clone());
        Ended::Failed("failed", reason)
    };
    let mut upstream = match Upstream::open(gateway, service, to_service, traceparent).await {
        Ok(upstream) => upstream,
        Err(reason) => {
            delivery.error(&[upstream_error(service, &reason)]).await;
            return failed(&mut upstream_span, reason);
        }
    };
    let subscribe = json!({
        "id": "1",
        "type": "subscribe",
        "payload": {
            "query": root.operation,
            "operationName": root.operation_name,
            "variables": upstream_variables,
        },
    });
    if let Err(reason) = upstream.send(subscribe).await {
        delivery.error(&[upstream_error(service, &reason)]).await;
        return failed(&mut upstream_span, reason);
    }
    tracing::debug!(service, "subscription started");
    let mut cancelled = std::pin::pin!(cancelled);
    loop {
        let event = tokio::select! {
            _ = &mut cancelled => None,
            event = upstream.next_event() => Some(event),
        };
        let Some(event) = event else {
            upstream.complete().await;
            tracing::debug!(service, "subscription completed by the client");
            return Ended::Cancelled;
        };
        match event {
            UpstreamEvent::Next(payload) => {
                let event_span = trace.event(gateway);
                let body = gateway
                    .inner
                    .executor
                    .execute_seeded(
                        &plan.rest,
                        variables,
                        &forwarded,
                        service,
                        split_payload(payload),
                        event_span.context(),
                    )
                    .await;
                // Skip events for an operation the client completed meanwhile.
                if !delivery.is_active() {
                    upstream.complete().await;
                    return Ended::Cancelled;
                }
                delivery.next(&body).await;
                trace.delivered();
            }
            UpstreamEvent::Error(errors) => {
                let errors: Vec<GraphQLError> = errors
                    .into_iter()
                    .map(|error| upstream_graphql_error(error, service))
                    .collect();
                upstream.close().await;
                delivery.error(&errors).await;
                let reason = errors.first().map_or_else(
                    || "the subgraph refused it".to_owned(),
                    |e| e.message.clone(),
                );
                upstream_span.set_error(reason.clone());
                return Ended::Failed("error", reason);
            }
            UpstreamEvent::Complete => {
                upstream.close().await;
                delivery.complete().await;
                return Ended::Completed;
            }
            UpstreamEvent::Failed(reason) => {
                delivery.error(&[upstream_error(service, &reason)]).await;
                return failed(&mut upstream_span, reason);
            }
        }
    }
}

/// Most events of one subscription given a span of their own: a subscription may run for days,
/// and a trace of a million spans is one no trace viewer can open. Later events are counted on
/// the subscription's span only.
const TRACED_EVENTS: u64 = 100;

/// The spans of one subscription at the gateway, all inert when tracing is off.
///
/// `subscription <Name>` (server) lasts from the subscription's start to its end and says how it
/// ended and how many events it delivered. Under it: `subgraph <name>` (client), the upstream
/// subscription, whose context the subgraph continues; and one `subscription event` span per
/// event (the first [`TRACED_EVENTS`]) with that event's entity fetches under it. A trace viewer
/// shows the events and fetches as they happen, and the subscription's own span once it ends
/// (spans are exported when they end).
struct SubscriptionTrace {
    span: Span,
    events: u64,
}

impl SubscriptionTrace {
    /// Starts the subscription's span, continuing the client's `traceparent` (on the WebSocket
    /// upgrade request, or on the multipart subscription's POST).
    fn start<D: Delivery>(gateway: &Gateway, prepared: &PreparedOperation, delivery: &D) -> Self {
        let tracer = gateway.inner.executor.tracer();
        if !tracer.is_enabled() {
            return SubscriptionTrace {
                span: Span::none(),
                events: 0,
            };
        }
        let parent = TraceContext::from_headers(delivery.headers());
        let operation = prepared.operation();
        let name = match &operation.name {
            Some(name) => format!("subscription {name}"),
            None => "subscription".to_owned(),
        };
        let mut span = tracer.start(name, SpanKind::Server, parent.as_ref());
        if span.is_recording() {
            span.set_attribute("graphql.operation.type", "subscription");
            if let Some(name) = &operation.name {
                span.set_attribute("graphql.operation.name", name.to_string());
            }
            span.set_attribute("switchyard.subscription.transport", delivery.transport());
        }
        SubscriptionTrace { span, events: 0 }
    }

    /// The span of the upstream subscription at `service`.
    fn upstream(&mut self, gateway: &Gateway, service: &str) -> Span {
        let Some(parent) = self.span.context() else {
            return Span::none();
        };
        self.span.set_attribute("subgraph.name", service.to_owned());
        let mut span = gateway.inner.executor.tracer().start(
            format!("subgraph {service}"),
            SpanKind::Client,
            Some(&parent),
        );
        span.set_attribute("subgraph.name", service.to_owned());
        span
    }

    /// A span for the next event (inert past [`TRACED_EVENTS`]).
    fn event(&self, gateway: &Gateway) -> Span {
        match self.span.context() {
            Some(parent) if self.span.is_recording() && self.events < TRACED_EVENTS => {
                let mut span = gateway.inner.executor.tracer().start(
                    "subscription event",
                    SpanKind::Internal,
                    Some(&parent),
                );
                span.set_attribute(
                    "switchyard.subscription.event",
                    i64::try_from(self.events + 1).unwrap_or(i64::MAX),
                );
                span
            }
            _ => Span::none(),
        }
    }

    /// One event delivered to the client.
    fn delivered(&mut self) {
        self.events += 1;
    }

    /// Ends the subscription's span with how it ended.
    fn end(mut self, ended: Ended) {
        if !self.span.is_recording() {
            return;
        }
        let events = i64::try_from(self.events).unwrap_or(i64::MAX);
        self.span
            .set_attribute("switchyard.subscription.events", events);
        let outcome = match ended {
            Ended::Completed => "completed",
            Ended::Cancelled => "cancelled",
            Ended::Failed(outcome, reason) => {
                self.span.set_error(reason);
                outcome
            }
        };
        self.span.set_attribute("switchyard.outcome", outcome);
    }
}

impl Connection {
    fn is_active(&self, id: &str, generation: u64) -> bool {
        self.active
            .lock()
            .expect("active lock poisoned")
            .get(id)
            .is_some_and(|(g, _)| *g == generation)
    }
}

/// Where one operation's results go: a WebSocket connection, or a multipart HTTP response.
trait Delivery: Send + Sync {
    /// The client's headers (the source of forwarded headers).
    fn headers(&self) -> &HeaderMap;
    /// False once the client no longer wants results.
    fn is_active(&self) -> bool;
    /// One result (a serialized GraphQL response).
    fn next(&self, payload: &[u8]) -> impl Future<Output = ()> + Send;
    /// The operation failed as a whole; nothing follows.
    fn error(&self, errors: &[GraphQLError]) -> impl Future<Output = ()> + Send;
    /// The operation ended normally; nothing follows.
    fn complete(&self) -> impl Future<Output = ()> + Send;
    /// How results travel, for the subscription's span: `websocket` or `multipart`.
    fn transport(&self) -> &'static str;
}

/// Operation `id` of a WebSocket connection.
struct WsOperation {
    connection: Arc<Connection>,
    id: String,
    generation: u64,
}

impl Delivery for WsOperation {
    fn headers(&self) -> &HeaderMap {
        &self.connection.headers
    }
    fn is_active(&self) -> bool {
        self.connection.is_active(&self.id, self.generation)
    }
    async fn next(&self, payload: &[u8]) {
        self.connection.next(&self.id, payload).await
    }
    async fn error(&self, errors: &[GraphQLError]) {
        self.connection
            .error(&self.id, self.generation, errors)
            .await
    }
    async fn complete(&self) {
        self.connection.complete(&self.id, self.generation).await
    }
    fn transport(&self) -> &'static str {
        "websocket"
    }
}

/// `data` and `errors` of an upstream `next` payload.
fn split_payload(payload: Value) -> (Option<Value>, Vec<Value>) {
    let Value::Object(mut payload) = payload else {
        return (None, Vec::new());
    };
    let data = payload.remove("data").filter(Value::is_object);
    let errors = match payload.remove("errors") {
        Some(Value::Array(errors)) => errors,
        _ => Vec::new(),
    };
    (data, errors)
}

fn upstream_error(service: &str, reason: &str) -> GraphQLError {
    GraphQLError::new(
        format!("WebSocket subscription to subgraph '{service}' failed: {reason}"),
        SUBGRAPH_REQUEST_FAILED,
    )
    .with_extension("serviceName", service)
}

/// An error from an upstream `error` message: read like any subgraph error, and
/// `SUBGRAPH_REQUEST_FAILED` when the subgraph gave no code (the subscription failed as a whole).
fn upstream_graphql_error(error: Value, service: &str) -> GraphQLError {
    let mut error = crate::execute::subgraph_error(error, service);
    if error.code().is_none() {
        error
            .extensions
            .insert("code".into(), Value::from(SUBGRAPH_REQUEST_FAILED));
    }
    error
}

/// What the upstream subscription produced.
enum UpstreamEvent {
    Next(Value),
    Error(Vec<Value>),
    Complete,
    Failed(String),
}

type UpstreamSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One graphql-transport-ws connection to a subgraph, carrying one subscription (id "1").
struct Upstream {
    socket: UpstreamSocket,
}

/// Headers that belong to the WebSocket handshake itself and must not be copied into it.
fn handshake_header(name: &HeaderName) -> bool {
    let name = name.as_str();
    name.starts_with("sec-websocket-")
        || matches!(
            name,
            "host" | "connection" | "upgrade" | "content-length" | "transfer-encoding"
        )
}

impl Upstream {
    /// Connects, sends `connection_init` (with the forwarded `Authorization`) and waits for the
    /// ack, all within the subgraph's timeout.
    async fn open(
        gateway: &Gateway,
        service: &str,
        forwarded: &[(HeaderName, HeaderValue)],
        traceparent: Option<HeaderValue>,
    ) -> Result<Upstream, String> {
        let url = gateway
            .inner
            .subgraph_urls
            .get(service)
            .ok_or_else(|| format!("unknown subgraph '{service}'"))?;
        let ws_url = match url.split_once("://") {
            Some(("http", rest)) => format!("ws://{rest}"),
            Some(("https", rest)) => format!("wss://{rest}"),
            _ => return Err(format!("cannot derive a WebSocket URL from {url:?}")),
        };
        let mut request = ws_url
            .as_str()
            .into_client_request()
            .map_err(|err| format!("invalid URL {ws_url:?}: {err}"))?;
        let headers = request.headers_mut();
        headers.insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(PROTOCOL));
        let mut init_payload = Map::new();
        for (name, value) in forwarded {
            if handshake_header(name) {
                continue;
            }
            headers.append(name.clone(), value.clone());
            if name == AUTHORIZATION {
                if let Ok(value) = value.to_str() {
                    init_payload.insert("Authorization".into(), Value::from(value));
                }
            }
        }
        // The subgraph continues the trace under the upstream subscription's span (replacing
        // a client's `traceparent` a header rule may have forwarded).
        if let Some(traceparent) = traceparent {
            headers.insert(TRACEPARENT, traceparent);
        }
        let timeout = gateway.config().subgraph_policy(service).timeout;
        // wss:// goes through the subgraph's own TLS settings (trusted CAs, client certificate).
        let connector = match gateway.inner.executor.websocket_tls(service) {
            Some(tls) if ws_url.starts_with("wss://") => {
                Some(tokio_tungstenite::Connector::Rustls(tls))
            }
            _ => None,
        };
        let handshake = async {
            let (socket, _) =
                tokio_tungstenite::connect_async_tls_with_config(request, None, false, connector)
                    .await
                    .map_err(|err| {
                        let message = format!("could not connect to {ws_url}: {err}");
                        match crate::execute::transport::hint(&message) {
                            Some(hint) => format!("{message} ({hint})"),
                            None => message,
                        }
                    })?;
            let mut upstream = Upstream { socket };
            upstream
                .send(json!({"type": "connection_init", "payload": init_payload}))
                .await?;
            loop {
                match upstream.receive().await? {
                    Some(message) => match message.get("type").and_then(Value::as_str) {
                        Some("connection_ack") => return Ok(upstream),
                        Some("ping") => upstream.send(json!({"type": "pong"})).await?,
                        _ => {}
                    },
                    None => return Err("the subgraph closed the connection during init".into()),
                }
            }
        };
        tokio::time::timeout(timeout, handshake)
            .await
            .map_err(|_| format!("no connection_ack within {timeout:?}"))?
    }

    async fn send(&mut self, message: Value) -> Result<(), String> {
        self.socket
            .send(UpMessage::text(message.to_string()))
            .await
            .map_err(|err| format!("sending to the subgraph failed: {err}"))
    }

    /// The next protocol message, `None` when the subgraph closed the socket.
    async fn receive(&mut self) -> Result<Option<Value>, String> {
        loop {
            match self.socket.next().await {
                None => return Ok(None),
                Some(Err(err)) => return Err(format!("connection lost: {err}")),
                Some(Ok(UpMessage::Text(text))) => {
                    return serde_json::from_str(text.as_str())
                        .map(Some)
                        .map_err(|err| format!("invalid message from the subgraph: {err}"));
                }
                Some(Ok(UpMessage::Close(frame))) => {
                    return match frame {
                        Some(frame) if u16::from(frame.code) != 1000 => Err(format!(
                            "the subgraph closed the connection ({}: {})",
                            u16::from(frame.code),
                            frame.reason
                        )),
                        _ => Ok(None),
                    }
                }
                Some(Ok(_)) => continue,
            }
        }
    }

    /// The next event of subscription "1", answering pings on the way.
    async fn next_event(&mut self) -> UpstreamEvent {
        loop {
            let message = match self.receive().await {
                Ok(Some(message)) => message,
                Ok(None) => {
                    return UpstreamEvent::Failed(
                        "the subgraph closed the connection before completing".into(),
                    )
                }
                Err(reason) => return UpstreamEvent::Failed(reason),
            };
            let Value::Object(mut message) = message else {
                continue;
            };
            match message.get("type").and_then(Value::as_str) {
                Some("next") => {
                    return UpstreamEvent::Next(message.remove("payload").unwrap_or(Value::Null))
                }
                Some("error") => {
                    let errors = match message.remove("payload") {
                        Some(Value::Array(errors)) => errors,
                        Some(other) => vec![other],
                        None => Vec::new(),
                    };
                    return UpstreamEvent::Error(errors);
                }
                Some("complete") => return UpstreamEvent::Complete,
                Some("ping") => {
                    if let Err(reason) = self.send(json!({"type": "pong"})).await {
                        return UpstreamEvent::Failed(reason);
                    }
                }
                _ => {}
            }
        }
    }

    /// Stops subscription "1" and closes the socket.
    async fn complete(mut self) {
        let _ = self.send(json!({"id": "1", "type": "complete"})).await;
        self.close().await;
    }

    async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}

// ---- Subscriptions over HTTP: multipart/mixed (Apollo's multipart subscription protocol) ----

/// How often an idle multipart subscription sends an empty `{}` part, so proxies keep it open.
const MULTIPART_HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(5);

/// The content type of a multipart subscription response.
pub const MULTIPART_CONTENT_TYPE: &str =
    "multipart/mixed;boundary=\"graphql\";subscriptionSpec=\"1.0\"";

/// Whether the client accepts subscriptions as `multipart/mixed` (with `subscriptionSpec`).
pub(crate) fn accepts_multipart(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            let range = range.trim();
            range.starts_with("multipart/mixed") && range.contains("subscriptionSpec")
        })
}

/// Serves subscription `request` (prepared as `prepared`) as a streamed `multipart/mixed`
/// response.
pub(crate) fn over_http(
    gateway: &Gateway,
    prepared: Arc<PreparedOperation>,
    request: Request,
    headers: HeaderMap,
) -> axum::response::Response {
    let (tx, rx) = mpsc::channel::<bytes::Bytes>(OUTGOING_BUFFER);
    let heartbeat = tx.downgrade();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(MULTIPART_HEARTBEAT);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            // Only a weak handle: the stream ends as soon as the operation drops its sender.
            let Some(tx) = heartbeat.upgrade() else {
                return;
            };
            if tx.send(multipart_part("{}")).await.is_err() {
                return;
            }
        }
    });
    let gateway = gateway.clone();
    tokio::spawn(async move {
        let closed = tx.clone();
        let delivery = MultipartDelivery { tx, headers };
        let shared = std::sync::Arc::clone(&gateway.inner.shared);
        // The client going away drops the response body, which closes the channel; a drain
        // ends the stream too, so the response (and its connection) can finish.
        let drained = std::sync::atomic::AtomicBool::new(false);
        let cancelled = async {
            tokio::select! {
                () = closed.closed() => {}
                () = shared.drain_started() => drained.store(true, Ordering::Relaxed),
            }
        };
        run_operation(&gateway, &delivery, request, Some(prepared), cancelled).await;
        if drained.load(Ordering::Relaxed) {
            delivery.complete().await;
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|part| (Ok::<_, std::convert::Infallible>(part), rx))
    });
    let mut response = axum::response::Response::new(axum::body::Body::from_stream(stream));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(MULTIPART_CONTENT_TYPE),
    );
    response
}

/// One part of the multipart body.
fn multipart_part(json: &str) -> bytes::Bytes {
    bytes::Bytes::from(format!(
        "\r\n--graphql\r\ncontent-type: application/json\r\n\r\n{json}"
    ))
}

/// The closing delimiter: the subscription is over.
const MULTIPART_END: &[u8] = b"\r\n--graphql--\r\n";

/// A subscription streamed as `multipart/mixed` parts: `{"payload": <result>}` per event,
/// `{"payload": null, "errors": [...]}` when it fails as a whole, `{}` heartbeats.
struct MultipartDelivery {
    tx: mpsc::Sender<bytes::Bytes>,
    headers: HeaderMap,
}

impl Delivery for MultipartDelivery {
    fn headers(&self) -> &HeaderMap {
        &self.headers
    }
    fn is_active(&self) -> bool {
        !self.tx.is_closed()
    }
    async fn next(&self, payload: &[u8]) {
        let part = format!(r#"{{"payload":{}}}"#, String::from_utf8_lossy(payload));
        let _ = self.tx.send(multipart_part(&part)).await;
    }
    async fn error(&self, errors: &[GraphQLError]) {
        let errors = serde_json::to_string(errors).expect("errors serialize");
        let part = format!(r#"{{"payload":null,"errors":{errors}}}"#);
        let _ = self.tx.send(multipart_part(&part)).await;
        let _ = self.tx.send(bytes::Bytes::from_static(MULTIPART_END)).await;
    }
    async fn complete(&self) {
        let _ = self.tx.send(bytes::Bytes::from_static(MULTIPART_END)).await;
    }
    fn transport(&self) -> &'static str {
        "multipart"
    }
}
