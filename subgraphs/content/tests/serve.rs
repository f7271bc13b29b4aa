//! The service over HTTP on a loopback port: mutations with a bearer token, the background
//! indexer making new posts searchable within milliseconds, events consumed from the bus, and
//! a clean shutdown.

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap is the test failing, at that line"
)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use switchyard_subgraph_kit::{Event, EventBus};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

async fn post_graphql(
    addr: std::net::SocketAddr,
    token: Option<&str>,
    query: &str,
    vars: Value,
) -> Value {
    let body = json!({"query": query, "variables": vars}).to_string();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!(
        "POST /graphql HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8(response).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

async fn get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test]
async fn serves_indexes_in_the_background_and_consumes_events() {
    let env = Env::new(Backend::Sqlite).await.unwrap();
    let bus = EventBus::in_process();
    let service = env.open_with_bus(bus.clone()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(service.serve(listener, shutdown.clone()));

    assert!(get(addr, "/health").await.starts_with("HTTP/1.1 200"));
    assert!(get(addr, "/ready").await.starts_with("HTTP/1.1 200"));

    let (ada_id, bob_id) = (member(), member());
    let (ada, bob) = (env.token(&ada_id), env.token(&bob_id));
    let created = post_graphql(
        addr,
        Some(&ada),
        "mutation { createPost(body: \"Background indexing keeps up\", visibility: CONNECTIONS) { id author { id } } }",
        json!({}),
    )
    .await;
    let id = created["data"]["createPost"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        created["data"]["createPost"]["author"]["id"],
        ada_id.as_str()
    );

    // The commit wakes the indexer: searchable well before the 500 ms poll interval.
    let started = Instant::now();
    let search = "{ searchPosts(query: \"indexing\") { edges { node { id } } } }";
    loop {
        let r = post_graphql(addr, Some(&ada), search, json!({})).await;
        if r["data"]["searchPosts"]["edges"]
            .as_array()
            .is_some_and(|e| !e.is_empty())
        {
            assert_eq!(
                r["data"]["searchPosts"]["edges"][0]["node"]["id"],
                id.as_str()
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "never indexed: {r}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let latency = started.elapsed();
    eprintln!("create → searchable: {latency:?}");
    // Without the wake it would take up to the 500 ms poll interval.
    assert!(latency < Duration::from_millis(450), "{latency:?}");

    // Bob is not connected yet; the profile service's event (via the bus) changes that.
    let r = post_graphql(addr, Some(&bob), search, json!({})).await;
    assert_eq!(r["data"]["searchPosts"]["edges"], json!([]));
    let accepted = Event::new(
        "connection.accepted",
        bob_id.clone(),
        json!({"memberId": bob_id, "otherMemberId": ada_id}),
    )
    .unwrap();
    bus.publish(&accepted).await.unwrap();
    let started = Instant::now();
    loop {
        let r = post_graphql(addr, Some(&bob), search, json!({})).await;
        if r["data"]["searchPosts"]["edges"]
            .as_array()
            .is_some_and(|e| e.len() == 1)
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "event not consumed: {r}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let r = post_graphql(
        addr,
        None,
        "mutation { deletePost(id: \"00000000-0000-0000-0000-000000000000\") }",
        json!({}),
    )
    .await;
    assert_eq!(r["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("shutdown in time")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn outbox_events_reach_the_bus() {
    let env = Env::new(Backend::Sqlite).await.unwrap();
    let bus = EventBus::in_process();
    let mut observer = bus.subscribe("observer").await.unwrap();
    let service = env.open_with_bus(bus.clone()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(service.serve(listener, shutdown.clone()));
    let ada_id = member();
    let r = post_graphql(
        addr,
        Some(&env.token(&ada_id)),
        "mutation { createPost(body: \"hello bus\") { id } }",
        json!({}),
    )
    .await;
    let id = r["data"]["createPost"]["id"].as_str().unwrap().to_owned();
    let started = Instant::now();
    let batch = observer
        .next_batch(10, Duration::from_secs(5))
        .await
        .unwrap();
    eprintln!("commit → bus: {:?}", started.elapsed());
    let event = &batch.first().expect("post.created on the bus").event;
    assert_eq!(event.event_type, "post.created");
    assert_eq!(event.aggregate_id, id);
    assert_eq!(
        event.payload,
        json!({"postId": id, "authorId": ada_id, "visibility": "public"})
    );
    shutdown.cancel();
    server.await.unwrap().unwrap();
}
