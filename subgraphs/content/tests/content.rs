//! The content service end to end through its schema, on SQLite and on PostgreSQL (a unique
//! database per test; skipped with a note when no server runs, failing when `CI=true`).

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap is the test failing, at that line"
)]

mod common;

use common::*;
use serde_json::json;
use switchyard_content::consumer::{ContentEvents, GROUP};
use switchyard_subgraph_kit::{process_event, Event};

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let env = super::Env::new(super::Backend::Sqlite).await.unwrap();
                    super::$name(&env).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(env) = super::Env::new(super::Backend::Postgres).await else {
                        return;
                    };
                    super::$name(&env).await;
                }
            )*
        }
    };
}

on_both_backends!(
    search_tolerates_typos_matches_phrases_ranks_and_highlights,
    edits_and_deletes_reach_the_index,
    index_catches_up_after_a_crash_and_reindex_rebuilds,
    reactions_and_comments_count,
    only_the_author_edits_and_bad_input_is_rejected,
    visibility_follows_connections,
    views_are_throttled_and_member_posts_page,
);

async fn search_tolerates_typos_matches_phrases_ranks_and_highlights(env: &Env) {
    let service = env.open().await;
    let ada = env.token(&member());
    let focused = create_post(
        &service,
        &ada,
        "Federation gateways plan queries. A federation gateway with a query planner is federation done right.",
        "PUBLIC",
    )
    .await;
    let passing = create_post(
        &service,
        &ada,
        "Notes from the conference: the planner team talked about federation for an hour.",
        "PUBLIC",
    )
    .await;
    let unrelated = create_post(&service, &ada, "Sourdough bread needs patience.", "PUBLIC").await;
    service.indexer().catch_up().await.unwrap();

    // Typo: "federaton" is one edit from "federation" (10 letters → up to 2 allowed).
    let edges = search(&service, None, "federaton").await;
    let found = ids(&edges);
    assert_eq!(found.len(), 2, "{edges:?}");
    assert_eq!(
        found[0], focused,
        "three mentions rank above one: {edges:?}"
    );
    assert!(!found.contains(&unrelated));
    let snippet = edges[0]["snippet"].as_str().unwrap();
    assert!(snippet.contains("<b>Federation</b>"), "{snippet}");
    assert!(
        edges[0]["score"].as_f64().unwrap() > edges[1]["score"].as_f64().unwrap(),
        "{edges:?}"
    );

    // Phrase: only the post with the words adjacent and in order.
    let edges = search(&service, None, "\"query planner\"").await;
    assert_eq!(ids(&edges), vec![focused.clone()], "{edges:?}");
    assert!(
        edges[0]["snippet"]
            .as_str()
            .unwrap()
            .contains("<b>query</b> <b>planner</b>"),
        "{edges:?}"
    );

    // Two words, both must match; a short word gets no typo tolerance.
    let edges = search(&service, None, "planner conference").await;
    assert_eq!(ids(&edges), vec![passing.clone()]);
    assert_eq!(
        ids(&search(&service, None, "brad").await),
        vec![unrelated.clone()],
        "4 letters: 1 edit"
    );
    assert!(
        search(&service, None, "brd").await.is_empty(),
        "3 letters: exact only"
    );

    // Paging: first 1, then after its cursor.
    let data = ok(
        &service,
        None,
        "query($a: String) { searchPosts(query: \"federation\", first: 1, after: $a) { totalCount pageInfo { hasNextPage endCursor } edges { node { id } } } }",
        json!({"a": null}),
    )
    .await;
    assert_eq!(data["searchPosts"]["totalCount"], 2);
    assert_eq!(data["searchPosts"]["pageInfo"]["hasNextPage"], true);
    let cursor = data["searchPosts"]["pageInfo"]["endCursor"].clone();
    let data = ok(
        &service,
        None,
        "query($a: String) { searchPosts(query: \"federation\", first: 1, after: $a) { pageInfo { hasNextPage hasPreviousPage } edges { node { id } } } }",
        json!({"a": cursor}),
    )
    .await;
    assert_eq!(
        data["searchPosts"]["edges"][0]["node"]["id"],
        passing.as_str()
    );
    assert_eq!(data["searchPosts"]["pageInfo"]["hasNextPage"], false);
    assert_eq!(data["searchPosts"]["pageInfo"]["hasPreviousPage"], true);

    // Bad queries are the client's fault.
    for q in ["", "  \"\" ", &"x ".repeat(300)] {
        let r = exec(
            &service,
            None,
            "query($q: String!) { searchPosts(query: $q) { totalCount } }",
            json!({"q": q}),
        )
        .await;
        assert_eq!(error_code(&r), "BAD_USER_INPUT", "{q:?}: {r}");
    }
}

