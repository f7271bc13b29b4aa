//! Hostile clients against the gateway over loopback HTTP: operations that are small as
//! written but huge once executed (fragment bombs, aliased introspection, nested lists), and
//! malformed request envelopes. Each attack from issue #13 that the gateway itself must stop.

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap is the test failing, at that line"
)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use switchyard_gateway::GatewayConfig;

use common::{start_gateway, Subgraphs};

const GRAPHIQL_INTROSPECTION: &str = include_str!("fixtures/graphiql-introspection.graphql");
const NEW_MEDIA: &str = "application/graphql-response+json";

async fn post_raw(base: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("{base}/graphql"))
        .header("content-type", "application/json")
        .header("accept", NEW_MEDIA)
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = client.request(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&body)));
    (status, json)
}

async fn post(base: &str, body: Value) -> (StatusCode, Value) {
    post_raw(base, serde_json::to_vec(&body).unwrap()).await
}

fn codes(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e["extensions"]["code"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The issue's bomb: five levels of fragments, each selecting ten aliased fields and spreading
/// the next level, so ~3 KB of text expands to 111,110 fields.
fn fragment_bomb(leaf: &str, on: &str, root: &str) -> String {
    let mut query = format!("query Bomb {{ {root} }}\n");
    for level in 1..=5 {
        query.push_str(&format!("fragment F{level} on {on} {{"));
        for alias in 0..10 {
            query.push_str(&format!(" a{alias}: {leaf}"));
            if level < 5 {
                query.push_str(&format!(" ...F{}", level + 1));
            }
        }
        query.push_str(" }\n");
    }
    query
}

#[tokio::test]
async fn the_fragment_bomb_is_refused_before_any_subgraph_sees_it() {
    let subgraphs = Subgraphs::start(Duration::ZERO).await;
    let (gateway, base) = start_gateway(subgraphs.list(), GatewayConfig::default()).await;
    let bomb = fragment_bomb("__typename", "Query", "...F1");
    assert!(bomb.len() < 3 * 1024, "{} bytes", bomb.len());
    let (status, body) = post(&base, json!({ "query": bomb })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        codes(&body),
        ["MAX_FIELDS_EXCEEDED", "MAX_ALIASES_EXCEEDED"],
        "{body}"
    );
    let fields = &body["errors"][0];
    assert_eq!(fields["extensions"]["fields"], 111_110, "{body}");
    assert_eq!(fields["extensions"]["maxFields"], 2000, "{body}");
    assert!(
        fields["message"]
            .as_str()
            .unwrap()
            .contains("once its fragments are expanded"),
        "{body}"
    );
    assert!(body.get("data").is_none(), "{body}");
    assert_eq!(
        gateway.cached_operations(),
        0,
        "a refused operation is not cached"
    );

    // The same shape through an object field: still counted as expanded.
    let nested = fragment_bomb("me { id }", "Query", "...F1");
    let (status, body) = post(&base, json!({ "query": nested })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        codes(&body).contains(&"MAX_FIELDS_EXCEEDED".to_owned()),
        "{body}"
    );

    // And in an operation that is not the one selected: the validator would still walk it.
    let two = format!(
        "query Fine {{ me {{ id }} }}\n{}",
        fragment_bomb("__typename", "Query", "...F1").replacen("query Bomb", "query Bomb2", 1)
    );
    let (status, body) = post(&base, json!({ "query": two, "operationName": "Fine" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        codes(&body),
        ["MAX_FIELDS_EXCEEDED", "MAX_ALIASES_EXCEEDED"],
        "{body}"
    );

    for recorder in [&subgraphs.products, &subgraphs.reviews, &subgraphs.accounts] {
        assert_eq!(
            recorder.count(),
            0,
            "no subgraph request for a refused operation"
        );
    }
    let (status, body) = post(&base, json!({ "query": "{ me { id } }" })).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"data": {"me": {"id": "u1"}}}))
    );
}

#[tokio::test]
async fn aliases_are_counted_through_fragments_and_inline_fragments() {
    let subgraphs = Subgraphs::start(Duration::ZERO).await;
    let config = GatewayConfig {
        max_aliases: 4,
        ..GatewayConfig::default()
    };
    let (_gateway, base) = start_gateway(subgraphs.list(), config).await;
    // Three aliases written, nine executed: the fragment is spread three times.
    let query = r#"{ a: __type(name: "User") { ...U } b: __type(name: "User") { ...U }
                     c: __type(name: "User") { ... on __Type { ...U } } }
                   fragment U on __Type { x: name y: kind }"#;
    let (status, body) = post(&base, json!({ "query": query })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(codes(&body), ["MAX_ALIASES_EXCEEDED"], "{body}");
    assert_eq!(body["errors"][0]["extensions"]["aliases"], 9, "{body}");
    let fine = r#"{ t: __type(name: "User") { ...U } } fragment U on __Type { x: name y: kind }"#;
    let (status, body) = post(&base, json!({ "query": fine })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"]["t"],
        json!({"x": "User", "y": "OBJECT"}),
        "{body}"
    );
}

