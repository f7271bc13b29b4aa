//! Content and chat end to end through the gateway: a post found by full-text search with a typo,
//! a reaction that shows up on the author's posts, and a private conversation a third member
//! cannot read.

mod common;

use std::time::{Duration, Instant};

use common::{error_codes, sign_up, start_stack};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_is_found_with_a_typo_and_its_reaction_reaches_the_author() {
    let stack = start_stack(|_| {}).await;
    let client = &stack.client;
    let amit = sign_up(client, "amit", "Amit Sharma").await;
    let priya = sign_up(client, "priya", "Priya Nair").await;
    let as_amit = client.with_token(&amit.token);
    let as_priya = client.with_token(&priya.token);

    let created = as_amit
        .data(
            "mutation($b: String!) { createPost(body: $b) { id author { handle } } }",
            json!({ "b": "Benchmarking our federation gateway against the fastest routers" }),
        )
        .await
        .unwrap();
    let post_id = created["createPost"]["id"].as_str().unwrap().to_owned();
    // `author` is a Member: content names it, profile resolves it through the gateway.
    assert_eq!(created["createPost"]["author"]["handle"], "amit");

    // The index follows the database through the outbox: give it a moment, then search with a typo.
    let search = "query($q: String!) { searchPosts(query: $q, first: 5) { edges { snippet node { id author { displayName } } } } }";
    let deadline = Instant::now() + Duration::from_secs(10);
    let hit = loop {
        let data = as_priya
            .data(search, json!({ "q": "federaton" }))
            .await
            .unwrap();
        if let Some(edge) = data["searchPosts"]["edges"]
            .as_array()
            .and_then(|e| e.first())
        {
            break edge.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the post never became searchable"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(hit["node"]["id"], post_id.as_str());
    assert_eq!(hit["node"]["author"]["displayName"], "Amit Sharma");
    assert!(
        hit["snippet"].as_str().unwrap().contains("<b>"),
        "snippet is highlighted: {hit}"
    );

    as_priya
        .data(
            "mutation($p: ID!) { react(postId: $p, kind: LIKE) { id } }",
            json!({ "p": post_id }),
        )
        .await
        .unwrap();
    let mine = as_amit
        .data(
            "query($id: ID!) { member(id: $id) { posts(first: 5) { edges { node { id reactions { total } } } } } }",
            json!({ "id": amit.id }),
        )
        .await
        .unwrap();
    let node = &mine["member"]["posts"]["edges"][0]["node"];
    assert_eq!(node["id"], post_id.as_str());
    assert_eq!(node["reactions"]["total"], 1);
    stack.stack.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_chat_and_a_third_is_refused() {
    let stack = start_stack(|_| {}).await;
    let client = &stack.client;
    let amit = sign_up(client, "amit", "Amit Sharma").await;
    let priya = sign_up(client, "priya", "Priya Nair").await;
    let eve = sign_up(client, "eve", "Eve Outsider").await;

    let started = client
        .with_token(&amit.token)
        .data(
            "mutation($w: [ID!]!) { startConversation(with: $w) { id } }",
            json!({ "w": [priya.id] }),
        )
        .await
        .unwrap();
    let conversation = started["startConversation"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    client
        .with_token(&amit.token)
        .data(
            "mutation($c: ID!, $b: String!) { sendMessage(conversationId: $c, body: $b) { id } }",
            json!({ "c": conversation, "b": "Hi Priya, coffee tomorrow?" }),
        )
        .await
        .unwrap();

    let read = "query($c: ID!) { conversation(id: $c) { unreadCount messages(last: 10) { edges { node { body sender { handle } } } } } }";
    let data = client
        .with_token(&priya.token)
        .data(read, json!({ "c": conversation }))
        .await
        .unwrap();
    let message = &data["conversation"]["messages"]["edges"][0]["node"];
    assert_eq!(message["body"], "Hi Priya, coffee tomorrow?");
    assert_eq!(message["sender"]["handle"], "amit");
    assert_eq!(data["conversation"]["unreadCount"], 1);

    let refused = client
        .with_token(&eve.token)
        .send(read, json!({ "c": conversation }))
        .await
        .unwrap();
    assert!(
        error_codes(&refused.errors()).contains(&"FORBIDDEN".to_owned()),
        "{}",
        refused.body
    );
    assert_eq!(refused.body["data"]["conversation"], Value::Null);
    let refused_send = client
        .with_token(&eve.token)
        .send(
            "mutation($c: ID!) { sendMessage(conversationId: $c, body: \"let me in\") { id } }",
            json!({ "c": conversation }),
        )
        .await
        .unwrap();
    assert!(
        error_codes(&refused_send.errors()).contains(&"FORBIDDEN".to_owned()),
        "{}",
        refused_send.body
    );
    stack.stack.shutdown().await.unwrap();
}
