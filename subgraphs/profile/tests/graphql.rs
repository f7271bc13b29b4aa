//! The profile schema executed end to end on the embedded store, with real signed access tokens
//! (a test Ed25519 key published as a JWKS) and real events on an in-process bus.

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap is the test failing, at that line"
)]

use std::sync::Arc;
use std::time::Duration;

use async_graphql::{Request, Response, Variables};
use serde_json::{json, Value};
use sqlx::AnyPool;
use switchyard_profile::{
    build_schema, consumer, EmbeddedGraphStore, GraphStore, ProfileDeps, ProfileSchema, ViewTracker,
};
use switchyard_subgraph_kit::auth::{jwks, BearerToken, Claims, JwtSigner, JwtVerifier};
use switchyard_subgraph_kit::events::outbox;
use switchyard_subgraph_kit::{db, Event, EventBus};
use tempfile::TempDir;

struct App {
    schema: ProfileSchema,
    store: Arc<dyn GraphStore>,
    pool: AnyPool,
    signer: JwtSigner,
    bus: EventBus,
    _dir: TempDir,
}

impl App {
    async fn new() -> App {
        let dir = tempfile::tempdir().unwrap();
        let pool = db::connect(&db::sqlite_url(&dir.path().join("profile.db")), 4)
            .await
            .unwrap();
        outbox::migrate(&pool).await.unwrap();
        switchyard_profile::views::migrate(&pool).await.unwrap();
        let store: Arc<dyn GraphStore> =
            Arc::new(EmbeddedGraphStore::open(pool.clone()).await.unwrap());
        let signer = JwtSigner::generate("test-key");
        let verifier = JwtVerifier::from_jwks_json(&jwks(std::slice::from_ref(&signer))).unwrap();
        let deps = ProfileDeps {
            store: store.clone(),
            views: ViewTracker::new(pool.clone(), None),
            relay: None,
            members: None,
        };
        App {
            schema: build_schema(Some(deps), Some(verifier)),
            store,
            pool,
            signer,
            bus: EventBus::in_process(),
            _dir: dir,
        }
    }

    fn token(&self, member: &str) -> String {
        self.signer
            .sign(&Claims::new(member, member, Duration::from_secs(600)))
    }

    async fn run(&self, as_member: Option<&str>, query: &str, variables: Value) -> Response {
        let mut request = Request::new(query).variables(Variables::from_json(variables));
        if let Some(member) = as_member {
            request = request.data(BearerToken(self.token(member)));
        }
        self.schema.execute(request).await
    }

    /// Runs and expects success; returns `data` as JSON.
    async fn ok(&self, as_member: Option<&str>, query: &str, variables: Value) -> Value {
        let response = self.run(as_member, query, variables).await;
        assert!(response.errors.is_empty(), "{:?}", response.errors);
        response.data.into_json().unwrap()
    }