async fn edits_and_deletes_reach_the_index(env: &Env) {
    let service = env.open().await;
    let ada = env.token(&member());
    let id = create_post(&service, &ada, "Rust async runtimes compared", "PUBLIC").await;
    service.indexer().catch_up().await.unwrap();
    assert_eq!(
        ids(&search(&service, None, "runtimes").await),
        vec![id.clone()]
    );

    let data = ok(
        &service,
        Some(&ada),
        "mutation($id: ID!) { editPost(id: $id, body: \"Tokio internals explained\") { body editedAt } }",
        json!({"id": id}),
    )
    .await;
    assert_eq!(data["editPost"]["body"], "Tokio internals explained");
    assert!(data["editPost"]["editedAt"].is_string());
    service.indexer().catch_up().await.unwrap();
    assert!(search(&service, None, "runtimes").await.is_empty());
    assert_eq!(
        ids(&search(&service, None, "tokio").await),
        vec![id.clone()]
    );

    let data = ok(
        &service,
        Some(&ada),
        "mutation($id: ID!) { deletePost(id: $id) }",
        json!({"id": id}),
    )
    .await;
    assert_eq!(data["deletePost"], true);
    // Even before the indexer runs, a deleted post is not returned (hits are checked against
    // the database).
    assert!(search(&service, None, "tokio").await.is_empty());
    service.indexer().catch_up().await.unwrap();
    assert_eq!(service.index().num_docs(), 0);
    let deleted = outbox_events(&service, "post.deleted").await;
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0]["postId"], id.as_str());
    let created = outbox_events(&service, "post.created").await;
    assert_eq!(created[0]["visibility"], "public");
}

async fn index_catches_up_after_a_crash_and_reindex_rebuilds(env: &Env) {
    let ada = env.token(&member());
    let mut written = Vec::new();
    {
        let service = env.open().await;
        for i in 0..25 {
            written.push(
                create_post(
                    &service,
                    &ada,
                    &format!("crash test post number {i} zebra"),
                    "PUBLIC",
                )
                .await,
            );
        }
        // The service goes away before any indexing pass ran (no `serve`, no catch-up).
        assert_eq!(service.index().num_docs(), 0);
        assert_eq!(service.store().index_backlog().await.unwrap(), 25);
    }
    written.sort();
    let service = env.open().await;
    assert_eq!(
        service.index().all_ids().unwrap(),
        written,
        "reopen applied the queue"
    );
    assert_eq!(service.store().index_backlog().await.unwrap(), 0);
    assert_eq!(search(&service, None, "zebra").await.len(), 25);

    // A crash between the index commit and the queue delete replays rows: still consistent.
    sqlx::query("INSERT INTO content_index_queue (post_id) VALUES ($1), ($2)")
        .bind(written[0].clone())
        .bind("0192f1f0-0000-7000-8000-000000000000")
        .execute(service.store().pool())
        .await
        .unwrap();
    service.indexer().catch_up().await.unwrap();
    assert_eq!(service.index().all_ids().unwrap(), written);
    drop(service);

    // The index directory is lost: reopening rebuilds it from the database.
    std::fs::remove_dir_all(env.config().search_dir()).unwrap();
    let service = env.open().await;
    assert_eq!(service.index().all_ids().unwrap(), written);

    // `reindex` (Indexer::rebuild) gives the same documents, and search the same results.
    let mut before = ids(&search(&service, None, "zebra").await);
    assert_eq!(service.indexer().rebuild().await.unwrap(), 25);
    assert_eq!(service.index().all_ids().unwrap(), written);
    let mut after = ids(&search(&service, None, "zebra").await);
    // Equal scores may come back in another order after a rebuild; compare the sets.
    before.sort();
    after.sort();
    assert_eq!(after, before);
    assert_eq!(after, written);
}

