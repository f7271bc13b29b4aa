//! The analytics store: per-day member rollups, per-hour post rollups and the post metadata
//! trending needs, on SQLite (embedded) or PostgreSQL through `sqlx::Any`.
//!
//! Every counter change is an `INSERT … ON CONFLICT … DO UPDATE` (an UPSERT both engines accept)
//! made inside the consumer's transaction, the same one in which the kit records the event id, so
//! a replayed event never counts twice.
//!
//! Buckets come from the event's `occurred_at`, not from when it was processed: a consumer that
//! catches up after an outage still attributes each view or reaction to the day it happened.
//! Posts are bucketed per hour rather than per day because `trendingPosts(hours:)` asks for
//! windows in hours; member stats are asked for in days, so members are bucketed per day.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::FutureExt;
use serde::Deserialize;
use sqlx::{AnyConnection, AnyPool, Row};
use switchyard_subgraph_kit::events::{outbox, BoxError, Event, EventError, EventHandler};

use switchyard_subgraph_kit::batch::{placeholders, Batcher};
use switchyard_subgraph_kit::db::Db;

/// The consumer group analytics reads the bus in.
pub const CONSUMER_GROUP: &str = "analytics";

const SCHEMA: [&str; 4] = [
    "CREATE TABLE IF NOT EXISTS analytics_member_daily (
        member_id TEXT NOT NULL,
        metric TEXT NOT NULL,
        day BIGINT NOT NULL,
        count BIGINT NOT NULL,
        PRIMARY KEY (member_id, metric, day)
    )",
    "CREATE TABLE IF NOT EXISTS analytics_post_hourly (
        post_id TEXT NOT NULL,
        metric TEXT NOT NULL,
        hour BIGINT NOT NULL,
        count BIGINT NOT NULL,
        PRIMARY KEY (post_id, metric, hour)
    )",
    // Trending scans a window of hours across all posts.
    "CREATE INDEX IF NOT EXISTS analytics_post_hourly_by_hour ON analytics_post_hourly (hour)",
    "CREATE TABLE IF NOT EXISTS analytics_posts (
        post_id TEXT PRIMARY KEY,
        author_id TEXT,
        visibility TEXT,
        created_at BIGINT,
        deleted BIGINT NOT NULL DEFAULT 0
    )",
];

/// A per-member counter, bucketed by UTC day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MemberMetric {
    /// Another member viewed this member's profile (`profile.viewed`).
    ProfileViews,
    /// Someone other than the author read one of this member's posts (`post.viewed`).
    PostImpressions,
    /// A reaction was added to one of this member's posts (`reaction.added`).
    ReactionsReceived,
    /// This member gained a connection, as accepter or requester (`connection.accepted`).
    ConnectionsGained,
    /// This member sent a chat message (`message.sent`).
    MessagesSent,
}

impl MemberMetric {
    /// The value stored in the `metric` column.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberMetric::ProfileViews => "profile_views",
            MemberMetric::PostImpressions => "post_impressions",
            MemberMetric::ReactionsReceived => "reactions_received",
            MemberMetric::ConnectionsGained => "connections_gained",
            MemberMetric::MessagesSent => "messages_sent",
        }
    }
}

/// A per-post counter, bucketed by UTC hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PostMetric {
    /// A signed-in non-author read the post (`post.viewed`).
    Impressions,
    /// A reaction was added (`reaction.added`).
    Reactions,
    /// A comment was added (`comment.added`).
    Comments,
}

impl PostMetric {
    /// The value stored in the `metric` column.
    pub fn as_str(self) -> &'static str {
        match self {
            PostMetric::Impressions => "impressions",
            PostMetric::Reactions => "reactions",
            PostMetric::Comments => "comments",
        }
    }
}

/// The UTC day number (days since 1970-01-01) of `at`.
pub fn day_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(86_400)
}

/// The UTC hour number (hours since 1970-01-01T00:00Z) of `at`.
pub fn hour_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(3_600)
}

/// All-time counters of one post.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PostTotals {
    /// Reads by signed-in non-authors.
    pub impressions: i64,
    /// Reactions added.
    pub reactions: i64,
    /// Comments added.
    pub comments: i64,
}