    /// Runs and expects one error; returns its `extensions.code`.
    async fn error_code(&self, as_member: Option<&str>, query: &str, variables: Value) -> String {
        let response = self.run(as_member, query, variables).await;
        assert_eq!(response.errors.len(), 1, "{:?}", response.errors);
        let error = serde_json::to_value(&response.errors[0]).unwrap();
        error["extensions"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Creates members the way production does: `account.created` on the bus, consumed.
    async fn sign_up(&self, handles: &[&str]) -> Vec<String> {
        let mut subscription = self.bus.subscribe("profile").await.unwrap();
        let mut ids = Vec::new();
        for handle in handles {
            let id = uuid::Uuid::now_v7().to_string();
            let event = account_created(&id, handle);
            self.bus.publish(&event).await.unwrap();
            ids.push(id);
        }
        let consumer = consumer(self.pool.clone(), self.store.clone());
        let mut handled = 0;
        while handled < handles.len() {
            handled += consumer.run_batch(&mut subscription).await.unwrap();
        }
        ids
    }

    async fn connect(&self, a: &str, b: &str) {
        self.ok(
            Some(a),
            "mutation($to: ID!) { requestConnection(to: $to) { status } }",
            json!({"to": b}),
        )
        .await;
        self.ok(
            Some(b),
            "mutation($from: ID!) { acceptConnection(from: $from) { id } }",
            json!({"from": a}),
        )
        .await;
    }

    async fn outbox_events(&self, event_type: &str) -> Vec<Event> {
        outbox::unpublished(&self.pool, 10_000)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.event_type == event_type)
            .collect()
    }
}

fn account_created(id: &str, handle: &str) -> Event {
    Event::new(
        "account.created",
        id,
        json!({"accountId": id, "memberId": id, "handle": handle, "displayName": format!("The {handle}")}),
    )
    .unwrap()
}

#[tokio::test]
async fn account_events_create_and_delete_members_once() {
    let app = App::new().await;
    let mut subscription = app.bus.subscribe("profile").await.unwrap();
    let consumer = consumer(app.pool.clone(), app.store.clone());
    let id = uuid::Uuid::now_v7().to_string();
    let created = account_created(&id, "ada");
    app.bus.publish(&created).await.unwrap();
    assert_eq!(consumer.run_batch(&mut subscription).await.unwrap(), 1);
    let data = app
        .ok(
            None,
            "query($id: ID!) { member(id: $id) { id handle displayName joinedAt connectionCount } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(data["member"]["handle"], "ada");
    assert_eq!(data["member"]["displayName"], "The ada");
    assert_eq!(data["member"]["connectionCount"], 0);
    let joined: chrono::DateTime<chrono::Utc> = data["member"]["joinedAt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(joined, created.occurred_at, "joinedAt is the event time");

    // The member edits the profile; a replay of the same event must not reset it or duplicate.
    app.ok(
        Some(&id),
        r#"mutation { updateProfile(headline: "Engineer") { headline } }"#,
        json!({}),
    )
    .await;
    app.bus.publish(&created).await.unwrap();
    assert_eq!(
        consumer.run_batch(&mut subscription).await.unwrap(),
        0,
        "replay skipped"
    );
    let data = app
        .ok(
            None,
            "query { memberByHandle(handle: \"ADA\") { id headline } }",
            json!({}),
        )
        .await;
    assert_eq!(data["memberByHandle"]["headline"], "Engineer");
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM profile_members")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(rows, 1);

    let deleted = Event::new(
        "account.deleted",
        id.as_str(),
        json!({"accountId": id, "memberId": id}),
    )
    .unwrap();
    app.bus.publish(&deleted).await.unwrap();
    assert_eq!(consumer.run_batch(&mut subscription).await.unwrap(), 1);
    let data = app
        .ok(
            None,
            "query($id: ID!) { member(id: $id) { id } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(data["member"], Value::Null);
}

#[tokio::test]
async fn request_accept_and_degree_with_path() {
    let app = App::new().await;
    let ids = app.sign_up(&["ann", "ben", "cat", "dan"]).await;
    let (ann, ben, cat, dan) = (&ids[0], &ids[1], &ids[2], &ids[3]);

    let data = app
        .ok(
            Some(ann),
            "mutation($to: ID!) { requestConnection(to: $to) { status member { handle } } }",
            json!({"to": ben}),
        )
        .await;
    assert_eq!(data["requestConnection"]["status"], "PENDING");
    assert_eq!(data["requestConnection"]["member"]["handle"], "ben");
    let data = app
        .ok(
            Some(ben),
            "{ pendingConnectionRequests { handle } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data["pendingConnectionRequests"],
        json!([{"handle": "ann"}])
    );
    let data = app
        .ok(
            Some(ben),
            "mutation($from: ID!) { acceptConnection(from: $from) { handle connectionCount } }",
            json!({"from": ann}),
        )
        .await;
    assert_eq!(
        data["acceptConnection"],
        json!({"handle": "ann", "connectionCount": 1})
    );
    let events = app.outbox_events("connection.accepted").await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].payload,
        json!({"memberId": ben, "otherMemberId": ann})
    );
    assert_eq!(&events[0].aggregate_id, ben);

    // Crossed requests connect on the second one.
    app.ok(
        Some(cat),
        "mutation($to: ID!) { requestConnection(to: $to) { status } }",
        json!({"to": ben}),
    )
    .await;
    let data = app
        .ok(
            Some(ben),
            "mutation($to: ID!) { requestConnection(to: $to) { status } }",
            json!({"to": cat}),
        )
        .await;
    assert_eq!(data["requestConnection"]["status"], "CONNECTED");

    let query = "query($from: ID!, $to: ID!) { connectionDegree(from: $from, to: $to) { degree path { handle } } }";
    let data = app.ok(None, query, json!({"from": ann, "to": cat})).await;
    assert_eq!(
        data["connectionDegree"],
        json!({"degree": "SECOND", "path": [{"handle": "ann"}, {"handle": "ben"}, {"handle": "cat"}]})
    );
    let data = app.ok(None, query, json!({"from": ann, "to": dan})).await;
    assert_eq!(
        data["connectionDegree"],
        json!({"degree": "OUT_OF_NETWORK", "path": []})
    );
    let data = app
        .ok(
            None,
            "query($a: ID!, $c: ID!) { member(id: $a) { mutualConnections(with: $c) { handle } } }",
            json!({"a": ann, "c": cat}),
        )
        .await;
    assert_eq!(
        data["member"]["mutualConnections"],
        json!([{"handle": "ben"}])
    );

    // Remove, then the degree drops out of network.
    let data = app
        .ok(
            Some(ann),
            "mutation($w: ID!) { removeConnection(with: $w) }",
            json!({"w": ben}),
        )
        .await;
    assert_eq!(data["removeConnection"], true);
    let data = app.ok(None, query, json!({"from": ann, "to": cat})).await;
    assert_eq!(data["connectionDegree"]["degree"], "OUT_OF_NETWORK");
}

#[tokio::test]
async fn people_you_may_know_ranks_by_mutuals() {
    let app = App::new().await;
    let ids = app
        .sign_up(&["me", "f1", "f2", "two", "one", "asked"])
        .await;
    let (me, f1, f2, two, one, asked) = (&ids[0], &ids[1], &ids[2], &ids[3], &ids[4], &ids[5]);
    app.connect(me, f1).await;
    app.connect(me, f2).await;
    app.connect(two, f1).await;
    app.connect(two, f2).await;
    app.connect(one, f1).await;
    app.connect(asked, f1).await;
    app.ok(
        Some(me),
        "mutation($to: ID!) { requestConnection(to: $to) { status } }",
        json!({"to": asked}),
    )
    .await;
    let data = app
        .ok(
            Some(me),
            "{ peopleYouMayKnow { member { handle } mutualCount } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data["peopleYouMayKnow"],
        json!([
            {"member": {"handle": "two"}, "mutualCount": 2},
            {"member": {"handle": "one"}, "mutualCount": 1},
        ])
    );
    let data = app
        .ok(
            Some(me),
            "{ peopleYouMayKnow(first: 1) { member { handle } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        data["peopleYouMayKnow"],
        json!([{"member": {"handle": "two"}}])
    );
}

#[tokio::test]
async fn connections_page_with_cursors() {
    let app = App::new().await;
    let handles: Vec<String> = (0..7).map(|i| format!("m{i}")).collect();
    let mut all: Vec<&str> = vec!["hub"];
    all.extend(handles.iter().map(String::as_str));
    let ids = app.sign_up(&all).await;
    let hub = &ids[0];
    for id in &ids[1..] {
        app.connect(id, hub).await;
    }
    let query = "query($id: ID!, $after: String) { member(id: $id) { connections(first: 3, after: $after) {
        totalCount edges { cursor node { id } } pageInfo { hasNextPage hasPreviousPage endCursor } } } }";
    let mut after = Value::Null;
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let data = app
            .ok(None, query, json!({"id": hub, "after": after}))
            .await;
        let page = &data["member"]["connections"];
        assert_eq!(page["totalCount"], 7);
        assert_eq!(page["pageInfo"]["hasPreviousPage"], pages > 0);
        for edge in page["edges"].as_array().unwrap() {
            seen.push(edge["node"]["id"].as_str().unwrap().to_owned());
        }
        pages += 1;
        if page["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(pages, 3);
    let mut expected: Vec<String> = ids[1..].to_vec();
    expected.sort();
    assert_eq!(seen, expected);
    let code = app
        .error_code(None, query, json!({"id": hub, "after": "not-a-cursor"}))
        .await;
    assert_eq!(code, "BAD_USER_INPUT");
}

