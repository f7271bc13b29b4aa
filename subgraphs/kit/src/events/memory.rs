//! The in-process bus: the embedded default, so `switchyard dev` needs no Redis.
//!
//! It mirrors Redis Streams consumer-group semantics rather than a plain broadcast channel,
//! because consumers are written once against those semantics: one shared log, a cursor per
//! group, and a pending list per group of events handed out but not yet acknowledged. A member
//! that goes away (its [`InProcessSubscription`] is dropped, e.g. its task panicked) gives its
//! pending events back to the group, which is what makes a crash mid-batch lose nothing.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

use super::{Delivery, Event, Receipt};

/// How many events the log keeps by default before dropping the oldest.
const DEFAULT_RETENTION: usize = 100_000;

/// The embedded event bus (cheap to clone; clones share the log).
#[derive(Clone)]
pub struct InProcessBus {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<LogState>,
    notify: Notify,
    retention: usize,
}

struct LogState {
    /// Offset of `events[0]`.
    base: u64,
    events: VecDeque<Event>,
    groups: HashMap<String, GroupState>,
    next_member: u64,
}

#[derive(Default)]
struct GroupState {
    /// Next log offset never handed to this group.
    cursor: u64,
    /// Offsets given back (nack, dead member), delivered before new events.
    redeliver: VecDeque<u64>,
    /// Offsets handed out and not yet acknowledged, with the member holding them.
    pending: HashMap<u64, u64>,
}

impl Default for InProcessBus {
    fn default() -> Self {
        Self::new()
    }
}

impl InProcessBus {
    /// A bus keeping the last 100 000 events.
    pub fn new() -> Self {
        Self::with_retention(DEFAULT_RETENTION)
    }

    /// A bus keeping the last `retention` events (at least 1).
    pub fn with_retention(retention: usize) -> Self {
        InProcessBus {
            shared: Arc::new(Shared {
                state: Mutex::new(LogState {
                    base: 0,
                    events: VecDeque::new(),
                    groups: HashMap::new(),
                    next_member: 0,
                }),
                notify: Notify::new(),
                retention: retention.max(1),
            }),
        }
    }

    /// Appends an event to the log and wakes waiting members.
    pub fn publish(&self, event: Event) {
        {
            let mut state = self.shared.lock();
            state.events.push_back(event);
            while state.events.len() > self.shared.retention {
                state.events.pop_front();
                state.base += 1;
                let base = state.base;
                for (name, group) in state.groups.iter_mut() {
                    if group.cursor < base {
                        tracing::warn!(group = %name, "in-process event log overflowed; an event was dropped before this group read it");
                        group.cursor = base;
                    }
                }
            }
        }
        self.shared.notify.notify_waiters();
    }

    /// How far `group` is behind: events not yet handed to it, and events handed out but not
    /// acknowledged. `None` when the group has never subscribed.
    pub fn group_lag(&self, group: &str) -> Option<super::GroupLag> {
        let state = self.shared.lock();
        let g = state.groups.get(group)?;
        let end = state.base + state.events.len() as u64;
        Some(super::GroupLag {
            lag: end.saturating_sub(g.cursor) + g.redeliver.len() as u64,
            pending: g.pending.len() as u64,
        })
    }

