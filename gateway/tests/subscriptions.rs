//! Subscriptions through the gateway: a tokio-tungstenite client speaks graphql-transport-ws to
//! the gateway, which subscribes to a real async-graphql subgraph (chat) over WebSocket and
//! fills entity fields from a second subgraph (profile) over HTTP for every event.

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap is the test failing, at that line"
)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_graphql::{
    Context, Data, EmptyMutation, ErrorExtensions, Object, Schema, SimpleObject, Subscription, ID,
};
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse, GraphQLWebSocket};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use futures::{SinkExt, Stream, StreamExt};
use serde_json::{json, Value};
use switchyard_compose::{compose, SubgraphSource};
use switchyard_gateway::{Gateway, GatewayConfig};
use tokio::net::TcpStream;
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

#[path = "common/tls.rs"]
mod tls;

// ---- chat subgraph: owns Message and the subscription ----

#[derive(Clone, Debug, SimpleObject)]
#[graphql(name = "Message")]
struct ChatMessage {
    id: ID,
    body: String,
    sender: Member,
}

/// Member as chat knows it: a key-only reference.
#[derive(Clone, Debug, SimpleObject)]
#[graphql(unresolvable)]
struct Member {
    id: ID,
}

struct ChatQuery;

#[Object(name = "Query")]
impl ChatQuery {
    async fn ping(&self) -> bool {
        true
    }
}

/// What the chat subgraph saw and can be told to do.
#[derive(Clone)]
struct Chat {
    events: broadcast::Sender<(String, ChatMessage)>,
    /// Live `messageAdded` streams (each stream holds a guard that decrements on drop).
    live: Arc<AtomicUsize>,
    /// `connection_init` payloads and upgrade `Authorization` headers received.
    init_payloads: Arc<Mutex<Vec<Value>>>,
    upgrade_auth: Arc<Mutex<Vec<Option<String>>>>,
    /// The token each subscription resolver saw in its context.
    resolver_tokens: Arc<Mutex<Vec<Option<String>>>>,
}

struct LiveGuard(Arc<AtomicUsize>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The token from `connection_init`, put into the subscription's data.
struct Token(String);

struct ChatSubscription;

#[Subscription(name = "Subscription")]
impl ChatSubscription {
    async fn message_added(
        &self,
        ctx: &Context<'_>,
        conversation_id: ID,
    ) -> async_graphql::Result<impl Stream<Item = ChatMessage>> {
        if conversation_id.as_str() == "forbidden" {
            return Err(
                async_graphql::Error::new("not a member of this conversation")
                    .extend_with(|_, e| e.set("code", "FORBIDDEN")),
            );
        }
        let chat = ctx.data_unchecked::<Chat>().clone();
        chat.resolver_tokens
            .lock()
            .unwrap()
            .push(ctx.data_opt::<Token>().map(|t| t.0.clone()));
        chat.live.fetch_add(1, Ordering::SeqCst);
        let guard = LiveGuard(Arc::clone(&chat.live));
        let receiver = chat.events.subscribe();
        Ok(futures::stream::unfold(
            (receiver, guard, conversation_id),
            |(mut receiver, guard, conversation)| async move {
                loop {
                    match receiver.recv().await {
                        Ok((conv, message)) if conv == conversation.as_str() => {
                            return Some((message, (receiver, guard, conversation)))
                        }
                        Ok(_) => continue,
                        Err(_) => return None,
                    }
                }
            },
        ))
    }

    /// Sends `count` numbers, then completes.
    async fn countdown(&self, count: i32) -> impl Stream<Item = i32> {
        futures::stream::iter((0..count).rev())
    }
}

type ChatSchema = Schema<ChatQuery, EmptyMutation, ChatSubscription>;

async fn chat_post(
    State((schema, _)): State<(ChatSchema, Chat)>,
    req: GraphQLRequest,
) -> GraphQLResponse {
    schema.execute(req.into_inner()).await.into()
}

async fn chat_ws(
    State((schema, chat)): State<(ChatSchema, Chat)>,
    request: axum::extract::Request,
) -> Response {
    let (mut parts, _) = request.into_parts();
    let auth = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    chat.upgrade_auth.lock().unwrap().push(auth);
    let protocol = match GraphQLProtocol::from_request_parts(&mut parts, &()).await {
        Ok(p) => p,
        Err(r) => return r.into_response(),
    };
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(u) => u,
        Err(r) => return r.into_response(),
    };
    upgrade
        .protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| {
            GraphQLWebSocket::new(socket, schema, protocol)
                .on_connection_init(move |payload| async move {
                    chat.init_payloads.lock().unwrap().push(payload.clone());
                    let mut data = Data::default();
                    if let Some(token) = payload.get("Authorization").and_then(Value::as_str) {
                        data.insert(Token(token.to_owned()));
                    }
                    Ok(data)
                })
                .serve()
        })
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    addr
}

