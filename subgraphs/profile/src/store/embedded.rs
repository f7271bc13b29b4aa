//! The embedded graph store: SQL rows for durability, an in-memory index for every read.
//!
//! Writes go to SQL first (SQLite under the data dir, or PostgreSQL), in one transaction with any
//! outbox event, and only after the commit to memory, so memory always shows committed state.
//! Mutations are serialised by one async lock, so the decision a mutation takes (e.g. "the other
//! member already asked, so connect") is made on the state it then writes. Reads never touch SQL.
//!
//! At start-up the rows are loaded and the [`AdjacencyIndex`] is built from them in one pass.
//! This store assumes it is the only writer of its tables (one instance per database): another
//! process's writes would not reach this process's index.

use std::collections::HashMap;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, AnyPool, Row};
use switchyard_subgraph_kit::events::outbox;

use super::{
    connection_accepted, connection_removed, AcceptOutcome, AdjacencyIndex, ConnectionsPage,
    Degree, DegreeResult, GraphSize, GraphStore, MemberRecord, NodeId, ProfileUpdate,
    RequestOutcome, StoreError, Suggestion, MAX_PAGE,
};

const SCHEMA: [&str; 5] = [
    "CREATE TABLE IF NOT EXISTS profile_members (
        id TEXT PRIMARY KEY,
        handle TEXT NOT NULL,
        handle_key TEXT NOT NULL,
        display_name TEXT NOT NULL,
        headline TEXT,
        location TEXT,
        joined_at BIGINT NOT NULL
    )",
    // Edges are stored once, with member_a < member_b.
    "CREATE TABLE IF NOT EXISTS profile_connections (
        member_a TEXT NOT NULL,
        member_b TEXT NOT NULL,
        connected_at BIGINT NOT NULL,
        PRIMARY KEY (member_a, member_b)
    )",
    "CREATE INDEX IF NOT EXISTS profile_connections_b ON profile_connections (member_b)",
    "CREATE TABLE IF NOT EXISTS profile_connection_requests (
        from_id TEXT NOT NULL,
        to_id TEXT NOT NULL,
        requested_at BIGINT NOT NULL,
        PRIMARY KEY (from_id, to_id)
    )",
    "CREATE INDEX IF NOT EXISTS profile_connection_requests_to ON profile_connection_requests (to_id)",
];

/// Creates the store's tables and the kit's outbox tables if missing.
pub async fn migrate(pool: &AnyPool) -> Result<(), StoreError> {
    for statement in SCHEMA {
        sqlx::query(statement).execute(pool).await?;
    }
    outbox::migrate(pool).await?;
    Ok(())
}

/// Everything reads need, in memory.
#[derive(Default)]
struct State {
    index: AdjacencyIndex,
    /// Member per node; `None` for a deleted member (its slot and id mapping are kept, so a
    /// member re-created with the same id gets the same node).
    members: Vec<Option<MemberRecord>>,
    by_id: HashMap<String, NodeId>,
    by_handle: HashMap<String, NodeId>,
    /// Pending requests: sender → recipients and recipient → senders, oldest first.
    requests_out: HashMap<NodeId, Vec<NodeId>>,
    requests_in: HashMap<NodeId, Vec<NodeId>>,
}

impl State {
    fn node(&self, id: &str) -> Option<NodeId> {
        let node = *self.by_id.get(id)?;
        self.members[node as usize].as_ref().map(|_| node)
    }

    fn require(&self, id: &str) -> Result<NodeId, StoreError> {
        self.node(id)
            .ok_or_else(|| StoreError::NotFound(id.to_owned()))
    }

    fn record(&self, node: NodeId) -> Option<&MemberRecord> {
        self.members.get(node as usize)?.as_ref()
    }

    fn id(&self, node: NodeId) -> &str {
        self.record(node).map_or("", |m| m.id.as_str())
    }

    fn pending(&self, from: NodeId, to: NodeId) -> bool {
        self.requests_out
            .get(&from)
            .is_some_and(|list| list.contains(&to))
    }

    fn upsert(&mut self, member: MemberRecord) {
        let key = member.handle.to_lowercase();
        let node = match self.by_id.get(&member.id) {
            Some(&node) => node,
            None => {
                let node = self.index.add_node();
                self.members.push(None);
                self.by_id.insert(member.id.clone(), node);
                node
            }
        };
        if let Some(old) = &self.members[node as usize] {
            let old_key = old.handle.to_lowercase();
            if self.by_handle.get(&old_key) == Some(&node) {
                self.by_handle.remove(&old_key);
            }
        }
        self.by_handle.insert(key, node);
        self.members[node as usize] = Some(member);
    }

