//! A frozen subgraph behind the gateway, with the gateway's default settings: each demo
//! subgraph runs as its own process, one is stopped with SIGSTOP (it still accepts TCP
//! connections — the kernel does that — but never answers), and the gateway must fail its
//! fields by the first-byte timeout, open the circuit because every waiting request counts,
//! fail fast after that, leave the rest of each answer alone, and recover after SIGCONT.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use switchyard_demo_subgraphs::DemoSubgraph;
use switchyard_gateway::{Gateway, GatewayConfig, GraphQLRequest};

const BIN: &str = env!("CARGO_BIN_EXE_switchyard-demo-subgraphs");

/// Continues and kills the child when the test ends, even half-way.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        signal(&self.0, "CONT");
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name}");
}

/// Starts one subgraph as its own process on a free port; returns it and its URL.
fn spawn(subgraph: DemoSubgraph) -> (Running, String) {
    let mut child = Command::new(BIN)
        .args([
            "--subgraph",
            subgraph.name(),
            "--port",
            "0",
            "--threads",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the subgraph binary");
    let stdout = child.stdout.take().expect("stdout");
    let line = BufReader::new(stdout)
        .lines()
        .next()
        .expect("an announcement line")
        .expect("readable");
    let (_, url) = line.split_once(' ').expect("NAME URL");
    (Running(child), url.to_owned())
}

async fn run(gateway: &Gateway, query: &str) -> Value {
    gateway
        .execute(
            GraphQLRequest {
                query: Some(query.to_owned()),
                ..GraphQLRequest::default()
            },
            &http::HeaderMap::new(),
        )
        .await
        .json()
}

/// The error codes a response carries for `shippingEstimate` (the frozen subgraph's field),
/// one per product, deduplicated.
fn inventory_codes(body: &Value) -> Vec<String> {
    let mut codes: Vec<String> = body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["extensions"]["serviceName"] == "inventory")
        .filter_map(|e| e["extensions"]["code"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(codes.len(), 2, "one error per product: {body}");
    codes.dedup();
    codes
}

const QUERY: &str = "{ me { name } topProducts(first: 2) { name shippingEstimate } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_subgraph_fails_fast_with_the_default_settings() {
    let mut processes = Vec::new();
    let mut config = GatewayConfig::default();
    for subgraph in DemoSubgraph::ALL {
        let (process, url) = spawn(subgraph);
        config
            .subgraphs
            .entry(subgraph.name().to_owned())
            .or_default()
            .url = Some(url);
        processes.push((subgraph, process));
    }
    let defaults = GatewayConfig::default();
    assert!(
        defaults.subgraph_first_byte_timeout * 4 <= defaults.subgraph_timeout,
        "the first-byte timeout is well under the total"
    );
    let sdl = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../schema/demo/supergraph.graphql"
    ))
    .expect("the demo supergraph");
    let gateway = Gateway::from_supergraph_sdl(&sdl, config).expect("gateway");

    let healthy = run(&gateway, QUERY).await;
    assert!(healthy.get("errors").is_none(), "{healthy}");
    let estimate = healthy["data"]["topProducts"][0]["shippingEstimate"].clone();
    assert!(estimate.is_number(), "{healthy}");

    let (_, inventory) = processes
        .iter()
        .find(|(s, _)| *s == DemoSubgraph::Inventory)
        .expect("inventory runs");
    signal(&inventory.0, "STOP");

    // A wave of concurrent requests while it is frozen: they collapse onto one fetch, which
    // fails at the first-byte timeout; each of them counts toward the breaker.
    let wave = (0..8).map(|_| {
        let gateway = gateway.clone();
        tokio::spawn(async move { run(&gateway, QUERY).await })
    });
    for body in futures::future::join_all(wave).await {
        let body = body.expect("request task");
        assert_eq!(
            body["data"]["me"],
            json!({"name": "Ada Lovelace"}),
            "{body}"
        );
        assert_eq!(
            body["data"]["topProducts"][0]["shippingEstimate"],
            Value::Null
        );
        assert!(body["data"]["topProducts"][0]["name"].is_string(), "{body}");
        assert_eq!(
            inventory_codes(&body),
            ["SUBGRAPH_REQUEST_FAILED"],
            "{body}"
        );
        let message = body["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains("first-byte timeout"), "{body}");
    }

    // The circuit is open now: the next requests do not wait at all.
    let fast = run(&gateway, QUERY).await;
    assert_eq!(inventory_codes(&fast), ["SUBGRAPH_CIRCUIT_OPEN"], "{fast}");
    assert_eq!(fast["data"]["me"], json!({"name": "Ada Lovelace"}));

    // Thawed: after the cool-down one probe goes through and the circuit closes.
    signal(&inventory.0, "CONT");
    let mut recovered = None;
    for _ in 0..100 {
        let body = run(&gateway, QUERY).await;
        if body.get("errors").is_none() {
            recovered = Some(body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let recovered = recovered.expect("the gateway recovers once the subgraph answers");
    assert_eq!(
        recovered["data"]["topProducts"][0]["shippingEstimate"],
        estimate
    );
}