fn chat_schema(chat: Chat) -> ChatSchema {
    Schema::build(ChatQuery, EmptyMutation, ChatSubscription)
        .data(chat)
        .enable_federation()
        .enable_subscription_in_federation()
        .finish()
}

async fn start_chat() -> (String, Chat, String) {
    let (router, chat, sdl) = chat_router();
    let addr = serve(router).await;
    (format!("http://{addr}/graphql"), chat, sdl)
}

/// The chat subgraph's routes, its state and SDL.
fn chat_router() -> (Router, Chat, String) {
    let chat = Chat {
        events: broadcast::channel(64).0,
        live: Arc::default(),
        init_payloads: Arc::default(),
        upgrade_auth: Arc::default(),
        resolver_tokens: Arc::default(),
    };
    let schema = chat_schema(chat.clone());
    let sdl = schema.sdl_with_options(async_graphql::SDLExportOptions::new().federation());
    let router = Router::new()
        .route("/graphql", post(chat_post).get(chat_ws))
        .with_state((schema, chat.clone()));
    (router, chat, sdl)
}

// ---- profile subgraph: owns Member.displayName ----

#[derive(SimpleObject)]
#[graphql(name = "Member")]
struct Profile {
    id: ID,
    display_name: String,
}

struct ProfileQuery;

#[Object(name = "Query")]
impl ProfileQuery {
    async fn member(&self, id: ID) -> Option<Profile> {
        Some(profile(id))
    }

    #[graphql(entity)]
    async fn find_member_by_id(&self, ctx: &Context<'_>, id: ID) -> Profile {
        ctx.data_unchecked::<Arc<AtomicUsize>>()
            .fetch_add(1, Ordering::SeqCst);
        profile(id)
    }
}

fn profile(id: ID) -> Profile {
    let display_name = format!("Display {}", id.as_str());
    Profile { id, display_name }
}

type ProfileSchema = Schema<ProfileQuery, EmptyMutation, async_graphql::EmptySubscription>;

async fn profile_post(State(schema): State<ProfileSchema>, req: GraphQLRequest) -> GraphQLResponse {
    schema.execute(req.into_inner()).await.into()
}

async fn start_profile() -> (String, Arc<AtomicUsize>, String) {
    let lookups = Arc::new(AtomicUsize::new(0));
    let schema = Schema::build(
        ProfileQuery,
        EmptyMutation,
        async_graphql::EmptySubscription,
    )
    .data(Arc::clone(&lookups))
    .enable_federation()
    .finish();
    let sdl = schema.sdl_with_options(async_graphql::SDLExportOptions::new().federation());
    let router = Router::new()
        .route("/graphql", post(profile_post))
        .with_state(schema);
    let addr = serve(router).await;
    (format!("http://{addr}/graphql"), lookups, sdl)
}

// ---- harness ----

struct Stack {
    gateway_ws: String,
    gateway_http: String,
    chat: Chat,
    profile_lookups: Arc<AtomicUsize>,
}

async fn start_stack(
    configure: impl FnOnce(&mut GatewayConfig),
    chat_url: Option<String>,
) -> Stack {
    let (chat_real_url, chat, chat_sdl) = start_chat().await;
    let (profile_url, profile_lookups, profile_sdl) = start_profile().await;
    let chat_url = chat_url.unwrap_or(chat_real_url);
    let (chat_sdl_copy, profile_sdl_copy) = (chat_sdl.clone(), profile_sdl.clone());
    let composed = compose(&[
        SubgraphSource::new("chat", chat_url, chat_sdl),
        SubgraphSource::new("profile", profile_url, profile_sdl),
    ])
    .unwrap_or_else(|errors| {
        panic!("composition failed: {errors:?}\n{chat_sdl_copy}\n{profile_sdl_copy}")
    });
    let mut config = GatewayConfig::default();
    configure(&mut config);
    let gateway = Gateway::from_supergraph_sdl(&composed.supergraph_sdl, config).unwrap();
    let addr = serve(gateway.router()).await;
    Stack {
        gateway_ws: format!("ws://{addr}/graphql"),
        gateway_http: format!("http://{addr}/graphql"),
        chat,
        profile_lookups,
    }
}

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn connect(url: &str) -> Client {
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(
        response.headers().get("sec-websocket-protocol").unwrap(),
        "graphql-transport-ws"
    );
    socket
}

async fn send(client: &mut Client, message: Value) {
    client
        .send(Message::text(message.to_string()))
        .await
        .unwrap();
}

/// The next text message as JSON, or the close frame as `{"close": code, "reason": ...}`.
async fn recv(client: &mut Client) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), client.next())
            .await
            .expect("no message within 10s");
        match message {
            Some(Ok(Message::Text(text))) => return serde_json::from_str(text.as_str()).unwrap(),
            Some(Ok(Message::Close(frame))) => {
                let (code, reason) = frame
                    .map(|f| (u16::from(f.code), f.reason.to_string()))
                    .unwrap_or((1005, String::new()));
                return json!({"close": code, "reason": reason});
            }
            Some(Ok(_)) => continue,
            Some(Err(err)) => return json!({"transport_error": err.to_string()}),
            None => return json!({"closed": true}),
        }
    }
}

