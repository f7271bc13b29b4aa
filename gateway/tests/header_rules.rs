//! Header rules over real loopback HTTP: what each subgraph receives (propagate by name and
//! pattern, rename, insert, remove; for all subgraphs and per subgraph), what comes back to the
//! client (Cache-Control merged to the most restrictive, other headers by their merge rule), and
//! in-flight collapsing keyed on the headers each subgraph actually gets.

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap is the test failing, at that line"
)]

mod common;
#[path = "common/tls.rs"]
mod tls;

use std::time::Duration;

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use switchyard_gateway::{GatewayConfig, GraphQLRequest};

use common::{start_gateway, Subgraphs};
use tls::start_front;

/// POSTs `query` to the gateway with `headers`; returns the response headers and JSON body.
async fn post(base: &str, query: &str, headers: &[(&str, &str)]) -> (http::HeaderMap, Value) {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut request =
        http::Request::post(format!("{base}/graphql")).header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let body = serde_json::to_vec(&json!({ "query": query })).unwrap();
    let response = client
        .request(request.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (headers, serde_json::from_slice(&body).unwrap())
}

fn names(headers: &http::HeaderMap) -> Vec<String> {
    let mut names: Vec<String> = headers.keys().map(|n| n.to_string()).collect();
    names.sort();
    names
}

#[tokio::test]
async fn request_rules_shape_what_each_subgraph_receives() {
    let subgraphs = Subgraphs::start(Duration::ZERO).await;
    let (products, products_url) = start_front(&subgraphs.urls["products"], None, &[]).await;
    let (accounts, accounts_url) = start_front(&subgraphs.urls["accounts"], None, &[]).await;
    let mut list = subgraphs.list();
    list[0].1 = products_url;
    list[2].1 = accounts_url;
    let mut config = GatewayConfig::default();
    config
        .apply_toml(
            r#"
            propagate_headers = ["Authorization"]
            [headers]
            request = [
              { propagate = "x-tenant-*" },
              { propagate = "x-client-version", rename = "x-app-version" },
              { propagate = "x-locale", default = "en" },
              { insert = "x-gateway", value = "switchyard" },
              { remove = "x-tenant-secret" },
            ]
            [subgraphs.products.headers]
            request = [
              { insert = "x-api-key", value = "products-key" },
              { remove = "authorization" },
            ]
            "#,
        )
        .unwrap();
    let (_gateway, base) = start_gateway(list, config).await;
    let (_, body) = post(
        &base,
        "{ topProducts { upc } me { id } }",
        &[
            ("authorization", "Bearer t0ken"),
            ("x-tenant-id", "acme"),
            ("x-tenant-secret", "hush"),
            ("x-client-version", "1.2.3"),
            ("x-gateway", "spoofed"),
            ("x-forwarded-for", "6.6.6.6"),
            ("x-unrelated", "no"),
        ],
    )
    .await;
    assert_eq!(body["data"]["me"], json!({"id": "u1"}), "{body}");
    assert_eq!(
        body["data"]["topProducts"][0],
        json!({"upc": "1"}),
        "{body}"
    );

    let seen = &products.headers()[0];
    assert_eq!(seen["x-tenant-id"], "acme");
    assert_eq!(seen["x-app-version"], "1.2.3");
    assert_eq!(seen["x-locale"], "en");
    assert_eq!(seen["x-gateway"], "switchyard");
    assert_eq!(seen["x-api-key"], "products-key");
    // The client's own X-Forwarded-For is replaced by its real address.
    assert_eq!(seen["x-forwarded-for"], "127.0.0.1");
    for absent in [
        "authorization",
        "x-tenant-secret",
        "x-client-version",
        "x-unrelated",
    ] {
        assert!(!seen.contains_key(absent), "{absent}: {:?}", names(seen));
    }

    let seen = &accounts.headers()[0];
    assert_eq!(seen["authorization"], "Bearer t0ken");
    assert_eq!(seen["x-tenant-id"], "acme");
    assert_eq!(seen["x-gateway"], "switchyard");
    assert!(!seen.contains_key("x-api-key"), "{:?}", names(seen));
}

#[tokio::test]
async fn response_headers_come_back_merged_conservatively() {
    let subgraphs = Subgraphs::start(Duration::ZERO).await;
    let (_, products_url) = start_front(
        &subgraphs.urls["products"],
        None,
        &[
            ("cache-control", "public, max-age=60"),
            ("x-served-by", "products"),
            ("x-internal", "do-not-leak"),
        ],
    )
    .await;
    let (_, accounts_url) = start_front(
        &subgraphs.urls["accounts"],
        None,
        &[
            ("cache-control", "public, max-age=30, s-maxage=120"),
            ("x-served-by", "accounts"),
        ],
    )
    .await;
    let mut list = subgraphs.list();
    list[0].1 = products_url;
    list[2].1 = accounts_url;
    let mut config = GatewayConfig::default();
    config
        .apply_toml(
            r#"
            [headers]
            response = [
              { propagate = "cache-control" },
              { propagate = "x-served-*", merge = "append" },
            ]
            "#,
        )
        .unwrap();
    let (_gateway, base) = start_gateway(list, config).await;

    let (headers, body) = post(&base, "{ topProducts { upc } me { id } }", &[]).await;
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(headers["cache-control"], "public, max-age=30, s-maxage=60");
    let served: Vec<_> = headers.get_all("x-served-by").iter().collect();
    assert_eq!(served.len(), 2, "{served:?}");
    assert!(served.contains(&&http::HeaderValue::from_static("products")));
    assert!(!headers.contains_key("x-internal"));
    assert_eq!(headers["content-type"], "application/json");

    let (headers, _) = post(&base, "{ me { id } }", &[]).await;
    assert_eq!(headers["cache-control"], "public, max-age=30, s-maxage=120");

    // Reviews sends no Cache-Control: the combined response must not be cached at all.
    let (headers, body) = post(&base, "{ topProducts { upc reviews { id } } }", &[]).await;
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(headers["cache-control"], "no-store");

    // A request that fails before any fetch carries nothing passed back.
    let (headers, _) = post(&base, "{ nope }", &[]).await;
    assert!(!headers.contains_key("cache-control"));
    assert!(!headers.contains_key("x-served-by"));
}

#[tokio::test]
async fn collapsing_keys_on_the_headers_each_subgraph_gets() {
    // A slow products subgraph so that concurrent requests overlap.
    let subgraphs = Subgraphs::start(Duration::from_millis(300)).await;
    let (products, products_url) = start_front(&subgraphs.urls["products"], None, &[]).await;
    let mut list = subgraphs.list();
    list[0].1 = products_url;
    let mut config = GatewayConfig::default();
    config
        .apply_toml(
            r#"
            [subgraphs.products.headers]
            request = [{ propagate = "x-tenant" }]
            "#,
        )
        .unwrap();
    let (gateway, _) = start_gateway(list, config).await;
    let run = |tenant: &'static str, noise: &'static str| {
        let gateway = gateway.clone();
        async move {
            let mut headers = http::HeaderMap::new();
            headers.insert("x-tenant", http::HeaderValue::from_static(tenant));
            // Not forwarded to any subgraph: must not split collapsed fetches.
            headers.insert("x-noise", http::HeaderValue::from_static(noise));
            gateway
                .execute(
                    GraphQLRequest {
                        query: Some("{ topProducts { upc } }".to_owned()),
                        ..GraphQLRequest::default()
                    },
                    &headers,
                )
                .await
                .json()
        }
    };
    let answers =
        futures::future::join_all([run("a", "1"), run("a", "2"), run("b", "3"), run("b", "4")])
            .await;
    for answer in &answers {
        assert_eq!(
            answer["data"]["topProducts"][2],
            json!({"upc": "3"}),
            "{answer}"
        );
    }
    // Two fetches: one per tenant, each shared by the two requests of that tenant.
    let mut tenants: Vec<String> = products
        .headers()
        .iter()
        .map(|h| h["x-tenant"].to_str().unwrap().to_owned())
        .collect();
    tenants.sort();
    assert_eq!(tenants, ["a", "b"]);
}
