//! Live delivery: every replica hands each new message to the `messageAdded` subscribers it
//! holds for that conversation.
//!
//! [`Fanout`] has two backends. [`InProcessFanout`] is a broadcast channel per conversation with
//! local subscribers (one instance, the embedded default). [`RedisFanout`] publishes to a Redis
//! pub/sub channel per conversation; each replica holds ONE pub/sub connection, subscribed to
//! exactly the conversations its clients are watching, and routes what arrives to its local
//! broadcast channels. So a message sent through replica A reaches subscribers on replica B,
//! and a replica only receives traffic for conversations someone on it watches.
//!
//! Messages travel sealed (the body stays ciphertext in Redis) and are opened by the receiving
//! replica, which shares the data keys. Pub/sub is fire-and-forget: a message published while a
//! replica's connection is down is not replayed; clients catch up with `messages(before:)`.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{Stream, StreamExt};
use tokio::sync::broadcast;

use crate::store::SealedMessage;

/// How many messages a slow subscriber may fall behind before it skips some.
const SUBSCRIBER_BUFFER: usize = 256;

/// Why fan-out failed.
#[derive(Debug, thiserror::Error)]
pub enum FanoutError {
    /// Redis failed.
    #[error("redis fan-out error: {0}")]
    Redis(#[from] redis::RedisError),
    /// A message could not be encoded.
    #[error("fan-out message encoding error: {0}")]
    Encoding(#[from] serde_json::Error),
}

/// Delivers new messages to the subscribers of their conversation, on every replica.
pub trait Fanout: Send + Sync + 'static {
    /// Hands `message` to every subscriber of its conversation.
    fn publish<'a>(&'a self, message: &'a SealedMessage) -> BoxFuture<'a, Result<(), FanoutError>>;
    /// Subscribes to a conversation's new messages. When this returns, delivery is live: any
    /// message published afterwards reaches the receiver.
    fn subscribe<'a>(
        &'a self,
        conversation_id: &'a str,
    ) -> BoxFuture<'a, Result<FanoutReceiver, FanoutError>>;
    /// What this replica delivers to now (for its metrics).
    fn local_counts(&self) -> FanoutCounts;
}

/// A replica's live-delivery load.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FanoutCounts {
    /// Conversations with at least one local subscriber.
    pub conversations: usize,
    /// Local subscribers, over all conversations.
    pub subscribers: usize,
}

/// Local subscribers per conversation, shared by both backends.
#[derive(Default)]
struct LocalChannels {
    channels: Mutex<HashMap<String, broadcast::Sender<Arc<SealedMessage>>>>,
}

impl LocalChannels {
    fn deliver(&self, message: SealedMessage) {
        let channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sender) = channels.get(&message.conversation_id) {
            // No receivers is fine: the last one just left.
            let _ = sender.send(Arc::new(message));
        }
    }

    /// A receiver, and whether the conversation had no local channel before.
    fn join(&self, conversation_id: &str) -> (broadcast::Receiver<Arc<SealedMessage>>, bool) {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        match channels.get(conversation_id) {
            Some(sender) => (sender.subscribe(), false),
            None => {
                let (sender, receiver) = broadcast::channel(SUBSCRIBER_BUFFER);
                channels.insert(conversation_id.to_owned(), sender);
                (receiver, true)
            }
        }
    }

    /// Removes the conversation's channel if nobody listens any more; true when removed.
    fn leave_if_idle(&self, conversation_id: &str) -> bool {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        let idle = channels
            .get(conversation_id)
            .is_some_and(|s| s.receiver_count() == 0);
        if idle {
            channels.remove(conversation_id);
        }
        idle
    }

    fn conversation_ids(&self) -> Vec<String> {
        let channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        channels.keys().cloned().collect()
    }

    fn len(&self) -> usize {
        self.channels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    fn counts(&self) -> FanoutCounts {
        let channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        FanoutCounts {
            conversations: channels.len(),
            subscribers: channels.values().map(|s| s.receiver_count()).sum(),
        }
    }
}