async fn init(client: &mut Client, payload: Value) {
    send(
        client,
        json!({"type": "connection_init", "payload": payload}),
    )
    .await;
    assert_eq!(recv(client).await, json!({"type": "connection_ack"}));
}

/// Waits until `condition` holds (polling), or fails after 5 s.
async fn eventually(what: &str, condition: impl Fn() -> bool) {
    for _ in 0..250 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for: {what}");
}

fn message(id: &str, body: &str, sender: &str) -> ChatMessage {
    ChatMessage {
        id: ID::from(id),
        body: body.to_owned(),
        sender: Member {
            id: ID::from(sender),
        },
    }
}

const MESSAGE_ADDED: &str = "subscription OnMessage($conv: ID!) { messageAdded(conversationId: $conv) { body sender { id displayName } } }";

// ---- tests ----

#[tokio::test]
async fn events_arrive_with_entity_fields_from_another_subgraph_and_auth_is_forwarded() {
    let stack = start_stack(|_| {}, None).await;
    let mut client = connect(&stack.gateway_ws).await;
    init(&mut client, json!({"Authorization": "Bearer token-123"})).await;
    send(
        &mut client,
        json!({"id": "s1", "type": "subscribe", "payload": {
            "query": MESSAGE_ADDED, "operationName": "OnMessage", "variables": {"conv": "c1"}
        }}),
    )
    .await;
    let live = Arc::clone(&stack.chat.live);
    eventually("the upstream subscription", || {
        live.load(Ordering::SeqCst) == 1
    })
    .await;

    // The token from the client's connection_init reached the subgraph both ways.
    assert_eq!(
        stack.chat.init_payloads.lock().unwrap().as_slice(),
        &[json!({"Authorization": "Bearer token-123"})]
    );
    assert_eq!(
        stack.chat.upgrade_auth.lock().unwrap().as_slice(),
        &[Some("Bearer token-123".to_owned())]
    );
    assert_eq!(
        stack.chat.resolver_tokens.lock().unwrap().as_slice(),
        &[Some("Bearer token-123".to_owned())]
    );

    stack
        .chat
        .events
        .send(("other".into(), message("m0", "elsewhere", "u9")))
        .unwrap();
    stack
        .chat
        .events
        .send(("c1".into(), message("m1", "hello", "u1")))
        .unwrap();
    stack
        .chat
        .events
        .send(("c1".into(), message("m2", "again", "u2")))
        .unwrap();
    assert_eq!(
        recv(&mut client).await,
        json!({"id": "s1", "type": "next", "payload": {"data": {"messageAdded": {
            "body": "hello", "sender": {"id": "u1", "displayName": "Display u1"}
        }}}})
    );
    assert_eq!(
        recv(&mut client).await,
        json!({"id": "s1", "type": "next", "payload": {"data": {"messageAdded": {
            "body": "again", "sender": {"id": "u2", "displayName": "Display u2"}
        }}}})
    );
    assert_eq!(stack.profile_lookups.load(Ordering::SeqCst), 2);

    // complete from the client stops the upstream subscription.
    send(&mut client, json!({"id": "s1", "type": "complete"})).await;
    eventually("the upstream stream to end", || {
        live.load(Ordering::SeqCst) == 0
    })
    .await;

    // The id can be reused after completion; ping is answered.
    send(&mut client, json!({"type": "ping"})).await;
    assert_eq!(recv(&mut client).await, json!({"type": "pong"}));
}

#[tokio::test]
async fn upstream_complete_is_forwarded_and_queries_work_over_the_socket() {
    let stack = start_stack(|_| {}, None).await;
    let mut client = connect(&stack.gateway_ws).await;
    init(&mut client, json!({})).await;
    send(
        &mut client,
        json!({"id": "c", "type": "subscribe", "payload": {"query": "subscription { countdown(count: 2) }"}}),
    )
    .await;
    assert_eq!(
        recv(&mut client).await,
        json!({"id": "c", "type": "next", "payload": {"data": {"countdown": 1}}})
    );
    assert_eq!(
        recv(&mut client).await,
        json!({"id": "c", "type": "next", "payload": {"data": {"countdown": 0}}})
    );
    assert_eq!(
        recv(&mut client).await,
        json!({"id": "c", "type": "complete"})
    );

    // A query with `subscribe`: one result, then complete.
    send(
        &mut client,
        json!({"id": "q", "type": "subscribe", "payload": {"query": "{ member(id: \"u5\") { displayName } }"}}),
    )
    .await;
    assert_eq!(
        recv(&mut client).await,
        json!({"id": "q", "type": "next", "payload": {"data": {"member": {"displayName": "Display u5"}}}})
    );
    assert_eq!(
        recv(&mut client).await,
        json!({"id": "q", "type": "complete"})
    );
}

