//! The fixture subgraph behaves like a real federation subgraph over its fixture.

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap is the test failing, at that line"
)]

use serde_json::{json, Value};
use switchyard_testkit::{FixtureSubgraph, SupergraphSource};

const SHOP: &str = include_str!("../../tests/federation/cases/shared/shop.graphql");

fn reviews() -> FixtureSubgraph {
    FixtureSubgraph::new(
        SHOP,
        "reviews",
        json!({
            "Query": {"latestReviews": [{"id": "r1"}, {"id": "r2", "body": "inline"}]},
            "Mutation": {
                "addReview({\"input\":{\"body\":\"ok\",\"stars\":5,\"upc\":\"1\"}})": {"id": "r9", "body": "ok"}
            },
            "entities": {
                "Review": [{"id": "r1", "body": "Great", "author": {"id": "u1"}}],
                "Product": [
                    {"upc": "1", "rating": 4.5, "reviews": [{"id": "r1", "body": "Great"}]},
                    {"upc": "2", "rating": {"$error": "no rating", "extensions": {"code": "E_RATING"}}},
                    {"upc": "3", "rating": 1, "reviews": [{"id": "r3", "body": null}]}
                ]
            }
        }),
    )
    .unwrap()
}

async fn run(subgraph: &FixtureSubgraph, query: &str, variables: Value) -> Value {
    subgraph
        .execute_json(&json!({"query": query, "variables": variables}))
        .await
}

#[test]
fn extracts_fields_per_graph() {
    let source = SupergraphSource::parse(SHOP).unwrap();
    let names: Vec<_> = source.graphs().iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["accounts", "products", "reviews"]);
    let sdl = reviews().sdl();
    assert!(sdl.contains("rating: Float!"), "{sdl}");
    assert!(!sdl.contains("price"), "{sdl}");
    assert!(!sdl.contains("topProducts"), "{sdl}");
    assert!(sdl.contains("latestReviews"), "{sdl}");
}

#[tokio::test]
async fn root_fields_read_the_fixture_and_fall_back_to_entities() {
    let out = run(
        &reviews(),
        "{ latestReviews { id body author { id } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        out,
        json!({"data": {"latestReviews": [
            {"id": "r1", "body": "Great", "author": {"id": "u1"}},
            {"id": "r2", "body": "inline", "author": null}
        ]}})
    );
}

#[tokio::test]
async fn arguments_are_looked_up_with_defaults_applied() {
    let out = run(
        &reviews(),
        "mutation($b: String!) { addReview(input: {upc: \"1\", body: $b}) { id body } }",
        json!({"b": "ok"}),
    )
    .await;
    assert_eq!(
        out,
        json!({"data": {"addReview": {"id": "r9", "body": "ok"}}})
    );
}

#[tokio::test]
async fn entities_resolve_and_errors_null_the_nearest_nullable_position() {
    let query =
        "query($r: [_Any!]!) { _entities(representations: $r) { ... on Product { upc rating } } }";
    let reps = json!([
        {"__typename": "Product", "upc": "1"},
        {"__typename": "Product", "upc": "2"},
        {"__typename": "Product", "upc": "404"}
    ]);
    let out = run(&reviews(), query, json!({"r": reps})).await;
    assert_eq!(
        out["data"],
        json!({"_entities": [{"upc": "1", "rating": 4.5}, null, null]})
    );
    assert_eq!(out["errors"].as_array().unwrap().len(), 1, "{out}");
    assert_eq!(out["errors"][0]["message"], "no rating");
    assert_eq!(out["errors"][0]["path"], json!(["_entities", 1, "rating"]));
    assert_eq!(out["errors"][0]["extensions"], json!({"code": "E_RATING"}));
}

#[tokio::test]
async fn non_null_nulls_propagate_inside_lists() {
    let query = "query($r: [_Any!]!) { _entities(representations: $r) { ... on Product { reviews { id body } } } }";
    let out = run(
        &reviews(),
        query,
        json!({"r": [{"__typename": "Product", "upc": "3"}]}),
    )
    .await;
    assert_eq!(
        out["data"],
        json!({"_entities": [{"reviews": null}]}),
        "{out}"
    );
    assert_eq!(
        out["errors"][0]["path"],
        json!(["_entities", 0, "reviews", 0, "body"])
    );
}

