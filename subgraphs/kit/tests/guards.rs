//! The gateway's guards in a subgraph, over a real socket: body limit, no JSON batching, no
//! mutations over GET, depth/alias/field limits with fragments expanded (a fragment bomb is
//! refused in milliseconds), introspection switchable — and what the gateway sends at its own
//! limits (its deepest operation, also inside an entity fetch) still passes.

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap is the test failing, at that line"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_graphql::{Object, Schema, SimpleObject, ID};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use switchyard_guard::RequestLimits;
use switchyard_subgraph_kit::guards::{self, Guards};
use switchyard_subgraph_kit::server::{self, AlwaysReady};
use switchyard_subgraph_kit::ServiceMetrics;

#[derive(SimpleObject)]
#[graphql(complex)]
struct Node {
    id: ID,
}

#[async_graphql::ComplexObject]
impl Node {
    async fn child(&self) -> Node {
        Node {
            id: ID(format!("{}.c", self.id.as_str())),
        }
    }
}

struct Query;

#[Object]
impl Query {
    async fn node(&self, id: ID) -> Node {
        Node { id }
    }

    #[graphql(entity)]
    async fn node_by_id(&self, id: ID) -> Node {
        Node { id }
    }
}

struct Mutation;

#[Object]
impl Mutation {
    async fn touch(&self) -> bool {
        true
    }
}

type TestSchema = Schema<Query, Mutation, async_graphql::EmptySubscription>;

/// Serves a guarded schema; returns its `/graphql` URL.
async fn serve(guards: Guards) -> String {
    let schema: TestSchema = guards::apply_with(
        Schema::build(Query, Mutation, async_graphql::EmptySubscription).enable_federation(),
        guards,
    )
    .finish();
    let router = server::service_router_with(
        schema,
        Arc::new(AlwaysReady),
        &ServiceMetrics::new("test"),
        guards,
    );
    let listener = server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server::serve(listener, router, std::future::pending()));
    format!("http://{addr}/graphql")
}

async fn send(method: &str, url: &str, body: Option<String>) -> (u16, Value) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut builder = http::Request::builder().method(method).uri(url);
    if body.is_some() {
        builder = builder.header("content-type", "application/json");
    }
    let body = Full::new(Bytes::from(body.unwrap_or_default()));
    let response = client.request(builder.body(body).unwrap()).await.unwrap();
    let status = response.status().as_u16();
    if method == "GET" || status == 405 {
        let allow = response.headers().get("allow").cloned();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let mut value: Value = serde_json::from_slice(&bytes).unwrap();
        if let Some(allow) = allow {
            value["allow"] = json!(allow.to_str().unwrap());
        }
        return (status, value);
    }
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)));
    (status, value)
}

async fn post(url: &str, query: &str) -> (u16, Value) {
    send("POST", url, Some(json!({ "query": query }).to_string())).await
}

fn code(response: &Value) -> &str {
    response["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error, got {response}"))
}

/// `node { child { … { id } } }`, `depth` fields deep.
fn nested(depth: usize) -> String {
    format!(
        "node(id: \"n\") {{ {}id{} }}",
        "child { ".repeat(depth - 2),
        " }".repeat(depth - 2)
    )
}

#[tokio::test]
async fn bodies_batches_and_get_mutations_are_refused_with_graphql_errors() {
    let url = serve(Guards {
        limits: RequestLimits {
            max_body_bytes: 4096,
            ..RequestLimits::SUBGRAPH
        },
        introspection: true,
    })
    .await;
    let padding = " ".repeat(5000);
    let (status, body) = post(&url, &format!("{{ node(id: \"1\") {{ id }} }}{padding}")).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(code(&body), "PAYLOAD_TOO_LARGE");

    // Without a Content-Length (chunked), the limit holds while reading.
    let client = Client::builder(TokioExecutor::new()).build_http::<StreamBody<_>>();
    let chunks = futures::stream::iter(
        (0..64).map(|_| Ok::<_, std::io::Error>(Frame::data(Bytes::from(vec![b' '; 1024])))),
    );
    let request = http::Request::post(&url)
        .header("content-type", "application/json")
        .body(StreamBody::new(chunks))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status().as_u16(), 413);

    let batch = json!([{ "query": "{ node(id: \"1\") { id } }" }, { "query": "{ node(id: \"2\") { id } }" }]);
    let (status, body) = send("POST", &url, Some(batch.to_string())).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(code(&body), "BAD_REQUEST");
    assert!(body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("Batched requests"));

    let (status, body) = send("GET", &format!("{url}?query=mutation%7Btouch%7D"), None).await;
    assert_eq!(status, 405, "{body}");
    assert_eq!(body["allow"], "POST");
    let (status, body) = send(
        "GET",
        &format!("{url}?query=%7Bnode(id:%221%22)%7Bid%7D%7D"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["node"]["id"], "1");
    // POST still runs mutations; malformed JSON gets a GraphQL error, not plain text.
    let (status, body) = post(&url, "mutation { touch }").await;
    assert_eq!((status, &body["data"]["touch"]), (200, &json!(true)));
    let (status, body) = send("POST", &url, Some("{\"query\": ".into())).await;
    assert_eq!(status, 400);
    assert_eq!(code(&body), "BAD_REQUEST");
}