#[tokio::test]
async fn validation_errors_are_error_messages() {
    let stack = start_stack(|_| {}, None).await;
    let mut client = connect(&stack.gateway_ws).await;
    init(&mut client, json!({})).await;
    send(
        &mut client,
        json!({"id": "bad", "type": "subscribe", "payload": {"query": "subscription { nope }"}}),
    )
    .await;
    let reply = recv(&mut client).await;
    assert_eq!(reply["id"], "bad");
    assert_eq!(reply["type"], "error");
    assert_eq!(
        reply["payload"][0]["extensions"]["code"],
        "GRAPHQL_VALIDATION_FAILED"
    );
    // A missing required variable is a clear error too.
    send(
        &mut client,
        json!({"id": "var", "type": "subscribe", "payload": {"query": MESSAGE_ADDED}}),
    )
    .await;
    let reply = recv(&mut client).await;
    assert_eq!(reply["type"], "error");
    assert_eq!(reply["payload"][0]["extensions"]["code"], "BAD_USER_INPUT");
    // The connection stays usable.
    send(&mut client, json!({"type": "ping"})).await;
    assert_eq!(recv(&mut client).await, json!({"type": "pong"}));
}

#[tokio::test]
async fn subgraph_down_is_an_error_naming_the_service() {
    let dead = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        format!("http://{addr}/graphql")
    };
    let stack = start_stack(|_| {}, Some(dead)).await;
    let mut client = connect(&stack.gateway_ws).await;
    init(&mut client, json!({})).await;
    send(
        &mut client,
        json!({"id": "s", "type": "subscribe", "payload": {
            "query": MESSAGE_ADDED, "variables": {"conv": "c1"}
        }}),
    )
    .await;
    let reply = recv(&mut client).await;
    assert_eq!(reply["id"], "s");
    assert_eq!(reply["type"], "error", "{reply}");
    let error = &reply["payload"][0];
    assert_eq!(error["extensions"]["code"], "SUBGRAPH_REQUEST_FAILED");
    assert_eq!(error["extensions"]["serviceName"], "chat");
    assert!(
        error["message"].as_str().unwrap().contains("chat"),
        "{error}"
    );

    // Over multipart HTTP the same failure is a final part with `payload: null` and the errors.
    use http_body_util::BodyExt;
    let (status, _, body) = post_multipart(
        &stack.gateway_http,
        json!({"query": MESSAGE_ADDED, "variables": {"conv": "c1"}}),
    )
    .await;
    assert_eq!(status, 200);
    let bytes = body.collect().await.unwrap().to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(text.ends_with("\r\n--graphql--\r\n"), "{text:?}");
    let parts = multipart_parts(&text);
    assert_eq!(parts.len(), 1, "{text}");
    assert_eq!(parts[0]["payload"], Value::Null);
    assert_eq!(
        parts[0]["errors"][0]["extensions"]["code"],
        "SUBGRAPH_REQUEST_FAILED"
    );
    assert_eq!(parts[0]["errors"][0]["extensions"]["serviceName"], "chat");
}

#[tokio::test]
async fn protocol_violations_close_with_the_right_code() {
    let stack = start_stack(
        |c| c.subscription_init_timeout = Duration::from_millis(300),
        None,
    )
    .await;
    let subscribe = json!({"id": "1", "type": "subscribe", "payload": {"query": "subscription { countdown(count: 1) }"}});

    // subscribe before connection_init -> 4401
    let mut client = connect(&stack.gateway_ws).await;
    send(&mut client, subscribe.clone()).await;
    assert_eq!(recv(&mut client).await["close"], 4401);

    // no connection_init in time -> 4408
    let mut client = connect(&stack.gateway_ws).await;
    assert_eq!(recv(&mut client).await["close"], 4408);

    // invalid messages -> 4400
    let mut client = connect(&stack.gateway_ws).await;
    client.send(Message::text("not json")).await.unwrap();
    assert_eq!(recv(&mut client).await["close"], 4400);
    let mut client = connect(&stack.gateway_ws).await;
    init(&mut client, json!({})).await;
    send(
        &mut client,
        json!({"type": "subscribe", "payload": {"query": "{ ping }"}}),
    )
    .await;
    assert_eq!(recv(&mut client).await["close"], 4400);

    // a second connection_init -> 4429
    let mut client = connect(&stack.gateway_ws).await;
    init(&mut client, json!({})).await;
    send(&mut client, json!({"type": "connection_init"})).await;
    assert_eq!(recv(&mut client).await["close"], 4429);

    // a duplicate id while the first is running -> 4409
    let mut client = connect(&stack.gateway_ws).await;
    init(&mut client, json!({})).await;
    let long = json!({"id": "dup", "type": "subscribe", "payload": {
        "query": MESSAGE_ADDED, "variables": {"conv": "c1"}
    }});
    send(&mut client, long.clone()).await;
    send(&mut client, long).await;
    let reply = recv(&mut client).await;
    assert_eq!(reply["close"], 4409, "{reply}");
    // Closing the client connection ends its upstream subscriptions.
    let live = Arc::clone(&stack.chat.live);
    eventually("upstream streams to end", || {
        live.load(Ordering::SeqCst) == 0
    })
    .await;
}

