//! Content and chat end to end through the gateway: a post found by full-text search with a typo,
//! a reaction that shows up on the author's posts, and a private conversation a third member
//! cannot read.

use crate::common;

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

    let conversation = common::start_conversation(client, &amit, &[&priya.id]).await;
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

    // Errors from a field chat adds to profile's Member carry the client's path, in a list too
    // (chat, an async-graphql subgraph, writes `_entities/conversations` without the index and
    // nulls the entity that failed): only amit's entry, not priya's own, is refused.
    let members = client
        .with_token(&priya.token)
        .send(
            "query($c: ID!) { conversation(id: $c) { members { handle conversations(first: 1) { totalCount } } } }",
            json!({ "c": conversation }),
        )
        .await
        .unwrap();
    let listed = members.body["data"]["conversation"]["members"]
        .as_array()
        .unwrap();
    let amit_at = listed.iter().position(|m| m["handle"] == "amit").unwrap();
    let priya_at = listed.iter().position(|m| m["handle"] == "priya").unwrap();
    assert_eq!(listed[amit_at]["conversations"], Value::Null);
    assert_eq!(listed[priya_at]["conversations"]["totalCount"], 1);
    let errors = members.errors();
    assert_eq!(errors.len(), 1, "{}", members.body);
    assert_eq!(
        errors[0]["path"],
        json!(["conversation", "members", amit_at, "conversations"]),
        "{}",
        members.body
    );
    assert_eq!(errors[0]["extensions"]["code"], "FORBIDDEN");
    let anonymous = client
        .send(
            "{ memberByHandle(handle: \"amit\") { handle conversations { totalCount } } }",
            json!({}),
        )
        .await
        .unwrap();
    assert_eq!(anonymous.body["data"]["memberByHandle"]["handle"], "amit");
    assert_eq!(
        anonymous.errors()[0]["path"],
        json!(["memberByHandle", "conversations"]),
        "{}",
        anonymous.body
    );
    stack.stack.shutdown().await.unwrap();
}

/// Live delivery as a browser gets it: subgraphs are not reachable around the gateway, so the
/// subscription goes to the gateway (graphql-transport-ws), which subscribes at chat and fills
/// `sender` from profile for every event. An outsider's subscription is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_arrives_live_through_the_gateway() {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;

    let stack = start_stack(|_| {}).await;
    let client = &stack.client;
    let amit = sign_up(client, "amit", "Amit Sharma").await;
    let priya = sign_up(client, "priya", "Priya Nair").await;
    let eve = sign_up(client, "eve", "Eve Outsider").await;
    let conversation = common::start_conversation(client, &amit, &[&priya.id]).await;

    let ws_url = format!("ws://{}/graphql", stack.stack.gateway_addr());
    let subscribe = |token: String| {
        let ws_url = ws_url.clone();
        let conversation = conversation.clone();
        async move {
            let mut socket = common::graphql_ws(&ws_url, None, Some(&token)).await;
            let subscribe = json!({
                "id": "1",
                "type": "subscribe",
                "payload": {
                    "query": "subscription($c: ID!) { messageAdded(conversationId: $c) { body sender { handle displayName } } }",
                    "variables": { "c": conversation },
                },
            });
            common::send_json(&mut socket, &subscribe).await;
            socket
        }
    };
    // The next protocol message other than the ack and pings.
    async fn next_message(
        socket: &mut tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
    ) -> Value {
        loop {
            let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
                .await
                .expect("a message within 10 s")
                .expect("the socket stays open")
                .unwrap();
            if let Message::Text(text) = message {
                let value: Value = serde_json::from_str(text.as_str()).unwrap();
                if !matches!(
                    value["type"].as_str(),
                    Some("connection_ack" | "ping" | "pong")
                ) {
                    return value;
                }
            }
        }
    }

    let mut priya_socket = subscribe(priya.token.clone()).await;
    let mut eve_socket = subscribe(eve.token.clone()).await;
    // Refused at chat while executing the stream: a `next` carrying only the error (an `error`
    // message is for requests rejected before execution).
    let refused = next_message(&mut eve_socket).await;
    assert!(refused["payload"]["data"].is_null(), "{refused}");
    assert_eq!(
        refused["payload"]["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{refused}"
    );

    // The subscription is live once chat has it; send until the first event arrives.
    let send =
        "mutation($c: ID!, $b: String!) { sendMessage(conversationId: $c, body: $b) { id } }";
    let deadline = Instant::now() + Duration::from_secs(10);
    let event = loop {
        client
            .with_token(&amit.token)
            .data(
                send,
                json!({ "c": conversation, "b": "Live through the gateway" }),
            )
            .await
            .unwrap();
        match tokio::time::timeout(Duration::from_millis(500), next_message(&mut priya_socket))
            .await
        {
            Ok(event) => break event,
            Err(_) => assert!(Instant::now() < deadline, "no live message within 10 s"),
        }
    };
    assert_eq!(event["type"], "next", "{event}");
    let message = &event["payload"]["data"]["messageAdded"];
    assert_eq!(message["body"], "Live through the gateway");
    assert_eq!(message["sender"]["handle"], "amit");
    assert_eq!(message["sender"]["displayName"], "Amit Sharma");
    stack.stack.shutdown().await.unwrap();
}
