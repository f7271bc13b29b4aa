//! The HTTP handler's GET query-string parser (`GET /graphql?query=…&variables=…`): on any query
//! string the server would accept it must not panic, a refusal carries a message, and an accepted
//! operation's variables are a JSON object that the `variables` parameter really holds.

#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_gateway::internals::{parse_get_query, GetOperation};

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let Some(parsed) = parse_get_query(text) else {
        return;
    };
    match parsed {
        Ok(Some(GetOperation {
            variables: Some(variables),
            ..
        })) => {
            let value: serde_json::Value =
                serde_json::from_str(&variables).expect("variables re-read as JSON");
            assert!(value.is_object(), "variables not an object: {variables}");
            assert!(
                text.contains("variables="),
                "variables without a variables parameter: {text:?}"
            );
        }
        Ok(_) => {}
        Err(message) => assert!(!message.is_empty(), "an empty message for {text:?}"),
    }
});
