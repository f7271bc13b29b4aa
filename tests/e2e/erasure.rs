//! Account erasure end to end (issue #14, item 6): after `deleteAccount` every service erases
//! what it holds for the member and reports it; `accountErasure` says when all have; then no
//! query by anyone returns the member's data and no service's files hold their strings. A
//! `switchyard dev` process killed while an erasure is unfinished finishes it after restart.

use crate::common;

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{connect, sign_up, start_stack, Member, PASSWORD};
use serde_json::{json, Value};
use switchyard::client::GraphQLClient;

/// How long erasure may take once the account is deleted: each service's consumer erases in
/// one transaction as soon as `account.deleted` reaches it (milliseconds), then scrubs its
/// files and reports; the bound leaves room for a loaded machine.
const ERASURE_BOUND: Duration = Duration::from_secs(30);

const ERASURE: &str = "query($id: ID!) { accountErasure(memberId: $id) {
    memberId complete completedAt services { service erased erasedAt } } }";

/// Polls `accountErasure` until it is complete; fails after [`ERASURE_BOUND`].
async fn wait_for_erasure(client: &GraphQLClient, member_id: &str) -> Value {
    let start = Instant::now();
    loop {
        let data = client
            .data(ERASURE, json!({ "id": member_id }))
            .await
            .unwrap();
        if data["accountErasure"]["complete"] == true {
            return data["accountErasure"].clone();
        }
        assert!(
            start.elapsed() < ERASURE_BOUND,
            "erasure not complete within {ERASURE_BOUND:?}: {data}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn create_post(client: &GraphQLClient, author: &Member, body: &str, vis: &str) -> String {
    let data = client
        .with_token(&author.token)
        .data(
            "mutation($b: String!, $v: Visibility!) { createPost(body: $b, visibility: $v) { id } }",
            json!({ "b": body, "v": vis }),
        )
        .await
        .unwrap();
    data["createPost"]["id"].as_str().unwrap().to_owned()
}

async fn call(client: &GraphQLClient, who: &Member, query: &str, vars: Value) -> Value {
    client
        .with_token(&who.token)
        .data(query, vars)
        .await
        .unwrap_or_else(|e| panic!("{query}: {e:#}"))
}

/// Every file under `dir`, read whole (SQLite databases with their `-wal` files, the search
/// index's segments, keys, records).
fn all_files(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().map_while(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                out.push((path, bytes));
            }
        }
    }
    out
}

fn holding(files: &[(std::path::PathBuf, Vec<u8>)], needle: &str) -> Vec<String> {
    let needle = needle.as_bytes();
    files
        .iter()
        .filter(|(_, bytes)| bytes.windows(needle.len()).any(|w| w == needle))
        .map(|(path, _)| path.display().to_string())
        .collect()
}

fn index_holds(dir: &Path, word: &str) -> bool {
    switchyard_content::SearchIndex::files_hold_word(dir, word).unwrap()
}

