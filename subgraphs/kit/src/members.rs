//! Each service's own record of which members exist, built from auth's events.
//!
//! Services hold member ids they got from clients (conversation members, authors) and tokens that
//! stay valid for minutes after the account behind them is gone. Neither may be checked by asking
//! another service's database, so every service keeps a small table of its own,
//! `switchyard_member_directory`, written by its event consumer in the same transaction as its
//! other changes (so it is exactly as durable and as current as the rest of what the service
//! knows):
//!
//! - `account.created` records the member as existing;
//! - `account.deleted` records it as deleted (and an earlier or replayed `account.created` never
//!   brings it back).
//!
//! [`MemberDirectory`] is the reading side. Put it into the schema data and
//! [`crate::auth::caller`] refuses tokens of deleted accounts with `UNAUTHENTICATED`; call
//! [`MemberDirectory::require_existing`] before storing member ids a client sent. Wrap the
//! service's event handler with [`MemberDirectory::track`] so the table is kept.
//!
//! Refusing a token must be cheap (every resolver that needs a caller asks), so deleted ids are
//! also held in memory: loaded at open, added as soon as this process handles `account.deleted`,
//! and re-read from the table at most once a second (a replica sharing the database learns of a
//! deletion another replica's consumer handled within that second).

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_graphql::ErrorExtensions;
use chrono::Utc;
use serde::Deserialize;
use sqlx::{AnyConnection, AnyPool, Row};

use crate::events::{BoxError, Event, EventHandler};

/// Name of the directory table (in each service's own database).
pub const DIRECTORY_TABLE: &str = "switchyard_member_directory";

/// How often the in-memory set of deleted members is refreshed from the table (at most; only
/// when a token is checked).
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// Rows recorded this long before the last refresh are read again: a transaction stamps
/// `recorded_at` before it commits, and replicas' clocks differ a little.
const REFRESH_OVERLAP_MICROS: i64 = 60_000_000;

const SCHEMA: [&str; 2] = [
    "CREATE TABLE IF NOT EXISTS switchyard_member_directory (
        member_id TEXT PRIMARY KEY,
        deleted_at BIGINT,
        recorded_at BIGINT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS switchyard_member_directory_recorded
        ON switchyard_member_directory (recorded_at)",
];

/// Creates the directory table if missing (idempotent; [`MemberDirectory::open`] runs it).
pub async fn migrate(pool: &AnyPool) -> Result<(), sqlx::Error> {
    for statement in SCHEMA {
        sqlx::query(statement).execute(pool).await?;
    }
    Ok(())
}

/// What a service's directory says about one member id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// `account.created` was processed and no `account.deleted`.
    Active,
    /// `account.deleted` was processed.
    Deleted,
    /// Neither event was processed here: the id was never an account, or its sign-up has not
    /// reached this service yet.
    Unknown,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccountEvent {
    member_id: String,
}

/// Records `account.created` / `account.deleted` in the directory on `conn` (the consumer's open
/// transaction); other events change nothing. Returns the member id when it was a deletion.
pub async fn record(conn: &mut AnyConnection, event: &Event) -> Result<Option<String>, BoxError> {
    let deleted = match event.event_type.as_str() {
        "account.created" => false,
        "account.deleted" => true,
        _ => return Ok(None),
    };
    let AccountEvent { member_id } = event.payload_as()?;
    let now = Utc::now().timestamp_micros();
    if deleted {
        sqlx::query(
            "INSERT INTO switchyard_member_directory (member_id, deleted_at, recorded_at)
             VALUES ($1, $2, $3)
             ON CONFLICT (member_id) DO UPDATE
             SET deleted_at = excluded.deleted_at, recorded_at = excluded.recorded_at",
        )
        .bind(member_id.clone())
        .bind(event.occurred_at.timestamp_micros())
        .bind(now)
        .execute(&mut *conn)
        .await?;
        Ok(Some(member_id))
    } else {
        // A creation arriving after the deletion (a redelivery) must not undo it.
        sqlx::query(
            "INSERT INTO switchyard_member_directory (member_id, deleted_at, recorded_at)
             VALUES ($1, NULL, $2)
             ON CONFLICT (member_id) DO NOTHING",
        )
        .bind(member_id)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        Ok(None)
    }
}

/// A service's view of which members exist; cheap to clone (shared state).
#[derive(Clone)]
pub struct MemberDirectory {
    inner: Arc<Inner>,
}

struct Inner {
    pool: AnyPool,
    deleted: RwLock<HashSet<String>>,
    refresh: tokio::sync::Mutex<Refresh>,
    /// Woken after this process's consumer committed an `account.created`.
    arrivals: tokio::sync::Notify,
}

struct Refresh {
    at: Instant,
    /// `recorded_at` (µs) from which the next refresh reads.
    since: i64,
}

impl std::fmt::Debug for MemberDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let deleted = self.inner.deleted.read().map(|d| d.len()).unwrap_or(0);
        f.debug_struct("MemberDirectory")
            .field("deleted", &deleted)
            .finish_non_exhaustive()
    }
}

impl MemberDirectory {
    /// Creates the table in `pool` (the service's own database) if missing and loads the
    /// deleted members.
    pub async fn open(pool: AnyPool) -> Result<MemberDirectory, sqlx::Error> {
        migrate(&pool).await?;
        let started = Utc::now().timestamp_micros();
        let rows = sqlx::query(
            "SELECT member_id FROM switchyard_member_directory WHERE deleted_at IS NOT NULL",
        )
        .fetch_all(&pool)
        .await?;
        let deleted = rows
            .iter()
            .map(|row| row.try_get::<String, _>(0))
            .collect::<Result<HashSet<_>, _>>()?;
        Ok(MemberDirectory {
            inner: Arc::new(Inner {
                pool,
                deleted: RwLock::new(deleted),
                refresh: tokio::sync::Mutex::new(Refresh {
                    at: Instant::now(),
                    since: started - REFRESH_OVERLAP_MICROS,
                }),
                arrivals: tokio::sync::Notify::new(),
            }),
        })
    }

