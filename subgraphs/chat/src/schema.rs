//! The chat subgraph's GraphQL schema: conversations, messages, the caller's unread counts, and
//! `messageAdded` for live delivery.
//!
//! Access rule: only members of a conversation may read it, send to it or subscribe to it;
//! everyone else gets `extensions.code = "FORBIDDEN"`. A `Conversation` object is only ever
//! built after that check, for one viewer, so its fields need not repeat it.

use std::sync::Arc;

use async_graphql::futures_util::stream::BoxStream;
use async_graphql::{
    ComplexObject, Context, ErrorExtensions, Object, Result, Schema, SimpleObject, Subscription, ID,
};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use switchyard_subgraph_kit::auth::{caller, JwtVerifier};
use switchyard_subgraph_kit::events::OutboxRelay;
use switchyard_subgraph_kit::pagination::{decode_cursor, encode_cursor, PageInfo};
use switchyard_subgraph_kit::MemberDirectory;
use tokio_util::sync::CancellationToken;

use crate::fanout::Fanout;
use crate::store::{
    parse_id, ConversationRow, MessageRow, Store, StoreError, MAX_MEMBERS, MAX_PAGE,
};

/// The executable chat schema.
pub type ChatSchema = Schema<Query, Mutation, SubscriptionRoot>;

/// What resolvers share: the store, live delivery, the outbox relay to wake.
#[derive(Clone)]
pub struct ChatState {
    /// The conversations and messages.
    pub store: Store,
    /// Live delivery to subscribers on every replica.
    pub fanout: Arc<dyn Fanout>,
    /// Woken after each committed send so `message.sent` leaves in milliseconds.
    pub relay: OutboxRelay,
    /// Cancelled when the service shuts down: open subscriptions complete.
    pub shutdown: CancellationToken,
    /// Which members exist (from `account.*` events): conversation members are checked against
    /// it, and deleted members' tokens refused.
    pub members: MemberDirectory,
}

/// Builds the schema; `state` and `verifier` are absent only when printing the SDL.
pub fn build_schema(state: Option<ChatState>, verifier: Option<JwtVerifier>) -> ChatSchema {
    // Subscriptions are left out of federation SDL by default (Apollo Server compatibility);
    // the gateway composes and routes them, so publish `messageAdded`.
    let mut builder = switchyard_subgraph_kit::guards::apply(
        Schema::build(Query, Mutation, SubscriptionRoot)
            .enable_federation()
            .enable_subscription_in_federation(),
    );
    if let Some(state) = state {
        builder = builder.data(state.members.clone()).data(state);
    }
    if let Some(verifier) = verifier {
        builder = builder.data(verifier);
    }
    builder.finish()
}

fn error(code: &'static str, message: impl Into<String>) -> async_graphql::Error {
    async_graphql::Error::new(message).extend_with(|_, e| e.set("code", code))
}

/// A store failure as a GraphQL error with a code (async-graphql's blanket `From<Display>`
/// would drop the code, so every store call maps through here explicitly).
fn store_error(e: StoreError) -> async_graphql::Error {
    {
        match e {
            StoreError::NotFound => error("NOT_FOUND", e.to_string()),
            StoreError::Forbidden => error("FORBIDDEN", e.to_string()),
            StoreError::Invalid(message) => error("BAD_USER_INPUT", message),
            other => {
                // Details go to the log, not to the client.
                tracing::error!(error = %other, "chat store failure");
                error("INTERNAL_SERVER_ERROR", "chat is unavailable right now")
            }
        }
    }
}

fn state<'a>(ctx: &Context<'a>) -> Result<&'a ChatState> {
    ctx.data::<ChatState>()
}

/// A page size argument: absent → `default`; outside 0..=MAX_PAGE → a clear error.
fn page_size(name: &str, value: Option<i32>, default: usize) -> Result<usize> {
    match value {
        None => Ok(default),
        Some(n) if (0..=MAX_PAGE as i32).contains(&n) => Ok(n as usize),
        Some(n) => Err(error(
            "BAD_USER_INPUT",
            format!("`{name}` must be between 0 and {MAX_PAGE}, got {n}"),
        )),
    }
}

