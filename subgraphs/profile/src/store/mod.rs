//! The profile service's graph store: members, connection requests and connections, and the
//! traversals the product needs (degree, mutuals, people you may know).
//!
//! [`GraphStore`] has three backends that one conformance suite (`tests/conformance.rs`) holds to
//! the same behaviour:
//! - [`EmbeddedGraphStore`] (default): rows in SQLite (or PostgreSQL) for durability, every read
//!   and traversal on an in-memory [`AdjacencyIndex`] rebuilt at start-up.
//! - [`FalkorGraphStore`] (feature `falkordb`): FalkorDB over the Redis protocol, one atomic
//!   Cypher statement per operation; any number of service instances can share one graph.
//! - [`Neo4jGraphStore`] (feature `neo4j`): Neo4j or Memgraph over Bolt, Cypher with parameters.
//!
//! All write the `connection.accepted` event to the service's SQL outbox; the embedded store
//! does it in the same transaction as the change, FalkorDB through an outbox node written with
//! the change and handed over afterwards (see `falkor.rs`).

pub mod embedded;
#[cfg(feature = "falkordb")]
pub mod falkor;
pub mod index;
#[cfg(feature = "neo4j")]
pub mod neo4j;
pub mod synthetic;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::AnyConnection;
use switchyard_subgraph_kit::{Event, EventError};

pub use embedded::EmbeddedGraphStore;
#[cfg(feature = "falkordb")]
pub use falkor::{FalkorConfig, FalkorGraphStore};
pub use index::{AdjacencyIndex, NodeId};
#[cfg(feature = "neo4j")]
pub use neo4j::{Neo4jConfig, Neo4jGraphStore};

/// The largest page or list any store call returns.
pub const MAX_PAGE: usize = 100;

/// A member as the profile service stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    /// Member id (the account's UUID).
    pub id: String,
    /// Unique handle (from auth).
    pub handle: String,
    /// Name shown to others.
    pub display_name: String,
    /// One-line professional headline.
    pub headline: Option<String>,
    /// Free-text location.
    pub location: Option<String>,
    /// When the member joined.
    pub joined_at: DateTime<Utc>,
}

/// A partial profile update: `None` leaves a field unchanged; `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileUpdate {
    /// New display name.
    pub display_name: Option<String>,
    /// New headline, or clear it.
    pub headline: Option<Option<String>>,
    /// New location, or clear it.
    pub location: Option<Option<String>>,
}

impl ProfileUpdate {
    /// Applies the update to a record.
    pub fn apply(&self, member: &mut MemberRecord) {
        if let Some(name) = &self.display_name {
            member.display_name = name.clone();
        }
        if let Some(headline) = &self.headline {
            member.headline = headline.clone();
        }
        if let Some(location) = &self.location {
            member.location = location.clone();
        }
    }
}

/// What a connection request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestOutcome {
    /// A new pending request.
    Requested,
    /// The same request was already pending.
    AlreadyRequested,
    /// The other member had requested too, so they are now connected.
    Connected,
    /// They were already connected.
    AlreadyConnected,
}

/// What accepting a request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptOutcome {
    /// Newly connected.
    Connected,
    /// Already connected (a repeated accept changes nothing).
    AlreadyConnected,
}

/// How far apart two members are, capped at 3 hops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Degree {
    /// Directly connected.
    First,
    /// Share a connection.
    Second,
    /// Three hops apart.
    Third,
    /// More than three hops apart, or not connected at all.
    OutOfNetwork,
}

impl Degree {
    /// The degree of a path with `members` members (ends included).
    pub fn of_path(members: usize) -> Degree {
        match members {
            2 => Degree::First,
            3 => Degree::Second,
            4 => Degree::Third,
            _ => Degree::OutOfNetwork,
        }
    }
}

/// A degree and one shortest path (member ids, `from` and `to` included; empty when out of
/// network).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DegreeResult {
    /// The degree.
    pub degree: Degree,
    /// The path's member ids.
    pub path: Vec<String>,
}

/// One page of a member's connections, ordered by member id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionsPage {
    /// The connected members on this page.
    pub members: Vec<MemberRecord>,
    /// More connections follow the last one.
    pub has_next_page: bool,
    /// All connections of the member.
    pub total_count: usize,
}

/// A suggested member with the number of connections in common.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suggestion {
    /// The suggested member.
    pub member: MemberRecord,
    /// Connections the two have in common.
    pub mutual_count: usize,
}

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No member with this id (or handle).
    #[error("no member {0}")]
    NotFound(String),
    /// A member tried to connect to themselves.
    #[error("a member cannot connect to themselves")]
    SelfConnection,
    /// Accepting a request that does not exist.
    #[error("no pending connection request from {0}")]
    NoPendingRequest(String),
    /// The SQL database failed.
    #[error("profile database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The graph server failed.
    #[error("graph database error: {0}")]
    Graph(String),
    /// The outbox failed.
    #[error("event outbox error: {0}")]
    Event(#[from] EventError),
}

/// The `connection.accepted` / `connection.removed` payload (the member who acted is
/// `memberId`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionAccepted<'a> {
    /// The member who accepted (or whose request completed the pair).
    pub member_id: &'a str,
    /// The other member.
    pub other_member_id: &'a str,
}

/// The `connection.accepted` event for `accepter` and `other`.
pub fn connection_accepted(accepter: &str, other: &str) -> Result<Event, StoreError> {
    Ok(Event::new(
        "connection.accepted",
        accepter,
        ConnectionAccepted {
            member_id: accepter,
            other_member_id: other,
        },
    )?)
}

