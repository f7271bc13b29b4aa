//! The FalkorDB graph store, over the Redis protocol with the `falkordb` crate.
//!
//! Model: `(:Member {id, handle, handleKey, displayName, headline, location, joinedAt})`; a
//! connection is a *pair* of `[:CONNECTED {since}]` relationships, one each way, because
//! FalkorDB's `shortestPath` only follows directed relationships; `(:Member)-[:REQUESTED {at}]->
//! (:Member)` for a pending request; `(:ProfileOutbox {id, type, aggregateId, occurredAt,
//! payload})` for an event not yet copied to the SQL outbox. Times are microseconds since the
//! epoch.
//!
//! Every operation is one Cypher statement, and every statement that writes is sent inside
//! `MULTI`/`EXEC`. FalkorDB applies a write statement atomically, but a plain `GRAPH.QUERY`
//! write matches on a snapshot while other writes commit (measured: 16 racing crossed requests
//! made up to four connections and duplicate requests); inside a transaction the module cannot
//! hand the query to its thread pool and runs it on the server's one main thread, so writes are
//! serialised with each other and a statement that reads the state between two members and then
//! writes ("the other member already asked, so connect") decides on the state it changes, across
//! any number of profile instances sharing the graph. Reads go through the `falkordb` client and
//! run in parallel on FalkorDB's threads. Nothing is cached in this process, so every instance
//! reads what any instance wrote.
//!
//! Lookups by member id (`member`, `connection_count`) go through a [`Batcher`]: the concurrent
//! lookups of one request (the references of an `_entities` call, a page's connection counts, a
//! path's members) cost one `UNWIND $ids` statement, as the other services' SQL lists do.
//!
//! Values travel only as parameters (the crate encodes them as Cypher literals in the
//! `CYPHER name=value` preamble, escaping strings); the statement texts are constants (the
//! functions that send them take only `&'static str`). Shortest paths are bounded to 3 hops in
//! the statement, and reads carry a server-side timeout.
//!
//! Events: the graph and the SQL outbox are different databases, so no transaction covers both.
//! The statement that connects two members also creates a `ProfileOutbox` node holding the whole
//! `connection.accepted` event (id included), so the event exists exactly when the connection
//! does. The store then copies it into the SQL outbox with [`outbox::enqueue_once`] (keyed by
//! the event id) and only then deletes the node. A crash before the copy leaves the node, which
//! [`GraphStore::relay_pending_events`] copies later (the service runs it at start-up and every
//! few seconds); a crash after the copy but before the delete makes the next pass copy it again,
//! which `enqueue_once` turns into nothing. No event is lost, and none is invented: an event
//! only exists if the statement that made its connection committed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use falkordb::{AsyncGraph, FalkorAsyncClient, FalkorClientBuilder, FalkorValue, Row};
use futures::future::BoxFuture;
use futures::TryStreamExt;
use sqlx::AnyPool;
use switchyard_subgraph_kit::batch::Batcher;
use switchyard_subgraph_kit::events::outbox;
use switchyard_subgraph_kit::Event;

use super::{
    connection_accepted, connection_removed, AcceptOutcome, ConnectionsPage, Degree, DegreeResult,
    GraphStore, MemberRecord, ProfileUpdate, RequestOutcome, StoreError, Suggestion, MAX_PAGE,
};

/// Where the graph lives.
#[derive(Debug, Clone)]
pub struct FalkorConfig {
    /// `falkor://[:password@]host:port` (or `falkors://` for TLS, `redis://`).
    pub url: String,
    /// The graph (Redis key) holding the profile data.
    pub graph: String,
}

/// Server-side limit on every read, so a traversal near hubs cannot hold a server thread.
const READ_TIMEOUT_MS: i64 = 10_000;

/// Most lookups of one kind (members, connection counts) answered by one statement.
const BATCH: usize = MAX_PAGE;

/// Events copied from the graph to the SQL outbox per pass.
const RELAY_BATCH: i64 = 100;

/// The member fields every member-returning statement projects, from `m`.
macro_rules! fields {
    () => {
        "m.id AS id, m.handle AS handle, m.displayName AS displayName, \
         m.headline AS headline, m.location AS location, m.joinedAt AS joinedAt"
    };
}

const UPSERT: &str = "MERGE (m:Member {id: $id})
     SET m.handle = $handle, m.handleKey = $handleKey, m.displayName = $displayName,
         m.headline = $headline, m.location = $location, m.joinedAt = $joinedAt";

/// The members with the given ids (those that exist), for a batch of lookups.
const MEMBERS: &str = concat!(
    "UNWIND $ids AS id MATCH (m:Member {id: id}) RETURN ",
    fields!()
);

const MEMBER_BY_HANDLE: &str = concat!(
    "MATCH (m:Member {handleKey: $key}) RETURN ",
    fields!(),
    " ORDER BY id LIMIT 1"
);

/// Each field changes only when its flag says so; a null value clears it.
const UPDATE_PROFILE: &str = concat!(
    "MATCH (m:Member {id: $id})
     SET m.displayName = CASE WHEN $setName THEN $displayName ELSE m.displayName END,
         m.headline = CASE WHEN $setHeadline THEN $headline ELSE m.headline END,
         m.location = CASE WHEN $setLocation THEN $location ELSE m.location END
     RETURN ",
    fields!()
);

