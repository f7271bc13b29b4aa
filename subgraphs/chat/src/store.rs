//! The chat store: conversations, their members (with a read position) and messages, in SQLite
//! (embedded) or PostgreSQL through `sqlx::Any`.
//!
//! Messages carry a per-conversation sequence number allocated by bumping
//! `conversations.last_seq` inside the sending transaction, so `(conversation_id, seq)` is a
//! dense, gap-free order and its unique index serves "latest N before X" as one index range
//! scan. A member's `last_read_seq` is a position in that order, which makes unread counts a
//! subtraction rather than a count over messages.
//!
//! Bodies are sealed with the service's [`FieldCipher`] (AAD = message id, so a ciphertext
//! cannot be moved to another row); the key id is stored beside the ciphertext for rotation.
//!
//! What a page of conversations asks per item (the conversation and the caller's membership,
//! its members, unread count, last message, a page of messages) is loaded through the kit's
//! [`Batcher`]: the concurrent lookups of one list share one set-based statement (`IN (…)`;
//! pages per conversation with `ROW_NUMBER() OVER (PARTITION BY …)`).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use futures::FutureExt;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};
use switchyard_subgraph_kit::batch::{grouped, placeholders, Batcher};
use switchyard_subgraph_kit::crypto::{FieldCipher, Sealed};
use switchyard_subgraph_kit::db::Db;
use switchyard_subgraph_kit::events::{outbox, Event, EventError};
use uuid::Uuid;

/// Longest accepted message body, in characters.
pub const MAX_BODY_CHARS: usize = 4000;
/// Most members (including the creator) a conversation may start with.
pub const MAX_MEMBERS: usize = 100;
/// Largest page a client may ask for.
pub const MAX_PAGE: usize = 100;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The conversation does not exist.
    #[error("conversation not found")]
    NotFound,
    /// The caller is not a member of the conversation.
    #[error("you are not a member of this conversation")]
    Forbidden,
    /// The input is not acceptable; the text says why.
    #[error("{0}")]
    Invalid(String),
    /// The database failed.
    #[error("chat database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Sealing or opening a message body failed.
    #[error("message encryption error: {0}")]
    Crypto(String),
    /// The outbox refused the event.
    #[error("outbox error: {0}")]
    Event(#[from] EventError),
    /// A batched load failed; every lookup in the batch shares its error.
    #[error("{0}")]
    Batch(Arc<StoreError>),
}

/// A conversation row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationRow {
    /// Conversation id (UUID v7).
    pub id: String,
    /// When it was started.
    pub created_at: DateTime<Utc>,
    /// Sequence number of the latest message (0 when empty); also the message count.
    pub last_seq: i64,
    /// Latest message time, or creation time when empty (the member's list is sorted by it).
    pub last_activity_at: DateTime<Utc>,
}

/// A stored message, body still sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SealedMessage {
    /// Message id (UUID v7).
    pub id: String,
    /// The conversation it belongs to.
    pub conversation_id: String,
    /// Position in the conversation (1-based, dense).
    pub seq: i64,
    /// Who sent it.
    pub sender_id: String,
    /// When it was sent, in microseconds since the epoch.
    pub sent_at_micros: i64,
    /// Id of the data key that sealed the body.
    pub key_id: String,
    /// The sealed body.
    #[serde(with = "b64")]
    pub body: Vec<u8>,
}

impl SealedMessage {
    /// When it was sent.
    pub fn sent_at(&self) -> DateTime<Utc> {
        micros_to_time(self.sent_at_micros)
    }
}

/// Base64 for the sealed body when a [`SealedMessage`] travels as JSON (fan-out).
mod b64 {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)
    }
}

/// A message with its body opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRow {
    /// Message id.
    pub id: String,
    /// The conversation it belongs to.
    pub conversation_id: String,
    /// Position in the conversation.
    pub seq: i64,
    /// Who sent it.
    pub sender_id: String,
    /// When it was sent.
    pub sent_at: DateTime<Utc>,
    /// The plaintext body.
    pub body: String,
}

