//! The member directory on real databases (SQLite file, and PostgreSQL when present): kept from
//! `account.*` events through the idempotent consumer path, durable across reopening, shared by
//! replicas on one database, and enforced by `caller` and `require_existing`.

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap is the test failing, at that line"
)]

use std::time::Duration;

use async_graphql::{Context, EmptyMutation, EmptySubscription, Object, Request, Schema};
use serde_json::json;
use sqlx::{AnyConnection, AnyPool};
use switchyard_subgraph_kit::auth::{caller, jwks, BearerToken, Claims, JwtSigner, JwtVerifier};
use switchyard_subgraph_kit::events::BoxError;
use switchyard_subgraph_kit::members::REFRESH_INTERVAL;
use switchyard_subgraph_kit::testing::TestDatabase;
use switchyard_subgraph_kit::{
    db, process_event, Event, EventHandler, MemberDirectory, MemberState, Processed,
};

/// A service's own handler; the directory is kept beside whatever it does.
struct Nothing;

impl EventHandler for Nothing {
    async fn handle(&self, _: &mut AnyConnection, _: &Event) -> Result<(), BoxError> {
        Ok(())
    }
}

fn account_event(kind: &str, id: &str) -> Event {
    Event::new(
        kind,
        id,
        json!({ "accountId": id, "memberId": id, "handle": "someone" }),
    )
    .unwrap()
}

async fn deliver(pool: &AnyPool, directory: &MemberDirectory, event: &Event) -> Processed {
    switchyard_subgraph_kit::events::outbox::migrate(pool)
        .await
        .unwrap();
    process_event(pool, "test", event, &directory.track(Nothing))
        .await
        .unwrap()
}

struct Query;

#[Object]
impl Query {
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<String> {
        Ok(caller(ctx).await?.member_id)
    }
}

async fn scenario(url: &str) {
    let pool = db::connect(url, 4).await.unwrap();
    let directory = MemberDirectory::open(pool.clone()).await.unwrap();
    let (ada, bob, ghost) = (
        uuid::Uuid::now_v7().to_string(),
        uuid::Uuid::now_v7().to_string(),
        uuid::Uuid::now_v7().to_string(),
    );
    for id in [&ada, &bob] {
        deliver(&pool, &directory, &account_event("account.created", id)).await;
    }
    assert_eq!(directory.state(&ada).await.unwrap(), MemberState::Active);
    assert_eq!(directory.state(&ghost).await.unwrap(), MemberState::Unknown);
    directory.require_existing(&[&ada, &bob]).await.unwrap();
    let err = directory
        .require_existing(&[ada.as_str(), ghost.as_str(), ghost.as_str()])
        .await
        .unwrap_err();
    let err = serde_json::to_value(err.into_server_error(Default::default())).unwrap();
    assert_eq!(err["extensions"]["code"], "BAD_USER_INPUT", "{err}");
    assert_eq!(err["extensions"]["unknownMembers"], json!([ghost]), "{err}");
    assert!(err["message"].as_str().unwrap().contains(&ghost), "{err}");

    // A second replica on the same database, opened before the deletion.
    let replica = MemberDirectory::open(pool.clone()).await.unwrap();
    let signer = JwtSigner::generate("k");
    let verifier = JwtVerifier::from_jwks_json(&jwks(std::slice::from_ref(&signer))).unwrap();
    let schema_of = |directory: &MemberDirectory| {
        Schema::build(Query, EmptyMutation, EmptySubscription)
            .data(verifier.clone())
            .data(directory.clone())
            .finish()
    };
    let me = |schema: Schema<Query, EmptyMutation, EmptySubscription>, id: String| {
        let token = signer.sign(&Claims::new(id, "x", Duration::from_secs(600)));
        async move {
            let response = schema
                .execute(Request::new("{ me }").data(BearerToken(token)))
                .await;
            serde_json::to_value(&response).unwrap()
        }
    };
    let answered = me(schema_of(&replica), bob.clone()).await;
    assert_eq!(answered["data"]["me"], bob.as_str(), "{answered}");

    let deleted = account_event("account.deleted", &bob);
    assert_eq!(
        deliver(&pool, &directory, &deleted).await,
        Processed::Handled
    );
    assert_eq!(
        deliver(&pool, &directory, &deleted).await,
        Processed::Duplicate
    );
    // The replica that handled it refuses at once.
    let refused = me(schema_of(&directory), bob.clone()).await;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{refused}"
    );
    assert!(refused["data"].is_null(), "{refused}");
    // The other within a refresh interval.
    let start = std::time::Instant::now();
    loop {
        let response = me(schema_of(&replica), bob.clone()).await;
        if response["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED" {
            break;
        }
        assert!(
            start.elapsed() < REFRESH_INTERVAL * 3,
            "the replica still accepts a deleted account: {response}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A redelivered (new-id) creation does not bring the member back; others are unaffected.
    deliver(&pool, &directory, &account_event("account.created", &bob)).await;
    assert_eq!(directory.state(&bob).await.unwrap(), MemberState::Deleted);
    assert!(directory.require_existing(&[&bob]).await.is_err());
    let fine = me(schema_of(&directory), ada.clone()).await;
    assert_eq!(fine["data"]["me"], ada.as_str(), "{fine}");

    // Durable: a restarted service refuses the token from its first request.
    drop((directory, replica));
    pool.close().await;
    let pool = db::connect(url, 4).await.unwrap();
    let reopened = MemberDirectory::open(pool.clone()).await.unwrap();
    assert!(reopened.is_deleted(&bob).await);
    assert!(!reopened.is_deleted(&ada).await);
    let refused = me(schema_of(&reopened), bob).await;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{refused}"
    );
    pool.close().await;
}

#[tokio::test]
async fn directory_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    scenario(&db::sqlite_url(&dir.path().join("members.db"))).await;
}

#[tokio::test]
async fn directory_on_postgres() {
    let Some(database) = TestDatabase::create("switchyard_kit_members_").await else {
        return;
    };
    scenario(&database.url).await;
    database.drop_now().await;
}
