//! The `switchyard gateway` process over its lifetime: hot reload of the supergraph and config
//! (file watching and SIGHUP) under load, and the graceful drain on SIGTERM, against the real
//! binary, the demo subgraphs and a WebSocket subgraph for subscriptions; and the spans a
//! stopping gateway exports before it exits.

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use switchyard::client::{get, GraphQLClient};
use switchyard_compose::SubgraphSource;
use switchyard_demo_subgraphs::DemoSubgraph;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

const TICKER_SDL: &str = r#"
extend schema @link(url: "https://specs.apollo.dev/federation/v2.5", import: ["@key"])
type Query { tickerVersion: Int }
type Subscription { ticks: Int! }
"#;

/// Subgraph URLs and SDLs for composing supergraphs out of.
struct Subgraphs {
    sources: Vec<(String, String, String)>,
}

impl Subgraphs {
    /// Starts the four demo subgraphs (reviews answering after `reviews_delay`) and the ticker.
    async fn start(reviews_delay: Duration) -> Self {
        let mut sources = Vec::new();
        for subgraph in DemoSubgraph::ALL {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let mut router = switchyard_demo_subgraphs::router(subgraph);
            if subgraph.name() == "reviews" && !reviews_delay.is_zero() {
                router = router.layer(axum::middleware::from_fn(
                    move |request: axum::extract::Request, next: axum::middleware::Next| async move {
                        tokio::time::sleep(reviews_delay).await;
                        next.run(request).await
                    },
                ));
            }
            tokio::spawn(async move { axum::serve(listener, router).await });
            sources.push((
                subgraph.name().to_owned(),
                format!("http://{addr}/graphql"),
                switchyard_demo_subgraphs::sdl(subgraph),
            ));
        }
        sources.push(("ticker".to_owned(), ticker().await, TICKER_SDL.to_owned()));
        Subgraphs { sources }
    }

    /// The supergraph of the named subgraphs.
    fn supergraph(&self, names: &[&str]) -> String {
        let sources: Vec<SubgraphSource> = self
            .sources
            .iter()
            .filter(|(name, _, _)| names.contains(&name.as_str()))
            .map(|(name, url, sdl)| SubgraphSource::new(name, url.clone(), sdl.clone()))
            .collect();
        switchyard_compose::compose(&sources)
            .expect("the test supergraph composes")
            .supergraph_sdl
    }
}

/// The `traceparent` headers of the ticker's upgrade requests that had one.
static TICKER_TRACEPARENTS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// A graphql-transport-ws subgraph whose `ticks` subscription counts up every 50 ms, forever.
async fn ticker() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                #[allow(clippy::result_large_err)] // tungstenite's callback signature
                let answer = |request: &tokio_tungstenite::tungstenite::handshake::server::Request,
                              mut response: tokio_tungstenite::tungstenite::handshake::server::Response| {
                    if let Some(traceparent) = request.headers().get("traceparent") {
                        let traceparent = traceparent.to_str().unwrap().to_owned();
                        TICKER_TRACEPARENTS.lock().unwrap().push(traceparent);
                    }
                    response.headers_mut().insert(
                        "sec-websocket-protocol",
                        "graphql-transport-ws".parse().unwrap(),
                    );
                    Ok(response)
                };
                let Ok(socket) = tokio_tungstenite::accept_hdr_async(stream, answer).await else {
                    return;
                };
                let (mut tx, mut rx) = socket.split();
                let mut ticking: Option<tokio::task::JoinHandle<()>> = None;
                while let Some(Ok(Message::Text(text))) = rx.next().await {
                    let message: Value = serde_json::from_str(&text).unwrap();
                    match message["type"].as_str() {
                        Some("connection_init") => {
                            let ack = json!({"type": "connection_ack"}).to_string();
                            if tx.send(Message::text(ack)).await.is_err() {
                                return;
                            }
                        }
                        Some("subscribe") => {
                            let id = message["id"].as_str().unwrap().to_owned();
                            // The writer goes to a ticking task; this one watches for the end.
                            let mut writer = tx;
                            ticking = Some(tokio::spawn(async move {
                                for n in 0.. {
                                    let next = json!({"id": id, "type": "next", "payload": {"data": {"ticks": n}}});
                                    if writer.send(Message::text(next.to_string())).await.is_err() {
                                        return;
                                    }
                                    tokio::time::sleep(Duration::from_millis(50)).await;
                                }
                            }));
                            break;
                        }
                        _ => {}
                    }
                }
                // Run until the gateway completes or closes.
                while let Some(Ok(message)) = rx.next().await {
                    if matches!(message, Message::Close(_)) {
                        break;
                    }
                    if let Message::Text(text) = message {
                        if text.contains("\"complete\"") {
                            break;
                        }
                    }
                }
                if let Some(ticking) = ticking {
                    ticking.abort();
                }
            });
        }
    });
    format!("http://{addr}/graphql")
}