/// One ranked entry of [`Store::trending`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrendingPost {
    /// The post.
    pub post_id: String,
    /// Ten times the score (`10·reactions + 20·comments + impressions`), kept integral so
    /// ranking is exact on both engines.
    pub score_tenths: i64,
}

/// One member's counters over one window of days.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemberCounts {
    /// [`MemberMetric::ProfileViews`].
    pub profile_views: i64,
    /// [`MemberMetric::PostImpressions`].
    pub post_impressions: i64,
    /// [`MemberMetric::ReactionsReceived`].
    pub reactions_received: i64,
    /// [`MemberMetric::ConnectionsGained`].
    pub connections_gained: i64,
    /// [`MemberMetric::MessagesSent`].
    pub messages_sent: i64,
}

impl MemberCounts {
    /// The counter for `metric`.
    pub fn get(&self, metric: MemberMetric) -> i64 {
        match metric {
            MemberMetric::ProfileViews => self.profile_views,
            MemberMetric::PostImpressions => self.post_impressions,
            MemberMetric::ReactionsReceived => self.reactions_received,
            MemberMetric::ConnectionsGained => self.connections_gained,
            MemberMetric::MessagesSent => self.messages_sent,
        }
    }

    fn slot(&mut self, metric: &str) -> Option<&mut i64> {
        Some(match metric {
            "profile_views" => &mut self.profile_views,
            "post_impressions" => &mut self.post_impressions,
            "reactions_received" => &mut self.reactions_received,
            "connections_gained" => &mut self.connections_gained,
            "messages_sent" => &mut self.messages_sent,
            _ => return None,
        })
    }
}

type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;
/// A member and a window in days.
type MemberWindow = (String, u32);

/// Distinct ids per batched SQL query (each is a bind parameter).
const MAX_BATCH: usize = 500;

