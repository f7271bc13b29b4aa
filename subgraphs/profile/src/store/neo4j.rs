//! The Neo4j / Memgraph graph store, over Bolt with `neo4rs`.
//!
//! Model: `(:Member {id, handle, handleKey, displayName, headline, location, joinedAt})`, one
//! `[:CONNECTED {since}]` relationship per pair (stored in either direction, always matched
//! undirected), and `(:Member)-[:REQUESTED {at}]->(:Member)` for pending requests. `joinedAt` and
//! the timestamps are microseconds since the epoch.
//!
//! Every value travels as a query parameter; the query texts are constants. Shortest paths are
//! bounded to 3 hops in the query itself. Neo4j spells that `shortestPath((a)-[*..3]-(b))`,
//! Memgraph `(a)-[*BFS ..3]-(b)`: the store tries Neo4j's form first and remembers if the server
//! wants Memgraph's.
//!
//! Events: the graph and the SQL outbox are different databases, so `connection.accepted` (and
//! `connection.removed`) is
//! written to the outbox right after the graph transaction commits. A crash between the two
//! loses that event (the connection stands); the embedded store has no such gap.
//!
//! Checked without a Neo4j server (`tests/neo4j_statements.rs`): every statement in
//! [`NEO4J_STATEMENTS`] passes Neo4j's own Cypher linter and plans with `GRAPH.EXPLAIN` on
//! FalkorDB (except three dialect differences listed there). Against FalkorDB's Bolt port the
//! backend cannot connect at all: neo4rs proposes only Bolt 4.x, FalkorDB accepts only Bolt 5.

use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use neo4rs::{query, Graph, Query, Row, Txn};
use sqlx::AnyPool;
use switchyard_subgraph_kit::events::outbox;

use super::{
    connection_accepted, connection_removed, AcceptOutcome, ConnectionsPage, Degree, DegreeResult,
    GraphStore, MemberRecord, ProfileUpdate, RequestOutcome, StoreError, Suggestion, MAX_PAGE,
};

/// Where the graph server is.
#[derive(Debug, Clone)]
pub struct Neo4jConfig {
    /// `bolt://host:7687` or `neo4j://…`.
    pub uri: String,
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
}

/// The member fields every member-returning query projects, from `m`.
macro_rules! fields {
    () => {
        "m.id AS id, m.handle AS handle, m.displayName AS displayName, \
         m.headline AS headline, m.location AS location, m.joinedAt AS joinedAt"
    };
}

const MEMBER: &str = concat!("MATCH (m:Member {id: $id}) RETURN ", fields!());

const MEMBER_BY_HANDLE: &str = concat!(
    "MATCH (m:Member {handleKey: $key}) RETURN ",
    fields!(),
    " ORDER BY id LIMIT 1"
);

const DELETE_MEMBER: &str = "MATCH (m:Member {id: $id}) WITH m, m.id AS id DETACH DELETE m
     RETURN count(id) AS n";

const REQUEST: &str = "MATCH (a:Member {id: $a}), (b:Member {id: $b})
     MERGE (a)-[r:REQUESTED]->(b) ON CREATE SET r.at = $now";

const DECLINE: &str = "MATCH (f:Member {id: $from})-[r:REQUESTED]->(m:Member {id: $member})
     DELETE r RETURN count(*) AS n";

const REMOVE: &str = "MATCH (a:Member {id: $a})-[r:CONNECTED|REQUESTED]-(b:Member {id: $b})
     WITH r, CASE type(r) WHEN 'CONNECTED' THEN 1 ELSE 0 END AS edge
     DELETE r RETURN count(*) AS n, sum(edge) AS edges";

const PENDING: &str = concat!(
    "MATCH (m:Member)-[r:REQUESTED]->(:Member {id: $id})
     RETURN ",
    fields!(),
    ", r.at AS at ORDER BY at, id"
);

const CONNECTIONS: &str = concat!(
    "MATCH (:Member {id: $id})-[:CONNECTED]-(m:Member)
     WHERE $after IS NULL OR m.id > $after
     RETURN DISTINCT ",
    fields!(),
    " ORDER BY id LIMIT $limit"
);

