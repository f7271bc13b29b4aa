//! Chat behaviour through the GraphQL schema on real stores: SQLite (always) and PostgreSQL
//! (unique database per test; skipped without a server unless `CI=true`).

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap is the test failing, at that line"
)]

mod common;

use std::time::Duration;

use async_graphql::futures_util::StreamExt;
use common::{error_code, member, Chat};
use serde_json::json;
use switchyard_subgraph_kit::auth::BearerToken;

const CONVERSATION: &str = "query($id: ID!) {
    conversation(id: $id) {
        id createdAt unreadCount
        members { id }
        lastMessage { id body sender { id } }
        messages(last: 10) { totalCount edges { node { id body sender { id } sentAt } } }
    }
}";

async fn members_chat_and_outsiders_are_refused(chat: &Chat) {
    let (ada, bob, eve) = (
        chat.member().await,
        chat.member().await,
        chat.member().await,
    );
    let id = chat.start(&ada, &[&bob]).await;
    assert_eq!(
        chat.start(&bob, &[&ada]).await,
        id,
        "a 1:1 conversation with the same member is reused, whoever starts it"
    );
    assert_eq!(
        chat.start(&ada, &[&bob, &ada, &bob]).await,
        id,
        "duplicates and the caller in `with` are ignored"
    );
    let first = chat.send(&ada, &id, "hello Bob").await;
    let second = chat.send(&bob, &id, "hi Ada").await;

    let data = chat.data(&bob, CONVERSATION, json!({ "id": id })).await;
    let conversation = &data["conversation"];
    assert_eq!(conversation["id"], id.as_str());
    let mut ids: Vec<String> = conversation["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    let mut expected = vec![ada.clone(), bob.clone()];
    expected.sort();
    assert_eq!(ids, expected);
    let messages = &conversation["messages"];
    assert_eq!(messages["totalCount"], 2);
    assert_eq!(messages["edges"][0]["node"]["id"], first.as_str());
    assert_eq!(messages["edges"][0]["node"]["body"], "hello Bob");
    assert_eq!(messages["edges"][0]["node"]["sender"]["id"], ada.as_str());
    assert_eq!(messages["edges"][1]["node"]["body"], "hi Ada");
    assert_eq!(conversation["lastMessage"]["id"], second.as_str());

    // Eve is signed in but not a member: every path is FORBIDDEN.
    let read = chat
        .run(Some(&eve), CONVERSATION, json!({ "id": id }))
        .await;
    assert_eq!(error_code(&read), "FORBIDDEN", "{read}");
    let send = chat
        .run(
            Some(&eve),
            "mutation($c: ID!) { sendMessage(conversationId: $c, body: \"let me in\") { id } }",
            json!({ "c": id }),
        )
        .await;
    assert_eq!(error_code(&send), "FORBIDDEN", "{send}");
    let mark = chat
        .run(
            Some(&eve),
            "mutation($c: ID!) { markRead(conversationId: $c) { id } }",
            json!({ "c": id }),
        )
        .await;
    assert_eq!(error_code(&mark), "FORBIDDEN", "{mark}");
    let request = async_graphql::Request::new(
        "subscription($c: ID!) { messageAdded(conversationId: $c) { id body } }",
    )
    .variables(async_graphql::Variables::from_json(json!({ "c": id })))
    .data(BearerToken(common::token(&eve)));
    let mut stream = chat.service.schema().execute_stream(request);
    let refused = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("a refused subscription answers at once")
        .expect("one response");
    let refused = serde_json::to_value(&refused).unwrap();
    assert_eq!(error_code(&refused), "FORBIDDEN", "{refused}");
    // Eve's own conversation list does not show it, and Bob's list is Bob's alone.
    let list = "query($m: ID!) { _entities(representations: [{__typename: \"Member\", id: $m}]) {
        ... on Member { conversations { totalCount edges { node { id } } } } } }";
    let others = chat.run(Some(&eve), list, json!({ "m": bob })).await;
    assert_eq!(error_code(&others), "FORBIDDEN", "{others}");
    let own = chat.data(&bob, list, json!({ "m": bob })).await;
    assert_eq!(own["_entities"][0]["conversations"]["totalCount"], 1);
    assert_eq!(
        own["_entities"][0]["conversations"]["edges"][0]["node"]["id"],
        id.as_str()
    );

    // Without a token: UNAUTHENTICATED. Unknown conversation: null. Garbage: a clear error.
    let anonymous = chat.run(None, CONVERSATION, json!({ "id": id })).await;
    assert_eq!(error_code(&anonymous), "UNAUTHENTICATED", "{anonymous}");
    let missing = chat
        .data(&ada, CONVERSATION, json!({ "id": member() }))
        .await;
    assert!(missing["conversation"].is_null());
    let garbage = chat
        .run(Some(&ada), CONVERSATION, json!({ "id": "not-an-id" }))
        .await;
    assert_eq!(error_code(&garbage), "BAD_USER_INPUT", "{garbage}");
    let empty = chat
        .run(
            Some(&ada),
            "mutation($c: ID!) { sendMessage(conversationId: $c, body: \"   \") { id } }",
            json!({ "c": id }),
        )
        .await;
    assert_eq!(error_code(&empty), "BAD_USER_INPUT", "{empty}");
    let alone = chat
        .run(
            Some(&ada),
            "mutation($w: [ID!]!) { startConversation(with: $w) { id } }",
            json!({ "w": [ada] }),
        )
        .await;
    assert_eq!(error_code(&alone), "BAD_USER_INPUT", "{alone}");

    // Ids chat never heard of (no `account.created`) are refused by name, and nothing is
    // stored: Bob's conversation list is unchanged.
    let stranger = member();
    let dangling = chat
        .run(
            Some(&ada),
            "mutation($w: [ID!]!) { startConversation(with: $w) { id } }",
            json!({ "w": [bob, stranger] }),
        )
        .await;
    assert_eq!(error_code(&dangling), "BAD_USER_INPUT", "{dangling}");
    assert_eq!(
        dangling["errors"][0]["extensions"]["unknownMembers"],
        json!([stranger]),
        "{dangling}"
    );
    assert!(
        dangling["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains(&stranger),
        "{dangling}"
    );
    let own = chat.data(&bob, list, json!({ "m": bob })).await;
    assert_eq!(own["_entities"][0]["conversations"]["totalCount"], 1);
}