const DELETE_MEMBER: &str = "MATCH (m:Member {id: $id}) DETACH DELETE m RETURN count(m) AS n";

// An aggregate with no grouping key yields a row even when the first MATCH found nothing, so
// statements that tell "no such member" by "no row" keep the matched members as grouping keys.

/// The state between `a` and `b` and what a request or accept does about it, then the writes
/// that outcome needs. The outcome names are the statements' contract with [`decide`].
macro_rules! connect_statement {
    ($outcome:literal) => {
        concat!(
            "MATCH (a:Member {id: $a}), (b:Member {id: $b})
             OPTIONAL MATCH (a)-[c:CONNECTED]->(b)
             WITH a, b, count(c) AS connected
             OPTIONAL MATCH (b)-[incoming:REQUESTED]->(a)
             WITH a, b, connected, collect(incoming) AS incoming
             OPTIONAL MATCH (a)-[outgoing:REQUESTED]->(b)
             WITH a, b, connected, incoming, collect(outgoing) AS outgoing
             WITH a, b, incoming + outgoing AS requests, ",
            $outcome,
            " AS outcome
             FOREACH (_ IN CASE WHEN outcome = 'requested' THEN [1] ELSE [] END |
                 CREATE (a)-[:REQUESTED {at: $now}]->(b))
             FOREACH (r IN CASE WHEN outcome = 'connected' THEN requests ELSE [] END | DELETE r)
             FOREACH (_ IN CASE WHEN outcome = 'connected' THEN [1] ELSE [] END |
                 CREATE (a)-[:CONNECTED {since: $now}]->(b), (b)-[:CONNECTED {since: $now}]->(a)
                 CREATE (:ProfileOutbox {id: $eventId, type: $eventType, aggregateId: $a,
                                         occurredAt: $occurredAt, payload: $payload}))
             RETURN outcome"
        )
    };
}

/// `a` asks `b`: connect if `b` had asked `a`.
const REQUEST: &str = connect_statement!(
    "CASE WHEN connected > 0 THEN 'already_connected'
          WHEN size(incoming) > 0 THEN 'connected'
          WHEN size(outgoing) > 0 THEN 'already_requested'
          ELSE 'requested' END"
);

/// `a` accepts `b`'s request.
const ACCEPT: &str = connect_statement!(
    "CASE WHEN connected > 0 THEN 'already_connected'
          WHEN size(incoming) > 0 THEN 'connected'
          ELSE 'no_request' END"
);

const DECLINE: &str = "MATCH (m:Member {id: $member}), (f:Member {id: $from})
     OPTIONAL MATCH (f)-[r:REQUESTED]->(m)
     WITH m, f, collect(r) AS rs
     FOREACH (r IN rs | DELETE r)
     RETURN size(rs) AS n";

/// Both `CONNECTED` relationships of the pair and requests either way; `connection.removed`
/// as an outbox node when a connection went.
const REMOVE: &str = "MATCH (a:Member {id: $a}), (b:Member {id: $b})
     OPTIONAL MATCH (a)-[r:CONNECTED|REQUESTED]-(b)
     WITH a, b, collect(r) AS rs,
          count(CASE type(r) WHEN 'CONNECTED' THEN 1 END) AS edges
     FOREACH (r IN rs | DELETE r)
     FOREACH (_ IN CASE WHEN edges > 0 THEN [1] ELSE [] END |
         CREATE (:ProfileOutbox {id: $eventId, type: $eventType, aggregateId: $a,
                                 occurredAt: $occurredAt, payload: $payload}))
     RETURN size(rs) AS n, edges";

/// One row per pending sender (or one row of nulls when there is none).
const PENDING: &str = concat!(
    "MATCH (me:Member {id: $id})
     OPTIONAL MATCH (m:Member)-[r:REQUESTED]->(me)
     RETURN ",
    fields!(),
    ", r.at AS at ORDER BY at, id"
);

/// The total and one page, from one snapshot.
const CONNECTIONS: &str = concat!(
    "MATCH (me:Member {id: $id})
     OPTIONAL MATCH (me)-[:CONNECTED]->(o:Member)
     WITH me, count(o) AS total
     OPTIONAL MATCH (me)-[:CONNECTED]->(m:Member)
     WHERE $after IS NULL OR m.id > $after
     WITH total, m ORDER BY m.id LIMIT $limit
     RETURN total, ",
    fields!()
);

/// The connection counts of the members with the given ids (those that exist).
const CONNECTION_COUNTS: &str = "UNWIND $ids AS id
     MATCH (me:Member {id: id})
     OPTIONAL MATCH (me)-[:CONNECTED]->(o:Member)
     WITH me, count(o) AS n
     RETURN me.id AS id, n";

const MUTUALS: &str = concat!(
    "MATCH (a:Member {id: $a}), (b:Member {id: $b})
     OPTIONAL MATCH (a)-[:CONNECTED]->(m:Member)-[:CONNECTED]->(b)
     WITH DISTINCT m ORDER BY m.id LIMIT $limit
     RETURN ",
    fields!()
);

/// Directed both ways (see the module docs), bounded to 3 hops.
const PATH: &str = "MATCH (a:Member {id: $from}), (b:Member {id: $to})
     RETURN [n IN nodes(shortestPath((a)-[:CONNECTED*..3]->(b))) | n.id] AS ids";

