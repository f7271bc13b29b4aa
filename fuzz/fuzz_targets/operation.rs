//! The front half of the request pipeline on the demo supergraph: parse, operation limits,
//! validation and planning (`Gateway::plan`) must answer any document, with a plan or errors,
//! without panicking.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use switchyard_gateway::{Gateway, GatewayConfig};

static GATEWAY: LazyLock<Gateway> = LazyLock::new(|| {
    let sdl = include_str!("../../schema/demo/supergraph.graphql");
    Gateway::from_supergraph_sdl(sdl, GatewayConfig::default()).expect("the demo supergraph loads")
});

fuzz_target!(|bytes: &[u8]| {
    let Ok(query) = std::str::from_utf8(bytes) else {
        return;
    };
    if let Err(errors) = GATEWAY.plan(query, None) {
        assert!(!errors.0.is_empty(), "rejected without an error: {query:?}");
    }
});