async fn unread_counts_and_mark_read(chat: &Chat) {
    let (ada, bob, cy) = (
        chat.member().await,
        chat.member().await,
        chat.member().await,
    );
    let direct = chat.start(&ada, &[&bob]).await;
    let group = chat.start(&ada, &[&bob, &cy]).await;
    assert_ne!(direct, group, "a group is never the 1:1 conversation");
    let unread = "query($id: ID!) { conversation(id: $id) { unreadCount } unreadConversations }";
    for body in ["one", "two", "three"] {
        chat.send(&ada, &direct, body).await;
    }
    chat.send(&cy, &group, "group hello").await;

    let bob_direct = chat.data(&bob, unread, json!({ "id": direct })).await;
    assert_eq!(bob_direct["conversation"]["unreadCount"], 3);
    assert_eq!(bob_direct["unreadConversations"], 2);
    let ada_direct = chat.data(&ada, unread, json!({ "id": direct })).await;
    assert_eq!(
        ada_direct["conversation"]["unreadCount"], 0,
        "own messages are read"
    );
    assert_eq!(ada_direct["unreadConversations"], 1, "Cy's group message");

    let marked = chat
        .data(
            &bob,
            "mutation($c: ID!) { markRead(conversationId: $c) { id unreadCount } }",
            json!({ "c": direct }),
        )
        .await;
    assert_eq!(marked["markRead"]["id"], direct.as_str());
    assert_eq!(marked["markRead"]["unreadCount"], 0);
    let after = chat.data(&bob, unread, json!({ "id": direct })).await;
    assert_eq!(after["conversation"]["unreadCount"], 0);
    assert_eq!(after["unreadConversations"], 1);

    // Replying marks the conversation read for the sender; new messages count again.
    chat.send(&bob, &group, "hi all").await;
    chat.send(&ada, &direct, "four").await;
    let bob_now = chat.data(&bob, unread, json!({ "id": direct })).await;
    assert_eq!(bob_now["conversation"]["unreadCount"], 1);
    assert_eq!(bob_now["unreadConversations"], 1);
    let cy_now = chat.data(&cy, unread, json!({ "id": group })).await;
    assert_eq!(cy_now["conversation"]["unreadCount"], 1, "Bob's reply");
}

async fn latest_n_paging_with_before(chat: &Chat) {
    let (ada, bob) = (chat.member().await, chat.member().await);
    let id = chat.start(&ada, &[&bob]).await;
    for i in 1..=25 {
        chat.send(if i % 2 == 0 { &bob } else { &ada }, &id, &format!("m{i}"))
            .await;
    }
    let page = "query($id: ID!, $last: Int, $before: String) { conversation(id: $id) {
        messages(last: $last, before: $before) {
            totalCount
            pageInfo { hasPreviousPage hasNextPage startCursor endCursor }
            edges { cursor node { body } } } } }";
    let bodies = |data: &serde_json::Value| -> Vec<String> {
        data["conversation"]["messages"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["body"].as_str().unwrap().to_owned())
            .collect()
    };
    let range =
        |from: usize, to: usize| -> Vec<String> { (from..=to).map(|i| format!("m{i}")).collect() };

    let newest = chat.data(&bob, page, json!({ "id": id, "last": 10 })).await;
    assert_eq!(
        bodies(&newest),
        range(16, 25),
        "the latest 10, oldest first"
    );
    let info = &newest["conversation"]["messages"]["pageInfo"];
    assert_eq!(info["hasPreviousPage"], true);
    assert_eq!(info["hasNextPage"], false);
    assert_eq!(newest["conversation"]["messages"]["totalCount"], 25);

    let older = chat
        .data(
            &bob,
            page,
            json!({ "id": id, "last": 10, "before": info["startCursor"] }),
        )
        .await;
    assert_eq!(bodies(&older), range(6, 15));
    let info = &older["conversation"]["messages"]["pageInfo"];
    assert_eq!(info["hasPreviousPage"], true);
    assert_eq!(info["hasNextPage"], true);

    let oldest = chat
        .data(
            &bob,
            page,
            json!({ "id": id, "last": 10, "before": info["startCursor"] }),
        )
        .await;
    assert_eq!(bodies(&oldest), range(1, 5));
    assert_eq!(
        oldest["conversation"]["messages"]["pageInfo"]["hasPreviousPage"],
        false
    );

    let default = chat.data(&bob, page, json!({ "id": id })).await;
    assert_eq!(bodies(&default), range(6, 25), "last defaults to 20");

    let bad = chat
        .run(Some(&bob), page, json!({ "id": id, "before": "zz" }))
        .await;
    assert_eq!(error_code(&bad), "BAD_USER_INPUT", "{bad}");
    let too_many = chat
        .run(Some(&bob), page, json!({ "id": id, "last": 1000 }))
        .await;
    assert_eq!(error_code(&too_many), "BAD_USER_INPUT", "{too_many}");
}