const SUGGESTIONS: &str = concat!(
    "MATCH (me:Member {id: $id})
     OPTIONAL MATCH (me)-[:CONNECTED]->(f:Member)-[:CONNECTED]->(m:Member)
     WHERE m <> me AND NOT (me)-[:CONNECTED]->(m) AND NOT (me)-[:REQUESTED]-(m)
     WITH m, count(DISTINCT f) AS mutuals
     RETURN ",
    fields!(),
    ", mutuals ORDER BY mutuals DESC, id ASC LIMIT $limit"
);

const PENDING_EVENTS: &str = "MATCH (e:ProfileOutbox) WHERE e.occurredAt <= $cutoff
     RETURN e.id AS id, e.type AS type, e.aggregateId AS aggregateId,
            e.occurredAt AS occurredAt, e.payload AS payload
     ORDER BY occurredAt, id LIMIT $limit";

const DELETE_EVENTS: &str = "MATCH (e:ProfileOutbox) WHERE e.id IN $ids DELETE e";

const IMPORT_MEMBERS: &str = "UNWIND $members AS m
     CREATE (:Member {id: m[0], handle: m[1], handleKey: m[2], displayName: m[3],
                      joinedAt: m[4]})";

const IMPORT_CONNECTIONS: &str = "UNWIND $pairs AS p
     MATCH (a:Member {id: p[0]}), (b:Member {id: p[1]})
     CREATE (a)-[:CONNECTED {since: $now}]->(b), (b)-[:CONNECTED {since: $now}]->(a)";

/// Rows per import statement: big enough to amortise a round trip, small enough to keep one
/// statement's text (and the server's main thread) short.
const IMPORT_BATCH: usize = 5_000;

/// Indexes the statements above look members and events up by. FalkorDB answers "already
/// indexed" for an index that exists, which is success here.
const INDEXES: [&str; 3] = [
    "CREATE INDEX FOR (m:Member) ON (m.id)",
    "CREATE INDEX FOR (m:Member) ON (m.handleKey)",
    "CREATE INDEX FOR (e:ProfileOutbox) ON (e.id)",
];

/// Every Cypher statement this store sends (for the statement-level tests).
pub const STATEMENTS: &[&str] = &[
    UPSERT,
    MEMBERS,
    MEMBER_BY_HANDLE,
    UPDATE_PROFILE,
    DELETE_MEMBER,
    REQUEST,
    ACCEPT,
    DECLINE,
    REMOVE,
    PENDING,
    CONNECTIONS,
    CONNECTION_COUNTS,
    MUTUALS,
    PATH,
    SUGGESTIONS,
    PENDING_EVENTS,
    DELETE_EVENTS,
    IMPORT_MEMBERS,
    IMPORT_CONNECTIONS,
    INDEXES[0],
    INDEXES[1],
    INDEXES[2],
    "RETURN 1 AS one",
];

/// A step of the event hand-over, for tests that stop the process there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandOverStep {
    /// The connection and its `ProfileOutbox` node committed; nothing copied yet.
    GraphCommitted,
    /// The event is in the SQL outbox; the `ProfileOutbox` node is not yet deleted.
    OutboxWritten,
}

type StepHook = Arc<dyn Fn(HandOverStep) + Send + Sync>;

fn graph_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::Graph(e.to_string())
}

/// A string FalkorDB cannot carry (its literals have no escape for NUL) names no member.
fn representable(s: &str) -> bool {
    !s.contains('\0')
}

fn text(row: &Row, column: &str) -> Result<Option<String>, StoreError> {
    match row.get(column) {
        Some(FalkorValue::String(s)) => Ok(Some(s.clone())),
        Some(FalkorValue::None) | None => Ok(None),
        Some(other) => Err(StoreError::Graph(format!(
            "column {column}: expected a string, got {other:?}"
        ))),
    }
}

fn int(row: &Row, column: &str) -> Result<Option<i64>, StoreError> {
    match row.get(column) {
        Some(FalkorValue::I64(n)) => Ok(Some(*n)),
        Some(FalkorValue::None) | None => Ok(None),
        Some(other) => Err(StoreError::Graph(format!(
            "column {column}: expected an integer, got {other:?}"
        ))),
    }
}

fn required<T>(value: Option<T>, column: &str) -> Result<T, StoreError> {
    value.ok_or_else(|| StoreError::Graph(format!("column {column} is null")))
}

/// The member in `row`, or `None` when the row's optional member is null.
fn record(row: &Row) -> Result<Option<MemberRecord>, StoreError> {
    let Some(id) = text(row, "id")? else {
        return Ok(None);
    };
    Ok(Some(MemberRecord {
        id,
        handle: required(text(row, "handle")?, "handle")?,
        display_name: required(text(row, "displayName")?, "displayName")?,
        headline: text(row, "headline")?,
        location: text(row, "location")?,
        joined_at: DateTime::from_timestamp_micros(required(int(row, "joinedAt")?, "joinedAt")?)
            .unwrap_or_default(),
    }))
}

fn count(n: Option<i64>) -> usize {
    usize::try_from(n.unwrap_or(0)).unwrap_or(0)
}

fn limit(n: usize) -> i64 {
    n.min(MAX_PAGE) as i64
}

