//! The gateways under comparison: Switchyard in-process and Hive Router as a child process, both
//! on loopback ports, plus the fixture subgraphs they share.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use switchyard_gateway::{GatewayConfig, SubgraphOverrides};
use switchyard_testkit::generate::SESSION_VARIABLE;
use switchyard_testkit::{post_json, start_subgraphs, RunningSubgraphs};
use tokio::process::Child;

use crate::compose::with_urls;

/// How long one gateway request may take before it counts as a hang.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// Sends one operation; transport failures and timeouts come back as a JSON object with a
/// `transport_error` key (never a GraphQL response), so they show up as disagreements.
pub async fn query(url: &str, operation: &str, variables: &Value) -> Value {
    let mut variables = variables.clone();
    if let Some(session) = variables.get_mut(SESSION_VARIABLE) {
        // Mutation counters live as long as the fixture subgraphs, which serve many requests:
        // each request counts in a session of its own.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        *session = json!(format!("r{}", NEXT.fetch_add(1, Ordering::Relaxed)));
    }
    let body = json!({ "query": operation, "variables": variables });
    match tokio::time::timeout(REQUEST_TIMEOUT, post_json(url, &body, &BTreeMap::new())).await {
        Ok(Ok(response)) if response.body.is_object() => response.body,
        Ok(Ok(response)) => json!({
            "transport_error": format!("HTTP {}: not a JSON object: {}", response.status, response.body)
        }),
        Ok(Err(e)) => json!({ "transport_error": e.to_string() }),
        Err(_) => json!({ "transport_error": format!("no answer within {REQUEST_TIMEOUT:?}") }),
    }
}

/// Whether `DIFFTEST_SHARE_EVERY_RESPONSE=1` (scripts/difftest.sh).
fn share_every_response() -> bool {
    std::env::var_os("DIFFTEST_SHARE_EVERY_RESPONSE").is_some_and(|v| v == "1")
}

/// Switchyard serving one supergraph in this process; stops when dropped.
#[derive(Debug)]
pub struct Switchyard {
    /// The GraphQL endpoint.
    pub url: String,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Switchyard {
    /// Builds the gateway for `supergraph` (subgraph URLs from `urls`) and serves it on a
    /// loopback port.
    pub async fn start(supergraph: &str, urls: &HashMap<String, String>) -> anyhow::Result<Self> {
        let config = GatewayConfig {
            subgraphs: SubgraphOverrides::from_urls(urls),
            subgraph_timeout: Duration::from_secs(10),
            // Read every subgraph response as a de-duplicated (shared) one is read, to run the
            // generated shapes through that path too (scripts/difftest.sh).
            share_every_response: share_every_response(),
            ..GatewayConfig::default()
        };
        let gateway = switchyard_gateway::Gateway::from_supergraph_sdl(supergraph, config)
            .map_err(|e| anyhow::anyhow!("Switchyard rejects the supergraph: {e}"))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/graphql", listener.local_addr()?);
        let task = tokio::spawn(switchyard_gateway::serve(
            listener,
            gateway,
            std::future::pending(),
        ));
        Ok(Switchyard { url, task })
    }
}

impl Drop for Switchyard {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Hive Router serving one supergraph as a child process; killed when dropped.
#[derive(Debug)]
pub struct HiveRouter {
    /// The GraphQL endpoint.
    pub url: String,
    child: Child,
    log: PathBuf,
}

impl HiveRouter {
    /// Writes `supergraph` and a config into `dir`, starts `bin` on a free loopback port and
    /// waits until it answers `{ __typename }`.
    pub async fn start(bin: &Path, supergraph: &str, dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let supergraph_path = dir.join("supergraph.graphql");
        std::fs::write(&supergraph_path, supergraph)?;
        let mut last_error = String::new();
        // The free port is found by binding and releasing it, so another process can take it
        // in between: retry on a new port when the router does not come up.
        for _ in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            let config = dir.join("router.yaml");
            std::fs::write(
                &config,
                format!(
                    "supergraph: {{ source: file, path: {} }}\nhttp: {{ host: 127.0.0.1, port: {port} }}\nlog: {{ level: error }}\n",
                    supergraph_path.display()
                ),
            )?;
            let log = dir.join("router.log");
            let log_file = std::fs::File::create(&log)?;
            let child = tokio::process::Command::new(bin)
                .env("ROUTER_CONFIG_FILE_PATH", &config)
                .current_dir(dir)
                .stdin(Stdio::null())
                .stdout(log_file.try_clone()?)
                .stderr(log_file)
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("starting {}", bin.display()))?;
            let mut router = HiveRouter {
                url: format!("http://127.0.0.1:{port}/graphql"),
                child,
                log,
            };
            match router.wait_ready().await {
                Ok(()) => return Ok(router),
                Err(e) => last_error = e.to_string(),
            }
        }
        bail!("Hive Router did not start: {last_error}")
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!("exited with {status}: {}", self.log_tail());
            }
            let body = json!({"query": "{ __typename }"});
            if let Ok(Ok(response)) = tokio::time::timeout(
                Duration::from_secs(2),
                post_json(&self.url, &body, &BTreeMap::new()),
            )
            .await
            {
                if response.body.get("data").is_some() {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("not answering after 30 s: {}", self.log_tail())
    }

    /// The end of the router's log (for error messages).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(8)..].join("\n")
    }
}

