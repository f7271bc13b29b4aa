//! The subgraph router served on a real socket: queries over POST and GET, federation's
//! `_service`, subscriptions over graphql-transport-ws, probes, graceful shutdown.

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap is the test failing, at that line"
)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_graphql::{EmptyMutation, Object, Schema, SimpleObject, Subscription, ID};
use futures::future::BoxFuture;
use futures::{SinkExt, Stream, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use switchyard_subgraph_kit::server::{self, NotReady, ReadinessCheck};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

#[derive(SimpleObject)]
struct Member {
    id: ID,
    name: String,
}

struct Query;

/// Set once the slow resolver runs, so the test signals shutdown while it is surely in flight.
static SLOW_STARTED: AtomicBool = AtomicBool::new(false);

#[Object]
impl Query {
    async fn member(&self, id: ID) -> Member {
        Member {
            name: format!("member {}", id.as_str()),
            id,
        }
    }

    /// Takes a while, to have a request in flight during shutdown.
    async fn slow(&self, millis: u64) -> u64 {
        SLOW_STARTED.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(millis)).await;
        millis
    }

    #[graphql(entity)]
    async fn member_by_id(&self, id: ID) -> Member {
        Member {
            name: format!("member {}", id.as_str()),
            id,
        }
    }
}

struct Ticks;

#[Subscription]
impl Ticks {
    async fn ticks(&self, count: i32) -> impl Stream<Item = i32> {
        futures::stream::iter(0..count)
    }
}

type TestSchema = Schema<Query, EmptyMutation, Ticks>;

/// Readiness that the test flips, standing in for "the database went away".
struct Switch(Arc<AtomicBool>);

impl ReadinessCheck for Switch {
    fn check(&self) -> BoxFuture<'_, Result<(), NotReady>> {
        let up = self.0.load(Ordering::SeqCst);
        Box::pin(async move {
            if up {
                Ok(())
            } else {
                Err(NotReady("database: connection refused".into()))
            }
        })
    }
}

async fn request(method: &str, url: String, body: Option<Value>) -> (u16, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut builder = http::Request::builder().method(method).uri(url);
    let body = match body {
        Some(v) => {
            builder = builder.header("content-type", "application/json");
            Full::new(Bytes::from(v.to_string()))
        }
        None => Full::new(Bytes::new()),
    };
    let response = client.request(builder.body(body).unwrap()).await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test]
async fn serves_graphql_probes_and_subscriptions_then_shuts_down_gracefully() {
    let schema: TestSchema = Schema::build(Query, EmptyMutation, Ticks)
        .enable_federation()
        .enable_subscription_in_federation()
        .finish();
    let up = Arc::new(AtomicBool::new(true));
    let router = server::router(schema, Arc::new(Switch(up.clone())));
    let listener = server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server::serve(listener, router, async {
        let _ = stopped.await;
    }));
    let base = format!("http://{addr}");

    let (status, body) = request(
        "POST",
        format!("{base}/graphql"),
        Some(json!({"query": "{ member(id: \"7\") { id name } }"})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"data": {"member": {"id": "7", "name": "member 7"}}})
    );

    let (status, body) = request(
        "GET",
        format!("{base}/graphql?query=%7Bmember(id:%228%22)%7Bname%7D%7D"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"data": {"member": {"name": "member 8"}}})
    );

    // What the gateway sends: `_entities` and `_service`.
    let (_, body) = request(
        "POST",
        format!("{base}/graphql"),
        Some(json!({
            "query": "query($r: [_Any!]!) { _entities(representations: $r) { ... on Member { name } } _service { sdl } }",
            "variables": {"r": [{"__typename": "Member", "id": "9"}]}
        })),
    )
    .await;
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["data"]["_entities"], json!([{"name": "member 9"}]));
    assert!(body["data"]["_service"]["sdl"]
        .as_str()
        .unwrap()
        .contains("@key(fields: \"id\")"));

    assert_eq!(
        request("GET", format!("{base}/health"), None).await,
        (200, "ok".into())
    );
    assert_eq!(
        request("GET", format!("{base}/ready"), None).await,
        (200, "ready".into())
    );
    up.store(false, Ordering::SeqCst);
    let (status, body) = request("GET", format!("{base}/ready"), None).await;
    assert_eq!(status, 503);
    assert!(body.contains("connection refused"), "{body}");
    assert_eq!(
        request("GET", format!("{base}/health"), None).await.0,
        200,
        "liveness does not depend on the store"
    );

    // graphql-transport-ws on the same path.
    let mut ws_request = format!("ws://{addr}/graphql")
        .into_client_request()
        .unwrap();
    ws_request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut ws, response) = tokio_tungstenite::connect_async(ws_request).await.unwrap();
    assert_eq!(
        response.headers()["sec-websocket-protocol"],
        "graphql-transport-ws"
    );
    let send = |v: Value| Message::Text(v.to_string().into());
    ws.send(send(json!({"type": "connection_init"})))
        .await
        .unwrap();
    let mut ticks = Vec::new();
    let mut completed = false;
    ws.send(send(json!({
        "type": "subscribe", "id": "1",
        "payload": {"query": "subscription { ticks(count: 3) }"}
    })))
    .await
    .unwrap();
    while let Some(message) = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("subscription stalled")
    {
        let Message::Text(text) = message.unwrap() else {
            continue;
        };
        let frame: Value = serde_json::from_str(&text).unwrap();
        match frame["type"].as_str().unwrap() {
            "connection_ack" => {}
            "next" => ticks.push(frame["payload"]["data"]["ticks"].as_i64().unwrap()),
            "complete" => {
                completed = true;
                break;
            }
            other => panic!("unexpected frame {other}: {frame}"),
        }
    }
    assert!(completed);
    assert_eq!(ticks, [0, 1, 2]);
    drop(ws);

    // Graceful: a request in flight when the signal arrives still gets its answer.
    let in_flight = tokio::spawn(request(
        "POST",
        format!("{base}/graphql"),
        Some(json!({"query": "{ slow(millis: 200) }"})),
    ));
    while !SLOW_STARTED.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.send(()).unwrap();
    let (status, body) = in_flight.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"data": {"slow": 200}})
    );
    tokio::time::timeout(Duration::from_secs(5), serving)
        .await
        .expect("server stops after the shutdown signal")
        .unwrap()
        .unwrap();
}