    fn delete(&mut self, node: NodeId) {
        self.index.isolate(node);
        if let Some(old) = self.members[node as usize].take() {
            let key = old.handle.to_lowercase();
            if self.by_handle.get(&key) == Some(&node) {
                self.by_handle.remove(&key);
            }
        }
        for to in self.requests_out.remove(&node).unwrap_or_default() {
            remove_from(&mut self.requests_in, to, node);
        }
        for from in self.requests_in.remove(&node).unwrap_or_default() {
            remove_from(&mut self.requests_out, from, node);
        }
    }

    fn add_request(&mut self, from: NodeId, to: NodeId) {
        self.requests_out.entry(from).or_default().push(to);
        self.requests_in.entry(to).or_default().push(from);
    }

    /// Drops pending requests both ways between `a` and `b`; true if there were any.
    fn drop_requests(&mut self, a: NodeId, b: NodeId) -> bool {
        let mut any = false;
        for (from, to) in [(a, b), (b, a)] {
            any |= remove_from(&mut self.requests_out, from, to);
            remove_from(&mut self.requests_in, to, from);
        }
        any
    }
}

fn remove_from(map: &mut HashMap<NodeId, Vec<NodeId>>, key: NodeId, value: NodeId) -> bool {
    let Some(list) = map.get_mut(&key) else {
        return false;
    };
    let before = list.len();
    list.retain(|&v| v != value);
    let removed = list.len() != before;
    if list.is_empty() {
        map.remove(&key);
    }
    removed
}

/// The embedded [`GraphStore`]: see the module docs.
pub struct EmbeddedGraphStore {
    pool: AnyPool,
    state: RwLock<State>,
    writes: tokio::sync::Mutex<()>,
}

impl EmbeddedGraphStore {
    /// Migrates `pool`'s database and loads it into memory.
    pub async fn open(pool: AnyPool) -> Result<Self, StoreError> {
        migrate(&pool).await?;
        let mut state = State::default();
        let rows = sqlx::query(
            "SELECT id, handle, display_name, headline, location, joined_at FROM profile_members
             ORDER BY joined_at, id",
        )
        .fetch_all(&pool)
        .await?;
        let mut members = Vec::with_capacity(rows.len());
        for row in &rows {
            members.push(MemberRecord {
                id: row.try_get("id")?,
                handle: row.try_get("handle")?,
                display_name: row.try_get("display_name")?,
                headline: row.try_get("headline")?,
                location: row.try_get("location")?,
                joined_at: from_micros(row.try_get("joined_at")?),
            });
        }
        drop(rows);
        let mut by_id = HashMap::with_capacity(members.len());
        for (node, m) in members.iter().enumerate() {
            by_id.insert(m.id.clone(), node as NodeId);
        }
        // Rows naming a member that no longer exists (a delete racing a connect) are skipped.
        let mut edges: Vec<(NodeId, NodeId)> = Vec::new();
        let rows = sqlx::query("SELECT member_a, member_b FROM profile_connections")
            .fetch_all(&pool)
            .await?;
        for row in &rows {
            let a: String = row.try_get(0)?;
            let b: String = row.try_get(1)?;
            if let (Some(&a), Some(&b)) = (by_id.get(&a), by_id.get(&b)) {
                edges.push((a, b));
            }
        }
        drop(rows);
        state.index = AdjacencyIndex::from_edge_source(members.len() as u32, |emit| {
            for &(a, b) in &edges {
                emit(a, b);
            }
        });
        drop(edges);
        state.members = Vec::with_capacity(members.len());
        for m in members {
            state
                .by_handle
                .insert(m.handle.to_lowercase(), state.members.len() as NodeId);
            state.members.push(Some(m));
        }
        state.by_id = by_id;
        let rows = sqlx::query(
            "SELECT from_id, to_id FROM profile_connection_requests ORDER BY requested_at, from_id",
        )
        .fetch_all(&pool)
        .await?;
        for row in &rows {
            let from: String = row.try_get(0)?;
            let to: String = row.try_get(1)?;
            if let (Some(f), Some(t)) = (state.node(&from), state.node(&to)) {
                state.add_request(f, t);
            }
        }
        tracing::info!(
            members = state.members.len(),
            connections = state.index.edge_count(),
            "profile graph loaded"
        );
        Ok(EmbeddedGraphStore {
            pool,
            state: RwLock::new(state),
            writes: tokio::sync::Mutex::new(()),
        })
    }

