//! Helpers shared by the end-to-end tests: starting a stack on a temporary data directory and
//! provisioning a throw-away PostgreSQL database (through the kit's test support).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use switchyard::client::GraphQLClient;
use switchyard::seed;
use switchyard::stack::{Stack, StackOptions};
use switchyard_subgraph_kit::testing::TestDatabase;
use tempfile::TempDir;

/// A running stack and the directory holding its data (removed on drop).
pub struct TestStack {
    pub stack: Stack,
    pub client: GraphQLClient,
    pub dir: TempDir,
}

/// Loopback, any free port.
pub fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Starts a stack on embedded stores, with `customize` applied to its options.
pub async fn start_stack(customize: impl FnOnce(&mut StackOptions)) -> TestStack {
    let dir = tempfile::tempdir().unwrap();
    let mut options = StackOptions::embedded(dir.path(), any_port());
    customize(&mut options);
    let stack = Stack::start(options).await.expect("the stack starts");
    let client = GraphQLClient::new(stack.graphql_url());
    TestStack { stack, client, dir }
}

/// A signed-up member: id, handle and access token.
#[derive(Clone, Debug)]
pub struct Member {
    pub id: String,
    pub handle: String,
    pub token: String,
}

pub const PASSWORD: &str = "correct horse battery staple";

/// Signs `handle` up through the gateway and waits until the profile service has the member.
pub async fn sign_up(client: &GraphQLClient, handle: &str, name: &str) -> Member {
    let (id, token) = seed::sign_up(client, handle, name, PASSWORD)
        .await
        .unwrap_or_else(|e| panic!("signing up {handle}: {e:#}"));
    seed::wait_for_member(client, &id).await.unwrap();
    Member {
        id,
        handle: handle.to_owned(),
        token,
    }
}

impl Member {
    /// This member as the seeder's helpers take it.
    pub fn signed_in(&self) -> seed::SignedIn<'_> {
        seed::SignedIn {
            id: &self.id,
            token: &self.token,
        }
    }
}

/// `a` asks `b` to connect, `b` accepts — both through the gateway.
pub async fn connect(client: &GraphQLClient, a: &Member, b: &Member) {
    seed::connect(client, a.signed_in(), b.signed_in())
        .await
        .unwrap_or_else(|e| panic!("connecting {} and {}: {e:#}", a.handle, b.handle));
}

/// `from` starts a conversation with `with` through the gateway; its id.
pub async fn start_conversation(client: &GraphQLClient, from: &Member, with: &[&str]) -> String {
    client
        .with_token(&from.token)
        .data(
            "mutation($w: [ID!]!) { startConversation(with: $w) { id } }",
            serde_json::json!({ "w": with }),
        )
        .await
        .unwrap()["startConversation"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The `extensions.code` values of a response's errors.
pub fn error_codes(errors: &[Value]) -> Vec<String> {
    errors
        .iter()
        .filter_map(|e| e["extensions"]["code"].as_str().map(str::to_owned))
        .collect()
}

/// A fresh PostgreSQL database for one test (skipped outside CI when there is no server,
/// a failure in CI); dropped when the value is.
pub struct PostgresDb;

impl PostgresDb {
    /// Creates a uniquely named database for `purpose`.
    pub async fn create(purpose: &str) -> Option<TestDatabase> {
        TestDatabase::create(&format!("switchyard_e2e_{purpose}_")).await
    }
}

/// `switchyard dev` on `data_dir` on embedded stores, with free ports (the defaults may be taken
/// by another run on this machine) and none of the caller's Redis or test-hold settings.
pub fn dev_command(data_dir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_switchyard"));
    command
        .args([
            "dev",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data_dir)
        .env_remove("REDIS_URL")
        .env_remove(switchyard_subgraph_kit::erasure::HOLD_ENV);
    command
}

/// Starts `switchyard dev` and returns it with the lines it printed up to "Ctrl-C stops".
pub fn start_dev(data_dir: &std::path::Path) -> (Child, Vec<String>) {
    start_dev_with(data_dir, &[])
}

/// [`start_dev`] with extra environment (service settings such as `PROFILE_GRAPH_URL`).
pub fn start_dev_with(data_dir: &std::path::Path, env: &[(&str, &str)]) -> (Child, Vec<String>) {
    let mut child = dev_command(data_dir)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .spawn()
        .expect("switchyard starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let done = line.starts_with("Ctrl-C stops");
                lines.push(line);
                if done {
                    return (child, lines);
                }
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("switchyard dev did not come up; it printed: {lines:#?}");
            }
        }
    }
}

/// The rest of the first line of `lines` that starts with `label` (after leading spaces).
pub fn line_after<'l>(lines: &'l [String], label: &str) -> &'l str {
    lines
        .iter()
        .find_map(|l| l.trim_start().strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label:?} line in {lines:#?}"))
        .trim()
}

/// A client WebSocket as tokio-tungstenite connects it.
pub type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a graphql-transport-ws socket to `url` (`ws://…`; an `http://` URL is turned into
/// one), sending `traceparent` on the upgrade request when given, and sends `connection_init`
/// with `token` as the `Authorization` payload when given. Does not wait for the ack.
pub async fn graphql_ws(url: &str, traceparent: Option<&str>, token: Option<&str>) -> WsStream {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = url
        .replacen("http://", "ws://", 1)
        .into_client_request()
        .unwrap();
    let headers = request.headers_mut();
    headers.insert(
        "sec-websocket-protocol",
        http::HeaderValue::from_static("graphql-transport-ws"),
    );
    if let Some(traceparent) = traceparent {
        headers.insert("traceparent", traceparent.parse().unwrap());
    }
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let init = match token {
        Some(token) => serde_json::json!({ "type": "connection_init",
            "payload": { "Authorization": format!("Bearer {token}") } }),
        None => serde_json::json!({ "type": "connection_init" }),
    };
    send_json(&mut socket, &init).await;
    socket
}

/// Sends `message` as one text frame.
pub async fn send_json(socket: &mut WsStream, message: &Value) {
    use futures::SinkExt;
    socket
        .send(tokio_tungstenite::tungstenite::Message::text(
            message.to_string(),
        ))
        .await
        .unwrap();
}
