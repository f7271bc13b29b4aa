//! The whole service as `switchyard dev` runs it: `Service::open` on a temp data dir, `serve` on
//! a loopback port 0, events in and out over an in-process bus, then a clean shutdown.

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap is the test failing, at that line"
)]

use std::time::Duration;

use serde_json::json;
use switchyard_profile::{Config, Service};
use switchyard_subgraph_kit::{Event, EventBus};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test]
async fn serves_consumes_relays_and_shuts_down() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: dir.path().join("profile"),
        ..Config::default()
    };
    let bus = EventBus::in_process();
    let mut observer = bus.subscribe("observer").await.unwrap();
    let service = Service::open(config, bus.clone()).await.unwrap();
    assert!(dir.path().join("profile/profile.db").exists());
    let schema = service.schema();
    let store = service.store();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let serving = tokio::spawn(service.serve(listener, shutdown.clone()));

    assert!(http_get(addr, "/health").await.starts_with("HTTP/1.1 200"));
    assert!(http_get(addr, "/ready").await.starts_with("HTTP/1.1 200"));

    // account.created on the bus → the member appears.
    let mut ids = Vec::new();
    for handle in ["ann", "ben"] {
        let id = uuid::Uuid::now_v7().to_string();
        let event = Event::new(
            "account.created",
            id.as_str(),
            json!({"accountId": id, "memberId": id, "handle": handle, "displayName": handle}),
        )
        .unwrap();
        bus.publish(&event).await.unwrap();
        ids.push(id);
    }
    let query = format!("{{ member(id: \"{}\") {{ handle }} }}", ids[1]);
    let mut found = false;
    for _ in 0..200 {
        let data = schema
            .execute(query.as_str())
            .await
            .data
            .into_json()
            .unwrap();
        if data["member"]["handle"] == "ben" {
            found = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(found, "account.created was consumed");

    // A new connection's event leaves through the outbox relay to the bus.
    store.request_connection(&ids[0], &ids[1]).await.unwrap();
    store.accept_connection(&ids[1], &ids[0]).await.unwrap();
    let mut accepted = None;
    for _ in 0..10 {
        for delivery in observer
            .next_batch(16, Duration::from_millis(500))
            .await
            .unwrap()
        {
            observer.ack(&delivery).await.unwrap();
            if delivery.event.event_type == "connection.accepted" {
                accepted = Some(delivery.event);
            }
        }
        if accepted.is_some() {
            break;
        }
    }
    let accepted = accepted.expect("connection.accepted relayed to the bus");
    assert_eq!(
        accepted.payload,
        json!({"memberId": ids[1], "otherMemberId": ids[0]})
    );

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .expect("serve returns after shutdown")
        .unwrap()
        .unwrap();
}
