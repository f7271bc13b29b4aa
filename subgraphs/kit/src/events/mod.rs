//! The event bus: how data crosses service lines without one service reading another's database.
//!
//! The flow is *transactional outbox → bus → idempotent consumer*:
//!
//! 1. A service changes its own data and, in the **same database transaction**, writes the
//!    [`Event`] describing the change into its outbox table ([`outbox::enqueue`]). Either both
//!    happen or neither does, so there is never an event for a change that was rolled back, nor a
//!    committed change whose event is lost.
//! 2. A background [`OutboxRelay`] reads unpublished outbox rows, publishes them to the
//!    [`EventBus`] and only then marks them published. A crash in between publishes the event
//!    again on restart: delivery is *at least once*.
//! 3. Consumers read the bus in a consumer group ([`EventBus::subscribe`]); each event is handed to
//!    one member of each group. [`process_event`] records the event id in the consumer's own
//!    database in the same transaction as the consumer's changes, so a redelivered event is
//!    recognised and skipped: processing is *effectively once*.
//!
//! Two bus backends share one API: [`InProcessBus`] (the embedded default: everything in one
//! process, nothing to run) and [`RedisBus`] (Redis Streams consumer groups, for services in
//! separate processes).

mod consumer;
mod memory;
pub mod outbox;
mod redis_streams;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use consumer::{process_event, EventConsumer, EventHandler, Processed};
pub use memory::{InProcessBus, InProcessSubscription};
pub use outbox::OutboxRelay;
pub use redis_streams::{RedisBus, RedisBusOptions, RedisSubscription};

/// A boxed error, as returned by consumers' [`EventHandler`]s.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors from the outbox, the bus and the consumer loop.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The service's database failed (outbox or de-duplication table).
    #[error("event store database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Redis failed or answered something unexpected.
    #[error("redis event bus error: {0}")]
    Redis(#[from] redis::RedisError),
    /// An event could not be encoded or decoded.
    #[error("malformed event: {0}")]
    Malformed(String),
    /// A consumer's handler rejected the event; it stays unacknowledged and is redelivered.
    #[error("event handler failed: {0}")]
    Handler(BoxError),
}

impl From<serde_json::Error> for EventError {
    fn from(e: serde_json::Error) -> Self {
        EventError::Malformed(e.to_string())
    }
}

/// The typed envelope every event travels in.
///
/// `id` is a UUID v7, so ids sort by creation time; that order is the outbox relay order and the
/// key consumers de-duplicate on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique id (UUID v7); the de-duplication key.
    pub id: Uuid,
    /// What happened, e.g. `"member.created"`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The id of the entity the event is about, e.g. a member id.
    pub aggregate_id: String,
    /// When the change happened (microsecond precision survives the outbox).
    pub occurred_at: DateTime<Utc>,
    /// The event body.
    pub payload: serde_json::Value,
    /// Where in a trace the event was raised (a W3C `traceparent` value), so its consumers
    /// continue that trace; `None` when tracing was off. Stored in the outbox with the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_parent: Option<String>,
}

impl Event {
    /// A new event with a fresh id, occurring now, linked to the current trace position of the
    /// task (the request or event being handled; see `switchyard_telemetry::trace::scope`).
    pub fn new(
        event_type: impl Into<String>,
        aggregate_id: impl Into<String>,
        payload: impl Serialize,
    ) -> Result<Self, EventError> {
        let now = Utc::now();
        // Truncate to microseconds so the value read back from the outbox compares equal.
        let occurred_at = DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now);
        Ok(Event {
            id: Uuid::now_v7(),
            event_type: event_type.into(),
            aggregate_id: aggregate_id.into(),
            occurred_at,
            payload: serde_json::to_value(payload)?,
            trace_parent: switchyard_telemetry::trace::current()
                .map(|context| context.to_traceparent()),
        })
    }

    /// The trace position stored with the event, if it is well-formed.
    pub fn trace_context(&self) -> Option<switchyard_telemetry::trace::TraceContext> {
        self.trace_parent
            .as_deref()
            .and_then(|value| switchyard_telemetry::trace::TraceContext::parse(value.as_bytes()))
    }

    /// Decodes the payload into the type the consumer expects.
    pub fn payload_as<T: DeserializeOwned>(&self) -> Result<T, EventError> {
        Ok(T::deserialize(&self.payload)?)
    }
}

/// Identifies a delivery to acknowledge, per backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Receipt {
    /// Offset in the in-process log.
    InProcess(u64),
    /// Redis stream entry id.
    Redis(String),
}

/// One event handed to one consumer; acknowledge it once processed.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The event.
    pub event: Event,
    /// What to pass back to [`Subscription::ack`].
    pub receipt: Receipt,
}

/// The bus a service publishes to and subscribes on; choose with [`EventBus::from_redis_url`].
#[derive(Clone)]
pub enum EventBus {
    /// Embedded default: events live in this process.
    InProcess(InProcessBus),
    /// Redis Streams with consumer groups.
    Redis(RedisBus),
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EventBus::InProcess(_) => f.write_str("EventBus::InProcess"),
            EventBus::Redis(r) => write!(f, "EventBus::Redis({})", r.stream()),
        }
    }
}

impl EventBus {
    /// An in-process bus with the default retention.
    pub fn in_process() -> Self {
        EventBus::InProcess(InProcessBus::new())
    }

