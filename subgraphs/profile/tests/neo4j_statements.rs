//! The Neo4j backend without a Neo4j server: every Cypher statement it sends is checked by
//! Neo4j's own Cypher parser and linter (`@neo4j-cypher/language-support`, Apache-2.0, installed
//! from npm on first run into `target/neo4j-cypher-lint`), and planned by FalkorDB's
//! `GRAPH.EXPLAIN` (an openCypher engine that runs here), where the dialects differ only in the
//! ways listed below. And what happens when the backend (neo4rs) is pointed at FalkorDB's Bolt
//! port, recorded as a test so a change on either side is noticed.
//!
//! Skips only when node/npm or FalkorDB are missing outside CI (`CI` unset); in CI they are
//! required (`scripts/ci-services.sh` starts FalkorDB with its Bolt port on 7688).

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap is the test failing, at that line"
)]
#![cfg(all(feature = "neo4j", feature = "falkordb"))]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use falkordb::FalkorClientBuilder;
use switchyard_profile::store::neo4j::{MEMGRAPH_STATEMENTS, NEO4J_STATEMENTS};
use switchyard_profile::testing;
use switchyard_subgraph_kit::testing::{servers_required, unavailable};

const LINTER: &str = "@neo4j-cypher/language-support@2.0.0-next.38";

/// Statements FalkorDB's dialect rejects, and why. Neo4j's linter accepts all of them.
const FALKORDB_DIALECT_GAPS: &[(&str, &str)] = &[
    (
        "CREATE CONSTRAINT member_id",
        "FalkorDB creates constraints with GRAPH.CONSTRAINT, not Cypher DDL",
    ),
    (
        "CREATE INDEX member_handle",
        "FalkorDB has no named indexes and no IF NOT EXISTS",
    ),
    (
        "shortestPath((a)-[:CONNECTED*..3]-(b))",
        "FalkorDB allows shortestPath only in WITH/RETURN, and only directed",
    ),
];

