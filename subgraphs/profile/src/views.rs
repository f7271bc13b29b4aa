//! `profile.viewed`: emitted when a signed-in member reads someone else's profile, at most once
//! per viewer per member per hour.
//!
//! The durable limit is a conditional upsert in the service's SQL database (so replicas and
//! restarts share it), in the same transaction as the outbox row. A small in-memory map in front
//! of it answers the common "seen a minute ago" case without a write; entity resolution can ask
//! about dozens of members per request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::Serialize;
use sqlx::AnyPool;
use switchyard_subgraph_kit::events::outbox;
use switchyard_subgraph_kit::{Event, OutboxRelay};

/// At most one event per viewer per member in this window.
pub const VIEW_WINDOW: Duration = Duration::from_secs(3600);

/// Entries kept in memory before expired ones are swept.
const MEMORY_SWEEP_AT: usize = 100_000;

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS profile_view_emissions (
    member_id TEXT NOT NULL,
    viewer_id TEXT NOT NULL,
    emitted_at BIGINT NOT NULL,
    PRIMARY KEY (member_id, viewer_id)
)";

/// Creates the rate-limit table if missing.
pub async fn migrate(pool: &AnyPool) -> Result<(), sqlx::Error> {
    sqlx::query(SCHEMA).execute(pool).await?;
    Ok(())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ProfileViewed<'a> {
    member_id: &'a str,
    viewer_id: &'a str,
}

/// Records profile views and emits the rate-limited events.
#[derive(Clone)]
pub struct ViewTracker {
    pool: AnyPool,
    relay: Option<OutboxRelay>,
    recent: Arc<Mutex<HashMap<(String, String), Instant>>>,
}

impl ViewTracker {
    /// A tracker writing to `pool`'s outbox, waking `relay` after each event.
    pub fn new(pool: AnyPool, relay: Option<OutboxRelay>) -> Self {
        ViewTracker {
            pool,
            relay,
            recent: Arc::default(),
        }
    }

    /// Notes that `viewer` read `member`'s profile; emits in the background so the read does
    /// not wait for a write.
    pub fn viewed(&self, member: &str, viewer: &str) {
        if member == viewer || !self.first_in_window(member, viewer) {
            return;
        }
        let this = self.clone();
        let (member, viewer) = (member.to_owned(), viewer.to_owned());
        tokio::spawn(async move {
            match this.record(&member, &viewer).await {
                Ok(true) => {
                    if let Some(relay) = &this.relay {
                        relay.wake();
                    }
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "recording a profile view failed"),
            }
        });
    }

    fn first_in_window(&self, member: &str, viewer: &str) -> bool {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let key = (member.to_owned(), viewer.to_owned());
        let now = Instant::now();
        if recent
            .get(&key)
            .is_some_and(|at| now.duration_since(*at) < VIEW_WINDOW)
        {
            return false;
        }
        if recent.len() >= MEMORY_SWEEP_AT {
            recent.retain(|_, at| now.duration_since(*at) < VIEW_WINDOW);
        }
        recent.insert(key, now);
        true
    }

    /// Emits the event unless the database says one went out within the window; true if it
    /// emitted.
    pub async fn record(&self, member: &str, viewer: &str) -> Result<bool, crate::StoreError> {
        let now = Utc::now().timestamp_micros();
        let cutoff = now - VIEW_WINDOW.as_micros() as i64;
        let mut tx = switchyard_subgraph_kit::db::begin(&self.pool).await?;
        let claimed = sqlx::query(
            "INSERT INTO profile_view_emissions (member_id, viewer_id, emitted_at) VALUES ($1, $2, $3)
             ON CONFLICT (member_id, viewer_id) DO UPDATE SET emitted_at = excluded.emitted_at
             WHERE profile_view_emissions.emitted_at < $4",
        )
        .bind(member.to_owned())
        .bind(viewer.to_owned())
        .bind(now)
        .bind(cutoff)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        let event = Event::new(
            "profile.viewed",
            member,
            ProfileViewed {
                member_id: member,
                viewer_id: viewer,
            },
        )?;
        outbox::enqueue(&mut *tx, &event).await?;
        tx.commit().await?;
        Ok(true)
    }
}
