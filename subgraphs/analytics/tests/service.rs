//! The service end to end on loopback: `Service::open` on a fresh data dir, `serve` on port 0,
//! an event published on the bus shows up in `Member.stats` over HTTP, probes answer, and
//! cancelling the token stops everything; and the binary, stopped by SIGTERM, exports its last
//! request's span before it exits.

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

/// The process as deployed: a traced request, then SIGTERM at once; its span has reached the
/// collector by the time the process has exited (the export thread dies with the process).
/// The kit's `event_traces` test pins the flush itself down in-process.
#[tokio::test]
async fn the_binary_exports_its_last_span_when_stopped() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use switchyard_telemetry::trace::receiver::OtlpReceiver;

    const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
    let receiver = OtlpReceiver::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard-analytics"))
        .env("ANALYTICS_LISTEN", "127.0.0.1:0")
        .env("ANALYTICS_DATA_DIR", dir.path())
        .env("ANALYTICS_OTLP_ENDPOINT", receiver.endpoint())
        .env("ANALYTICS_CONSUMER_NAME", "analytics-trace-test")
        .env("RUST_LOG", "info")
        .env_remove("ANALYTICS_CONFIG")
        .env_remove("ANALYTICS_DATABASE_URL")
        .env_remove("ANALYTICS_REDIS_URL")
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stderr = child.stderr.take().unwrap();
    let mut child = Kill(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let addr: SocketAddr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the service logs its address");
        if line.contains("subgraph listening") {
            let at = line.find("addr=").expect("an addr field") + "addr=".len();
            break line[at..]
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap();
        }
    };

    let query = json!({"query": "query Probe { __typename }", "operationName": "Probe"});
    let request = format!(
        "POST /graphql HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         traceparent: 00-{TRACE}-b7ad6b7169203331-01\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{query}",
        query.to_string().len()
    );
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let status = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exited = loop {
        if let Some(exited) = child.0.try_wait().unwrap() {
            break exited;
        }
        assert!(Instant::now() < deadline, "the service did not exit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(exited.success(), "{exited:?}");

    // The process is gone: a span not sent before it exited never will be.
    let spans = receiver
        .wait_for(Duration::from_millis(500), |spans| {
            spans.iter().any(|s| s.trace_id == TRACE)
        })
        .await;
    let span = spans
        .iter()
        .find(|s| s.trace_id == TRACE)
        .unwrap_or_else(|| panic!("the last request's span was not exported: {spans:#?}"));
    assert_eq!(span.name, "graphql Probe");
    assert_eq!(span.service_name, "switchyard-analytics");
    assert_eq!(span.parent_span_id.as_deref(), Some("b7ad6b7169203331"));
}