/// The parameters a statement that may create an outbox node for `event` takes.
fn event_params(event: &Event) -> Result<Vec<(&'static str, FalkorValue)>, StoreError> {
    let payload =
        serde_json::to_string(&event.payload).map_err(switchyard_subgraph_kit::EventError::from)?;
    Ok(vec![
        ("eventId", FalkorValue::String(event.id.to_string())),
        ("eventType", string(&event.event_type)),
        (
            "occurredAt",
            FalkorValue::I64(event.occurred_at.timestamp_micros()),
        ),
        ("payload", FalkorValue::String(payload)),
    ])
}

fn string(s: &str) -> FalkorValue {
    FalkorValue::String(s.to_owned())
}

fn optional(s: &Option<String>) -> FalkorValue {
    s.as_deref().map_or(FalkorValue::None, string)
}

/// Runs a read-only statement with the server-side timeout. Boxed: the client's futures nest so
/// deeply that every future holding one unboxed would count against the crate's
/// `recursion_limit` (raised in `lib.rs` for the batchers' load functions all the same).
fn ro_query<'a>(
    mut graph: AsyncGraph,
    statement: &'static str,
    params: Vec<(&'a str, FalkorValue)>,
) -> BoxFuture<'a, falkordb::FalkorResult<Vec<Row>>> {
    Box::pin(async move {
        let result = graph
            .ro_query(statement)
            .with_params(params)
            .with_timeout(READ_TIMEOUT_MS)
            .execute()
            .await?;
        result.data.try_collect().await
    })
}

/// Sends reading statements; cloned into the batchers' load functions.
#[derive(Clone)]
struct Reader {
    graph: AsyncGraph,
    /// Statements this store sent, reads and writes (see [`FalkorGraphStore::statements_sent`]).
    sent: Arc<AtomicU64>,
}

impl Reader {
    /// Runs a reading statement. `&'static`: statement texts are constants, so no value can be
    /// spliced into one; values go in `params`.
    async fn read(
        &self,
        statement: &'static str,
        params: Vec<(&str, FalkorValue)>,
    ) -> Result<Vec<Row>, StoreError> {
        self.sent.fetch_add(1, Ordering::Relaxed);
        ro_query(self.graph.clone(), statement, params)
            .await
            .map_err(graph_error)
    }

    /// The batcher answering lookups by member id with one `statement` (which takes `$ids` and
    /// returns an `id` column) per batch; `value` reads a row.
    fn batcher<V: Clone + Send + Sync + 'static>(
        &self,
        statement: &'static str,
        value: fn(&Row) -> Result<Option<V>, StoreError>,
    ) -> Batcher<String, V, StoreError> {
        let reader = self.clone();
        Batcher::new(BATCH, move |ids: Vec<String>| {
            let reader = reader.clone();
            Box::pin(async move {
                let ids = FalkorValue::Array(ids.into_iter().map(FalkorValue::String).collect());
                let rows = reader.read(statement, vec![("ids", ids)]).await?;
                let mut found = HashMap::with_capacity(rows.len());
                for row in &rows {
                    if let (Some(id), Some(v)) = (text(row, "id")?, value(row)?) {
                        found.insert(id, v);
                    }
                }
                Ok(found)
            })
        })
    }
}

/// A batch's error, shared by every lookup in the batch, as this lookup's error.
fn shared(e: Arc<StoreError>) -> StoreError {
    match Arc::try_unwrap(e) {
        Ok(e) => e,
        Err(e) => match &*e {
            StoreError::Graph(message) => StoreError::Graph(message.clone()),
            other => StoreError::Graph(other.to_string()),
        },
    }
}

/// The FalkorDB [`GraphStore`]: see the module docs.
pub struct FalkorGraphStore {
    // Kept so the connections live as long as the store.
    _client: Arc<FalkorAsyncClient>,
    graph: AsyncGraph,
    reader: Reader,
    /// Members by id: concurrent lookups (the references of one `_entities` request, a
    /// path's members) cost one statement.
    members: Batcher<String, MemberRecord, StoreError>,
    /// Connection counts by member id, batched the same way (a page of members' counts).
    connection_counts: Batcher<String, usize, StoreError>,
    /// Where writes go, inside `MULTI`/`EXEC` (reconnects by itself).
    writer: redis::aio::ConnectionManager,
    graph_name: String,
    pool: AnyPool,
    step_hook: Option<StepHook>,
}

/// The `redis://` form of a `falkor://` URL.
fn redis_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("falkor") => format!("redis://{rest}"),
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("falkors") => {
            format!("rediss://{rest}")
        }
        Some(_) => url.to_owned(),
        None => format!("redis://{url}"),
    }
}

/// A value of a (non-compact) `GRAPH.QUERY` reply; the statements here return only strings,
/// integers, nulls and lists of those.
fn reply_value(value: redis::Value) -> FalkorValue {
    match value {
        redis::Value::Nil => FalkorValue::None,
        redis::Value::Int(n) => FalkorValue::I64(n),
        redis::Value::BulkString(bytes) => match String::from_utf8(bytes) {
            Ok(s) => FalkorValue::String(s),
            Err(e) => FalkorValue::Unparseable(format!("{e}")),
        },
        redis::Value::SimpleString(s) => FalkorValue::String(s),
        redis::Value::Okay => FalkorValue::String("OK".to_owned()),
        redis::Value::Double(f) => FalkorValue::F64(f),
        redis::Value::Boolean(b) => FalkorValue::Bool(b),
        redis::Value::Array(items) | redis::Value::Set(items) => {
            FalkorValue::Array(items.into_iter().map(reply_value).collect())
        }
        other => FalkorValue::Unparseable(format!("{other:?}")),
    }
}

