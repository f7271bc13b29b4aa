//! Execution benchmarks: a nested query over 4 subgraphs run through `Gateway::execute`
//! (validation and planning cached, as in production), subgraphs reached over loopback HTTP.
//!
//! Two subgraph setups:
//! - `live`: the real async-graphql subgraphs answer every request (their CPU is included).
//! - `replay`: a caching proxy in front of each subgraph answers repeated requests with the bytes
//!   the subgraph sent the first time, so the measurement is dominated by the gateway's own work
//!   (request building, pooling, parsing, merging, response shaping).
//! - `replay_traced`: `replay` with tracing exporting every span (OTLP/HTTP to a sink in this
//!   process that reads and discards each batch), so the export thread's CPU is counted too.
//! - `replay_tls`, `replay_tls_h2`, `replay_h2c`: the same replay proxies served over TLS
//!   (HTTP/1.1, or HTTP/2 by ALPN; a CA made for the run) or HTTP/2 cleartext, to measure what
//!   the transport costs per fetch (both ends of TLS run in this process).

#![allow(
    clippy::unwrap_used,
    reason = "a measuring program: a failed setup step ends it, with the location"
)]

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/common/tls.rs"]
mod tls;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::Router;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use switchyard_gateway::{Gateway, GatewayConfig, GraphQLRequest};

const QUERY: &str =
    "{ topProducts(first: 100) { upc name price inStock reviews { id body author { id name } } } }";

#[derive(Clone)]
struct Replay {
    upstream: String,
    cache: Arc<Mutex<HashMap<Bytes, Bytes>>>,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

async fn replay(
    State(state): State<Replay>,
    body: Bytes,
) -> ([(&'static str, &'static str); 1], Bytes) {
    let cached = state.cache.lock().unwrap().get(&body).cloned();
    let bytes = match cached {
        Some(bytes) => bytes,
        None => {
            let request = http::Request::post(&state.upstream)
                .header("content-type", "application/json")
                .body(Full::new(body.clone()))
                .unwrap();
            let response = state.client.request(request).await.unwrap();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            state.cache.lock().unwrap().insert(body, bytes.clone());
            bytes
        }
    };
    ([("content-type", "application/json")], bytes)
}

/// How the gateway reaches the replay proxies.
#[derive(Clone, Copy, PartialEq)]
enum Transport {
    Plain,
    Tls,
    TlsH2,
    H2c,
}

async fn replay_proxy(upstream: String, tls: Option<Arc<rustls::ServerConfig>>) -> String {
    let state = Replay {
        upstream,
        cache: Arc::default(),
        client: Client::builder(TokioExecutor::new()).build_http(),
    };
    let router = Router::new()
        .route("/graphql", post(replay))
        .with_state(state);
    let scheme = if tls.is_some() { "https" } else { "http" };
    let addr = tls::serve(router, tls).await;
    format!("{scheme}://127.0.0.1:{}/graphql", addr.port())
}

/// An OTLP/HTTP endpoint that reads each request whole and answers 200, keeping nothing.
async fn discarding_otlp_sink() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = vec![0u8; 64 * 1024];
                loop {
                    let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buffer.len() < end + 4 + length {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buffer.drain(..end + 4 + length);
                    let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                    if stream.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

fn gateway(
    rt: &tokio::runtime::Runtime,
    replayed: bool,
    dedupe: bool,
    transport: Transport,
    traced: bool,
) -> Gateway {
    rt.block_on(async {
        let otlp_endpoint = if traced {
            Some(discarding_otlp_sink().await)
        } else {
            None
        };
        let subgraphs = common::Subgraphs::start_with(Duration::ZERO, 100).await;
        let mut list = subgraphs.list();
        let ca = tls::TestCa::new("bench");
        let server_tls = match transport {
            Transport::Tls => Some(tls::server_config(&ca.server(), &[b"http/1.1"], None)),
            Transport::TlsH2 => Some(tls::server_config(&ca.server(), &[b"h2"], None)),
            Transport::Plain | Transport::H2c => None,
        };
        if replayed {
            for (_, url) in &mut list {
                *url = replay_proxy(url.clone(), server_tls.clone()).await;
            }
        }
        let config = GatewayConfig {
            dedupe,
            subgraph_tls_ca_file: Some(ca.ca_file()),
            subgraph_http2: match transport {
                Transport::H2c => switchyard_gateway::Http2Mode::Always,
                _ => switchyard_gateway::Http2Mode::Auto,
            },
            otlp_endpoint,
            ..GatewayConfig::default()
        };
        let (gateway, _) = common::start_gateway(list, config).await;
        std::mem::forget(subgraphs);
        gateway
    })
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let headers = HeaderMap::new();
    let request = GraphQLRequest {
        query: Some(QUERY.to_owned()),
        ..GraphQLRequest::default()
    };
    let mut group = c.benchmark_group("execute_4_subgraphs");
    for (name, replayed, dedupe, transport, traced) in [
        ("live", false, true, Transport::Plain, false),
        ("replay", true, true, Transport::Plain, false),
        ("replay_traced", true, true, Transport::Plain, true),
        ("replay_no_dedupe", true, false, Transport::Plain, false),
        ("replay_tls", true, true, Transport::Tls, false),
        ("replay_tls_h2", true, true, Transport::TlsH2, false),
        ("replay_h2c", true, true, Transport::H2c, false),
    ] {
        // `EXECUTION_BENCH_ONLY=replay` runs one variant (e.g. under a profiler); commas list several.
        let only = std::env::var("EXECUTION_BENCH_ONLY").unwrap_or_default();
        if !only.is_empty() && !only.split(',').any(|o| o == name) {
            continue;
        }
        let gw = gateway(&rt, replayed, dedupe, transport, traced);
        let response = rt.block_on(gw.execute(request.clone(), &headers));
        let json = response.json();
        // Product 2's null `inStock` is the one expected error (it nulls that list item).
        assert_eq!(json["errors"].as_array().map_or(0, Vec::len), 1, "{name}");
        let products = json["data"]["topProducts"].as_array().map_or(0, Vec::len);
        assert_eq!(products, 100);
        eprintln!("{name}: response {} bytes", response.body.len());
        group.throughput(Throughput::Bytes(response.body.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| rt.block_on(gw.execute(request.clone(), &headers)))
        });
        // Process CPU per request (gateway + in-process subgraphs or replay proxies): the number
        // to compare across changes on a busy machine, where wall time is noisy.
        let iterations = 500;
        let before = process_cpu_ticks();
        for _ in 0..iterations {
            rt.block_on(gw.execute(request.clone(), &headers));
        }
        let ticks = process_cpu_ticks() - before;
        eprintln!(
            "{name}: {:.0} µs process CPU per request",
            ticks as f64 * 1e6 / clock_ticks_per_second() / f64::from(iterations)
        );
    }
    group.finish();
}

/// utime + stime of this process, in clock ticks (Linux `/proc/self/stat`; 0 elsewhere).
fn process_cpu_ticks() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0;
    };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

/// `sysconf(_SC_CLK_TCK)` is 100 on every Linux we run on.
fn clock_ticks_per_second() -> f64 {
    100.0
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