#[tokio::test]
async fn operation_limits_count_expanded_fragments() {
    let limits = RequestLimits::SUBGRAPH;
    let url = serve(Guards::default()).await;

    // Fragments each spreading the next ten times under ten aliases, five levels deep: 50
    // aliases as written, over 100,000 fields expanded.
    let mut text = String::from("query { ...R }\nfragment R on Query { ");
    text.push_str(
        &(0..10)
            .map(|i| format!("r{i}: node(id: \"x\") {{ ...N1 }} "))
            .collect::<String>(),
    );
    text.push_str("}\n");
    for level in 1..5 {
        let spreads: String = (0..10)
            .map(|i| format!("c{i}: child {{ ...N{} }} ", level + 1))
            .collect();
        text.push_str(&format!("fragment N{level} on Node {{ {spreads} }}\n"));
    }
    text.push_str("fragment N5 on Node { id }\n");
    let started = Instant::now();
    let (status, body) = post(&url, &text).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(status, 200);
    assert_eq!(code(&body), "MAX_ALIASES_EXCEEDED", "{body}");
    assert!(text.len() < 3000);

    let aliases: String = (0..=limits.max_aliases)
        .map(|i| format!("a{i}: id "))
        .collect();
    let (_, body) = post(&url, &format!("{{ node(id: \"x\") {{ {aliases} }} }}")).await;
    assert_eq!(code(&body), "MAX_ALIASES_EXCEEDED");

    let fields: String = (0..=limits.max_fields).map(|_| "id ").collect();
    let (_, body) = post(&url, &format!("{{ node(id: \"x\") {{ {fields} }} }}")).await;
    assert_eq!(code(&body), "MAX_FIELDS_EXCEEDED");

    let roots: String = (0..=limits.max_root_fields)
        .map(|i| format!("r{i}: __typename "))
        .collect();
    let (_, body) = post(&url, &format!("{{ {roots} }}")).await;
    assert_eq!(code(&body), "MAX_ROOT_FIELDS_EXCEEDED");

    // Introspection is under the same rule: nested `ofType`s past the depth limit are refused.
    let deep_introspection = format!(
        "{{ __schema {{ types {{ {}name{} }} }} }}",
        "ofType { ".repeat(limits.max_depth),
        " }".repeat(limits.max_depth)
    );
    let (_, body) = post(&url, &deep_introspection).await;
    assert!(body["errors"].is_array(), "{body}");
    assert!(body["data"].is_null(), "{body}");
}

#[tokio::test]
async fn what_the_gateway_sends_at_its_limits_passes() {
    let gateway = RequestLimits::GATEWAY;
    let url = serve(Guards::default()).await;
    // A root fetch as deep as the gateway allows.
    let (status, body) = post(&url, &format!("{{ {} }}", nested(gateway.max_depth))).await;
    assert_eq!(status, 200);
    assert!(body.get("errors").is_none(), "{body}");
    // The same depth below an entity boundary: the gateway sends it under `_entities` and a
    // type condition (the field above the boundary stays at the gateway).
    let below = nested(gateway.max_depth - 1);
    let below = below.trim_start_matches("node(id: \"n\") ");
    let query = format!(
        "query($r: [_Any!]!) {{ _entities(representations: $r) {{ ... on Node {below} }} }}"
    );
    let body =
        json!({ "query": query, "variables": { "r": [{ "__typename": "Node", "id": "e" }] } });
    let (status, body) = send("POST", &url, Some(body.to_string())).await;
    assert_eq!(status, 200);
    assert!(body.get("errors").is_none(), "{body}");
    // As many aliases as the gateway allows, twice over (requirements add aliases).
    let aliases: String = (0..2 * gateway.max_aliases)
        .map(|i| format!("a{i}: id "))
        .collect();
    let (_, body) = post(&url, &format!("{{ node(id: \"x\") {{ {aliases} }} }}")).await;
    assert!(body.get("errors").is_none(), "{body}");
    // Past the subgraph's depth limit: refused before execution.
    let (_, body) = post(
        &url,
        &format!("{{ {} }}", nested(RequestLimits::SUBGRAPH.max_depth + 1)),
    )
    .await;
    assert!(body["errors"].is_array(), "{body}");
}

#[tokio::test]
async fn introspection_can_be_switched_off() {
    let url = serve(Guards {
        introspection: false,
        ..Guards::default()
    })
    .await;
    let (_, body) = post(&url, "{ __schema { queryType { name } } }").await;
    assert_eq!(code(&body), "INTROSPECTION_DISABLED");
    let (_, body) = post(
        &url,
        "{ ...I } fragment I on Query { __type(name: \"Node\") { name } }",
    )
    .await;
    assert_eq!(code(&body), "INTROSPECTION_DISABLED");
    let (_, body) = post(&url, "{ __typename }").await;
    assert_eq!(body["data"]["__typename"], "Query");
    // The federation SDL (what composition reads) is not introspection.
    let (_, body) = post(&url, "{ _service { sdl } }").await;
    assert!(body["data"]["_service"]["sdl"]
        .as_str()
        .unwrap()
        .contains("Node"));

    let parsed = Guards::from_vars([
        ("SUBGRAPH_INTROSPECTION".to_owned(), "off".to_owned()),
        ("SUBGRAPH_MAX_DEPTH".to_owned(), "80".to_owned()),
        ("OTHER".to_owned(), "x".to_owned()),
    ])
    .unwrap();
    assert!(!parsed.introspection);
    assert_eq!(parsed.limits.max_depth, 80);
    let err =
        Guards::from_vars([("SUBGRAPH_MAX_ALIASES".to_owned(), "many".to_owned())]).unwrap_err();
    assert!(err.contains("SUBGRAPH_MAX_ALIASES"), "{err}");
}
