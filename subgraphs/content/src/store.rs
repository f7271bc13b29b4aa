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

use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, Row};
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
    pool: AnyPool,
    postgres: bool,
    hooks: Arc<CommitHooks>,
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
        let pool = db::connect(url, max_connections).await?;
        let store = Store {
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
        &self.pool
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

    /// One post by id, whoever may see it.
    pub async fn post(&self, post_id: &str) -> Result<Option<PostRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {POST_COLUMNS} FROM content_posts WHERE id = $1"
        )))
        .bind(post_id.to_owned())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(post_from_row).transpose()
    }

    /// The posts with these ids that exist (any order).
    pub async fn posts_by_ids(&self, ids: &[String]) -> Result<Vec<PostRecord>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT {POST_COLUMNS} FROM content_posts WHERE id IN ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in ids {
            query = query.bind(id.clone());
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(post_from_row).collect()
    }

    /// An author's posts, newest first, after `after`; `include_connections` adds the
    /// connections-only ones. Returns up to `first` posts and whether more follow.
    pub async fn posts_by_author(
        &self,
        author_id: &str,
        include_connections: bool,
        first: usize,
        after: Option<&ListPosition>,
    ) -> Result<(Vec<PostRecord>, bool), StoreError> {
        let visibility = if include_connections {
            ""
        } else {
            " AND visibility = 'public'"
        };
        let (micros, id) =
            after.map_or((i64::MAX, String::new()), |p| (p.created_at, p.id.clone()));
        // With no cursor, (MAX, "") is after every row, so one statement serves both cases.
        let keyset = if after.is_some() {
            " AND (created_at < $2 OR (created_at = $2 AND id < $3))"
        } else {
            " AND (created_at < $2 OR (created_at = $2 AND id > $3))"
        };
        let sql = format!(
            "SELECT {POST_COLUMNS} FROM content_posts WHERE author_id = $1{visibility}{keyset}
             ORDER BY created_at DESC, id DESC LIMIT $4"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(author_id.to_owned())
            .bind(micros)
            .bind(id)
            .bind(i64::try_from(first + 1).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?;
        let mut posts = rows
            .iter()
            .map(post_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let more = posts.len() > first;
        posts.truncate(first);
        Ok((posts, more))
    }

    /// How many posts of an author a reader sees (see [`Store::posts_by_author`]).
    pub async fn count_posts_by_author(
        &self,
        author_id: &str,
        include_connections: bool,
    ) -> Result<i64, StoreError> {
        let sql = if include_connections {
            "SELECT COUNT(*) FROM content_posts WHERE author_id = $1"
        } else {
            "SELECT COUNT(*) FROM content_posts WHERE author_id = $1 AND visibility = 'public'"
        };
        Ok(sqlx::query(sql)
            .bind(author_id.to_owned())
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?)
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
        match (post.visibility, viewer) {
            (Visibility::Public, _) => Ok(true),
            (Visibility::Connections, None) => Ok(false),
            (Visibility::Connections, Some(viewer)) => {
                Ok(viewer == post.author_id || self.are_connected(viewer, &post.author_id).await?)
            }
        }
    }

    /// Whether `a` and `b` are connected (as far as `connection.accepted` events told us).
    pub async fn are_connected(&self, a: &str, b: &str) -> Result<bool, StoreError> {
        Ok(
            sqlx::query("SELECT 1 FROM content_connections WHERE member_id = $1 AND other_id = $2")
                .bind(a.to_owned())
                .bind(b.to_owned())
                .fetch_optional(&self.pool)
                .await?
                .is_some(),
        )
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
        match self.post(post_id).await? {
            Some(post) if self.can_see(&post, Some(viewer)).await? => Ok(post),
            _ => Err(StoreError::NotFound("post")),
        }
    }

    /// A post's comments, oldest first, after `after`; up to `first` and whether more follow.
    pub async fn comments(
        &self,
        post_id: &str,
        first: usize,
        after: Option<&ListPosition>,
    ) -> Result<(Vec<CommentRecord>, bool), StoreError> {
        let (micros, id) =
            after.map_or((i64::MIN, String::new()), |p| (p.created_at, p.id.clone()));
        let rows = sqlx::query(
            "SELECT id, post_id, author_id, body, created_at FROM content_comments
             WHERE post_id = $1 AND (created_at > $2 OR (created_at = $2 AND id > $3))
             ORDER BY created_at, id LIMIT $4",
        )
        .bind(post_id.to_owned())
        .bind(micros)
        .bind(id)
        .bind(i64::try_from(first + 1).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        let mut comments = rows
            .iter()
            .map(comment_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let more = comments.len() > first;
        comments.truncate(first);
        Ok((comments, more))
    }

    /// How many comments a post has.
    pub async fn count_comments(&self, post_id: &str) -> Result<i64, StoreError> {
        Ok(
            sqlx::query("SELECT COUNT(*) FROM content_comments WHERE post_id = $1")
                .bind(post_id.to_owned())
                .fetch_one(&self.pool)
                .await?
                .try_get(0)?,
        )
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
    /// `viewer`'s own reaction.
    pub async fn reactions(
        &self,
        post_id: &str,
        viewer: Option<&str>,
    ) -> Result<(Vec<(ReactionKind, i64)>, Option<ReactionKind>), StoreError> {
        let rows = sqlx::query(
            "SELECT kind, COUNT(*) AS n FROM content_reactions WHERE post_id = $1 GROUP BY kind",
        )
        .bind(post_id.to_owned())
        .fetch_all(&self.pool)
        .await?;
        let mut counts = Vec::new();
        for row in &rows {
            let kind: String = row.try_get("kind")?;
            let kind = ReactionKind::parse(&kind)
                .ok_or_else(|| StoreError::Corrupt(format!("reaction kind {kind:?}")))?;
            counts.push((kind, row.try_get::<i64, _>("n")?));
        }
        counts.sort();
        let own = match viewer {
            None => None,
            Some(viewer) => sqlx::query(
                "SELECT kind FROM content_reactions WHERE post_id = $1 AND member_id = $2",
            )
            .bind(post_id.to_owned())
            .bind(viewer.to_owned())
            .fetch_optional(&self.pool)
            .await?
            .map(|row| row.try_get::<String, _>(0))
            .transpose()?
            .and_then(|k| ReactionKind::parse(&k)),
        };
        Ok((counts, own))
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
