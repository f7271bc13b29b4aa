//! The content store: posts, comments, reactions, the search index queue and the local copy of
//! who is connected to whom, in SQLite (embedded) or PostgreSQL through `sqlx::Any`.
//!
//! Every change that the search index must see writes a row into `content_index_queue` in the
//! same transaction as the change (and its outbox event). The indexer drains that queue, so the
//! database and the index cannot disagree after a crash: a change either committed together with
//! its queue row (and will be indexed) or not at all.
//!
//! Reactions: one reaction per member per post. Reacting again with another kind replaces the
//! earlier one (and emits `reaction.added` again); reacting with the same kind changes nothing.
//!
//! Reads that a list repeats per item (a post by id, a post's reactions or comments, an author's
//! page of posts and its count, whether two members are connected) go through the kit's
//! [`Batcher`]: the concurrent lookups of one `_entities` request or one page become one
//! set-based statement (`IN (…)`, pages per key with `ROW_NUMBER() OVER (PARTITION BY …)`,
//! which SQLite ≥ 3.25 and PostgreSQL both run), so a page of 20 costs a constant number of
//! round trips instead of 20 × each field's.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use futures::FutureExt;
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, Row};
use switchyard_subgraph_kit::batch::{grouped, placeholders, Batcher};
use switchyard_subgraph_kit::db::Db;
use switchyard_subgraph_kit::events::outbox;
use switchyard_subgraph_kit::{db, Event, EventError, OutboxRelay};
use tokio::sync::Notify;
use uuid::Uuid;

/// Longest post or comment body, in characters.
pub const MAX_BODY_CHARS: usize = 10_000;

/// Who may read a post.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, async_graphql::Enum)]
pub enum Visibility {
    /// Everyone, signed in or not; the only posts anonymous search returns.
    Public,
    /// The author and the members connected to the author.
    Connections,
}

impl Visibility {
    /// The stored (and indexed) spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Connections => "connections",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(value: &str) -> Option<Visibility> {
        match value {
            "public" => Some(Visibility::Public),
            "connections" => Some(Visibility::Connections),
            _ => None,
        }
    }
}

/// The kinds of reaction a member can leave on a post.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, async_graphql::Enum)]
pub enum ReactionKind {
    /// Like.
    Like,
    /// Celebrate.
    Celebrate,
    /// Support.
    Support,
    /// Insightful.
    Insightful,
    /// Funny.
    Funny,
}

impl ReactionKind {
    /// Every kind, in display order.
    pub const ALL: [ReactionKind; 5] = [
        ReactionKind::Like,
        ReactionKind::Celebrate,
        ReactionKind::Support,
        ReactionKind::Insightful,
        ReactionKind::Funny,
    ];

    /// The stored spelling (also the `kind` in `reaction.added` payloads).
    pub fn as_str(self) -> &'static str {
        match self {
            ReactionKind::Like => "LIKE",
            ReactionKind::Celebrate => "CELEBRATE",
            ReactionKind::Support => "SUPPORT",
            ReactionKind::Insightful => "INSIGHTFUL",
            ReactionKind::Funny => "FUNNY",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(value: &str) -> Option<ReactionKind> {
        ReactionKind::ALL.into_iter().find(|k| k.as_str() == value)
    }
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The post (or other record) does not exist, or the caller may not see it.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The caller is known but not allowed to do this.
    #[error("{0}")]
    Forbidden(&'static str),
    /// The input is invalid.
    #[error("{0}")]
    BadInput(String),
    /// The database failed.
    #[error("content database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The outbox failed.
    #[error("content outbox error: {0}")]
    Event(#[from] EventError),
    /// A stored value is not what this code writes.
    #[error("corrupt content row: {0}")]
    Corrupt(String),
    /// A batched load failed; every lookup in the batch shares its error.
    #[error("{0}")]
    Batch(Arc<StoreError>),
}

/// A post as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostRecord {
    /// UUID v7.
    pub id: String,
    /// The author's member id.
    pub author_id: String,
    /// The text.
    pub body: String,
    /// Who may read it.
    pub visibility: Visibility,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When its body last changed, if ever.
    pub edited_at: Option<DateTime<Utc>>,
}

/// A comment as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommentRecord {
    /// UUID v7.
    pub id: String,
    /// The post commented on.
    pub post_id: String,
    /// The commenter's member id.
    pub author_id: String,
    /// The text.
    pub body: String,
    /// When it was written.
    pub created_at: DateTime<Utc>,
}

/// A keyset position in a list ordered by (created_at, id).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ListPosition {
    /// Microseconds since the epoch.
    pub created_at: i64,
    /// Tie-breaker.
    pub id: String,
}

impl ListPosition {
    /// The position of a post.
    pub fn of_post(post: &PostRecord) -> Self {
        ListPosition {
            created_at: post.created_at.timestamp_micros(),
            id: post.id.clone(),
        }
    }

    /// The position of a comment.
    pub fn of_comment(comment: &CommentRecord) -> Self {
        ListPosition {
            created_at: comment.created_at.timestamp_micros(),
            id: comment.id.clone(),
        }
    }

    /// The cursor key (`micros|id`), before the kit's opaque encoding.
    pub fn key(&self) -> String {
        format!("{}|{}", self.created_at, self.id)
    }

    /// Parses a cursor key.
    pub fn parse(key: &str) -> Option<Self> {
        let (micros, id) = key.split_once('|')?;
        Some(ListPosition {
            created_at: micros.parse().ok()?,
            id: id.to_owned(),
        })
    }
}

/// One pending change for the search index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexQueueEntry {
    /// Queue position (increasing in insertion order).
    pub seq: i64,
    /// The post whose index document must be brought up to date.
    pub post_id: String,
}

