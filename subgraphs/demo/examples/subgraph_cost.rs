//! Measures what one subgraph request of the nested benchmark costs the demo subgraphs, in
//! process (no HTTP): `cargo run --release -p switchyard-demo-subgraphs --example subgraph_cost`.
//! The load test shares a core between the subgraphs and wrk, so this bounds its throughput.

use std::time::Instant;

use axum::body::Body;
use axum::http::Request;
use switchyard_demo_subgraphs::{router, DemoSubgraph};
use tower::Service;

const REVIEWS_FETCH: &str = r#"{"query":"query($r:[_Any!]!){_entities(representations:$r){...on Product{reviews{id body rating author{id username reviews{id body rating product{upc __typename}} __typename}}}}}","variables":{"r":[{"__typename":"Product","upc":"1001"},{"__typename":"Product","upc":"1002"},{"__typename":"Product","upc":"1003"},{"__typename":"Product","upc":"1004"},{"__typename":"Product","upc":"1005"}]}}"#;
const TOP_PRODUCTS: &str =
    r#"{"query":"query TopProducts { topProducts(first: 5) { upc name price weight category } }"}"#;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    for (label, subgraph, body) in [
        (
            "products topProducts(5)",
            DemoSubgraph::Products,
            TOP_PRODUCTS,
        ),
        (
            "reviews _entities(5 products), 440 reviews",
            DemoSubgraph::Reviews,
            REVIEWS_FETCH,
        ),
    ] {
        let app = router(subgraph);
        let run = |n: usize| {
            let mut app = app.clone();
            async move {
                let mut bytes = 0;
                for _ in 0..n {
                    let req = Request::post("/graphql")
                        .header("content-type", "application/json")
                        .body(Body::from(body))
                        .expect("request");
                    let resp = app.call(req).await.expect("infallible");
                    bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
                        .await
                        .expect("body")
                        .len();
                }
                bytes
            }
        };
        run(200).await;
        let n = 2000;
        let start = Instant::now();
        let bytes = run(n).await;
        let per = start.elapsed() / n as u32;
        println!("{label}: {per:?} per request, {bytes} bytes");
    }
}
