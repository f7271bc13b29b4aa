//! The service end to end on loopback: `Service::open` on a fresh data dir, `serve` on port 0,
//! an event published on the bus shows up in `Member.stats` over HTTP, probes answer, and
//! cancelling the token stops everything.

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap is the test failing, at that line"
)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_analytics::{Config, Service};
use switchyard_subgraph_kit::events::{Event, EventBus};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// One HTTP/1.1 exchange; returns the status code and the body.
async fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> (u16, String) {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    // Small bodies may come chunked; a chunked body here is one chunk between size lines.
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        rest.split("\r\n").nth(1).unwrap_or_default().to_owned()
    } else {
        rest.to_owned()
    };
    (status, body)
}

#[tokio::test]
async fn serves_stats_fed_by_the_bus_and_shuts_down() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: dir.path().join("analytics"),
        consumer_name: Some("analytics-test".into()),
        ..Config::default()
    };
    let bus = EventBus::in_process();
    let service = Service::open(config, bus.clone()).await.unwrap();
    assert!(dir.path().join("analytics/analytics.db").exists());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(service.serve(listener, shutdown.clone()));

    let member = "0193a4c2-0000-7000-8000-0000000000aa";
    for viewer in ["v1", "v2"] {
        let event = Event::new(
            "profile.viewed",
            member,
            json!({"memberId": member, "viewerId": viewer}),
        )
        .unwrap();
        bus.publish(&event).await.unwrap();
    }
    let query = json!({
        "query": "query($r: [_Any!]!) { _entities(representations: $r) { ... on Member { stats { profileViews } } } }",
        "variables": {"r": [{"__typename": "Member", "id": member}]},
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = http(addr, "POST", "/graphql", Some(&query)).await;
        assert_eq!(status, 200, "{body}");
        let response: Value = serde_json::from_str(&body).unwrap();
        if response["data"]["_entities"][0]["stats"]["profileViews"] == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "events not counted: {response}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let bad = json!({"query": "{ trendingPosts(first: 1000) { id } }"});
    let (_, body) = http(addr, "POST", "/graphql", Some(&bad)).await;
    let response: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        response["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{response}"
    );

    assert_eq!(http(addr, "GET", "/health", None).await.0, 200);
    assert_eq!(http(addr, "GET", "/ready", None).await.0, 200);

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("serve returns after shutdown")
        .unwrap()
        .unwrap();
}
