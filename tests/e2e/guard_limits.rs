//! The gateway's and the subgraphs' request limits come from one place (`switchyard-guard`) and
//! stay consistent: the defaults are what `guard/` says, every subgraph's limits cover what the
//! gateway can send, and an operation at the gateway's limits really passes a subgraph's guards
//! (through the running stack), while one past them is refused by the gateway.

use crate::common;

use common::{error_codes, start_stack};
use serde_json::json;
use switchyard_gateway::GatewayConfig;
use switchyard_guard::RequestLimits;
use switchyard_subgraph_kit::guards::{self, Guards};

fn gateway_limits(config: &GatewayConfig) -> RequestLimits {
    RequestLimits {
        max_body_bytes: config.max_body_bytes,
        max_depth: config.max_depth,
        max_aliases: config.max_aliases,
        max_fields: config.max_fields,
        max_root_fields: config.max_root_fields,
    }
}

/// `member(id:) { mutualConnections(with:) { … { id } } }`, `depth` fields deep.
fn nested(depth: usize) -> String {
    let inner = depth - 2;
    format!(
        "{{ member(id: \"nobody\") {{ {}id{} }} }}",
        "mutualConnections(with: \"nobody\") { ".repeat(inner),
        " }".repeat(inner)
    )
}

#[test]
fn limits_come_from_guard_and_subgraphs_cover_the_gateway() {
    let gateway = gateway_limits(&GatewayConfig::default());
    assert_eq!(gateway, RequestLimits::GATEWAY);
    assert_eq!(Guards::default().limits, RequestLimits::SUBGRAPH);
    assert!(Guards::default().limits.covers(&gateway));
    // What this process's services run with (no SUBGRAPH_* overrides here).
    assert!(Guards::current().limits.covers(&gateway));
    // Same codes for the same refusals on both sides.
    use switchyard_gateway as gw;
    assert_eq!(guards::MAX_DEPTH_EXCEEDED, gw::MAX_DEPTH_EXCEEDED);
    assert_eq!(guards::MAX_ALIASES_EXCEEDED, gw::MAX_ALIASES_EXCEEDED);
    assert_eq!(
        guards::MAX_ROOT_FIELDS_EXCEEDED,
        gw::MAX_ROOT_FIELDS_EXCEEDED
    );
    assert_eq!(guards::PAYLOAD_TOO_LARGE, gw::PAYLOAD_TOO_LARGE);
    assert_eq!(guards::BAD_REQUEST, gw::BAD_REQUEST);
    assert_eq!(guards::INTROSPECTION_DISABLED, gw::INTROSPECTION_DISABLED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_at_the_gateways_limits_pass_the_subgraphs() {
    // The cost estimate would refuse nested lists long before the depth limit: off here, so
    // the depth and alias limits are what is tested.
    let t = start_stack(|o| o.gateway.max_cost = 0).await;
    let limits = gateway_limits(&GatewayConfig::default());

    // As deep as the gateway allows: planned into one profile fetch, which the profile service
    // parses, checks and validates in full (the member does not exist, so it answers null).
    let deepest = t
        .client
        .send(&nested(limits.max_depth), json!({}))
        .await
        .unwrap();
    assert!(deepest.errors().is_empty(), "{}", deepest.body);
    assert_eq!(deepest.body["data"]["member"], json!(null));
    let deeper = t
        .client
        .send(&nested(limits.max_depth + 1), json!({}))
        .await
        .unwrap();
    assert_eq!(error_codes(&deeper.errors()), ["MAX_DEPTH_EXCEEDED"]);

    // As many aliases as the gateway allows, all in one subgraph fetch.
    let aliases: String = (0..limits.max_aliases)
        .map(|i| format!("a{i}: handle "))
        .collect();
    let most = t
        .client
        .send(
            &format!("{{ member(id: \"nobody\") {{ {aliases} }} }}"),
            json!({}),
        )
        .await
        .unwrap();
    assert!(most.errors().is_empty(), "{}", most.body);

    t.stack.shutdown().await.unwrap();
}