/// The rows of a `GRAPH.QUERY` reply: `[header, rows, stats]`, or `[stats]` without `RETURN`.
fn reply_rows(reply: redis::Value) -> Result<Vec<Row>, StoreError> {
    let parts = match reply {
        redis::Value::Array(parts) => parts,
        other => return Err(StoreError::Graph(format!("unexpected reply {other:?}"))),
    };
    if parts.len() < 3 {
        return Ok(Vec::new());
    }
    let mut parts = parts.into_iter();
    let header: Vec<String> = match reply_value(parts.next().unwrap_or(redis::Value::Nil)) {
        FalkorValue::Array(names) => names
            .into_iter()
            .map(|n| match n {
                FalkorValue::String(s) => s,
                other => format!("{other:?}"),
            })
            .collect(),
        other => return Err(StoreError::Graph(format!("unexpected header {other:?}"))),
    };
    let rows = match parts.next() {
        Some(redis::Value::Array(rows)) => rows,
        other => return Err(StoreError::Graph(format!("unexpected rows {other:?}"))),
    };
    rows.into_iter()
        .map(|row| match reply_value(row) {
            FalkorValue::Array(values) => Ok(header.iter().cloned().zip(values).collect()),
            other => Err(StoreError::Graph(format!("unexpected row {other:?}"))),
        })
        .collect()
}