#[tokio::test]
async fn errors_carry_codes() {
    let app = App::new().await;
    let ids = app.sign_up(&["ann", "ben"]).await;
    let (ann, ben) = (&ids[0], &ids[1]);
    let request = "mutation($to: ID!) { requestConnection(to: $to) { status } }";
    assert_eq!(
        app.error_code(None, request, json!({"to": ben})).await,
        "UNAUTHENTICATED"
    );
    assert_eq!(
        app.error_code(Some(ann), request, json!({"to": ann})).await,
        "BAD_USER_INPUT"
    );
    assert_eq!(
        app.error_code(Some(ann), request, json!({"to": "no-such-member"}))
            .await,
        "NOT_FOUND"
    );
    assert_eq!(
        app.error_code(
            Some(ann),
            "mutation($f: ID!) { acceptConnection(from: $f) { id } }",
            json!({"f": ben})
        )
        .await,
        "NOT_FOUND",
        "no pending request"
    );
    assert_eq!(
        app.error_code(None, "{ peopleYouMayKnow { mutualCount } }", json!({}))
            .await,
        "UNAUTHENTICATED"
    );
    assert_eq!(
        app.error_code(
            None,
            "query($a: ID!) { connectionDegree(from: $a, to: \"nobody\") { degree } }",
            json!({"a": ann})
        )
        .await,
        "NOT_FOUND"
    );
    assert_eq!(
        app.error_code(
            Some(ann),
            "mutation { updateProfile(displayName: \"  \") { id } }",
            json!({})
        )
        .await,
        "BAD_USER_INPUT"
    );
    // Text no store can keep is refused as bad input, in every text field.
    for field in ["displayName", "headline", "location"] {
        assert_eq!(
            app.error_code(
                Some(ann),
                &format!("mutation($v: String!) {{ updateProfile({field}: $v) {{ id }} }}"),
                json!({"v": "Ann\u{0}Evil"})
            )
            .await,
            "BAD_USER_INPUT",
            "{field}"
        );
    }
    // A forged token is rejected, not treated as anonymous.
    let forged = JwtSigner::generate("test-key").sign(&Claims::new(
        ann.as_str(),
        "ann",
        Duration::from_secs(600),
    ));
    let response = app
        .schema
        .execute(Request::new("{ pendingConnectionRequests { id } }").data(BearerToken(forged)))
        .await;
    let error = serde_json::to_value(&response.errors[0]).unwrap();
    assert_eq!(error["extensions"]["code"], "UNAUTHENTICATED");
}

