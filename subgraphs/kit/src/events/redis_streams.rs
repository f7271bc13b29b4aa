//! The Redis Streams bus: services in separate processes share one stream.
//!
//! Every event is one stream entry (`XADD`, field `event` = the JSON envelope). A consumer group
//! per consuming service (`XGROUP CREATE … 0 MKSTREAM`) gives each group every event and each
//! event to one member (`XREADGROUP … >`). Entries stay in the group's pending list until
//! `XACK`, so a member that dies mid-batch loses nothing: on restart under the same name it first
//! re-reads its own pending entries (`XREADGROUP … 0`), and any member periodically claims
//! entries a dead member has held longer than the claim timeout (`XAUTOCLAIM`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use redis::{AsyncConnectionConfig, Client};
use tokio::sync::Mutex;

use super::{Delivery, Event, EventError, Receipt};

/// Settings for [`RedisBus`].
#[derive(Debug, Clone)]
pub struct RedisBusOptions {
    /// The stream key all services share.
    pub stream: String,
    /// Approximate cap on stream length (`XADD MAXLEN ~`); old entries are trimmed past it.
    pub max_len: usize,
    /// How long an entry may sit unacknowledged with one member before another may claim it.
    pub claim_idle: Duration,
}

impl Default for RedisBusOptions {
    fn default() -> Self {
        RedisBusOptions {
            stream: "switchyard:events".to_owned(),
            max_len: 1_000_000,
            claim_idle: Duration::from_secs(30),
        }
    }
}

/// A Redis Streams event bus (cheap to clone; clones share one publishing connection).
///
/// Connections that break (Redis restarted, network blip) are re-opened on the next call, and a
/// consumer group that vanished (Redis restarted without persistence) is re-created, so a
/// service outlives its Redis instead of needing a restart itself.
#[derive(Clone)]
pub struct RedisBus {
    inner: Arc<RedisBusInner>,
}

struct RedisBusInner {
    client: Client,
    publisher: Mutex<Option<MultiplexedConnection>>,
    options: RedisBusOptions,
}

/// Whether the connection that produced `e` should be dropped and re-opened.
fn connection_broken(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_unrecoverable_error()
        || e.is_timeout()
}

/// Client names may not contain spaces; they only label connections in `CLIENT LIST`.
fn client_name(parts: &[&str]) -> String {
    parts
        .join(":")
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect()
}

async fn set_name(conn: &mut MultiplexedConnection, name: &str) -> Result<(), redis::RedisError> {
    let _: String = redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg(name)
        .query_async(conn)
        .await?;
    Ok(())
}

impl RedisBus {
    /// Connects to `url` (e.g. `redis://127.0.0.1:6379`); fails fast if Redis does not answer.
    pub async fn connect(url: &str, options: RedisBusOptions) -> Result<Self, EventError> {
        let client = Client::open(url)?;
        let bus = RedisBus {
            inner: Arc::new(RedisBusInner {
                client,
                publisher: Mutex::new(None),
                options,
            }),
        };
        bus.publisher().await?;
        Ok(bus)
    }

    /// The stream key.
    pub fn stream(&self) -> &str {
        &self.inner.options.stream
    }

    async fn publisher(&self) -> Result<MultiplexedConnection, EventError> {
        let mut slot = self.inner.publisher.lock().await;
        if let Some(conn) = &*slot {
            return Ok(conn.clone());
        }
        let mut conn = self.inner.client.get_multiplexed_async_connection().await?;
        set_name(&mut conn, &client_name(&["publisher", self.stream()])).await?;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, EventError> {
        let mut conn = self.publisher().await?;
        match cmd.query_async(&mut conn).await {
            Ok(value) => Ok(value),
            Err(e) => {
                if connection_broken(&e) {
                    *self.inner.publisher.lock().await = None;
                }
                Err(e.into())
            }
        }
    }

    fn xadd(&self, event: &Event) -> Result<redis::Cmd, EventError> {
        let body = serde_json::to_string(event)?;
        let mut cmd = redis::cmd("XADD");
        cmd.arg(self.stream())
            .arg("MAXLEN")
            .arg("~")
            .arg(self.inner.options.max_len)
            .arg("*")
            .arg("type")
            .arg(&event.event_type)
            .arg("event")
            .arg(body);
        Ok(cmd)
    }

    /// Appends the event to the stream.
    pub async fn publish(&self, event: &Event) -> Result<(), EventError> {
        let _: String = self.query(&self.xadd(event)?).await?;
        Ok(())
    }

    /// Appends the events in order, in one round trip (a pipeline). On error, any prefix of them
    /// may have been appended; publish them all again (consumers de-duplicate).
    pub async fn publish_batch(&self, events: &[Event]) -> Result<(), EventError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for event in events {
            pipe.add_command(self.xadd(event)?);
        }
        let mut conn = self.publisher().await?;
        match pipe.query_async::<Vec<String>>(&mut conn).await {
            Ok(_) => Ok(()),
            Err(e) => {
                if connection_broken(&e) {
                    *self.inner.publisher.lock().await = None;
                }
                Err(e.into())
            }
        }
    }