/// Who gets told after a commit: the outbox relay (events) and the indexer (queue rows).
#[derive(Default)]
struct CommitHooks {
    relay: OnceLock<OutboxRelay>,
    indexer: Notify,
}

/// The content database.
#[derive(Clone)]
pub struct Store {
    pool: Db,
    postgres: bool,
    hooks: Arc<CommitHooks>,
    loads: Arc<Loads>,
}

/// Distinct keys per batched statement (each is a bind parameter, at most twice).
const MAX_BATCH: usize = 500;

/// A page of a per-key list: which key, how many, after where.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PageKey {
    /// The author (posts) or the post (comments).
    owner: String,
    /// Posts: whether connections-only posts are included. Comments: always false.
    include_connections: bool,
    first: usize,
    after: Option<ListPosition>,
}

/// Up to `first` items and whether more follow.
type Page<T> = (Vec<T>, bool);
/// A post's reaction counts per kind and the viewer's own reaction.
pub type Reactions = (Vec<(ReactionKind, i64)>, Option<ReactionKind>);

/// The batched per-item reads (see the module comment).
struct Loads {
    posts: Batcher<String, PostRecord, StoreError>,
    /// (post, viewer) → the post, when the viewer may read it.
    visible_posts: Batcher<(String, Option<String>), PostRecord, StoreError>,
    /// (viewer, other) pairs that are connected.
    connected: Batcher<(String, String), (), StoreError>,
    /// (post, viewer) → reactions.
    reactions: Batcher<(String, Option<String>), Reactions, StoreError>,
    author_pages: Batcher<PageKey, Page<PostRecord>, StoreError>,
    /// Author → (public posts, all posts).
    author_counts: Batcher<String, (i64, i64), StoreError>,
    comment_pages: Batcher<PageKey, Page<CommentRecord>, StoreError>,
    comment_counts: Batcher<String, i64, StoreError>,
}

type Load<K, V> = fn(Db, Vec<K>) -> BoxFuture<'static, Result<HashMap<K, V>, StoreError>>;

impl Loads {
    fn new(pool: &Db) -> Loads {
        fn batcher<K, V>(pool: &Db, load: Load<K, V>) -> Batcher<K, V, StoreError>
        where
            K: Clone + Eq + std::hash::Hash + Send + Sync + 'static,
            V: Clone + Send + Sync + 'static,
        {
            let pool = pool.clone();
            Batcher::new(MAX_BATCH, move |keys| load(pool.clone(), keys))
        }
        Loads {
            posts: batcher(pool, |pool, ids| load_posts(pool, ids).boxed()),
            visible_posts: batcher(pool, |pool, keys| load_visible_posts(pool, keys).boxed()),
            connected: batcher(pool, |pool, pairs| load_connected(pool, pairs).boxed()),
            reactions: batcher(pool, |pool, keys| load_reactions(pool, keys).boxed()),
            author_pages: batcher(pool, |pool, keys| load_author_pages(pool, keys).boxed()),
            author_counts: batcher(pool, |pool, ids| load_author_counts(pool, ids).boxed()),
            comment_pages: batcher(pool, |pool, keys| load_comment_pages(pool, keys).boxed()),
            comment_counts: batcher(pool, |pool, ids| load_comment_counts(pool, ids).boxed()),
        }
    }
}

fn shared(e: Arc<StoreError>) -> StoreError {
    StoreError::Batch(e)
}

async fn load_posts(pool: Db, ids: Vec<String>) -> Result<HashMap<String, PostRecord>, StoreError> {
    Ok(posts_by_ids(&pool, &ids)
        .await?
        .into_iter()
        .map(|p| (p.id.clone(), p))
        .collect())
}

async fn posts_by_ids(pool: &Db, ids: &[String]) -> Result<Vec<PostRecord>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT {POST_COLUMNS} FROM content_posts WHERE id IN ({})",
        placeholders(1, ids.len())
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in ids {
        query = query.bind(id.clone());
    }
    let rows = query.fetch_all(pool).await?;
    rows.iter().map(post_from_row).collect()
}