impl FalkorGraphStore {
    /// Connects, checks the server answers and creates the indexes. `pool` is the service's SQL
    /// database, which holds the outbox.
    pub async fn connect(config: &FalkorConfig, pool: AnyPool) -> Result<Self, StoreError> {
        let info = config.url.as_str().try_into().map_err(graph_error)?;
        let client: BoxFuture<'_, falkordb::FalkorResult<FalkorAsyncClient>> = Box::pin(
            FalkorClientBuilder::new_async()
                .with_connection_info(info)
                .build(),
        );
        let client = client.await.map_err(graph_error)?;
        let graph = client.select_graph(&config.graph);
        let reader = Reader {
            graph: graph.clone(),
            sent: Arc::new(AtomicU64::new(0)),
        };
        let writer = redis::Client::open(redis_url(&config.url))
            .map_err(graph_error)?
            .get_connection_manager()
            .await
            .map_err(graph_error)?;
        let store = FalkorGraphStore {
            _client: Arc::new(client),
            graph,
            members: reader.batcher(MEMBERS, record),
            connection_counts: reader
                .batcher(CONNECTION_COUNTS, |row| Ok(Some(count(int(row, "n")?)))),
            reader,
            writer,
            graph_name: config.graph.clone(),
            pool,
            step_hook: None,
        };
        // Writes first: a read of a graph that does not exist yet fails, and creating the
        // indexes creates the graph.
        for statement in INDEXES {
            if let Err(e) = store.write(statement, Vec::new()).await {
                if !e.to_string().contains("already indexed") {
                    return Err(e);
                }
            }
        }
        store.ping().await?;
        Ok(store)
    }

    /// Calls `hook` at each step of handing an event over to the SQL outbox. For crash tests:
    /// a hook that aborts the process leaves exactly the state a crash there would.
    pub fn on_hand_over_step(
        mut self,
        hook: impl Fn(HandOverStep) + Send + Sync + 'static,
    ) -> Self {
        self.step_hook = Some(Arc::new(hook));
        self
    }

    /// Deletes the whole graph (for tests that made one of their own).
    pub async fn delete_graph(&self) -> Result<(), StoreError> {
        let mut graph = self.graph.clone();
        let deleted: BoxFuture<'_, falkordb::FalkorResult<()>> =
            Box::pin(async move { graph.delete().await });
        deleted.await.map_err(graph_error)
    }

    /// Loads members and connections into an empty graph in batches, with no events and no
    /// checks (a migration from another store, or a benchmark's graph). Each connection once.
    pub async fn import(
        &self,
        members: &[MemberRecord],
        connections: &[(String, String)],
    ) -> Result<(), StoreError> {
        for batch in members.chunks(IMPORT_BATCH) {
            let rows = batch
                .iter()
                .map(|m| {
                    FalkorValue::Array(vec![
                        string(&m.id),
                        string(&m.handle),
                        FalkorValue::String(m.handle.to_lowercase()),
                        string(&m.display_name),
                        FalkorValue::I64(m.joined_at.timestamp_micros()),
                    ])
                })
                .collect();
            self.write(IMPORT_MEMBERS, vec![("members", FalkorValue::Array(rows))])
                .await?;
        }
        let now = FalkorValue::I64(Utc::now().timestamp_micros());
        for batch in connections.chunks(IMPORT_BATCH) {
            let pairs = batch
                .iter()
                .map(|(a, b)| FalkorValue::Array(vec![string(a), string(b)]))
                .collect();
            self.write(
                IMPORT_CONNECTIONS,
                vec![("pairs", FalkorValue::Array(pairs)), ("now", now.clone())],
            )
            .await?;
        }
        Ok(())
    }

    /// Events committed to the graph and not yet handed over to the SQL outbox.
    pub async fn pending_event_count(&self) -> Result<usize, StoreError> {
        let rows = self
            .read("MATCH (e:ProfileOutbox) RETURN count(e) AS n", Vec::new())
            .await?;
        Ok(count(match rows.first() {
            Some(row) => int(row, "n")?,
            None => None,
        }))
    }

    /// How many statements this store has sent to FalkorDB (for tests that pin what a page
    /// costs).
    pub fn statements_sent(&self) -> u64 {
        self.reader.sent.load(Ordering::Relaxed)
    }

    async fn read(
        &self,
        statement: &'static str,
        params: Vec<(&str, FalkorValue)>,
    ) -> Result<Vec<Row>, StoreError> {
        self.reader.read(statement, params).await
    }

    /// Runs a writing statement inside `MULTI`/`EXEC` (see the module docs for why), with the
    /// parameters encoded by the `falkordb` crate as its own queries do.
    async fn write(
        &self,
        statement: &'static str,
        params: Vec<(&str, FalkorValue)>,
    ) -> Result<Vec<Row>, StoreError> {
        let mut text = String::new();
        if !params.is_empty() {
            text.push_str("CYPHER ");
            for (name, value) in &params {
                let literal = falkordb::to_cypher_param(value).map_err(graph_error)?;
                text.push_str(name);
                text.push('=');
                text.push_str(&literal);
                text.push(' ');
            }
        }
        text.push_str(statement);
        self.reader.sent.fetch_add(1, Ordering::Relaxed);
        let mut writer = self.writer.clone();
        let (reply,): (redis::Value,) = redis::pipe()
            .atomic()
            .cmd("GRAPH.QUERY")
            .arg(&self.graph_name)
            .arg(text)
            .query_async(&mut writer)
            .await
            .map_err(graph_error)?;
        reply_rows(reply)
    }

    fn step(&self, step: HandOverStep) {
        if let Some(hook) = &self.step_hook {
            hook(step);
        }
    }

    /// Which of `ids` names no member (for the error of a statement that matched nothing).
    async fn missing(&self, ids: &[&str]) -> StoreError {
        match self.require_all(ids).await {
            Err(e) => e,
            // Deleted between the statement and this check.
            Ok(()) => StoreError::NotFound(ids.join(" or ")),
        }
    }

    /// Fails with [`StoreError::NotFound`] for the first of `ids` that names no member.
    async fn require_all(&self, ids: &[&str]) -> Result<(), StoreError> {
        for id in ids {
            if self.member(id).await?.is_none() {
                return Err(StoreError::NotFound((*id).to_owned()));
            }
        }
        Ok(())
    }

    /// Runs a request/accept statement; returns its outcome, handing over the event it made.
    async fn connect_statement(
        &self,
        statement: &'static str,
        a: &str,
        b: &str,
    ) -> Result<String, StoreError> {
        if !representable(a) || !representable(b) {
            return Err(self.missing(&[a, b]).await);
        }
        let event = connection_accepted(a, b)?;
        let mut params = vec![
            ("a", string(a)),
            ("b", string(b)),
            ("now", FalkorValue::I64(Utc::now().timestamp_micros())),
        ];
        params.extend(event_params(&event)?);
        let rows = self.write(statement, params).await?;
        let Some(row) = rows.first() else {
            return Err(self.missing(&[a, b]).await);
        };
        let outcome = required(text(row, "outcome")?, "outcome")?;
        if outcome == "connected" {
            self.committed(event).await;
        }
        Ok(outcome)
    }

    /// After a statement committed `event` as an outbox node: hands it over. The event is safe
    /// in the graph, and a failed hand-over is retried by the relay pass, so the caller still
    /// gets its answer.
    async fn committed(&self, event: Event) {
        self.step(HandOverStep::GraphCommitted);
        if let Err(e) = self.hand_over(std::slice::from_ref(&event)).await {
            tracing::warn!(
                error = %e,
                event = %event.event_type,
                "the event stays in the graph until the next relay pass"
            );
        }
    }

    /// Copies events to the SQL outbox, then deletes their `ProfileOutbox` nodes.
    async fn hand_over(&self, events: &[Event]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = switchyard_subgraph_kit::db::begin(&self.pool).await?;
        for event in events {
            outbox::enqueue_once(&mut *tx, event).await?;
        }
        tx.commit().await?;
        self.step(HandOverStep::OutboxWritten);
        let ids = events
            .iter()
            .map(|e| FalkorValue::String(e.id.to_string()))
            .collect();
        self.write(DELETE_EVENTS, vec![("ids", FalkorValue::Array(ids))])
            .await?;
        Ok(())
    }

    fn pending_event(row: &Row) -> Result<Event, StoreError> {
        let id = required(text(row, "id")?, "id")?;
        let micros = required(int(row, "occurredAt")?, "occurredAt")?;
        let payload = required(text(row, "payload")?, "payload")?;
        Ok(Event {
            id: id
                .parse()
                .map_err(|e| StoreError::Graph(format!("outbox node id {id:?}: {e}")))?,
            event_type: required(text(row, "type")?, "type")?,
            aggregate_id: required(text(row, "aggregateId")?, "aggregateId")?,
            occurred_at: DateTime::from_timestamp_micros(micros).unwrap_or_default(),
            payload: serde_json::from_str(&payload)
                .map_err(switchyard_subgraph_kit::EventError::from)?,
            // Recovered from the graph after a crash: the request's trace context was not kept
            // on the outbox node.
            trace_parent: None,
        })
    }
}