    /// Joins `group` as member `consumer`, creating the group (from the stream's start) if new.
    pub async fn subscribe(
        &self,
        group: &str,
        consumer: &str,
    ) -> Result<RedisSubscription, EventError> {
        let mut subscription = RedisSubscription {
            client: self.inner.client.clone(),
            conn: None,
            stream: self.stream().to_owned(),
            group: group.to_owned(),
            consumer: consumer.to_owned(),
            claim_idle: self.inner.options.claim_idle,
            own_pending: true,
            claim_cursor: "0-0".to_owned(),
            last_claim: None,
        };
        subscription.connection().await?;
        Ok(subscription)
    }

    /// How far `group` is behind (`XINFO GROUPS`): entries not yet delivered to it (Redis 7's
    /// `lag`; when Redis cannot tell, entries-added minus entries-read is not knowable either
    /// and it is reported as 0) and entries delivered but not acknowledged. `None` when the
    /// group or the stream does not exist.
    pub async fn group_lag(&self, group: &str) -> Result<Option<super::GroupLag>, EventError> {
        let mut cmd = redis::cmd("XINFO");
        cmd.arg("GROUPS").arg(self.stream());
        let groups: Vec<std::collections::HashMap<String, redis::Value>> = match self
            .query(&cmd)
            .await
        {
            Ok(groups) => groups,
            // No such key: nothing was ever published or subscribed.
            Err(EventError::Redis(e)) if e.to_string().contains("no such key") => return Ok(None),
            Err(e) => return Err(e),
        };
        let number = |info: &std::collections::HashMap<String, redis::Value>, key: &str| {
            info.get(key)
                .and_then(|v| redis::from_redis_value_ref::<Option<i64>>(v).ok().flatten())
                .map_or(0, |n| u64::try_from(n).unwrap_or(0))
        };
        Ok(groups
            .iter()
            .find(|info| {
                info.get("name")
                    .and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
                    .is_some_and(|name| name == group)
            })
            .map(|info| super::GroupLag {
                lag: number(info, "lag"),
                pending: number(info, "pending"),
            }))
    }

    /// `PING`.
    pub async fn ping(&self) -> Result<(), EventError> {
        let _: String = self.query(&redis::cmd("PING")).await?;
        Ok(())
    }
}

/// One member of a consumer group on a [`RedisBus`].
pub struct RedisSubscription {
    client: Client,
    conn: Option<MultiplexedConnection>,
    stream: String,
    group: String,
    consumer: String,
    claim_idle: Duration,
    /// Still re-reading entries this member was handed before (a restart, or a nack).
    own_pending: bool,
    claim_cursor: String,
    last_claim: Option<Instant>,
}

impl RedisSubscription {
    /// The member name.
    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// The open connection, or a new one with the group ensured.
    async fn connection(&mut self) -> Result<MultiplexedConnection, EventError> {
        if let Some(conn) = &self.conn {
            return Ok(conn.clone());
        }
        // Blocking reads hold the connection for up to the wait, so each member gets its own
        // connection without the client's default response timeout.
        let config = AsyncConnectionConfig::new().set_response_timeout(None);
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        set_name(
            &mut conn,
            &client_name(&["consumer", &self.stream, &self.group, &self.consumer]),
        )
        .await?;
        let created: Result<String, redis::RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.stream)
            .arg(&self.group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        match created {
            Ok(_) => {}
            Err(e) if e.code() == Some("BUSYGROUP") => {}
            Err(e) => return Err(e.into()),
        }
        // Whatever this member was handed before the connection broke may be unacknowledged.
        self.own_pending = true;
        self.conn = Some(conn.clone());
        Ok(conn)
    }

