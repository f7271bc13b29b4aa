//! The executor's JSON reader against serde_json: on any input it must not panic, must accept
//! exactly what serde_json accepts, and must read the same value (checked both through the
//! conversion from serde_json's value and by writing ours back out and re-reading it).

#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_gateway::internals::{read_response, read_value, Data};

fuzz_target!(|bytes: &[u8]| {
    // A whole subgraph body, including invalid UTF-8, which only this entry point sees.
    let _ = read_response(bytes);
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    match (
        read_value(text),
        serde_json::from_str::<serde_json::Value>(text),
    ) {
        (Ok(ours), Ok(theirs)) => {
            let written = ours.to_json();
            let reread: serde_json::Value =
                serde_json::from_slice(&written).expect("the writer wrote invalid JSON");
            assert_eq!(reread, theirs, "written back differently");
            assert_eq!(ours, Data::from(theirs), "read differently");
        }
        (Err(_), Err(_)) => {}
        (ours, theirs) => panic!("accepted differently: ours {ours:?}, serde_json {theirs:?}"),
    }
});
