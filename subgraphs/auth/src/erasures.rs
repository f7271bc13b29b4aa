//! Auth's record of account erasures: which services have erased a deleted member.
//!
//! `deleteAccount` writes one pending row per service in [`ERASURE_SERVICES`], in the deletion's
//! transaction; each service's `erasure.completed` event (the kit's `erasure` saga) marks its
//! row, consumed in group [`CONSUMER_GROUP`]. `Query.accountErasure` reads the rows. Auth asks
//! no other service's database: it learns each state only from the events.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::{AnyConnection, AnyPool, Row};
use switchyard_subgraph_kit::erasure::COMPLETED_EVENT;
use switchyard_subgraph_kit::events::BoxError;
use switchyard_subgraph_kit::{Event, EventHandler};

use crate::store::from_micros;

/// Auth's consumer group.
pub const CONSUMER_GROUP: &str = "auth";

/// The services that hold member data and must each report an erasure (the platform's
/// services; auth is one of them, for its own rows and files).
pub const ERASURE_SERVICES: [&str; 5] = ["analytics", "auth", "chat", "content", "profile"];

/// The erasure table (created by `store::migrate`).
pub const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS auth_erasures (
        member_id TEXT NOT NULL,
        service TEXT NOT NULL,
        requested_at BIGINT NOT NULL,
        completed_at BIGINT,
        PRIMARY KEY (member_id, service)
    )";

/// Records on `conn` (the deletion's transaction) that `member_id`'s erasure was requested at
/// `at` (µs) from every service.
pub async fn request(
    conn: &mut AnyConnection,
    member_id: &str,
    at: i64,
) -> Result<(), sqlx::Error> {
    for service in ERASURE_SERVICES {
        sqlx::query(
            "INSERT INTO auth_erasures (member_id, service, requested_at, completed_at)
             VALUES ($1, $2, $3, NULL) ON CONFLICT (member_id, service) DO NOTHING",
        )
        .bind(member_id.to_owned())
        .bind(service)
        .bind(at)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// One member's erasure, as auth knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasureStatus {
    /// The member.
    pub member_id: String,
    /// When the account was deleted.
    pub requested_at: DateTime<Utc>,
    /// Each service, by name.
    pub services: Vec<ServiceState>,
}

/// One service's part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceState {
    /// The service's name.
    pub service: String,
    /// When it reported the erasure finished; `None` until then.
    pub erased_at: Option<DateTime<Utc>>,
}

/// The erasure of `member_id`, if its account was deleted.
pub async fn status(pool: &AnyPool, member_id: &str) -> Result<Option<ErasureStatus>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT service, requested_at, completed_at FROM auth_erasures
         WHERE member_id = $1 ORDER BY service",
    )
    .bind(member_id.to_owned())
    .fetch_all(pool)
    .await?;
    let mut requested_at = None;
    let mut services = Vec::with_capacity(rows.len());
    for row in &rows {
        let requested: i64 = row.try_get("requested_at")?;
        requested_at = Some(requested_at.map_or(requested, |r: i64| r.min(requested)));
        services.push(ServiceState {
            service: row.try_get("service")?,
            erased_at: row
                .try_get::<Option<i64>, _>("completed_at")?
                .map(from_micros),
        });
    }
    Ok(requested_at.map(|at| ErasureStatus {
        member_id: member_id.to_owned(),
        requested_at: from_micros(at),
        services,
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Completed {
    service: String,
    member_id: String,
    completed_at: DateTime<Utc>,
}

/// Marks services' erasures finished from their `erasure.completed` events; ignores the rest.
#[derive(Debug, Clone, Copy, Default)]
pub struct AuthEvents;

impl EventHandler for AuthEvents {
    async fn handle(&self, conn: &mut AnyConnection, event: &Event) -> Result<(), BoxError> {
        if event.event_type != COMPLETED_EVENT {
            return Ok(());
        }
        let done: Completed = event.payload_as()?;
        let at = done.completed_at.timestamp_micros();
        // A service that was not asked (or a report that overtook the deletion's commit)
        // still counts: requested_at is then the report's own time.
        sqlx::query(
            "INSERT INTO auth_erasures (member_id, service, requested_at, completed_at)
             VALUES ($1, $2, $3, $3)
             ON CONFLICT (member_id, service) DO UPDATE SET completed_at = excluded.completed_at",
        )
        .bind(done.member_id)
        .bind(done.service)
        .bind(at)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}
