//! The analytics consumer under a burst of 10,000 mixed events on a real bus (in-process and
//! Redis Streams), killed mid-burst, restarted as a new member of the same group, and fed
//! duplicates of events it had already processed: every counter must end exactly equal to the
//! counts computed from the generated events.

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap is the test failing, at that line"
)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;
use sqlx::Row;
use switchyard_analytics::store::{day_of, hour_of};
use switchyard_analytics::{consumer, Store, CONSUMER_GROUP};
use switchyard_subgraph_kit::events::{Event, EventBus};
use tokio_util::sync::CancellationToken;

const TOTAL: usize = 10_000;
/// Published before the consumer starts; the rest follows the crash.
const FIRST_WAVE: usize = 6_000;
/// The consumer is killed once it has processed this many.
const KILL_AT: i64 = 2_500;
/// Already-processed events published again with the same ids.
const REPLAYED: std::ops::Range<usize> = 1_000..2_000;

/// Deterministic pseudo-random numbers (SplitMix64), so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

type MemberKey = (String, String, i64);
type PostKey = (String, String, i64);

/// The generated burst and the rollups it must produce.
struct Burst {
    events: Vec<Event>,
    member_daily: BTreeMap<MemberKey, i64>,
    post_hourly: BTreeMap<PostKey, i64>,
    /// post id → (visibility, deleted)
    posts: BTreeMap<String, (String, i64)>,
}

fn member_id(i: usize) -> String {
    format!("00000000-0000-7000-8000-{i:012}")
}

fn generate(seed: u64) -> Burst {
    const MEMBERS: usize = 40;
    const POSTS: usize = 150;
    let mut rng = Rng(seed);
    let end: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 6, 15, 12, 0, 0).unwrap();
    let mut burst = Burst {
        events: Vec::with_capacity(TOTAL),
        member_daily: BTreeMap::new(),
        post_hourly: BTreeMap::new(),
        posts: BTreeMap::new(),
    };
    let authors: Vec<usize> = (0..POSTS).map(|_| rng.below(MEMBERS)).collect();
    let post_id = |p: usize| format!("post-{p:04}");
    let emit = |burst: &mut Burst, kind: &str, aggregate: String, at, payload| {
        let mut event = Event::new(kind, aggregate, payload).unwrap();
        event.occurred_at = at;
        burst.events.push(event);
    };
    // Any moment in the 40 days before `end`, to the second.
    let when = |rng: &mut Rng| end - chrono::Duration::seconds((rng.next() % (40 * 86_400)) as i64);
    let bump_member = |burst: &mut Burst, m: usize, metric: &str, at| {
        *burst
            .member_daily
            .entry((member_id(m), metric.to_owned(), day_of(at)))
            .or_default() += 1;
    };
    let bump_post = |burst: &mut Burst, p: usize, metric: &str, at| {
        *burst
            .post_hourly
            .entry((post_id(p), metric.to_owned(), hour_of(at)))
            .or_default() += 1;
    };

    for (p, &author) in authors.iter().enumerate() {
        let visibility = if matches!(p % 7, 0) {
            "CONNECTIONS"
        } else {
            "PUBLIC"
        };
        let at = when(&mut rng);
        emit(
            &mut burst,
            "post.created",
            post_id(p),
            at,
            json!({"postId": post_id(p), "authorId": member_id(author), "visibility": visibility}),
        );
        burst.posts.insert(post_id(p), (visibility.to_owned(), 0));
    }
    while burst.events.len() < TOTAL {
        let at = when(&mut rng);
        let roll = rng.below(100);
        let actor = rng.below(MEMBERS);
        let p = rng.below(POSTS);
        let author = authors[p];
        let n = burst.events.len();
        match roll {
            0..=39 => {
                emit(
                    &mut burst,
                    "post.viewed",
                    post_id(p),
                    at,
                    json!({"postId": post_id(p), "authorId": member_id(author), "viewerId": member_id(actor)}),
                );
                bump_post(&mut burst, p, "impressions", at);
                bump_member(&mut burst, author, "post_impressions", at);
            }
            40..=59 => {
                emit(
                    &mut burst,
                    "reaction.added",
                    post_id(p),
                    at,
                    json!({"postId": post_id(p), "authorId": member_id(author), "memberId": member_id(actor), "kind": "LIKE"}),
                );
                bump_post(&mut burst, p, "reactions", at);
                bump_member(&mut burst, author, "reactions_received", at);
            }
            60..=69 => {
                emit(
                    &mut burst,
                    "comment.added",
                    post_id(p),
                    at,
                    json!({"postId": post_id(p), "commentId": format!("c{n}"), "authorId": member_id(author), "memberId": member_id(actor)}),
                );
                bump_post(&mut burst, p, "comments", at);
            }
            70..=84 => {
                let to = (actor + 1 + rng.below(MEMBERS - 1)) % MEMBERS;
                emit(
                    &mut burst,
                    "message.sent",
                    format!("conv-{}", actor.min(to)),
                    at,
                    json!({"conversationId": format!("conv-{}", actor.min(to)), "messageId": format!("msg-{n}"), "senderId": member_id(actor), "recipientIds": [member_id(to)]}),
                );
                bump_member(&mut burst, actor, "messages_sent", at);
            }
            85..=94 => {
                let viewed = (actor + 1 + rng.below(MEMBERS - 1)) % MEMBERS;
                emit(
                    &mut burst,
                    "profile.viewed",
                    member_id(viewed),
                    at,
                    json!({"memberId": member_id(viewed), "viewerId": member_id(actor)}),
                );
                bump_member(&mut burst, viewed, "profile_views", at);
            }
            95..=98 => {
                let other = (actor + 1 + rng.below(MEMBERS - 1)) % MEMBERS;
                emit(
                    &mut burst,
                    "connection.accepted",
                    member_id(actor),
                    at,
                    json!({"memberId": member_id(actor), "otherMemberId": member_id(other)}),
                );
                bump_member(&mut burst, actor, "connections_gained", at);
                bump_member(&mut burst, other, "connections_gained", at);
            }
            _ => {
                // Events analytics does not track must be consumed without effect…
                if matches!(p % 3, 0) {
                    emit(
                        &mut burst,
                        "account.created",
                        member_id(actor),
                        at,
                        json!({"accountId": member_id(actor), "memberId": member_id(actor), "handle": "h", "displayName": "H"}),
                    );
                } else {
                    // …and deletions mark the post.
                    emit(
                        &mut burst,
                        "post.deleted",
                        post_id(p),
                        at,
                        json!({"postId": post_id(p), "authorId": member_id(author)}),
                    );
                    burst.posts.get_mut(&post_id(p)).unwrap().1 = 1;
                }
            }
        }
    }
    burst
}

