//! What a list costs the database (issue #19): a page of 20 posts or 20 members, with the
//! fields each item carries, runs a fixed number of SQL statements — the same for 5 items as for
//! 20 — counted by the store's `Db`, on SQLite and on PostgreSQL.

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap is the test failing, at that line"
)]

mod common;

use common::*;
use serde_json::{json, Value};
use switchyard_content::consumer::{ContentEvents, GROUP};
use switchyard_content::Service;
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
    twenty_post_entities_cost_four_statements,
    a_page_of_twenty_members_posts_costs_five_statements,
);

const N: usize = 20;

/// 20 authors, each with a public post (a reaction by its author, a comment) and a
/// connections-only one; the reader is connected to the even-numbered authors and has liked
/// their public posts.
struct World {
    reader: String,
    authors: Vec<String>,
    public: Vec<String>,
    private: Vec<String>,
}

async fn world(env: &Env, service: &Service) -> World {
    let reader_id = member();
    let reader = env.token(&reader_id);
    let (mut authors, mut public, mut private) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..N {
        let author_id = member();
        let author = env.token(&author_id);
        let open = create_post(service, &author, &format!("public {i}"), "PUBLIC").await;
        let closed = create_post(service, &author, &format!("private {i}"), "CONNECTIONS").await;
        ok(
            service,
            Some(&author),
            "mutation($p: ID!) { react(postId: $p, kind: CELEBRATE) { id } comment(postId: $p, body: \"first\") { id } }",
            json!({"p": open}),
        )
        .await;
        if i.is_multiple_of(2) {
            let event = Event::new(
                "connection.accepted",
                author_id.clone(),
                json!({"memberId": author_id, "otherMemberId": reader_id}),
            )
            .unwrap();
            process_event(service.store().pool(), GROUP, &event, &ContentEvents)
                .await
                .unwrap();
            ok(
                service,
                Some(&reader),
                "mutation($p: ID!) { react(postId: $p, kind: LIKE) { id } }",
                json!({"p": open}),
            )
            .await;
        }
        authors.push(author_id);
        public.push(open);
        private.push(closed);
    }
    World {
        reader,
        authors,
        public,
        private,
    }
}

/// Runs `query` once to warm up (token cache, member directory refresh), then again, and
/// returns the second response's data and how many statements it ran.
async fn counted(service: &Service, token: Option<&str>, query: &str, vars: Value) -> (Value, u64) {
    ok(service, token, query, vars.clone()).await;
    let before = service.store().statements();
    let data = ok(service, token, query, vars).await;
    (data, service.store().statements() - before)
}

fn reps(typename: &str, ids: &[String]) -> Value {
    let reps: Vec<Value> = ids
        .iter()
        .map(|id| json!({"__typename": typename, "id": id}))
        .collect();
    json!({ "r": reps })
}

const POSTS: &str = "query($r: [_Any!]!) { _entities(representations: $r) { ... on Post {
    id body reactions { total viewerReaction byKind { kind count } }
    comments(first: 1) { totalCount edges { node { body } } } } } }";