const CONNECTION_COUNT: &str = "MATCH (m:Member {id: $id})
     OPTIONAL MATCH (m)-[:CONNECTED]-(o:Member)
     RETURN count(DISTINCT m) AS found, count(DISTINCT o) AS n";

const MUTUALS: &str = concat!(
    "MATCH (a:Member {id: $a})-[:CONNECTED]-(m:Member)-[:CONNECTED]-(b:Member {id: $b})
     WHERE m <> a AND m <> b
     RETURN DISTINCT ",
    fields!(),
    " ORDER BY id LIMIT $limit"
);

const SUGGESTIONS: &str = concat!(
    "MATCH (me:Member {id: $id})-[:CONNECTED]-(f:Member)-[:CONNECTED]-(m:Member)
     WHERE m <> me AND NOT (me)-[:CONNECTED]-(m) AND NOT (me)-[:REQUESTED]-(m)
     WITH m, count(DISTINCT f) AS mutuals
     RETURN ",
    fields!(),
    ", mutuals
     ORDER BY mutuals DESC, id ASC LIMIT $limit"
);

const PING: &str = "RETURN 1 AS one";

/// Schema statements: Neo4j's form, then Memgraph's.
const SCHEMA: [(&str, &str); 2] = [
    (
        "CREATE CONSTRAINT member_id IF NOT EXISTS FOR (m:Member) REQUIRE m.id IS UNIQUE",
        "CREATE CONSTRAINT ON (m:Member) ASSERT m.id IS UNIQUE",
    ),
    (
        "CREATE INDEX member_handle IF NOT EXISTS FOR (m:Member) ON (m.handleKey)",
        "CREATE INDEX ON :Member(handleKey)",
    ),
];

/// Every statement this store sends to Neo4j (for the statement-level tests).
pub const NEO4J_STATEMENTS: &[&str] = &[
    SCHEMA[0].0,
    SCHEMA[1].0,
    UPSERT,
    MEMBER,
    MEMBER_BY_HANDLE,
    DELETE_MEMBER,
    STATE_BETWEEN,
    CONNECT,
    REQUEST,
    DECLINE,
    REMOVE,
    PENDING,
    CONNECTIONS,
    CONNECTION_COUNT,
    MUTUALS,
    PATH_NEO4J,
    SUGGESTIONS,
    PING,
];

/// The statements sent only when the server turns out to be Memgraph (its own dialect).
pub const MEMGRAPH_STATEMENTS: &[&str] = &[SCHEMA[0].1, SCHEMA[1].1, PATH_MEMGRAPH];

const UPSERT: &str = "MERGE (m:Member {id: $id})
     SET m.handle = $handle, m.handleKey = $handleKey, m.displayName = $displayName,
         m.headline = $headline, m.location = $location, m.joinedAt = $joinedAt";

const STATE_BETWEEN: &str = "MATCH (a:Member {id: $a}), (b:Member {id: $b})
     OPTIONAL MATCH (a)-[c:CONNECTED]-(b)
     WITH a, b, count(c) AS connected
     OPTIONAL MATCH (b)-[r:REQUESTED]->(a)
     WITH a, b, connected, count(r) AS incoming
     OPTIONAL MATCH (a)-[q:REQUESTED]->(b)
     RETURN connected, incoming, count(q) AS outgoing";

const CONNECT: &str = "MATCH (a:Member {id: $a}), (b:Member {id: $b})
     OPTIONAL MATCH (a)-[r:REQUESTED]-(b)
     DELETE r
     WITH DISTINCT a, b
     MERGE (a)-[c:CONNECTED]-(b)
     ON CREATE SET c.since = $now";

const PATH_NEO4J: &str = "MATCH (a:Member {id: $from}), (b:Member {id: $to})
     MATCH p = shortestPath((a)-[:CONNECTED*..3]-(b))
     RETURN [n IN nodes(p) | n.id] AS ids";

const PATH_MEMGRAPH: &str = "MATCH (a:Member {id: $from}), (b:Member {id: $to})
     MATCH p = (a)-[:CONNECTED *BFS ..3]-(b)
     RETURN [n IN nodes(p) | n.id] AS ids LIMIT 1";