/// One page of a conversation's messages, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessagePage {
    /// The messages, oldest first.
    pub messages: Vec<MessageRow>,
    /// Older messages exist before the first one returned.
    pub has_older: bool,
    /// Newer messages exist after the last one returned.
    pub has_newer: bool,
    /// Messages in the conversation.
    pub total: i64,
}

/// One page of a member's conversations, most recently active first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationPage {
    /// The conversations with the member's cursor key for each.
    pub conversations: Vec<ConversationRow>,
    /// More follow the last one.
    pub has_next: bool,
    /// The member's conversation count.
    pub total: i64,
}

/// The `message.sent` event payload (contracts table).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageSent<'a> {
    conversation_id: &'a str,
    message_id: &'a str,
    sender_id: &'a str,
    recipient_ids: Vec<&'a str>,
}

/// The chat store.
#[derive(Clone)]
pub struct Store {
    pool: Db,
    cipher: Arc<FieldCipher>,
    loads: Arc<Loads>,
}

/// Distinct keys per batched statement (each is a bind parameter).
const MAX_BATCH: usize = 500;

/// The batched per-item reads (see the module comment).
struct Loads {
    /// (conversation, member) → the conversation and whether the member belongs to it.
    conversations: Batcher<(String, String), (ConversationRow, bool), StoreError>,
    /// Conversation → member ids in joining order.
    members: Batcher<String, Vec<String>, StoreError>,
    /// (conversation, member) → unread messages; absent when not a member.
    unread: Batcher<(String, String), i64, StoreError>,
    /// Conversation → its newest message.
    last_messages: Batcher<String, SealedMessage, StoreError>,
    /// (conversation, last, before) → up to `last + 1` messages before `before`, newest first.
    message_pages: Batcher<(String, usize, i64), Vec<SealedMessage>, StoreError>,
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
            conversations: batcher(pool, |pool, keys| load_conversations(pool, keys).boxed()),
            members: batcher(pool, |pool, ids| load_members(pool, ids).boxed()),
            unread: batcher(pool, |pool, keys| load_unread(pool, keys).boxed()),
            last_messages: batcher(pool, |pool, ids| load_last_messages(pool, ids).boxed()),
            message_pages: batcher(pool, |pool, keys| load_message_pages(pool, keys).boxed()),
        }
    }
}

fn shared(e: Arc<StoreError>) -> StoreError {
    StoreError::Batch(e)
}