    async fn query<T: redis::FromRedisValue>(&mut self, cmd: &redis::Cmd) -> Result<T, EventError> {
        let mut conn = self.connection().await?;
        match cmd.query_async(&mut conn).await {
            Ok(value) => Ok(value),
            Err(e) => {
                // NOGROUP: the stream or group is gone (e.g. Redis restarted empty); reconnecting
                // re-creates it.
                if connection_broken(&e) || e.code() == Some("NOGROUP") {
                    self.conn = None;
                }
                Err(e.into())
            }
        }
    }

    /// Up to `max` deliveries: own pending entries first, then entries claimed from dead
    /// members, then new entries (blocking up to `wait`).
    pub async fn next_batch(
        &mut self,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, EventError> {
        let max = max.max(1);
        self.connection().await?;
        if self.own_pending {
            let reply: Option<StreamReadReply> = self.read_group(max, None, "0").await?;
            let entries = flatten(reply);
            if entries.is_empty() {
                self.own_pending = false;
            } else {
                return self.decode(entries).await;
            }
        }
        if self
            .last_claim
            .is_none_or(|at| at.elapsed() >= self.claim_idle / 2)
        {
            self.last_claim = Some(Instant::now());
            let claimed = self.auto_claim(max).await?;
            if !claimed.is_empty() {
                return self.decode(claimed).await;
            }
        }
        // BLOCK 0 would mean "forever"; the caller asked for a bounded wait.
        let block_ms = wait.as_millis().clamp(1, u64::MAX as u128) as u64;
        let reply = self.read_group(max, Some(block_ms), ">").await?;
        self.decode(flatten(reply)).await
    }

    async fn read_group(
        &mut self,
        max: usize,
        block_ms: Option<u64>,
        from: &str,
    ) -> Result<Option<StreamReadReply>, EventError> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&self.group)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(max);
        if let Some(ms) = block_ms {
            cmd.arg("BLOCK").arg(ms);
        }
        cmd.arg("STREAMS").arg(&self.stream).arg(from);
        self.query(&cmd).await
    }

    async fn auto_claim(&mut self, max: usize) -> Result<Vec<StreamId>, EventError> {
        let min_idle = self.claim_idle.as_millis().min(u64::MAX as u128) as u64;
        let mut cmd = redis::cmd("XAUTOCLAIM");
        cmd.arg(&self.stream)
            .arg(&self.group)
            .arg(&self.consumer)
            .arg(min_idle)
            .arg(&self.claim_cursor)
            .arg("COUNT")
            .arg(max);
        let reply: StreamAutoClaimReply = self.query(&cmd).await?;
        self.claim_cursor = reply.next_stream_id;
        if self.claim_cursor != "0-0" {
            // More to scan: check again on the next call instead of waiting half a timeout.
            self.last_claim = None;
        }
        Ok(reply.claimed)
    }

    async fn decode(&mut self, entries: Vec<StreamId>) -> Result<Vec<Delivery>, EventError> {
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            let event = entry
                .get::<String>("event")
                .ok_or_else(|| EventError::Malformed("stream entry has no `event` field".into()))
                .and_then(|body| Ok(serde_json::from_str::<Event>(&body)?));
            match event {
                Ok(event) => out.push(Delivery {
                    event,
                    receipt: Receipt::Redis(entry.id),
                }),
                Err(e) => {
                    // A poison entry would otherwise be redelivered forever; drop it loudly.
                    tracing::error!(stream = %self.stream, id = %entry.id, error = %e, "dropping undecodable event");
                    self.ack(&Receipt::Redis(entry.id)).await?;
                }
            }
        }
        Ok(out)
    }

    /// `XACK`s a delivery.
    pub async fn ack(&mut self, receipt: &Receipt) -> Result<(), EventError> {
        if let Receipt::Redis(id) = receipt {
            let mut cmd = redis::cmd("XACK");
            cmd.arg(&self.stream).arg(&self.group).arg(id);
            let _: i64 = self.query(&cmd).await?;
        }
        Ok(())
    }

    /// Leaves the entry pending and re-reads this member's pending list on the next batch.
    pub fn nack(&mut self, _receipt: &Receipt) {
        self.own_pending = true;
    }
}

fn flatten(reply: Option<StreamReadReply>) -> Vec<StreamId> {
    reply
        .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
        .unwrap_or_default()
}