fn graph_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::Graph(e.to_string())
}

fn record(row: &Row) -> Result<MemberRecord, StoreError> {
    let micros: i64 = row.get("joinedAt").map_err(graph_error)?;
    Ok(MemberRecord {
        id: row.get("id").map_err(graph_error)?,
        handle: row.get("handle").map_err(graph_error)?,
        display_name: row.get("displayName").map_err(graph_error)?,
        headline: row.get("headline").map_err(graph_error)?,
        location: row.get("location").map_err(graph_error)?,
        joined_at: DateTime::from_timestamp_micros(micros).unwrap_or_default(),
    })
}

/// The Neo4j / Memgraph [`GraphStore`]: see the module docs.
pub struct Neo4jGraphStore {
    graph: Graph,
    pool: AnyPool,
    memgraph_paths: AtomicBool,
}

impl Neo4jGraphStore {
    /// Connects, checks the server answers and creates the unique-id constraint (and the
    /// handle index) if the server supports the syntax. `pool` is the service's SQL database,
    /// which holds the outbox.
    pub async fn connect(config: &Neo4jConfig, pool: AnyPool) -> Result<Self, StoreError> {
        let graph = Graph::new(&config.uri, &config.user, &config.password)
            .await
            .map_err(graph_error)?;
        let store = Neo4jGraphStore {
            graph,
            pool,
            memgraph_paths: AtomicBool::new(false),
        };
        store.ping().await?;
        for (neo4j, memgraph) in SCHEMA {
            if store.graph.run(query(neo4j)).await.is_err() {
                if let Err(e) = store.graph.run(query(memgraph)).await {
                    tracing::warn!(error = %e, "could not create a graph constraint or index");
                }
            }
        }
        Ok(store)
    }

    async fn rows(&self, q: Query) -> Result<Vec<Row>, StoreError> {
        let mut stream = self.graph.execute(q).await.map_err(graph_error)?;
        let mut rows = Vec::new();
        while let Some(row) = stream.next().await.map_err(graph_error)? {
            rows.push(row);
        }
        Ok(rows)
    }

    async fn members(&self, q: Query) -> Result<Vec<MemberRecord>, StoreError> {
        self.rows(q).await?.iter().map(record).collect()
    }

    async fn require(&self, id: &str) -> Result<MemberRecord, StoreError> {
        self.member(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(id.to_owned()))
    }

    async fn txn_row(txn: &mut Txn, q: Query) -> Result<Option<Row>, StoreError> {
        let mut stream = txn.execute(q).await.map_err(graph_error)?;
        let first = stream.next(txn.handle()).await.map_err(graph_error)?;
        // Drain so the connection is ready for the next statement.
        while stream
            .next(txn.handle())
            .await
            .map_err(graph_error)?
            .is_some()
        {}
        Ok(first)
    }

    /// (connected, incoming request from b, outgoing request to b) between `a` and `b`.
    async fn state_between(
        txn: &mut Txn,
        a: &str,
        b: &str,
    ) -> Result<(bool, bool, bool), StoreError> {
        let row = Self::txn_row(txn, query(STATE_BETWEEN).param("a", a).param("b", b))
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("{a} or {b}")))?;
        let get = |k: &str| row.get::<i64>(k).map_err(graph_error);
        Ok((
            get("connected")? > 0,
            get("incoming")? > 0,
            get("outgoing")? > 0,
        ))
    }

    /// Connects inside `txn`, commits, then writes the event to the outbox.
    async fn connect_and_commit(
        &self,
        mut txn: Txn,
        accepter: &str,
        other: &str,
    ) -> Result<(), StoreError> {
        txn.run(
            query(CONNECT)
                .param("a", accepter)
                .param("b", other)
                .param("now", Utc::now().timestamp_micros()),
        )
        .await
        .map_err(graph_error)?;
        txn.commit().await.map_err(graph_error)?;
        let event = connection_accepted(accepter, other)?;
        outbox::enqueue(&self.pool, &event).await?;
        Ok(())
    }
}

