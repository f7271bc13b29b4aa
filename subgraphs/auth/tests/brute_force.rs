//! Brute force against log-in and sign-up: throttling per account and per client address
//! (also for guesses batched through aliases) and the password-hash cap; `logs.rs` checks
//! what they log.

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap is the test failing, at that line"
)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn codes(response: &Value) -> Vec<String> {
    response["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["extensions"]["code"].as_str().unwrap_or("").to_owned())
        .collect()
}

fn retry_after(response: &Value) -> u64 {
    response["errors"][0]["extensions"]["retryAfter"]
        .as_u64()
        .unwrap_or_else(|| panic!("expected retryAfter in {response}"))
}

#[tokio::test]
async fn forty_wrong_passwords_then_the_right_one_is_refused_while_throttled() {
    let (_dir, service) = service_with(|_| {}).await;
    let up = sign_up(&service, "ada@example.com", "ada", "correct horse", None).await;
    assert!(up.get("errors").is_none(), "{up}");

    let mut invalid = 0;
    let mut limited = 0;
    for i in 0..40 {
        let r = log_in_from(
            &service,
            "198.51.100.7",
            "ada@example.com",
            &format!("guess {i}"),
        )
        .await;
        match code(&r) {
            "INVALID_CREDENTIALS" => invalid += 1,
            "RATE_LIMITED" => {
                limited += 1;
                assert!(retry_after(&r) >= 1);
                let message = r["errors"][0]["message"].as_str().unwrap();
                assert!(message.contains("too many failed log-ins"), "{message}");
            }
            other => panic!("unexpected {other}: {r}"),
        }
    }
    // Five free failures, then one attempt per (growing) block: a test machine fast enough to
    // send 34 refused attempts within the first 1 s block sees exactly 6 checked.
    assert!(
        (6..=8).contains(&invalid),
        "{invalid} passwords were checked"
    );
    assert_eq!(invalid + limited, 40);

    // The right password is refused while blocked, from this address or any other.
    let right = log_in_from(&service, "198.51.100.7", "ada@example.com", "correct horse").await;
    assert_eq!(code(&right), "RATE_LIMITED", "{right}");
    let elsewhere = log_in_from(&service, "203.0.113.9", "ada@example.com", "correct horse").await;
    assert_eq!(code(&elsewhere), "RATE_LIMITED", "{elsewhere}");

    // After the block it goes through, and a success starts the count afresh.
    tokio::time::sleep(Duration::from_secs(retry_after(&elsewhere))).await;
    let right = log_in_from(&service, "198.51.100.7", "ada@example.com", "correct horse").await;
    assert!(right.get("errors").is_none(), "{right}");
    for i in 0..5 {
        let r = log_in_from(
            &service,
            "198.51.100.7",
            "ada@example.com",
            &format!("again {i}"),
        )
        .await;
        assert_eq!(code(&r), "INVALID_CREDENTIALS", "{r}");
    }
}

#[tokio::test]
async fn guesses_batched_through_aliases_are_throttled() {
    let (_dir, service) = service_with(|_| {}).await;
    sign_up(&service, "bo@example.com", "bo_", "correct horse", None).await;
    sign_up(&service, "cy@example.com", "cy_", "correct horse", None).await;

    // 51 guesses in one operation, the right one last: mutations run one after another, and
    // each is counted before its password is checked.
    let fields: String = (0..51)
        .map(|i| {
            let password = if i == 50 { "correct horse".to_owned() } else { format!("guess {i}") };
            format!("g{i}: logIn(email: \"bo@example.com\", password: \"{password}\") {{ accessToken }} ")
        })
        .collect();
    let r = gql_from(
        &service,
        "198.51.100.8",
        &format!("mutation {{ {fields} }}"),
        json!({}),
    )
    .await;
    let codes = codes(&r);
    assert_eq!(
        codes.len(),
        51,
        "every guess failed, the right one included: {r}"
    );
    let checked = codes.iter().filter(|c| *c == "INVALID_CREDENTIALS").count();
    assert!(checked <= 7, "{checked} passwords were checked");
    assert_eq!(codes.last().map(String::as_str), Some("RATE_LIMITED"));

    // Spread over many accounts, the client's address is what stops it.
    let fields: String = (0..51)
        .map(|i| format!("g{i}: logIn(email: \"user{i}@example.com\", password: \"guess\") {{ accessToken }} "))
        .collect();
    let r = gql_from(
        &service,
        "198.51.100.9",
        &format!("mutation {{ {fields} }}"),
        json!({}),
    )
    .await;
    let all = codes_of(&r);
    let checked = all.iter().filter(|c| *c == "INVALID_CREDENTIALS").count();
    assert!(
        (21..=23).contains(&checked),
        "{checked} passwords were checked"
    );
    let limited: Vec<&Value> = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["extensions"]["code"] == "RATE_LIMITED")
        .collect();
    assert!(limited[0]["message"]
        .as_str()
        .unwrap()
        .contains("from this address"));
    // That address is held up for any account; another address is not.
    let same = log_in_from(&service, "198.51.100.9", "cy@example.com", "correct horse").await;
    assert_eq!(code(&same), "RATE_LIMITED", "{same}");
    let other = log_in_from(&service, "198.51.100.10", "cy@example.com", "correct horse").await;
    assert!(other.get("errors").is_none(), "{other}");
    // The account guessed at in the first batch stays blocked from every address.
    let bo = log_in_from(&service, "198.51.100.10", "bo@example.com", "correct horse").await;
    assert_eq!(code(&bo), "RATE_LIMITED", "{bo}");
}