async fn load_conversations(
    pool: Db,
    keys: Vec<(String, String)>,
) -> Result<HashMap<(String, String), (ConversationRow, bool)>, StoreError> {
    let mut out = HashMap::new();
    for (member, ids) in grouped(&keys, |(_, m)| m.clone(), |(c, _)| c.clone()) {
        let sql = format!(
            "SELECT c.id, c.created_at, c.last_seq, c.last_activity_at, m.member_id AS joined
             FROM conversations c LEFT JOIN conversation_members m
               ON m.conversation_id = c.id AND m.member_id = $1
             WHERE c.id IN ({})",
            placeholders(2, ids.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(member.clone());
        for id in ids {
            query = query.bind(id);
        }
        for row in query.fetch_all(&pool).await? {
            let conversation = conversation_from_row(&row)?;
            let is_member = row.try_get::<Option<String>, _>("joined")?.is_some();
            out.insert(
                (conversation.id.clone(), member.clone()),
                (conversation, is_member),
            );
        }
    }
    Ok(out)
}

async fn load_members(
    pool: Db,
    ids: Vec<String>,
) -> Result<HashMap<String, Vec<String>>, StoreError> {
    let sql = format!(
        "SELECT conversation_id, member_id FROM conversation_members
         WHERE conversation_id IN ({}) ORDER BY conversation_id, joined_at, member_id",
        placeholders(1, ids.len())
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in ids {
        query = query.bind(id);
    }
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for row in query.fetch_all(&pool).await? {
        out.entry(row.try_get("conversation_id")?)
            .or_default()
            .push(row.try_get("member_id")?);
    }
    Ok(out)
}

async fn load_unread(
    pool: Db,
    keys: Vec<(String, String)>,
) -> Result<HashMap<(String, String), i64>, StoreError> {
    let mut out = HashMap::new();
    for (member, ids) in grouped(&keys, |(_, m)| m.clone(), |(c, _)| c.clone()) {
        let sql = format!(
            "SELECT m.conversation_id, c.last_seq - m.last_read_seq FROM conversation_members m
             JOIN conversations c ON c.id = m.conversation_id
             WHERE m.member_id = $1 AND m.conversation_id IN ({})",
            placeholders(2, ids.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(member.clone());
        for id in ids {
            query = query.bind(id);
        }
        for row in query.fetch_all(&pool).await? {
            let unread: i64 = row.try_get(1)?;
            out.insert((row.try_get(0)?, member.clone()), unread.max(0));
        }
    }
    Ok(out)
}

async fn load_last_messages(
    pool: Db,
    ids: Vec<String>,
) -> Result<HashMap<String, SealedMessage>, StoreError> {
    let sql = format!(
        "SELECT m.id, m.conversation_id, m.seq, m.sender_id, m.body_key_id, m.body, m.sent_at
         FROM conversations c JOIN messages m ON m.conversation_id = c.id AND m.seq = c.last_seq
         WHERE c.id IN ({})",
        placeholders(1, ids.len())
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in ids {
        query = query.bind(id);
    }
    let mut out = HashMap::new();
    for row in query.fetch_all(&pool).await? {
        let message = sealed_from_row(&row)?;
        out.insert(message.conversation_id.clone(), message);
    }
    Ok(out)
}

async fn load_message_pages(
    pool: Db,
    keys: Vec<(String, usize, i64)>,
) -> Result<HashMap<(String, usize, i64), Vec<SealedMessage>>, StoreError> {
    let mut out = HashMap::new();
    for ((last, before), ids) in grouped(&keys, |(_, l, b)| (*l, *b), |(c, _, _)| c.clone()) {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM (
                SELECT {MESSAGE_COLUMNS}, ROW_NUMBER() OVER (
                    PARTITION BY conversation_id ORDER BY seq DESC) AS place
                FROM messages WHERE conversation_id IN ({}) AND seq < $1
             ) ranked WHERE place <= $2 ORDER BY conversation_id, seq DESC",
            placeholders(3, ids.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(before)
            .bind(i64::try_from(last + 1).unwrap_or(i64::MAX));
        for id in &ids {
            query = query.bind(id.clone());
        }
        let mut by_conversation: HashMap<String, Vec<SealedMessage>> = HashMap::new();
        for row in query.fetch_all(&pool).await? {
            let message = sealed_from_row(&row)?;
            by_conversation
                .entry(message.conversation_id.clone())
                .or_default()
                .push(message);
        }
        for id in ids {
            let page = by_conversation.remove(&id).unwrap_or_default();
            out.insert((id, last, before), page);
        }
    }
    Ok(out)
}

fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

fn micros_to_time(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

fn schema(postgres: bool) -> [String; 6] {
    let blob = if postgres { "BYTEA" } else { "BLOB" };
    [
        "CREATE TABLE IF NOT EXISTS conversations (
            id TEXT PRIMARY KEY,
            direct_key TEXT,
            created_at BIGINT NOT NULL,
            last_seq BIGINT NOT NULL DEFAULT 0,
            last_activity_at BIGINT NOT NULL
        )"
        .to_owned(),
        // One 1:1 conversation per pair of members; NULL (group conversations) never collides.
        "CREATE UNIQUE INDEX IF NOT EXISTS conversations_direct_key ON conversations (direct_key)"
            .to_owned(),
        "CREATE TABLE IF NOT EXISTS conversation_members (
            conversation_id TEXT NOT NULL,
            member_id TEXT NOT NULL,
            last_read_seq BIGINT NOT NULL DEFAULT 0,
            joined_at BIGINT NOT NULL,
            PRIMARY KEY (conversation_id, member_id)
        )"
        .to_owned(),
        "CREATE INDEX IF NOT EXISTS conversation_members_by_member
            ON conversation_members (member_id, conversation_id)"
            .to_owned(),
        format!(
            "CREATE TABLE IF NOT EXISTS messages (
                id TEXT PRIMARY KEY,
                conversation_id TEXT NOT NULL,
                seq BIGINT NOT NULL,
                sender_id TEXT NOT NULL,
                body_key_id TEXT NOT NULL,
                body {blob} NOT NULL,
                sent_at BIGINT NOT NULL
            )"
        ),
        // "Latest N before X" is a backwards range scan of this index.
        "CREATE UNIQUE INDEX IF NOT EXISTS messages_by_conversation
            ON messages (conversation_id, seq)"
            .to_owned(),
    ]
}

fn conversation_from_row(row: &AnyRow) -> Result<ConversationRow, sqlx::Error> {
    Ok(ConversationRow {
        id: row.try_get("id")?,
        created_at: micros_to_time(row.try_get("created_at")?),
        last_seq: row.try_get("last_seq")?,
        last_activity_at: micros_to_time(row.try_get("last_activity_at")?),
    })
}

fn sealed_from_row(row: &AnyRow) -> Result<SealedMessage, sqlx::Error> {
    Ok(SealedMessage {
        id: row.try_get("id")?,
        conversation_id: row.try_get("conversation_id")?,
        seq: row.try_get("seq")?,
        sender_id: row.try_get("sender_id")?,
        sent_at_micros: row.try_get("sent_at")?,
        key_id: row.try_get("body_key_id")?,
        body: row.try_get("body")?,
    })
}

/// Parses a member or conversation id: ids are UUIDs, anything else is a client error.
pub fn parse_id(what: &str, id: &str) -> Result<String, StoreError> {
    Uuid::parse_str(id)
        .map(|u| u.to_string())
        .map_err(|_| StoreError::Invalid(format!("{what} `{id}` is not a valid id")))
}

const MESSAGE_COLUMNS: &str = "id, conversation_id, seq, sender_id, body_key_id, body, sent_at";

impl Store {
    /// Opens the store on `pool` and creates its tables (and the outbox's) if missing.
    pub async fn open(pool: AnyPool, cipher: FieldCipher) -> Result<Store, StoreError> {
        outbox::migrate(&pool).await?;
        let postgres = pool.acquire().await?.backend_name() == "PostgreSQL";
        for statement in schema(postgres) {
            sqlx::query(sqlx::AssertSqlSafe(statement))
                .execute(&pool)
                .await?;
        }
        let pool = Db::new(pool);
        Ok(Store {
            loads: Arc::new(Loads::new(&pool)),
            pool,
            cipher: Arc::new(cipher),
        })
    }

    /// The connection pool (for readiness checks and the outbox relay).
    pub fn pool(&self) -> &AnyPool {
        self.pool.pool()
    }

    /// How many statements the store has run outside transactions — every read (see [`Db`]).
    pub fn statements(&self) -> u64 {
        self.pool.statements()
    }

    /// Starts a conversation between `caller` and `others`. A 1:1 conversation with someone the
    /// caller already has one with returns the existing one.
    pub async fn start_conversation(
        &self,
        caller: &str,
        others: &[String],
    ) -> Result<ConversationRow, StoreError> {
        let caller = parse_id("member", caller)?;
        let mut members = vec![caller.clone()];
        for other in others {
            let other = parse_id("member", other)?;
            if !members.contains(&other) {
                members.push(other);
            }
        }
        if members.len() < 2 {
            return Err(StoreError::Invalid(
                "a conversation needs at least one member besides you".to_owned(),
            ));
        }
        if members.len() > MAX_MEMBERS {
            return Err(StoreError::Invalid(format!(
                "a conversation can have at most {MAX_MEMBERS} members"
            )));
        }
        let direct_key = (members.len() == 2).then(|| {
            let (a, b) = (&members[0], &members[1]);
            if a < b {
                format!("{a}|{b}")
            } else {
                format!("{b}|{a}")
            }
        });
        if let Some(key) = &direct_key {
            if let Some(existing) = self.direct_conversation(key).await? {
                return Ok(existing);
            }
        }
        let id = Uuid::now_v7().to_string();
        let now = now_micros();
        let mut tx = switchyard_subgraph_kit::db::begin(&self.pool).await?;
        // A concurrent start of the same 1:1 conversation may win the race: then this insert
        // does nothing and the winner's conversation is returned.
        let inserted = sqlx::query(
            "INSERT INTO conversations (id, direct_key, created_at, last_seq, last_activity_at)
             VALUES ($1, $2, $3, 0, $3) ON CONFLICT (direct_key) DO NOTHING",
        )
        .bind(id.clone())
        .bind(direct_key.clone())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            tx.rollback().await?;
            let key = direct_key.unwrap_or_default();
            return self
                .direct_conversation(&key)
                .await?
                .ok_or(StoreError::NotFound);
        }
        for member in &members {
            sqlx::query(
                "INSERT INTO conversation_members (conversation_id, member_id, last_read_seq, joined_at)
                 VALUES ($1, $2, 0, $3)",
            )
            .bind(id.clone())
            .bind(member.clone())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(ConversationRow {
            id,
            created_at: micros_to_time(now),
            last_seq: 0,
            last_activity_at: micros_to_time(now),
        })
    }

    async fn direct_conversation(&self, key: &str) -> Result<Option<ConversationRow>, StoreError> {
        let row = sqlx::query(
            "SELECT id, created_at, last_seq, last_activity_at FROM conversations
             WHERE direct_key = $1",
        )
        .bind(key.to_owned())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(conversation_from_row).transpose()?)
    }

    /// The conversation, if it exists (no access check).
    pub async fn conversation(&self, id: &str) -> Result<Option<ConversationRow>, StoreError> {
        let Ok(id) = parse_id("conversation", id) else {
            return Ok(None);
        };
        let row = sqlx::query(
            "SELECT id, created_at, last_seq, last_activity_at FROM conversations WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(conversation_from_row).transpose()?)
    }

    /// The conversation, for one of its members: `NotFound` or `Forbidden` otherwise.
    /// Concurrent calls (the representations of one `_entities` request) share one statement.
    pub async fn conversation_for(
        &self,
        id: &str,
        member: &str,
    ) -> Result<ConversationRow, StoreError> {
        let key = (parse_id("conversation", id)?, member.to_owned());
        match self
            .loads
            .conversations
            .load_one(key)
            .await
            .map_err(shared)?
        {
            None => Err(StoreError::NotFound),
            Some((conversation, true)) => Ok(conversation),
            Some((_, false)) => Err(StoreError::Forbidden),
        }
    }

    /// Whether `member` belongs to the conversation.
    pub async fn is_member(&self, conversation: &str, member: &str) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT 1 FROM conversation_members WHERE conversation_id = $1 AND member_id = $2",
        )
        .bind(conversation.to_owned())
        .bind(member.to_owned())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// The conversation's member ids, in the order they joined (then by id). Concurrent calls
    /// share one statement.
    pub async fn members(&self, conversation: &str) -> Result<Vec<String>, StoreError> {
        Ok(self
            .loads
            .members
            .load_one(conversation.to_owned())
            .await
            .map_err(shared)?
            .unwrap_or_default())
    }

    /// Stores a message from `sender` (who must be a member) and enqueues `message.sent` in the
    /// same transaction. Sending also marks the conversation read for the sender.
    pub async fn send_message(
        &self,
        conversation: &str,
        sender: &str,
        body: &str,
    ) -> Result<SealedMessage, StoreError> {
        let conversation = parse_id("conversation", conversation)?;
        let trimmed = body.trim();
        if trimmed.is_empty() {
            return Err(StoreError::Invalid(
                "a message body cannot be empty".to_owned(),
            ));
        }
        if body.chars().count() > MAX_BODY_CHARS {
            return Err(StoreError::Invalid(format!(
                "a message body can have at most {MAX_BODY_CHARS} characters"
            )));
        }
        // Checked before the transaction so its first statement is a write (SQLite refuses
        // read→write upgrades under contention instead of waiting). Members only leave when
        // their account is deleted, so the race this opens is a deleted account's last send.
        let members = self.members(&conversation).await?;
        if members.is_empty() {
            return Err(StoreError::NotFound);
        }
        if !members.iter().any(|m| m == sender) {
            return Err(StoreError::Forbidden);
        }
        let id = Uuid::now_v7().to_string();
        let sealed = self
            .cipher
            .encrypt(body.as_bytes(), id.as_bytes())
            .map_err(|e| StoreError::Crypto(e.to_string()))?;
        let now = now_micros();
        let mut tx = switchyard_subgraph_kit::db::begin(&self.pool).await?;
        let seq: i64 = sqlx::query(
            "UPDATE conversations SET last_seq = last_seq + 1, last_activity_at = $2
             WHERE id = $1 RETURNING last_seq",
        )
        .bind(conversation.clone())
        .bind(now)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        sqlx::query(
            "INSERT INTO messages (id, conversation_id, seq, sender_id, body_key_id, body, sent_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id.clone())
        .bind(conversation.clone())
        .bind(seq)
        .bind(sender.to_owned())
        .bind(sealed.key_id.clone())
        .bind(sealed.bytes.clone())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE conversation_members SET last_read_seq = $3
             WHERE conversation_id = $1 AND member_id = $2",
        )
        .bind(conversation.clone())
        .bind(sender.to_owned())
        .bind(seq)
        .execute(&mut *tx)
        .await?;
        let event = Event::new(
            "message.sent",
            conversation.clone(),
            MessageSent {
                conversation_id: &conversation,
                message_id: &id,
                sender_id: sender,
                recipient_ids: members
                    .iter()
                    .filter(|m| *m != sender)
                    .map(String::as_str)
                    .collect(),
            },
        )?;
        outbox::enqueue(&mut *tx, &event).await?;
        tx.commit().await?;
        Ok(SealedMessage {
            id,
            conversation_id: conversation,
            seq,
            sender_id: sender.to_owned(),
            sent_at_micros: now,
            key_id: sealed.key_id,
            body: sealed.bytes,
        })
    }

    /// Opens a sealed message's body.
    pub fn open_message(&self, message: &SealedMessage) -> Result<MessageRow, StoreError> {
        let sealed = Sealed {
            key_id: message.key_id.clone(),
            bytes: message.body.clone(),
        };
        let plain = self
            .cipher
            .decrypt(&sealed, message.id.as_bytes())
            .map_err(|e| StoreError::Crypto(e.to_string()))?;
        let body = String::from_utf8(plain)
            .map_err(|_| StoreError::Crypto("message body is not UTF-8".to_owned()))?;
        Ok(MessageRow {
            id: message.id.clone(),
            conversation_id: message.conversation_id.clone(),
            seq: message.seq,
            sender_id: message.sender_id.clone(),
            sent_at: message.sent_at(),
            body,
        })
    }

    /// The latest `last` messages before position `before` (exclusive; `None` = the newest),
    /// returned oldest first.
    pub async fn messages(
        &self,
        conversation: &ConversationRow,
        last: usize,
        before: Option<i64>,
    ) -> Result<MessagePage, StoreError> {
        let last = last.min(MAX_PAGE);
        let before = before.unwrap_or(i64::MAX);
        let rows = self
            .loads
            .message_pages
            .load_one((conversation.id.clone(), last, before))
            .await
            .map_err(shared)?
            .unwrap_or_default();
        let has_older = rows.len() > last;
        let mut messages = rows
            .iter()
            .take(last)
            .map(|sealed| self.open_message(sealed))
            .collect::<Result<Vec<_>, _>>()?;
        messages.reverse();
        // Sequence numbers are dense, so anything at or past `before` that exists is newer.
        let has_newer = before <= conversation.last_seq;
        Ok(MessagePage {
            messages,
            has_older,
            has_newer,
            total: conversation.last_seq,
        })
    }

    /// The newest message, if any. Concurrent calls share one statement.
    pub async fn last_message(
        &self,
        conversation: &ConversationRow,
    ) -> Result<Option<MessageRow>, StoreError> {
        self.loads
            .last_messages
            .load_one(conversation.id.clone())
            .await
            .map_err(shared)?
            .map(|sealed| self.open_message(&sealed))
            .transpose()
    }

    /// Messages in the conversation that `member` has not read. Concurrent calls share one
    /// statement per member.
    pub async fn unread_count(
        &self,
        conversation: &ConversationRow,
        member: &str,
    ) -> Result<i64, StoreError> {
        self.loads
            .unread
            .load_one((conversation.id.clone(), member.to_owned()))
            .await
            .map_err(shared)?
            .ok_or(StoreError::Forbidden)
    }

    /// Marks everything in the conversation read for `member`.
    pub async fn mark_read(
        &self,
        conversation: &str,
        member: &str,
    ) -> Result<ConversationRow, StoreError> {
        let conversation = self.conversation_for(conversation, member).await?;
        // Read the position in the statement itself: a message committed after the row above
        // was read is covered too, and a concurrent older mark never moves it backwards.
        sqlx::query(
            "UPDATE conversation_members SET last_read_seq =
                (SELECT last_seq FROM conversations WHERE id = $1)
             WHERE conversation_id = $1 AND member_id = $2",
        )
        .bind(conversation.id.clone())
        .bind(member.to_owned())
        .execute(&self.pool)
        .await?;
        Ok(self
            .conversation(&conversation.id)
            .await?
            .unwrap_or(conversation))
    }

    /// How many of `member`'s conversations have unread messages.
    pub async fn unread_conversations(&self, member: &str) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) FROM conversation_members m
             JOIN conversations c ON c.id = m.conversation_id
             WHERE m.member_id = $1 AND c.last_seq > m.last_read_seq",
        )
        .bind(member.to_owned())
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get(0)?)
    }

    /// `member`'s conversations, most recently active first, after the cursor key
    /// `(last_activity_micros, id)` of the previous page's last one.
    pub async fn conversations_of(
        &self,
        member: &str,
        first: usize,
        after: Option<(i64, String)>,
    ) -> Result<ConversationPage, StoreError> {
        let first = first.min(MAX_PAGE);
        let (after_time, after_id) = after.unwrap_or((i64::MAX, String::new()));
        let unbounded = after_id.is_empty();
        let rows = sqlx::query(
            "SELECT c.id, c.created_at, c.last_seq, c.last_activity_at
             FROM conversation_members m JOIN conversations c ON c.id = m.conversation_id
             WHERE m.member_id = $1
               AND ($2 OR c.last_activity_at < $3 OR (c.last_activity_at = $3 AND c.id < $4))
             ORDER BY c.last_activity_at DESC, c.id DESC LIMIT $5",
        )
        .bind(member.to_owned())
        .bind(unbounded)
        .bind(after_time)
        .bind(after_id)
        .bind(i64::try_from(first + 1).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        let has_next = rows.len() > first;
        let conversations = rows
            .iter()
            .take(first)
            .map(conversation_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let total: i64 =
            sqlx::query("SELECT COUNT(*) FROM conversation_members WHERE member_id = $1")
                .bind(member.to_owned())
                .fetch_one(&self.pool)
                .await?
                .try_get(0)?;
        Ok(ConversationPage {
            conversations,
            has_next,
            total,
        })
    }
}