fn limit(n: usize) -> i64 {
    n.min(MAX_PAGE) as i64
}

#[async_trait]
impl GraphStore for Neo4jGraphStore {
    async fn upsert_member(&self, m: &MemberRecord) -> Result<(), StoreError> {
        self.graph
            .run(
                query(UPSERT)
                    .param("id", m.id.as_str())
                    .param("handle", m.handle.as_str())
                    .param("handleKey", m.handle.to_lowercase())
                    .param("displayName", m.display_name.as_str())
                    .param("headline", m.headline.clone())
                    .param("location", m.location.clone())
                    .param("joinedAt", m.joined_at.timestamp_micros()),
            )
            .await
            .map_err(graph_error)
    }

    async fn member(&self, id: &str) -> Result<Option<MemberRecord>, StoreError> {
        let q = query(MEMBER).param("id", id);
        Ok(self.members(q).await?.into_iter().next())
    }

    async fn member_by_handle(&self, handle: &str) -> Result<Option<MemberRecord>, StoreError> {
        let q = query(MEMBER_BY_HANDLE).param("key", handle.to_lowercase());
        Ok(self.members(q).await?.into_iter().next())
    }

    async fn update_profile(
        &self,
        id: &str,
        update: &ProfileUpdate,
    ) -> Result<MemberRecord, StoreError> {
        let mut member = self.require(id).await?;
        update.apply(&mut member);
        self.upsert_member(&member).await?;
        Ok(member)
    }

    async fn delete_member(&self, id: &str) -> Result<bool, StoreError> {
        let rows = self.rows(query(DELETE_MEMBER).param("id", id)).await?;
        let n: i64 = match rows.first() {
            Some(row) => row.get("n").map_err(graph_error)?,
            None => 0,
        };
        Ok(n > 0)
    }

    async fn request_connection(&self, from: &str, to: &str) -> Result<RequestOutcome, StoreError> {
        if from == to {
            return Err(StoreError::SelfConnection);
        }
        self.require(from).await?;
        self.require(to).await?;
        let mut txn = self.graph.start_txn().await.map_err(graph_error)?;
        let (connected, incoming, outgoing) = Self::state_between(&mut txn, from, to).await?;
        if connected {
            txn.rollback().await.map_err(graph_error)?;
            return Ok(RequestOutcome::AlreadyConnected);
        }
        if incoming {
            self.connect_and_commit(txn, from, to).await?;
            return Ok(RequestOutcome::Connected);
        }
        if outgoing {
            txn.rollback().await.map_err(graph_error)?;
            return Ok(RequestOutcome::AlreadyRequested);
        }
        txn.run(
            query(REQUEST)
                .param("a", from)
                .param("b", to)
                .param("now", Utc::now().timestamp_micros()),
        )
        .await
        .map_err(graph_error)?;
        txn.commit().await.map_err(graph_error)?;
        Ok(RequestOutcome::Requested)
    }

    async fn accept_connection(
        &self,
        member: &str,
        from: &str,
    ) -> Result<AcceptOutcome, StoreError> {
        if member == from {
            return Err(StoreError::SelfConnection);
        }
        self.require(member).await?;
        self.require(from).await?;
        let mut txn = self.graph.start_txn().await.map_err(graph_error)?;
        let (connected, incoming, _) = Self::state_between(&mut txn, member, from).await?;
        if connected {
            txn.rollback().await.map_err(graph_error)?;
            return Ok(AcceptOutcome::AlreadyConnected);
        }
        if !incoming {
            txn.rollback().await.map_err(graph_error)?;
            return Err(StoreError::NoPendingRequest(from.to_owned()));
        }
        self.connect_and_commit(txn, member, from).await?;
        Ok(AcceptOutcome::Connected)
    }

    async fn decline_connection(&self, member: &str, from: &str) -> Result<bool, StoreError> {
        self.require(member).await?;
        self.require(from).await?;
        let rows = self
            .rows(query(DECLINE).param("from", from).param("member", member))
            .await?;
        let n: i64 = match rows.first() {
            Some(row) => row.get("n").map_err(graph_error)?,
            None => 0,
        };
        Ok(n > 0)
    }