#[tokio::test]
async fn profile_views_emit_once_per_viewer_per_hour() {
    let app = App::new().await;
    let ids = app.sign_up(&["ann", "ben"]).await;
    let (ann, ben) = (&ids[0], &ids[1]);
    let query = "query($id: ID!) { member(id: $id) { handle } }";
    // Anonymous reads and reading yourself emit nothing.
    app.ok(None, query, json!({"id": ann})).await;
    app.ok(Some(ann), query, json!({"id": ann})).await;
    for _ in 0..3 {
        app.ok(Some(ben), query, json!({"id": ann})).await;
    }
    // Entity resolution (what the gateway calls) counts as a read too, within the same window.
    app.ok(
        Some(ben),
        "query($r: [_Any!]!) { _entities(representations: $r) { ... on Member { handle } } }",
        json!({"r": [{"__typename": "Member", "id": ann}]}),
    )
    .await;
    // Emission runs in the background; wait for it.
    let mut events = Vec::new();
    for _ in 0..100 {
        events = app.outbox_events("profile.viewed").await;
        if !events.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let events_after = app.outbox_events("profile.viewed").await;
    assert_eq!(events_after.len(), 1, "{events_after:?}");
    assert_eq!(events[0].payload, json!({"memberId": ann, "viewerId": ben}));

    // The durable limit holds without the in-memory one (another replica, or a restart).
    let fresh = ViewTracker::new(app.pool.clone(), None);
    assert!(!fresh.record(ann, ben).await.unwrap());
    assert!(fresh.record(ben, ann).await.unwrap());
}

#[tokio::test]
async fn references_to_members_profile_lacks_resolve_to_the_placeholder() {
    let app = App::new().await;
    let ids = app.sign_up(&["ann"]).await;
    let ann = &ids[0];
    let ghost = uuid::Uuid::now_v7().to_string();
    // One batch, as the gateway sends it: the known member and an unknown one, in order.
    let data = app
        .ok(
            None,
            "query($r: [_Any!]!) { _entities(representations: $r) { ... on Member {
                id handle displayName deleted joinedAt connectionCount
                connections { totalCount } mutualConnections(with: $r0) { id } } } }"
                .replace("$r0", &format!("\"{ann}\""))
                .as_str(),
            json!({"r": [
                {"__typename": "Member", "id": ann},
                {"__typename": "Member", "id": ghost},
            ]}),
        )
        .await;
    let entities = data["_entities"].as_array().unwrap();
    assert_eq!(entities[0]["handle"], "ann");
    assert_eq!(entities[0]["deleted"], false);
    assert_eq!(
        entities[1],
        json!({
            "id": ghost,
            "handle": "[deleted]",
            "displayName": "Deleted member",
            "deleted": true,
            "joinedAt": "1970-01-01T00:00:00+00:00",
            "connectionCount": 0,
            "connections": { "totalCount": 0 },
            "mutualConnections": [],
        })
    );
    // Asked for directly, an unknown member is still null.
    let direct = app
        .ok(
            None,
            "query($id: ID!) { member(id: $id) { id } }",
            json!({"id": ghost}),
        )
        .await;
    assert!(direct["member"].is_null(), "{direct}");
}

#[test]
fn sdl_declares_the_member_entity_and_operations() {
    let sdl = switchyard_profile::sdl();
    assert!(sdl.contains("@link("), "{sdl}");
    assert!(sdl.contains("type Member @key(fields: \"id\")"), "{sdl}");
    for needle in [
        "connectionDegree(from: ID!, to: ID!): ConnectionDegreeResult!",
        "peopleYouMayKnow(first: Int = 10): [Suggestion!]!",
        "requestConnection(to: ID!): ConnectionRequestResult!",
        "mutualConnections(with: ID!, first: Int = 20): [Member!]!",
        "OUT_OF_NETWORK",
        "type PageInfo @shareable",
    ] {
        assert!(sdl.contains(needle), "missing {needle} in {sdl}");
    }
}