async fn twenty_post_entities_cost_four_statements(env: &Env) {
    let service = env.open().await;
    let w = world(env, &service).await;
    // Half public posts, half connections-only ones (of which the reader may see every other).
    let ids: Vec<String> = w.public[..N / 2]
        .iter()
        .chain(&w.private[N / 2..])
        .cloned()
        .collect();
    let (data, statements) = counted(&service, Some(&w.reader), POSTS, reps("Post", &ids)).await;
    // The posts with the reader's connection to each author, reactions (with the reader's own),
    // comment pages, comment counts: one statement each, whatever the list's length.
    assert_eq!(statements, 4, "{data}");
    let entities = data["_entities"].as_array().unwrap();
    assert_eq!(entities.len(), N);
    for (i, post) in entities[..N / 2].iter().enumerate() {
        let liked = i.is_multiple_of(2);
        assert_eq!(post["id"], w.public[i].as_str());
        assert_eq!(post["reactions"]["total"], 1 + i32::from(liked), "{post}");
        let own = if liked { json!("LIKE") } else { Value::Null };
        assert_eq!(post["reactions"]["viewerReaction"], own);
        let mut by_kind = vec![json!({"kind": "CELEBRATE", "count": 1})];
        if liked {
            by_kind.insert(0, json!({"kind": "LIKE", "count": 1}));
        }
        assert_eq!(post["reactions"]["byKind"], json!(by_kind));
        assert_eq!(post["comments"]["totalCount"], 1);
        assert_eq!(post["comments"]["edges"][0]["node"]["body"], "first");
    }
    for (i, post) in entities[N / 2..].iter().enumerate() {
        let i = i + N / 2;
        if i.is_multiple_of(2) {
            assert_eq!(post["body"], format!("private {i}"));
            assert_eq!(post["reactions"]["total"], 0);
            assert_eq!(post["comments"]["totalCount"], 0);
        } else {
            assert!(post.is_null(), "hidden from the reader: {post}");
        }
    }

    // The same shape with a quarter of the items costs the same.
    let (_, statements) =
        counted(&service, Some(&w.reader), POSTS, reps("Post", &ids[8..13])).await;
    assert_eq!(statements, 4);
    // Anonymous readers see only public posts, at the same cost.
    let (data, statements) = counted(&service, None, POSTS, reps("Post", &ids)).await;
    assert_eq!(statements, 4, "{data}");
    assert!(data["_entities"][N - 2].is_null());
    assert_eq!(
        data["_entities"][0]["reactions"]["viewerReaction"],
        Value::Null
    );
}

const MEMBER_POSTS: &str = "query($r: [_Any!]!) { _entities(representations: $r) { ... on Member {
    posts(first: 5) { totalCount pageInfo { hasNextPage } edges { node { body reactions { total } } } } } } }";

async fn a_page_of_twenty_members_posts_costs_five_statements(env: &Env) {
    let service = env.open().await;
    let w = world(env, &service).await;
    let (data, statements) = counted(
        &service,
        Some(&w.reader),
        MEMBER_POSTS,
        reps("Member", &w.authors),
    )
    .await;
    // The reader's connections among the authors, pages (one for authors whose
    // connections-only posts the reader sees, one for the rest), counts, reactions.
    assert_eq!(statements, 5, "{data}");
    for (i, entity) in data["_entities"].as_array().unwrap().iter().enumerate() {
        let posts = &entity["posts"];
        let bodies: Vec<&str> = posts["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["body"].as_str().unwrap())
            .collect();
        let (private, public) = (format!("private {i}"), format!("public {i}"));
        if i.is_multiple_of(2) {
            assert_eq!(bodies, [private.as_str(), public.as_str()], "newest first");
            assert_eq!(posts["totalCount"], 2);
            assert_eq!(posts["edges"][1]["node"]["reactions"]["total"], 2);
        } else {
            assert_eq!(bodies, [public.as_str()]);
            assert_eq!(posts["totalCount"], 1);
            assert_eq!(posts["edges"][0]["node"]["reactions"]["total"], 1);
        }
        assert_eq!(posts["pageInfo"]["hasNextPage"], false);
    }

    // A page of one post per member: the second page (`after`) differs per member, so it is
    // not part of this pin; the first page with `first: 1` is.
    let (data, statements) = counted(
        &service,
        None,
        "query($r: [_Any!]!) { _entities(representations: $r) { ... on Member {
            posts(first: 1) { totalCount pageInfo { hasNextPage } edges { node { body } } } } } }",
        reps("Member", &w.authors),
    )
    .await;
    // Anonymous: no connections to look up, one page statement, counts.
    assert_eq!(statements, 2, "{data}");
    for (i, entity) in data["_entities"].as_array().unwrap().iter().enumerate() {
        assert_eq!(
            entity["posts"]["edges"][0]["node"]["body"],
            format!("public {i}")
        );
        assert_eq!(entity["posts"]["pageInfo"]["hasNextPage"], false);
    }
}
