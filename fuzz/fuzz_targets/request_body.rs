//! The HTTP handler's POST body parser: on any input it must not panic, and a body it accepts
//! must be a JSON object whose `query` is the document it returned.

#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_gateway::internals::parse_request_body;

fuzz_target!(|bytes: &[u8]| {
    match parse_request_body(bytes) {
        Ok(query) => {
            let body: serde_json::Value =
                serde_json::from_slice(bytes).expect("an accepted body is JSON");
            assert_eq!(body["query"].as_str(), Some(query.as_str()));
        }
        Err(message) => assert!(!message.is_empty(), "an empty message for {bytes:?}"),
    }
});