async fn load_visible_posts(
    pool: Db,
    keys: Vec<(String, Option<String>)>,
) -> Result<HashMap<(String, Option<String>), PostRecord>, StoreError> {
    let mut out = HashMap::new();
    for (viewer, ids) in grouped(&keys, |(_, v)| v.clone(), |(p, _)| p.clone()) {
        // The reader's connection to each author comes with the post, so public and
        // connections-only posts cost the same single statement and stay in step.
        let (connected, join, first_id) = match viewer {
            Some(_) => (
                "c.member_id",
                " LEFT JOIN content_connections c ON c.member_id = $1 AND c.other_id = p.author_id",
                2,
            ),
            None => ("NULL", "", 1),
        };
        let sql = format!(
            "SELECT p.id, p.author_id, p.body, p.visibility, p.created_at, p.edited_at,
                    {connected} AS connected
             FROM content_posts p{join} WHERE p.id IN ({})",
            placeholders(first_id, ids.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(viewer) = &viewer {
            query = query.bind(viewer.clone());
        }
        for id in ids {
            query = query.bind(id);
        }
        for row in query.fetch_all(&pool).await? {
            let post = post_from_row(&row)?;
            let connected = row.try_get::<Option<String>, _>("connected")?.is_some();
            if may_read(&post, viewer.as_deref(), connected) {
                out.insert((post.id.clone(), viewer.clone()), post);
            }
        }
    }
    Ok(out)
}

/// Whether `viewer` may read `post`, given whether the viewer is connected to its author.
fn may_read(post: &PostRecord, viewer: Option<&str>, connected: bool) -> bool {
    match (post.visibility, viewer) {
        (Visibility::Public, _) => true,
        (Visibility::Connections, None) => false,
        (Visibility::Connections, Some(viewer)) => viewer == post.author_id || connected,
    }
}

async fn load_connected(
    pool: Db,
    pairs: Vec<(String, String)>,
) -> Result<HashMap<(String, String), ()>, StoreError> {
    let mut out = HashMap::new();
    for (viewer, mut others) in grouped(&pairs, |(v, _)| v.clone(), |(_, o)| o.clone()) {
        // Everyone sees their own connections-only posts; asking goes through the batch anyway
        // so the author's own lookup stays in step with the others'.
        if let Some(me) = others.iter().position(|o| *o == viewer) {
            out.insert((viewer.clone(), others.remove(me)), ());
        }
        if others.is_empty() {
            continue;
        }
        let sql = format!(
            "SELECT other_id FROM content_connections WHERE member_id = $1 AND other_id IN ({})",
            placeholders(2, others.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(viewer.clone());
        for other in others {
            query = query.bind(other);
        }
        for row in query.fetch_all(&pool).await? {
            out.insert((viewer.clone(), row.try_get::<String, _>(0)?), ());
        }
    }
    Ok(out)
}

async fn load_reactions(
    pool: Db,
    keys: Vec<(String, Option<String>)>,
) -> Result<HashMap<(String, Option<String>), Reactions>, StoreError> {
    let mut out: HashMap<(String, Option<String>), Reactions> = keys
        .iter()
        .map(|key| (key.clone(), Reactions::default()))
        .collect();
    for (viewer, posts) in grouped(&keys, |(_, v)| v.clone(), |(p, _)| p.clone()) {
        // Whether the viewer's reaction is of this kind rides along with the counts, so a
        // signed-in reader costs no second statement.
        let (own, first_post) = match viewer {
            Some(_) => (
                "CAST(MAX(CASE WHEN member_id = $1 THEN 1 ELSE 0 END) AS BIGINT)",
                2,
            ),
            None => ("CAST(0 AS BIGINT)", 1),
        };
        let sql = format!(
            "SELECT post_id, kind, COUNT(*) AS n, {own} AS own FROM content_reactions
             WHERE post_id IN ({}) GROUP BY post_id, kind",
            placeholders(first_post, posts.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(viewer) = &viewer {
            query = query.bind(viewer.clone());
        }
        for post in &posts {
            query = query.bind(post.clone());
        }
        for row in query.fetch_all(&pool).await? {
            let post: String = row.try_get("post_id")?;
            let kind: String = row.try_get("kind")?;
            let kind = ReactionKind::parse(&kind)
                .ok_or_else(|| StoreError::Corrupt(format!("reaction kind {kind:?}")))?;
            if let Some((counts, own)) = out.get_mut(&(post, viewer.clone())) {
                counts.push((kind, row.try_get::<i64, _>("n")?));
                if row.try_get::<i64, _>("own")? == 1 {
                    *own = Some(kind);
                }
            }
        }
    }
    for (counts, _) in out.values_mut() {
        counts.sort();
    }
    Ok(out)
}

async fn load_author_pages(
    pool: Db,
    keys: Vec<PageKey>,
) -> Result<HashMap<PageKey, Page<PostRecord>>, StoreError> {
    let mut out = HashMap::new();
    let groups = grouped(
        &keys,
        |k| (k.include_connections, k.first, k.after.clone()),
        |k| k.owner.clone(),
    );
    for ((include_connections, first, after), authors) in groups {
        let visibility = if include_connections {
            ""
        } else {
            " AND visibility = 'public'"
        };
        let (micros, id) = after
            .as_ref()
            .map_or((i64::MAX, String::new()), |p| (p.created_at, p.id.clone()));
        // With no cursor, (MAX, "") is after every row, so one statement serves both cases.
        let keyset = if after.is_some() {
            " AND (created_at < $1 OR (created_at = $1 AND id < $2))"
        } else {
            " AND (created_at < $1 OR (created_at = $1 AND id > $2))"
        };
        let sql = format!(
            "SELECT {POST_COLUMNS} FROM (
                SELECT {POST_COLUMNS}, ROW_NUMBER() OVER (
                    PARTITION BY author_id ORDER BY created_at DESC, id DESC) AS place
                FROM content_posts
                WHERE author_id IN ({}){visibility}{keyset}
             ) ranked WHERE place <= $3 ORDER BY author_id, created_at DESC, id DESC",
            placeholders(4, authors.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(micros)
            .bind(id)
            .bind(i64::try_from(first + 1).unwrap_or(i64::MAX));
        for author in &authors {
            query = query.bind(author.clone());
        }
        let mut by_author: HashMap<String, Vec<PostRecord>> = HashMap::new();
        for row in query.fetch_all(&pool).await? {
            let post = post_from_row(&row)?;
            by_author
                .entry(post.author_id.clone())
                .or_default()
                .push(post);
        }
        for owner in authors {
            let mut posts = by_author.remove(&owner).unwrap_or_default();
            let more = posts.len() > first;
            posts.truncate(first);
            let key = PageKey {
                owner,
                include_connections,
                first,
                after: after.clone(),
            };
            out.insert(key, (posts, more));
        }
    }
    Ok(out)
}

async fn load_author_counts(
    pool: Db,
    authors: Vec<String>,
) -> Result<HashMap<String, (i64, i64)>, StoreError> {
    let sql = format!(
        "SELECT author_id,
                CAST(SUM(CASE WHEN visibility = 'public' THEN 1 ELSE 0 END) AS BIGINT),
                COUNT(*)
         FROM content_posts WHERE author_id IN ({}) GROUP BY author_id",
        placeholders(1, authors.len())
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for author in &authors {
        query = query.bind(author.clone());
    }
    let mut out = HashMap::new();
    for row in query.fetch_all(&pool).await? {
        out.insert(row.try_get(0)?, (row.try_get(1)?, row.try_get(2)?));
    }
    Ok(out)
}

async fn load_comment_pages(
    pool: Db,
    keys: Vec<PageKey>,
) -> Result<HashMap<PageKey, Page<CommentRecord>>, StoreError> {
    let mut out = HashMap::new();
    for ((first, after), posts) in
        grouped(&keys, |k| (k.first, k.after.clone()), |k| k.owner.clone())
    {
        let (micros, id) = after
            .as_ref()
            .map_or((i64::MIN, String::new()), |p| (p.created_at, p.id.clone()));
        let sql = format!(
            "SELECT id, post_id, author_id, body, created_at FROM (
                SELECT id, post_id, author_id, body, created_at, ROW_NUMBER() OVER (
                    PARTITION BY post_id ORDER BY created_at, id) AS place
                FROM content_comments
                WHERE post_id IN ({}) AND (created_at > $1 OR (created_at = $1 AND id > $2))
             ) ranked WHERE place <= $3 ORDER BY post_id, created_at, id",
            placeholders(4, posts.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(micros)
            .bind(id)
            .bind(i64::try_from(first + 1).unwrap_or(i64::MAX));
        for post in &posts {
            query = query.bind(post.clone());
        }
        let mut by_post: HashMap<String, Vec<CommentRecord>> = HashMap::new();
        for row in query.fetch_all(&pool).await? {
            let comment = comment_from_row(&row)?;
            by_post
                .entry(comment.post_id.clone())
                .or_default()
                .push(comment);
        }
        for owner in posts {
            let mut comments = by_post.remove(&owner).unwrap_or_default();
            let more = comments.len() > first;
            comments.truncate(first);
            let key = PageKey {
                owner,
                include_connections: false,
                first,
                after: after.clone(),
            };
            out.insert(key, (comments, more));
        }
    }
    Ok(out)
}

async fn load_comment_counts(
    pool: Db,
    posts: Vec<String>,
) -> Result<HashMap<String, i64>, StoreError> {
    let sql = format!(
        "SELECT post_id, COUNT(*) FROM content_comments WHERE post_id IN ({}) GROUP BY post_id",
        placeholders(1, posts.len())
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for post in &posts {
        query = query.bind(post.clone());
    }
    let mut out = HashMap::new();
    for row in query.fetch_all(&pool).await? {
        out.insert(row.try_get(0)?, row.try_get(1)?);
    }
    Ok(out)
}

const COMMON_SCHEMA: [&str; 9] = [
    "CREATE TABLE IF NOT EXISTS content_posts (
        id TEXT PRIMARY KEY,
        author_id TEXT NOT NULL,
        body TEXT NOT NULL,
        visibility TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        edited_at BIGINT
    )",
    "CREATE INDEX IF NOT EXISTS content_posts_by_author
        ON content_posts (author_id, created_at, id)",
    "CREATE TABLE IF NOT EXISTS content_comments (
        id TEXT PRIMARY KEY,
        post_id TEXT NOT NULL,
        author_id TEXT NOT NULL,
        body TEXT NOT NULL,
        created_at BIGINT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS content_comments_by_post
        ON content_comments (post_id, created_at, id)",
    "CREATE TABLE IF NOT EXISTS content_reactions (
        post_id TEXT NOT NULL,
        member_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        PRIMARY KEY (post_id, member_id)
    )",
    // Fed by `connection.accepted`; both directions are stored so lookups need one index.
    "CREATE TABLE IF NOT EXISTS content_connections (
        member_id TEXT NOT NULL,
        other_id TEXT NOT NULL,
        PRIMARY KEY (member_id, other_id)
    )",
    // When each viewer last produced a `post.viewed` for each post (the once-per-hour limit).
    "CREATE TABLE IF NOT EXISTS content_post_views (
        post_id TEXT NOT NULL,
        viewer_id TEXT NOT NULL,
        viewed_at BIGINT NOT NULL,
        PRIMARY KEY (post_id, viewer_id)
    )",
    "CREATE INDEX IF NOT EXISTS content_reactions_by_post ON content_reactions (post_id, kind)",
    // When each pair's connection last changed (event time, µs; member_a < member_b), so a
    // `connection.accepted` redelivered after a later `connection.removed` cannot restore it.
    "CREATE TABLE IF NOT EXISTS content_connection_changes (
        member_a TEXT NOT NULL,
        member_b TEXT NOT NULL,
        changed_at BIGINT NOT NULL,
        PRIMARY KEY (member_a, member_b)
    )",
];

const SQLITE_QUEUE: &str = "CREATE TABLE IF NOT EXISTS content_index_queue (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    post_id TEXT NOT NULL
)";
const POSTGRES_QUEUE: &str = "CREATE TABLE IF NOT EXISTS content_index_queue (
    seq BIGSERIAL PRIMARY KEY,
    post_id TEXT NOT NULL
)";

/// A post view produces at most one `post.viewed` per viewer per post per this many microseconds.
const VIEW_EVENT_INTERVAL_MICROS: i64 = 3_600_000_000;

fn micros_to_time(micros: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| StoreError::Corrupt(format!("timestamp {micros} out of range")))
}

fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

fn post_from_row(row: &AnyRow) -> Result<PostRecord, StoreError> {
    let visibility: String = row.try_get("visibility")?;
    let edited_at: Option<i64> = row.try_get("edited_at")?;
    Ok(PostRecord {
        id: row.try_get("id")?,
        author_id: row.try_get("author_id")?,
        body: row.try_get("body")?,
        visibility: Visibility::parse(&visibility)
            .ok_or_else(|| StoreError::Corrupt(format!("visibility {visibility:?}")))?,
        created_at: micros_to_time(row.try_get("created_at")?)?,
        edited_at: edited_at.map(micros_to_time).transpose()?,
    })
}

fn comment_from_row(row: &AnyRow) -> Result<CommentRecord, StoreError> {
    Ok(CommentRecord {
        id: row.try_get("id")?,
        post_id: row.try_get("post_id")?,
        author_id: row.try_get("author_id")?,
        body: row.try_get("body")?,
        created_at: micros_to_time(row.try_get("created_at")?)?,
    })
}

const POST_COLUMNS: &str = "id, author_id, body, visibility, created_at, edited_at";

/// Checks a post or comment body: 1..=10 000 characters, not only whitespace.
pub fn validate_body(body: &str) -> Result<(), StoreError> {
    if body.trim().is_empty() {
        return Err(StoreError::BadInput("body must not be empty".into()));
    }
    let chars = body.chars().count();
    if chars > MAX_BODY_CHARS {
        return Err(StoreError::BadInput(format!(
            "body is {chars} characters; the limit is {MAX_BODY_CHARS}"
        )));
    }
    Ok(())
}

async fn enqueue_index(conn: &mut AnyConnection, post_id: &str) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO content_index_queue (post_id) VALUES ($1)")
        .bind(post_id.to_owned())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

impl Store {
    /// Connects to `url` (`sqlite://…` or `postgres://…`) and creates the tables if missing.
    pub async fn open(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        let pool = Db::new(db::connect(url, max_connections).await?);
        let store = Store {
            loads: Arc::new(Loads::new(&pool)),
            pool,
            postgres: !url.starts_with("sqlite:"),
            hooks: Arc::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        outbox::migrate(&self.pool).await?;
        for statement in COMMON_SCHEMA {
            sqlx::query(statement).execute(&self.pool).await?;
        }
        let queue = if self.postgres {
            POSTGRES_QUEUE
        } else {
            SQLITE_QUEUE
        };
        sqlx::query(queue).execute(&self.pool).await?;
        Ok(())
    }

    /// The connection pool (for the outbox relay, consumers and readiness).
    pub fn pool(&self) -> &AnyPool {
        self.pool.pool()
    }

    /// How many statements the store has run outside transactions — every read (see [`Db`]).
    pub fn statements(&self) -> u64 {
        self.pool.statements()
    }

    /// Wakes this relay after every commit that enqueued events.
    pub fn set_relay(&self, relay: OutboxRelay) {
        let _ = self.hooks.relay.set(relay);
    }

    /// Notified after every commit that wrote index queue rows.
    pub fn index_notifier(&self) -> &Notify {
        &self.hooks.indexer
    }

    fn committed(&self, indexed: bool) {
        if let Some(relay) = self.hooks.relay.get() {
            relay.wake();
        }
        if indexed {
            self.hooks.indexer.notify_one();
        }
    }

    /// Creates a post; `post.created` and the index queue row commit with it.
    pub async fn create_post(
        &self,
        author_id: &str,
        body: &str,
        visibility: Visibility,
    ) -> Result<PostRecord, StoreError> {
        validate_body(body)?;
        let now = now_micros();
        let post = PostRecord {
            id: Uuid::now_v7().to_string(),
            author_id: author_id.to_owned(),
            body: body.to_owned(),
            visibility,
            created_at: micros_to_time(now)?,
            edited_at: None,
        };
        let mut tx = switchyard_subgraph_kit::db::begin(&self.pool).await?;
        sqlx::query(
            "INSERT INTO content_posts (id, author_id, body, visibility, created_at, edited_at)
             VALUES ($1, $2, $3, $4, $5, NULL)",
        )
        .bind(post.id.clone())
        .bind(post.author_id.clone())
        .bind(post.body.clone())
        .bind(visibility.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        enqueue_index(&mut tx, &post.id).await?;
        let event = Event::new(
            "post.created",
            post.id.clone(),
            json!({"postId": post.id, "authorId": post.author_id, "visibility": visibility.as_str()}),
        )?;
        outbox::enqueue(&mut *tx, &event).await?;
        tx.commit().await?;
        self.committed(true);
        Ok(post)
    }

    /// Replaces a post's body (author only). The index queue row commits with it; no event is
    /// published (the contracts define none for edits).
    pub async fn edit_post(
        &self,
        post_id: &str,
        caller_id: &str,
        body: &str,
    ) -> Result<PostRecord, StoreError> {
        validate_body(body)?;
        let mut tx = switchyard_subgraph_kit::db::begin(&self.pool).await?;
        let now = now_micros();
        // The update names the author, so a concurrent author change cannot slip between a
        // check and the write; zero rows then tells "missing" from "not yours" below.
        let updated = sqlx::query(
            "UPDATE content_posts SET body = $1, edited_at = $2 WHERE id = $3 AND author_id = $4",
        )
        .bind(body.to_owned())
        .bind(now)
        .bind(post_id.to_owned())
        .bind(caller_id.to_owned())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            let exists = sqlx::query("SELECT 1 FROM content_posts WHERE id = $1")
                .bind(post_id.to_owned())
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            return Err(if exists {
                StoreError::Forbidden("only the author can edit a post")
            } else {
                StoreError::NotFound("post")
            });
        }
        enqueue_index(&mut tx, post_id).await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {POST_COLUMNS} FROM content_posts WHERE id = $1"
        )))
        .bind(post_id.to_owned())
        .fetch_one(&mut *tx)
        .await?;
        let post = post_from_row(&row)?;
        tx.commit().await?;
        self.committed(true);
        Ok(post)
    }

    /// Deletes a post with its comments and reactions (author only); `post.deleted` and the
    /// index queue row commit with it.
    pub async fn delete_post(&self, post_id: &str, caller_id: &str) -> Result<(), StoreError> {
        let mut tx = switchyard_subgraph_kit::db::begin(&self.pool).await?;
        let author: Option<String> =
            sqlx::query("SELECT author_id FROM content_posts WHERE id = $1")
                .bind(post_id.to_owned())
                .fetch_optional(&mut *tx)
                .await?
                .map(|row| row.try_get(0))
                .transpose()?;
        match author {
            None => return Err(StoreError::NotFound("post")),
            Some(author) if author != caller_id => {
                return Err(StoreError::Forbidden("only the author can delete a post"))
            }
            Some(_) => {}
        }
        delete_post_rows(&mut tx, post_id, caller_id).await?;
        tx.commit().await?;
        self.committed(true);
        Ok(())
    }

    /// One post by id, whoever may see it. Concurrent calls share one statement.
    pub async fn post(&self, post_id: &str) -> Result<Option<PostRecord>, StoreError> {
        self.loads
            .posts
            .load_one(post_id.to_owned())
            .await
            .map_err(shared)
    }

    /// The posts with these ids that exist (any order).
    pub async fn posts_by_ids(&self, ids: &[String]) -> Result<Vec<PostRecord>, StoreError> {
        posts_by_ids(&self.pool, ids).await
    }

    /// An author's posts, newest first, after `after`; `include_connections` adds the
    /// connections-only ones. Returns up to `first` posts and whether more follow. Concurrent
    /// calls (one page of members) share one statement.
    pub async fn posts_by_author(
        &self,
        author_id: &str,
        include_connections: bool,
        first: usize,
        after: Option<&ListPosition>,
    ) -> Result<(Vec<PostRecord>, bool), StoreError> {
        let key = PageKey {
            owner: author_id.to_owned(),
            include_connections,
            first,
            after: after.cloned(),
        };
        Ok(self
            .loads
            .author_pages
            .load_one(key)
            .await
            .map_err(shared)?
            .unwrap_or_default())
    }

    /// How many posts of an author a reader sees (see [`Store::posts_by_author`]). Concurrent
    /// calls share one statement.
    pub async fn count_posts_by_author(
        &self,
        author_id: &str,
        include_connections: bool,
    ) -> Result<i64, StoreError> {
        let (public, all) = self
            .loads
            .author_counts
            .load_one(author_id.to_owned())
            .await
            .map_err(shared)?
            .unwrap_or_default();
        Ok(if include_connections { all } else { public })
    }

    /// Every post, in id order, `limit` at a time after `after_id` (for rebuilding the index).
    pub async fn posts_page(
        &self,
        after_id: &str,
        limit: usize,
    ) -> Result<Vec<PostRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {POST_COLUMNS} FROM content_posts WHERE id > $1 ORDER BY id LIMIT $2"
        )))
        .bind(after_id.to_owned())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(post_from_row).collect()
    }

    /// How many posts exist.
    pub async fn count_posts(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query("SELECT COUNT(*) FROM content_posts")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?)
    }

    /// Whether `viewer` may read `post`: public posts for everyone; connections-only posts for
    /// the author and the author's connections.
    pub async fn can_see(
        &self,
        post: &PostRecord,
        viewer: Option<&str>,
    ) -> Result<bool, StoreError> {
        let connected = match (post.visibility, viewer) {
            (Visibility::Connections, Some(viewer)) if viewer != post.author_id => {
                self.are_connected(viewer, &post.author_id).await?
            }
            _ => false,
        };
        Ok(may_read(post, viewer, connected))
    }

    /// The post if `viewer` may read it (see [`Store::can_see`]); `None` when it does not exist
    /// or is hidden from the viewer. Concurrent calls share one statement per viewer.
    pub async fn readable_post(
        &self,
        post_id: &str,
        viewer: Option<&str>,
    ) -> Result<Option<PostRecord>, StoreError> {
        self.loads
            .visible_posts
            .load_one((post_id.to_owned(), viewer.map(str::to_owned)))
            .await
            .map_err(shared)
    }

    /// Whether `viewer` sees `author`'s connections-only posts: the author and the author's
    /// connections do. Concurrent calls share one statement per viewer.
    pub async fn sees_connections_posts(
        &self,
        viewer: &str,
        author: &str,
    ) -> Result<bool, StoreError> {
        self.are_connected(viewer, author).await
    }

    /// Whether `a` and `b` are connected (as far as `connection.accepted` events told us;
    /// a member counts as connected to itself). Concurrent calls share one statement per `a`.
    pub async fn are_connected(&self, a: &str, b: &str) -> Result<bool, StoreError> {
        Ok(self
            .loads
            .connected
            .load_one((a.to_owned(), b.to_owned()))
            .await
            .map_err(shared)?
            .is_some())
    }

    /// The member ids connected to `member_id`.
    pub async fn connections_of(&self, member_id: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT other_id FROM content_connections WHERE member_id = $1")
            .bind(member_id.to_owned())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| row.try_get(0).map_err(StoreError::from))
            .collect()
    }

    /// Adds a comment to a post the commenter can see; `comment.added` commits with it.
    pub async fn add_comment(
        &self,
        post_id: &str,
        member_id: &str,
        body: &str,
    ) -> Result<CommentRecord, StoreError> {
        validate_body(body)?;
        let post = self.visible_post(post_id, member_id).await?;
        let now = now_micros();
        let comment = CommentRecord {
            id: Uuid::now_v7().to_string(),
            post_id: post.id.clone(),
            author_id: member_id.to_owned(),
            body: body.to_owned(),
            created_at: micros_to_time(now)?,
        };
        let mut tx = switchyard_subgraph_kit::db::begin(&self.pool).await?;
        sqlx::query(
            "INSERT INTO content_comments (id, post_id, author_id, body, created_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(comment.id.clone())
        .bind(comment.post_id.clone())
        .bind(comment.author_id.clone())
        .bind(comment.body.clone())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let event = Event::new(
            "comment.added",
            post.id.clone(),
            json!({"postId": post.id, "commentId": comment.id, "authorId": post.author_id, "memberId": member_id}),
        )?;
        outbox::enqueue(&mut *tx, &event).await?;
        // The post may have been deleted since it was read: refuse rather than orphan a comment.
        if !post_exists(&mut tx, post_id).await? {
            return Err(StoreError::NotFound("post"));
        }
        tx.commit().await?;
        self.committed(false);
        Ok(comment)
    }

    async fn visible_post(&self, post_id: &str, viewer: &str) -> Result<PostRecord, StoreError> {
        self.readable_post(post_id, Some(viewer))
            .await?
            .ok_or(StoreError::NotFound("post"))
    }

    /// A post's comments, oldest first, after `after`; up to `first` and whether more follow.
    /// Concurrent calls (the posts of one page) share one statement.
    pub async fn comments(
        &self,
        post_id: &str,
        first: usize,
        after: Option<&ListPosition>,
    ) -> Result<(Vec<CommentRecord>, bool), StoreError> {
        let key = PageKey {
            owner: post_id.to_owned(),
            include_connections: false,
            first,
            after: after.cloned(),
        };
        Ok(self
            .loads
            .comment_pages
            .load_one(key)
            .await
            .map_err(shared)?
            .unwrap_or_default())
    }

    /// How many comments a post has. Concurrent calls share one statement.
    pub async fn count_comments(&self, post_id: &str) -> Result<i64, StoreError> {
        Ok(self
            .loads
            .comment_counts
            .load_one(post_id.to_owned())
            .await
            .map_err(shared)?
            .unwrap_or_default())
    }

    /// Sets `member_id`'s reaction on a post it can see. Emits `reaction.added` when the
    /// reaction is new or changes kind; the same kind again is a no-op.
    pub async fn react(
        &self,
        post_id: &str,
        member_id: &str,
        kind: ReactionKind,
    ) -> Result<PostRecord, StoreError> {
        let post = self.visible_post(post_id, member_id).await?;
        let mut tx = switchyard_subgraph_kit::db::begin(&self.pool).await?;
        let previous: Option<String> =
            sqlx::query("SELECT kind FROM content_reactions WHERE post_id = $1 AND member_id = $2")
                .bind(post_id.to_owned())
                .bind(member_id.to_owned())
                .fetch_optional(&mut *tx)
                .await?
                .map(|row| row.try_get(0))
                .transpose()?;
        if previous.as_deref() == Some(kind.as_str()) {
            tx.rollback().await?;
            return Ok(post);
        }
        sqlx::query(
            "INSERT INTO content_reactions (post_id, member_id, kind, created_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (post_id, member_id) DO UPDATE SET kind = excluded.kind, created_at = excluded.created_at",
        )
        .bind(post_id.to_owned())
        .bind(member_id.to_owned())
        .bind(kind.as_str())
        .bind(now_micros())
        .execute(&mut *tx)
        .await?;
        let event = Event::new(
            "reaction.added",
            post.id.clone(),
            json!({"postId": post.id, "authorId": post.author_id, "memberId": member_id, "kind": kind.as_str()}),
        )?;
        outbox::enqueue(&mut *tx, &event).await?;
        if !post_exists(&mut tx, post_id).await? {
            return Err(StoreError::NotFound("post"));
        }
        tx.commit().await?;
        self.committed(false);
        Ok(post)
    }

    /// Reaction counts per kind (kinds with none left out, in [`ReactionKind::ALL`] order) and
    /// `viewer`'s own reaction. Concurrent calls share one statement per viewer.
    pub async fn reactions(
        &self,
        post_id: &str,
        viewer: Option<&str>,
    ) -> Result<Reactions, StoreError> {
        Ok(self
            .loads
            .reactions
            .load_one((post_id.to_owned(), viewer.map(str::to_owned)))
            .await
            .map_err(shared)?
            .unwrap_or_default())
    }

    /// Records that `viewer` read `post`; emits `post.viewed` unless the author is the viewer or
    /// this viewer produced one for this post within the last hour. Returns whether it emitted.
    pub async fn record_view(&self, post: &PostRecord, viewer: &str) -> Result<bool, StoreError> {
        if viewer == post.author_id {
            return Ok(false);
        }
        let now = now_micros();
        let mut tx = switchyard_subgraph_kit::db::begin(&self.pool).await?;
        // Upsert only when the last view is old enough; zero rows means "throttled". One
        // statement, so two concurrent reads cannot both emit.
        let written = sqlx::query(
            "INSERT INTO content_post_views (post_id, viewer_id, viewed_at) VALUES ($1, $2, $3)
             ON CONFLICT (post_id, viewer_id) DO UPDATE SET viewed_at = excluded.viewed_at
             WHERE content_post_views.viewed_at <= $4",
        )
        .bind(post.id.clone())
        .bind(viewer.to_owned())
        .bind(now)
        .bind(now - VIEW_EVENT_INTERVAL_MICROS)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if written == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        let event = Event::new(
            "post.viewed",
            post.id.clone(),
            json!({"postId": post.id, "authorId": post.author_id, "viewerId": viewer}),
        )?;
        outbox::enqueue(&mut *tx, &event).await?;
        tx.commit().await?;
        self.committed(false);
        Ok(true)
    }

    /// Up to `limit` pending index changes, oldest first.
    pub async fn pending_index_changes(
        &self,
        limit: usize,
    ) -> Result<Vec<IndexQueueEntry>, StoreError> {
        let rows =
            sqlx::query("SELECT seq, post_id FROM content_index_queue ORDER BY seq LIMIT $1")
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|row| {
                Ok(IndexQueueEntry {
                    seq: row.try_get("seq")?,
                    post_id: row.try_get("post_id")?,
                })
            })
            .collect()
    }

    /// Removes applied queue rows by their exact positions. (Not "everything up to the highest":
    /// on PostgreSQL a lower sequence number can commit after a higher one was read.)
    pub async fn ack_index_changes(&self, seqs: &[i64]) -> Result<(), StoreError> {
        for chunk in seqs.chunks(500) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "DELETE FROM content_index_queue WHERE seq IN ({})",
                placeholders.join(", ")
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for seq in chunk {
                query = query.bind(*seq);
            }
            query.execute(&self.pool).await?;
        }
        Ok(())
    }

    /// How many index changes wait to be applied.
    pub async fn index_backlog(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query("SELECT COUNT(*) FROM content_index_queue")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?)
    }
}

