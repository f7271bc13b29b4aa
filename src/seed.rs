//! Demo data for a new stack, created through the gateway with the same mutations a frontend
//! would send — so seeding exercises the public API and every service's own rules, and no
//! service's database is written from outside.
//!
//! The graph is laid out so the headline question has an interesting answer: Amit and Amrita are
//! 2nd-degree connections (through Priya), Amit and Kwame 3rd-degree.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::client::GraphQLClient;

/// `(handle, display name, headline, location)` of every demo member.
pub const MEMBERS: [(&str, &str, &str, &str); 8] = [
    ("amit", "Amit Sharma", "Backend engineer", "Pune"),
    ("amrita", "Amrita Rao", "Product designer", "Bengaluru"),
    ("priya", "Priya Nair", "Engineering manager", "Mumbai"),
    ("liwei", "Li Wei", "Data scientist", "Singapore"),
    ("sofia", "Sofia Rossi", "Technical recruiter", "Milan"),
    ("kwame", "Kwame Mensah", "Founder", "Accra"),
    (
        "elena",
        "Elena Petrova",
        "Site reliability engineer",
        "Berlin",
    ),
    ("raj", "Raj Patel", "Student", "London"),
];

/// Accepted connections between demo members (requester first).
pub const CONNECTIONS: [(&str, &str); 9] = [
    ("amit", "priya"),
    ("priya", "amrita"),
    ("amit", "liwei"),
    ("liwei", "sofia"),
    ("sofia", "kwame"),
    ("amrita", "elena"),
    ("elena", "raj"),
    ("priya", "raj"),
    ("liwei", "priya"),
];

const POSTS: [(&str, &str); 3] = [
    (
        "amit",
        "Shipping a federated GraphQL gateway in Rust this week: query planning is the fun part.",
    ),
    (
        "priya",
        "We are hiring engineers who enjoy distributed systems and databases.",
    ),
    (
        "amrita",
        "Designing the degree-of-connection view: how should a second-degree path look?",
    ),
];

/// What seeding left behind, saved as `<data_dir>/seed.json` so a second run reuses it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Seeded {
    /// Member id by handle.
    pub members: BTreeMap<String, String>,
    /// The demo members' shared password (generated per data directory, never in the repo).
    pub password: String,
}

impl Seeded {
    /// The e-mail address of a demo member.
    pub fn email(handle: &str) -> String {
        format!("{handle}@example.com")
    }

    /// The member id of `handle`.
    pub fn id(&self, handle: &str) -> &str {
        &self.members[handle]
    }
}

/// Where the seed record lives.
pub fn seed_file(data_dir: &Path) -> PathBuf {
    data_dir.join("seed.json")
}

/// Seeds the stack behind `client` unless `data_dir` was seeded before; returns the record.
pub async fn seed_once(client: &GraphQLClient, data_dir: &Path) -> Result<Seeded> {
    let file = seed_file(data_dir);
    if let Ok(text) = std::fs::read_to_string(&file) {
        return serde_json::from_str(&text)
            .with_context(|| format!("reading {} (delete it to seed again)", file.display()));
    }
    let seeded = seed(client).await?;
    write_private(&file, &serde_json::to_vec_pretty(&seeded)?)?;
    Ok(seeded)
}

