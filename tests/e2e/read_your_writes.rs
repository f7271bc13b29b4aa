//! Read-your-writes after sign-up, through the gateway (issue #14, item 4): `signUp` answers the
//! new member's handle and display name on the first call, with no client wait or retry.
//!
//! Auth provides both on `signUp`'s path (`@provides`), so the planner does not ask profile,
//! which learns of the member only from `account.created`. Fields only profile knows are
//! fetched from profile, which waits (boundedly) for a member that signed up moments ago.

use crate::common;

use common::start_stack;
use serde_json::{json, Value};

const SIGN_UP: &str = "mutation($e: String!, $h: String!, $d: String!) {
    signUp(email: $e, password: \"correct horse battery staple\", handle: $h, displayName: $d) {
        accessToken
        account { id member { id handle displayName } }
    }
}";

fn vars(i: usize, prefix: &str) -> (String, String, Value) {
    let handle = format!("{prefix}{i:03}");
    let name = format!("Reader Number {i}");
    let v = json!({ "e": format!("{handle}@example.org"), "h": handle, "d": name });
    (handle, name, v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_sign_ups_read_their_member_on_the_first_call() {
    // Auth allows 20 sign-ups per client address, and these all come from loopback: each
    // sign-up claims its own address, which the gateway passes on when told to trust
    // `X-Forwarded-For` (as behind a load balancer).
    let stack = start_stack(|options| options.gateway.trust_forwarded_for = true).await;
    let from = |i: usize| {
        stack.client.with_header(
            http::HeaderName::from_static("x-forwarded-for"),
            http::HeaderValue::from_str(&format!("10.0.{}.{}", i / 250, i % 250 + 1)).unwrap(),
        )
    };

    // The plan takes handle and displayName from auth: no fetch to profile at all.
    let plan = stack
        .stack
        .gateway()
        .plan(SIGN_UP, None)
        .expect("the mutation plans")
        .to_string();
    assert!(plan.contains("auth"), "{plan}");
    assert!(
        !plan.contains("profile"),
        "signUp's member must not need profile:\n{plan}"
    );

    for i in 0..100 {
        let (handle, name, v) = vars(i, "ryw");
        let response = from(i).send(SIGN_UP, v).await.unwrap();
        assert!(
            response.errors().is_empty(),
            "sign-up {i} answered with errors on the first call: {}",
            response.body
        );
        let payload = &response.body["data"]["signUp"];
        assert!(payload["accessToken"]
            .as_str()
            .is_some_and(|t| !t.is_empty()));
        let id = payload["account"]["id"].as_str().unwrap();
        assert_eq!(
            payload["account"]["member"],
            json!({ "id": id, "handle": handle, "displayName": name }),
            "sign-up {i}"
        );
    }

    // A field only profile knows, selected under signUp: profile waits for the member that
    // signed up moments ago instead of answering the deleted-member placeholder.
    let with_profile = "mutation($e: String!, $h: String!, $d: String!) {
        signUp(email: $e, password: \"correct horse battery staple\", handle: $h, displayName: $d) {
            account { id member { handle displayName deleted connectionCount } }
        }
    }";
    for i in 0..10 {
        let (handle, name, v) = vars(i, "rywp");
        let response = from(100 + i).send(with_profile, v).await.unwrap();
        assert!(response.errors().is_empty(), "{}", response.body);
        assert_eq!(
            response.body["data"]["signUp"]["account"]["member"],
            json!({ "handle": handle, "displayName": name, "deleted": false, "connectionCount": 0 }),
            "profile-only fields on the first call, sign-up {i}"
        );
    }
    stack.stack.shutdown().await.unwrap();
}
