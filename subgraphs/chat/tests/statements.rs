//! What a list costs the database (issue #19): a page of 20 conversations with each one's
//! members, unread count, last message and latest messages runs a fixed number of SQL
//! statements — the same for 5 as for 20 — counted by the store's `Db`, on SQLite and
//! PostgreSQL.

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap is the test failing, at that line"
)]

mod common;

use common::Chat;
use serde_json::{json, Value};

const N: usize = 20;

const PAGE: &str = "query($r: [_Any!]!) { _entities(representations: $r) { ... on Member {
    conversations(first: 20) { totalCount edges { node {
        id unreadCount members { id } lastMessage { body sender { id } }
        messages(last: 2) { totalCount pageInfo { hasPreviousPage } edges { node { body } } }
    } } } } } }";

const CONVERSATIONS: &str = "query($r: [_Any!]!) { _entities(representations: $r) {
    ... on Conversation { id unreadCount members { id } lastMessage { body } } } }";

/// Runs `query` once to warm up (token cache, member directory refresh), then again; the
/// second response's data and how many statements it ran.
async fn counted(chat: &Chat, member: &str, query: &str, vars: Value) -> (Value, u64) {
    chat.data(member, query, vars.clone()).await;
    let before = chat.service.store().statements();
    let data = chat.data(member, query, vars).await;
    (data, chat.service.store().statements() - before)
}

async fn twenty_conversations_cost_a_constant_number_of_statements(chat: &Chat) {
    let me = chat.member().await;
    let mut others = Vec::new();
    let mut ids = Vec::new();
    for i in 0..N {
        let other = chat.member().await;
        let id = chat.start(&me, &[&other]).await;
        chat.send(&me, &id, &format!("hello {i}")).await;
        // Every other conversation has replies the caller has not read.
        for n in 0..i % 2 * 2 {
            chat.send(&other, &id, &format!("reply {i}.{n}")).await;
        }
        others.push(other);
        ids.push(id);
    }
    let me_rep = json!({"r": [{"__typename": "Member", "id": me}]});
    let (data, statements) = counted(chat, &me, PAGE, me_rep).await;
    // The page and its count, then members, unread counts, last messages and message pages:
    // one statement each for all 20 conversations.
    assert_eq!(statements, 6, "{data}");
    let page = &data["_entities"][0]["conversations"];
    assert_eq!(page["totalCount"], N);
    let edges = page["edges"].as_array().unwrap();
    assert_eq!(edges.len(), N);
    for edge in edges {
        let node = &edge["node"];
        let i = ids.iter().position(|id| node["id"] == id.as_str()).unwrap();
        let replied = !i.is_multiple_of(2);
        assert_eq!(node["unreadCount"], if replied { 2 } else { 0 }, "{node}");
        assert_eq!(node["members"], json!([{"id": me}, {"id": others[i]}]));
        let (last, sender) = if replied {
            (format!("reply {i}.1"), &others[i])
        } else {
            (format!("hello {i}"), &me)
        };
        assert_eq!(node["lastMessage"]["body"], last);
        assert_eq!(node["lastMessage"]["sender"]["id"], sender.as_str());
        let messages = &node["messages"];
        assert_eq!(messages["totalCount"], if replied { 3 } else { 1 });
        assert_eq!(messages["pageInfo"]["hasPreviousPage"], replied);
        let bodies: Vec<&str> = messages["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["body"].as_str().unwrap())
            .collect();
        if replied {
            assert_eq!(bodies, [format!("reply {i}.0"), format!("reply {i}.1")]);
        } else {
            assert_eq!(bodies, [format!("hello {i}")]);
        }
    }

    // Conversations as entities: the conversations with the caller's membership, members,
    // unread counts, last messages — for 20 and for 5 alike.
    let reps = |ids: &[String]| {
        let reps: Vec<Value> = ids
            .iter()
            .map(|id| json!({"__typename": "Conversation", "id": id}))
            .collect();
        json!({ "r": reps })
    };
    let (data, statements) = counted(chat, &me, CONVERSATIONS, reps(&ids)).await;
    assert_eq!(statements, 4, "{data}");
    assert_eq!(data["_entities"].as_array().unwrap().len(), N);
    assert_eq!(data["_entities"][1]["lastMessage"]["body"], "reply 1.1");
    let (_, statements) = counted(chat, &me, CONVERSATIONS, reps(&ids[3..8])).await;
    assert_eq!(statements, 4);
}

#[tokio::test]
async fn sqlite_twenty_conversations_cost_a_constant_number_of_statements() {
    twenty_conversations_cost_a_constant_number_of_statements(&Chat::sqlite().await).await;
}

#[tokio::test]
async fn postgres_twenty_conversations_cost_a_constant_number_of_statements() {
    let Some(db) = common::postgres().await else {
        return;
    };
    let chat = Chat::postgres(&db.url).await;
    twenty_conversations_cost_a_constant_number_of_statements(&chat).await;
    drop(chat);
    db.drop_now().await;
}