fn bad_cursor(name: &str) -> async_graphql::Error {
    error(
        "BAD_USER_INPUT",
        format!("`{name}` is not a cursor this field returned"),
    )
}

/// A member, as far as chat knows one: its id, and its conversations for the member itself.
pub struct Member {
    id: ID,
}

#[Object]
impl Member {
    /// The member id (= account id).
    async fn id(&self) -> &ID {
        &self.id
    }

    /// The member's conversations, most recently active first. Only the member may list them.
    /// Nullable so a chat outage nulls only this field, not the member profile it hangs off.
    async fn conversations(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
    ) -> Result<Option<ConversationConnection>> {
        let me = caller(ctx).await?;
        if me.member_id != self.id.as_str() {
            return Err(error(
                "FORBIDDEN",
                "only the member can list their own conversations",
            ));
        }
        let first = page_size("first", first, 20)?;
        let after = match after {
            None => None,
            Some(cursor) => Some(
                decode_cursor(&cursor)
                    .and_then(|key| {
                        let (time, id) = key.split_once('|')?;
                        Some((time.parse::<i64>().ok()?, id.to_owned()))
                    })
                    .ok_or_else(|| bad_cursor("after"))?,
            ),
        };
        let page = state(ctx)?
            .store
            .conversations_of(&me.member_id, first, after)
            .await
            .map_err(store_error)?;
        let edges: Vec<ConversationEdge> = page
            .conversations
            .into_iter()
            .map(|row| ConversationEdge {
                cursor: encode_cursor(&format!(
                    "{}|{}",
                    row.last_activity_at.timestamp_micros(),
                    row.id
                )),
                node: Conversation {
                    row,
                    viewer: me.member_id.clone(),
                },
            })
            .collect();
        Ok(Some(ConversationConnection {
            page_info: PageInfo {
                has_next_page: page.has_next,
                has_previous_page: false,
                start_cursor: edges.first().map(|e| e.cursor.clone()),
                end_cursor: edges.last().map(|e| e.cursor.clone()),
            },
            edges,
            total_count: clamp_count(page.total),
        }))
    }
}

fn clamp_count(n: i64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// A conversation, as seen by one of its members.
pub struct Conversation {
    row: ConversationRow,
    viewer: String,
}

#[Object]
impl Conversation {
    /// The conversation id.
    async fn id(&self) -> ID {
        ID(self.row.id.clone())
    }

    /// Everyone in the conversation, the viewer included.
    async fn members(&self, ctx: &Context<'_>) -> Result<Vec<Member>> {
        let ids = state(ctx)?
            .store
            .members(&self.row.id)
            .await
            .map_err(store_error)?;
        Ok(ids.into_iter().map(|id| Member { id: ID(id) }).collect())
    }

    /// The latest `last` messages before the cursor `before`, oldest first. Page back in time
    /// with `before: pageInfo.startCursor` while `pageInfo.hasPreviousPage`.
    async fn messages(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] last: Option<i32>,
        before: Option<String>,
    ) -> Result<MessageConnection> {
        let last = page_size("last", last, 20)?;
        let before = match before {
            None => None,
            Some(cursor) => Some(
                decode_cursor(&cursor)
                    .and_then(|key| key.parse::<i64>().ok())
                    .ok_or_else(|| bad_cursor("before"))?,
            ),
        };
        let page = state(ctx)?
            .store
            .messages(&self.row, last, before)
            .await
            .map_err(store_error)?;
        let edges: Vec<MessageEdge> = page
            .messages
            .into_iter()
            .map(|row| MessageEdge {
                cursor: encode_cursor(&row.seq.to_string()),
                node: Message::from(row),
            })
            .collect();
        Ok(MessageConnection {
            page_info: PageInfo {
                has_next_page: page.has_newer,
                has_previous_page: page.has_older,
                start_cursor: edges.first().map(|e| e.cursor.clone()),
                end_cursor: edges.last().map(|e| e.cursor.clone()),
            },
            edges,
            total_count: clamp_count(page.total),
        })
    }

    /// Messages the viewer has not read yet (their own messages count as read).
    async fn unread_count(&self, ctx: &Context<'_>) -> Result<i32> {
        let n = state(ctx)?
            .store
            .unread_count(&self.row, &self.viewer)
            .await
            .map_err(store_error)?;
        Ok(clamp_count(n))
    }

    /// The newest message.
    async fn last_message(&self, ctx: &Context<'_>) -> Result<Option<Message>> {
        let message = state(ctx)?
            .store
            .last_message(&self.row)
            .await
            .map_err(store_error)?;
        Ok(message.map(Message::from))
    }

    /// When the conversation was started.
    async fn created_at(&self) -> DateTime<Utc> {
        self.row.created_at
    }
}