    async fn remove_connection(&self, member: &str, other: &str) -> Result<bool, StoreError> {
        self.require(member).await?;
        self.require(other).await?;
        let rows = self
            .rows(query(REMOVE).param("a", member).param("b", other))
            .await?;
        let (n, edges): (i64, i64) = match rows.first() {
            Some(row) => (
                row.get("n").map_err(graph_error)?,
                row.get("edges").map_err(graph_error)?,
            ),
            None => (0, 0),
        };
        if edges > 0 {
            outbox::enqueue(&self.pool, &connection_removed(member, other)?).await?;
        }
        Ok(n > 0)
    }

    async fn pending_requests(&self, member: &str) -> Result<Vec<MemberRecord>, StoreError> {
        self.require(member).await?;
        let q = query(PENDING).param("id", member);
        self.members(q).await
    }

    async fn connections(
        &self,
        member: &str,
        first: usize,
        after: Option<&str>,
    ) -> Result<ConnectionsPage, StoreError> {
        let total_count = self.connection_count(member).await?;
        let first = first.min(MAX_PAGE);
        let q = query(CONNECTIONS)
            .param("id", member)
            .param("after", after.map(str::to_owned))
            .param("limit", first as i64 + 1);
        let mut members = self.members(q).await?;
        let has_next_page = members.len() > first;
        members.truncate(first);
        Ok(ConnectionsPage {
            members,
            has_next_page,
            total_count,
        })
    }

    async fn connection_count(&self, member: &str) -> Result<usize, StoreError> {
        let rows = self
            .rows(query(CONNECTION_COUNT).param("id", member))
            .await?;
        let row = rows
            .first()
            .ok_or_else(|| StoreError::NotFound(member.to_owned()))?;
        let found: i64 = row.get("found").map_err(graph_error)?;
        if found == 0 {
            return Err(StoreError::NotFound(member.to_owned()));
        }
        let n: i64 = row.get("n").map_err(graph_error)?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    async fn mutual_connections(
        &self,
        a: &str,
        b: &str,
        limit_to: usize,
    ) -> Result<Vec<MemberRecord>, StoreError> {
        self.require(a).await?;
        self.require(b).await?;
        let q = query(MUTUALS)
            .param("a", a)
            .param("b", b)
            .param("limit", limit(limit_to));
        self.members(q).await
    }

    async fn degree(&self, from: &str, to: &str) -> Result<DegreeResult, StoreError> {
        self.require(from).await?;
        self.require(to).await?;
        if from == to {
            return Ok(DegreeResult {
                degree: Degree::OutOfNetwork,
                path: Vec::new(),
            });
        }
        let run = |text: &'static str| self.rows(query(text).param("from", from).param("to", to));
        let rows = if self.memgraph_paths.load(Ordering::Relaxed) {
            run(PATH_MEMGRAPH).await?
        } else {
            match run(PATH_NEO4J).await {
                Ok(rows) => rows,
                Err(neo4j_error) => match run(PATH_MEMGRAPH).await {
                    Ok(rows) => {
                        self.memgraph_paths.store(true, Ordering::Relaxed);
                        rows
                    }
                    Err(_) => return Err(neo4j_error),
                },
            }
        };
        let path: Vec<String> = match rows.first() {
            Some(row) => row.get("ids").map_err(graph_error)?,
            None => Vec::new(),
        };
        Ok(DegreeResult {
            degree: Degree::of_path(path.len()),
            path,
        })
    }

    async fn people_you_may_know(
        &self,
        member: &str,
        limit_to: usize,
    ) -> Result<Vec<Suggestion>, StoreError> {
        self.require(member).await?;
        let q = query(SUGGESTIONS)
            .param("id", member)
            .param("limit", limit(limit_to));
        self.rows(q)
            .await?
            .iter()
            .map(|row| {
                let mutuals: i64 = row.get("mutuals").map_err(graph_error)?;
                Ok(Suggestion {
                    member: record(row)?,
                    mutual_count: usize::try_from(mutuals).unwrap_or(0),
                })
            })
            .collect()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.rows(query(PING)).await.map(|_| ())
    }
}