#[tokio::test]
async fn introspection_is_under_the_same_limits() {
    let subgraphs = Subgraphs::start(Duration::ZERO).await;
    let (_gateway, base) = start_gateway(subgraphs.list(), GatewayConfig::default()).await;
    // What GraphiQL sends on load works with the defaults...
    let (status, body) = post(&base, json!({ "query": GRAPHIQL_INTROSPECTION })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
    assert!(body["data"]["__schema"]["types"].as_array().unwrap().len() > 5);

    // ...the nested-spread bomb on `__schema { types { … } }` is refused...
    let bomb = fragment_bomb("name", "__Type", "__schema { types { ...F1 } }");
    let (status, body) = post(&base, json!({ "query": bomb })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        codes(&body).contains(&"MAX_FIELDS_EXCEEDED".to_owned()),
        "{body}"
    );

    // ...and so are many aliased copies of the whole schema: each is a list in a list.
    // Each copy: 1 + types 10 x (1 + fields 10 x (1 + args 10 x (1 + type 1 + ofType 1) + type 1)).
    let copy = "__schema { types { fields { args { type { ofType { name } } } type { name } } } }";
    let copies: String = (0..16).map(|i| format!("s{i}: {copy} ")).collect();
    let (status, body) = post(&base, json!({ "query": format!("{{ {copies} }}") })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(codes(&body), ["MAX_COST_EXCEEDED"], "{body}");
    assert_eq!(body["errors"][0]["extensions"]["cost"], 16 * 3211, "{body}");
}

#[tokio::test]
async fn nested_lists_multiply_the_cost() {
    let subgraphs = Subgraphs::start(Duration::ZERO).await;
    let config = GatewayConfig {
        max_cost: 1_000,
        ..GatewayConfig::default()
    };
    let (_gateway, base) = start_gateway(subgraphs.list(), config).await;
    // topProducts: 10 x (1 + reviews: 10 x (1 + author 1)) = 210.
    let (status, body) = post(
        &base,
        json!({ "query": "{ topProducts { upc reviews { id author { id } } } }" }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Five times that under aliases: 1,050.
    let aliased: String = (0..5)
        .map(|i| format!("t{i}: topProducts {{ upc reviews {{ id author {{ id }} }} }} "))
        .collect();
    let (status, body) = post(&base, json!({ "query": format!("{{ {aliased} }}") })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(codes(&body), ["MAX_COST_EXCEEDED"], "{body}");
    assert_eq!(body["errors"][0]["extensions"]["cost"], 1_050, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["maxCost"], 1_000, "{body}");

    // The limit can be switched off.
    let off = GatewayConfig {
        max_cost: 0,
        ..GatewayConfig::default()
    };
    let (_gateway, base) = start_gateway(subgraphs.list(), off).await;
    let (status, body) = post(&base, json!({ "query": format!("{{ {aliased} }}") })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[test]
fn what_graphiql_and_the_nested_demo_query_cost_with_the_defaults() {
    let sdl = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../schema/demo/supergraph.graphql"
    ))
    .unwrap();
    let supergraph = switchyard_gateway::planner::Supergraph::parse(&sdl).unwrap();
    let schema = supergraph.api_schema();
    let config = GatewayConfig::default();
    let model = switchyard_gateway::CostModel::from_supergraph(
        supergraph.schema(),
        config.default_list_size,
    );
    let estimate = |query: &str| {
        let ast = apollo_compiler::ast::Document::parse(query, "q.graphql").unwrap();
        let shape = switchyard_gateway::Shape::of_document(&ast);
        let document =
            apollo_compiler::ExecutableDocument::parse_and_validate(schema, query, "q.graphql")
                .unwrap();
        let operation = document.operations.iter().next().unwrap();
        (shape, model.cost(&document, operation, None).value)
    };
    // GraphiQL's start-up query: 229 fields, 15 deep, lists of lists of types and fields.
    let (shape, cost) = estimate(GRAPHIQL_INTROSPECTION);
    assert_eq!((shape.fields, shape.aliases, shape.depth), (229, 0, 15));
    assert_eq!(cost, 16_424);
    assert!(cost < config.max_cost / 3);
    // The load test's nested query (7 fetches over 4 subgraphs): topProducts, reviews, the
    // author's reviews are lists: 1 + 10 x (1 + 10 x (1 + 1 + 10 x (1 + 1))).
    let nested: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../schema/demo/queries/nested.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let (shape, cost) = estimate(nested["query"].as_str().unwrap());
    assert_eq!(cost, 1 + 10 * (1 + 10 * (1 + 1 + 10 * (1 + 1))));
    assert_eq!((shape.fields, shape.depth), (29, 6));
}

/// `@cost` and `@listSize` written in subgraphs reach the cost limit through `switchyard
/// compose`: a slicing argument sizes its list, whatever number the client sends.
#[test]
fn composed_cost_directives_price_the_slicing_argument() {
    let subgraph = |name: &str, sdl: &str| switchyard_compose::SubgraphSource {
        name: name.into(),
        url: format!("http://{name}.invalid/graphql"),
        sdl: sdl.into(),
        file: None,
    };
    let link = r#"extend schema @link(url: "https://specs.apollo.dev/federation/v2.9", import: ["@key", "@cost", "@listSize", "@shareable"])"#;
    let composed = switchyard_compose::compose(&[
        subgraph(
            "catalog",
            &format!(
                "{link}\ntype Query {{ items(first: Int): [Item] @listSize(slicingArguments: [\"first\"]) @shareable }}\ntype Item @key(fields: \"id\") {{ id: ID! }}"
            ),
        ),
        subgraph(
            "pricing",
            &format!(
                "{link}\ntype Query {{ items(first: Int): [Item] @listSize(assumedSize: 50) @shareable }}\ntype Item @key(fields: \"id\") @cost(weight: 4) {{ id: ID! price: Int @cost(weight: 3) }}"
            ),
        ),
    ])
    .unwrap();
    let supergraph =
        switchyard_gateway::planner::Supergraph::parse(&composed.supergraph_sdl).unwrap();
    let model = switchyard_gateway::CostModel::from_supergraph(supergraph.schema(), 10);
    let cost = |query: &str| {
        let document = apollo_compiler::ExecutableDocument::parse_and_validate(
            supergraph.api_schema(),
            query,
            "q.graphql",
        )
        .unwrap();
        let operation = document.operations.iter().next().unwrap();
        model.cost(&document, operation, None).value
    };
    // Each item: its type's weight 4, plus price's 3.
    assert_eq!(cost("{ items(first: 1000) { id price } }"), 1000 * (4 + 3));
    assert_eq!(cost("{ items(first: 2) { id } }"), 2 * 4);
    // Without the slicing argument, the larger assumed size of the two subgraphs.
    assert_eq!(cost("{ items { id } }"), 50 * 4);
}

#[tokio::test]
async fn malformed_envelopes_get_clear_400s() {
    let subgraphs = Subgraphs::start(Duration::ZERO).await;
    let (_gateway, base) = start_gateway(subgraphs.list(), GatewayConfig::default()).await;
    let batch = br#"[{"query":"{ me { id } }"},{"query":"{ me { id } }"}]"#.to_vec();
    let (status, body) = post_raw(&base, batch).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(codes(&body), ["BAD_REQUEST"]);
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("Batched requests"), "{message}");
    for not_an_object in [&b"\"{ me { id } }\""[..], b"42", b"  ", b"null"] {
        let (status, body) = post_raw(&base, not_an_object.to_vec()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(codes(&body), ["BAD_REQUEST"], "{body}");
    }

    // GraphQL over HTTP: a non-object `extensions` is a 400, in a POST body or a GET parameter.
    for extensions in [json!("x"), json!(1), json!(true), json!([])] {
        let (status, body) = post(
            &base,
            json!({ "query": "{ me { id } }", "extensions": extensions }),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{extensions}: {body}");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("\"extensions\" must be a JSON object"),
            "{body}"
        );
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let encoded: String = url_encode(&extensions.to_string());
        let request = Request::get(format!(
            "{base}/graphql?query=%7B%20me%20%7B%20id%20%7D%20%7D&extensions={encoded}"
        ))
        .header("accept", NEW_MEDIA)
        .body(Full::new(Bytes::new()))
        .unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::BAD_REQUEST,
            "GET {extensions}"
        );
    }
    for fine in [json!({}), json!({"persistedQuery": null}), Value::Null] {
        let (status, body) = post(
            &base,
            json!({ "query": "{ me { id } }", "extensions": fine }),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

#[tokio::test]
async fn long_error_lists_are_capped() {
    let subgraphs = Subgraphs::start(Duration::ZERO).await;
    let (_gateway, base) = start_gateway(subgraphs.list(), GatewayConfig::default()).await;
    let unknown: String = (0..500).map(|i| format!(" f{i}")).collect();
    let (status, body) = post(&base, json!({ "query": format!("{{{unknown} }}") })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(
        errors.len(),
        switchyard_gateway::MAX_ERRORS,
        "{}",
        errors.len()
    );
    assert_eq!(errors[0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED");
    let last = errors.last().unwrap();
    assert_eq!(last["extensions"]["code"], "TOO_MANY_ERRORS");
    assert_eq!(last["extensions"]["omitted"], 500 - 99);
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A gateway over the test subgraphs whose planner counts how often it plans each operation
/// (and takes `plan_time` doing it, so concurrent misses overlap).
async fn counting_gateway(
    subgraphs: &Subgraphs,
    config: GatewayConfig,
    plan_time: Duration,
) -> (
    switchyard_gateway::Gateway,
    std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
) {
    let counts: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>> =
        Default::default();
    let stub = common::stub_planner();
    let seen = counts.clone();
    let planner = move |document: &apollo_compiler::validation::Valid<
        apollo_compiler::ExecutableDocument,
    >,
                        name: Option<&str>,
                        options: &switchyard_gateway::planner::PlanOptions| {
        let text = document
            .sources
            .values()
            .next()
            .unwrap()
            .source_text()
            .to_owned();
        *seen.lock().unwrap().entry(text).or_default() += 1;
        std::thread::sleep(plan_time);
        stub(document, name, options)
    };
    let schema =
        apollo_compiler::Schema::parse_and_validate(common::API_SCHEMA, "api.graphql").unwrap();
    let gateway = switchyard_gateway::Gateway::from_parts(
        schema,
        subgraphs.list(),
        std::sync::Arc::new(planner),
        config,
    )
    .unwrap();
    (gateway, counts)
}

async fn execute(gateway: &switchyard_gateway::Gateway, query: &str) -> Value {
    gateway
        .execute(
            switchyard_gateway::GraphQLRequest {
                query: Some(query.to_owned()),
                ..Default::default()
            },
            &http::HeaderMap::new(),
        )
        .await
        .json()
}

/// A valid operation of about `size` bytes, made distinct by `n` (the padding is a comment).
fn padded(n: usize, size: usize) -> String {
    let head = format!("# operation {n}\n");
    let pad = "#".repeat(size.saturating_sub(head.len() + 20)) + "\n";
    format!("{head}{pad}{{ me {{ id }} }}")
}

#[tokio::test]
async fn the_plan_cache_stays_within_its_byte_budget() {
    let subgraphs = Subgraphs::start(Duration::ZERO).await;
    let budget = 1 << 20;
    let config = GatewayConfig {
        plan_cache_bytes: budget,
        ..GatewayConfig::default()
    };
    let (gateway, counts) = counting_gateway(&subgraphs, config, Duration::ZERO).await;
    let hot = "query Hot { me { id name } }";
    assert_eq!(execute(&gateway, hot).await["data"]["me"]["id"], "u1");
    // 200 distinct 10 KB operations: 2 MB of text, ~12 times the budget once weighed.
    for n in 0..200 {
        let body = execute(&gateway, &padded(n, 10_000)).await;
        assert_eq!(body["data"]["me"]["id"], "u1", "{body}");
        assert!(
            gateway.cached_bytes() <= budget,
            "{} > {budget}",
            gateway.cached_bytes()
        );
        // The operation clients keep sending survives the flood.
        if n % 5 == 0 {
            execute(&gateway, hot).await;
        }
    }
    assert!(
        gateway.cached_operations() < 50,
        "{}",
        gateway.cached_operations()
    );
    assert!(gateway.cached_bytes() > budget / 2, "the budget is used");
    assert_eq!(
        counts.lock().unwrap()[hot],
        1,
        "the hot operation was planned once"
    );

    // An operation weighing more than the whole budget still runs; it is just not kept.
    let huge = padded(1000, 2 * budget);
    let before = gateway.cached_operations();
    let body = execute(&gateway, &huge).await;
    assert_eq!(body["data"]["me"]["id"], "u1");
    assert!(gateway.cached_operations() <= before);
    assert!(gateway.cached_bytes() <= budget);
}

#[tokio::test]
async fn concurrent_misses_plan_an_operation_once() {
    let subgraphs = Subgraphs::start(Duration::ZERO).await;
    let (gateway, counts) = counting_gateway(
        &subgraphs,
        GatewayConfig::default(),
        Duration::from_millis(200),
    )
    .await;
    let query = "query Once { me { id } }";
    let requests = (0..32).map(|_| {
        let gateway = gateway.clone();
        tokio::spawn(async move { execute(&gateway, query).await })
    });
    for body in futures::future::join_all(requests).await {
        assert_eq!(body.unwrap()["data"]["me"]["id"], "u1");
    }
    assert_eq!(counts.lock().unwrap()[query], 1);
    assert_eq!(gateway.cached_operations(), 1);

    // Failures are shared too, and not cached: a later request plans again.
    let bad = "query Bad { me { id } topProducts(first: \"x\") { upc } }";
    let requests = (0..8).map(|_| {
        let gateway = gateway.clone();
        tokio::spawn(async move { execute(&gateway, bad).await })
    });
    for body in futures::future::join_all(requests).await {
        let body = body.unwrap();
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED",
            "{body}"
        );
    }
    assert_eq!(gateway.cached_operations(), 1);

    // The same text under another operation name is another entry.
    let two = "query A { me { id } } query B { me { name } }";
    for name in ["A", "B", "A"] {
        let body = gateway
            .execute(
                switchyard_gateway::GraphQLRequest {
                    query: Some(two.to_owned()),
                    operation_name: Some(name.to_owned()),
                    ..Default::default()
                },
                &http::HeaderMap::new(),
            )
            .await
            .json();
        assert!(body["data"]["me"].is_object(), "{body}");
    }
    assert_eq!(counts.lock().unwrap()[two], 2);
    assert_eq!(gateway.cached_operations(), 3);
}

async fn post_with(base: &str, query: &str, headers: &[(&str, &str)]) -> StatusCode {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(format!("{base}/graphql"))
        .header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let body = serde_json::to_vec(&json!({ "query": query })).unwrap();
    let response = client
        .request(request.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    response.status()
}

#[tokio::test]
async fn subgraphs_get_the_client_address_and_clients_cannot_forge_it() {
    let subgraphs = Subgraphs::start(Duration::ZERO).await;
    let (_gateway, base) = start_gateway(subgraphs.list(), GatewayConfig::default()).await;
    let status = post_with(
        &base,
        "mutation { addReview(upc: \"1\", body: \"x\") { id } }",
        &[("x-forwarded-for", "203.0.113.9")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let seen = &subgraphs.reviews.headers()[0];
    assert_eq!(
        seen.get_all("x-forwarded-for").iter().collect::<Vec<_>>(),
        ["127.0.0.1"],
        "the peer address replaces what the client claimed"
    );

    // Behind a load balancer that appends the real address, the last entry is the client.
    let config = GatewayConfig {
        trust_forwarded_for: true,
        ..GatewayConfig::default()
    };
    let (_gateway, base) = start_gateway(subgraphs.list(), config).await;
    post_with(
        &base,
        "mutation { addReview(upc: \"1\", body: \"y\") { id } }",
        &[("x-forwarded-for", "10.0.0.1, 198.51.100.7")],
    )
    .await;
    let seen = subgraphs.reviews.headers();
    assert_eq!(
        seen.last().unwrap().get("x-forwarded-for").unwrap(),
        "198.51.100.7"
    );
}

#[tokio::test]
async fn the_gateway_serves_a_fresh_client_while_half_open_connections_fill_its_cap() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let subgraphs = Subgraphs::start(Duration::ZERO).await;
    let config = GatewayConfig {
        max_connections: 32,
        ..GatewayConfig::default()
    };
    let (_gateway, base) = start_gateway(subgraphs.list(), config).await;
    let addr = base.trim_start_matches("http://").to_owned();
    let mut held = Vec::new();
    for _ in 0..200 {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        stream
            .write_all(b"POST /graphql HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        held.push(stream);
    }
    let (status, body) = post(&base, json!({ "query": "{ me { id } }" })).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"data": {"me": {"id": "u1"}}}))
    );
    let mut closed = 0;
    for stream in held.iter_mut() {
        let mut buf = [0u8; 16];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(20), stream.read(&mut buf)).await
        {
            closed += 1;
        }
    }
    assert!(
        closed >= 200 - 32,
        "{closed} of the half-open connections were closed"
    );
}
