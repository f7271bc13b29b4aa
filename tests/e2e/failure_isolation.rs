//! "If a database goes down, it only affects the dependent service": for each service, stop it
//! (and, for a server-backed store, cut the store off), send one query touching all five services
//! through the gateway, and check that everything else still comes back — the affected fields
//! are null with an error naming the service — and that the gateway serves the full answer again
//! once the service returns.

use crate::common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{connect, sign_up, start_stack, Member, PostgresDb, TestStack};
use serde_json::{json, Value};
use switchyard::client::GraphQLClient;
use switchyard::stack::SERVICES;
use tokio::net::{TcpListener, TcpStream};

/// One query that needs every service: auth (`me`), profile (`member`), content (`post`,
/// `Member.posts`), chat (`conversation`), analytics (`Member.stats`, `Post.stats`).
const ALL_SERVICES: &str = "query($id: ID!, $post: ID!, $c: ID!) {
  me { handle }
  member(id: $id) { displayName posts(first: 1) { totalCount } stats { profileViews(days: 30) } }
  post(id: $post) { body stats { reactions } }
  conversation(id: $c) { unreadCount }
}";

struct World {
    amit: Member,
    vars: Value,
}

async fn build_world(stack: &TestStack) -> World {
    let client = &stack.client;
    let amit = sign_up(client, "amit", "Amit Sharma").await;
    let priya = sign_up(client, "priya", "Priya Nair").await;
    connect(client, &amit, &priya).await;
    let as_amit = client.with_token(&amit.token);
    let post = as_amit
        .data(
            "mutation { createPost(body: \"Failure isolation, tested\") { id } }",
            json!({}),
        )
        .await
        .unwrap()["createPost"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let conversation = common::start_conversation(client, &amit, &[&priya.id]).await;
    let vars = json!({ "id": amit.id, "post": post, "c": conversation });
    World { amit, vars }
}

/// The JSON paths each service answers in [`ALL_SERVICES`].
fn fields_of(service: &str) -> &'static [&'static [&'static str]] {
    match service {
        "auth" => &[&["me"]],
        "profile" => &[&["member"]],
        "content" => &[&["post"], &["member", "posts"]],
        "chat" => &[&["conversation"]],
        "analytics" => &[&["member", "stats"], &["post", "stats"]],
        other => unreachable!("{other}"),
    }
}

fn at<'v>(value: &'v Value, path: &[&str]) -> &'v Value {
    path.iter().fold(value, |v, key| &v[*key])
}

/// Fields outside `down`'s reach that must still have data.
fn assert_others_present(data: &Value, down: &str) {
    let down_paths = fields_of(down);
    for service in SERVICES.iter().filter(|s| **s != down) {
        for path in fields_of(service) {
            // A field nested under a field of the stopped service is gone with its parent.
            if down_paths.iter().any(|d| path.starts_with(d)) {
                continue;
            }
            assert!(
                !at(data, path).is_null(),
                "with {down} down, {service}'s field {} should have data: {data}",
                path.join(".")
            );
        }
    }
}