    /// Redis Streams when a URL is given (typically `REDIS_URL`), otherwise in-process.
    pub async fn from_redis_url(url: Option<&str>) -> Result<Self, EventError> {
        match url.filter(|u| !u.is_empty()) {
            Some(url) => Ok(EventBus::Redis(
                RedisBus::connect(url, RedisBusOptions::default()).await?,
            )),
            None => Ok(Self::in_process()),
        }
    }

    /// Publishes one event to every consumer group.
    pub async fn publish(&self, event: &Event) -> Result<(), EventError> {
        match self {
            EventBus::InProcess(bus) => {
                bus.publish(event.clone());
                Ok(())
            }
            EventBus::Redis(bus) => bus.publish(event).await,
        }
    }

    /// Publishes events in order; over Redis in one round trip. On error, any prefix of them
    /// may have been published.
    pub async fn publish_batch(&self, events: &[Event]) -> Result<(), EventError> {
        match self {
            EventBus::InProcess(bus) => {
                for event in events {
                    bus.publish(event.clone());
                }
                Ok(())
            }
            EventBus::Redis(bus) => bus.publish_batch(events).await,
        }
    }

    /// Joins `consumer_group` as a new member with a generated name.
    ///
    /// Each group sees every event; within a group each event goes to one member. For Redis,
    /// prefer [`EventBus::subscribe_as`] with a stable name so a restarted consumer picks up what
    /// it had been handed before it stopped.
    pub async fn subscribe(&self, consumer_group: &str) -> Result<Subscription, EventError> {
        let name = format!("consumer-{}", Uuid::now_v7().simple());
        self.subscribe_as(consumer_group, &name).await
    }

    /// Joins `consumer_group` as the member `consumer` (stable across restarts).
    pub async fn subscribe_as(
        &self,
        consumer_group: &str,
        consumer: &str,
    ) -> Result<Subscription, EventError> {
        match self {
            EventBus::InProcess(bus) => Ok(Subscription::InProcess(bus.subscribe(consumer_group))),
            EventBus::Redis(bus) => Ok(Subscription::Redis(Box::new(
                bus.subscribe(consumer_group, consumer).await?,
            ))),
        }
    }

    /// How far `group` is behind; `None` when the group does not exist (yet).
    pub async fn group_lag(&self, group: &str) -> Result<Option<GroupLag>, EventError> {
        match self {
            EventBus::InProcess(bus) => Ok(bus.group_lag(group)),
            EventBus::Redis(bus) => bus.group_lag(group).await,
        }
    }

    /// Whether the bus can be reached (for `/ready`).
    pub async fn ping(&self) -> Result<(), EventError> {
        match self {
            EventBus::InProcess(_) => Ok(()),
            EventBus::Redis(bus) => bus.ping().await,
        }
    }
}

/// How far a consumer group is behind the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupLag {
    /// Events published but not yet handed to any member of the group.
    pub lag: u64,
    /// Events handed to a member and not yet acknowledged.
    pub pending: u64,
}

/// A consumer group membership: pull batches, acknowledge what was processed.
pub enum Subscription {
    /// In-process member.
    InProcess(InProcessSubscription),
    /// Redis Streams member (boxed: it is much larger than the in-process one).
    Redis(Box<RedisSubscription>),
}

impl Subscription {
    /// Up to `max` deliveries, waiting at most `wait` for the first one (empty on timeout).
    ///
    /// Events this member was handed but did not acknowledge before (or that a dead member left
    /// behind) come first, so nothing is lost across crashes.
    pub async fn next_batch(
        &mut self,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, EventError> {
        match self {
            Subscription::InProcess(s) => Ok(s.next_batch(max, wait).await),
            Subscription::Redis(s) => s.next_batch(max, wait).await,
        }
    }

    /// Marks a delivery processed: it will not be delivered to this group again.
    pub async fn ack(&mut self, delivery: &Delivery) -> Result<(), EventError> {
        match self {
            Subscription::InProcess(s) => {
                s.ack(&delivery.receipt);
                Ok(())
            }
            Subscription::Redis(s) => s.ack(&delivery.receipt).await,
        }
    }

    /// Gives a delivery back after a failure, so it is retried.
    pub async fn nack(&mut self, delivery: &Delivery) -> Result<(), EventError> {
        match self {
            Subscription::InProcess(s) => {
                s.nack(&delivery.receipt);
                Ok(())
            }
            Subscription::Redis(s) => {
                s.nack(&delivery.receipt);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_serializes_with_type_field_and_round_trips() {
        let event =
            Event::new("member.created", "m-1", serde_json::json!({"name": "Ada"})).unwrap();
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["type"], "member.created");
        assert_eq!(json["aggregate_id"], "m-1");
        assert_eq!(json["payload"]["name"], "Ada");
        let back: Event = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
        assert_eq!(back.id.get_version_num(), 7);
    }

    #[test]
    fn ids_sort_by_creation() {
        let a = Event::new("t", "x", ()).unwrap();
        let b = Event::new("t", "x", ()).unwrap();
        assert!(a.id.to_string() < b.id.to_string());
    }

    #[test]
    fn payload_decodes_into_the_consumer_type() {
        #[derive(Deserialize)]
        struct Created {
            name: String,
        }
        let event =
            Event::new("member.created", "m-1", serde_json::json!({"name": "Ada"})).unwrap();
        assert_eq!(event.payload_as::<Created>().unwrap().name, "Ada");
        assert!(matches!(
            event.payload_as::<Vec<u8>>(),
            Err(EventError::Malformed(_))
        ));
    }
}