const SHAPES: &str = r#"
schema
  @link(url: "https://specs.apollo.dev/link/v1.0")
  @link(url: "https://specs.apollo.dev/join/v0.5", for: EXECUTION)
{
  query: Query
}

directive @join__directive(graphs: [join__Graph!], name: String!, args: join__DirectiveArguments) repeatable on SCHEMA | OBJECT | INTERFACE | FIELD_DEFINITION
directive @join__enumValue(graph: join__Graph!) repeatable on ENUM_VALUE
directive @join__field(graph: join__Graph, requires: join__FieldSet, provides: join__FieldSet, type: String, external: Boolean, override: String, usedOverridden: Boolean, overrideLabel: String, contextArguments: [join__ContextArgument!]) repeatable on FIELD_DEFINITION | INPUT_FIELD_DEFINITION
directive @join__graph(name: String!, url: String!) on ENUM_VALUE
directive @join__implements(graph: join__Graph!, interface: String!) repeatable on OBJECT | INTERFACE
directive @join__type(graph: join__Graph!, key: join__FieldSet, extension: Boolean! = false, resolvable: Boolean! = true, isInterfaceObject: Boolean! = false) repeatable on OBJECT | INTERFACE | UNION | ENUM | INPUT_OBJECT | SCALAR
directive @join__unionMember(graph: join__Graph!, member: String!) repeatable on UNION
directive @link(url: String, as: String, for: link__Purpose, import: [link__Import]) repeatable on SCHEMA

input join__ContextArgument { name: String!  type: String!  context: String!  selection: join__FieldValue! }
scalar join__DirectiveArguments
scalar join__FieldSet
scalar join__FieldValue
enum join__Graph {
  A @join__graph(name: "a", url: "http://a.invalid/graphql")
  B @join__graph(name: "b", url: "http://b.invalid/graphql")
}
scalar link__Import
enum link__Purpose { SECURITY EXECUTION }

interface Media @join__type(graph: A, key: "id") @join__type(graph: B, key: "id", isInterfaceObject: true) {
  id: ID!
  title: String @join__field(graph: A)
  score: Int @join__field(graph: B)
}
type Book implements Media @join__implements(graph: A, interface: "Media") @join__type(graph: A, key: "id") {
  id: ID!
  title: String
  pages: Int
  shipping: Int @join__field(graph: A, requires: "weight dims { size }")
  weight: Int @join__field(graph: A, external: true)
  dims: Dims @join__field(graph: A, external: true)
}
type Dims @join__type(graph: A) { size: Int }
type Movie implements Media @join__implements(graph: A, interface: "Media") @join__type(graph: A, key: "id") {
  id: ID!
  title: String
}
union Hit @join__type(graph: A) @join__unionMember(graph: A, member: "Book") @join__unionMember(graph: A, member: "Movie") = Book | Movie
type Query @join__type(graph: A) @join__type(graph: B) {
  media: [Media] @join__field(graph: A)
  hits: [Hit!] @join__field(graph: A)
  topScored: [Media] @join__field(graph: B)
}
"#;

