//! One conformance suite for every `GraphStore` backend: the embedded store on SQLite always and
//! on PostgreSQL, FalkorDB (started by `scripts/ci-services.sh`; both skip with a notice when
//! their server is down, and fail under CI), and Neo4j / Memgraph when `NEO4J_URI` is set (with
//! `NEO4J_USER` / `NEO4J_PASSWORD`); without it the Neo4j cases print a skip note and pass (no
//! such server runs in CI).

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap is the test failing, at that line"
)]

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::AnyPool;
use switchyard_profile::store::{
    AcceptOutcome, Degree, EmbeddedGraphStore, GraphStore, MemberRecord, ProfileUpdate,
    RequestOutcome, StoreError,
};
use switchyard_subgraph_kit::db;
use switchyard_subgraph_kit::events::outbox;
use switchyard_subgraph_kit::testing::TestDatabase;
use tempfile::TempDir;

/// A store under test, its SQL database (outbox) and a prefix making its member ids unique.
struct Harness {
    store: Arc<dyn GraphStore>,
    pool: AnyPool,
    prefix: String,
    _dir: TempDir,
    /// The throwaway PostgreSQL database, dropped with the harness.
    pg: Option<TestDatabase>,
    /// The FalkorDB store, whose graph is this harness's own and deleted at clean-up.
    #[cfg(feature = "falkordb")]
    falkor: Option<Arc<switchyard_profile::store::FalkorGraphStore>>,
}

impl Harness {
    fn id(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    async fn add(&self, name: &str) -> String {
        let id = self.id(name);
        self.store
            .upsert_member(&record(&id, &format!("{}_{name}", &self.prefix[..8])))
            .await
            .unwrap();
        id
    }

    async fn add_all(&self, names: &[&str]) -> Vec<String> {
        let mut ids = Vec::new();
        for name in names {
            ids.push(self.add(name).await);
        }
        ids
    }

    async fn connect(&self, a: &str, b: &str) {
        assert_eq!(
            self.store.request_connection(a, b).await.unwrap(),
            RequestOutcome::Requested
        );
        assert_eq!(
            self.store.accept_connection(b, a).await.unwrap(),
            AcceptOutcome::Connected
        );
    }

    /// `connection.accepted` events in the outbox for this harness's members.
    async fn accepted_events(&self) -> Vec<serde_json::Value> {
        self.events("connection.accepted").await
    }

    /// Events of `event_type` in the outbox for this harness's members, oldest first.
    async fn events(&self, event_type: &str) -> Vec<serde_json::Value> {
        outbox::unpublished(&self.pool, 10_000)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.event_type == event_type && e.aggregate_id.starts_with(&self.prefix))
            .map(|e| e.payload)
            .collect()
    }

    /// Removes this harness's members (matters on a shared Neo4j) and drops its PostgreSQL
    /// database, if any.
    async fn cleanup(&self, ids: &[String]) {
        for id in ids {
            self.store.delete_member(id).await.unwrap();
        }
        #[cfg(feature = "falkordb")]
        if let Some(falkor) = &self.falkor {
            assert_eq!(
                falkor.pending_event_count().await.unwrap(),
                0,
                "every event was handed over to the SQL outbox"
            );
            falkor.delete_graph().await.unwrap();
        }
        if self.pg.is_some() {
            // The database itself goes when the harness is dropped.
            self.pool.close().await;
        }
    }
}

fn joined() -> DateTime<Utc> {
    DateTime::from_timestamp_micros(1_764_000_000_000_000).unwrap()
}

fn record(id: &str, handle: &str) -> MemberRecord {
    MemberRecord {
        id: id.to_owned(),
        handle: handle.to_owned(),
        display_name: format!("Member {handle}"),
        headline: None,
        location: None,
        joined_at: joined(),
    }
}

async fn sql_pool(dir: &TempDir, name: &str) -> AnyPool {
    let pool = db::connect(&db::sqlite_url(&dir.path().join(name)), 4)
        .await
        .unwrap();
    outbox::migrate(&pool).await.unwrap();
    pool
}

