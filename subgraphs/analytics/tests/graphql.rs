//! The analytics schema executed directly over a real store (SQLite, and PostgreSQL in a
//! database of its own): member stats windows, post stats, trendingPosts ranking, and the
//! errors bad arguments get.

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap is the test failing, at that line"
)]

mod common;

use async_graphql::{Request, Variables};
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{json, Value};
use switchyard_analytics::{
    build_schema, AnalyticsHandler, AnalyticsSchema, Store, CONSUMER_GROUP,
};
use switchyard_subgraph_kit::events::{process_event, Event, Processed};

/// The pinned "now" of these tests: 12:30 UTC, so an event 13 hours ago is yesterday.
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 15, 12, 30, 0).unwrap()
}

async fn apply(store: &Store, kind: &str, payload: Value, ago: Duration) -> Event {
    let mut event = Event::new(kind, "agg", payload).unwrap();
    event.occurred_at = now() - ago;
    let outcome = process_event(store.pool(), CONSUMER_GROUP, &event, &AnalyticsHandler)
        .await
        .unwrap();
    assert_eq!(outcome, Processed::Handled);
    event
}

async fn run(schema: &AnalyticsSchema, query: &str, variables: Value) -> async_graphql::Response {
    schema
        .execute(Request::new(query).variables(Variables::from_json(variables)))
        .await
}

async fn data(schema: &AnalyticsSchema, query: &str, variables: Value) -> Value {
    let response = run(schema, query, variables).await;
    assert!(response.errors.is_empty(), "{:?}", response.errors);
    response.data.into_json().unwrap()
}

fn codes(response: &async_graphql::Response) -> Vec<String> {
    response
        .errors
        .iter()
        .map(|e| {
            e.extensions
                .as_ref()
                .and_then(|x| x.get("code"))
                .map(|c| c.to_string())
                .unwrap_or_default()
        })
        .collect()
}

const MEMBER_STATS: &str = r#"query($id: ID!) {
  _entities(representations: [{__typename: "Member", id: $id}]) {
    ... on Member {
      id
      stats {
        today: profileViews(days: 1)
        twoDays: profileViews(days: 2)
        month: profileViews
        year: profileViews(days: 365)
        postImpressions reactionsReceived connectionsGained messagesSent
        defaulted: messagesSent(days: null)
      }
    }
  }
}"#;

async fn member_stats_count_within_windows(store: Store) {
    let schema = build_schema(Some(store.clone()));
    let m = "0193a4c2-0000-7000-8000-000000000001";
    let other = "0193a4c2-0000-7000-8000-000000000002";
    let viewed = json!({"memberId": m, "viewerId": other});
    for ago in [0, 2, 13, 24 * 5, 24 * 29, 24 * 30, 24 * 200, 24 * 400] {
        apply(
            &store,
            "profile.viewed",
            viewed.clone(),
            Duration::hours(ago),
        )
        .await;
    }
    let post = json!({"postId": "p1", "authorId": m, "viewerId": other});
    apply(&store, "post.viewed", post.clone(), Duration::hours(1)).await;
    apply(&store, "post.viewed", post, Duration::hours(1)).await;
    let reaction = json!({"postId": "p1", "authorId": m, "memberId": other, "kind": "LIKE"});
    apply(&store, "reaction.added", reaction, Duration::hours(3)).await;
    apply(
        &store,
        "connection.accepted",
        json!({"memberId": other, "otherMemberId": m}),
        Duration::days(3),
    )
    .await;
    let message =
        json!({"conversationId": "c", "messageId": "x", "senderId": m, "recipientIds": [other]});
    apply(&store, "message.sent", message.clone(), Duration::days(1)).await;
    // The sender's count, not the recipient's.
    let reply =
        json!({"conversationId": "c", "messageId": "y", "senderId": other, "recipientIds": [m]});
    apply(&store, "message.sent", reply, Duration::days(1)).await;

    let got = data(&schema, MEMBER_STATS, json!({"id": m})).await;
    assert_eq!(
        got["_entities"][0],
        json!({
            "id": m,
            "stats": {
                // 0 h and 2 h ago are today (12:30 UTC); 13 h ago is yesterday.
                "today": 2, "twoDays": 3,
                // 29 days ago is inside 30 days, 30 days ago is not.
                "month": 5, "year": 7,
                "postImpressions": 2, "reactionsReceived": 1, "connectionsGained": 1,
                "messagesSent": 1, "defaulted": 1,
            }
        })
    );
    let other_stats = data(&schema, MEMBER_STATS, json!({"id": other})).await;
    assert_eq!(other_stats["_entities"][0]["stats"]["connectionsGained"], 1);
    assert_eq!(other_stats["_entities"][0]["stats"]["month"], 0);
    assert_eq!(other_stats["_entities"][0]["stats"]["messagesSent"], 1);

    // A member nothing happened to has zeros, not an error.
    let nobody = data(&schema, MEMBER_STATS, json!({"id": "unknown"})).await;
    assert_eq!(nobody["_entities"][0]["stats"]["year"], 0);

    for bad in [0, -1, 366] {
        let response = run(
            &schema,
            r#"query($id: ID!, $days: Int) { _entities(representations: [{__typename: "Member", id: $id}]) { ... on Member { stats { profileViews(days: $days) } } } }"#,
            json!({"id": m, "days": bad}),
        )
        .await;
        assert_eq!(codes(&response), ["\"BAD_USER_INPUT\""], "days: {bad}");
        assert!(
            response.errors[0].message.contains("between 1 and 365"),
            "{}",
            response.errors[0].message
        );
    }
}