async fn reactions_and_comments_count(env: &Env) {
    let service = env.open().await;
    let (ada_id, bob_id, cy_id) = (member(), member(), member());
    let (ada, bob, cy) = (env.token(&ada_id), env.token(&bob_id), env.token(&cy_id));
    let post = create_post(&service, &ada, "Shipping the content service", "PUBLIC").await;
    let react = "mutation($p: ID!, $k: ReactionKind!) { react(postId: $p, kind: $k) { reactions { total byKind { kind count } viewerReaction } } }";
    ok(&service, Some(&bob), react, json!({"p": post, "k": "LIKE"})).await;
    ok(&service, Some(&bob), react, json!({"p": post, "k": "LIKE"})).await;
    let data = ok(
        &service,
        Some(&cy),
        react,
        json!({"p": post, "k": "CELEBRATE"}),
    )
    .await;
    assert_eq!(data["react"]["reactions"]["total"], 2);
    assert_eq!(
        data["react"]["reactions"]["byKind"],
        json!([{"kind": "LIKE", "count": 1}, {"kind": "CELEBRATE", "count": 1}])
    );
    assert_eq!(data["react"]["reactions"]["viewerReaction"], "CELEBRATE");
    // Changing kind replaces the reaction.
    let data = ok(
        &service,
        Some(&bob),
        react,
        json!({"p": post, "k": "CELEBRATE"}),
    )
    .await;
    assert_eq!(data["react"]["reactions"]["total"], 2);
    assert_eq!(
        data["react"]["reactions"]["byKind"],
        json!([{"kind": "CELEBRATE", "count": 2}])
    );
    let events = outbox_events(&service, "reaction.added").await;
    assert_eq!(
        events.len(),
        3,
        "repeating the same kind emits nothing: {events:?}"
    );
    assert_eq!(events[0]["authorId"], ada_id.as_str());
    assert_eq!(events[0]["memberId"], bob_id.as_str());
    assert_eq!(events[0]["kind"], "LIKE");

    let comment = "mutation($p: ID!, $b: String!) { comment(postId: $p, body: $b) { id body author { id } } }";
    for i in 0..3 {
        let data = ok(
            &service,
            Some(&bob),
            comment,
            json!({"p": post, "b": format!("c{i}")}),
        )
        .await;
        assert_eq!(data["comment"]["author"]["id"], bob_id.as_str());
    }
    let page = "query($p: ID!, $a: String) { post(id: $p) { comments(first: 2, after: $a) { totalCount pageInfo { hasNextPage endCursor } edges { node { body } } } } }";
    let data = ok(&service, None, page, json!({"p": post, "a": null})).await;
    let comments = &data["post"]["comments"];
    assert_eq!(comments["totalCount"], 3);
    assert_eq!(comments["edges"][0]["node"]["body"], "c0");
    assert_eq!(comments["pageInfo"]["hasNextPage"], true);
    let data = ok(
        &service,
        None,
        page,
        json!({"p": post, "a": comments["pageInfo"]["endCursor"]}),
    )
    .await;
    assert_eq!(data["post"]["comments"]["edges"][0]["node"]["body"], "c2");
    assert_eq!(data["post"]["comments"]["pageInfo"]["hasNextPage"], false);
    let added = outbox_events(&service, "comment.added").await;
    assert_eq!(added.len(), 3);
    assert_eq!(added[0]["authorId"], ada_id.as_str());
    assert_eq!(added[0]["memberId"], bob_id.as_str());

    let r = exec(
        &service,
        Some(&bob),
        comment,
        json!({"p": member(), "b": "x"}),
    )
    .await;
    assert_eq!(error_code(&r), "NOT_FOUND");
}