#[tokio::test]
async fn too_many_subscriptions_on_one_connection_is_an_error() {
    let stack = start_stack(|c| c.max_subscriptions_per_connection = 1, None).await;
    let mut client = connect(&stack.gateway_ws).await;
    init(&mut client, json!({})).await;
    let sub = |id: &str| {
        json!({"id": id, "type": "subscribe", "payload": {
            "query": MESSAGE_ADDED, "variables": {"conv": "c1"}
        }})
    };
    send(&mut client, sub("a")).await;
    send(&mut client, sub("b")).await;
    let reply = recv(&mut client).await;
    assert_eq!(reply["id"], "b");
    assert_eq!(reply["type"], "error");
    assert!(reply["payload"][0]["message"]
        .as_str()
        .unwrap()
        .contains("at most 1"));
}

#[tokio::test]
async fn subscriptions_can_be_switched_off_and_are_refused_over_http() {
    let stack = start_stack(|c| c.subscriptions = false, None).await;
    let mut request = stack.gateway_ws.as_str().into_client_request().unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let err = tokio_tungstenite::connect_async(request).await.unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(response) => {
            assert_eq!(response.status(), 400)
        }
        other => panic!("expected an HTTP 400 refusal, got {other}"),
    }

    // Over POST, a subscription gets a clear GraphQL error.
    let body = json!({"query": "subscription { countdown(count: 1) }"}).to_string();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let request = http::Request::post(&stack.gateway_http)
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let response = client.request(request).await.unwrap();
    use http_body_util::BodyExt;
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(json["errors"][0]["extensions"]["code"], "BAD_REQUEST");
    assert!(json["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("WebSocket"));
}

#[tokio::test]
async fn wrong_subprotocol_is_refused_and_graphiql_get_still_works() {
    let stack = start_stack(|_| {}, None).await;
    let request = stack.gateway_ws.as_str().into_client_request().unwrap();
    let err = tokio_tungstenite::connect_async(request).await.unwrap_err();
    assert!(
        matches!(&err, tokio_tungstenite::tungstenite::Error::Http(r) if r.status() == 400),
        "{err}"
    );

    // Without an upgrade, GET /graphql still serves GraphiQL to browsers.
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let request = http::Request::get(&stack.gateway_http)
        .header("accept", "text/html")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
}

#[test]
fn the_platform_chat_subscription_plans_to_a_chat_root_fetch_and_a_profile_entity_fetch() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schema/supergraph.graphql");
    let sdl = std::fs::read_to_string(&path).unwrap();
    let gateway = Gateway::from_supergraph_sdl(&sdl, GatewayConfig::default()).unwrap();
    let plan = gateway
        .plan(
            "subscription($c: ID!) { messageAdded(conversationId: $c) { body sender { displayName } } }",
            None,
        )
        .unwrap();
    let json = serde_json::to_value(&plan).unwrap();
    let node = &json["node"];
    assert_eq!(node["kind"], "Sequence", "{node}");
    let root = &node["nodes"][0];
    assert_eq!(root["kind"], "Fetch");
    assert_eq!(root["service_name"], "chat");
    assert_eq!(root["operation_kind"], "Subscription");
    assert!(root["operation"]
        .as_str()
        .unwrap()
        .starts_with("subscription"));
    let entity = &node["nodes"][1];
    assert_eq!(entity["kind"], "Flatten", "{entity}");
    assert_eq!(entity["node"]["service_name"], "profile");
}

#[tokio::test]
async fn subgraph_errors_reach_the_client_with_the_service_name() {
    let stack = start_stack(|_| {}, None).await;
    let mut client = connect(&stack.gateway_ws).await;
    init(&mut client, json!({})).await;
    send(
        &mut client,
        json!({"id": "f", "type": "subscribe", "payload": {
            "query": MESSAGE_ADDED, "variables": {"conv": "forbidden"}
        }}),
    )
    .await;
    let reply = recv(&mut client).await;
    assert_eq!(reply["id"], "f", "{reply}");
    // The subgraph answers a failing source stream with one `next` carrying the error, then
    // `complete`; both pass through, the error keeping its path and naming the service.
    assert_eq!(reply["type"], "next", "{reply}");
    assert_eq!(reply["payload"]["data"], Value::Null, "{reply}");
    assert_eq!(
        recv(&mut client).await,
        json!({"id": "f", "type": "complete"})
    );
    let errors = &reply["payload"]["errors"];
    assert_eq!(errors[0]["path"], json!(["messageAdded"]));
    assert_eq!(errors[0]["message"], "not a member of this conversation");
    assert_eq!(errors[0]["extensions"]["code"], "FORBIDDEN");
    assert_eq!(errors[0]["extensions"]["serviceName"], "chat");
}