/// Strings only the erased member's data contains.
const HANDLE: &str = "quillonvx";
const NAME: &str = "Quillon Marchbanks";
const HEADLINE: &str = "Zephyrine lighthouse cartographer";
const POST_PUBLIC: &str = "Xanthous gribble migration season notes";
const POST_CONNECTIONS: &str = "Vorpal quincunx garden plans for friends";
const COMMENT: &str = "Brabblement about the harbour cranes";
const MESSAGE: &str = "Skedaddle to the jollification at nine";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_deletion_no_service_holds_the_member_and_erasure_says_so() {
    let stack = start_stack(|_| {}).await;
    let client = &stack.client;
    let quillon = sign_up(client, HANDLE, NAME).await;
    let obi = sign_up(client, "obiwanda", "Obi Wanda").await;
    let ruth = sign_up(client, "ruthless", "Ruth Less").await;

    // Quillon does everything a member does.
    connect(client, &quillon, &obi).await;
    call(
        client,
        &quillon,
        "mutation($h: String!) { updateProfile(headline: $h) { id } }",
        json!({ "h": HEADLINE }),
    )
    .await;
    let public = create_post(client, &quillon, POST_PUBLIC, "PUBLIC").await;
    let private = create_post(client, &quillon, POST_CONNECTIONS, "CONNECTIONS").await;
    let obis = create_post(client, &obi, "Obi on tidal energy", "PUBLIC").await;
    for (who, post) in [(&quillon, &obis), (&obi, &public), (&ruth, &public)] {
        call(
            client,
            who,
            "mutation($p: ID!) { react(postId: $p, kind: LIKE) { id } }",
            json!({ "p": post }),
        )
        .await;
    }
    call(
        client,
        &quillon,
        "mutation($p: ID!, $b: String!) { comment(postId: $p, body: $b) { id } }",
        json!({ "p": obis, "b": COMMENT }),
    )
    .await;
    call(
        client,
        &obi,
        "mutation($p: ID!) { comment(postId: $p, body: \"Nice notes\") { id } }",
        json!({ "p": public }),
    )
    .await;
    let conversation = call(
        client,
        &quillon,
        "mutation($w: [ID!]!) { startConversation(with: $w) { id } }",
        json!({ "w": [obi.id, ruth.id] }),
    )
    .await["startConversation"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (who, body) in [(&quillon, MESSAGE), (&obi, "Obi will be there")] {
        call(
            client,
            who,
            "mutation($c: ID!, $b: String!) { sendMessage(conversationId: $c, body: $b) { id } }",
            json!({ "c": conversation, "b": body }),
        )
        .await;
    }
    // Profile views both ways (profile.viewed feeds analytics).
    for (viewer, viewed) in [(&obi, &quillon), (&quillon, &obi), (&ruth, &quillon)] {
        call(
            client,
            viewer,
            "query($id: ID!) { member(id: $id) { handle } }",
            json!({ "id": viewed.id }),
        )
        .await;
    }
    // The data is there and readable before the deletion (the checks below can fail); the
    // search index is fed asynchronously, so wait for it.
    let start = Instant::now();
    loop {
        let before = call(
            client,
            &obi,
            "{ searchPosts(query: \"gribble\") { edges { node { id author { handle } } } } }",
            json!({}),
        )
        .await;
        if before["searchPosts"]["edges"][0]["node"]["author"]["handle"] == HANDLE {
            break;
        }
        assert!(start.elapsed() < ERASURE_BOUND, "never indexed: {before}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Nothing to report for a live account.
    let none = client
        .data(ERASURE, json!({ "id": quillon.id }))
        .await
        .unwrap();
    assert!(none["accountErasure"].is_null(), "{none}");

    let deleted = call(
        client,
        &quillon,
        "mutation($p: String!) { deleteAccount(password: $p) }",
        json!({ "p": PASSWORD }),
    )
    .await;
    assert_eq!(deleted["deleteAccount"], true);
    let erasure = wait_for_erasure(client, &quillon.id).await;
    let services: Vec<(&str, bool)> = erasure["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["service"].as_str().unwrap(),
                s["erased"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        services,
        [
            ("analytics", true),
            ("auth", true),
            ("chat", true),
            ("content", true),
            ("profile", true)
        ],
        "{erasure}"
    );
    assert!(erasure["completedAt"].is_string(), "{erasure}");

    // No query by anyone returns any of Quillon's data.
    let needles = [
        HANDLE,
        NAME,
        HEADLINE,
        POST_PUBLIC,
        POST_CONNECTIONS,
        COMMENT,
        MESSAGE,
        quillon.id.as_str(),
    ];
    let readers: [(&str, Option<&Member>); 3] =
        [("obi", Some(&obi)), ("ruth", Some(&ruth)), ("anyone", None)];
    let queries: Vec<(&str, Value)> = vec![
        (
            "query($id: ID!) { member(id: $id) { id handle displayName headline } }",
            json!({ "id": quillon.id }),
        ),
        (
            "query($h: String!) { memberByHandle(handle: $h) { id } }",
            json!({ "h": HANDLE }),
        ),
        (
            "query($p: ID!) { post(id: $p) { id body } }",
            json!({ "p": public }),
        ),
        (
            "query($p: ID!) { post(id: $p) { id body } }",
            json!({ "p": private }),
        ),
        (
            "query($p: ID!) { post(id: $p) { id body reactions { total }
                comments { edges { node { body author { id handle } } } } } }",
            json!({ "p": obis }),
        ),
        (
            "{ a: searchPosts(query: \"gribble\") { edges { node { id body author { handle } } } }
               b: searchPosts(query: \"quincunx\") { edges { node { id body } } }
               c: searchPosts(query: \"notes\") { edges { node { id body author { id } } } } }",
            json!({}),
        ),
        (
            "{ trendingPosts { id body author { id handle } } }",
            json!({}),
        ),
        (
            "query($id: ID!) { member(id: $id) { connections { edges { node { id handle } } }
                conversations { edges { node { members { id handle }
                  messages { edges { node { body sender { id handle } } } } } } } } }",
            json!({ "id": obi.id }),
        ),
        (
            "query($c: ID!) { conversation(id: $c) { members { id handle }
                messages { edges { node { body sender { id } } } } } }",
            json!({ "c": conversation }),
        ),
    ];
    for (reader, token) in readers {
        let c = match token {
            Some(m) => client.with_token(&m.token),
            None => client.clone(),
        };
        for (query, vars) in &queries {
            let response = c.send(query, vars.clone()).await.unwrap();
            let text = response.body.to_string();
            for needle in needles {
                assert!(
                    !text.contains(needle),
                    "{reader} still reads {needle:?} through {query}: {text}"
                );
            }
        }
    }
    // The other members' own data stays: Obi's message, post and his reaction.
    let obis_view = call(
        client,
        &obi,
        "query($c: ID!) { conversation(id: $c) { messages { edges { node { body } } } } }",
        json!({ "c": conversation }),
    )
    .await;
    assert_eq!(
        obis_view["conversation"]["messages"]["edges"],
        json!([{ "node": { "body": "Obi will be there" } }])
    );

    // No service's files hold Quillon's strings (the scan does see clear text: Obi's post).
    let files = all_files(stack.dir.path());
    assert!(
        !holding(&files, "Obi on tidal energy").is_empty(),
        "the file scan reads the databases"
    );
    for needle in [
        HANDLE,
        NAME,
        HEADLINE,
        POST_PUBLIC,
        POST_CONNECTIONS,
        COMMENT,
        MESSAGE,
        "gribble",
        "quincunx",
        "Brabblement",
        "jollification",
    ] {
        let found = holding(&files, needle);
        assert!(found.is_empty(), "{needle:?} is still in {found:?}");
    }
    // The search index compresses what it stores, so a byte scan proves little there: read its
    // segments' term dictionaries (deleted documents' terms included) instead.
    let index = stack.dir.path().join("content").join("search");
    assert!(
        index_holds(&index, "tidal"),
        "the term check reads the index"
    );
    for word in ["gribble", "xanthous", "quincunx", "vorpal"] {
        assert!(
            !index_holds(&index, word),
            "{word:?} is still in the search index"
        );
    }
    stack.stack.shutdown().await.unwrap();
}

