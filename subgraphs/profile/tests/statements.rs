//! What a list costs the graph server (issues #17, #19): on FalkorDB, 20 `Member` references in
//! one `_entities` request, a page of 20 connections with each one's connection count, and the
//! members of a degree path run a fixed number of Cypher statements — the same for 5 as for 20 —
//! counted by the store (`FalkorGraphStore::statements_sent`). Needs the FalkorDB of
//! `scripts/ci-services.sh` (skips with a notice without it, fails under CI).

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap is the test failing, at that line"
)]

use std::sync::Arc;

use async_graphql::{Request, Variables};
use chrono::DateTime;
use serde_json::{json, Value};
use switchyard_profile::store::{FalkorConfig, FalkorGraphStore, GraphStore, MemberRecord};
use switchyard_profile::{build_schema, testing, ProfileDeps, ProfileSchema, ViewTracker};
use switchyard_subgraph_kit::db;
use switchyard_subgraph_kit::events::outbox;

const N: usize = 20;

fn member(id: &str) -> MemberRecord {
    MemberRecord {
        id: id.to_owned(),
        handle: format!("h{id}"),
        display_name: format!("Member {id}"),
        headline: None,
        location: None,
        joined_at: DateTime::from_timestamp_micros(1_764_000_000_000_000).unwrap(),
    }
}

/// Runs `query` and returns its data and how many statements it sent.
async fn counted(
    schema: &ProfileSchema,
    store: &FalkorGraphStore,
    query: &str,
    vars: Value,
) -> (Value, u64) {
    let before = store.statements_sent();
    let response = schema
        .execute(Request::new(query).variables(Variables::from_json(vars)))
        .await;
    assert!(response.errors.is_empty(), "{:?}", response.errors);
    (
        response.data.into_json().unwrap(),
        store.statements_sent() - before,
    )
}

#[tokio::test]
async fn lists_cost_a_constant_number_of_statements_on_falkordb() {
    let Some(url) = testing::falkordb_url().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pool = db::connect(&db::sqlite_url(&dir.path().join("profile.db")), 4)
        .await
        .unwrap();
    outbox::migrate(&pool).await.unwrap();
    switchyard_profile::views::migrate(&pool).await.unwrap();
    let config = FalkorConfig {
        url,
        graph: testing::test_graph_name(),
    };
    let store = Arc::new(
        FalkorGraphStore::connect(&config, pool.clone())
            .await
            .unwrap(),
    );
    // `me` connected to 20 members `f00`..`f19`; `f00` also to `x`, so `fNN` have counts 1
    // or 2.
    let friends: Vec<String> = (0..N).map(|i| format!("f{i:02}")).collect();
    let mut members: Vec<MemberRecord> = friends.iter().map(|id| member(id)).collect();
    members.push(member("me"));
    members.push(member("x"));
    let mut pairs: Vec<(String, String)> = friends
        .iter()
        .map(|f| ("me".to_owned(), f.clone()))
        .collect();
    pairs.push(("f00".to_owned(), "x".to_owned()));
    store.import(&members, &pairs).await.unwrap();

    let deps = ProfileDeps {
        store: store.clone() as Arc<dyn GraphStore>,
        views: ViewTracker::new(pool.clone(), None),
        relay: None,
        members: None,
    };
    let schema = build_schema(Some(deps), None);

    let entities = "query($r: [_Any!]!) { _entities(representations: $r) {
        ... on Member { id displayName } } }";
    let refs = |n: usize| {
        json!({ "r": friends[..n].iter()
            .map(|id| json!({"__typename": "Member", "id": id}))
            .collect::<Vec<_>>() })
    };
    let (data, twenty) = counted(&schema, &store, entities, refs(N)).await;
    let got = data["_entities"].as_array().unwrap();
    assert_eq!(got.len(), N);
    assert_eq!(got[7], json!({"id": "f07", "displayName": "Member f07"}));
    let (_, five) = counted(&schema, &store, entities, refs(5)).await;
    assert_eq!(
        (twenty, five),
        (1, 1),
        "one statement for all the references"
    );

    let page = "query($n: Int) { member(id: \"me\") { connections(first: $n) {
        totalCount edges { node { id connectionCount } } } } }";
    let (data, twenty) = counted(&schema, &store, page, json!({"n": N})).await;
    let edges = data["member"]["connections"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), N);
    assert_eq!(edges[0]["node"], json!({"id": "f00", "connectionCount": 2}));
    assert_eq!(
        edges[19]["node"],
        json!({"id": "f19", "connectionCount": 1})
    );
    let (_, five) = counted(&schema, &store, page, json!({"n": 5})).await;
    // The member, the page, the page's connection counts.
    assert_eq!((twenty, five), (3, 3));

    let degree = "{ connectionDegree(from: \"x\", to: \"f19\") { degree path { id } } }";
    let (data, statements) = counted(&schema, &store, degree, json!({})).await;
    assert_eq!(
        data["connectionDegree"],
        json!({"degree": "THIRD", "path": [{"id": "x"}, {"id": "f00"}, {"id": "me"}, {"id": "f19"}]})
    );
    // The path, then its four members at once.
    assert_eq!(statements, 2);

    store.delete_graph().await.unwrap();
}
