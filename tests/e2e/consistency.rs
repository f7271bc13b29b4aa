//! Consistency across services, end to end through the gateway: what one service decides (a
//! removed connection) reaches every service that depends on it, within a stated bound.

use crate::common;

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

/// Starts a conversation as `who` with `with`, once chat has learned of every member in it
/// (sign-ups reach chat by `account.created`, within [`PROPAGATION_BOUND`]); its id.
async fn start_conversation(client: &GraphQLClient, who: &Member, with: &[&Member]) -> String {
    let ids: Vec<&str> = with.iter().map(|m| m.id.as_str()).collect();
    let (id, _) = within_bound("chat knowing every member", || async {
        let response = client
            .with_token(&who.token)
            .send(
                "mutation($w: [ID!]!) { startConversation(with: $w) { id } }",
                json!({ "w": ids }),
            )
            .await
            .unwrap();
        response.body["data"]["startConversation"]["id"]
            .as_str()
            .map(str::to_owned)
    })
    .await;
    id
}

/// `query` as `member`, expecting exactly one error; its `extensions.code`.
async fn refused_code(client: &GraphQLClient, member: &Member, query: &str, vars: Value) -> String {
    let response = client
        .with_token(&member.token)
        .send(query, vars)
        .await
        .unwrap();
    let codes = error_codes(&response.errors());
    assert_eq!(codes.len(), 1, "{query}: {}", response.body);
    codes[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_accounts_token_is_refused_by_every_service() {
    let stack = start_stack(|_| {}).await;
    let client = &stack.client;
    let ada = sign_up(client, "ada", "Ada Obi").await;
    let bea = sign_up(client, "bea", "Bea Lund").await;
    let conversation = start_conversation(client, &ada, &[&bea]).await;

    let deleted = client
        .with_token(&ada.token)
        .data(
            "mutation($p: String!) { deleteAccount(password: $p) }",
            json!({ "p": common::PASSWORD }),
        )
        .await
        .unwrap();
    assert_eq!(deleted["deleteAccount"], true);

    // Ada's access token has most of its 15 minutes left. Every service that needs a caller
    // refuses it as soon as it has processed `account.deleted`.
    let attempts = [
        (
            "content: createPost",
            "mutation { createPost(body: \"written after deleting my account\") { id } }",
            json!({}),
        ),
        (
            "chat: startConversation",
            "mutation($w: [ID!]!) { startConversation(with: $w) { id } }",
            json!({ "w": [bea.id] }),
        ),
        (
            "chat: sendMessage",
            "mutation($c: ID!) { sendMessage(conversationId: $c, body: \"still here\") { id } }",
            json!({ "c": conversation }),
        ),
        (
            "profile: updateProfile",
            "mutation { updateProfile(headline: \"back from the dead\") { id } }",
            json!({}),
        ),
        (
            "chat: unreadConversations",
            "{ unreadConversations }",
            json!({}),
        ),
        (
            "profile: peopleYouMayKnow",
            "{ peopleYouMayKnow { mutualCount } }",
            json!({}),
        ),
    ];
    let mut slowest = Duration::ZERO;
    for (what, query, vars) in &attempts {
        let (code, after) = within_bound(what, || async {
            let code = refused_code(client, &ada, query, vars.clone()).await;
            (code == "UNAUTHENTICATED").then_some(code)
        })
        .await;
        assert_eq!(code, "UNAUTHENTICATED", "{what}");
        slowest = slowest.max(after);
    }
    println!("every service refused the deleted account's token within {slowest:?}");

    // Nothing written with the old token exists anywhere.
    let search = client
        .data(
            "{ searchPosts(query: \"deleting\") { edges { node { id } } } }",
            json!({}),
        )
        .await
        .unwrap();
    assert_eq!(search["searchPosts"]["edges"], json!([]), "{search}");
    // Bea is unaffected.
    let hers = client
        .with_token(&bea.token)
        .data("{ unreadConversations }", json!({}))
        .await
        .unwrap();
    assert!(hers["unreadConversations"].is_number(), "{hers}");
    stack.stack.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn references_to_unknown_members_are_refused_by_name() {
    let stack = start_stack(|_| {}).await;
    let client = &stack.client;
    let mal = sign_up(client, "mal", "Mal Reyes").await;
    let victim = sign_up(client, "victim", "Vic Tim").await;
    let stranger = uuid::Uuid::now_v7().to_string();

    // Once chat knows the victim (sign-ups reach it by event), only the stranger is named.
    let (response, _) = within_bound("chat knowing the victim", || async {
        let response = client
            .with_token(&mal.token)
            .send(
                "mutation($w: [ID!]!) { startConversation(with: $w) { id } }",
                json!({ "w": [victim.id, stranger] }),
            )
            .await
            .unwrap();
        let unknown = &response.errors()[0]["extensions"]["unknownMembers"];
        (unknown.as_array().map(Vec::len) == Some(1)).then_some(response)
    })
    .await;
    let errors = response.errors();
    assert_eq!(
        error_codes(&errors),
        ["BAD_USER_INPUT"],
        "{}",
        response.body
    );
    assert!(
        errors[0]["message"].as_str().unwrap().contains(&stranger),
        "{}",
        response.body
    );
    assert_eq!(errors[0]["extensions"]["unknownMembers"], json!([stranger]));
    // Nothing was stored: the victim has no conversation to be broken by it.
    let theirs = client
        .with_token(&victim.token)
        .data(
            "query($id: ID!) { member(id: $id) { conversations { totalCount } } }",
            json!({ "id": victim.id }),
        )
        .await
        .unwrap();
    assert_eq!(theirs["member"]["conversations"]["totalCount"], 0);
    // Profile checks against its own members too.
    let request = client
        .with_token(&mal.token)
        .send(
            "mutation($to: ID!) { requestConnection(to: $to) { status } }",
            json!({ "to": stranger }),
        )
        .await
        .unwrap();
    assert_eq!(
        error_codes(&request.errors()),
        ["NOT_FOUND"],
        "{}",
        request.body
    );
    stack.stack.shutdown().await.unwrap();
}

/// Opens one service's embedded database in the stack's data directory (to plant data the
/// API no longer accepts, as stored before references were checked).
async fn service_db(stack: &common::TestStack, service: &str) -> sqlx::AnyPool {
    let path = stack.dir.path().join(service).join(format!("{service}.db"));
    switchyard_subgraph_kit::db::connect(&switchyard_subgraph_kit::db::sqlite_url(&path), 1)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dangling_member_references_never_null_anyone_elses_answer() {
    let stack = start_stack(|_| {}).await;
    let client = &stack.client;
    let kwame = sign_up(client, "kwame", "Kwame Mensah").await;
    let sofia = sign_up(client, "sofia", "Sofia Rossi").await;
    let lee = sign_up(client, "lee", "Lee Park").await;

    // A group conversation in which Lee writes, then deletes his account.
    let conversation = start_conversation(client, &sofia, &[&kwame, &lee]).await;
    client
        .with_token(&lee.token)
        .data(
            "mutation($c: ID!) { sendMessage(conversationId: $c, body: \"bye all\") { id } }",
            json!({ "c": conversation }),
        )
        .await
        .unwrap();
    client
        .with_token(&lee.token)
        .data(
            "mutation($p: String!) { deleteAccount(password: $p) }",
            json!({ "p": common::PASSWORD }),
        )
        .await
        .unwrap();
    // And a reference from before references were checked: a member id nobody knows, stored
    // in the conversation directly.
    let ghost = uuid::Uuid::now_v7().to_string();
    let chat_db = service_db(&stack, "chat").await;
    sqlx::query(
        "INSERT INTO conversation_members (conversation_id, member_id, last_read_seq, joined_at)
         VALUES ($1, $2, 0, 0)",
    )
    .bind(conversation.clone())
    .bind(ghost.clone())
    .execute(&chat_db)
    .await
    .unwrap();
    chat_db.close().await;

    let theirs = "query($id: ID!) { member(id: $id) { conversations { edges { node {
        members { id handle displayName deleted }
        messages { edges { node { body sender { handle deleted } } } } } } } } }";
    let (data, _) = within_bound("chat removing the deleted member", || async {
        let response = client
            .with_token(&sofia.token)
            .send(theirs, json!({ "id": sofia.id }))
            .await
            .unwrap();
        let members = response.body["data"]["member"]["conversations"]["edges"][0]["node"]
            ["members"]
            .as_array()
            .cloned()?;
        (members.len() == 3).then_some(response)
    })
    .await;
    assert!(data.errors().is_empty(), "{}", data.body);
    let node = &data.body["data"]["member"]["conversations"]["edges"][0]["node"];
    let mut members: Vec<(String, String, bool)> = node["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["id"].as_str().unwrap().to_owned(),
                m["handle"].as_str().unwrap().to_owned(),
                m["deleted"].as_bool().unwrap(),
            )
        })
        .collect();
    members.sort();
    let mut expected = vec![
        (kwame.id.clone(), "kwame".to_owned(), false),
        (sofia.id.clone(), "sofia".to_owned(), false),
        (ghost.clone(), "[deleted]".to_owned(), true),
    ];
    expected.sort();
    assert_eq!(members, expected, "{}", data.body);
    let ghost_entry = node["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == ghost.as_str())
        .unwrap();
    assert_eq!(ghost_entry["displayName"], "Deleted member");
    // Lee's message went with his account (erasure: a message's body is its sender's data;
    // tests/e2e/erasure.rs); the conversation answers without it.
    assert_eq!(node["messages"]["edges"], json!([]), "{}", data.body);

    // trendingPosts: a post whose author profile does not know (stored before references
    // were checked), reacted to, then asked for by anyone.
    let orphan = post(
        client,
        &kwame,
        "Orphaned thoughts on harbour cranes",
        "PUBLIC",
    )
    .await;
    client
        .with_token(&sofia.token)
        .data(
            "mutation($p: ID!) { react(postId: $p, kind: LIKE) { id } }",
            json!({ "p": orphan }),
        )
        .await
        .unwrap();
    let content_db = service_db(&stack, "content").await;
    sqlx::query("UPDATE content_posts SET author_id = $1 WHERE id = $2")
        .bind(ghost.clone())
        .bind(orphan.clone())
        .execute(&content_db)
        .await
        .unwrap();
    content_db.close().await;
    let trending = "{ trendingPosts { id author { id handle deleted } } }";
    let (response, _) = within_bound("the reaction reaching trendingPosts", || async {
        let response = client.send(trending, json!({})).await.unwrap();
        let listed = response.body["data"]["trendingPosts"]
            .as_array()?
            .iter()
            .any(|p| p["id"] == orphan.as_str());
        listed.then_some(response)
    })
    .await;
    assert!(response.errors().is_empty(), "{}", response.body);
    let entry = response.body["data"]["trendingPosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == orphan.as_str())
        .unwrap()
        .clone();
    assert_eq!(
        entry["author"],
        json!({ "id": ghost, "handle": "[deleted]", "deleted": true })
    );
    // Search selecting the author answers too, for a signed-in reader and anonymously.
    for reader in [Some(&sofia.token), None] {
        let search =
            "{ searchPosts(query: \"cranes\") { edges { node { id author { handle } } } } }";
        let (response, _) = within_bound("the orphan post being searchable", || async {
            let c = match reader {
                Some(token) => client.with_token(token),
                None => client.clone(),
            };
            let response = c.send(search, json!({})).await.unwrap();
            let found = response.body["data"]["searchPosts"]["edges"]
                .as_array()
                .is_some_and(|e| !e.is_empty());
            found.then_some(response)
        })
        .await;
        assert!(response.errors().is_empty(), "{}", response.body);
        assert_eq!(
            response.body["data"]["searchPosts"]["edges"][0]["node"]["author"]["handle"],
            "[deleted]"
        );
    }
    // A direct lookup of an unknown member is still null: only references get the placeholder.
    let direct = client
        .data(
            "query($id: ID!) { member(id: $id) { id } }",
            json!({ "id": ghost }),
        )
        .await
        .unwrap();
    assert!(direct["member"].is_null(), "{direct}");
    stack.stack.shutdown().await.unwrap();
}