#[async_trait]
impl GraphStore for FalkorGraphStore {
    async fn upsert_member(&self, m: &MemberRecord) -> Result<(), StoreError> {
        self.write(
            UPSERT,
            vec![
                ("id", string(&m.id)),
                ("handle", string(&m.handle)),
                ("handleKey", FalkorValue::String(m.handle.to_lowercase())),
                ("displayName", string(&m.display_name)),
                ("headline", optional(&m.headline)),
                ("location", optional(&m.location)),
                ("joinedAt", FalkorValue::I64(m.joined_at.timestamp_micros())),
            ],
        )
        .await?;
        Ok(())
    }

    async fn member(&self, id: &str) -> Result<Option<MemberRecord>, StoreError> {
        if !representable(id) {
            return Ok(None);
        }
        self.members.load_one(id.to_owned()).await.map_err(shared)
    }

    async fn member_by_handle(&self, handle: &str) -> Result<Option<MemberRecord>, StoreError> {
        if !representable(handle) {
            return Ok(None);
        }
        let rows = self
            .read(
                MEMBER_BY_HANDLE,
                vec![("key", FalkorValue::String(handle.to_lowercase()))],
            )
            .await?;
        match rows.first() {
            Some(row) => record(row),
            None => Ok(None),
        }
    }

    async fn update_profile(
        &self,
        id: &str,
        update: &ProfileUpdate,
    ) -> Result<MemberRecord, StoreError> {
        if !representable(id) {
            return Err(StoreError::NotFound(id.to_owned()));
        }
        let rows = self
            .write(
                UPDATE_PROFILE,
                vec![
                    ("id", string(id)),
                    ("setName", FalkorValue::Bool(update.display_name.is_some())),
                    (
                        "displayName",
                        update
                            .display_name
                            .as_deref()
                            .map_or(FalkorValue::None, string),
                    ),
                    ("setHeadline", FalkorValue::Bool(update.headline.is_some())),
                    (
                        "headline",
                        optional(update.headline.as_ref().unwrap_or(&None)),
                    ),
                    ("setLocation", FalkorValue::Bool(update.location.is_some())),
                    (
                        "location",
                        optional(update.location.as_ref().unwrap_or(&None)),
                    ),
                ],
            )
            .await?;
        match rows.first() {
            Some(row) => record(row)?.ok_or_else(|| StoreError::NotFound(id.to_owned())),
            None => Err(StoreError::NotFound(id.to_owned())),
        }
    }

    async fn delete_member(&self, id: &str) -> Result<bool, StoreError> {
        if !representable(id) {
            return Ok(false);
        }
        let rows = self.write(DELETE_MEMBER, vec![("id", string(id))]).await?;
        Ok(count(match rows.first() {
            Some(row) => int(row, "n")?,
            None => None,
        }) > 0)
    }

    async fn request_connection(&self, from: &str, to: &str) -> Result<RequestOutcome, StoreError> {
        if from == to {
            return Err(StoreError::SelfConnection);
        }
        match self.connect_statement(REQUEST, from, to).await?.as_str() {
            "requested" => Ok(RequestOutcome::Requested),
            "already_requested" => Ok(RequestOutcome::AlreadyRequested),
            "connected" => Ok(RequestOutcome::Connected),
            "already_connected" => Ok(RequestOutcome::AlreadyConnected),
            other => Err(StoreError::Graph(format!("unexpected outcome {other:?}"))),
        }
    }

    async fn accept_connection(
        &self,
        member: &str,
        from: &str,
    ) -> Result<AcceptOutcome, StoreError> {
        if member == from {
            return Err(StoreError::SelfConnection);
        }
        match self.connect_statement(ACCEPT, member, from).await?.as_str() {
            "connected" => Ok(AcceptOutcome::Connected),
            "already_connected" => Ok(AcceptOutcome::AlreadyConnected),
            "no_request" => Err(StoreError::NoPendingRequest(from.to_owned())),
            other => Err(StoreError::Graph(format!("unexpected outcome {other:?}"))),
        }
    }

    async fn decline_connection(&self, member: &str, from: &str) -> Result<bool, StoreError> {
        if !representable(member) || !representable(from) {
            return Err(self.missing(&[member, from]).await);
        }
        let rows = self
            .write(
                DECLINE,
                vec![("member", string(member)), ("from", string(from))],
            )
            .await?;
        match rows.first() {
            Some(row) => Ok(count(int(row, "n")?) > 0),
            None => Err(self.missing(&[member, from]).await),
        }
    }

    async fn remove_connection(&self, member: &str, other: &str) -> Result<bool, StoreError> {
        if !representable(member) || !representable(other) {
            return Err(self.missing(&[member, other]).await);
        }
        let event = connection_removed(member, other)?;
        let mut params = vec![("a", string(member)), ("b", string(other))];
        params.extend(event_params(&event)?);
        let rows = self.write(REMOVE, params).await?;
        let Some(row) = rows.first() else {
            return Err(self.missing(&[member, other]).await);
        };
        let removed = count(int(row, "n")?) > 0;
        if count(int(row, "edges")?) > 0 {
            self.committed(event).await;
        }
        Ok(removed)
    }