    /// The SQL pool (the service shares it for the outbox and its consumer).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-written (every change is
        // a few infallible steps), so a poisoned lock is still safe to use.
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    fn records(&self, nodes: impl IntoIterator<Item = NodeId>) -> Vec<MemberRecord> {
        let state = self.read();
        nodes
            .into_iter()
            .filter_map(|n| state.record(n).cloned())
            .collect()
    }

    /// Connects two members in SQL (with the event) and then in memory.
    async fn connect(
        &self,
        accepter: (&str, NodeId),
        other: (&str, NodeId),
    ) -> Result<(), StoreError> {
        let event = connection_accepted(accepter.0, other.0)?;
        let (a, b) = ordered(accepter.0, other.0);
        let mut tx = switchyard_subgraph_kit::db::begin(&self.pool).await?;
        delete_requests_sql(&mut tx, accepter.0, other.0).await?;
        sqlx::query(
            "INSERT INTO profile_connections (member_a, member_b, connected_at) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
        )
        .bind(a.to_owned())
        .bind(b.to_owned())
        .bind(Utc::now().timestamp_micros())
        .execute(&mut *tx)
        .await?;
        outbox::enqueue(&mut *tx, &event).await?;
        tx.commit().await?;
        let mut state = self.write();
        state.drop_requests(accepter.1, other.1);
        state.index.connect(accepter.1, other.1);
        Ok(())
    }
}

fn ordered<'a>(x: &'a str, y: &'a str) -> (&'a str, &'a str) {
    if x <= y {
        (x, y)
    } else {
        (y, x)
    }
}

fn from_micros(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

async fn delete_requests_sql(
    conn: &mut AnyConnection,
    a: &str,
    b: &str,
) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "DELETE FROM profile_connection_requests
         WHERE (from_id = $1 AND to_id = $2) OR (from_id = $2 AND to_id = $1)",
    )
    .bind(a.to_owned())
    .bind(b.to_owned())
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}

async fn upsert_sql(conn: &mut AnyConnection, m: &MemberRecord) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO profile_members (id, handle, handle_key, display_name, headline, location, joined_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (id) DO UPDATE SET handle = excluded.handle, handle_key = excluded.handle_key,
           display_name = excluded.display_name, headline = excluded.headline,
           location = excluded.location, joined_at = excluded.joined_at",
    )
    .bind(m.id.clone())
    .bind(m.handle.clone())
    .bind(m.handle.to_lowercase())
    .bind(m.display_name.clone())
    .bind(m.headline.clone())
    .bind(m.location.clone())
    .bind(m.joined_at.timestamp_micros())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn delete_sql(conn: &mut AnyConnection, id: &str) -> Result<u64, StoreError> {
    for statement in [
        "DELETE FROM profile_connections WHERE member_a = $1 OR member_b = $1",
        "DELETE FROM profile_connection_requests WHERE from_id = $1 OR to_id = $1",
    ] {
        sqlx::query(statement)
            .bind(id.to_owned())
            .execute(&mut *conn)
            .await?;
    }
    let done = sqlx::query("DELETE FROM profile_members WHERE id = $1")
        .bind(id.to_owned())
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected())
}

#[async_trait]
impl GraphStore for EmbeddedGraphStore {
    async fn upsert_member(&self, member: &MemberRecord) -> Result<(), StoreError> {
        let _writes = self.writes.lock().await;
        let mut conn = self.pool.acquire().await?;
        upsert_sql(&mut conn, member).await?;
        self.write().upsert(member.clone());
        Ok(())
    }

    async fn upsert_member_in(
        &self,
        conn: &mut AnyConnection,
        member: &MemberRecord,
    ) -> Result<(), StoreError> {
        // No `writes` lock here: the consumer's transaction already holds the database's write
        // lock, and waiting for a mutation that waits for that lock would deadlock. Memory is
        // updated before the consumer commits; if the commit fails the event is redelivered and
        // applied again, which converges.
        upsert_sql(conn, member).await?;
        self.write().upsert(member.clone());
        Ok(())
    }