async fn only_the_author_edits_and_bad_input_is_rejected(env: &Env) {
    let service = env.open().await;
    let (ada, bob) = (env.token(&member()), env.token(&member()));
    let post = create_post(&service, &ada, "Mine", "PUBLIC").await;
    let edit = "mutation($id: ID!, $b: String!) { editPost(id: $id, body: $b) { body } }";
    let r = exec(
        &service,
        Some(&bob),
        edit,
        json!({"id": post, "b": "hijacked"}),
    )
    .await;
    assert_eq!(error_code(&r), "FORBIDDEN", "{r}");
    let r = exec(
        &service,
        Some(&bob),
        "mutation($id: ID!) { deletePost(id: $id) }",
        json!({"id": post}),
    )
    .await;
    assert_eq!(error_code(&r), "FORBIDDEN", "{r}");
    let r = exec(&service, None, edit, json!({"id": post, "b": "anon"})).await;
    assert_eq!(error_code(&r), "UNAUTHENTICATED", "{r}");
    let r = exec(
        &service,
        Some("not-a-jwt"),
        edit,
        json!({"id": post, "b": "x"}),
    )
    .await;
    assert_eq!(error_code(&r), "UNAUTHENTICATED", "{r}");
    let r = exec(
        &service,
        Some(&ada),
        edit,
        json!({"id": member(), "b": "x"}),
    )
    .await;
    assert_eq!(error_code(&r), "NOT_FOUND", "{r}");
    let r = exec(&service, Some(&ada), edit, json!({"id": "nope", "b": "x"})).await;
    assert_eq!(error_code(&r), "BAD_USER_INPUT", "{r}");
    for body in [String::new(), "   ".into(), "x".repeat(10_001)] {
        let r = exec(&service, Some(&ada), edit, json!({"id": post, "b": body})).await;
        assert_eq!(error_code(&r), "BAD_USER_INPUT", "{r}");
        let r = exec(
            &service,
            Some(&ada),
            "mutation($b: String!) { createPost(body: $b) { id } }",
            json!({"b": body}),
        )
        .await;
        assert_eq!(error_code(&r), "BAD_USER_INPUT", "{r}");
    }
    let ok_max = ok(
        &service,
        Some(&ada),
        edit,
        json!({"id": post, "b": "y".repeat(10_000)}),
    )
    .await;
    assert_eq!(ok_max["editPost"]["body"].as_str().unwrap().len(), 10_000);
    let data = ok(
        &service,
        None,
        "query($id: ID!) { post(id: $id) { id } }",
        json!({"id": member()}),
    )
    .await;
    assert!(data["post"].is_null());
    let data = ok(&service, None, "{ post(id: \"junk\") { id } }", json!({})).await;
    assert!(data["post"].is_null());
    let r = exec(
        &service,
        None,
        "{ searchPosts(query: \"x\", first: 1000) { totalCount } }",
        json!({}),
    )
    .await;
    assert_eq!(error_code(&r), "BAD_USER_INPUT", "{r}");
}

async fn visibility_follows_connections(env: &Env) {
    let service = env.open().await;
    let (ada_id, bob_id) = (member(), member());
    let (ada, bob) = (env.token(&ada_id), env.token(&bob_id));
    let private = create_post(
        &service,
        &ada,
        "Connections only: quarterly numbers",
        "CONNECTIONS",
    )
    .await;
    let public = create_post(&service, &ada, "Public: quarterly outlook", "PUBLIC").await;
    service.indexer().catch_up().await.unwrap();
    let get = "query($id: ID!) { post(id: $id) { id visibility } }";

    assert_eq!(
        ids(&search(&service, None, "quarterly").await),
        vec![public.clone()]
    );
    assert_eq!(
        ids(&search(&service, Some(&bob), "quarterly").await),
        vec![public.clone()]
    );
    assert_eq!(
        search(&service, Some(&ada), "quarterly").await.len(),
        2,
        "own posts"
    );
    assert!(ok(&service, Some(&bob), get, json!({"id": private})).await["post"].is_null());
    let r = exec(
        &service,
        Some(&bob),
        "mutation($p: ID!) { react(postId: $p, kind: LIKE) { id } }",
        json!({"p": private}),
    )
    .await;
    assert_eq!(
        error_code(&r),
        "NOT_FOUND",
        "hidden posts look missing: {r}"
    );

    // Profile tells us they connected.
    let event = Event::new(
        "connection.accepted",
        bob_id.clone(),
        json!({"memberId": bob_id, "otherMemberId": ada_id}),
    )
    .unwrap();
    process_event(service.store().pool(), GROUP, &event, &ContentEvents)
        .await
        .unwrap();
    assert_eq!(search(&service, Some(&bob), "quarterly").await.len(), 2);
    assert_eq!(
        ok(&service, Some(&bob), get, json!({"id": private})).await["post"]["visibility"],
        "CONNECTIONS"
    );
    assert_eq!(
        ids(&search(&service, None, "quarterly").await),
        vec![public.clone()]
    );

    let posts = "query($r: [_Any!]!) { _entities(representations: $r) { ... on Member { posts { totalCount } } } }";
    let reps = json!({"r": [{"__typename": "Member", "id": ada_id}]});
    assert_eq!(
        ok(&service, None, posts, reps.clone()).await["_entities"][0]["posts"]["totalCount"],
        1
    );
    assert_eq!(
        ok(&service, Some(&bob), posts, reps).await["_entities"][0]["posts"]["totalCount"],
        2
    );

    // Bob removes Ada: the grant is revoked on every path.
    let accepted_at = event.occurred_at;
    let removed = Event::new(
        "connection.removed",
        bob_id.clone(),
        json!({"memberId": bob_id, "otherMemberId": ada_id}),
    )
    .unwrap();
    process_event(service.store().pool(), GROUP, &removed, &ContentEvents)
        .await
        .unwrap();
    assert_revoked(&service, &bob, &ada_id, &private).await;
    // An `accepted` older than the removal, redelivered late (a new delivery of an old
    // decision), does not restore the grant.
    let mut stale = Event::new(
        "connection.accepted",
        bob_id.clone(),
        json!({"memberId": bob_id, "otherMemberId": ada_id}),
    )
    .unwrap();
    stale.occurred_at = accepted_at;
    process_event(service.store().pool(), GROUP, &stale, &ContentEvents)
        .await
        .unwrap();
    assert_revoked(&service, &bob, &ada_id, &private).await;
    // Connecting again (a newer decision) grants it again.
    let again = Event::new(
        "connection.accepted",
        ada_id.clone(),
        json!({"memberId": ada_id, "otherMemberId": bob_id}),
    )
    .unwrap();
    process_event(service.store().pool(), GROUP, &again, &ContentEvents)
        .await
        .unwrap();
    assert_eq!(search(&service, Some(&bob), "quarterly").await.len(), 2);

    // The account is deleted: its posts leave the database and the index.
    let event = Event::new(
        "account.deleted",
        ada_id.clone(),
        json!({"accountId": ada_id, "memberId": ada_id}),
    )
    .unwrap();
    process_event(service.store().pool(), GROUP, &event, &ContentEvents)
        .await
        .unwrap();
    service.indexer().catch_up().await.unwrap();
    assert_eq!(service.index().num_docs(), 0);
    assert!(search(&service, Some(&bob), "quarterly").await.is_empty());
}