/// A running `switchyard gateway` and everything it logs.
struct Process {
    child: Child,
    graphql: String,
    base: String,
    metrics: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Process {
    fn start(supergraph: &Path, config: &Path, extra: &[&str]) -> Process {
        let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(["--log", "info", "gateway", "--supergraph"])
            .arg(supergraph)
            .arg("--config")
            .arg(config)
            .args(extra)
            .env_remove("RUST_LOG")
            // Logs go to stderr.
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("switchyard starts");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let (mut graphql, mut metrics) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(60);
        while graphql.is_none() || metrics.is_none() {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("the gateway did not come up: {:#?}", log.lock()));
            if let Some(at) = line.find("gateway listening on ") {
                graphql = Some(line[at + "gateway listening on ".len()..].trim().to_owned());
            }
            if let Some(at) = line.find("metrics on ") {
                let url = line[at + "metrics on ".len()..].split(',').next().unwrap();
                metrics = Some(url.trim().trim_end_matches("/metrics").to_owned());
            }
        }
        let graphql = graphql.unwrap();
        Process {
            base: graphql.trim_end_matches("/graphql").to_owned(),
            graphql,
            metrics: metrics.unwrap(),
            child,
            log,
        }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn logged(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    async fn ready(&self) -> (u16, Value) {
        let (code, _, body) = get(&format!("{}/ready", self.base), "application/json")
            .await
            .unwrap();
        (code, serde_json::from_str(&body).unwrap())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Replaces `path`'s content in one step, as deployment tools do (write aside, rename).
fn replace(path: &Path, text: &str) {
    let aside = path.with_extension("next");
    std::fs::write(&aside, text).unwrap();
    std::fs::rename(&aside, path).unwrap();
}

/// Polls `check` every 20 ms until it holds, for at most `within`.
async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Opens a graphql-transport-ws subscription to `subscription { ticks }` on the gateway.
async fn subscribe(graphql: &str) -> common::WsStream {
    let mut socket = common::graphql_ws(graphql, None, None).await;
    let ack = next_json(&mut socket).await;
    assert_eq!(ack["type"], "connection_ack", "{ack}");
    let subscribe =
        json!({"id": "t", "type": "subscribe", "payload": {"query": "subscription { ticks }"}});
    common::send_json(&mut socket, &subscribe).await;
    socket
}

async fn next_json<S>(socket: &mut S) -> Value
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a message within 10 s")
            .expect("the socket is open")
            .expect("a valid frame");
        match message {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// The next tick number from the subscription.
async fn next_tick<S>(socket: &mut S) -> i64
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let message = next_json(socket).await;
    assert_eq!(message["type"], "next", "{message}");
    message["payload"]["data"]["ticks"]
        .as_i64()
        .unwrap_or_else(|| panic!("{message}"))
}

const EVERYWHERE: &str = "{ topProducts(first: 3) { name price } }";
const WITH_REVIEWS: &str = "{ topProducts(first: 1) { name reviews { body } } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_load_lose_no_request_and_keep_old_subscriptions() {
    let subgraphs = Subgraphs::start(Duration::ZERO).await;
    let full = subgraphs.supergraph(&["accounts", "products", "inventory", "reviews", "ticker"]);
    let small = subgraphs.supergraph(&["accounts", "products", "inventory"]);
    let dir = tempfile::tempdir().unwrap();
    let supergraph = dir.path().join("supergraph.graphql");
    let config = dir.path().join("gateway.toml");
    std::fs::write(&supergraph, &full).unwrap();
    let settings =
        "listen = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\nwatch_interval = \"50ms\"\n";
    std::fs::write(&config, settings).unwrap();
    let gateway = Process::start(&supergraph, &config, &["--watch"]);
    let client = GraphQLClient::new(&gateway.graphql);
    let (code, ready) = gateway.ready().await;
    assert_eq!(code, 200);
    assert_eq!(ready["status"], "READY");
    assert_eq!(ready["reload"]["reloads"], 0, "{ready}");

    // A subscription opened on the first schema.
    let mut ticks = subscribe(&gateway.graphql).await;
    let first = next_tick(&mut ticks).await;

    // Load: four clients sending a query both schemas serve, all along.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (client, stop, sent, failures) = (
            client.clone(),
            Arc::clone(&stop),
            Arc::clone(&sent),
            Arc::clone(&failures),
        );
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let outcome = client.send(EVERYWHERE, json!({})).await;
                sent.fetch_add(1, Ordering::Relaxed);
                match outcome {
                    Ok(r) if r.status == 200 && r.errors().is_empty() => {
                        assert_eq!(r.body["data"]["topProducts"].as_array().unwrap().len(), 3);
                    }
                    Ok(r) => failures
                        .lock()
                        .unwrap()
                        .push(format!("{}: {}", r.status, r.body)),
                    Err(err) => failures.lock().unwrap().push(format!("{err:#}")),
                }
            }
        }));
    }

    // Ten reloads, alternating: without reviews and the ticker, then with them again.
    for round in 1..=10 {
        let has_reviews = round % 2 == 0;
        replace(&supergraph, if has_reviews { &full } else { &small });
        eventually(Duration::from_secs(20), "the new schema", || async {
            let r = client.send(WITH_REVIEWS, json!({})).await.unwrap();
            r.errors().is_empty() == has_reviews
        })
        .await;
        let (_, ready) = gateway.ready().await;
        assert_eq!(ready["reload"]["reloads"], round, "{ready}");
        if !has_reviews {
            // The field is gone from the schema, so validation says so.
            let r = client.send(WITH_REVIEWS, json!({})).await.unwrap();
            assert_eq!(
                r.errors()[0]["extensions"]["code"],
                "GRAPHQL_VALIDATION_FAILED",
                "{:?}",
                r.body
            );
        }
        // The subscription opened on the first schema keeps running, even while the schema
        // serving new requests has no subscriptions at all.
        let tick = next_tick(&mut ticks).await;
        assert!(tick > first, "{tick} after {first}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // An invalid supergraph keeps the running one, says why in the log, /ready and the status.
    replace(&supergraph, "this is not a supergraph");
    eventually(Duration::from_secs(20), "the refusal on /ready", || async {
        gateway.ready().await.1["reload"]["refused"].is_string()
    })
    .await;
    let (code, ready) = gateway.ready().await;
    assert_eq!(code, 200, "the old schema still serves: {ready}");
    assert!(
        ready["reload"]["refused"]
            .as_str()
            .unwrap()
            .contains("supergraph"),
        "{ready}"
    );
    assert!(gateway.logged("reload refused"));
    let served = client.send(WITH_REVIEWS, json!({})).await.unwrap();
    assert!(served.errors().is_empty(), "{:?}", served.body);
    let (_, _, status) = get(
        &format!("{}/status.json", gateway.metrics),
        "application/json",
    )
    .await
    .unwrap();
    let status: Value = serde_json::from_str(&status).unwrap();
    assert!(
        status["gateway"]["reload"]["refused"].is_string(),
        "{status:#}"
    );
    let (_, _, html) = get(&format!("{}/status", gateway.metrics), "text/html")
        .await
        .unwrap();
    assert!(
        html.contains("id=\"reload\" data-status=\"refused\""),
        "{html}"
    );

    // A bad config is refused the same way; fixing both files reloads and clears the record.
    std::fs::write(&config, format!("{settings}max_depth = \"deep\"\n")).unwrap();
    replace(&supergraph, &small);
    eventually(Duration::from_secs(20), "the config refusal", || async {
        gateway.ready().await.1["reload"]["refused"]
            .as_str()
            .is_some_and(|r| r.contains("gateway.toml"))
    })
    .await;
    replace(&config, &format!("{settings}introspection = false\n"));
    eventually(Duration::from_secs(20), "the fixed files", || async {
        gateway.ready().await.1["reload"]["refused"].is_null()
    })
    .await;
    let introspection = client
        .send("{ __schema { queryType { name } } }", json!({}))
        .await
        .unwrap();
    assert_eq!(
        introspection.errors()[0]["extensions"]["code"],
        "INTROSPECTION_DISABLED",
        "the reloaded config is in force: {:?}",
        introspection.body
    );
    // The metrics carry on across reloads and drop the subgraphs that went.
    let (_, _, metrics) = get(&format!("{}/metrics", gateway.metrics), "text/plain")
        .await
        .unwrap();
    assert!(metrics.contains("subgraph=\"products\""), "{metrics}");
    assert!(!metrics.contains("subgraph=\"reviews\""), "{metrics}");
    assert!(!metrics.contains("subgraph=\"ticker\""), "{metrics}");

    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    let failures = failures.lock().unwrap().clone();
    let sent = sent.load(Ordering::Relaxed);
    assert!(sent > 100, "only {sent} requests went out");
    assert!(
        failures.is_empty(),
        "{} of {sent} requests failed: {:#?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    eprintln!("{sent} requests across the reloads, none failed");
    let tick = next_tick(&mut ticks).await;
    assert!(tick > first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_and_sigterm_drains() {
    let subgraphs = Subgraphs::start(Duration::from_millis(1500)).await;
    let full = subgraphs.supergraph(&["accounts", "products", "inventory", "reviews", "ticker"]);
    let small = subgraphs.supergraph(&["accounts", "products", "inventory", "ticker"]);
    let dir = tempfile::tempdir().unwrap();
    let supergraph = dir.path().join("supergraph.graphql");
    let config = dir.path().join("gateway.toml");
    std::fs::write(&supergraph, &small).unwrap();
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\ndrain_timeout = \"10s\"\n",
    )
    .unwrap();
    let mut gateway = Process::start(&supergraph, &config, &[]);
    let client = GraphQLClient::new(&gateway.graphql);

    // No watching: a changed file waits for SIGHUP.
    std::fs::write(&supergraph, &full).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = client.send(WITH_REVIEWS, json!({})).await.unwrap();
    assert!(!before.errors().is_empty(), "{:?}", before.body);
    gateway.signal("HUP");
    eventually(Duration::from_secs(20), "the reload on SIGHUP", || async {
        gateway.ready().await.1["reload"]["reloads"] == 1
    })
    .await;

    // In flight when SIGTERM comes: a subscription and a request that takes 1.5 s (reviews).
    let mut ticks = subscribe(&gateway.graphql).await;
    next_tick(&mut ticks).await;
    let slow = {
        let client = client.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let response = client.send(WITH_REVIEWS, json!({})).await;
            (response, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let terminated = Instant::now();
    gateway.signal("TERM");

    // The WebSocket is closed at once with 1001 and a reason.
    let close = loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), ticks.next())
            .await
            .expect("a close frame within 5 s");
        match frame {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("no close frame: {other:?}"),
        }
    };
    let close = close.expect("a close code");
    assert_eq!(close.code, CloseCode::Away);
    assert_eq!(close.reason.as_str(), "The gateway is shutting down");

    // No new connections once draining.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let address = gateway.graphql.trim_start_matches("http://");
    let address = address.trim_end_matches("/graphql").to_owned();
    assert!(
        tokio::net::TcpStream::connect(&address).await.is_err(),
        "the listener still accepts connections while draining"
    );

    // The slow request still gets its whole answer.
    let (response, took) = slow.await.unwrap();
    let response = response.expect("the in-flight request is answered");
    assert_eq!(response.status, 200);
    assert!(response.errors().is_empty(), "{:?}", response.body);
    assert!(response.body["data"]["topProducts"][0]["reviews"].is_array());
    assert!(took >= Duration::from_millis(1400), "{took:?}");

    // Then the process exits 0, well before the drain deadline.
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = gateway.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the gateway did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status}");
    assert!(terminated.elapsed() < Duration::from_secs(8));
    assert!(
        gateway.logged("drained"),
        "{:#?}",
        gateway.log.lock().unwrap()
    );
}

/// What SIGTERM leaves behind in a trace: the spans of the last request and of a subscription
/// the client completed have reached the collector by the time the process has exited (the
/// export thread dies with the process); and the subscription's spans link up, with the
/// upstream span's context on the subgraph's upgrade request. (`tests/e2e/traces.rs` pins the
/// shutdown flush itself down in-process.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exports_the_last_spans_before_exiting() {
    use switchyard_telemetry::trace::receiver::OtlpReceiver;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const CLIENT_SPAN: &str = "00f067aa0ba902b7";
    const SUBSCRIPTION_TRACE: &str = "5c0f1e2d3c4b5a69788796a5b4c3d2e1";
    let receiver = OtlpReceiver::start().await.unwrap();
    let subgraphs = Subgraphs::start(Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let supergraph = dir.path().join("supergraph.graphql");
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &supergraph,
        subgraphs.supergraph(&["accounts", "products", "inventory", "ticker"]),
    )
    .unwrap();
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\notlp_endpoint = \"{}\"\n",
            receiver.endpoint()
        ),
    )
    .unwrap();
    let mut gateway = Process::start(&supergraph, &config, &[]);

    // A subscription traced from its upgrade request, one event, completed by the client.
    let mut ticks = common::graphql_ws(
        &gateway.graphql,
        Some(&format!("00-{SUBSCRIPTION_TRACE}-{CLIENT_SPAN}-01")),
        None,
    )
    .await;
    assert_eq!(next_json(&mut ticks).await["type"], "connection_ack");
    let subscribe = json!({"id": "t", "type": "subscribe",
        "payload": {"query": "subscription Ticks { ticks }"}});
    ticks
        .send(Message::text(subscribe.to_string()))
        .await
        .unwrap();
    next_tick(&mut ticks).await;
    let complete = json!({"id": "t", "type": "complete"}).to_string();
    ticks.send(Message::text(complete)).await.unwrap();
    drop(ticks);

    // The last request, then SIGTERM at once: nothing of it has been exported yet.
    let client = GraphQLClient::new(&gateway.graphql).with_header(
        http::HeaderName::from_static("traceparent"),
        http::HeaderValue::try_from(format!("00-{TRACE}-{CLIENT_SPAN}-01")).unwrap(),
    );
    let response = client.send(EVERYWHERE, json!({})).await.unwrap();
    assert!(response.errors().is_empty(), "{:?}", response.body);
    gateway.signal("TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = gateway.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the gateway did not exit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status:?}");

    // The process is gone: whatever was not sent before it exited never will be.
    let spans = receiver
        .wait_for(Duration::from_millis(500), |spans| {
            spans.iter().any(|s| s.trace_id == TRACE && s.kind == 2)
        })
        .await;
    let request = spans
        .iter()
        .find(|s| s.trace_id == TRACE && s.kind == 2)
        .unwrap_or_else(|| panic!("the last request's span was not exported: {spans:#?}"));
    assert_eq!(request.parent_span_id.as_deref(), Some(CLIENT_SPAN));
    assert_eq!(request.service_name, "switchyard-gateway");
    assert!(
        spans
            .iter()
            .any(|s| s.trace_id == TRACE && s.name == "subgraph products"),
        "{spans:#?}"
    );

    // The subscription: one span for its life, under the client's; the upstream subscription
    // and the event under it.
    let trace: Vec<_> = spans
        .iter()
        .filter(|s| s.trace_id == SUBSCRIPTION_TRACE)
        .collect();
    let subscription = trace
        .iter()
        .find(|s| s.name == "subscription Ticks")
        .unwrap_or_else(|| panic!("no subscription span in {trace:#?}"));
    assert_eq!(subscription.kind, 2);
    assert_eq!(subscription.parent_span_id.as_deref(), Some(CLIENT_SPAN));
    assert_eq!(
        subscription.attribute("graphql.operation.name"),
        Some("Ticks")
    );
    assert_eq!(
        subscription.attribute("switchyard.outcome"),
        Some("cancelled")
    );
    assert_eq!(subscription.attribute("subgraph.name"), Some("ticker"));
    assert_eq!(subscription.error, None);
    let upstream = trace
        .iter()
        .find(|s| s.name == "subgraph ticker")
        .unwrap_or_else(|| panic!("no upstream span in {trace:#?}"));
    assert_eq!(upstream.kind, 3);
    assert_eq!(
        upstream.parent_span_id.as_deref(),
        Some(subscription.span_id.as_str())
    );
    assert!(trace.iter().any(|s| s.name == "subscription event"
        && s.parent_span_id.as_deref() == Some(subscription.span_id.as_str())));
    // The ticker saw the upstream span's context on the upgrade request.
    assert_eq!(
        TICKER_TRACEPARENTS
            .lock()
            .unwrap()
            .last()
            .map(String::as_str),
        Some(format!("00-{SUBSCRIPTION_TRACE}-{}-01", upstream.span_id).as_str())
    );
}
