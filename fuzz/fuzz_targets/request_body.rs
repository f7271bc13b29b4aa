//! The HTTP handler's POST body parser: on any input it must not panic, and a body it accepts
//! must be UTF-8 and a JSON object whose `query` is the document it returned.

#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_gateway::internals::parse_request_body;

fuzz_target!(|bytes: &[u8]| {
    match parse_request_body(bytes) {
        Ok(query) => {
            assert!(std::str::from_utf8(bytes).is_ok(), "accepted invalid UTF-8");
            // serde_json's own tree refuses numbers beyond f64 (`1e999`), which JSON allows and
            // the request type ignores in members it does not read; compare when it can.
            if let Ok(body) = serde_json::from_slice::<serde_json::Value>(bytes) {
                assert_eq!(body["query"].as_str(), Some(query.as_str()));
            }
        }
        Err(message) => assert!(!message.is_empty(), "an empty message for {bytes:?}"),
    }
});