async fn post_exists(conn: &mut AnyConnection, post_id: &str) -> Result<bool, StoreError> {
    Ok(sqlx::query("SELECT 1 FROM content_posts WHERE id = $1")
        .bind(post_id.to_owned())
        .fetch_optional(&mut *conn)
        .await?
        .is_some())
}

/// Deletes a post's rows, queues its index removal and enqueues `post.deleted`, on `conn`
/// (an open transaction).
async fn delete_post_rows(
    conn: &mut AnyConnection,
    post_id: &str,
    author_id: &str,
) -> Result<(), StoreError> {
    for sql in [
        "DELETE FROM content_reactions WHERE post_id = $1",
        "DELETE FROM content_comments WHERE post_id = $1",
        "DELETE FROM content_post_views WHERE post_id = $1",
        "DELETE FROM content_posts WHERE id = $1",
    ] {
        sqlx::query(sql)
            .bind(post_id.to_owned())
            .execute(&mut *conn)
            .await?;
    }
    enqueue_index(conn, post_id).await?;
    let event = Event::new(
        "post.deleted",
        post_id.to_owned(),
        json!({"postId": post_id, "authorId": author_id}),
    )?;
    outbox::enqueue(&mut *conn, &event).await?;
    Ok(())
}

/// Records that the pair's connection changed at `at` (µs), unless a change at or after `at`
/// is already recorded; returns whether this change is the newest and should be applied.
async fn newest_change(
    conn: &mut AnyConnection,
    member_id: &str,
    other_id: &str,
    at: i64,
) -> Result<bool, StoreError> {
    let (a, b) = if member_id <= other_id {
        (member_id, other_id)
    } else {
        (other_id, member_id)
    };
    let written = sqlx::query(
        "INSERT INTO content_connection_changes (member_a, member_b, changed_at) VALUES ($1, $2, $3)
         ON CONFLICT (member_a, member_b) DO UPDATE SET changed_at = excluded.changed_at
         WHERE content_connection_changes.changed_at < excluded.changed_at",
    )
    .bind(a.to_owned())
    .bind(b.to_owned())
    .bind(at)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(written > 0)
}