impl Drop for HiveRouter {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// One request a gateway sent to a fixture subgraph.
#[derive(Debug, Clone, PartialEq)]
pub struct SentRequest {
    /// The subgraph that received it.
    pub subgraph: String,
    /// Its JSON body (query and variables).
    pub body: Value,
}

/// Which gateway answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Switchyard on Switchyard's supergraph (the product under test).
    Ours,
    /// Hive Router on the reference supergraph (Apollo's when available, else ours).
    Hive,
    /// Switchyard on Apollo's supergraph (tells composer differences from gateway ones).
    OursOnApollo,
}

/// The subgraphs of one scenario and the gateways over them.
#[derive(Debug)]
pub struct Session {
    /// The running fixture subgraphs.
    pub subgraphs: RunningSubgraphs,
    ours: Switchyard,
    hive: Option<HiveRouter>,
    ours_on_apollo: Option<Switchyard>,
    apollo_supergraph: Option<String>,
}

/// What a session needs to start.
#[derive(Debug, Clone)]
pub struct SessionSpec<'a> {
    /// Switchyard's supergraph (placeholder URLs); the subgraphs are extracted from it.
    pub ours: &'a str,
    /// Apollo's supergraph (placeholder URLs), when Apollo's composer is in use and composed it.
    pub apollo: Option<&'a str>,
    /// Fixture per subgraph.
    pub fixtures: &'a BTreeMap<String, Value>,
    /// Hive Router binary, if the run compares against it.
    pub hive_bin: Option<&'a Path>,
    /// Scratch directory for the router's files.
    pub dir: &'a Path,
}

impl Session {
    /// Starts the subgraphs, Switchyard, and Hive Router (on Apollo's supergraph if given).
    pub async fn start(spec: &SessionSpec<'_>) -> anyhow::Result<Self> {
        let subgraphs = start_subgraphs(spec.ours, spec.fixtures, &[])
            .await
            .map_err(|e| anyhow::anyhow!("starting the fixture subgraphs: {e}"))?;
        let ours = Switchyard::start(spec.ours, &subgraphs.urls).await?;
        let hive = match spec.hive_bin {
            Some(bin) => {
                let reference = with_urls(spec.apollo.unwrap_or(spec.ours), &subgraphs.urls);
                Some(HiveRouter::start(bin, &reference, spec.dir).await?)
            }
            None => None,
        };
        Ok(Session {
            subgraphs,
            ours,
            hive,
            ours_on_apollo: None,
            apollo_supergraph: spec.apollo.map(str::to_string),
        })
    }

    /// How many requests each running subgraph has received so far: a mark for
    /// [`Session::requests_since`].
    pub fn request_marks(&self) -> BTreeMap<String, usize> {
        self.subgraphs
            .handles
            .iter()
            .map(|(name, handle)| (name.clone(), handle.request_count()))
            .collect()
    }

    /// The requests the subgraphs received after `marks` was taken, by subgraph in name order
    /// (each subgraph's in arrival order): what one gateway sent for one operation, since
    /// operations go one at a time.
    pub fn requests_since(&self, marks: &BTreeMap<String, usize>) -> Vec<SentRequest> {
        let mut out = Vec::new();
        for (name, handle) in &self.subgraphs.handles {
            let from = marks.get(name).copied().unwrap_or(0);
            for request in handle.requests().into_iter().skip(from) {
                out.push(SentRequest {
                    subgraph: name.clone(),
                    body: request.body,
                });
            }
        }
        out
    }

    /// Whether Hive Router runs in this session.
    pub fn has_hive(&self) -> bool {
        self.hive.is_some()
    }

    /// With `DIFFTEST_SHARE_EVERY_RESPONSE=1`, sends a query (not a mutation) to Switchyard
    /// three times at once: the copies collapse their fetches and reuse what each other derived
    /// from them, every reuse checked against a fresh derivation inside the gateway. Returns a
    /// `transport_error` answer when a copy's answer is not `alone` (the answer to it sent
    /// alone), so the difference shows as a disagreement.
    pub async fn concurrent_copies_differ(
        &self,
        operation: &str,
        variables: &Value,
        alone: &Value,
    ) -> Option<Value> {
        if !share_every_response() || variables.get(SESSION_VARIABLE).is_some() {
            return None;
        }
        let url = &self.ours.url;
        let copies = tokio::join!(
            query(url, operation, variables),
            query(url, operation, variables),
            query(url, operation, variables)
        );
        let differing = [copies.0, copies.1, copies.2]
            .into_iter()
            .find(|copy| copy != alone)?;
        Some(json!({
            "transport_error": format!(
                "one of three copies sent at once answered differently from the query sent alone: {differing}"
            )
        }))
    }

    /// Sends `operation` to one gateway; `None` when that gateway is not part of the session.
    pub async fn run(
        &mut self,
        target: Target,
        operation: &str,
        variables: &Value,
    ) -> Option<Value> {
        let url = match target {
            Target::Ours => self.ours.url.clone(),
            Target::Hive => self.hive.as_ref()?.url.clone(),
            Target::OursOnApollo => {
                if self.ours_on_apollo.is_none() {
                    let sdl = self.apollo_supergraph.as_deref()?;
                    match Switchyard::start(sdl, &self.subgraphs.urls).await {
                        Ok(gateway) => self.ours_on_apollo = Some(gateway),
                        Err(e) => return Some(json!({ "transport_error": e.to_string() })),
                    }
                }
                self.ours_on_apollo.as_ref()?.url.clone()
            }
        };
        Some(query(&url, operation, variables).await)
    }
}
