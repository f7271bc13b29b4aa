//! Consistency across services, end to end through the gateway: what one service decides (a
//! removed connection) reaches every service that depends on it, within a stated bound.

mod common;

use std::time::{Duration, Instant};

use common::{connect, error_codes, sign_up, start_stack, Member};
use serde_json::{json, Value};
use switchyard::client::GraphQLClient;

/// How long a decision may take to reach every service that depends on it. Events leave the
/// outbox as soon as the deciding transaction commits (the relay is woken) and consumers wait
/// on the bus, so this is milliseconds in practice; the bound leaves room for a loaded machine.
const PROPAGATION_BOUND: Duration = Duration::from_secs(5);

/// Polls `check` until it returns `Some`, failing after [`PROPAGATION_BOUND`]; returns the value
/// and how long it took.
async fn within_bound<T, F, Fut>(what: &str, mut check: F) -> (T, Duration)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return (value, start.elapsed());
        }
        assert!(
            start.elapsed() < PROPAGATION_BOUND,
            "{what} did not happen within {PROPAGATION_BOUND:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Which of `author`'s posts `viewer` sees, through each field that returns posts:
/// `(searchPosts, Member.posts, post(id) for each of `ids`)`, as sorted id lists.
async fn seen_by(
    client: &GraphQLClient,
    viewer: &Member,
    author: &Member,
    word: &str,
    ids: &[String],
) -> (Vec<String>, Vec<String>, Vec<String>) {
    let data = client
        .with_token(&viewer.token)
        .data(
            "query($q: String!, $author: ID!) {
               searchPosts(query: $q, first: 50) { edges { node { id author { handle } } } }
               member(id: $author) { posts(first: 50) { totalCount edges { node { id } } } }
             }",
            json!({ "q": word, "author": author.id }),
        )
        .await
        .unwrap();
    let mut search: Vec<String> = data["searchPosts"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
        .collect();
    let mut listed: Vec<String> = data["member"]["posts"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        data["member"]["posts"]["totalCount"].as_u64().unwrap() as usize,
        listed.len(),
        "totalCount counts what the viewer may see"
    );
    let mut direct = Vec::new();
    for id in ids {
        // Each id through `post(id)`, and aliased inside one request as a client batch would.
        let data = client
            .with_token(&viewer.token)
            .data(
                "query($id: ID!) { a: post(id: $id) { id } b: post(id: $id) { author { handle } } }",
                json!({ "id": id }),
            )
            .await
            .unwrap();
        assert_eq!(data["a"].is_null(), data["b"].is_null(), "{data}");
        if !data["a"].is_null() {
            direct.push(id.clone());
        }
    }
    search.sort();
    listed.sort();
    direct.sort();
    (search, listed, direct)
}

async fn post(client: &GraphQLClient, author: &Member, body: &str, visibility: &str) -> String {
    let data = client
        .with_token(&author.token)
        .data(
            "mutation($b: String!, $v: Visibility!) { createPost(body: $b, visibility: $v) { id } }",
            json!({ "b": body, "v": visibility }),
        )
        .await
        .unwrap();
    data["createPost"]["id"].as_str().unwrap().to_owned()
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_connection_revokes_connections_only_posts_on_every_path() {
    let stack = start_stack(|_| {}).await;
    let client = &stack.client;
    let kwame = sign_up(client, "kwame", "Kwame Mensah").await;
    let sofia = sign_up(client, "sofia", "Sofia Rossi").await;
    connect(client, &sofia, &kwame).await;

    let public = post(client, &kwame, "Harbour plans: public update", "PUBLIC").await;
    let private = post(
        client,
        &kwame,
        "Harbour plans: numbers for my network",
        "CONNECTIONS",
    )
    .await;
    let everything = sorted(vec![public.clone(), private.clone()]);
    let (_, granted_after) = within_bound("sofia seeing kwame's connections-only post", || async {
        let seen = seen_by(client, &sofia, &kwame, "harbour", &everything).await;
        (seen == (everything.clone(), everything.clone(), everything.clone())).then_some(())
    })
    .await;

    // Kwame removes Sofia; profile answers OUT_OF_NETWORK at once.
    let removed = client
        .with_token(&kwame.token)
        .data(
            "mutation($w: ID!) { removeConnection(with: $w) }",
            json!({ "w": sofia.id }),
        )
        .await
        .unwrap();
    assert_eq!(removed["removeConnection"], true);
    let degree = client
        .data(
            "query($a: ID!, $b: ID!) { connectionDegree(from: $a, to: $b) { degree } }",
            json!({ "a": sofia.id, "b": kwame.id }),
        )
        .await
        .unwrap();
    assert_eq!(degree["connectionDegree"]["degree"], "OUT_OF_NETWORK");

    // Content learns of it from `connection.removed`: every path stops showing the post, and a
    // post written after the removal is never visible to her.
    let later = post(
        client,
        &kwame,
        "Harbour plans: after the split",
        "CONNECTIONS",
    )
    .await;
    let all_three = sorted(vec![public.clone(), private.clone(), later.clone()]);
    let only_public = vec![public.clone()];
    let (_, revoked_after) = within_bound("revocation on every path", || async {
        let seen = seen_by(client, &sofia, &kwame, "harbour", &all_three).await;
        (seen
            == (
                only_public.clone(),
                only_public.clone(),
                only_public.clone(),
            ))
            .then_some(())
    })
    .await;
    println!("granted within {granted_after:?}, revoked within {revoked_after:?}");
    // Kwame himself still sees all three; writing to the hidden post looks like a missing post.
    within_bound(
        "kwame seeing his own three posts (the index catching up)",
        || async {
            let own = seen_by(client, &kwame, &kwame, "harbour", &all_three).await;
            (own == (all_three.clone(), all_three.clone(), all_three.clone())).then_some(())
        },
    )
    .await;
    for mutation in [
        "mutation($p: ID!) { react(postId: $p, kind: LIKE) { id } }",
        "mutation($p: ID!) { comment(postId: $p, body: \"still here?\") { id } }",
    ] {
        let response = client
            .with_token(&sofia.token)
            .send(mutation, json!({ "p": private }))
            .await
            .unwrap();
        assert_eq!(error_codes(&response.errors()), ["NOT_FOUND"], "{mutation}");
    }

    // Connected again, the grant comes back — and then the other side removes it.
    connect(client, &kwame, &sofia).await;
    within_bound("the grant returning", || async {
        let seen = seen_by(client, &sofia, &kwame, "harbour", &all_three).await;
        (seen.0 == all_three).then_some(())
    })
    .await;
    client
        .with_token(&sofia.token)
        .data(
            "mutation($w: ID!) { removeConnection(with: $w) }",
            json!({ "w": kwame.id }),
        )
        .await
        .unwrap();
    within_bound("revocation by the other member", || async {
        let seen = seen_by(client, &sofia, &kwame, "harbour", &all_three).await;
        (seen
            == (
                only_public.clone(),
                only_public.clone(),
                only_public.clone(),
            ))
            .then_some(())
    })
    .await;
    // Neither sees the other's connections-only posts any more.
    let hers = post(client, &sofia, "Harbour plans: sofia's view", "CONNECTIONS").await;
    let theirs: Value = client
        .with_token(&kwame.token)
        .data(
            "query($id: ID!) { post(id: $id) { id } }",
            json!({ "id": hers }),
        )
        .await
        .unwrap();
    assert!(theirs["post"].is_null(), "{theirs}");
    stack.stack.shutdown().await.unwrap();
}
