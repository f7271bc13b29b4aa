//! What a list costs the database (issue #19): 20 trending posts with their stats, or 20
//! members' stats, run a fixed number of SQL statements — the same for 5 as for 20 — counted by
//! the store's `Db`, on SQLite and PostgreSQL.

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap is the test failing, at that line"
)]

mod common;

use async_graphql::{Request, Variables};
use serde_json::{json, Value};
use switchyard_analytics::{
    build_schema, AnalyticsHandler, AnalyticsSchema, Store, CONSUMER_GROUP,
};
use switchyard_subgraph_kit::events::{process_event, Event, Processed};

const N: usize = 20;

async fn apply(store: &Store, kind: &str, payload: Value) {
    // Happening now: inside today's window and the current hour's.
    let event = Event::new(kind, "agg", payload).unwrap();
    let outcome = process_event(store.pool(), CONSUMER_GROUP, &event, &AnalyticsHandler)
        .await
        .unwrap();
    assert_eq!(outcome, Processed::Handled);
}

/// Runs `query` and returns its data and how many statements it ran.
async fn counted(
    schema: &AnalyticsSchema,
    store: &Store,
    query: &str,
    vars: Value,
) -> (Value, u64) {
    let before = store.statements();
    let response = schema
        .execute(Request::new(query).variables(Variables::from_json(vars)))
        .await;
    assert!(response.errors.is_empty(), "{:?}", response.errors);
    (
        response.data.into_json().unwrap(),
        store.statements() - before,
    )
}

async fn lists_cost_a_constant_number_of_statements(store: Store) {
    let schema = build_schema(Some(store.clone()));
    let posts: Vec<String> = (0..N).map(|i| format!("post-{i:02}")).collect();
    let authors: Vec<String> = (0..N).map(|i| format!("author-{i:02}")).collect();
    for (i, (post, author)) in posts.iter().zip(&authors).enumerate() {
        let created = json!({"postId": post, "authorId": author, "visibility": "PUBLIC"});
        apply(&store, "post.created", created).await;
        // post-00 gets 1 reaction, post-19 gets 20: the ranking is the reverse of the ids.
        for _ in 0..=i {
            let react =
                json!({"postId": post, "authorId": author, "memberId": "m", "kind": "LIKE"});
            apply(&store, "reaction.added", react).await;
        }
    }

    let (data, statements) = counted(
        &schema,
        &store,
        "{ trendingPosts(first: 20) { id stats { reactions comments } } }",
        json!({}),
    )
    .await;
    // The ranking, then every post's totals in one statement.
    assert_eq!(statements, 2, "{data}");
    let trending = data["trendingPosts"].as_array().unwrap();
    assert_eq!(trending.len(), N);
    for (rank, post) in trending.iter().enumerate() {
        let i = N - 1 - rank;
        assert_eq!(post["id"], posts[i].as_str());
        assert_eq!(post["stats"], json!({"reactions": i + 1, "comments": 0}));
    }
    let (_, statements) = counted(
        &schema,
        &store,
        "{ trendingPosts(first: 5) { id stats { reactions } } }",
        json!({}),
    )
    .await;
    assert_eq!(statements, 2);

    // Members' stats with two windows: one statement per window, whatever the number of members.
    let query = "query($r: [_Any!]!) { _entities(representations: $r) { ... on Member {
        stats { reactionsReceived today: reactionsReceived(days: 1) messagesSent } } } }";
    let reps = |ids: &[String]| {
        let reps: Vec<Value> = ids
            .iter()
            .map(|id| json!({"__typename": "Member", "id": id}))
            .collect();
        json!({ "r": reps })
    };
    let (data, statements) = counted(&schema, &store, query, reps(&authors)).await;
    assert_eq!(statements, 2, "{data}");
    for (i, member) in data["_entities"].as_array().unwrap().iter().enumerate() {
        assert_eq!(
            member["stats"],
            json!({"reactionsReceived": i + 1, "today": i + 1, "messagesSent": 0})
        );
    }
    let (_, statements) = counted(&schema, &store, query, reps(&authors[..5])).await;
    assert_eq!(statements, 2);
}

#[tokio::test]
async fn sqlite_lists_cost_a_constant_number_of_statements() {
    let (_dir, store) = common::sqlite_store().await;
    lists_cost_a_constant_number_of_statements(store).await;
}

#[tokio::test]
async fn postgres_lists_cost_a_constant_number_of_statements() {
    let Some(db) = common::postgres().await else {
        return;
    };
    lists_cost_a_constant_number_of_statements(db.store().await).await;
    db.drop_now().await;
}