    async fn member(&self, id: &str) -> Result<Option<MemberRecord>, StoreError> {
        let state = self.read();
        Ok(state.node(id).and_then(|n| state.record(n).cloned()))
    }

    async fn member_by_handle(&self, handle: &str) -> Result<Option<MemberRecord>, StoreError> {
        let state = self.read();
        Ok(state
            .by_handle
            .get(&handle.to_lowercase())
            .and_then(|&n| state.record(n).cloned()))
    }

    async fn update_profile(
        &self,
        id: &str,
        update: &ProfileUpdate,
    ) -> Result<MemberRecord, StoreError> {
        let _writes = self.writes.lock().await;
        let mut member = {
            let state = self.read();
            let node = state.require(id)?;
            state.record(node).cloned().expect("live node has a record")
        };
        update.apply(&mut member);
        let mut conn = self.pool.acquire().await?;
        upsert_sql(&mut conn, &member).await?;
        self.write().upsert(member.clone());
        Ok(member)
    }

    async fn delete_member(&self, id: &str) -> Result<bool, StoreError> {
        if id.contains('\0') {
            // No member has such an id (PostgreSQL text cannot hold NUL, so it would fail).
            return Ok(false);
        }
        let _writes = self.writes.lock().await;
        let mut tx = switchyard_subgraph_kit::db::begin(&self.pool).await?;
        let deleted = delete_sql(&mut tx, id).await?;
        tx.commit().await?;
        let mut state = self.write();
        if let Some(node) = state.node(id) {
            state.delete(node);
        }
        Ok(deleted > 0)
    }

    async fn delete_member_in(
        &self,
        conn: &mut AnyConnection,
        id: &str,
    ) -> Result<bool, StoreError> {
        // See `upsert_member_in` for why this does not take the `writes` lock.
        if id.contains('\0') {
            return Ok(false);
        }
        let deleted = delete_sql(conn, id).await?;
        let mut state = self.write();
        if let Some(node) = state.node(id) {
            state.delete(node);
        }
        Ok(deleted > 0)
    }

    async fn request_connection(&self, from: &str, to: &str) -> Result<RequestOutcome, StoreError> {
        if from == to {
            return Err(StoreError::SelfConnection);
        }
        let _writes = self.writes.lock().await;
        let (f, t, reverse, already) = {
            let state = self.read();
            let f = state.require(from)?;
            let t = state.require(to)?;
            if state.index.are_connected(f, t) {
                return Ok(RequestOutcome::AlreadyConnected);
            }
            (f, t, state.pending(t, f), state.pending(f, t))
        };
        if reverse {
            self.connect((from, f), (to, t)).await?;
            return Ok(RequestOutcome::Connected);
        }
        if already {
            return Ok(RequestOutcome::AlreadyRequested);
        }
        sqlx::query(
            "INSERT INTO profile_connection_requests (from_id, to_id, requested_at) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
        )
        .bind(from.to_owned())
        .bind(to.to_owned())
        .bind(Utc::now().timestamp_micros())
        .execute(&self.pool)
        .await?;
        self.write().add_request(f, t);
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
        let _writes = self.writes.lock().await;
        let (m, f) = {
            let state = self.read();
            let m = state.require(member)?;
            let f = state.require(from)?;
            if state.index.are_connected(m, f) {
                return Ok(AcceptOutcome::AlreadyConnected);
            }
            if !state.pending(f, m) {
                return Err(StoreError::NoPendingRequest(from.to_owned()));
            }
            (m, f)
        };
        self.connect((member, m), (from, f)).await?;
        Ok(AcceptOutcome::Connected)
    }

    async fn decline_connection(&self, member: &str, from: &str) -> Result<bool, StoreError> {
        let _writes = self.writes.lock().await;
        let (m, f) = {
            let state = self.read();
            let m = state.require(member)?;
            let f = state.require(from)?;
            if !state.pending(f, m) {
                return Ok(false);
            }
            (m, f)
        };
        sqlx::query("DELETE FROM profile_connection_requests WHERE from_id = $1 AND to_id = $2")
            .bind(from.to_owned())
            .bind(member.to_owned())
            .execute(&self.pool)
            .await?;
        let mut state = self.write();
        remove_from(&mut state.requests_out, f, m);
        remove_from(&mut state.requests_in, m, f);
        Ok(true)
    }