/// Applies `connection.accepted` (which happened at `at`, µs) on `conn` (the consumer's
/// transaction); an older event than the pair's last change is ignored.
pub async fn apply_connection(
    conn: &mut AnyConnection,
    member_id: &str,
    other_id: &str,
    at: i64,
) -> Result<(), StoreError> {
    if !newest_change(conn, member_id, other_id, at).await? {
        return Ok(());
    }
    for (a, b) in [(member_id, other_id), (other_id, member_id)] {
        sqlx::query(
            "INSERT INTO content_connections (member_id, other_id) VALUES ($1, $2)
             ON CONFLICT DO NOTHING",
        )
        .bind(a.to_owned())
        .bind(b.to_owned())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Applies `connection.removed` (at `at`, µs) on `conn`: from now on neither member sees the
/// other's connections-only posts, through any field. An older event is ignored.
pub async fn apply_disconnection(
    conn: &mut AnyConnection,
    member_id: &str,
    other_id: &str,
    at: i64,
) -> Result<(), StoreError> {
    if !newest_change(conn, member_id, other_id, at).await? {
        return Ok(());
    }
    sqlx::query(
        "DELETE FROM content_connections
         WHERE (member_id = $1 AND other_id = $2) OR (member_id = $2 AND other_id = $1)",
    )
    .bind(member_id.to_owned())
    .bind(other_id.to_owned())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Applies `account.deleted` on `conn`: the member's posts go (each with `post.deleted` and an
/// index queue row), and so do their comments, reactions and connections.
pub async fn apply_account_deleted(
    conn: &mut AnyConnection,
    member_id: &str,
) -> Result<(), StoreError> {
    let rows = sqlx::query("SELECT id FROM content_posts WHERE author_id = $1")
        .bind(member_id.to_owned())
        .fetch_all(&mut *conn)
        .await?;
    let ids = rows
        .iter()
        .map(|row| row.try_get::<String, _>(0))
        .collect::<Result<Vec<_>, _>>()?;
    for id in ids {
        delete_post_rows(conn, &id, member_id).await?;
    }
    for sql in [
        "DELETE FROM content_comments WHERE author_id = $1",
        "DELETE FROM content_reactions WHERE member_id = $1",
        "DELETE FROM content_post_views WHERE viewer_id = $1",
        "DELETE FROM content_connections WHERE member_id = $1 OR other_id = $1",
        "DELETE FROM content_connection_changes WHERE member_a = $1 OR member_b = $1",
    ] {
        sqlx::query(sql)
            .bind(member_id.to_owned())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_checked() {
        assert!(validate_body("hi").is_ok());
        assert!(matches!(validate_body(" \n"), Err(StoreError::BadInput(_))));
        assert!(validate_body(&"x".repeat(MAX_BODY_CHARS)).is_ok());
        assert!(matches!(
            validate_body(&"é".repeat(MAX_BODY_CHARS + 1)),
            Err(StoreError::BadInput(_))
        ));
    }

    #[test]
    fn positions_round_trip() {
        let p = ListPosition {
            created_at: 17,
            id: "a|b".into(),
        };
        assert_eq!(ListPosition::parse(&p.key()), Some(p));
        assert_eq!(ListPosition::parse("x|y"), None);
    }
}