#[tokio::test]
async fn abstract_types_entity_interfaces_and_requires() {
    let a = FixtureSubgraph::new(
        SHAPES,
        "a",
        json!({
            "Query": {
                "media": [{"__typename": "Book", "id": "b1"}, null, {"__typename": "Movie", "id": "m1", "title": "Up"}],
                "hits": [{"__typename": "Movie", "id": "m1"}]
            },
            "entities": {
                "Book": [{"id": "b1", "title": "Dune", "pages": 500, "shipping": 7, "dims": {"size": 2}}],
                "Movie": [{"id": "m1", "title": "Up"}]
            }
        }),
    )
    .unwrap();
    let out = run(
        &a,
        "{ media { __typename id title ... on Book { pages } } hits { ... on Movie { title } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        out,
        json!({"data": {
            "media": [
                {"__typename": "Book", "id": "b1", "title": "Dune", "pages": 500},
                null,
                {"__typename": "Movie", "id": "m1", "title": "Up"}
            ],
            "hits": [{"title": "Up"}]
        }})
    );
    // An @interfaceObject-style representation carries the interface's name.
    let query = "query($r: [_Any!]!) { _entities(representations: $r) { __typename ... on Book { shipping } ... on Movie { title } } }";
    let reps = json!([
        {"__typename": "Media", "id": "m1"},
        {"__typename": "Book", "id": "b1", "weight": 1, "dims": {"size": 2}},
        {"__typename": "Book", "id": "b1", "weight": 1}
    ]);
    let out = run(&a, query, json!({"r": reps})).await;
    assert_eq!(
        out["data"],
        json!({"_entities": [
            {"__typename": "Movie", "title": "Up"},
            {"__typename": "Book", "shipping": 7},
            {"__typename": "Book", "shipping": null}
        ]}),
        "{out}"
    );
    assert_eq!(out["errors"][0]["message"], "missing required field dims");

    let b = FixtureSubgraph::new(
        SHAPES,
        "b",
        json!({"entities": {"Media": [{"id": "m1", "score": 9}]}}),
    )
    .unwrap();
    assert!(b.sdl().contains("type Media"), "{}", b.sdl());
    let query =
        "query($r: [_Any!]!) { _entities(representations: $r) { ... on Media { id score } } }";
    let out = run(
        &b,
        query,
        json!({"r": [{"__typename": "Media", "id": "m1"}]}),
    )
    .await;
    assert_eq!(
        out,
        json!({"data": {"_entities": [{"id": "m1", "score": 9}]}})
    );
}

#[tokio::test]
async fn serves_http_and_counts_requests() {
    let subgraph = reviews();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = subgraph.serve(listener).unwrap();
    let body = json!({"query": "{ latestReviews { id } }"});
    let response = switchyard_testkit::post_json(handle.url(), &body, &Default::default())
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(
        response.body,
        json!({"data": {"latestReviews": [{"id": "r1"}, {"id": "r2"}]}})
    );
    assert_eq!(handle.request_count(), 1);
    assert_eq!(handle.requests()[0].body, body);
    let service = json!({"query": "{ _service { sdl } }"});
    let response = switchyard_testkit::post_json(handle.url(), &service, &Default::default())
        .await
        .unwrap();
    let sdl = response.body["data"]["_service"]["sdl"].as_str().unwrap();
    assert!(sdl.contains("@key(fields: \"upc\")"), "{sdl}");
    assert_eq!(handle.request_count(), 2);
}

#[tokio::test]
async fn unset_variables_leave_argument_defaults_in_place() {
    let products = FixtureSubgraph::new(
        SHOP,
        "products",
        json!({"Query": {"topProducts({\"first\":5})": [{"upc": "1"}]}}),
    )
    .unwrap();
    let out = run(
        &products,
        "query($first: Int) { topProducts(first: $first) { upc } }",
        json!({}),
    )
    .await;
    assert_eq!(out, json!({"data": {"topProducts": [{"upc": "1"}]}}));
}

#[tokio::test]
async fn starts_every_subgraph_and_leaves_down_ones_unreachable() {
    let fixtures = [(
        "products".to_string(),
        json!({"Query": {"topProducts({\"first\":5})": []}}),
    )]
    .into_iter()
    .collect();
    let running = switchyard_testkit::start_subgraphs(SHOP, &fixtures, &["accounts".to_string()])
        .await
        .unwrap();
    assert_eq!(running.urls.len(), 3);
    assert_eq!(running.handles.len(), 2);
    let body = json!({"query": "{ topProducts { upc } }"});
    let ok = switchyard_testkit::post_json(&running.urls["products"], &body, &Default::default())
        .await
        .unwrap();
    assert_eq!(ok.body, json!({"data": {"topProducts": []}}));
    assert_eq!(running.request_count("products"), 1);
    assert_eq!(running.request_count("reviews"), 0);
    let down =
        switchyard_testkit::post_json(&running.urls["accounts"], &body, &Default::default()).await;
    assert!(down.is_err(), "{down:?}");
    let typo = [("prodcts".to_string(), json!({}))].into_iter().collect();
    assert!(switchyard_testkit::start_subgraphs(SHOP, &typo, &[])
        .await
        .is_err());
}

