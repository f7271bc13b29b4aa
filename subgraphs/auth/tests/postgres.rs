//! The same session life cycle and rotation on PostgreSQL (a throwaway database per test).
//! Without a server the test skips with a notice; under `CI=true` it fails.

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap is the test failing, at that line"
)]

mod common;

use switchyard_auth::Service;
use switchyard_subgraph_kit::EventBus;

#[tokio::test]
async fn session_life_cycle_on_postgres() {
    let Some(db) = common::postgres().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    config.database_url = Some(db.url.clone());
    let service = Service::open(config.clone(), EventBus::in_process())
        .await
        .unwrap();
    common::core_flow(&service).await;
    let events = switchyard_subgraph_kit::events::outbox::unpublished(service.pool(), 100)
        .await
        .unwrap();
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    // The deleted account's announcement left the outbox with it (erasure).
    assert_eq!(types, ["account.deleted", "account.created"]);
    service.pool().close().await;
    drop(service);

    // Key rotation on PostgreSQL as well.
    let report = switchyard_auth::rotate_keys(&config, true, 1)
        .await
        .unwrap();
    assert_eq!((report.rows, report.emails, report.failed), (1, 1, 0));
    let service = Service::open(config, EventBus::in_process()).await.unwrap();
    let login = common::log_in(&service, "ada@example.com", "another password").await;
    assert!(login.get("errors").is_none(), "{login}");
    service.pool().close().await;
    db.drop_now().await;
}