fn prefix() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

async fn embedded() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let pool = sql_pool(&dir, "profile.db").await;
    let store = EmbeddedGraphStore::open(pool.clone()).await.unwrap();
    Harness {
        store: Arc::new(store),
        pool,
        prefix: prefix(),
        _dir: dir,
        pg: None,
        #[cfg(feature = "falkordb")]
        falkor: None,
    }
}

/// The embedded store persisting to a fresh PostgreSQL database.
async fn embedded_postgres() -> Option<Harness> {
    let database = TestDatabase::create("switchyard_profile_test_").await?;
    let pool = database.connect(4).await;
    outbox::migrate(&pool).await.unwrap();
    let store = EmbeddedGraphStore::open(pool.clone()).await.unwrap();
    Some(Harness {
        store: Arc::new(store),
        pool,
        prefix: prefix(),
        _dir: tempfile::tempdir().unwrap(),
        pg: Some(database),
        #[cfg(feature = "falkordb")]
        falkor: None,
    })
}

/// FalkorDB, on a graph of the harness's own.
#[cfg(feature = "falkordb")]
async fn falkordb() -> Option<Harness> {
    use switchyard_profile::store::{FalkorConfig, FalkorGraphStore};
    use switchyard_profile::testing;
    let url = testing::falkordb_url().await?;
    let config = FalkorConfig {
        url,
        graph: testing::test_graph_name(),
    };
    let dir = tempfile::tempdir().unwrap();
    let pool = sql_pool(&dir, "outbox.db").await;
    let store = Arc::new(
        FalkorGraphStore::connect(&config, pool.clone())
            .await
            .unwrap(),
    );
    Some(Harness {
        store: store.clone(),
        pool,
        prefix: prefix(),
        _dir: dir,
        pg: None,
        falkor: Some(store),
    })
}

#[cfg(not(feature = "falkordb"))]
async fn falkordb() -> Option<Harness> {
    None
}

#[cfg(feature = "neo4j")]
async fn neo4j() -> Option<Harness> {
    use switchyard_profile::store::{Neo4jConfig, Neo4jGraphStore};
    let uri = std::env::var("NEO4J_URI").ok().filter(|u| !u.is_empty())?;
    let config = Neo4jConfig {
        uri,
        user: std::env::var("NEO4J_USER").unwrap_or_else(|_| "neo4j".into()),
        password: std::env::var("NEO4J_PASSWORD").unwrap_or_default(),
    };
    let dir = tempfile::tempdir().unwrap();
    let pool = sql_pool(&dir, "outbox.db").await;
    let store = Neo4jGraphStore::connect(&config, pool.clone())
        .await
        .expect("NEO4J_URI is set but the server cannot be reached");
    Some(Harness {
        store: Arc::new(store),
        pool,
        prefix: prefix(),
        _dir: dir,
        pg: None,
        #[cfg(feature = "falkordb")]
        falkor: None,
    })
}

#[cfg(not(feature = "neo4j"))]
async fn neo4j() -> Option<Harness> {
    None
}

/// Each case runs once per backend.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod embedded_store {
            $(
                #[tokio::test]
                async fn $case() {
                    let h = super::embedded().await;
                    super::cases::$case(&h).await;
                }
            )*
        }
        mod embedded_store_on_postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(h) = super::embedded_postgres().await else {
                        return;
                    };
                    super::cases::$case(&h).await;
                }
            )*
        }
        mod falkordb_store {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(h) = super::falkordb().await else {
                        return;
                    };
                    super::cases::$case(&h).await;
                }
            )*
        }
        mod neo4j_store {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(h) = super::neo4j().await else {
                        eprintln!("SKIPPED: set NEO4J_URI (and NEO4J_USER/NEO4J_PASSWORD) to run the conformance suite against Neo4j/Memgraph");
                        return;
                    };
                    super::cases::$case(&h).await;
                }
            )*
        }
    };
}