#[test]
fn loads_cases_with_shared_supergraph_files() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/federation/cases");
    let case = switchyard_testkit::Case::load(&dir.join("core_entity_single_jump.case")).unwrap();
    assert!(case.supergraph_sdl().unwrap().contains("join__Graph"));
    assert_eq!(
        case.request_body()["query"]
            .as_str()
            .unwrap()
            .lines()
            .next(),
        Some("{")
    );
}

#[tokio::test]
async fn null_in_a_non_null_root_field_nulls_data() {
    let products = FixtureSubgraph::new(
        SHOP,
        "products",
        json!({"Query": {"topProducts({\"first\":5})": [{"upc": "1"}, {"upc": null}]}}),
    )
    .unwrap();
    let out = run(&products, "{ topProducts { upc } }", json!({})).await;
    assert_eq!(out["data"], Value::Null, "{out}");
    assert_eq!(
        out["errors"][0]["message"],
        "Cannot return null for non-nullable field Product.upc."
    );
    assert_eq!(out["errors"][0]["path"], json!(["topProducts", 1, "upc"]));
}

#[tokio::test]
async fn fixture_shape_mistakes_are_field_errors() {
    let a = FixtureSubgraph::new(
        SHAPES,
        "a",
        json!({"Query": {"media": [{"id": "b1"}], "hits": {"not": "a list"}}}),
    )
    .unwrap();
    let out = run(&a, "{ media { id } hits { __typename } }", json!({})).await;
    assert_eq!(out["data"], json!({"media": [null], "hits": null}), "{out}");
    let messages: Vec<_> = out["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect();
    assert!(messages[0].contains("Query.media"), "{messages:?}");
    assert!(messages[0].contains("__typename"), "{messages:?}");
    assert!(messages[1].contains("not a list"), "{messages:?}");
}

#[test]
fn fixture_typos_are_rejected() {
    for bad in [
        json!({"entites": {}}),
        json!({"Mutation": {}}),
        json!({"entities": {"Prodct": []}}),
        json!({"entities": {"Product": {"upc": "1"}}}),
    ] {
        let err = FixtureSubgraph::new(SHOP, "products", bad.clone()).unwrap_err();
        assert!(err.to_string().contains("fixture"), "{bad}: {err}");
    }
    assert!(FixtureSubgraph::new(
        SHOP,
        "accounts",
        json!({"Mutation": {}, "entities": {"User": []}})
    )
    .is_ok());
}

#[tokio::test]
async fn counters_are_shared_by_the_subgraphs_given_them() {
    const COUNTERS: &str = include_str!("../../tests/federation/cases/shared/counters.graphql");
    let source = SupergraphSource::parse(COUNTERS).unwrap();
    let counters = std::sync::Arc::new(switchyard_testkit::Counters::default());
    let subgraph = |name: &str, fixture: Value| {
        FixtureSubgraph::from_model_with_counters(
            source.subgraph(name).unwrap(),
            fixture,
            counters.clone(),
        )
        .unwrap()
    };
    let a = subgraph("a", json!({"Mutation": {"bumpA": {"$count": "c"}}}));
    let b = subgraph("b", json!({"Mutation": {"bumpB": {"$count": "c"}}}));
    let alone = FixtureSubgraph::from_model(
        source.subgraph("b").unwrap(),
        json!({"Mutation": {"bumpB": {"$count": "c"}}}),
    )
    .unwrap();
    let first = run(&a, "mutation { x: bumpA y: bumpA }", json!({})).await;
    assert_eq!(first, json!({"data": {"x": 1, "y": 2}}));
    assert_eq!(
        run(&b, "mutation { bumpB }", json!({})).await,
        json!({"data": {"bumpB": 3}})
    );
    assert_eq!(
        run(&alone, "mutation { bumpB }", json!({})).await,
        json!({"data": {"bumpB": 1}}),
        "a subgraph started on its own has counters of its own"
    );
}