/// Creates the demo members, connections, posts, reactions and a conversation.
pub async fn seed(client: &GraphQLClient) -> Result<Seeded> {
    // A fresh password per data directory: demo credentials are still credentials.
    let password = format!("demo-{}", uuid::Uuid::now_v7().simple());
    let mut members = BTreeMap::new();
    let mut tokens = BTreeMap::new();
    for (handle, name, _, _) in MEMBERS {
        let (id, token) = sign_up(client, handle, name, &password).await?;
        members.insert(handle.to_owned(), id);
        tokens.insert(handle, token);
    }
    let as_member = |handle: &str| client.with_token(tokens[handle].clone());

    // Members reach the profile service through `account.created` events: wait for them.
    for id in members.values() {
        wait_for_member(client, id).await?;
    }
    for (handle, _, headline, location) in MEMBERS {
        as_member(handle)
            .data(
                "mutation($h: String, $l: String) { updateProfile(headline: $h, location: $l) { id } }",
                json!({ "h": headline, "l": location }),
            )
            .await
            .with_context(|| format!("updating {handle}'s profile"))?;
    }
    let signed_in = |handle: &str| SignedIn {
        id: &members[handle],
        token: &tokens[handle],
    };
    for (from, to) in CONNECTIONS {
        connect(client, signed_in(from), signed_in(to))
            .await
            .with_context(|| format!("connecting {from} and {to}"))?;
    }

    let mut posts = BTreeMap::new();
    for (author, body) in POSTS {
        let data = as_member(author)
            .data(
                "mutation($b: String!) { createPost(body: $b) { id } }",
                json!({ "b": body }),
            )
            .await
            .with_context(|| format!("posting as {author}"))?;
        posts.insert(author, string_at(&data, &["createPost", "id"])?);
    }
    for (who, author, kind) in [
        ("priya", "amit", "LIKE"),
        ("amrita", "amit", "CELEBRATE"),
        ("amit", "priya", "SUPPORT"),
    ] {
        as_member(who)
            .data(
                "mutation($p: ID!, $k: ReactionKind!) { react(postId: $p, kind: $k) { id } }",
                json!({ "p": posts[author], "k": kind }),
            )
            .await
            .with_context(|| format!("{who} reacting"))?;
    }
    as_member("priya")
        .data(
            "mutation($p: ID!, $b: String!) { comment(postId: $p, body: $b) { id } }",
            json!({ "p": posts["amit"], "b": "Can't wait to try it on our services." }),
        )
        .await
        .context("commenting")?;

    let data = as_member("amit")
        .data(
            "mutation($w: [ID!]!) { startConversation(with: $w) { id } }",
            json!({ "w": [members["priya"]] }),
        )
        .await
        .context("starting a conversation")?;
    let conversation = string_at(&data, &["startConversation", "id"])?;
    for (who, body) in [
        ("amit", "Hi Priya, do you know Amrita? I'd love an intro."),
        ("priya", "Sure, I'll connect you two."),
    ] {
        as_member(who)
            .data(
                "mutation($c: ID!, $b: String!) { sendMessage(conversationId: $c, body: $b) { id } }",
                json!({ "c": conversation, "b": body }),
            )
            .await
            .with_context(|| format!("{who} sending a message"))?;
    }
    Ok(Seeded { members, password })
}

/// Signs a member up; returns `(member id, access token)`.
pub async fn sign_up(
    client: &GraphQLClient,
    handle: &str,
    display_name: &str,
    password: &str,
) -> Result<(String, String)> {
    let data = client
        .data(
            "mutation($e: String!, $p: String!, $h: String!, $d: String!) {
               signUp(email: $e, password: $p, handle: $h, displayName: $d) {
                 accessToken account { id }
               }
             }",
            json!({ "e": Seeded::email(handle), "p": password, "h": handle, "d": display_name }),
        )
        .await
        .with_context(|| format!("signing up {handle}"))?;
    Ok((
        string_at(&data, &["signUp", "account", "id"])?,
        string_at(&data, &["signUp", "accessToken"])?,
    ))
}

/// A member as the seeder and the tests drive it: id and access token.
#[derive(Debug, Clone, Copy)]
pub struct SignedIn<'a> {
    /// Member id.
    pub id: &'a str,
    /// Access token.
    pub token: &'a str,
}

/// `from` asks `to` to connect and `to` accepts, each signed in as themselves.
pub async fn connect(client: &GraphQLClient, from: SignedIn<'_>, to: SignedIn<'_>) -> Result<()> {
    client
        .with_token(from.token)
        .data(
            "mutation($to: ID!) { requestConnection(to: $to) { __typename } }",
            json!({ "to": to.id }),
        )
        .await
        .with_context(|| format!("{} asking {} to connect", from.id, to.id))?;
    client
        .with_token(to.token)
        .data(
            "mutation($from: ID!) { acceptConnection(from: $from) { id } }",
            json!({ "from": from.id }),
        )
        .await
        .with_context(|| format!("{} accepting {}", to.id, from.id))?;
    Ok(())
}

/// Waits until the profile service knows member `id` (it learns of new accounts by event).
pub async fn wait_for_member(client: &GraphQLClient, id: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let data = client
            .data(
                "query($id: ID!) { member(id: $id) { id } }",
                json!({ "id": id }),
            )
            .await?;
        if !data["member"].is_null() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("member {id} did not reach the profile service within 15 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn string_at(value: &serde_json::Value, path: &[&str]) -> Result<String> {
    let mut at = value;
    for key in path {
        at = &at[*key];
    }
    at.as_str()
        .map(str::to_owned)
        .with_context(|| format!("no string at {} in {value}", path.join(".")))
}

/// Writes a file only its owner can read (it holds the demo password).
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(bytes)?;
    Ok(())
}
