//! The demo subgraphs over real HTTP: their SDL matches the committed files, and their root
//! fields and entity resolvers behave as the supergraph promises.

mod common;

use common::{graphql, http, schema_dir, start};
use serde_json::{json, Value};
use switchyard_demo_subgraphs::{sdl, DemoSubgraph, REVIEWS_PER_PRODUCT, REVIEWS_PER_USER};

#[tokio::test]
async fn service_sdl_matches_the_committed_schema_files() {
    for s in DemoSubgraph::ALL {
        let addr = start(s).await;
        let response = graphql(addr, "{ _service { sdl } }", json!({})).await;
        let served = response["data"]["_service"]["sdl"]
            .as_str()
            .expect("_service.sdl");
        let path = schema_dir().join(format!("{}.graphql", s.name()));
        let committed = std::fs::read_to_string(&path).expect("read schema file");
        assert_eq!(
            served,
            committed,
            "{} drifted: run `cargo run -p switchyard-demo-subgraphs -- --print-schema {} > {}`",
            s.name(),
            s.name(),
            path.display()
        );
        assert_eq!(sdl(s), committed, "sdl({s}) differs from _service.sdl");
    }
}

#[tokio::test]
async fn health_and_get_requests_are_served() {
    let addr = start(DemoSubgraph::Products).await;
    let (status, body) = http(addr, "GET", "/health", "").await;
    assert_eq!((status, body.as_str()), (200, "ok"));

    let (status, body) = http(
        addr,
        "GET",
        "/graphql?query=%7BtopProducts(first%3A2)%7Bupc%7D%7D",
        "",
    )
    .await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v,
        json!({"data": {"topProducts": [{"upc": "1001"}, {"upc": "1002"}]}})
    );
}

#[tokio::test]
async fn accounts_resolves_root_fields_and_user_entities() {
    let addr = start(DemoSubgraph::Accounts).await;
    let v = graphql(
        addr,
        "{ me { id name username birthDate } users { id } }",
        json!({}),
    )
    .await;
    assert_eq!(v["data"]["me"]["id"], "1");
    assert_eq!(v["data"]["me"]["username"], "ada1");
    assert_eq!(v["data"]["users"].as_array().unwrap().len(), 10);

    let v = graphql(
        addr,
        "query($r: [_Any!]!) { _entities(representations: $r) { ... on User { id name } } }",
        json!({"r": [
            {"__typename": "User", "id": "2"},
            {"__typename": "User", "id": "no-such-user"},
            {"__typename": "User", "id": "1"}
        ]}),
    )
    .await;
    let entities = v["data"]["_entities"].as_array().unwrap();
    assert_eq!(entities.len(), 3);
    assert_eq!(entities[0]["id"], "2");
    assert!(entities[1].is_null(), "unknown ids resolve to null: {v}");
    assert_eq!(entities[2]["id"], "1");
}

#[tokio::test]
async fn products_serves_top_products_and_product_entities() {
    let addr = start(DemoSubgraph::Products).await;
    let v = graphql(
        addr,
        "{ topProducts { upc name price weight category } productsByCategory(category: BOOKS) { upc } }",
        json!({}),
    )
    .await;
    let top = v["data"]["topProducts"].as_array().unwrap();
    assert_eq!(top.len(), 5, "first defaults to 5");
    assert_eq!(top[0]["upc"], "1001");
    assert_eq!(top[0]["category"], "FURNITURE");
    assert!(top[0]["price"].as_i64().unwrap() > 0);
    assert!(!v["data"]["productsByCategory"]
        .as_array()
        .unwrap()
        .is_empty());

    let v = graphql(
        addr,
        "query($r: [_Any!]!) { _entities(representations: $r) { ... on Product { upc name } } }",
        json!({"r": [{"__typename": "Product", "upc": "1003"}]}),
    )
    .await;
    assert_eq!(v["data"]["_entities"][0]["upc"], "1003");
    assert_eq!(v["data"]["_entities"][0]["name"], top[2]["name"]);
}

#[tokio::test]
async fn inventory_computes_shipping_from_required_fields() {
    let addr = start(DemoSubgraph::Inventory).await;
    let q = "query($r: [_Any!]!) { _entities(representations: $r) { ... on Product { upc inStock shippingEstimate } } }";
    let v = graphql(
        addr,
        q,
        json!({"r": [
            {"__typename": "Product", "upc": "1001", "price": 1500, "weight": 4000},
            {"__typename": "Product", "upc": "1002", "price": 20, "weight": 1000}
        ]}),
    )
    .await;
    assert_eq!(
        v["data"]["_entities"][0]["shippingEstimate"], 0,
        "free above 1000"
    );
    assert_eq!(v["data"]["_entities"][1]["shippingEstimate"], 5);
    assert!(v["data"]["_entities"][0]["inStock"].is_boolean());
    assert!(v.get("errors").is_none(), "{v}");

    // Without the @requires fields the estimate is an error on that field, not a wrong number.
    let v = graphql(
        addr,
        q,
        json!({"r": [{"__typename": "Product", "upc": "1001"}]}),
    )
    .await;
    assert!(v["data"]["_entities"][0]["shippingEstimate"].is_null());
    let message = v["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("price and weight"), "{v}");
    // async-graphql leaves the entity index out of the error path (`["_entities",
    // "shippingEstimate"]`): gateways must cope with that when re-pathing subgraph errors.
    let path = v["errors"][0]["path"].as_array().unwrap();
    assert_eq!(path.first(), Some(&json!("_entities")));
    assert_eq!(path.last(), Some(&json!("shippingEstimate")));
}

#[tokio::test]
async fn reviews_provides_usernames_and_links_users_and_products() {
    let accounts = start(DemoSubgraph::Accounts).await;
    let reviews = start(DemoSubgraph::Reviews).await;
    let v = graphql(
        reviews,
        "query($r: [_Any!]!) { _entities(representations: $r) { ... on Product { upc reviews { id body rating author { id username reviews { product { upc } } } product { upc } } } } }",
        json!({"r": [{"__typename": "Product", "upc": "1001"}]}),
    )
    .await;
    let product_reviews = v["data"]["_entities"][0]["reviews"].as_array().unwrap();
    assert_eq!(product_reviews.len(), REVIEWS_PER_PRODUCT);
    for r in product_reviews {
        assert_eq!(r["product"]["upc"], "1001");
        assert_eq!(
            r["author"]["reviews"].as_array().unwrap().len(),
            REVIEWS_PER_USER
        );
        // The provided username must agree with the owner of User.username.
        let id = r["author"]["id"].as_str().unwrap();
        let owner = graphql(
            accounts,
            "query($id: ID!) { user(id: $id) { username } }",
            json!({"id": id}),
        )
        .await;
        assert_eq!(r["author"]["username"], owner["data"]["user"]["username"]);
    }

    let v = graphql(
        reviews,
        "{ latestReviews(first: 3) { id } review(id: \"1\") { author { id } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        v["data"]["latestReviews"],
        json!([{"id": "400"}, {"id": "399"}, {"id": "398"}])
    );
    assert!(v["data"]["review"]["author"]["id"].is_string());
}