/// The analytics database (cheap to clone).
#[derive(Clone)]
pub struct Store {
    pool: Db,
    clock: Clock,
    members: Arc<Batcher<MemberWindow, MemberCounts>>,
    posts: Arc<Batcher<String, PostTotals>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

async fn load_member_counts(
    pool: Db,
    today: i64,
    keys: Vec<MemberWindow>,
) -> Result<HashMap<MemberWindow, MemberCounts>, sqlx::Error> {
    let mut by_days: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for (member_id, days) in &keys {
        by_days.entry(*days).or_default().push(member_id.clone());
    }
    let mut out: HashMap<MemberWindow, MemberCounts> = keys
        .into_iter()
        .map(|key| (key, MemberCounts::default()))
        .collect();
    for (days, members) in by_days {
        let since = today - i64::from(days.max(1)) + 1;
        // The SQL text varies only in the number of placeholders, never in input.
        let sql = format!(
            "SELECT member_id, metric, CAST(SUM(count) AS BIGINT) FROM analytics_member_daily
             WHERE day >= $1 AND member_id IN ({}) GROUP BY member_id, metric",
            placeholders(2, members.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(since);
        for member in &members {
            query = query.bind(member.clone());
        }
        for row in query.fetch_all(&pool).await? {
            let member_id: String = row.try_get(0)?;
            let metric: String = row.try_get(1)?;
            let count: i64 = row.try_get(2)?;
            if let Some(slot) = out
                .get_mut(&(member_id, days))
                .and_then(|counts| counts.slot(&metric))
            {
                *slot = count;
            }
        }
    }
    Ok(out)
}

async fn load_post_totals(
    pool: Db,
    posts: Vec<String>,
) -> Result<HashMap<String, PostTotals>, sqlx::Error> {
    let sql = format!(
        "SELECT post_id, metric, CAST(SUM(count) AS BIGINT) FROM analytics_post_hourly
         WHERE post_id IN ({}) GROUP BY post_id, metric",
        placeholders(1, posts.len())
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for post in &posts {
        query = query.bind(post.clone());
    }
    let rows = query.fetch_all(&pool).await?;
    let mut out: HashMap<String, PostTotals> = posts
        .into_iter()
        .map(|post| (post, PostTotals::default()))
        .collect();
    for row in rows {
        let post_id: String = row.try_get(0)?;
        let metric: String = row.try_get(1)?;
        let count: i64 = row.try_get(2)?;
        if let Some(totals) = out.get_mut(&post_id) {
            match metric.as_str() {
                "impressions" => totals.impressions = count,
                "reactions" => totals.reactions = count,
                "comments" => totals.comments = count,
                _ => {}
            }
        }
    }
    Ok(out)
}

impl Store {
    /// Wraps `pool` and creates the analytics and kit (de-duplication) tables if missing.
    pub async fn open(pool: AnyPool) -> Result<Store, EventError> {
        outbox::migrate(&pool).await?;
        for statement in SCHEMA {
            sqlx::query(statement).execute(&pool).await?;
        }
        Ok(Store::assemble(Db::new(pool), Arc::new(Utc::now)))
    }

    fn assemble(pool: Db, clock: Clock) -> Store {
        let (member_pool, member_clock) = (pool.clone(), Arc::clone(&clock));
        let members = Batcher::new(MAX_BATCH, move |keys| {
            load_member_counts(member_pool.clone(), day_of(member_clock()), keys).boxed()
        });
        let post_pool = pool.clone();
        let posts = Batcher::new(MAX_BATCH, move |keys| {
            load_post_totals(post_pool.clone(), keys).boxed()
        });
        Store {
            pool,
            clock,
            members: Arc::new(members),
            posts: Arc::new(posts),
        }
    }

    /// Uses `clock` for "now" when computing query windows (tests pin time with it).
    pub fn with_clock(self, clock: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        Store::assemble(self.pool, Arc::new(clock))
    }

    /// The connection pool.
    pub fn pool(&self) -> &AnyPool {
        self.pool.pool()
    }

    /// How many statements the store's reads have executed (see [`Db`]).
    pub fn statements(&self) -> u64 {
        self.pool.statements()
    }

    /// The current time by this store's clock.
    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    /// `member_id`'s counters over the last `days` UTC days, today included. Concurrent calls
    /// (e.g. the members of one `_entities` request) share one query.
    pub async fn member_counts(
        &self,
        member_id: &str,
        days: u32,
    ) -> Result<MemberCounts, Arc<sqlx::Error>> {
        Ok(self
            .members
            .load_one((member_id.to_owned(), days.max(1)))
            .await?
            .unwrap_or_default())
    }

    /// All-time counters of `post_id` (zeros for a post nobody engaged with). Concurrent calls
    /// share one query.
    pub async fn post_totals(&self, post_id: &str) -> Result<PostTotals, Arc<sqlx::Error>> {
        Ok(self
            .posts
            .load_one(post_id.to_owned())
            .await?
            .unwrap_or_default())
    }

    /// How many batched stats queries ran (member and post), for tests and metrics.
    pub fn stats_batches(&self) -> u64 {
        self.members.batches_loaded() + self.posts.batches_loaded()
    }

    /// The `first` posts with the highest score over the last `hours` UTC hours (the current
    /// hour included): `reactions + 2·comments + 0.1·impressions` counted inside the window.
    ///
    /// Only posts whose `post.created` was seen, that are public (or have no visibility) and
    /// are not deleted take part; ties go to the newer post.
    pub async fn trending(&self, hours: u32, first: u32) -> Result<Vec<TrendingPost>, sqlx::Error> {
        let since = hour_of(self.now()) - i64::from(hours.max(1)) + 1;
        let rows = sqlx::query(
            "SELECT h.post_id,
                    CAST(SUM(CASE h.metric WHEN 'reactions' THEN 10 * h.count
                                           WHEN 'comments' THEN 20 * h.count
                                           ELSE h.count END) AS BIGINT) AS score,
                    MAX(p.created_at) AS newest
             FROM analytics_post_hourly h
             JOIN analytics_posts p ON p.post_id = h.post_id
             WHERE h.hour >= $1 AND p.deleted = 0
               AND (p.visibility IS NULL OR LOWER(p.visibility) = 'public')
             GROUP BY h.post_id
             ORDER BY score DESC, newest DESC, h.post_id DESC
             LIMIT $2",
        )
        .bind(since)
        .bind(i64::from(first))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(TrendingPost {
                    post_id: row.try_get(0)?,
                    score_tenths: row.try_get(1)?,
                })
            })
            .collect()
    }

    /// How many events the analytics consumer group has processed (for tests and operators).
    pub async fn processed_events(&self) -> Result<i64, sqlx::Error> {
        sqlx::query("SELECT COUNT(*) FROM switchyard_processed_events WHERE consumer_group = $1")
            .bind(CONSUMER_GROUP)
            .fetch_one(&self.pool)
            .await?
            .try_get(0)
    }
}

// ---- from events to counter changes ---------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostCreated {
    post_id: String,
    author_id: String,
    visibility: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostDeleted {
    post_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostEngaged {
    post_id: String,
    author_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageSent {
    sender_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConnectionAccepted {
    member_id: String,
    other_member_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccountDeleted {
    member_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProfileViewed {
    member_id: String,
}

/// One change an event makes to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Effect {
    Member(String, MemberMetric),
    Post(String, PostMetric),
    PostCreated {
        post_id: String,
        author_id: String,
        visibility: Option<String>,
    },
    PostDeleted(String),
    /// The member's account is gone: forget their counters and stop their posts trending.
    MemberDeleted(String),
}

/// What `event` changes; empty for event types analytics does not track.
fn effects_of(event: &Event) -> Result<Vec<Effect>, EventError> {
    use Effect::{Member, Post};
    Ok(match event.event_type.as_str() {
        "post.created" => {
            let p: PostCreated = event.payload_as()?;
            vec![Effect::PostCreated {
                post_id: p.post_id,
                author_id: p.author_id,
                visibility: p.visibility,
            }]
        }
        "post.deleted" => vec![Effect::PostDeleted(
            event.payload_as::<PostDeleted>()?.post_id,
        )],
        "post.viewed" => {
            let p: PostEngaged = event.payload_as()?;
            vec![
                Post(p.post_id, PostMetric::Impressions),
                Member(p.author_id, MemberMetric::PostImpressions),
            ]
        }
        "reaction.added" => {
            let p: PostEngaged = event.payload_as()?;
            vec![
                Post(p.post_id, PostMetric::Reactions),
                Member(p.author_id, MemberMetric::ReactionsReceived),
            ]
        }
        "comment.added" => {
            let p: PostEngaged = event.payload_as()?;
            vec![Post(p.post_id, PostMetric::Comments)]
        }
        "message.sent" => vec![Member(
            event.payload_as::<MessageSent>()?.sender_id,
            MemberMetric::MessagesSent,
        )],
        "connection.accepted" => {
            let p: ConnectionAccepted = event.payload_as()?;
            if p.member_id == p.other_member_id {
                Vec::new()
            } else {
                vec![
                    Member(p.member_id, MemberMetric::ConnectionsGained),
                    Member(p.other_member_id, MemberMetric::ConnectionsGained),
                ]
            }
        }
        "profile.viewed" => vec![Member(
            event.payload_as::<ProfileViewed>()?.member_id,
            MemberMetric::ProfileViews,
        )],
        "account.deleted" => vec![Effect::MemberDeleted(
            event.payload_as::<AccountDeleted>()?.member_id,
        )],
        _ => Vec::new(),
    })
}

/// The analytics consumer: turns bus events into rollup UPSERTs (run it through the kit's
/// `EventConsumer` in group [`CONSUMER_GROUP`], which makes it effectively-once).
#[derive(Debug, Clone, Copy, Default)]
pub struct AnalyticsHandler;

impl EventHandler for AnalyticsHandler {
    async fn handle(&self, conn: &mut AnyConnection, event: &Event) -> Result<(), BoxError> {
        let effects = match effects_of(event) {
            Ok(effects) => effects,
            Err(e) => {
                // Redelivering a payload that cannot decode would fail forever and hold up the
                // group; skip it loudly instead (its id is still recorded as processed).
                tracing::error!(id = %event.id, event_type = %event.event_type, error = %e, "skipping malformed event");
                return Ok(());
            }
        };
        let day = day_of(event.occurred_at);
        let hour = hour_of(event.occurred_at);
        let at = event.occurred_at.timestamp_micros();
        for effect in effects {
            match effect {
                Effect::Member(member_id, metric) => {
                    sqlx::query(
                        "INSERT INTO analytics_member_daily (member_id, metric, day, count)
                         VALUES ($1, $2, $3, 1)
                         ON CONFLICT (member_id, metric, day)
                         DO UPDATE SET count = analytics_member_daily.count + 1",
                    )
                    .bind(member_id)
                    .bind(metric.as_str())
                    .bind(day)
                    .execute(&mut *conn)
                    .await?;
                }
                Effect::Post(post_id, metric) => {
                    sqlx::query(
                        "INSERT INTO analytics_post_hourly (post_id, metric, hour, count)
                         VALUES ($1, $2, $3, 1)
                         ON CONFLICT (post_id, metric, hour)
                         DO UPDATE SET count = analytics_post_hourly.count + 1",
                    )
                    .bind(post_id)
                    .bind(metric.as_str())
                    .bind(hour)
                    .execute(&mut *conn)
                    .await?;
                }
                Effect::PostCreated {
                    post_id,
                    author_id,
                    visibility,
                } => {
                    // Leaves `deleted` alone: a redelivered `post.created` may arrive after
                    // the post's `post.deleted`.
                    sqlx::query(
                        "INSERT INTO analytics_posts (post_id, author_id, visibility, created_at, deleted)
                         VALUES ($1, $2, $3, $4, 0)
                         ON CONFLICT (post_id) DO UPDATE SET author_id = excluded.author_id,
                             visibility = excluded.visibility, created_at = excluded.created_at",
                    )
                    .bind(post_id)
                    .bind(author_id)
                    .bind(visibility)
                    .bind(at)
                    .execute(&mut *conn)
                    .await?;
                }
                Effect::MemberDeleted(member_id) => {
                    sqlx::query("DELETE FROM analytics_member_daily WHERE member_id = $1")
                        .bind(member_id.clone())
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("UPDATE analytics_posts SET deleted = 1 WHERE author_id = $1")
                        .bind(member_id)
                        .execute(&mut *conn)
                        .await?;
                }
                Effect::PostDeleted(post_id) => {
                    sqlx::query(
                        "INSERT INTO analytics_posts (post_id, deleted) VALUES ($1, 1)
                         ON CONFLICT (post_id) DO UPDATE SET deleted = 1",
                    )
                    .bind(post_id)
                    .execute(&mut *conn)
                    .await?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(kind: &str, payload: serde_json::Value) -> Event {
        Event::new(kind, "agg", payload).unwrap()
    }

    #[test]
    fn events_map_to_counters() {
        let viewed = event(
            "post.viewed",
            json!({"postId": "p", "authorId": "a", "viewerId": "v"}),
        );
        assert_eq!(
            effects_of(&viewed).unwrap(),
            vec![
                Effect::Post("p".into(), PostMetric::Impressions),
                Effect::Member("a".into(), MemberMetric::PostImpressions),
            ]
        );
        let accepted = event(
            "connection.accepted",
            json!({"memberId": "a", "otherMemberId": "b"}),
        );
        assert_eq!(effects_of(&accepted).unwrap().len(), 2);
        let message = event(
            "message.sent",
            json!({"conversationId": "c", "messageId": "m", "senderId": "s", "recipientIds": ["r"]}),
        );
        assert_eq!(
            effects_of(&message).unwrap(),
            vec![Effect::Member("s".into(), MemberMetric::MessagesSent)]
        );
        assert!(effects_of(&event("account.created", json!({})))
            .unwrap()
            .is_empty());
        assert!(effects_of(&event("post.viewed", json!({"postId": 3}))).is_err());
    }

    #[test]
    fn buckets_are_utc_days_and_hours() {
        let at = DateTime::parse_from_rfc3339("1970-01-02T01:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(day_of(at), 1);
        assert_eq!(hour_of(at), 25);
        let before = DateTime::parse_from_rfc3339("1969-12-31T23:59:59Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(day_of(before), -1);
    }
}