/// What runs when a receiver goes away (drop the local channel, unsubscribe from Redis).
type OnLeave = Box<dyn FnOnce() + Send + Sync>;

/// A conversation's new messages, as a stream. Dropping it unsubscribes.
pub struct FanoutReceiver {
    stream: futures::stream::BoxStream<'static, Arc<SealedMessage>>,
    on_leave: Option<OnLeave>,
}

impl FanoutReceiver {
    fn new(receiver: broadcast::Receiver<Arc<SealedMessage>>, on_leave: OnLeave) -> Self {
        let stream = futures::stream::unfold(receiver, |mut receiver| async move {
            loop {
                match receiver.recv().await {
                    Ok(message) => return Some((message, receiver)),
                    Err(broadcast::error::RecvError::Lagged(skipped)) => {
                        tracing::warn!(skipped, "slow chat subscriber skipped messages");
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .boxed();
        FanoutReceiver {
            stream,
            on_leave: Some(on_leave),
        }
    }
}

impl Stream for FanoutReceiver {
    type Item = Arc<SealedMessage>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.stream.poll_next_unpin(cx)
    }
}

impl Drop for FanoutReceiver {
    fn drop(&mut self) {
        // Drop the broadcast receiver first so the channel's receiver count is accurate.
        self.stream = futures::stream::empty().boxed();
        if let Some(on_leave) = self.on_leave.take() {
            on_leave();
        }
    }
}

/// Fan-out within one process (the embedded default).
#[derive(Clone, Default)]
pub struct InProcessFanout {
    local: Arc<LocalChannels>,
}

impl InProcessFanout {
    /// A fan-out with no subscribers yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Conversations with at least one local subscriber.
    pub fn watched_conversations(&self) -> usize {
        self.local.len()
    }
}

impl Fanout for InProcessFanout {
    fn publish<'a>(&'a self, message: &'a SealedMessage) -> BoxFuture<'a, Result<(), FanoutError>> {
        self.local.deliver(message.clone());
        Box::pin(async { Ok(()) })
    }

    fn subscribe<'a>(
        &'a self,
        conversation_id: &'a str,
    ) -> BoxFuture<'a, Result<FanoutReceiver, FanoutError>> {
        let (receiver, _) = self.local.join(conversation_id);
        let local = self.local.clone();
        let id = conversation_id.to_owned();
        Box::pin(async move {
            Ok(FanoutReceiver::new(
                receiver,
                Box::new(move || {
                    local.leave_if_idle(&id);
                }),
            ))
        })
    }

    fn local_counts(&self) -> FanoutCounts {
        self.local.counts()
    }
}

/// Fan-out across replicas over Redis pub/sub.
#[derive(Clone)]
pub struct RedisFanout {
    inner: Arc<RedisInner>,
}

struct RedisInner {
    client: redis::Client,
    publisher: redis::aio::MultiplexedConnection,
    local: Arc<LocalChannels>,
    /// The current pub/sub connection's command half. The lock also orders subscribe and
    /// unsubscribe per replica, so a conversation's Redis subscription always matches whether
    /// it has a local channel.
    sink: tokio::sync::Mutex<redis::aio::PubSubSink>,
    prefix: String,
}

impl RedisFanout {
    /// Connects to Redis; channels are named `switchyard:chat:conversation:<id>`.
    pub async fn connect(url: &str) -> Result<RedisFanout, FanoutError> {
        Self::connect_with_prefix(url, "switchyard:chat:conversation:").await
    }

    /// Connects with a custom channel prefix (to separate deployments sharing one Redis).
    pub async fn connect_with_prefix(url: &str, prefix: &str) -> Result<RedisFanout, FanoutError> {
        let client = redis::Client::open(url)?;
        let publisher = client.get_multiplexed_async_connection().await?;
        let (sink, stream) = client.get_async_pubsub().await?.split();
        let local = Arc::new(LocalChannels::default());
        let inner = Arc::new(RedisInner {
            client,
            publisher,
            local,
            sink: tokio::sync::Mutex::new(sink),
            prefix: prefix.to_owned(),
        });
        tokio::spawn(receive_loop(Arc::downgrade(&inner), stream));
        Ok(RedisFanout { inner })
    }

    /// Conversations this replica is subscribed to.
    pub fn watched_conversations(&self) -> usize {
        self.inner.local.len()
    }
}

impl RedisInner {
    fn channel(&self, conversation_id: &str) -> String {
        format!("{}{}", self.prefix, conversation_id)
    }
}

/// Routes what the pub/sub connection receives to local subscribers; reconnects (and
/// resubscribes) when the connection drops. Ends when the fan-out is dropped.
async fn receive_loop(inner: std::sync::Weak<RedisInner>, mut stream: redis::aio::PubSubStream) {
    loop {
        while let Some(msg) = stream.next().await {
            let Some(inner) = inner.upgrade() else {
                return;
            };
            match serde_json::from_slice::<SealedMessage>(msg.get_payload_bytes()) {
                Ok(message) => inner.local.deliver(message),
                Err(e) => tracing::warn!(error = %e, channel = msg.get_channel_name(),
                    "ignoring malformed chat fan-out message"),
            }
        }
        // The connection is gone: reconnect with a pause between attempts.
        loop {
            let Some(strong) = inner.upgrade() else {
                return;
            };
            tracing::warn!("chat fan-out lost its Redis pub/sub connection; reconnecting");
            tokio::time::sleep(Duration::from_millis(500)).await;
            match resubscribe(&strong).await {
                Ok(new_stream) => {
                    stream = new_stream;
                    break;
                }
                Err(e) => tracing::warn!(error = %e, "chat fan-out reconnect failed"),
            }
        }
    }
}

async fn resubscribe(inner: &RedisInner) -> Result<redis::aio::PubSubStream, FanoutError> {
    let (mut sink, stream) = inner.client.get_async_pubsub().await?.split();
    let mut current = inner.sink.lock().await;
    let channels: Vec<String> = inner
        .local
        .conversation_ids()
        .iter()
        .map(|id| inner.channel(id))
        .collect();
    if !channels.is_empty() {
        sink.subscribe(&channels).await?;
    }
    *current = sink;
    Ok(stream)
}

impl Fanout for RedisFanout {
    fn publish<'a>(&'a self, message: &'a SealedMessage) -> BoxFuture<'a, Result<(), FanoutError>> {
        Box::pin(async move {
            let payload = serde_json::to_vec(message)?;
            let mut conn = self.inner.publisher.clone();
            redis::cmd("PUBLISH")
                .arg(self.inner.channel(&message.conversation_id))
                .arg(payload)
                .query_async::<i64>(&mut conn)
                .await?;
            Ok(())
        })
    }

    fn subscribe<'a>(
        &'a self,
        conversation_id: &'a str,
    ) -> BoxFuture<'a, Result<FanoutReceiver, FanoutError>> {
        Box::pin(async move {
            let mut sink = self.inner.sink.lock().await;
            let (receiver, first) = self.inner.local.join(conversation_id);
            if first {
                // Wait for Redis to confirm, so a message published after we return arrives.
                if let Err(e) = sink.subscribe(self.inner.channel(conversation_id)).await {
                    drop(receiver);
                    self.inner.local.leave_if_idle(conversation_id);
                    return Err(e.into());
                }
            }
            drop(sink);
            let inner = Arc::downgrade(&self.inner);
            let id = conversation_id.to_owned();
            Ok(FanoutReceiver::new(
                receiver,
                Box::new(move || {
                    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                        return;
                    };
                    runtime.spawn(async move {
                        let Some(inner) = inner.upgrade() else {
                            return;
                        };
                        let mut sink = inner.sink.lock().await;
                        if inner.local.leave_if_idle(&id) {
                            if let Err(e) = sink.unsubscribe(inner.channel(&id)).await {
                                tracing::warn!(error = %e, "chat fan-out unsubscribe failed");
                            }
                        }
                    });
                }),
            ))
        })
    }

    fn local_counts(&self) -> FanoutCounts {
        self.inner.local.counts()
    }
}