fn codes_of(response: &Value) -> Vec<String> {
    codes(response)
}

#[tokio::test]
async fn sign_ups_are_throttled_per_address() {
    let (_dir, service) = service_with(|c| c.sign_ups_per_address = 3).await;
    let query = "mutation($e: String!, $h: String!) {
        signUp(email: $e, password: \"password1\", handle: $h, displayName: \"X\") { accessToken }
    }";
    for i in 0..4 {
        let r = gql_from(
            &service,
            "2001:db8::1",
            query,
            json!({"e": format!("s{i}@example.com"), "h": format!("user{i}")}),
        )
        .await;
        assert!(r.get("errors").is_none(), "{r}");
    }
    // The same /64 network counts as one client; testing whether emails are taken is counted.
    let r = gql_from(
        &service,
        "2001:db8::2",
        query,
        json!({"e": "s0@example.com", "h": "fresh"}),
    )
    .await;
    assert_eq!(code(&r), "RATE_LIMITED", "{r}");
    assert!(retry_after(&r) >= 1);
    let r = gql_from(
        &service,
        "2001:db8:1::1",
        query,
        json!({"e": "s9@example.com", "h": "user9"}),
    )
    .await;
    assert!(r.get("errors").is_none(), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_log_ins_run_at_most_the_capped_number_of_hashes() {
    let (_dir, service) = service_with(|c| {
        c.max_concurrent_hashes = 2;
        c.max_queued_hashes = 1000;
    })
    .await;
    let service = Arc::new(service);
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let s = service.clone();
            tokio::spawn(async move { log_in(&s, &format!("flood{i}@example.com"), "guess").await })
        })
        .collect();
    for t in tasks {
        let r = t.await.unwrap();
        // Queued, not refused: each one was checked.
        assert_eq!(code(&r), "INVALID_CREDENTIALS", "{r}");
    }
    assert_eq!(service.peak_concurrent_hashes(), 2);

    // With a short queue the surplus is refused at once instead of waiting.
    let (_dir, service) = service_with(|c| {
        c.max_concurrent_hashes = 1;
        c.max_queued_hashes = 2;
        c.argon2_memory_kib = 8 * 1024;
    })
    .await;
    let service = Arc::new(service);
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let s = service.clone();
            tokio::spawn(async move { log_in(&s, &format!("flood{i}@example.com"), "guess").await })
        })
        .collect();
    let mut refused = 0;
    for t in tasks {
        let r = t.await.unwrap();
        match code(&r) {
            "INVALID_CREDENTIALS" => {}
            "RATE_LIMITED" => {
                refused += 1;
                assert_eq!(retry_after(&r), 1);
            }
            other => panic!("unexpected {other}: {r}"),
        }
    }
    assert!(refused > 0, "a full queue refuses");
    assert_eq!(service.peak_concurrent_hashes(), 1);
}