    async fn remove_connection(&self, member: &str, other: &str) -> Result<bool, StoreError> {
        let _writes = self.writes.lock().await;
        let (m, o) = {
            let state = self.read();
            (state.require(member)?, state.require(other)?)
        };
        let (a, b) = ordered(member, other);
        let mut tx = switchyard_subgraph_kit::db::begin(&self.pool).await?;
        let edges =
            sqlx::query("DELETE FROM profile_connections WHERE member_a = $1 AND member_b = $2")
                .bind(a.to_owned())
                .bind(b.to_owned())
                .execute(&mut *tx)
                .await?
                .rows_affected();
        let requests = delete_requests_sql(&mut tx, member, other).await?;
        if edges > 0 {
            outbox::enqueue(&mut *tx, &connection_removed(member, other)?).await?;
        }
        tx.commit().await?;
        let mut state = self.write();
        let disconnected = state.index.disconnect(m, o);
        let dropped = state.drop_requests(m, o);
        Ok(edges + requests > 0 || disconnected || dropped)
    }

    async fn pending_requests(&self, member: &str) -> Result<Vec<MemberRecord>, StoreError> {
        let senders = {
            let state = self.read();
            let m = state.require(member)?;
            state.requests_in.get(&m).cloned().unwrap_or_default()
        };
        Ok(self.records(senders))
    }

    async fn connections(
        &self,
        member: &str,
        first: usize,
        after: Option<&str>,
    ) -> Result<ConnectionsPage, StoreError> {
        let first = first.min(MAX_PAGE);
        let state = self.read();
        let m = state.require(member)?;
        let neighbours = state.index.neighbours(m);
        let mut ids: Vec<(&str, NodeId)> = neighbours
            .iter()
            .map(|&n| (state.id(n), n))
            .filter(|(id, _)| after.is_none_or(|a| *id > a))
            .collect();
        ids.sort_unstable();
        let has_next_page = ids.len() > first;
        let members = ids
            .iter()
            .take(first)
            .filter_map(|&(_, n)| state.record(n).cloned())
            .collect();
        Ok(ConnectionsPage {
            members,
            has_next_page,
            total_count: neighbours.len(),
        })
    }

    async fn connection_count(&self, member: &str) -> Result<usize, StoreError> {
        let state = self.read();
        let m = state.require(member)?;
        Ok(state.index.degree(m))
    }

    async fn mutual_connections(
        &self,
        a: &str,
        b: &str,
        limit: usize,
    ) -> Result<Vec<MemberRecord>, StoreError> {
        let state = self.read();
        let (x, y) = (state.require(a)?, state.require(b)?);
        let mut members: Vec<&MemberRecord> = state
            .index
            .mutuals(x, y)
            .into_iter()
            .filter_map(|n| state.record(n))
            .collect();
        members.sort_unstable_by(|p, q| p.id.cmp(&q.id));
        Ok(members
            .into_iter()
            .take(limit.min(MAX_PAGE))
            .cloned()
            .collect())
    }

    async fn degree(&self, from: &str, to: &str) -> Result<DegreeResult, StoreError> {
        let state = self.read();
        let (s, t) = (state.require(from)?, state.require(to)?);
        let path = state.index.shortest_path(s, t).unwrap_or_default();
        Ok(DegreeResult {
            degree: Degree::of_path(path.len()),
            path: path.into_iter().map(|n| state.id(n).to_owned()).collect(),
        })
    }

    async fn people_you_may_know(
        &self,
        member: &str,
        limit: usize,
    ) -> Result<Vec<Suggestion>, StoreError> {
        let state = self.read();
        let m = state.require(member)?;
        let outgoing = state.requests_out.get(&m);
        let incoming = state.requests_in.get(&m);
        let ranked = state.index.suggestions(
            m,
            limit.min(MAX_PAGE),
            |w| {
                state.record(w).is_none()
                    || outgoing.is_some_and(|l| l.contains(&w))
                    || incoming.is_some_and(|l| l.contains(&w))
            },
            |w| state.id(w),
        );
        Ok(ranked
            .into_iter()
            .filter_map(|(n, mutual_count)| {
                Some(Suggestion {
                    member: state.record(n)?.clone(),
                    mutual_count,
                })
            })
            .collect())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    fn graph_size(&self) -> Option<GraphSize> {
        let state = self.read();
        Some(GraphSize {
            members: state.members.iter().filter(|m| m.is_some()).count(),
            connections: state.index.edge_count(),
            index_bytes: state.index.csr_bytes(),
        })
    }
}