    /// `handler` with the directory kept up to date in the same transaction (run the service's
    /// consumer with this).
    pub fn track<H: EventHandler>(&self, handler: H) -> Tracked<H> {
        Tracked {
            directory: self.clone(),
            handler,
        }
    }

    /// Completes the next time this process's consumer commits an `account.created` (for a
    /// reader waiting for a member that signed up moments ago; create it before checking, so an
    /// arrival between the check and the wait is not missed).
    pub fn arrival(&self) -> tokio::sync::futures::Notified<'_> {
        self.inner.arrivals.notified()
    }

    /// Whether `member_id` is known here to be deleted (tokens of deleted accounts are refused).
    pub async fn is_deleted(&self, member_id: &str) -> bool {
        self.refresh_if_due().await;
        self.deleted_in_memory(member_id)
    }

    fn deleted_in_memory(&self, member_id: &str) -> bool {
        self.inner
            .deleted
            .read()
            .map(|d| d.contains(member_id))
            .unwrap_or(false)
    }

    fn remember_deleted(&self, member_id: String) {
        if let Ok(mut deleted) = self.inner.deleted.write() {
            deleted.insert(member_id);
        }
    }

    /// Reads deletions other replicas recorded, unless that was done in the last
    /// [`REFRESH_INTERVAL`] or another caller is doing it now. A failed read keeps what is known
    /// (it is retried at the next interval).
    async fn refresh_if_due(&self) {
        let Ok(mut state) = self.inner.refresh.try_lock() else {
            return;
        };
        if state.at.elapsed() < REFRESH_INTERVAL {
            return;
        }
        state.at = Instant::now();
        let started = Utc::now().timestamp_micros();
        let rows = sqlx::query(
            "SELECT member_id FROM switchyard_member_directory
             WHERE deleted_at IS NOT NULL AND recorded_at >= $1",
        )
        .bind(state.since)
        .fetch_all(&self.inner.pool)
        .await;
        match rows {
            Ok(rows) => {
                for row in rows {
                    if let Ok(id) = row.try_get::<String, _>(0) {
                        if !self.deleted_in_memory(&id) {
                            self.remember_deleted(id);
                        }
                    }
                }
                state.since = started - REFRESH_OVERLAP_MICROS;
            }
            Err(e) => tracing::warn!(error = %e, "cannot refresh the deleted members"),
        }
    }

    /// What this service knows about `member_id`.
    pub async fn state(&self, member_id: &str) -> Result<MemberState, sqlx::Error> {
        let row =
            sqlx::query("SELECT deleted_at FROM switchyard_member_directory WHERE member_id = $1")
                .bind(member_id.to_owned())
                .fetch_optional(&self.inner.pool)
                .await?;
        Ok(match row {
            None => MemberState::Unknown,
            Some(row) => match row.try_get::<Option<i64>, _>(0)? {
                Some(_) => MemberState::Deleted,
                None => MemberState::Active,
            },
        })
    }

    /// `Ok` when every id in `ids` is an existing member; otherwise a `BAD_USER_INPUT` error
    /// naming the ids that are not (unknown or deleted) in its message and in
    /// `extensions.unknownMembers`. For ids a client sent that the service is about to store.
    pub async fn require_existing<S: AsRef<str>>(&self, ids: &[S]) -> async_graphql::Result<()> {
        let mut missing: Vec<String> = Vec::new();
        for id in ids {
            let id = id.as_ref();
            let state = self.state(id).await.map_err(|e| {
                tracing::error!(error = %e, "cannot read the member directory");
                async_graphql::Error::new("the service is unavailable right now")
                    .extend_with(|_, ext| ext.set("code", "INTERNAL_SERVER_ERROR"))
            })?;
            if state != MemberState::Active && !missing.iter().any(|m| m == id) {
                missing.push(id.to_owned());
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = missing.iter().map(|id| format!("`{id}`")).collect();
        let message = if missing.len() == 1 {
            format!("no member with id {}", names[0])
        } else {
            format!("no members with ids {}", names.join(", "))
        };
        Err(
            async_graphql::Error::new(message).extend_with(move |_, ext| {
                ext.set("code", "BAD_USER_INPUT");
                ext.set(
                    "unknownMembers",
                    async_graphql::Value::List(
                        missing
                            .iter()
                            .map(|id| async_graphql::Value::String(id.clone()))
                            .collect(),
                    ),
                );
            }),
        )
    }
}

/// An event handler that also keeps the [`MemberDirectory`] (see [`MemberDirectory::track`]).
pub struct Tracked<H> {
    directory: MemberDirectory,
    handler: H,
}

impl<H: EventHandler> EventHandler for Tracked<H> {
    async fn handle(&self, conn: &mut AnyConnection, event: &Event) -> Result<(), BoxError> {
        let deleted = record(conn, event).await?;
        self.handler.handle(conn, event).await?;
        // Refusing the token before the transaction commits is harmless: the deletion is a fact,
        // and a rolled-back transaction is retried until it records it.
        if let Some(member_id) = deleted {
            self.directory.remember_deleted(member_id);
        }
        Ok(())
    }

    fn committed(&self, event: &Event) {
        self.handler.committed(event);
        if event.event_type == "account.created" {
            self.directory.inner.arrivals.notify_waiters();
        }
    }
}