    async fn pending_requests(&self, member: &str) -> Result<Vec<MemberRecord>, StoreError> {
        if !representable(member) {
            return Err(StoreError::NotFound(member.to_owned()));
        }
        let rows = self.read(PENDING, vec![("id", string(member))]).await?;
        if rows.is_empty() {
            return Err(StoreError::NotFound(member.to_owned()));
        }
        rows.iter()
            .filter_map(|row| record(row).transpose())
            .collect()
    }

    async fn connections(
        &self,
        member: &str,
        first: usize,
        after: Option<&str>,
    ) -> Result<ConnectionsPage, StoreError> {
        if !representable(member) {
            return Err(StoreError::NotFound(member.to_owned()));
        }
        let first = first.min(MAX_PAGE);
        let rows = self
            .read(
                CONNECTIONS,
                vec![
                    ("id", string(member)),
                    ("after", after.map_or(FalkorValue::None, string)),
                    ("limit", FalkorValue::I64(first as i64 + 1)),
                ],
            )
            .await?;
        let Some(head) = rows.first() else {
            return Err(StoreError::NotFound(member.to_owned()));
        };
        let total_count = count(int(head, "total")?);
        let mut members = rows
            .iter()
            .filter_map(|row| record(row).transpose())
            .collect::<Result<Vec<_>, _>>()?;
        let has_next_page = members.len() > first;
        members.truncate(first);
        Ok(ConnectionsPage {
            members,
            has_next_page,
            total_count,
        })
    }

    async fn connection_count(&self, member: &str) -> Result<usize, StoreError> {
        if !representable(member) {
            return Err(StoreError::NotFound(member.to_owned()));
        }
        self.connection_counts
            .load_one(member.to_owned())
            .await
            .map_err(shared)?
            .ok_or_else(|| StoreError::NotFound(member.to_owned()))
    }

    async fn mutual_connections(
        &self,
        a: &str,
        b: &str,
        limit_to: usize,
    ) -> Result<Vec<MemberRecord>, StoreError> {
        if !representable(a) || !representable(b) || limit_to == 0 {
            self.require_all(&[a, b]).await?;
            return Ok(Vec::new());
        }
        let rows = self
            .read(
                MUTUALS,
                vec![
                    ("a", string(a)),
                    ("b", string(b)),
                    ("limit", FalkorValue::I64(limit(limit_to))),
                ],
            )
            .await?;
        if rows.is_empty() {
            return Err(self.missing(&[a, b]).await);
        }
        rows.iter()
            .filter_map(|row| record(row).transpose())
            .collect()
    }

    async fn degree(&self, from: &str, to: &str) -> Result<DegreeResult, StoreError> {
        let out_of_network = DegreeResult {
            degree: Degree::OutOfNetwork,
            path: Vec::new(),
        };
        if from == to || !representable(from) || !representable(to) {
            // FalkorDB has no path from a member to itself; the answer is existence alone.
            self.require_all(&[from, to]).await?;
            return Ok(out_of_network);
        }
        let rows = self
            .read(PATH, vec![("from", string(from)), ("to", string(to))])
            .await?;
        let Some(row) = rows.first() else {
            return Err(self.missing(&[from, to]).await);
        };
        let path = match row.get("ids") {
            Some(FalkorValue::Array(ids)) => ids
                .iter()
                .map(|v| match v {
                    FalkorValue::String(s) => Ok(s.clone()),
                    other => Err(StoreError::Graph(format!("path member id {other:?}"))),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(FalkorValue::None) | None => Vec::new(),
            Some(other) => return Err(StoreError::Graph(format!("path {other:?}"))),
        };
        if path.is_empty() {
            return Ok(out_of_network);
        }
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
        if !representable(member) {
            return Err(StoreError::NotFound(member.to_owned()));
        }
        // The statement's optional match yields one row of nulls for a member with no
        // suggestions, so ask for one more than needed and drop that row.
        let rows = self
            .read(
                SUGGESTIONS,
                vec![
                    ("id", string(member)),
                    ("limit", FalkorValue::I64(limit(limit_to) + 1)),
                ],
            )
            .await?;
        if rows.is_empty() {
            return Err(StoreError::NotFound(member.to_owned()));
        }
        let mut suggestions = Vec::new();
        for row in &rows {
            if let Some(m) = record(row)? {
                suggestions.push(Suggestion {
                    member: m,
                    mutual_count: count(int(row, "mutuals")?),
                });
            }
        }
        suggestions.truncate(limit_to.min(MAX_PAGE));
        Ok(suggestions)
    }

    async fn relay_pending_events(&self, older_than: Duration) -> Result<usize, StoreError> {
        let age = chrono::Duration::from_std(older_than).unwrap_or(chrono::Duration::MAX);
        let cutoff = Utc::now()
            .checked_sub_signed(age)
            .map_or(i64::MIN, |t| t.timestamp_micros());
        let mut moved = 0;
        loop {
            let rows = self
                .read(
                    PENDING_EVENTS,
                    vec![
                        ("cutoff", FalkorValue::I64(cutoff)),
                        ("limit", FalkorValue::I64(RELAY_BATCH)),
                    ],
                )
                .await?;
            let events = rows
                .iter()
                .map(Self::pending_event)
                .collect::<Result<Vec<_>, _>>()?;
            self.hand_over(&events).await?;
            moved += events.len();
            if (events.len() as i64) < RELAY_BATCH {
                return Ok(moved);
            }
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read("RETURN 1 AS one", Vec::new()).await.map(|_| ())
    }
}
