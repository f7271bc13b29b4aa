//! Helpers shared by the end-to-end tests: starting a stack on a temporary data directory and
//! provisioning a throw-away PostgreSQL database (through the kit's test support).

#![allow(dead_code)]

use std::net::SocketAddr;

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