/// Starts `switchyard dev` on `data_dir` with `env`; returns it and its GraphQL URL.
fn start_dev(data_dir: &Path, env: &[(&str, &str)]) -> (Child, String) {
    let (child, lines) = common::start_dev_with(data_dir, env);
    let url = common::line_after(&lines, "GraphiQL:").to_owned();
    (child, url)
}

/// Content's own erasure record for `member_id`: (started, completed).
async fn content_record(data_dir: &Path, member_id: &str) -> Option<(bool, bool)> {
    let path = data_dir.join("content").join("content.db");
    let pool =
        switchyard_subgraph_kit::db::connect(&switchyard_subgraph_kit::db::sqlite_url(&path), 1)
            .await
            .unwrap();
    let row: Option<(i64, Option<i64>)> = sqlx::query_as(
        "SELECT started_at, completed_at FROM switchyard_erasure WHERE member_id = $1",
    )
    .bind(member_id.to_owned())
    .fetch_optional(&pool)
    .await
    .unwrap();
    pool.close().await;
    row.map(|(_, completed)| (true, completed.is_some()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_interrupted_by_a_crash_finishes_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    // Content starts erasures but does not finish them in this run.
    let (mut child, url) = start_dev(
        dir.path(),
        &[(switchyard_subgraph_kit::erasure::HOLD_ENV, "content")],
    );
    let client = GraphQLClient::new(&url);
    let quillon = sign_up(&client, HANDLE, NAME).await;
    create_post(&client, &quillon, POST_PUBLIC, "PUBLIC").await;
    call(
        &client,
        &quillon,
        "mutation($p: String!) { deleteAccount(password: $p) }",
        json!({ "p": PASSWORD }),
    )
    .await;

    // Every other service finishes; content has started (its deletions committed) and stops
    // there.
    let start = Instant::now();
    let held = loop {
        let data = client
            .data(ERASURE, json!({ "id": quillon.id }))
            .await
            .unwrap();
        let erasure = &data["accountErasure"];
        let pending: Vec<&str> = erasure["services"]
            .as_array()
            .map(|s| {
                s.iter()
                    .filter(|s| s["erased"] == false)
                    .map(|s| s["service"].as_str().unwrap())
                    .collect()
            })
            .unwrap_or_default();
        if pending == ["content"] && content_record(dir.path(), &quillon.id).await.is_some() {
            break data;
        }
        assert!(
            start.elapsed() < ERASURE_BOUND,
            "the other services did not finish: {data}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(held["accountErasure"]["complete"], false, "{held}");
    assert_eq!(
        content_record(dir.path(), &quillon.id).await,
        Some((true, false)),
        "content recorded the start and not the end"
    );

    // The crash: SIGKILL, no shutdown of any kind.
    child.kill().unwrap();
    child.wait().unwrap();

    let (mut child, url) = start_dev(dir.path(), &[]);
    let client = GraphQLClient::new(&url);
    let erasure = wait_for_erasure(&client, &quillon.id).await;
    assert_eq!(erasure["complete"], true, "{erasure}");
    assert_eq!(
        content_record(dir.path(), &quillon.id).await,
        Some((true, true))
    );
    let files = all_files(dir.path());
    for needle in [HANDLE, NAME, POST_PUBLIC, "gribble"] {
        let found = holding(&files, needle);
        assert!(found.is_empty(), "{needle:?} is still in {found:?}");
    }
    let index = dir.path().join("content").join("search");
    assert!(
        !index_holds(&index, "gribble"),
        "the post is still in the search index"
    );
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "switchyard dev did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}
