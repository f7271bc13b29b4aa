//! HTTPS and HTTP/2 to subgraphs, over real loopback sockets: a CA generated per test, the
//! products subgraph behind a TLS front; trusted only with the CA configured, mTLS, HTTP/2 by
//! ALPN, HTTP/1.1 when turned off, and HTTP/2 cleartext (prior knowledge) per subgraph.

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap is the test failing, at that line"
)]

mod common;
#[path = "common/tls.rs"]
mod tls;

use serde_json::{json, Value};
use switchyard_gateway::{Gateway, GatewayConfig, GatewayError, GraphQLRequest};

use common::{start_gateway, Subgraphs};
use tls::{server_config, start_front, TestCa};

const BOTH: &str = "{ topProducts { upc } me { id } }";

async fn run(gateway: &Gateway, query: &str) -> Value {
    gateway
        .execute(
            GraphQLRequest {
                query: Some(query.to_owned()),
                ..GraphQLRequest::default()
            },
            &http::HeaderMap::new(),
        )
        .await
        .json()
}

fn assert_ok(body: &Value) {
    assert_eq!(
        body,
        &json!({"data": {"topProducts": [{"upc": "1"}, {"upc": "2"}, {"upc": "3"}], "me": {"id": "u1"}}}),
    );
}

/// The products fetch failed (the rest answered) with a message containing `part`.
fn assert_products_failed(body: &Value, part: &str) {
    assert_eq!(
        body["data"],
        json!({"topProducts": null, "me": {"id": "u1"}}),
        "{body}"
    );
    let error = &body["errors"][0];
    assert_eq!(
        error["extensions"]["code"], "SUBGRAPH_REQUEST_FAILED",
        "{body}"
    );
    assert_eq!(error["extensions"]["serviceName"], "products", "{body}");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains(part), "{message}");
}

/// The four subgraphs with products behind `front_url`.
fn with_products_at(subgraphs: &Subgraphs, front_url: &str) -> Vec<(String, String)> {
    let mut list = subgraphs.list();
    assert_eq!(list[0].0, "products");
    list[0].1 = front_url.to_owned();
    list
}

#[tokio::test]
async fn https_subgraph_is_trusted_with_the_configured_ca_and_speaks_http2() {
    let subgraphs = Subgraphs::start(std::time::Duration::ZERO).await;
    let ca = TestCa::new("trust");
    let tls = server_config(&ca.server(), &[b"h2", b"http/1.1"], None);
    let (front, url) = start_front(&subgraphs.urls["products"], Some(tls), &[]).await;
    let list = with_products_at(&subgraphs, &url);

    // Without the CA: a clear error on the products fields, the other subgraph still answers.
    let (untrusting, _) = start_gateway(list.clone(), GatewayConfig::default()).await;
    let body = run(&untrusting, BOTH).await;
    assert_products_failed(&body, "UnknownIssuer");
    assert_products_failed(&body, "add its CA to subgraph_tls_ca_file");
    assert!(front.versions().is_empty(), "no request got through");

    // With the CA (from the TOML file format): the fetch goes through, over HTTP/2 by ALPN.
    let mut config = GatewayConfig::default();
    config
        .apply_toml(&format!(
            "subgraph_tls_ca_file = {:?}",
            ca.ca_file().display().to_string()
        ))
        .unwrap();
    let (gateway, _) = start_gateway(list.clone(), config).await;
    assert_ok(&run(&gateway, BOTH).await);
    assert_ok(&run(&gateway, BOTH).await);
    assert_eq!(front.versions(), [http::Version::HTTP_2; 2]);

    // The same through the environment, with HTTP/2 turned off: HTTP/1.1 over TLS.
    let mut config = GatewayConfig::default();
    config
        .apply_env([
            (
                "SWITCHYARD_SUBGRAPH_TLS_CA_FILE".to_owned(),
                ca.ca_file().display().to_string(),
            ),
            ("SWITCHYARD_SUBGRAPH_HTTP2".to_owned(), "off".to_owned()),
        ])
        .unwrap();
    let (gateway, _) = start_gateway(list, config).await;
    assert_ok(&run(&gateway, BOTH).await);
    assert_eq!(front.versions().last(), Some(&http::Version::HTTP_11));
}

#[tokio::test]
async fn a_server_offering_only_http1_is_reached_over_http1() {
    let subgraphs = Subgraphs::start(std::time::Duration::ZERO).await;
    let ca = TestCa::new("h1");
    let tls = server_config(&ca.server(), &[b"http/1.1"], None);
    let (front, url) = start_front(&subgraphs.urls["products"], Some(tls), &[]).await;
    let config = GatewayConfig {
        subgraph_tls_ca_file: Some(ca.ca_file()),
        ..GatewayConfig::default()
    };
    let (gateway, _) = start_gateway(with_products_at(&subgraphs, &url), config).await;
    assert_ok(&run(&gateway, BOTH).await);
    assert_eq!(front.versions(), [http::Version::HTTP_11]);
}