async fn post_stats_are_all_time(store: Store) {
    let schema = build_schema(Some(store.clone()));
    let (author, reader) = ("a", "r");
    apply(
        &store,
        "post.created",
        json!({"postId": "p-all-time", "authorId": author, "visibility": "PUBLIC"}),
        Duration::days(500),
    )
    .await;
    for ago in [1, 24 * 100, 24 * 400] {
        apply(
            &store,
            "post.viewed",
            json!({"postId": "p-all-time", "authorId": author, "viewerId": reader}),
            Duration::hours(ago),
        )
        .await;
    }
    apply(
        &store,
        "reaction.added",
        json!({"postId": "p-all-time", "authorId": author, "memberId": reader, "kind": "LIKE"}),
        Duration::days(2),
    )
    .await;
    for n in 0..2 {
        apply(&store, "comment.added", json!({"postId": "p-all-time", "commentId": format!("c{n}"), "authorId": author, "memberId": reader}), Duration::days(9)).await;
    }
    // Another post's engagement does not leak in.
    apply(
        &store,
        "reaction.added",
        json!({"postId": "p2", "authorId": author, "memberId": reader, "kind": "LIKE"}),
        Duration::days(2),
    )
    .await;

    let got = data(
        &schema,
        r#"{ _entities(representations: [{__typename: "Post", id: "p-all-time"}, {__typename: "Post", id: "none"}]) {
               ... on Post { id stats { impressions reactions comments } } } }"#,
        json!({}),
    )
    .await;
    assert_eq!(
        got["_entities"],
        json!([
            {"id": "p-all-time", "stats": {"impressions": 3, "reactions": 1, "comments": 2}},
            {"id": "none", "stats": {"impressions": 0, "reactions": 0, "comments": 0}},
        ])
    );
}