/// One message in a conversation.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Message {
    /// The message id.
    id: ID,
    /// The text.
    body: String,
    /// When it was sent.
    sent_at: DateTime<Utc>,
    #[graphql(skip)]
    sender_id: String,
}

#[ComplexObject]
impl Message {
    /// Who sent it.
    async fn sender(&self) -> Member {
        Member {
            id: ID(self.sender_id.clone()),
        }
    }
}

impl From<MessageRow> for Message {
    fn from(row: MessageRow) -> Self {
        Message {
            id: ID(row.id),
            body: row.body,
            sent_at: row.sent_at,
            sender_id: row.sender_id,
        }
    }
}

/// A page of messages.
#[derive(SimpleObject)]
pub struct MessageConnection {
    /// The messages, oldest first, with their cursors.
    edges: Vec<MessageEdge>,
    /// Where this page sits.
    page_info: PageInfo,
    /// Messages in the conversation.
    total_count: i32,
}

/// A message and its cursor.
#[derive(SimpleObject)]
pub struct MessageEdge {
    /// Pass as `before` to get older messages.
    cursor: String,
    /// The message.
    node: Message,
}

/// A page of conversations.
#[derive(SimpleObject)]
pub struct ConversationConnection {
    /// The conversations with their cursors.
    edges: Vec<ConversationEdge>,
    /// Where this page sits.
    page_info: PageInfo,
    /// The member's conversations.
    total_count: i32,
}

/// A conversation and its cursor.
#[derive(SimpleObject)]
pub struct ConversationEdge {
    /// Pass as `after` to get the next page.
    cursor: String,
    /// The conversation.
    node: Conversation,
}

/// Queries.
pub struct Query;