async fn member_rollups(store: &Store) -> BTreeMap<MemberKey, i64> {
    sqlx::query("SELECT member_id, metric, day, count FROM analytics_member_daily")
        .fetch_all(store.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| ((r.get(0), r.get(1), r.get(2)), r.get(3)))
        .collect()
}

async fn post_rollups(store: &Store) -> BTreeMap<PostKey, i64> {
    sqlx::query("SELECT post_id, metric, hour, count FROM analytics_post_hourly")
        .fetch_all(store.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| ((r.get(0), r.get(1), r.get(2)), r.get(3)))
        .collect()
}

async fn post_rows(store: &Store) -> BTreeMap<String, (String, i64)> {
    sqlx::query("SELECT post_id, visibility, deleted FROM analytics_posts")
        .fetch_all(store.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect()
}

async fn publish(bus: &EventBus, events: &[Event]) {
    for chunk in events.chunks(500) {
        bus.publish_batch(chunk).await.unwrap();
    }
}

/// Polls until the group has processed `target` events; panics after `limit`.
async fn wait_processed(store: &Store, target: i64, limit: Duration) -> i64 {
    let deadline = Instant::now() + limit;
    loop {
        let n = store.processed_events().await.unwrap();
        if n >= target {
            return n;
        }
        assert!(
            Instant::now() < deadline,
            "only {n} of {target} events processed after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn burst_survives_crash_and_replay(store: &Store, bus: &EventBus, label: &str) {
    let burst = generate(0x5EED_0A11);
    assert_eq!(burst.events.len(), TOTAL);
    publish(bus, &burst.events[..FIRST_WAVE]).await;

    // The first consumer starts on the first wave and dies in the middle of it.
    let started = Instant::now();
    let subscription = bus
        .subscribe_as(CONSUMER_GROUP, "analytics-first")
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let first = tokio::spawn(consumer(store).run(subscription, shutdown.clone()));
    wait_processed(store, KILL_AT, Duration::from_secs(120)).await;
    // Abort: the task (and its subscription, and any open transaction) is dropped wherever it
    // stood, as in a crash; nothing it held was acknowledged.
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    let at_kill = store.processed_events().await.unwrap();
    assert!(
        (KILL_AT..FIRST_WAVE as i64).contains(&at_kill),
        "killed mid-burst, after {at_kill} events"
    );

    // Replays of events processed before the crash (same ids), then the rest of the burst.
    let replayed_done: i64 = {
        let mut done = 0;
        for event in &burst.events[REPLAYED] {
            let n: i64 = sqlx::query(
                "SELECT COUNT(*) FROM switchyard_processed_events WHERE consumer_group = $1 AND event_id = $2",
            )
            .bind(CONSUMER_GROUP)
            .bind(event.id.to_string())
            .fetch_one(store.pool())
            .await
            .unwrap()
            .get(0);
            done += n;
        }
        done
    };
    assert_eq!(
        replayed_done,
        REPLAYED.len() as i64,
        "the replayed slice had all been processed before the crash"
    );
    publish(bus, &burst.events[REPLAYED]).await;
    publish(bus, &burst.events[FIRST_WAVE..]).await;

    // A new member of the same group takes over, including what the dead one held.
    let restarted = Instant::now();
    let subscription = bus
        .subscribe_as(CONSUMER_GROUP, "analytics-second")
        .await
        .unwrap();
    let second = tokio::spawn(consumer(store).run(subscription, shutdown.clone()));
    wait_processed(store, TOTAL as i64, Duration::from_secs(300)).await;
    let took = restarted.elapsed();
    shutdown.cancel();
    second.await.unwrap();
    eprintln!(
        "{label}: {TOTAL} events (+{} replays); killed after {at_kill}; the restarted consumer processed the remaining {} in {took:.2?} ({:.0} events/s); total {:.2?}",
        REPLAYED.len(),
        TOTAL as i64 - at_kill,
        (TOTAL as i64 - at_kill) as f64 / took.as_secs_f64(),
        started.elapsed(),
    );

    // Every delivery, replays included, was consumed and acknowledged: nothing is left for the
    // group (a dead member's pending entries would be claimed here).
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut probe = bus
        .subscribe_as(CONSUMER_GROUP, "analytics-probe")
        .await
        .unwrap();
    let left = probe
        .next_batch(100, Duration::from_millis(200))
        .await
        .unwrap();
    assert!(
        left.is_empty(),
        "{} deliveries left unconsumed, e.g. {:?}",
        left.len(),
        left[0].event.id
    );

    assert_eq!(store.processed_events().await.unwrap(), TOTAL as i64);
    let members = member_rollups(store).await;
    assert_eq!(members.len(), burst.member_daily.len());
    assert_eq!(members, burst.member_daily, "member rollups");
    assert_eq!(post_rollups(store).await, burst.post_hourly, "post rollups");
    assert_eq!(post_rows(store).await, burst.posts, "post metadata");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_in_process_burst() {
    let (_dir, store) = common::sqlite_store().await;
    let bus = EventBus::in_process();
    burst_survives_crash_and_replay(&store, &bus, "SQLite + in-process bus").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_redis_burst() {
    let Some((bus, url)) = common::redis_bus().await else {
        return;
    };
    let (_dir, store) = common::sqlite_store().await;
    burst_survives_crash_and_replay(&store, &bus, "SQLite + Redis Streams").await;
    common::delete_stream(&bus, &url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_redis_burst() {
    let Some(db) = common::postgres().await else {
        return;
    };
    let Some((bus, url)) = common::redis_bus().await else {
        db.drop_now().await;
        return;
    };
    let store = db.store().await;
    burst_survives_crash_and_replay(&store, &bus, "PostgreSQL + Redis Streams").await;
    store.pool().close().await;
    common::delete_stream(&bus, &url).await;
    db.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_in_process_burst() {
    let Some(db) = common::postgres().await else {
        return;
    };
    let store = db.store().await;
    burst_survives_crash_and_replay(
        &store,
        &EventBus::in_process(),
        "PostgreSQL + in-process bus",
    )
    .await;
    store.pool().close().await;
    db.drop_now().await;
}
