//! Test support: a chat service on real stores (SQLite in a temp dir, or a throwaway PostgreSQL
//! database), test access tokens, and GraphQL over HTTP and WebSocket.
//!
//! A missing PostgreSQL or Redis skips the test with a notice, except under CI (`CI=true`),
//! where it fails: CI must not go green by testing nothing.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use async_graphql::Request;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::{json, Value};
use switchyard_chat::{Config, Service};
use switchyard_subgraph_kit::auth::{jwks, BearerToken, Claims, JwtSigner, JwtVerifier};
use switchyard_subgraph_kit::EventBus;
use tokio_util::sync::CancellationToken;

// Not every test binary that includes this module uses both.
#[allow(unused_imports)]
pub use switchyard_subgraph_kit::testing::{redis_url, unavailable};

/// The key that signs test tokens.
pub fn signer() -> JwtSigner {
    JwtSigner::from_seed("chat-test", [42; 32])
}

/// A verifier that knows only the test key.
pub fn verifier() -> JwtVerifier {
    JwtVerifier::from_jwks_json(&jwks(&[signer()])).unwrap()
}

/// An access token for `member`.
pub fn token(member: &str) -> String {
    signer().sign(&Claims::new(member, "tester", Duration::from_secs(600)))
}

/// A fresh member id.
pub fn member() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Tells `service` that `ids` are members, as auth's `account.created` does through its
/// consumer (chat refuses conversations with ids it has not heard of).
pub async fn announce(service: &Service, ids: &[&str]) {
    account_event(service, "account.created", ids).await;
}

/// Delivers auth's `event_type` (`account.created` / `account.deleted`) for each of `ids`
/// through chat's consumer path.
pub async fn account_event(service: &Service, event_type: &str, ids: &[&str]) {
    for id in ids {
        let event = switchyard_subgraph_kit::Event::new(
            event_type,
            *id,
            json!({ "accountId": id, "memberId": id, "handle": "tester" }),
        )
        .unwrap();
        switchyard_subgraph_kit::process_event(
            service.store().pool(),
            switchyard_chat::consumers::CONSUMER_GROUP,
            &event,
            &service
                .members()
                .track(switchyard_chat::consumers::ChatEvents),
        )
        .await
        .unwrap();
    }
}

/// A throwaway PostgreSQL database.
pub type PgDatabase = switchyard_subgraph_kit::testing::TestDatabase;

/// Creates an empty PostgreSQL database, or `None` (skip) when none is reachable.
pub async fn postgres() -> Option<PgDatabase> {
    PgDatabase::create("switchyard_chat_test_").await
}

/// A config for tests: data in `dir`, an ephemeral port.
pub fn config(dir: &std::path::Path, database_url: Option<String>) -> Config {
    Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        data_dir: dir.to_path_buf(),
        database_url,
        redis_url: None,
        max_connections: 4,
        ..Config::default()
    }
}

/// An opened (not serving) chat service with its data dir.
pub struct Chat {
    pub service: Service,
    pub dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl Chat {
    /// A service on SQLite in a fresh temp dir.
    pub async fn sqlite() -> Chat {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().to_path_buf();
        let service =
            Service::open_with_verifier(config(&dir, None), EventBus::in_process(), verifier())
                .await
                .unwrap();
        Chat {
            service,
            dir,
            _temp: Some(temp),
        }
    }

    /// A service on the PostgreSQL database `url` (keys still under a temp dir).
    pub async fn postgres(url: &str) -> Chat {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().to_path_buf();
        let service = Service::open_with_verifier(
            config(&dir, Some(url.to_owned())),
            EventBus::in_process(),
            verifier(),
        )
        .await
        .unwrap();
        Chat {
            service,
            dir,
            _temp: Some(temp),
        }
    }

    /// A fresh member id that chat has been told about.
    pub async fn member(&self) -> String {
        let id = member();
        announce(&self.service, &[&id]).await;
        id
    }

    /// Runs an operation in-process as `member` (no token when `None`); the whole response.
    pub async fn run(&self, member: Option<&str>, query: &str, variables: Value) -> Value {
        let mut request =
            Request::new(query).variables(async_graphql::Variables::from_json(variables));
        if let Some(member) = member {
            request = request.data(BearerToken(token(member)));
        }
        let response = self.service.schema().execute(request).await;
        serde_json::to_value(&response).unwrap()
    }

    /// Like [`Chat::run`], but panics on errors and returns `data`.
    pub async fn data(&self, member: &str, query: &str, variables: Value) -> Value {
        let response = self.run(Some(member), query, variables).await;
        assert!(
            response.get("errors").is_none(),
            "unexpected errors: {response}"
        );
        response["data"].clone()
    }

    /// Starts a conversation as `me` with `with`; its id.
    pub async fn start(&self, me: &str, with: &[&str]) -> String {
        let data = self
            .data(
                me,
                "mutation($with: [ID!]!) { startConversation(with: $with) { id } }",
                json!({ "with": with }),
            )
            .await;
        data["startConversation"]["id"].as_str().unwrap().to_owned()
    }

    /// Sends `body` as `me`; the message id.
    pub async fn send(&self, me: &str, conversation: &str, body: &str) -> String {
        let data = self
            .data(
                me,
                "mutation($c: ID!, $b: String!) { sendMessage(conversationId: $c, body: $b) { id } }",
                json!({ "c": conversation, "b": body }),
            )
            .await;
        data["sendMessage"]["id"].as_str().unwrap().to_owned()
    }
}

/// The `extensions.code` of the first error.
pub fn error_code(response: &Value) -> String {
    response["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error with a code: {response}"))
        .to_owned()
}

/// A service serving on an ephemeral port.
pub struct Running {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Serves `service` on 127.0.0.1:0.
    pub async fn start(service: Service) -> Running {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(service.serve(listener, shutdown.clone()));
        Running {
            addr,
            shutdown,
            task,
        }
    }

    /// Stops the service and waits for it to drain.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("service drains within 10 s")
            .unwrap()
            .unwrap();
    }

    /// POSTs an operation to `/graphql` as `member`; the whole response.
    pub async fn post(&self, member: &str, query: &str, variables: Value) -> Value {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Full<Bytes>>();
        let body = json!({ "query": query, "variables": variables }).to_string();
        let request = hyper::Request::post(format!("http://{}/graphql", self.addr))
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {}", token(member)))
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let response = client.request(request).await.unwrap();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }
}