#[Object]
impl Query {
    /// A conversation the caller belongs to (`FORBIDDEN` for others, null when it does not exist).
    async fn conversation(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Conversation>> {
        load_conversation(ctx, &id).await
    }

    /// How many of the caller's conversations have unread messages.
    async fn unread_conversations(&self, ctx: &Context<'_>) -> Result<i32> {
        let me = caller(ctx).await?;
        let n = state(ctx)?
            .store
            .unread_conversations(&me.member_id)
            .await
            .map_err(store_error)?;
        Ok(clamp_count(n))
    }

    /// Federation: a conversation by key, under the same access rule.
    #[graphql(entity)]
    async fn find_conversation_by_id(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> Result<Option<Conversation>> {
        load_conversation(ctx, &id).await
    }

    /// Federation: chat contributes `Member.conversations`.
    #[graphql(entity)]
    async fn find_member_by_id(&self, id: ID) -> Member {
        Member { id }
    }
}

async fn load_conversation(ctx: &Context<'_>, id: &ID) -> Result<Option<Conversation>> {
    let me = caller(ctx).await?;
    match state(ctx)?.store.conversation_for(id, &me.member_id).await {
        Ok(row) => Ok(Some(Conversation {
            row,
            viewer: me.member_id,
        })),
        Err(StoreError::NotFound) => Ok(None),
        Err(e) => Err(store_error(e)),
    }
}

/// Mutations.
pub struct Mutation;

#[Object]
impl Mutation {
    /// Starts a conversation between the caller and `with`. A 1:1 conversation with someone
    /// the caller already has one with returns the existing one. `BAD_USER_INPUT` naming the
    /// ids in `with` that are not members (never were, or deleted their account).
    async fn start_conversation(&self, ctx: &Context<'_>, with: Vec<ID>) -> Result<Conversation> {
        let me = caller(ctx).await?;
        let others: Vec<String> = with.into_iter().map(|id| id.0).collect();
        let state = state(ctx)?;
        // A conversation with someone who is not a member would hold a reference nobody can
        // resolve; chat checks against what it learned from auth's events, not auth's database.
        // Ids the store would refuse anyway (malformed, too many) are left to its messages.
        let mut referenced: Vec<String> = Vec::new();
        for id in others.iter().filter_map(|id| parse_id("member", id).ok()) {
            if id != me.member_id && !referenced.contains(&id) {
                referenced.push(id);
            }
        }
        if referenced.len() < MAX_MEMBERS {
            state.members.require_existing(&referenced).await?;
        }
        let row = state
            .store
            .start_conversation(&me.member_id, &others)
            .await
            .map_err(store_error)?;
        Ok(Conversation {
            row,
            viewer: me.member_id,
        })
    }

    /// Sends a message to a conversation the caller belongs to; subscribers get it at once.
    async fn send_message(
        &self,
        ctx: &Context<'_>,
        conversation_id: ID,
        body: String,
    ) -> Result<Message> {
        let me = caller(ctx).await?;
        let state = state(ctx)?;
        let sealed = state
            .store
            .send_message(&conversation_id, &me.member_id, &body)
            .await
            .map_err(store_error)?;
        state.relay.wake();
        // The message is stored; a failed live delivery only delays it until the next fetch.
        if let Err(e) = state.fanout.publish(&sealed).await {
            tracing::warn!(error = %e, "live delivery of a chat message failed");
        }
        Ok(Message {
            id: ID(sealed.id),
            body,
            sent_at: DateTime::from_timestamp_micros(sealed.sent_at_micros).unwrap_or_default(),
            sender_id: sealed.sender_id,
        })
    }

    /// Marks everything in the conversation read for the caller.
    async fn mark_read(&self, ctx: &Context<'_>, conversation_id: ID) -> Result<Conversation> {
        let me = caller(ctx).await?;
        let row = state(ctx)?
            .store
            .mark_read(&conversation_id, &me.member_id)
            .await
            .map_err(store_error)?;
        Ok(Conversation {
            row,
            viewer: me.member_id,
        })
    }
}

/// Subscriptions (graphql-transport-ws on `/graphql`).
pub struct SubscriptionRoot;

#[Subscription(name = "Subscription")]
impl SubscriptionRoot {
    /// New messages in a conversation the caller belongs to, as they are sent (on any replica).
    async fn message_added(
        &self,
        ctx: &Context<'_>,
        conversation_id: ID,
    ) -> Result<BoxStream<'static, Message>> {
        let me = caller(ctx).await?;
        let state = state(ctx)?.clone();
        let conversation = state
            .store
            .conversation_for(&conversation_id, &me.member_id)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => error("NOT_FOUND", "conversation not found"),
                other => store_error(other),
            })?;
        let receiver = state
            .fanout
            .subscribe(&conversation.id)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "cannot subscribe to live chat delivery");
                error(
                    "INTERNAL_SERVER_ERROR",
                    "live delivery is unavailable right now",
                )
            })?;
        let store = state.store.clone();
        let members = state.members.clone();
        let subscriber = me.member_id;
        let stream = receiver
            .take_until(state.shutdown.cancelled_owned())
            // The token was checked when the subscription started; a subscriber whose account
            // is deleted meanwhile gets nothing more (the check is in memory, per message).
            .take_while(move |_| {
                let members = members.clone();
                let subscriber = subscriber.clone();
                async move { !members.is_deleted(&subscriber).await }
            })
            .filter_map(move |sealed| {
                let opened = store.open_message(&sealed);
                async move {
                    match opened {
                        Ok(row) => Some(Message::from(row)),
                        Err(e) => {
                            tracing::error!(error = %e, "cannot open a delivered chat message");
                            None
                        }
                    }
                }
            });
        Ok(stream.boxed())
    }
}
