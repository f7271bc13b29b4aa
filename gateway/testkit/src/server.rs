//! Serving fixture subgraphs over HTTP on loopback ports, with a log of what each one received.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::extract::SupergraphSource;
use crate::subgraph::{Counters, FixtureSubgraph};
use crate::TestkitError;

/// A running subgraph server; stops when dropped.
#[derive(Debug)]
pub struct SubgraphHandle {
    pub(crate) name: String,
    pub(crate) addr: SocketAddr,
    pub(crate) url: String,
    pub(crate) log: Arc<RequestLog>,
    pub(crate) task: tokio::task::JoinHandle<()>,
}

impl SubgraphHandle {
    /// The subgraph's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The GraphQL endpoint URL (`http://127.0.0.1:<port>/graphql`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// How many HTTP requests it has received.
    pub fn request_count(&self) -> usize {
        self.log.count()
    }

    /// The requests it has received, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.log.requests()
    }

    /// The shared request log.
    pub fn log(&self) -> &Arc<RequestLog> {
        &self.log
    }
}

impl Drop for SubgraphHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One HTTP request a subgraph received.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// The JSON body (a JSON string holding the raw text when it was not JSON).
    pub body: Value,
    /// Header names (lowercase) and values.
    pub headers: Vec<(String, String)>,
}

/// Requests received by one subgraph.
#[derive(Debug, Default)]
pub struct RequestLog {
    requests: Mutex<Vec<RecordedRequest>>,
}

impl RequestLog {
    pub(crate) fn record(&self, request: RecordedRequest) {
        self.lock().push(request);
    }

    /// Number of requests received.
    pub fn count(&self) -> usize {
        self.lock().len()
    }

    /// A copy of the requests received.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<RecordedRequest>> {
        // A panic while holding the lock cannot leave the Vec half-written; keep going.
        self.requests.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// All subgraphs of one supergraph, started on loopback ports.
#[derive(Debug, Default)]
pub struct RunningSubgraphs {
    /// Running subgraphs by name (down ones are absent).
    pub handles: BTreeMap<String, SubgraphHandle>,
    /// URL of every subgraph by name; down ones point at a port nothing listens on.
    pub urls: HashMap<String, String>,
    /// Bound, never-listening sockets behind the down subgraphs' URLs: connecting is refused, and
    /// no other test can take the port while these live.
    reserved: Vec<tokio::net::TcpSocket>,
}

impl RunningSubgraphs {
    /// Every request each subgraph received (query and variables), for failure messages that
    /// tell planner mistakes from executor mistakes.
    pub fn describe_requests(&self) -> String {
        let mut out = String::from("subgraph requests received:");
        for (name, handle) in &self.handles {
            for request in handle.requests() {
                let query = request.body.get("query").and_then(|q| q.as_str());
                let variables = request
                    .body
                    .get("variables")
                    .map(|v| v.to_string())
                    .unwrap_or_default();
                match query {
                    Some(q) => out.push_str(&format!("\n  {name}: {q}  variables: {variables}")),
                    None => out.push_str(&format!("\n  {name}: {}", request.body)),
                }
            }
        }
        out
    }

    /// A URL on a loopback port that is bound but not listening, so connections are refused.
    fn reserve_closed_port(&mut self) -> Result<String, TestkitError> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(([127, 0, 0, 1], 0).into())?;
        let addr = socket.local_addr()?;
        self.reserved.push(socket);
        Ok(format!("http://{addr}/graphql"))
    }

    /// Requests received by `name` (0 for down or unknown subgraphs).
    pub fn request_count(&self, name: &str) -> usize {
        self.handles
            .get(name)
            .map_or(0, SubgraphHandle::request_count)
    }
}

/// Starts every subgraph of `supergraph_sdl` on 127.0.0.1 with its fixture (`{}` when absent);
/// subgraphs named in `down` are not started and get the URL of a closed port.
pub async fn start_subgraphs(
    supergraph_sdl: &str,
    fixtures: &BTreeMap<String, Value>,
    down: &[String],
) -> Result<RunningSubgraphs, TestkitError> {
    let source = SupergraphSource::parse(supergraph_sdl)?;
    for name in fixtures.keys().chain(down) {
        if !source.graphs().iter().any(|g| &g.name == name) {
            return Err(TestkitError::UnknownSubgraph(name.clone()));
        }
    }
    let mut running = RunningSubgraphs::default();
    let counters = Arc::new(Counters::default());
    for graph in source.graphs() {
        if down.contains(&graph.name) {
            let url = running.reserve_closed_port()?;
            running.urls.insert(graph.name.clone(), url);
            continue;
        }
        let fixture = fixtures
            .get(&graph.name)
            .cloned()
            .unwrap_or_else(|| json!({}));
        let subgraph = FixtureSubgraph::from_model_with_counters(
            source.subgraph(&graph.name)?,
            fixture,
            counters.clone(),
        )?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(TestkitError::Io)?;
        let handle = subgraph.serve(listener)?;
        running
            .urls
            .insert(graph.name.clone(), handle.url().to_string());
        running.handles.insert(graph.name.clone(), handle);
    }
    Ok(running)
}
