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
///
/// The file is written before the first member signs up (with `complete: false`) and after
/// every member, so a run interrupted at any point leaves the password and the ids behind, and
/// the next run finishes the seed instead of tripping over accounts it cannot log in to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Seeded {
    /// Member id by handle.
    pub members: BTreeMap<String, String>,
    /// The demo members' shared password (generated per data directory, never in the repo).
    pub password: String,
    /// Whether every step finished; files from before this field existed were complete.
    #[serde(default = "complete_by_default")]
    pub complete: bool,
}

fn complete_by_default() -> bool {
    true
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
///
/// A seed interrupted earlier (its record says `complete: false`) is resumed: every step is
/// idempotent, so steps that had finished are recognised and skipped.
pub async fn seed_once(client: &GraphQLClient, data_dir: &Path) -> Result<Seeded> {
    let file = seed_file(data_dir);
    let mut record = match std::fs::read_to_string(&file) {
        Ok(text) => serde_json::from_str::<Seeded>(&text).with_context(|| {
            format!(
                "reading {} (delete the data directory {} to start over)",
                file.display(),
                data_dir.display()
            )
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Seeded {
            members: BTreeMap::new(),
            // A fresh password per data directory: demo credentials are still credentials.
            password: format!("demo-{}", uuid::Uuid::now_v7().simple()),
            complete: false,
        },
        Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
    };
    if record.complete {
        return Ok(record);
    }
    if !record.members.is_empty() {
        tracing::info!("resuming the demo seed an earlier run did not finish");
    }
    // Saved before any account exists: whatever happens next, the password is not lost.
    save(&file, &record)?;
    seed_into(client, &mut record, |record| save(&file, record)).await?;
    record.complete = true;
    save(&file, &record)?;
    Ok(record)
}

/// Creates the demo members, connections, posts, reactions and a conversation.
pub async fn seed(client: &GraphQLClient) -> Result<Seeded> {
    let mut record = Seeded {
        members: BTreeMap::new(),
        password: format!("demo-{}", uuid::Uuid::now_v7().simple()),
        complete: false,
    };
    seed_into(client, &mut record, |_| Ok(())).await?;
    record.complete = true;
    Ok(record)
}

/// Writes the record atomically (a temporary file renamed over the old one), so a kill while
/// writing leaves the previous record, never half of one.
fn save(file: &Path, record: &Seeded) -> Result<()> {
    let tmp = file.with_extension("json.tmp");
    write_private(&tmp, &serde_json::to_vec_pretty(record)?)?;
    std::fs::rename(&tmp, file).with_context(|| format!("replacing {}", file.display()))?;
    Ok(())
}

/// Runs every seeding step that has not happened yet; `progress` is called after each new
/// member with the record so far.
async fn seed_into(
    client: &GraphQLClient,
    record: &mut Seeded,
    mut progress: impl FnMut(&Seeded) -> Result<()>,
) -> Result<()> {
    let mut tokens = BTreeMap::new();
    for (handle, name, _, _) in MEMBERS {
        let (id, token) = sign_up_or_log_in(client, handle, name, &record.password).await?;
        if record.members.get(handle) != Some(&id) {
            record.members.insert(handle.to_owned(), id);
            progress(record)?;
        }
        tokens.insert(handle, token);
    }
    let members = record.members.clone();
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
        // Asking again is harmless (already pending or connected), and so is accepting again.
        connect(client, signed_in(from), signed_in(to))
            .await
            .with_context(|| format!("connecting {from} and {to}"))?;
    }

    let mut posts = BTreeMap::new();
    for (author, body) in POSTS {
        let id = match existing_post(client, signed_in(author), body).await? {
            Some(id) => id,
            None => {
                let data = as_member(author)
                    .data(
                        "mutation($b: String!) { createPost(body: $b) { id } }",
                        json!({ "b": body }),
                    )
                    .await
                    .with_context(|| format!("posting as {author}"))?;
                string_at(&data, &["createPost", "id"])?
            }
        };
        posts.insert(author, id);
    }
    for (who, author, kind) in [
        ("priya", "amit", "LIKE"),
        ("amrita", "amit", "CELEBRATE"),
        ("amit", "priya", "SUPPORT"),
    ] {
        // The same reaction again changes nothing.
        as_member(who)
            .data(
                "mutation($p: ID!, $k: ReactionKind!) { react(postId: $p, kind: $k) { id } }",
                json!({ "p": posts[author], "k": kind }),
            )
            .await
            .with_context(|| format!("{who} reacting"))?;
    }
    const COMMENT: &str = "Can't wait to try it on our services.";
    if !has_comment(client, signed_in("priya"), &posts["amit"], COMMENT).await? {
        as_member("priya")
            .data(
                "mutation($p: ID!, $b: String!) { comment(postId: $p, body: $b) { id } }",
                json!({ "p": posts["amit"], "b": COMMENT }),
            )
            .await
            .context("commenting")?;
    }

    // Starting a 1:1 conversation again returns the existing one.
    let data = as_member("amit")
        .data(
            "mutation($w: [ID!]!) { startConversation(with: $w) { id } }",
            json!({ "w": [members["priya"]] }),
        )
        .await
        .context("starting a conversation")?;
    let conversation = string_at(&data, &["startConversation", "id"])?;
    let sent = sent_messages(client, signed_in("amit"), &conversation).await?;
    for (who, body) in [
        ("amit", "Hi Priya, do you know Amrita? I'd love an intro."),
        ("priya", "Sure, I'll connect you two."),
    ] {
        if sent.contains(&(members[who].clone(), body.to_owned())) {
            continue;
        }
        as_member(who)
            .data(
                "mutation($c: ID!, $b: String!) { sendMessage(conversationId: $c, body: $b) { id } }",
                json!({ "c": conversation, "b": body }),
            )
            .await
            .with_context(|| format!("{who} sending a message"))?;
    }
    Ok(())
}

/// Signs a demo member up, or — when an earlier, interrupted run already did — logs in with
/// the record's password. Returns `(member id, access token)`.
async fn sign_up_or_log_in(
    client: &GraphQLClient,
    handle: &str,
    display_name: &str,
    password: &str,
) -> Result<(String, String)> {
    match sign_up(client, handle, display_name, password).await {
        Ok(signed_up) => Ok(signed_up),
        Err(e) if format!("{e:#}").contains("EMAIL_TAKEN") => {
            let response = client
                .send(
                    "mutation($e: String!, $p: String!) {
                       logIn(email: $e, password: $p) { accessToken account { id } }
                     }",
                    json!({ "e": Seeded::email(handle), "p": password }),
                )
                .await?;
            if response.errors().is_empty() {
                let data = response.data()?;
                return Ok((
                    string_at(&data, &["logIn", "account", "id"])?,
                    string_at(&data, &["logIn", "accessToken"])?,
                ));
            }
            bail!(
                "the demo member {} already exists, but not with the password this data                  directory's seed record holds (seeded by another run whose record is gone);                  delete the data directory to start over, or run with --no-seed",
                Seeded::email(handle)
            )
        }
        Err(e) => Err(e),
    }
}

/// The id of `author`'s post with exactly this body, if an earlier run created it.
async fn existing_post(
    client: &GraphQLClient,
    author: SignedIn<'_>,
    body: &str,
) -> Result<Option<String>> {
    let data = client
        .with_token(author.token)
        .data(
            "query($id: ID!) { member(id: $id) { posts(first: 100) { edges { node { id body } } } } }",
            json!({ "id": author.id }),
        )
        .await
        .context("looking for posts of an earlier run")?;
    Ok(data["member"]["posts"]["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["node"]["body"] == body)
        .and_then(|e| e["node"]["id"].as_str())
        .map(str::to_owned))
}

/// Whether `author` already commented `body` on the post.
async fn has_comment(
    client: &GraphQLClient,
    author: SignedIn<'_>,
    post: &str,
    body: &str,
) -> Result<bool> {
    let data = client
        .with_token(author.token)
        .data(
            "query($id: ID!) { post(id: $id) { comments(first: 100) { edges { node { body author { id } } } } } }",
            json!({ "id": post }),
        )
        .await
        .context("looking for comments of an earlier run")?;
    Ok(data["post"]["comments"]["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|e| e["node"]["body"] == body && e["node"]["author"]["id"] == author.id))
}

/// `(sender id, body)` of the conversation's latest messages, as `member` sees them.
async fn sent_messages(
    client: &GraphQLClient,
    member: SignedIn<'_>,
    conversation: &str,
) -> Result<Vec<(String, String)>> {
    let data = client
        .with_token(member.token)
        .data(
            "query($id: ID!) { conversation(id: $id) { messages(last: 100) { edges { node { body sender { id } } } } } }",
            json!({ "id": conversation }),
        )
        .await
        .context("looking for messages of an earlier run")?;
    Ok(data["conversation"]["messages"]["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            Some((
                e["node"]["sender"]["id"].as_str()?.to_owned(),
                e["node"]["body"].as_str()?.to_owned(),
            ))
        })
        .collect())
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
