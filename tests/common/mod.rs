//! Helpers shared by the end-to-end tests: starting a stack on a temporary data directory and
//! provisioning a throw-away PostgreSQL database.

#![allow(dead_code)]

use std::net::SocketAddr;

use serde_json::{json, Value};
use switchyard::client::GraphQLClient;
use switchyard::seed;
use switchyard::stack::{Stack, StackOptions};
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

/// `a` asks `b` to connect, `b` accepts — both through the gateway.
pub async fn connect(client: &GraphQLClient, a: &Member, b: &Member) {
    client
        .with_token(&a.token)
        .data(
            "mutation($to: ID!) { requestConnection(to: $to) { __typename } }",
            json!({ "to": b.id }),
        )
        .await
        .unwrap_or_else(|e| panic!("{} requests {}: {e:#}", a.handle, b.handle));
    client
        .with_token(&b.token)
        .data(
            "mutation($from: ID!) { acceptConnection(from: $from) { id } }",
            json!({ "from": a.id }),
        )
        .await
        .unwrap_or_else(|e| panic!("{} accepts {}: {e:#}", b.handle, a.handle));
}

/// The `extensions.code` values of a response's errors.
pub fn error_codes(errors: &[Value]) -> Vec<String> {
    errors
        .iter()
        .filter_map(|e| e["extensions"]["code"].as_str().map(str::to_owned))
        .collect()
}

/// Whether PostgreSQL at 127.0.0.1:5432 must be there (CI) or may be skipped (a laptop).
fn postgres_required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A fresh PostgreSQL database for one test; dropped when the guard is.
pub struct PostgresDb {
    pub url: String,
    name: String,
}

impl PostgresDb {
    /// Creates a uniquely named database, or `None` (test skipped) when PostgreSQL is not
    /// reachable outside CI. In CI a missing server fails the test.
    pub async fn create(purpose: &str) -> Option<PostgresDb> {
        sqlx::any::install_default_drivers();
        let admin_url = "postgres://postgres@127.0.0.1:5432/postgres";
        let admin = match sqlx::AnyPool::connect(admin_url).await {
            Ok(pool) => pool,
            Err(e) if !postgres_required() => {
                eprintln!("SKIPPED: PostgreSQL not reachable at {admin_url}: {e}");
                return None;
            }
            Err(e) => panic!("PostgreSQL is required in CI (CI=true) but {admin_url} failed: {e}"),
        };
        let name = format!("switchyard_e2e_{purpose}_{}", uuid::Uuid::now_v7().simple());
        // The name is generated here from a UUID, never from input.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        Some(PostgresDb {
            url: format!("postgres://postgres@127.0.0.1:5432/{name}"),
            name,
        })
    }
}

impl Drop for PostgresDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Best effort on a separate runtime: Drop cannot await, and the test's runtime may be
        // shutting down.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(admin) =
                    sqlx::AnyPool::connect("postgres://postgres@127.0.0.1:5432/postgres").await
                {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&admin)
                    .await;
                }
            });
        })
        .join();
    }
}
