//! What the content service learns from other services' events: who is connected (for the
//! connections-only visibility rule: granted by `connection.accepted`, revoked by
//! `connection.removed`) and which accounts were deleted (their content goes too).

use serde::Deserialize;
use sqlx::AnyConnection;
use switchyard_subgraph_kit::events::BoxError;
use switchyard_subgraph_kit::{Event, EventHandler};

use crate::store::{apply_account_deleted, apply_connection, apply_disconnection};

/// The consumer group (the service name).
pub const GROUP: &str = "content";

/// Handles `connection.accepted`, `connection.removed` and `account.deleted`; ignores
/// everything else.
pub struct ContentEvents;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConnectionChanged {
    member_id: String,
    other_member_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccountDeleted {
    member_id: String,
}

impl EventHandler for ContentEvents {
    async fn handle(&self, conn: &mut AnyConnection, event: &Event) -> Result<(), BoxError> {
        match event.event_type.as_str() {
            "connection.accepted" => {
                let p: ConnectionChanged = event.payload_as()?;
                let at = event.occurred_at.timestamp_micros();
                apply_connection(conn, &p.member_id, &p.other_member_id, at).await?;
            }
            "connection.removed" => {
                let p: ConnectionChanged = event.payload_as()?;
                let at = event.occurred_at.timestamp_micros();
                apply_disconnection(conn, &p.member_id, &p.other_member_id, at).await?;
            }
            "account.deleted" => {
                let p: AccountDeleted = event.payload_as()?;
                apply_account_deleted(conn, &p.member_id).await?;
            }
            _ => {}
        }
        Ok(())
    }
}