async fn full_answer(client: &GraphQLClient, vars: &Value) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let response = client.send(ALL_SERVICES, vars.clone()).await.unwrap();
        if response.errors().is_empty() {
            return response.body["data"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "no full answer after recovery: {}",
            response.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_stopped_service_only_nulls_its_own_fields() {
    let mut stack = start_stack(|_| {}).await;
    let world = build_world(&stack).await;
    let client = stack.client.with_token(&world.amit.token);
    let healthy = full_answer(&client, &world.vars).await;
    assert_eq!(healthy["me"]["handle"], "amit");

    for service in SERVICES {
        stack.stack.stop_service(service).await.unwrap();
        let started = Instant::now();
        let response = client.send(ALL_SERVICES, world.vars.clone()).await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a stopped {service} must fail fast, took {:?}",
            started.elapsed()
        );
        assert_eq!(response.status, 200, "{}", response.body);
        let data = &response.body["data"];
        for path in fields_of(service) {
            assert!(
                at(data, path).is_null(),
                "{service} is down: {} should be null: {data}",
                path.join(".")
            );
        }
        assert_others_present(data, service);
        let errors = response.errors();
        assert!(
            errors
                .iter()
                .any(|e| e["extensions"]["serviceName"] == service),
            "an error names {service}: {errors:?}"
        );

        stack.stack.restart_service(service).await.unwrap();
        let back = full_answer(&client, &world.vars).await;
        assert_eq!(back["me"]["handle"], "amit", "after {service} returned");
    }
    stack.stack.shutdown().await.unwrap();
}

/// A TCP proxy to PostgreSQL that the test can cut, to make a server store unreachable without
/// touching the server other tests share.
struct CuttableProxy {
    addr: std::net::SocketAddr,
    open: Arc<AtomicBool>,
    generation: Arc<std::sync::atomic::AtomicU64>,
}

impl CuttableProxy {
    async fn start(upstream: &'static str) -> CuttableProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(AtomicBool::new(true));
        let generation = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (accept_open, accept_gen) = (open.clone(), generation.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !accept_open.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is refused
                }
                let (open, gen) = (accept_open.clone(), accept_gen.clone());
                let born = gen.load(Ordering::SeqCst);
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let cut = async {
                        while open.load(Ordering::SeqCst) && gen.load(Ordering::SeqCst) == born {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut => {}
                    }
                });
            }
        });
        CuttableProxy {
            addr,
            open,
            generation,
        }
    }

    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

/// Puts `service`'s database on PostgreSQL behind a proxy, cuts the proxy, and checks that only
/// `service`'s fields are lost and that everything comes back once the database is reachable.
async fn unreachable_database_only_affects(service: &str) {
    let Some(db) = PostgresDb::create(&format!("isolation_{service}")).await else {
        return;
    };
    let proxy = CuttableProxy::start("127.0.0.1:5432").await;
    let url = db.url.replace("127.0.0.1:5432", &proxy.addr.to_string());
    let stack = start_stack(|options| {
        options.database_urls.insert(service.to_owned(), url);
    })
    .await;
    let world = build_world(&stack).await;
    let client = stack.client.with_token(&world.amit.token);
    full_answer(&client, &world.vars).await;

    proxy.cut();
    // The proxy's copy tasks notice the cut on their next 20 ms tick.
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The service is up but its database is gone.
    let started = Instant::now();
    let response = client.send(ALL_SERVICES, world.vars.clone()).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "a dead database must fail fast, took {:?}",
        started.elapsed()
    );
    let data = &response.body["data"];
    for path in fields_of(service) {
        assert!(
            at(data, path).is_null(),
            "{service}'s database is down: {} should be null: {}",
            path.join("."),
            response.body
        );
    }
    assert!(!response.errors().is_empty(), "{}", response.body);
    assert_others_present(data, service);

    proxy.restore();
    let back = full_answer(&client, &world.vars).await;
    assert_eq!(back["me"]["handle"], "amit");
    stack.stack.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_auth_database_only_affects_auth() {
    unreachable_database_only_affects("auth").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_content_database_only_affects_content() {
    unreachable_database_only_affects("content").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_chat_database_only_affects_chat() {
    unreachable_database_only_affects("chat").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_analytics_database_only_affects_analytics() {
    unreachable_database_only_affects("analytics").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_cannot_open_its_store_stops_the_start_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = switchyard::stack::StackOptions::embedded(dir.path(), common::any_port());
    // Nothing listens on port 1: content's store cannot open.
    options.database_urls.insert(
        "content".to_owned(),
        "postgres://postgres@127.0.0.1:1/content".to_owned(),
    );
    let error = match switchyard::stack::Stack::start(options).await {
        Ok(_) => panic!("the stack must not start without content's database"),
        Err(error) => format!("{error:#}"),
    };
    assert!(error.contains("starting the content service"), "{error}");
}
