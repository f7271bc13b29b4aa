//! What the profile service consumes: `account.created` creates the member, `account.deleted`
//! removes it with its connections, requests and profile-view records (the kit's erasure
//! record is started in the same transaction). Consumer group [`CONSUMER_GROUP`].

use std::sync::Arc;

use serde::Deserialize;
use sqlx::AnyConnection;
use switchyard_subgraph_kit::events::BoxError;
use switchyard_subgraph_kit::{Event, EventHandler};

use crate::store::{GraphStore, MemberRecord};

/// The profile service's consumer group.
pub const CONSUMER_GROUP: &str = "profile";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccountCreated {
    member_id: String,
    handle: String,
    display_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccountDeleted {
    member_id: String,
}

/// Applies account events to the graph store (idempotently: the kit de-duplicates by event id,
/// and a member that already exists is left as it is, so a replay never resets a profile).
#[derive(Clone)]
pub struct AccountEvents {
    store: Arc<dyn GraphStore>,
}

impl AccountEvents {
    /// A handler writing to `store`.
    pub fn new(store: Arc<dyn GraphStore>) -> Self {
        AccountEvents { store }
    }
}

impl EventHandler for AccountEvents {
    async fn handle(&self, conn: &mut AnyConnection, event: &Event) -> Result<(), BoxError> {
        match event.event_type.as_str() {
            "account.created" => {
                let created: AccountCreated = event.payload_as()?;
                if self.store.member(&created.member_id).await?.is_some() {
                    return Ok(());
                }
                let display_name = created
                    .display_name
                    .filter(|n| !n.trim().is_empty())
                    .unwrap_or_else(|| created.handle.clone());
                let member = MemberRecord {
                    id: created.member_id,
                    handle: created.handle,
                    display_name,
                    headline: None,
                    location: None,
                    joined_at: event.occurred_at,
                };
                self.store.upsert_member_in(conn, &member).await?;
            }
            "account.deleted" => {
                let deleted: AccountDeleted = event.payload_as()?;
                self.store
                    .delete_member_in(conn, &deleted.member_id)
                    .await?;
                // Whom they viewed and who viewed them (the rate limiter's records) go too.
                sqlx::query(
                    "DELETE FROM profile_view_emissions WHERE member_id = $1 OR viewer_id = $1",
                )
                .bind(deleted.member_id)
                .execute(&mut *conn)
                .await?;
            }
            _ => {}
        }
        Ok(())
    }
}