    /// Joins `group` as a new member.
    ///
    /// A group that does not exist yet starts at the oldest retained event, so events relayed
    /// before a consumer's first subscription still reach it (like a Redis group created at `0`).
    pub fn subscribe(&self, group: &str) -> InProcessSubscription {
        let mut state = self.shared.lock();
        let base = state.base;
        state
            .groups
            .entry(group.to_owned())
            .or_insert_with(|| GroupState {
                cursor: base,
                ..GroupState::default()
            });
        state.next_member += 1;
        InProcessSubscription {
            shared: Arc::clone(&self.shared),
            group: group.to_owned(),
            member: state.next_member,
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, LogState> {
        // A panic while holding the lock cannot leave the log half-updated in a way that matters
        // more than losing the bus, so recover the guard.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One member of a consumer group on an [`InProcessBus`].
pub struct InProcessSubscription {
    shared: Arc<Shared>,
    group: String,
    member: u64,
}

impl InProcessSubscription {
    /// Up to `max` deliveries; waits at most `wait` for the first.
    pub async fn next_batch(&mut self, max: usize, wait: Duration) -> Vec<Delivery> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Register for wake-ups before looking, so a publish between the look and the wait
            // is not missed.
            let notified = self.shared.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let batch = self.take(max.max(1));
            if !batch.is_empty() {
                return batch;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Vec::new();
            }
        }
    }

    fn take(&self, max: usize) -> Vec<Delivery> {
        let mut state = self.shared.lock();
        let LogState {
            base,
            events,
            groups,
            ..
        } = &mut *state;
        let Some(group) = groups.get_mut(&self.group) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        while out.len() < max {
            let Some(offset) = group.redeliver.pop_front() else {
                break;
            };
            if let Some(event) = offset
                .checked_sub(*base)
                .and_then(|i| events.get(i as usize))
            {
                group.pending.insert(offset, self.member);
                out.push(Delivery {
                    event: event.clone(),
                    receipt: Receipt::InProcess(offset),
                });
            }
        }
        while out.len() < max {
            let Some(event) = events.get((group.cursor - *base) as usize) else {
                break;
            };
            let offset = group.cursor;
            group.cursor += 1;
            group.pending.insert(offset, self.member);
            out.push(Delivery {
                event: event.clone(),
                receipt: Receipt::InProcess(offset),
            });
        }
        out
    }

    /// Acknowledges a delivery.
    pub fn ack(&self, receipt: &Receipt) {
        if let Receipt::InProcess(offset) = receipt {
            if let Some(group) = self.shared.lock().groups.get_mut(&self.group) {
                group.pending.remove(offset);
            }
        }
    }

    /// Gives a delivery back to the group for another attempt.
    pub fn nack(&self, receipt: &Receipt) {
        if let Receipt::InProcess(offset) = receipt {
            if let Some(group) = self.shared.lock().groups.get_mut(&self.group) {
                if group.pending.remove(offset).is_some() {
                    group.redeliver.push_back(*offset);
                }
            }
            self.shared.notify.notify_waiters();
        }
    }
}

impl Drop for InProcessSubscription {
    fn drop(&mut self) {
        let released = {
            let mut state = self.shared.lock();
            let Some(group) = state.groups.get_mut(&self.group) else {
                return;
            };
            let mut mine: Vec<u64> = group
                .pending
                .iter()
                .filter(|(_, member)| **member == self.member)
                .map(|(offset, _)| *offset)
                .collect();
            mine.sort_unstable();
            for offset in &mine {
                group.pending.remove(offset);
            }
            // Oldest first, ahead of anything already waiting for redelivery.
            for offset in mine.iter().rev() {
                group.redeliver.push_front(*offset);
            }
            !mine.is_empty()
        };
        if released {
            self.shared.notify.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: usize) -> Event {
        Event::new(
            "test.happened",
            n.to_string(),
            serde_json::json!({ "n": n }),
        )
        .unwrap()
    }

    fn aggregates(batch: &[Delivery]) -> Vec<String> {
        batch.iter().map(|d| d.event.aggregate_id.clone()).collect()
    }

    const SHORT: Duration = Duration::from_millis(20);

    #[tokio::test]
    async fn every_group_sees_every_event_once() {
        let bus = InProcessBus::new();
        let mut a = bus.subscribe("a");
        let mut b = bus.subscribe("b");
        for n in 0..3 {
            bus.publish(event(n));
        }
        let batch_a = a.next_batch(10, SHORT).await;
        let batch_b = b.next_batch(10, SHORT).await;
        assert_eq!(aggregates(&batch_a), ["0", "1", "2"]);
        assert_eq!(aggregates(&batch_b), ["0", "1", "2"]);
        for d in &batch_a {
            a.ack(&d.receipt);
        }
        assert!(a.next_batch(10, SHORT).await.is_empty());
    }

    #[tokio::test]
    async fn members_of_one_group_share_the_work() {
        let bus = InProcessBus::new();
        let mut first = bus.subscribe("g");
        let mut second = bus.subscribe("g");
        for n in 0..4 {
            bus.publish(event(n));
        }
        let one = first.next_batch(2, SHORT).await;
        let two = second.next_batch(10, SHORT).await;
        assert_eq!(aggregates(&one), ["0", "1"]);
        assert_eq!(aggregates(&two), ["2", "3"]);
    }

    #[tokio::test]
    async fn a_late_group_reads_retained_history() {
        let bus = InProcessBus::new();
        bus.publish(event(0));
        let mut late = bus.subscribe("late");
        assert_eq!(aggregates(&late.next_batch(10, SHORT).await), ["0"]);
    }

    #[tokio::test]
    async fn dropped_member_hands_its_unacked_events_back() {
        let bus = InProcessBus::new();
        let mut crashed = bus.subscribe("g");
        for n in 0..3 {
            bus.publish(event(n));
        }
        let batch = crashed.next_batch(10, SHORT).await;
        crashed.ack(&batch[0].receipt);
        drop(crashed);
        let mut restarted = bus.subscribe("g");
        assert_eq!(
            aggregates(&restarted.next_batch(10, SHORT).await),
            ["1", "2"]
        );
    }

    #[tokio::test]
    async fn nack_redelivers_and_waiters_wake_on_publish() {
        let bus = InProcessBus::new();
        let mut member = bus.subscribe("g");
        let publisher = bus.clone();
        let waiter = tokio::spawn(async move {
            let batch = member.next_batch(10, Duration::from_secs(5)).await;
            member.nack(&batch[0].receipt);
            let again = member.next_batch(10, SHORT).await;
            (aggregates(&batch), aggregates(&again))
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        publisher.publish(event(7));
        let (first, again) = waiter.await.unwrap();
        assert_eq!(first, ["7"]);
        assert_eq!(again, ["7"]);
    }

    #[tokio::test]
    async fn retention_drops_the_oldest() {
        let bus = InProcessBus::with_retention(2);
        let mut member = bus.subscribe("g");
        for n in 0..3 {
            bus.publish(event(n));
        }
        assert_eq!(aggregates(&member.next_batch(10, SHORT).await), ["1", "2"]);
    }
}