fn linter_dir() -> Option<PathBuf> {
    let have = |bin: &str| {
        Command::new(bin)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !have("node") || !have("npm") {
        return unavailable("node/npm (for Neo4j's Cypher linter)", "not found");
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/neo4j-cypher-lint");
    if !dir
        .join("node_modules/@neo4j-cypher/language-support")
        .exists()
    {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("package.json"),
            "{\"name\":\"neo4j-cypher-lint\",\"private\":true}",
        )
        .unwrap();
        let ok = Command::new("npm")
            .args(["i", "--no-audit", "--no-fund", LINTER])
            .current_dir(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return unavailable("npm install of Neo4j's Cypher linter", "failed");
        }
    }
    Some(dir)
}

/// Neo4j's linter's errors for each statement, leaving out "parameter not defined" (the
/// statements take their values as parameters by design) and warnings (such as the cartesian
/// product of two members each looked up by unique id, which is intended).
fn lint(dir: &Path, statements: &[&str]) -> Vec<Vec<String>> {
    const SCRIPT: &str = r#"
        const { lintCypherQuery } = require("@neo4j-cypher/language-support");
        const statements = JSON.parse(require("fs").readFileSync(0, "utf8"));
        const out = statements.map((q) => lintCypherQuery(q, {}).diagnostics
            .filter((d) => d.severity === 1)
            .map((d) => d.message)
            .filter((m) => !/^Parameter \$\w+ is not defined/.test(m)));
        process.stdout.write(JSON.stringify(out));
    "#;
    let mut child = Command::new("node")
        .args(["-e", SCRIPT])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(statements).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the linter ran");
    serde_json::from_slice(&out.stdout).expect("the linter prints JSON")
}

#[test]
fn every_neo4j_statement_passes_neo4js_cypher_linter() {
    let Some(dir) = linter_dir() else {
        return;
    };
    let results = lint(&dir, NEO4J_STATEMENTS);
    let failures: Vec<_> = NEO4J_STATEMENTS
        .iter()
        .zip(&results)
        .filter(|(_, messages)| !messages.is_empty())
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");

    // The linter does catch what it should: a broken statement, and Memgraph's dialect (which
    // the backend sends only after Neo4j's form failed).
    let broken = lint(&dir, &["MATCH (m:Member {id: $id} RETURN m"]);
    assert!(!broken[0].is_empty(), "a missing parenthesis is reported");
    let memgraph = lint(&dir, MEMGRAPH_STATEMENTS);
    assert!(
        memgraph.iter().all(|m| !m.is_empty()),
        "Memgraph's forms are not Neo4j Cypher: {memgraph:?}"
    );
}

#[tokio::test]
async fn every_neo4j_statement_plans_on_falkordb_except_known_dialect_gaps() {
    let Some(url) = testing::falkordb_url().await else {
        return;
    };
    let graph_name = testing::test_graph_name();
    let explained: futures::future::BoxFuture<'_, Vec<(&str, Result<(), String>)>> =
        Box::pin(async {
            let client = FalkorClientBuilder::new_async()
                .with_connection_info(url.as_str().try_into().unwrap())
                .build()
                .await
                .unwrap();
            let mut graph = client.select_graph(&graph_name);
            // EXPLAIN needs the graph to exist.
            graph
                .query("CREATE (:Member {id: 'x'})")
                .execute()
                .await
                .unwrap();
            let mut out = Vec::new();
            // Values for every parameter the statements use (FalkorDB plans LIMIT with its value).
            let params: Vec<(&str, falkordb::FalkorValue)> = [
                "id",
                "key",
                "a",
                "b",
                "from",
                "to",
                "member",
                "handle",
                "handleKey",
                "displayName",
                "headline",
                "location",
            ]
            .into_iter()
            .map(|name| (name, falkordb::FalkorValue::String("x".into())))
            .chain([
                ("after", falkordb::FalkorValue::None),
                ("limit", falkordb::FalkorValue::I64(10)),
                ("now", falkordb::FalkorValue::I64(0)),
                ("joinedAt", falkordb::FalkorValue::I64(0)),
            ])
            .collect();
            for statement in NEO4J_STATEMENTS {
                let planned = graph
                    .explain(statement)
                    .with_params(params.clone())
                    .execute()
                    .await;
                out.push((*statement, planned.map(drop).map_err(|e| e.to_string())));
            }
            graph.delete().await.unwrap();
            out
        });
    let explained = explained.await;
    let mut unexpected = Vec::new();
    for (statement, planned) in &explained {
        let gap = FALKORDB_DIALECT_GAPS
            .iter()
            .find(|(needle, _)| statement.contains(needle));
        match (planned, gap) {
            (Ok(()), None) | (Err(_), Some(_)) => {}
            (Ok(()), Some((_, why))) => {
                unexpected.push(format!("now plans on FalkorDB (was: {why}): {statement}"))
            }
            (Err(e), None) => unexpected.push(format!("{e}: {statement}")),
        }
    }
    assert!(unexpected.is_empty(), "{unexpected:#?}");
    assert_eq!(
        explained.iter().filter(|(_, p)| p.is_ok()).count(),
        NEO4J_STATEMENTS.len() - FALKORDB_DIALECT_GAPS.len()
    );
}

/// neo4rs (0.8, and 0.9.0-rc.11) offers Bolt 4.0–4.4 in its handshake; FalkorDB's Bolt server
/// (module 4.16) speaks only Bolt 5 and closes the connection on any 4.x proposal, so the Neo4j
/// backend cannot connect to it at all. Recorded here: this fails when either side changes, and
/// the conformance suite can then run over Bolt (`NEO4J_URI=bolt://127.0.0.1:7688`).
#[tokio::test]
async fn neo4rs_cannot_negotiate_a_bolt_version_with_falkordb() {
    let Some(_) = testing::falkordb_url().await else {
        return;
    };
    let address = std::env::var("SWITCHYARD_TEST_FALKORDB_BOLT")
        .unwrap_or_else(|_| "127.0.0.1:7688".to_owned());
    let handshake = |versions: [[u8; 4]; 4]| {
        let mut stream = match std::net::TcpStream::connect(&address) {
            Ok(stream) => stream,
            Err(e) => {
                assert!(!servers_required(), "FalkorDB's Bolt port {address}: {e}");
                return None;
            }
        };
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        // The server may close as soon as it has read a proposal it refuses.
        let mut proposal = vec![0x60, 0x60, 0xB0, 0x17];
        proposal.extend(versions.iter().flatten());
        let mut answer = [0u8; 4];
        let answered = stream
            .write_all(&proposal)
            .and_then(|()| stream.read_exact(&mut answer));
        Some(answered.ok().map(|()| answer))
    };
    // What neo4rs 0.8 proposes: 4.1, 4.0.
    let Some(answer) = handshake([[0, 0, 1, 4], [0, 0, 0, 4], [0; 4], [0; 4]]) else {
        return;
    };
    assert_eq!(answer, None, "FalkorDB closes the connection on Bolt 4");
    // Bolt 5 is what it accepts.
    assert_eq!(
        handshake([[0, 0, 4, 5], [0; 4], [0; 4], [0; 4]]).flatten(),
        Some([0, 0, 4, 5])
    );
    // neo4rs connects lazily: the first statement shows it.
    let graph = neo4rs::Graph::new(format!("bolt://{address}"), "falkordb", "unused").await;
    let attempt = async {
        match graph {
            Ok(graph) => graph.run(neo4rs::query("RETURN 1")).await,
            Err(e) => Err(e),
        }
    };
    // neo4rs retries a failed connection with back-off; its first error is enough here.
    let ran = tokio::time::timeout(std::time::Duration::from_secs(20), attempt).await;
    let error = match ran {
        Ok(ran) => ran.expect_err("neo4rs cannot run a statement").to_string(),
        Err(_) => "eof: still retrying after 20 s".to_owned(),
    };
    assert!(error.contains("eof") || error.contains("EOF"), "{error}");
}