async fn trending_ranks_within_the_window(store: Store) {
    let schema = build_schema(Some(store.clone()));
    let created = |post: &str, visibility: &str| json!({"postId": post, "authorId": format!("author-{post}"), "visibility": visibility});
    for (post, visibility) in [
        ("reacted", "PUBLIC"),
        ("discussed", "PUBLIC"),
        ("read", "PUBLIC"),
        ("deleted", "PUBLIC"),
        ("private", "CONNECTIONS"),
        ("old", "PUBLIC"),
        ("tied", "public"),
    ] {
        apply(
            &store,
            "post.created",
            created(post, visibility),
            Duration::days(3),
        )
        .await;
    }
    let react =
        |post: &str| json!({"postId": post, "authorId": "x", "memberId": "y", "kind": "LIKE"});
    let comment =
        |post: &str| json!({"postId": post, "commentId": "c", "authorId": "x", "memberId": "y"});
    let view = |post: &str| json!({"postId": post, "authorId": "x", "viewerId": "y"});
    let recent = Duration::hours(2);
    // reacted: 3 reactions = 3.0
    for _ in 0..3 {
        apply(&store, "reaction.added", react("reacted"), recent).await;
    }
    // discussed: 2 comments = 4.0 (a comment weighs two reactions)
    for _ in 0..2 {
        apply(&store, "comment.added", comment("discussed"), recent).await;
    }
    // read: 25 impressions = 2.5
    for _ in 0..25 {
        apply(&store, "post.viewed", view("read"), recent).await;
    }
    // tied: 25 impressions = 2.5 too, but created later than `read`, so it goes first.
    apply(
        &store,
        "post.created",
        created("tied", "public"),
        Duration::days(1),
    )
    .await;
    for _ in 0..25 {
        apply(&store, "post.viewed", view("tied"), recent).await;
    }
    // Deleted and non-public posts never trend, however busy.
    for _ in 0..10 {
        apply(&store, "reaction.added", react("deleted"), recent).await;
        apply(&store, "reaction.added", react("private"), recent).await;
    }
    apply(
        &store,
        "post.deleted",
        json!({"postId": "deleted", "authorId": "x"}),
        Duration::hours(1),
    )
    .await;
    // old: 9 reactions, but 30 hours ago: outside the default 24 hours.
    for _ in 0..9 {
        apply(&store, "reaction.added", react("old"), Duration::hours(30)).await;
    }
    // Engagement on a post whose post.created never arrived does not trend either.
    for _ in 0..9 {
        apply(&store, "reaction.added", react("unknown"), recent).await;
    }

    let ids = |v: &Value| -> Vec<String> {
        v["trendingPosts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let day = data(&schema, "{ trendingPosts { id } }", json!({})).await;
    assert_eq!(ids(&day), ["discussed", "reacted", "tied", "read"]);
    let two = data(
        &schema,
        "{ trendingPosts(first: 2) { id stats { reactions comments } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        two["trendingPosts"],
        json!([
            {"id": "discussed", "stats": {"reactions": 0, "comments": 2}},
            {"id": "reacted", "stats": {"reactions": 3, "comments": 0}},
        ])
    );
    let longer = data(&schema, "{ trendingPosts(hours: 48) { id } }", json!({})).await;
    assert_eq!(
        ids(&longer),
        ["old", "discussed", "reacted", "tied", "read"]
    );
    let hour = data(&schema, "{ trendingPosts(hours: 1) { id } }", json!({})).await;
    assert!(
        ids(&hour).is_empty(),
        "nothing happened in the current hour"
    );

    for (args, message) in [
        ("hours: 0", "`hours` must be between 1 and 720"),
        ("hours: 721", "`hours` must be between 1 and 720"),
        ("first: 0", "`first` must be between 1 and 100"),
        ("first: 101", "`first` must be between 1 and 100"),
    ] {
        let response = run(
            &schema,
            &format!("{{ trendingPosts({args}) {{ id }} }}"),
            json!({}),
        )
        .await;
        assert_eq!(codes(&response), ["\"BAD_USER_INPUT\""], "{args}");
        assert!(
            response.errors[0].message.contains(message),
            "{}",
            response.errors[0].message
        );
    }
}

async fn sqlite() -> (tempfile::TempDir, Store) {
    let (dir, store) = common::sqlite_store().await;
    (dir, store.with_clock(now))
}

#[tokio::test]
async fn sqlite_member_stats_count_within_windows() {
    let (_dir, store) = sqlite().await;
    member_stats_count_within_windows(store).await;
}

#[tokio::test]
async fn sqlite_post_stats_are_all_time() {
    let (_dir, store) = sqlite().await;
    post_stats_are_all_time(store).await;
}

#[tokio::test]
async fn sqlite_trending_ranks_within_the_window() {
    let (_dir, store) = sqlite().await;
    trending_ranks_within_the_window(store).await;
}

#[tokio::test]
async fn postgres_schema_over_a_real_database() {
    let Some(db) = common::postgres().await else {
        return;
    };
    member_stats_count_within_windows(db.store().await.with_clock(now)).await;
    post_stats_are_all_time(db.store().await.with_clock(now)).await;
    db.drop_now().await;
    // Trending reads every post: give it a database of its own.
    let Some(db) = common::postgres().await else {
        return;
    };
    trending_ranks_within_the_window(db.store().await.with_clock(now)).await;
    db.drop_now().await;
}

#[test]
fn sdl_declares_the_contributed_fields() {
    let sdl = switchyard_analytics::sdl();
    for expected in [
        "type Member @key(fields: \"id\")",
        "stats: MemberStats\n",
        "profileViews(days: Int = 30): Int!",
        "connectionsGained(days: Int = 30): Int!",
        "type Post @key(fields: \"id\")",
        "stats: PostStats\n",
        "trendingPosts(hours: Int = 24, first: Int = 10): [Post!]!",
        "specs.apollo.dev/federation/v2",
    ] {
        assert!(sdl.contains(expected), "missing {expected:?} in\n{sdl}");
    }
}

#[tokio::test]
async fn sqlite_entities_batch_their_stats_lookups() {
    let (_dir, store) = sqlite().await;
    let schema = build_schema(Some(store.clone()));
    let members: Vec<String> = (0..50).map(|i| format!("member-{i:02}")).collect();
    for (i, member) in members.iter().enumerate() {
        for _ in 0..i % 4 {
            let viewed = json!({"memberId": member, "viewerId": "v"});
            apply(&store, "profile.viewed", viewed, Duration::days(3)).await;
        }
        if i % 5 == 0 {
            let sent = json!({"conversationId": "c", "messageId": "m", "senderId": member, "recipientIds": []});
            apply(&store, "message.sent", sent, Duration::hours(1)).await;
        }
    }
    let representations: Vec<Value> = members
        .iter()
        .map(|id| json!({"__typename": "Member", "id": id}))
        .chain((0..20).map(|i| json!({"__typename": "Post", "id": format!("post-{i}")})))
        .collect();
    let before = store.stats_batches();
    let got = data(
        &schema,
        r#"query($r: [_Any!]!) { _entities(representations: $r) {
             ... on Member { stats { profileViews messagesSent day: profileViews(days: 1) } }
             ... on Post { stats { reactions } } } }"#,
        json!({"r": representations}),
    )
    .await;
    assert_eq!(
        store.stats_batches() - before,
        2,
        "one batch for 50 members × 3 fields (two windows), one for 20 posts"
    );
    for (i, member) in got["_entities"].as_array().unwrap()[..50]
        .iter()
        .enumerate()
    {
        let expected =
            json!({"profileViews": i % 4, "messagesSent": i64::from(i % 5 == 0), "day": 0});
        assert_eq!(member["stats"], expected, "member {i}");
    }
}