async fn conversations_page_by_activity(chat: &Chat) {
    let ada = chat.member().await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(chat.start(&ada, &[&chat.member().await]).await);
    }
    // Activity moves the first conversation to the top.
    chat.send(&ada, &ids[0], "bump").await;
    let list = "query($m: ID!, $after: String) { _entities(representations: [{__typename: \"Member\", id: $m}]) {
        ... on Member { conversations(first: 2, after: $after) {
            totalCount pageInfo { hasNextPage endCursor } edges { node { id } } } } } }";
    let mut seen = Vec::new();
    let mut after = serde_json::Value::Null;
    loop {
        let data = chat
            .data(&ada, list, json!({ "m": ada, "after": after }))
            .await;
        let page = &data["_entities"][0]["conversations"];
        assert_eq!(page["totalCount"], 5);
        for edge in page["edges"].as_array().unwrap() {
            seen.push(edge["node"]["id"].as_str().unwrap().to_owned());
        }
        if page["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
    let mut expected = vec![ids[0].clone()];
    expected.extend(ids[1..].iter().rev().cloned());
    assert_eq!(seen, expected, "most recently active first, each once");
}

#[tokio::test]
async fn sqlite_members_chat_and_outsiders_are_refused() {
    members_chat_and_outsiders_are_refused(&Chat::sqlite().await).await;
}

#[tokio::test]
async fn sqlite_unread_counts_and_mark_read() {
    unread_counts_and_mark_read(&Chat::sqlite().await).await;
}

#[tokio::test]
async fn sqlite_latest_n_paging_with_before() {
    latest_n_paging_with_before(&Chat::sqlite().await).await;
}

#[tokio::test]
async fn sqlite_conversations_page_by_activity() {
    conversations_page_by_activity(&Chat::sqlite().await).await;
}

#[tokio::test]
async fn postgres_store_scenarios() {
    let Some(db) = common::postgres().await else {
        return;
    };
    let chat = Chat::postgres(&db.url).await;
    members_chat_and_outsiders_are_refused(&chat).await;
    unread_counts_and_mark_read(&chat).await;
    latest_n_paging_with_before(&chat).await;
    conversations_page_by_activity(&chat).await;
    drop(chat);
    db.drop_now().await;
}

#[tokio::test]
async fn message_bodies_are_not_plaintext_in_the_sqlite_file() {
    let chat = Chat::sqlite().await;
    let (ada, bob) = (chat.member().await, chat.member().await);
    let id = chat.start(&ada, &[&bob]).await;
    let secret = "the launch code is swordfish-7731";
    chat.send(&ada, &id, secret).await;
    let data = chat.data(&bob, CONVERSATION, json!({ "id": id })).await;
    assert_eq!(
        data["conversation"]["lastMessage"]["body"], secret,
        "members read the plaintext"
    );
    // Checkpoint so the WAL's pages reach the main file too, then scan every file the store
    // wrote (main file, WAL, shared memory).
    sqlx::query("PRAGMA wal_checkpoint(FULL)")
        .execute(chat.service.store().pool())
        .await
        .unwrap();
    let mut scanned = 0;
    for entry in std::fs::read_dir(&chat.dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            let found = bytes.windows(b"swordfish".len()).any(|w| w == b"swordfish");
            assert!(!found, "plaintext body found in {}", path.display());
            scanned += bytes.len();
        }
    }
    assert!(scanned > 0);
    let key_id: String = sqlx::query_scalar("SELECT body_key_id FROM messages")
        .fetch_one(chat.service.store().pool())
        .await
        .unwrap();
    assert!(
        !key_id.is_empty(),
        "the key id is stored beside the ciphertext"
    );
}
