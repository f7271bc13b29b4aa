//! Test helpers: a content service on SQLite (temp dir) or on a fresh PostgreSQL database, and
//! signed access tokens for members.

#![allow(dead_code)]

use std::time::Duration;

use serde_json::{json, Value};
use switchyard_content::{Config, Service};
use switchyard_subgraph_kit::auth::{jwks, BearerToken, Claims, JwtSigner, JwtVerifier};
use switchyard_subgraph_kit::testing::TestDatabase;
use switchyard_subgraph_kit::EventBus;

/// Which database a test runs on.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A unique PostgreSQL database, dropped when this is dropped.
pub type PgDatabase = TestDatabase;

/// A test environment: data dir, optional PostgreSQL database, token signer.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub pg: Option<PgDatabase>,
    pub signer: JwtSigner,
}

impl Env {
    /// `None` when the backend is unavailable (PostgreSQL outside CI).
    pub async fn new(backend: Backend) -> Option<Env> {
        let pg = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(PgDatabase::create("content_test_").await?),
        };
        Some(Env {
            dir: tempfile::tempdir().expect("temp dir"),
            pg,
            signer: JwtSigner::from_seed("content-test", [11; 32]),
        })
    }

    /// The service config for this environment.
    pub fn config(&self) -> Config {
        Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: self.dir.path().join("content"),
            database_url: self.pg.as_ref().map(|p| p.url.clone()),
            ..Config::default()
        }
    }

    /// Opens the service (in-process bus, this environment's token keys).
    pub async fn open(&self) -> Service {
        self.open_with_bus(EventBus::in_process()).await
    }

    /// Opens the service on `bus`.
    pub async fn open_with_bus(&self, bus: EventBus) -> Service {
        let verifier =
            JwtVerifier::from_jwks_json(&jwks(std::slice::from_ref(&self.signer))).unwrap();
        Service::open_with_verifier(self.config(), bus, verifier)
            .await
            .expect("open content service")
    }

    /// An access token for `member`.
    pub fn token(&self, member: &str) -> String {
        self.signer.sign(&Claims::new(
            member,
            format!("h{}", &member[..8]),
            Duration::from_secs(3600),
        ))
    }
}

/// A fresh member id.
pub fn member() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Executes `query` as `token`'s member (or anonymously); the whole response as JSON.
pub async fn exec(service: &Service, token: Option<&str>, query: &str, vars: Value) -> Value {
    let mut request =
        async_graphql::Request::new(query).variables(async_graphql::Variables::from_json(vars));
    if let Some(token) = token {
        request = request.data(BearerToken(token.to_owned()));
    }
    let response = service.schema().execute(request).await;
    serde_json::to_value(&response).unwrap()
}

/// `data` of a response that must have no errors.
pub async fn ok(service: &Service, token: Option<&str>, query: &str, vars: Value) -> Value {
    let response = exec(service, token, query, vars).await;
    assert!(
        response.get("errors").is_none(),
        "unexpected errors for {query}: {response}"
    );
    response["data"].clone()
}

/// The `extensions.code` of the first error of a response.
pub fn error_code(response: &Value) -> String {
    response["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error with a code: {response}"))
        .to_owned()
}

/// Creates a post; returns its id.
pub async fn create_post(service: &Service, token: &str, body: &str, visibility: &str) -> String {
    let data = ok(
        service,
        Some(token),
        "mutation($b: String!, $v: Visibility!) { createPost(body: $b, visibility: $v) { id } }",
        json!({"b": body, "v": visibility}),
    )
    .await;
    data["createPost"]["id"].as_str().unwrap().to_owned()
}

/// Runs `searchPosts` and returns the edges.
pub async fn search(service: &Service, token: Option<&str>, query: &str) -> Vec<Value> {
    let data = ok(
        service,
        token,
        "query($q: String!) { searchPosts(query: $q, first: 50) { totalCount edges { cursor score snippet node { id body } } } }",
        json!({"q": query}),
    )
    .await;
    data["searchPosts"]["edges"].as_array().unwrap().clone()
}

/// The ids of search results, in order.
pub fn ids(edges: &[Value]) -> Vec<String> {
    edges
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Outbox rows of one event type (the payloads, oldest first).
pub async fn outbox_events(service: &Service, event_type: &str) -> Vec<Value> {
    use sqlx::Row;
    let rows =
        sqlx::query("SELECT payload FROM switchyard_outbox WHERE event_type = $1 ORDER BY id")
            .bind(event_type.to_owned())
            .fetch_all(service.store().pool())
            .await
            .unwrap();
    rows.iter()
        .map(|r| serde_json::from_str(&r.get::<String, _>(0)).unwrap())
        .collect()
}