#[tokio::test]
async fn sqlite_account_deletion_forgets_the_member() {
    let (_dir, store) = sqlite().await;
    let schema = build_schema(Some(store.clone()));
    let (gone, stays) = ("member-gone", "member-stays");
    for member in [gone, stays] {
        let viewed = json!({"memberId": member, "viewerId": "v"});
        apply(&store, "profile.viewed", viewed, Duration::hours(1)).await;
        let post = format!("post-of-{member}");
        let created = json!({"postId": post, "authorId": member, "visibility": "PUBLIC"});
        apply(&store, "post.created", created, Duration::hours(2)).await;
        let reaction = json!({"postId": post, "authorId": member, "memberId": "r", "kind": "LIKE"});
        apply(&store, "reaction.added", reaction, Duration::hours(1)).await;
    }
    let deleted = json!({"accountId": gone, "memberId": gone});
    apply(&store, "account.deleted", deleted, Duration::minutes(1)).await;

    let stats = r#"query($id: ID!) { _entities(representations: [{__typename: "Member", id: $id}]) {
        ... on Member { stats { profileViews reactionsReceived } } } }"#;
    let got = data(&schema, stats, json!({"id": gone})).await;
    assert_eq!(
        got["_entities"][0]["stats"],
        json!({"profileViews": 0, "reactionsReceived": 0})
    );
    let got = data(&schema, stats, json!({"id": stays})).await;
    assert_eq!(
        got["_entities"][0]["stats"],
        json!({"profileViews": 1, "reactionsReceived": 1})
    );
    let trending = data(&schema, "{ trendingPosts { id } }", json!({})).await;
    assert_eq!(
        trending["trendingPosts"],
        json!([{"id": "post-of-member-stays"}])
    );
}