#[tokio::test]
async fn authorization_is_not_forwarded_unless_propagated() {
    let stack = start_stack(|c| c.propagate_headers.clear(), None).await;
    let mut client = connect(&stack.gateway_ws).await;
    init(&mut client, json!({"Authorization": "Bearer secret"})).await;
    send(
        &mut client,
        json!({"id": "s", "type": "subscribe", "payload": {
            "query": MESSAGE_ADDED, "variables": {"conv": "c1"}
        }}),
    )
    .await;
    let live = Arc::clone(&stack.chat.live);
    eventually("the upstream subscription", || {
        live.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(
        stack.chat.init_payloads.lock().unwrap().as_slice(),
        &[json!({})]
    );
    assert_eq!(stack.chat.upgrade_auth.lock().unwrap().as_slice(), &[None]);
}

#[test]
fn subscription_settings_load_from_toml_and_environment() {
    let mut config = GatewayConfig::default();
    assert!(config.subscriptions);
    config
        .apply_toml(
            "subscriptions = false\nmax_subscriptions_per_connection = 7\nsubscription_init_timeout = \"2s\"\nsubscription_keepalive = \"30s\"",
        )
        .unwrap();
    assert_eq!(config.subscription_keepalive, Duration::from_secs(30));
    assert!(!config.subscriptions);
    assert_eq!(config.max_subscriptions_per_connection, 7);
    assert_eq!(config.subscription_init_timeout, Duration::from_secs(2));
    config
        .apply_env([
            ("SWITCHYARD_SUBSCRIPTIONS".to_owned(), "on".to_owned()),
            (
                "SWITCHYARD_MAX_SUBSCRIPTIONS_PER_CONNECTION".to_owned(),
                "3".to_owned(),
            ),
            (
                "SWITCHYARD_SUBSCRIPTION_INIT_TIMEOUT".to_owned(),
                "250ms".to_owned(),
            ),
            (
                "SWITCHYARD_SUBSCRIPTION_KEEPALIVE".to_owned(),
                "0".to_owned(),
            ),
        ])
        .unwrap();
    assert_eq!(config.subscription_keepalive, Duration::ZERO);
    assert!(config.subscriptions);
    assert_eq!(config.max_subscriptions_per_connection, 3);
    assert_eq!(config.subscription_init_timeout, Duration::from_millis(250));
}

/// Prints event latency and throughput through the gateway (each event costs one entity fetch).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement: cargo test -p switchyard-gateway --test subscriptions -- --ignored --nocapture"]
async fn measure_event_throughput() {
    let stack = start_stack(|_| {}, None).await;
    let mut client = connect(&stack.gateway_ws).await;
    init(&mut client, json!({})).await;
    send(
        &mut client,
        json!({"id": "m", "type": "subscribe", "payload": {
            "query": MESSAGE_ADDED, "variables": {"conv": "c1"}
        }}),
    )
    .await;
    let live = Arc::clone(&stack.chat.live);
    eventually("the upstream subscription", || {
        live.load(Ordering::SeqCst) == 1
    })
    .await;
    // One at a time: latency from publish to the shaped event at the client.
    let rounds = 200;
    let started = std::time::Instant::now();
    for i in 0..rounds {
        let sender = format!("u{i}");
        stack
            .chat
            .events
            .send(("c1".into(), message("m", "hi", &sender)))
            .unwrap();
        let reply = recv(&mut client).await;
        assert_eq!(
            reply["payload"]["data"]["messageAdded"]["sender"]["displayName"],
            format!("Display {sender}")
        );
    }
    let sequential = started.elapsed();
    // Bursts: throughput with events queued up (broadcast capacity 64).
    let bursts = 20;
    let per_burst = 50;
    let started = std::time::Instant::now();
    for _ in 0..bursts {
        for i in 0..per_burst {
            stack
                .chat
                .events
                .send(("c1".into(), message("m", "hi", &format!("b{i}"))))
                .unwrap();
        }
        for _ in 0..per_burst {
            assert_eq!(recv(&mut client).await["type"], "next");
        }
    }
    let burst = started.elapsed();
    println!(
        "sequential: {rounds} events, {:.3} ms/event; bursts: {} events in {:.1} ms ({:.0} events/s)",
        sequential.as_secs_f64() * 1000.0 / rounds as f64,
        bursts * per_burst,
        burst.as_secs_f64() * 1000.0,
        (bursts * per_burst) as f64 / burst.as_secs_f64()
    );
}

/// POSTs `body` accepting multipart subscriptions; returns the status, content type and body.
async fn post_multipart(
    url: &str,
    body: Value,
) -> (http::StatusCode, String, hyper::body::Incoming) {
    post_multipart_with(url, body, &[]).await
}

/// [`post_multipart`] with extra request headers.
async fn post_multipart_with(
    url: &str,
    body: Value,
    headers: &[(&str, &str)],
) -> (http::StatusCode, String, hyper::body::Incoming) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let mut request = http::Request::post(url)
        .header("content-type", "application/json")
        .header(
            "accept",
            "multipart/mixed;subscriptionSpec=\"1.0\", application/json",
        );
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(http_body_util::Full::new(bytes::Bytes::from(
            body.to_string(),
        )))
        .unwrap();
    let response = client.request(request).await.unwrap();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    (response.status(), content_type, response.into_body())
}

/// The JSON parts of a multipart body read so far (heartbeats `{}` included).
fn multipart_parts(text: &str) -> Vec<Value> {
    text.split("\r\n--graphql")
        .filter_map(|part| part.split_once("\r\n\r\n").map(|(_, json)| json))
        .map(|json| serde_json::from_str(json).unwrap())
        .collect()
}

#[tokio::test]
async fn subscriptions_stream_over_http_as_multipart() {
    use http_body_util::BodyExt;
    let stack = start_stack(|_| {}, None).await;
    let (status, content_type, body) = post_multipart(
        &stack.gateway_http,
        json!({"query": "subscription { countdown(count: 2) }"}),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("multipart/mixed"),
        "{content_type}"
    );
    let bytes = tokio::time::timeout(Duration::from_secs(10), body.collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(text.ends_with("\r\n--graphql--\r\n"), "{text:?}");
    assert_eq!(
        multipart_parts(&text),
        vec![
            json!({"payload": {"data": {"countdown": 1}}}),
            json!({"payload": {"data": {"countdown": 0}}}),
        ]
    );

    // With entity fields from the second subgraph; dropping the response stops the upstream.
    let (_, _, mut body) = post_multipart(
        &stack.gateway_http,
        json!({"query": MESSAGE_ADDED, "variables": {"conv": "c7"}}),
    )
    .await;
    let live = Arc::clone(&stack.chat.live);
    eventually("the upstream subscription", || {
        live.load(Ordering::SeqCst) == 1
    })
    .await;
    stack
        .chat
        .events
        .send(("c7".into(), message("m1", "over http", "u3")))
        .unwrap();
    let mut text = String::new();
    while multipart_parts(&text).is_empty() {
        let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(std::str::from_utf8(&frame.into_data().unwrap()).unwrap());
    }
    assert_eq!(
        multipart_parts(&text)[0],
        json!({"payload": {"data": {"messageAdded": {
            "body": "over http", "sender": {"id": "u3", "displayName": "Display u3"}
        }}}})
    );
    drop(body);
    eventually("the upstream stream to end", || {
        live.load(Ordering::SeqCst) == 0
    })
    .await;

    // Without multipart in Accept, a subscription over POST is still a clear error; with it,
    // a plain query is answered as usual.
    let (status, content_type, body) = post_multipart(
        &stack.gateway_http,
        json!({"query": "{ member(id: \"u1\") { displayName } }"}),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let bytes = body.collect().await.unwrap().to_bytes();
    let json: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        json,
        json!({"data": {"member": {"displayName": "Display u1"}}})
    );
}

#[tokio::test]
async fn quiet_connections_get_ping_frames_unless_keepalive_is_off() {
    async fn pings_within(stack: &Stack, wait: Duration) -> usize {
        let mut client = connect(&stack.gateway_ws).await;
        init(&mut client, json!({})).await;
        let mut pings = 0;
        let deadline = tokio::time::Instant::now() + wait;
        while let Ok(Some(frame)) = tokio::time::timeout_at(deadline, client.next()).await {
            if let Ok(Message::Ping(_)) = frame {
                pings += 1;
            }
        }
        pings
    }
    let stack = start_stack(
        |c| c.subscription_keepalive = Duration::from_millis(100),
        None,
    )
    .await;
    assert!(pings_within(&stack, Duration::from_millis(650)).await >= 3);
    let stack = start_stack(|c| c.subscription_keepalive = Duration::ZERO, None).await;
    assert_eq!(pings_within(&stack, Duration::from_millis(400)).await, 0);
}

#[tokio::test]
async fn subscriptions_reach_an_https_subgraph_over_wss_with_its_tls_settings() {
    // A second chat subgraph, served only over TLS with a CA made for this test.
    let ca = tls::TestCa::new("wss");
    let (router, secure_chat, _) = chat_router();
    let server = tls::server_config(&ca.server(), &[b"http/1.1"], None);
    let addr = tls::serve(router, Some(server)).await;
    let url = format!("https://127.0.0.1:{}/graphql", addr.port());
    let countdown = json!({"id": "c", "type": "subscribe", "payload": {"query": "subscription { countdown(count: 2) }"}});

    // Not trusted: the subscription fails with the reason.
    let stack = start_stack(|_| {}, Some(url.clone())).await;
    let mut client = connect(&stack.gateway_ws).await;
    init(&mut client, json!({})).await;
    send(&mut client, countdown.clone()).await;
    let reply = recv(&mut client).await;
    assert_eq!(reply["type"], "error", "{reply}");
    let message = reply["payload"][0]["message"].as_str().unwrap();
    assert!(message.contains("wss://127.0.0.1"), "{message}");
    assert!(message.contains("UnknownIssuer"), "{message}");

    // Trusted through the subgraph's own tls_ca_file: events flow over wss://.
    let ca_file = ca.ca_file();
    let stack = start_stack(
        move |config| {
            config
                .apply_toml(&format!(
                    "[subgraphs.chat]\ntls_ca_file = {:?}",
                    ca_file.display().to_string()
                ))
                .unwrap();
        },
        Some(url),
    )
    .await;
    let mut client = connect(&stack.gateway_ws).await;
    init(&mut client, json!({"Authorization": "Bearer wss"})).await;
    send(&mut client, countdown).await;
    for n in [1, 0] {
        assert_eq!(
            recv(&mut client).await,
            json!({"id": "c", "type": "next", "payload": {"data": {"countdown": n}}})
        );
    }
    assert_eq!(
        recv(&mut client).await,
        json!({"id": "c", "type": "complete"})
    );
    let payloads = secure_chat.init_payloads.lock().unwrap().clone();
    assert_eq!(payloads, [json!({"Authorization": "Bearer wss"})]);
}

/// A multipart subscription is traced like a WebSocket one: one span for its life under the
/// client's `traceparent` (on the POST), with how it ended and how many events it sent; the
/// upstream subscription under it, failed with the reason when the subgraph cannot be reached.
#[tokio::test]
async fn multipart_subscriptions_are_traced_from_start_to_end() {
    use http_body_util::BodyExt;
    use switchyard_telemetry::trace::receiver::OtlpReceiver;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const FAILED_TRACE: &str = "7d3c2b1a0f9e8d7c6b5a493827160514";
    let receiver = OtlpReceiver::start().await.unwrap();
    let endpoint = receiver.endpoint().to_owned();
    let stack = start_stack(|config| config.otlp_endpoint = Some(endpoint), None).await;
    let traceparent = format!("00-{TRACE}-00f067aa0ba902b7-01");
    let (status, _, body) = post_multipart_with(
        &stack.gateway_http,
        json!({"query": "subscription Countdown { countdown(count: 2) }"}),
        &[("traceparent", &traceparent)],
    )
    .await;
    assert_eq!(status, 200);
    tokio::time::timeout(Duration::from_secs(10), body.collect())
        .await
        .expect("the countdown completes")
        .unwrap();

    let spans = receiver
        .wait_for(Duration::from_secs(10), |spans| {
            spans.iter().any(|s| s.name == "subscription Countdown")
        })
        .await;
    let subscription = spans
        .iter()
        .find(|s| s.name == "subscription Countdown")
        .unwrap_or_else(|| panic!("no subscription span in {spans:#?}"));
    assert_eq!(subscription.trace_id, TRACE);
    assert_eq!(subscription.kind, 2);
    assert_eq!(
        subscription.parent_span_id.as_deref(),
        Some("00f067aa0ba902b7")
    );
    assert_eq!(
        subscription.attribute("switchyard.outcome"),
        Some("completed")
    );
    assert_eq!(
        subscription.attribute("switchyard.subscription.transport"),
        Some("multipart")
    );
    assert_eq!(
        subscription.attribute("switchyard.subscription.events"),
        Some("2")
    );
    assert_eq!(subscription.error, None);
    let upstream = spans
        .iter()
        .find(|s| s.name == "subgraph chat" && s.trace_id == TRACE)
        .unwrap_or_else(|| panic!("no upstream span in {spans:#?}"));
    assert_eq!(
        upstream.parent_span_id.as_deref(),
        Some(subscription.span_id.as_str())
    );
    let events = spans
        .iter()
        .filter(|s| {
            s.name == "subscription event"
                && s.parent_span_id.as_deref() == Some(subscription.span_id.as_str())
        })
        .count();
    assert_eq!(events, 2, "{spans:#?}");

    // A subgraph that cannot be reached: the subscription's span says it failed, and why.
    let dead = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        format!("http://{addr}/graphql")
    };
    let endpoint = receiver.endpoint().to_owned();
    let broken = start_stack(|config| config.otlp_endpoint = Some(endpoint), Some(dead)).await;
    let traceparent = format!("00-{FAILED_TRACE}-00f067aa0ba902b7-01");
    let (_, _, body) = post_multipart_with(
        &broken.gateway_http,
        json!({"query": MESSAGE_ADDED, "variables": {"conv": "c1"}}),
        &[("traceparent", &traceparent)],
    )
    .await;
    body.collect().await.unwrap();
    let spans = receiver
        .wait_for(Duration::from_secs(10), |spans| {
            spans
                .iter()
                .any(|s| s.trace_id == FAILED_TRACE && s.kind == 2)
        })
        .await;
    let failed = spans
        .iter()
        .find(|s| s.trace_id == FAILED_TRACE && s.kind == 2)
        .unwrap_or_else(|| panic!("no span for the failed subscription in {spans:#?}"));
    assert_eq!(failed.attribute("switchyard.outcome"), Some("failed"));
    let reason = failed.error.as_deref().expect("an error status");
    assert!(reason.contains("could not connect"), "{reason}");
}
