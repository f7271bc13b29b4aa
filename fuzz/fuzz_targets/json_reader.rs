//! The executor's JSON reader against serde_json: on any input it must not panic, must accept
//! exactly what serde_json accepts, and must read the same value (checked by writing ours back out
//! and re-reading it). Floats may differ in the last bits: serde_json (without its
//! `float_roundtrip` feature) does not round them correctly, and a number it reads alone (as ours
//! hands it floats and integers beyond 64 bits) can come out one or two ULPs from the same number
//! read inside a document, both beside the correct value.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use switchyard_gateway::internals::{read_response, read_response_in, read_value};

/// Equal, floats within a few ULPs.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (
                x.as_f64().unwrap_or(f64::NAN),
                y.as_f64().unwrap_or(f64::NAN),
            );
            x == y || (x - y).abs() <= x.abs().max(y.abs()) * 1e-15
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((kx, x), (ky, y))| kx == ky && same(x, y))
        }
        _ => a == b,
    }
}

fuzz_target!(|bytes: &[u8]| {
    // A whole subgraph body, including invalid UTF-8, which only this entry point sees: read
    // with its long strings in place (as fetched bodies are) or copied, the same outcome.
    let copied = read_response(bytes);
    let in_place = read_response_in(bytes.to_vec().into());
    assert_eq!(copied, in_place, "in place and copied read differently");
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    match (read_value(text), serde_json::from_str::<Value>(text)) {
        (Ok(ours), Ok(theirs)) => {
            let written = ours.to_json();
            let reread: Value =
                serde_json::from_slice(&written).expect("the writer wrote invalid JSON");
            assert!(
                same(&reread, &theirs),
                "read differently: {reread} vs {theirs}"
            );
        }
        (Err(_), Err(_)) => {}
        (ours, theirs) => panic!("accepted differently: ours {ours:?}, serde_json {theirs:?}"),
    }
});