/// The `connection.removed` event: `remover` ended the connection with `other`. Services that
/// granted anything on the strength of `connection.accepted` (content's connections-only
/// visibility) revoke it on this event.
pub fn connection_removed(remover: &str, other: &str) -> Result<Event, StoreError> {
    Ok(Event::new(
        "connection.removed",
        remover,
        ConnectionAccepted {
            member_id: remover,
            other_member_id: other,
        },
    )?)
}

/// Members, connection requests, connections and traversals over them.
///
/// Every call naming a member that does not exist fails with [`StoreError::NotFound`], except
/// [`GraphStore::member`] / [`GraphStore::member_by_handle`] (which return `None`) and the
/// idempotent deletes.
#[async_trait]
pub trait GraphStore: Send + Sync + 'static {
    /// Creates or replaces a member's profile fields.
    async fn upsert_member(&self, member: &MemberRecord) -> Result<(), StoreError>;

    /// [`GraphStore::upsert_member`] inside the event consumer's open transaction on the
    /// service's SQL database, so the change commits with the consumer's de-duplication record.
    /// Backends whose data lives elsewhere apply it directly (it is idempotent, so a redelivery
    /// after a crash between the two commits is harmless).
    async fn upsert_member_in(
        &self,
        conn: &mut AnyConnection,
        member: &MemberRecord,
    ) -> Result<(), StoreError> {
        let _ = conn;
        self.upsert_member(member).await
    }

    /// A member by id.
    async fn member(&self, id: &str) -> Result<Option<MemberRecord>, StoreError>;

    /// A member by handle (case-insensitive).
    async fn member_by_handle(&self, handle: &str) -> Result<Option<MemberRecord>, StoreError>;

    /// Updates a member's editable fields and returns the result.
    async fn update_profile(
        &self,
        id: &str,
        update: &ProfileUpdate,
    ) -> Result<MemberRecord, StoreError>;

    /// Deletes a member with its connections and requests; false if there was none.
    async fn delete_member(&self, id: &str) -> Result<bool, StoreError>;

    /// [`GraphStore::delete_member`] inside the event consumer's transaction (see
    /// [`GraphStore::upsert_member_in`]).
    async fn delete_member_in(
        &self,
        conn: &mut AnyConnection,
        id: &str,
    ) -> Result<bool, StoreError> {
        let _ = conn;
        self.delete_member(id).await
    }

    /// `from` asks to connect with `to`. If `to` had already asked `from`, they connect (and
    /// `connection.accepted` is emitted with `from` as the accepter).
    async fn request_connection(&self, from: &str, to: &str) -> Result<RequestOutcome, StoreError>;

    /// `member` accepts `from`'s pending request; idempotent once connected.
    async fn accept_connection(
        &self,
        member: &str,
        from: &str,
    ) -> Result<AcceptOutcome, StoreError>;

    /// `member` declines `from`'s pending request; false if there was none.
    async fn decline_connection(&self, member: &str, from: &str) -> Result<bool, StoreError>;

    /// Removes the connection between `member` and `other` and any pending request between
    /// them (emitting `connection.removed` when a connection went); false if there was neither.
    async fn remove_connection(&self, member: &str, other: &str) -> Result<bool, StoreError>;

    /// Members whose requests to `member` are pending, oldest first.
    async fn pending_requests(&self, member: &str) -> Result<Vec<MemberRecord>, StoreError>;

    /// Up to `first` (capped at [`MAX_PAGE`]) connections of `member` with ids after `after`,
    /// ordered by member id.
    async fn connections(
        &self,
        member: &str,
        first: usize,
        after: Option<&str>,
    ) -> Result<ConnectionsPage, StoreError>;

    /// How many connections `member` has.
    async fn connection_count(&self, member: &str) -> Result<usize, StoreError>;

    /// Up to `limit` members connected to both `a` and `b`, ordered by member id.
    async fn mutual_connections(
        &self,
        a: &str,
        b: &str,
        limit: usize,
    ) -> Result<Vec<MemberRecord>, StoreError>;

    /// Degree and a shortest path from `from` to `to`, up to 3 hops.
    async fn degree(&self, from: &str, to: &str) -> Result<DegreeResult, StoreError>;

    /// Up to `limit` members two hops from `member`, by mutual connections (most first, then
    /// by id), excluding `member`, its connections and pending requests either way.
    async fn people_you_may_know(
        &self,
        member: &str,
        limit: usize,
    ) -> Result<Vec<Suggestion>, StoreError>;

    /// Copies events this store committed outside the service's SQL database, and did not hand
    /// over yet (a crash, or the SQL database failing, in between), into the SQL outbox; returns
    /// how many. Only events at least `older_than` old, so a periodic pass leaves the ones an
    /// operation is handing over right now to that operation. Idempotent. Stores that write
    /// events in the SQL transaction of their change have nothing to do.
    async fn relay_pending_events(&self, older_than: Duration) -> Result<usize, StoreError> {
        let _ = older_than;
        Ok(0)
    }

    /// Whether the store answers (for `/ready`).
    async fn ping(&self) -> Result<(), StoreError>;

    /// What the store holds, for the service's gauges, when it knows without a query (the
    /// embedded store's in-memory index); `None` for stores that would have to ask a server
    /// on every scrape.
    fn graph_size(&self) -> Option<GraphSize> {
        None
    }
}

/// The size of a graph store, as the profile service's gauges show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GraphSize {
    /// Members (deleted ones not counted).
    pub members: usize,
    /// Connections (undirected edges).
    pub connections: usize,
    /// Bytes of the in-memory adjacency index.
    pub index_bytes: usize,
}
