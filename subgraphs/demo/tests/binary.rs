//! The `switchyard-demo-subgraphs` binary: prints schemas, serves all four on free ports and
//! announces them, serves one alone, and exits cleanly on SIGTERM.

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap is the test failing, at that line"
)]

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use common::{http, schema_dir};
use switchyard_demo_subgraphs::DemoSubgraph;

const BIN: &str = env!("CARGO_BIN_EXE_switchyard-demo-subgraphs");

/// Kills the child if a test fails half-way, so no server outlives the test run.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary and reads its "NAME URL" announcement lines.
fn spawn(args: &[&str], expect: usize) -> (Running, Vec<(String, SocketAddr)>) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the binary");
    let stdout = child.stdout.take().unwrap();
    let running = Running(child);
    let mut lines = BufReader::new(stdout).lines();
    let mut announced = Vec::new();
    for _ in 0..expect {
        let line = lines.next().expect("an announcement line").unwrap();
        let (name, url) = line.split_once(' ').expect("NAME URL");
        let addr = url
            .strip_prefix("http://")
            .and_then(|u| u.strip_suffix("/graphql"))
            .expect("http://ADDR/graphql")
            .parse()
            .expect("socket address");
        announced.push((name.to_owned(), addr));
    }
    (running, announced)
}

#[test]
fn print_schema_writes_the_committed_sdl() {
    for s in DemoSubgraph::ALL {
        let out = Command::new(BIN)
            .args(["--print-schema", s.name()])
            .output()
            .unwrap();
        assert!(out.status.success());
        let committed =
            std::fs::read_to_string(schema_dir().join(format!("{}.graphql", s.name()))).unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), committed, "{s}");
    }
    let out = Command::new(BIN)
        .args(["--print-schema", "shipping"])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "an unknown subgraph name is an error"
    );
}

#[tokio::test]
async fn port_zero_serves_all_four_on_announced_ports_until_sigterm() {
    let (mut running, announced) = spawn(&["--port", "0"], 4);
    let names: Vec<&str> = announced.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["accounts", "products", "inventory", "reviews"]);
    for (name, addr) in &announced {
        let (status, body) = http(*addr, "GET", "/health", "").await;
        assert_eq!((status, body.as_str()), (200, "ok"), "{name}");
    }
    let (_, body) = http(
        announced[1].1,
        "POST",
        "/graphql",
        r#"{"query":"{ product(upc: \"1001\") { upc } }"}"#,
    )
    .await;
    assert_eq!(body, r#"{"data":{"product":{"upc":"1001"}}}"#);

    let pid = running.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = running.0.wait().unwrap();
    assert!(status.success(), "SIGTERM is a clean shutdown: {status}");
}

#[tokio::test]
async fn one_subgraph_runs_alone() {
    let (_running, announced) = spawn(
        &["--subgraph", "inventory", "--port", "0", "--threads", "1"],
        1,
    );
    assert_eq!(announced[0].0, "inventory");
    let (status, body) = http(
        announced[0].1,
        "POST",
        "/graphql",
        r#"{"query":"{ _entities(representations: [{__typename: \"Product\", upc: \"1002\"}]) { ... on Product { upc } } }"}"#,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body, r#"{"data":{"_entities":[{"upc":"1002"}]}}"#);
}
