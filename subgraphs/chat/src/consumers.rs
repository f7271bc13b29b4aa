//! What chat does with other services' events (consumer group `chat`).
//!
//! - `account.deleted`: the member leaves every conversation, so their id stops appearing in
//!   `members` and nothing more is delivered to them. Their past messages stay with the
//!   conversation (the other members' history is theirs too).

use serde::Deserialize;
use sqlx::AnyConnection;
use switchyard_subgraph_kit::events::{BoxError, Event};
use switchyard_subgraph_kit::EventHandler;

/// The consumer group chat reads the bus as.
pub const CONSUMER_GROUP: &str = "chat";

/// Applies the events chat cares about; ignores the rest.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChatEvents;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccountDeleted {
    member_id: String,
}

impl EventHandler for ChatEvents {
    async fn handle(&self, conn: &mut AnyConnection, event: &Event) -> Result<(), BoxError> {
        if event.event_type != "account.deleted" {
            return Ok(());
        }
        let deleted: AccountDeleted = event.payload_as()?;
        sqlx::query("DELETE FROM conversation_members WHERE member_id = $1")
            .bind(deleted.member_id)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}
