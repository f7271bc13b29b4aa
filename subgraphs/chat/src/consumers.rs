//! What chat does with other services' events (consumer group `chat`).
//!
//! - `account.deleted`: the member's data is erased. They leave every conversation, so their
//!   id stops appearing in `members` and nothing more is delivered to them; the messages they
//!   sent are deleted (a message's body is its sender's data; the others' messages stay, so a
//!   conversation keeps its shape with gaps); a conversation nobody is left in goes with its
//!   messages, and a 1:1 conversation's pair key no longer names them.

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
        for sql in [
            "DELETE FROM messages WHERE sender_id = $1",
            "DELETE FROM conversation_members WHERE member_id = $1",
            "UPDATE conversations SET direct_key = NULL
             WHERE direct_key IS NOT NULL AND direct_key LIKE '%' || $1 || '%'",
        ] {
            sqlx::query(sql)
                .bind(deleted.member_id.clone())
                .execute(&mut *conn)
                .await?;
        }
        for sql in [
            "DELETE FROM messages WHERE conversation_id NOT IN
                 (SELECT conversation_id FROM conversation_members)",
            "DELETE FROM conversations WHERE id NOT IN
                 (SELECT conversation_id FROM conversation_members)",
        ] {
            sqlx::query(sql).execute(&mut *conn).await?;
        }
        Ok(())
    }
}