/// `viewer` sees none of `author`'s connections-only posts (one public post remains), through
/// search, `post(id)` and `Member.posts`.
async fn assert_revoked(
    service: &switchyard_content::Service,
    viewer: &str,
    author_id: &str,
    private: &str,
) {
    assert_eq!(
        search(service, Some(viewer), "quarterly").await.len(),
        1,
        "search shows only the public post"
    );
    let get = "query($id: ID!) { post(id: $id) { id } }";
    assert!(ok(service, Some(viewer), get, json!({"id": private})).await["post"].is_null());
    let posts = "query($r: [_Any!]!) { _entities(representations: $r) { ... on Member { posts { totalCount } } } }";
    let reps = json!({"r": [{"__typename": "Member", "id": author_id}]});
    assert_eq!(
        ok(service, Some(viewer), posts, reps).await["_entities"][0]["posts"]["totalCount"],
        1
    );
}

async fn views_are_throttled_and_member_posts_page(env: &Env) {
    let service = env.open().await;
    let (ada_id, bob_id) = (member(), member());
    let (ada, bob) = (env.token(&ada_id), env.token(&bob_id));
    let mut posts = Vec::new();
    for i in 0..5 {
        posts.push(create_post(&service, &ada, &format!("post {i}"), "PUBLIC").await);
    }
    let get = "query($id: ID!) { post(id: $id) { author { id } } }";
    for token in [&bob, &bob, &ada] {
        let data = ok(&service, Some(token), get, json!({"id": posts[0]})).await;
        assert_eq!(data["post"]["author"]["id"], ada_id.as_str());
    }
    ok(&service, None, get, json!({"id": posts[0]})).await;
    let viewed = outbox_events(&service, "post.viewed").await;
    assert_eq!(
        viewed.len(),
        1,
        "one per viewer per hour, none for the author: {viewed:?}"
    );
    assert_eq!(viewed[0]["viewerId"], bob_id.as_str());
    assert_eq!(viewed[0]["authorId"], ada_id.as_str());

    // Newest first, two at a time.
    let page = "query($r: [_Any!]!, $a: String) { _entities(representations: $r) { ... on Member { posts(first: 2, after: $a) { totalCount pageInfo { hasNextPage endCursor } edges { node { id } } } } } }";
    let mut seen = Vec::new();
    let mut after = serde_json::Value::Null;
    loop {
        let data = ok(
            &service,
            None,
            page,
            json!({"r": [{"__typename": "Member", "id": ada_id}], "a": after}),
        )
        .await;
        let conn = &data["_entities"][0]["posts"];
        assert_eq!(conn["totalCount"], 5);
        for edge in conn["edges"].as_array().unwrap() {
            seen.push(edge["node"]["id"].as_str().unwrap().to_owned());
        }
        if conn["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = conn["pageInfo"]["endCursor"].clone();
    }
    posts.reverse();
    assert_eq!(seen, posts);
    let r = exec(
        &service,
        None,
        page,
        json!({"r": [{"__typename": "Member", "id": ada_id}], "a": "zz"}),
    )
    .await;
    assert_eq!(error_code(&r), "BAD_USER_INPUT", "{r}");
}