conformance!(
    members_round_trip,
    degrees_and_paths,
    pagination_is_stable_and_complete,
    mutual_connections,
    people_you_may_know_ranking,
    remove_connection,
    idempotent_accept_and_mutual_requests,
    self_connection_rejected,
    decline_and_pending,
    delete_member_removes_edges,
    hostile_text_round_trips,
    concurrent_crossed_requests_connect_once,
    unknown_members_are_not_found,
);

mod cases {
    use super::*;

    fn assert_path(path: &[String], from: &str, to: &str, hops: usize) {
        assert_eq!(path.len(), hops + 1, "{path:?}");
        assert_eq!(path.first().map(String::as_str), Some(from));
        assert_eq!(path.last().map(String::as_str), Some(to));
    }

    pub async fn members_round_trip(h: &Harness) {
        let a = h.add("a").await;
        let got = h.store.member(&a).await.unwrap().unwrap();
        assert_eq!(got.id, a);
        assert_eq!(got.joined_at, joined());
        let by_handle = h
            .store
            .member_by_handle(&got.handle.to_uppercase())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(by_handle.id, a, "handles match case-insensitively");
        let updated = h
            .store
            .update_profile(
                &a,
                &ProfileUpdate {
                    display_name: Some("Ada L".into()),
                    headline: Some(Some("Engineer".into())),
                    location: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(updated.display_name, "Ada L");
        assert_eq!(updated.headline.as_deref(), Some("Engineer"));
        let cleared = h
            .store
            .update_profile(
                &a,
                &ProfileUpdate {
                    headline: Some(None),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(cleared.headline, None);
        assert_eq!(cleared.display_name, "Ada L");
        assert_eq!(h.store.member(&a).await.unwrap().unwrap(), cleared);
        assert!(h.store.member(&h.id("nobody")).await.unwrap().is_none());
        assert!(matches!(
            h.store
                .update_profile(&h.id("nobody"), &ProfileUpdate::default())
                .await,
            Err(StoreError::NotFound(_))
        ));
        h.store.ping().await.unwrap();
        h.cleanup(&[a]).await;
    }

    pub async fn degrees_and_paths(h: &Harness) {
        // Chain a-b-c-d-e, a diamond a-x-z / a-y-z, and an isolated f.
        let ids = h
            .add_all(&["a", "b", "c", "d", "e", "f", "x", "y", "z"])
            .await;
        let [a, b, c, d, e, f, x, y, z] = <[String; 9]>::try_from(ids.clone()).unwrap();
        for (p, q) in [
            (&a, &b),
            (&b, &c),
            (&c, &d),
            (&d, &e),
            (&a, &x),
            (&a, &y),
            (&x, &z),
            (&y, &z),
        ] {
            h.connect(p, q).await;
        }
        let r = h.store.degree(&a, &b).await.unwrap();
        assert_eq!(r.degree, Degree::First);
        assert_eq!(r.path, vec![a.clone(), b.clone()]);
        let r = h.store.degree(&a, &c).await.unwrap();
        assert_eq!(r.degree, Degree::Second);
        assert_eq!(r.path, vec![a.clone(), b.clone(), c.clone()]);
        let r = h.store.degree(&a, &d).await.unwrap();
        assert_eq!(r.degree, Degree::Third);
        assert_eq!(r.path, vec![a.clone(), b.clone(), c.clone(), d.clone()]);
        let r = h.store.degree(&d, &a).await.unwrap();
        assert_eq!(r.path, vec![d.clone(), c.clone(), b.clone(), a.clone()]);
        let r = h.store.degree(&a, &e).await.unwrap();
        assert_eq!(
            r.degree,
            Degree::OutOfNetwork,
            "four hops is out of network"
        );
        assert!(r.path.is_empty());
        let r = h.store.degree(&a, &f).await.unwrap();
        assert_eq!(r.degree, Degree::OutOfNetwork);
        assert!(r.path.is_empty());
        // Two shortest paths: either middle is correct.
        let r = h.store.degree(&a, &z).await.unwrap();
        assert_eq!(r.degree, Degree::Second);
        assert_path(&r.path, &a, &z, 2);
        assert!(r.path[1] == x || r.path[1] == y, "{:?}", r.path);
        // Three hops through the diamond: e.g. z-x-a-b.
        let r = h.store.degree(&z, &b).await.unwrap();
        assert_eq!(r.degree, Degree::Third);
        assert_path(&r.path, &z, &b, 3);
        assert!(r.path[1] == x || r.path[1] == y);
        assert_eq!(r.path[2], a);
        assert!(matches!(
            h.store.degree(&a, &h.id("nobody")).await,
            Err(StoreError::NotFound(_))
        ));
        h.cleanup(&ids).await;
    }

    pub async fn pagination_is_stable_and_complete(h: &Harness) {
        let hub = h.add("hub").await;
        let mut others = Vec::new();
        for i in 0..23 {
            let id = h.add(&format!("n{i:02}")).await;
            h.connect(&id, &hub).await;
            others.push(id);
        }
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        let mut pages = 0;
        loop {
            let page = h
                .store
                .connections(&hub, 5, after.as_deref())
                .await
                .unwrap();
            assert_eq!(page.total_count, 23);
            assert!(page.members.len() <= 5);
            pages += 1;
            seen.extend(page.members.iter().map(|m| m.id.clone()));
            after = page.members.last().map(|m| m.id.clone());
            if !page.has_next_page {
                break;
            }
            assert_eq!(page.members.len(), 5, "only the last page is short");
        }
        assert_eq!(pages, 5);
        let mut expected = others.clone();
        expected.sort();
        assert_eq!(seen, expected, "every connection once, in id order");
        // The same walk again gives the same pages.
        let again = h
            .store
            .connections(&hub, 5, Some(&expected[4]))
            .await
            .unwrap();
        assert_eq!(
            again
                .members
                .iter()
                .map(|m| m.id.clone())
                .collect::<Vec<_>>(),
            expected[5..10].to_vec()
        );
        // A removal between pages neither repeats nor skips the remaining ones.
        h.store.remove_connection(&hub, &expected[6]).await.unwrap();
        let next = h
            .store
            .connections(&hub, 5, Some(&expected[4]))
            .await
            .unwrap();
        assert_eq!(
            next.members
                .iter()
                .map(|m| m.id.clone())
                .collect::<Vec<_>>(),
            [&expected[5..6], &expected[7..11]].concat()
        );
        assert_eq!(h.store.connection_count(&hub).await.unwrap(), 22);
        // `first` is capped.
        let all = h.store.connections(&hub, 10_000, None).await.unwrap();
        assert_eq!(all.members.len(), 22);
        assert!(!all.has_next_page);
        others.push(hub);
        h.cleanup(&others).await;
    }

    pub async fn mutual_connections(h: &Harness) {
        let ids = h.add_all(&["a", "b", "x", "y", "z", "w"]).await;
        let [a, b, x, y, z, w] = <[String; 6]>::try_from(ids.clone()).unwrap();
        for m in [&x, &y, &z] {
            h.connect(&a, m).await;
            h.connect(m, &b).await;
        }
        h.connect(&a, &w).await;
        let mut expected = vec![x.clone(), y.clone(), z.clone()];
        expected.sort();
        let got: Vec<String> = h
            .store
            .mutual_connections(&a, &b, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(got, expected);
        let two = h.store.mutual_connections(&b, &a, 2).await.unwrap();
        assert_eq!(two.len(), 2);
        assert_eq!(two[0].id, expected[0]);
        assert!(h
            .store
            .mutual_connections(&a, &w, 10)
            .await
            .unwrap()
            .is_empty());
        h.cleanup(&ids).await;
    }

    pub async fn people_you_may_know_ranking(h: &Harness) {
        let ids = h
            .add_all(&["me", "f1", "f2", "f3", "c1", "c2", "c3", "p", "q"])
            .await;
        let [me, f1, f2, f3, c1, c2, c3, p, q] = <[String; 9]>::try_from(ids.clone()).unwrap();
        for f in [&f1, &f2, &f3] {
            h.connect(&me, f).await;
            h.connect(&c1, f).await;
            h.connect(&p, f).await;
        }
        h.connect(&c2, &f1).await;
        h.connect(&c2, &f2).await;
        h.connect(&c3, &f3).await;
        h.connect(&q, &f1).await;
        // Pending either way excludes: me asked p, q asked me.
        h.store.request_connection(&me, &p).await.unwrap();
        h.store.request_connection(&q, &me).await.unwrap();
        let got: Vec<(String, usize)> = h
            .store
            .people_you_may_know(&me, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|s| (s.member.id, s.mutual_count))
            .collect();
        assert_eq!(got, vec![(c1.clone(), 3), (c2.clone(), 2), (c3.clone(), 1)]);
        let top: Vec<String> = h
            .store
            .people_you_may_know(&me, 2)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.member.id)
            .collect();
        assert_eq!(top, vec![c1.clone(), c2.clone()]);
        // Connecting to a suggestion removes it.
        h.connect(&me, &c1).await;
        let after: Vec<String> = h
            .store
            .people_you_may_know(&me, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.member.id)
            .collect();
        assert!(!after.contains(&c1));
        assert!(after.contains(&c2));
        h.cleanup(&ids).await;
    }

    pub async fn remove_connection(h: &Harness) {
        let ids = h.add_all(&["a", "b", "c"]).await;
        let [a, b, c] = <[String; 3]>::try_from(ids.clone()).unwrap();
        h.connect(&a, &b).await;
        assert!(h.store.remove_connection(&b, &a).await.unwrap());
        assert_eq!(
            h.store.degree(&a, &b).await.unwrap().degree,
            Degree::OutOfNetwork
        );
        assert_eq!(h.store.connection_count(&a).await.unwrap(), 0);
        assert!(
            !h.store.remove_connection(&a, &b).await.unwrap(),
            "nothing left to remove"
        );
        // One `connection.removed` for the one connection that went, naming who removed it.
        let removed = h.events("connection.removed").await;
        assert_eq!(removed.len(), 1, "{removed:?}");
        assert_eq!(removed[0]["memberId"], b.as_str());
        assert_eq!(removed[0]["otherMemberId"], a.as_str());
        // Removing also withdraws a pending request (nothing was granted: no event).
        h.store.request_connection(&a, &c).await.unwrap();
        assert!(h.store.remove_connection(&a, &c).await.unwrap());
        assert!(h.store.pending_requests(&c).await.unwrap().is_empty());
        assert_eq!(h.events("connection.removed").await.len(), 1);
        // And they can connect again afterwards.
        h.connect(&a, &b).await;
        assert_eq!(h.store.degree(&a, &b).await.unwrap().degree, Degree::First);
        h.cleanup(&ids).await;
    }

    pub async fn idempotent_accept_and_mutual_requests(h: &Harness) {
        let ids = h.add_all(&["a", "b", "c", "d"]).await;
        let [a, b, c, d] = <[String; 4]>::try_from(ids.clone()).unwrap();
        assert!(matches!(
            h.store.accept_connection(&b, &a).await,
            Err(StoreError::NoPendingRequest(_))
        ));
        assert_eq!(
            h.store.request_connection(&a, &b).await.unwrap(),
            RequestOutcome::Requested
        );
        assert_eq!(
            h.store.request_connection(&a, &b).await.unwrap(),
            RequestOutcome::AlreadyRequested
        );
        assert_eq!(
            h.store.accept_connection(&b, &a).await.unwrap(),
            AcceptOutcome::Connected
        );
        assert_eq!(
            h.store.accept_connection(&b, &a).await.unwrap(),
            AcceptOutcome::AlreadyConnected
        );
        assert_eq!(
            h.store.request_connection(&a, &b).await.unwrap(),
            RequestOutcome::AlreadyConnected
        );
        assert_eq!(h.store.connection_count(&a).await.unwrap(), 1);
        // Crossed requests: the second one connects, and its sender is the accepter.
        h.store.request_connection(&c, &d).await.unwrap();
        assert_eq!(
            h.store.request_connection(&d, &c).await.unwrap(),
            RequestOutcome::Connected
        );
        assert!(h.store.pending_requests(&c).await.unwrap().is_empty());
        assert!(h.store.pending_requests(&d).await.unwrap().is_empty());
        let events = h.accepted_events().await;
        assert_eq!(events.len(), 2, "one event per new connection: {events:?}");
        assert_eq!(events[0]["memberId"], b.as_str());
        assert_eq!(events[0]["otherMemberId"], a.as_str());
        assert_eq!(events[1]["memberId"], d.as_str());
        assert_eq!(events[1]["otherMemberId"], c.as_str());
        h.cleanup(&ids).await;
    }

    pub async fn self_connection_rejected(h: &Harness) {
        let a = h.add("a").await;
        assert!(matches!(
            h.store.request_connection(&a, &a).await,
            Err(StoreError::SelfConnection)
        ));
        assert!(matches!(
            h.store.accept_connection(&a, &a).await,
            Err(StoreError::SelfConnection)
        ));
        assert!(matches!(
            h.store.request_connection(&a, &h.id("nobody")).await,
            Err(StoreError::NotFound(_))
        ));
        assert_eq!(h.store.connection_count(&a).await.unwrap(), 0);
        h.cleanup(&[a]).await;
    }

    pub async fn decline_and_pending(h: &Harness) {
        let ids = h.add_all(&["a", "b", "c"]).await;
        let [a, b, c] = <[String; 3]>::try_from(ids.clone()).unwrap();
        h.store.request_connection(&a, &c).await.unwrap();
        h.store.request_connection(&b, &c).await.unwrap();
        let pending: Vec<String> = h
            .store
            .pending_requests(&c)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(pending, vec![a.clone(), b.clone()], "oldest first");
        assert!(h.store.decline_connection(&c, &a).await.unwrap());
        assert!(!h.store.decline_connection(&c, &a).await.unwrap());
        assert_eq!(h.store.pending_requests(&c).await.unwrap().len(), 1);
        assert!(matches!(
            h.store.accept_connection(&c, &a).await,
            Err(StoreError::NoPendingRequest(_))
        ));
        assert!(h.accepted_events().await.is_empty());
        h.cleanup(&ids).await;
    }

    pub async fn delete_member_removes_edges(h: &Harness) {
        let ids = h.add_all(&["a", "b", "c"]).await;
        let [a, b, c] = <[String; 3]>::try_from(ids.clone()).unwrap();
        h.connect(&a, &b).await;
        h.connect(&b, &c).await;
        h.store.request_connection(&a, &c).await.unwrap();
        assert!(h.store.delete_member(&b).await.unwrap());
        assert!(!h.store.delete_member(&b).await.unwrap(), "idempotent");
        assert!(h.store.member(&b).await.unwrap().is_none());
        assert_eq!(h.store.connection_count(&a).await.unwrap(), 0);
        assert_eq!(
            h.store.degree(&a, &c).await.unwrap().degree,
            Degree::OutOfNetwork
        );
        assert_eq!(h.store.pending_requests(&c).await.unwrap().len(), 1);
        // Re-created with the same id, the member starts with no connections.
        h.add("b").await;
        assert_eq!(h.store.connection_count(&b).await.unwrap(), 0);
        h.cleanup(&ids).await;
    }

    /// Text that would break a query built by pasting strings: quotes, backslashes, Cypher
    /// fragments, parameter syntax, newlines, non-ASCII. Each must round-trip unchanged and
    /// leave everything else alone.
    pub async fn hostile_text_round_trips(h: &Harness) {
        let bystander = h.add("bystander").await;
        let hostile = [
            "O'Brien",
            "\\'; MATCH (n) DETACH DELETE n //",
            "'}) MATCH (n) DETACH DELETE n RETURN 1 //",
            "\"double\" and \\\"escaped\\\"",
            "$id ${id} {id: 'x'}",
            "line one\nline two\r\ttabbed",
            "Amrita अमृता 🚀 Ünïcödé",
            "back\\slash at the end\\",
            "`backtick` and `)`",
        ];
        let mut ids = vec![bystander.clone()];
        for (i, text) in hostile.iter().enumerate() {
            // Ids and handles carry the text too: they reach the graph as parameters as well.
            let id = format!("{}-{i}-{text}", h.prefix);
            let member = MemberRecord {
                id: id.clone(),
                handle: format!("{}{i}{text}", &h.prefix[..8]),
                display_name: (*text).to_owned(),
                headline: Some(format!("headline {text}")),
                location: Some((*text).to_owned()),
                joined_at: joined(),
            };
            h.store.upsert_member(&member).await.unwrap();
            assert_eq!(
                h.store.member(&id).await.unwrap(),
                Some(member.clone()),
                "{text:?}"
            );
            let by_handle = h.store.member_by_handle(&member.handle).await.unwrap();
            assert_eq!(by_handle.map(|m| m.id), Some(id.clone()), "{text:?}");
            h.connect(&id, &bystander).await;
            let updated = h
                .store
                .update_profile(
                    &id,
                    &ProfileUpdate {
                        display_name: Some(format!("{text} (edited)")),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            assert_eq!(updated.display_name, format!("{text} (edited)"));
            assert_eq!(updated.location.as_deref(), Some(*text));
            ids.push(id);
        }
        assert!(h.store.member(&bystander).await.unwrap().is_some());
        assert_eq!(
            h.store.connection_count(&bystander).await.unwrap(),
            hostile.len()
        );
        let r = h.store.degree(&ids[1], &ids[2]).await.unwrap();
        assert_eq!(r.degree, Degree::Second);
        assert_eq!(
            r.path,
            vec![ids[1].clone(), bystander.clone(), ids[2].clone()]
        );
        h.cleanup(&ids).await;
    }

    /// Crossed requests racing each other end in one connection and one event, however they
    /// interleave.
    pub async fn concurrent_crossed_requests_connect_once(h: &Harness) {
        let ids = h.add_all(&["p", "q"]).await;
        let [p, q] = <[String; 2]>::try_from(ids.clone()).unwrap();
        let mut tasks = Vec::new();
        for i in 0..16 {
            let store = h.store.clone();
            let (from, to) = if i % 2 == 0 {
                (p.clone(), q.clone())
            } else {
                (q.clone(), p.clone())
            };
            tasks.push(tokio::spawn(async move {
                store.request_connection(&from, &to).await.unwrap()
            }));
        }
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.unwrap());
        }
        let connected = outcomes
            .iter()
            .filter(|o| **o == RequestOutcome::Connected)
            .count();
        assert_eq!(
            connected, 1,
            "exactly one request completes the pair: {outcomes:?}"
        );
        assert_eq!(h.store.connection_count(&p).await.unwrap(), 1);
        assert_eq!(h.store.connection_count(&q).await.unwrap(), 1);
        assert!(h.store.pending_requests(&p).await.unwrap().is_empty());
        assert!(h.store.pending_requests(&q).await.unwrap().is_empty());
        assert_eq!(h.accepted_events().await.len(), 1);
        h.cleanup(&ids).await;
    }

    /// Every call naming a missing member says so (ids a graph server cannot even encode
    /// included), and creates nothing.
    pub async fn unknown_members_are_not_found(h: &Harness) {
        let a = h.add("a").await;
        for nobody in [h.id("nobody"), format!("{}-nul\0byte", h.prefix)] {
            let not_found = |r: &Result<_, StoreError>, what: &str| {
                assert!(
                    matches!(r, Err(StoreError::NotFound(_))),
                    "{what}: {nobody:?}"
                );
            };
            assert!(h.store.member(&nobody).await.unwrap().is_none());
            assert!(h.store.member_by_handle(&nobody).await.unwrap().is_none());
            not_found(
                &h.store.request_connection(&a, &nobody).await.map(|_| ()),
                "request to",
            );
            not_found(
                &h.store.request_connection(&nobody, &a).await.map(|_| ()),
                "request from",
            );
            not_found(
                &h.store.accept_connection(&a, &nobody).await.map(|_| ()),
                "accept",
            );
            not_found(
                &h.store.decline_connection(&a, &nobody).await.map(|_| ()),
                "decline",
            );
            not_found(
                &h.store.remove_connection(&a, &nobody).await.map(|_| ()),
                "remove",
            );
            not_found(
                &h.store.pending_requests(&nobody).await.map(|_| ()),
                "pending",
            );
            not_found(
                &h.store.connections(&nobody, 5, None).await.map(|_| ()),
                "connections",
            );
            not_found(
                &h.store.connection_count(&nobody).await.map(|_| ()),
                "count",
            );
            not_found(
                &h.store.mutual_connections(&a, &nobody, 5).await.map(|_| ()),
                "mutuals",
            );
            not_found(
                &h.store.mutual_connections(&nobody, &a, 0).await.map(|_| ()),
                "mutuals 0",
            );
            not_found(&h.store.degree(&a, &nobody).await.map(|_| ()), "degree to");
            not_found(
                &h.store.degree(&nobody, &nobody).await.map(|_| ()),
                "degree self",
            );
            not_found(
                &h.store.people_you_may_know(&nobody, 5).await.map(|_| ()),
                "suggestions",
            );
            not_found(
                &h.store
                    .update_profile(&nobody, &ProfileUpdate::default())
                    .await
                    .map(|_| ()),
                "update",
            );
            assert!(!h.store.delete_member(&nobody).await.unwrap());
        }
        assert!(
            h.store.member(&h.id("nobody")).await.unwrap().is_none(),
            "nothing created"
        );
        assert_eq!(h.store.connection_count(&a).await.unwrap(), 0);
        let r = h.store.degree(&a, &a).await.unwrap();
        assert_eq!(
            r.degree,
            Degree::OutOfNetwork,
            "a member is not their own connection"
        );
        assert!(r.path.is_empty());
        assert!(h.accepted_events().await.is_empty());
        h.cleanup(&[a]).await;
    }
}

/// Embedded only: everything survives closing and reopening the database.
#[tokio::test]
async fn embedded_store_persists_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let url = db::sqlite_url(&dir.path().join("profile.db"));
    let (a, b, c, d) = (
        "m-a".to_string(),
        "m-b".to_string(),
        "m-c".to_string(),
        "m-d".to_string(),
    );
    {
        let pool = db::connect(&url, 2).await.unwrap();
        let store = EmbeddedGraphStore::open(pool.clone()).await.unwrap();
        for (id, handle) in [(&a, "ada"), (&b, "bob"), (&c, "cy"), (&d, "dee")] {
            store.upsert_member(&record(id, handle)).await.unwrap();
        }
        store.request_connection(&a, &b).await.unwrap();
        store.accept_connection(&b, &a).await.unwrap();
        store.request_connection(&b, &c).await.unwrap();
        store.accept_connection(&c, &b).await.unwrap();
        store.request_connection(&d, &a).await.unwrap();
        store
            .update_profile(
                &a,
                &ProfileUpdate {
                    location: Some(Some("Lisbon".into())),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        pool.close().await;
    }
    let pool = db::connect(&url, 2).await.unwrap();
    let store = EmbeddedGraphStore::open(pool).await.unwrap();
    let r = store.degree(&a, &c).await.unwrap();
    assert_eq!(r.degree, Degree::Second);
    assert_eq!(r.path, vec![a.clone(), b.clone(), c.clone()]);
    assert_eq!(store.connection_count(&b).await.unwrap(), 2);
    assert_eq!(
        store.member(&a).await.unwrap().unwrap().location.as_deref(),
        Some("Lisbon")
    );
    assert_eq!(store.member_by_handle("CY").await.unwrap().unwrap().id, c);
    let pending: Vec<String> = store
        .pending_requests(&a)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(pending, vec![d.clone()]);
    assert_eq!(
        store.accept_connection(&a, &d).await.unwrap(),
        AcceptOutcome::Connected
    );
}