#[tokio::test]
async fn mutual_tls_presents_the_configured_client_certificate() {
    let subgraphs = Subgraphs::start(std::time::Duration::ZERO).await;
    let server_ca = TestCa::new("mtls-server");
    let client_ca = TestCa::new("mtls-clients");
    let tls = server_config(&server_ca.server(), &[b"h2", b"http/1.1"], Some(&client_ca));
    let (front, url) = start_front(&subgraphs.urls["products"], Some(tls), &[]).await;
    let list = with_products_at(&subgraphs, &url);
    let ca_line = format!(
        "subgraph_tls_ca_file = {:?}\n",
        server_ca.ca_file().display().to_string()
    );

    // Trusting the server is not enough: it wants a client certificate.
    let mut config = GatewayConfig::default();
    config.apply_toml(&ca_line).unwrap();
    let (gateway, _) = start_gateway(list.clone(), config).await;
    let body = run(&gateway, BOTH).await;
    assert_eq!(body["data"]["topProducts"], Value::Null, "{body}");
    assert!(front.versions().is_empty());

    // A certificate from a CA the server does not accept is refused too.
    let stranger = TestCa::new("mtls-stranger").client("stranger");
    let mut config = GatewayConfig::default();
    config
        .apply_toml(&format!(
            "{ca_line}[subgraphs.products]\ntls_client_cert_file = {:?}\ntls_client_key_file = {:?}\n",
            stranger.cert_file.display().to_string(),
            stranger.key_file.display().to_string(),
        ))
        .unwrap();
    let (gateway, _) = start_gateway(list.clone(), config).await;
    let body = run(&gateway, BOTH).await;
    assert_eq!(body["data"]["topProducts"], Value::Null, "{body}");
    assert!(front.versions().is_empty());

    // The products subgraph's own client certificate: accepted.
    let client = client_ca.client("gateway");
    let mut config = GatewayConfig::default();
    config
        .apply_toml(&format!(
            "{ca_line}[subgraphs.products]\ntls_client_cert_file = {:?}\ntls_client_key_file = {:?}\n",
            client.cert_file.display().to_string(),
            client.key_file.display().to_string(),
        ))
        .unwrap();
    let (gateway, _) = start_gateway(list, config).await;
    assert_ok(&run(&gateway, BOTH).await);
    assert_eq!(front.versions(), [http::Version::HTTP_2]);
}

#[tokio::test]
async fn http2_cleartext_is_used_only_where_configured() {
    let subgraphs = Subgraphs::start(std::time::Duration::ZERO).await;
    let (front, url) = start_front(&subgraphs.urls["products"], None, &[]).await;
    let list = with_products_at(&subgraphs, &url);

    let (gateway, _) = start_gateway(list.clone(), GatewayConfig::default()).await;
    assert_ok(&run(&gateway, BOTH).await);
    assert_eq!(front.versions(), [http::Version::HTTP_11]);

    let mut config = GatewayConfig::default();
    config
        .apply_toml("[subgraphs.products]\nhttp2 = \"always\"\npool_max_idle = 4\npool_idle_timeout = \"30s\"")
        .unwrap();
    let transport = config.subgraph_transport("products");
    assert_eq!(transport.pool_max_idle, 4);
    assert_eq!(config.subgraph_transport("reviews").pool_max_idle, 256);
    let (gateway, _) = start_gateway(list, config).await;
    assert_ok(&run(&gateway, BOTH).await);
    assert_ok(&run(&gateway, BOTH).await);
    assert_eq!(
        front.versions(),
        [
            http::Version::HTTP_11,
            http::Version::HTTP_2,
            http::Version::HTTP_2
        ]
    );
}

#[tokio::test]
async fn unusable_tls_files_stop_the_gateway_at_start_with_the_reason() {
    let schema =
        apollo_compiler::Schema::parse_and_validate(common::API_SCHEMA, "api.graphql").unwrap();
    let subgraphs = vec![(
        "products".to_owned(),
        "https://127.0.0.1:1/graphql".to_owned(),
    )];
    let build = |toml_text: &str| {
        let mut config = GatewayConfig::default();
        config.apply_toml(toml_text).unwrap();
        Gateway::from_parts(
            schema.clone(),
            subgraphs.clone(),
            std::sync::Arc::new(common::stub_planner()),
            config,
        )
    };
    let err = build("subgraph_tls_ca_file = \"/nonexistent/ca.pem\"").unwrap_err();
    assert!(matches!(err, GatewayError::SubgraphTls { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");

    let ca = TestCa::new("bad-files");
    let empty = ca.dir.join("empty.pem");
    std::fs::write(&empty, "not a certificate").unwrap();
    let err = build(&format!(
        "subgraph_tls_ca_file = {:?}",
        empty.display().to_string()
    ))
    .unwrap_err();
    assert!(err.to_string().contains("no PEM certificates"), "{err}");

    let client = ca.client("half");
    let err = build(&format!(
        "[subgraphs.products]\ntls_client_cert_file = {:?}",
        client.cert_file.display().to_string()
    ))
    .unwrap_err();
    assert!(err.to_string().contains("needs both"), "{err}");

    let mut config = GatewayConfig::default();
    assert!(config.apply_toml("subgraph_http2 = \"sometimes\"").is_err());
    let err = config
        .apply_env([("SWITCHYARD_SUBGRAPH_HTTP2".to_owned(), "maybe".to_owned())])
        .unwrap_err();
    assert!(
        err.to_string().contains("SWITCHYARD_SUBGRAPH_HTTP2"),
        "{err}"
    );
    let err = Gateway::from_parts(
        schema,
        vec![("products".to_owned(), "ftp://x/graphql".to_owned())],
        std::sync::Arc::new(common::stub_planner()),
        GatewayConfig::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("http:// or https://"), "{err}");
}
