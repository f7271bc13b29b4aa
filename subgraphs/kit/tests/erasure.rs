//! The erasure saga on a real SQLite file: started in the consumer's transaction, finished
//! (service step, files scrubbed, `erasure.completed` in the outbox) by `finish_pending`, and
//! finished by a fresh saga's task when an earlier one never did.

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap is the test failing, at that line"
)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::{AnyConnection, AnyPool};
use switchyard_subgraph_kit::erasure::COMPLETED_EVENT;
use switchyard_subgraph_kit::events::{outbox, BoxError};
use switchyard_subgraph_kit::{db, process_event, Erasure, Event, EventHandler, Processed};
use tokio_util::sync::CancellationToken;

const SECRET: &str = "plumbago-heliotrope-secret";

/// A service's handler: the member's notes go on `account.deleted`.
struct DeleteNotes;

impl EventHandler for DeleteNotes {
    async fn handle(&self, conn: &mut AnyConnection, event: &Event) -> Result<(), BoxError> {
        if event.event_type == "account.deleted" {
            sqlx::query("DELETE FROM notes WHERE member_id = $1")
                .bind(event.aggregate_id.clone())
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }
}

fn deleted(id: &str) -> Event {
    Event::new(
        "account.deleted",
        id,
        json!({ "accountId": id, "memberId": id }),
    )
    .unwrap()
}

async fn note(pool: &AnyPool, member: &str) {
    sqlx::query("INSERT INTO notes (member_id, body) VALUES ($1, $2)")
        .bind(member.to_owned())
        .bind(format!("{SECRET} of {member}"))
        .execute(pool)
        .await
        .unwrap();
}

fn files_hold(dir: &std::path::Path, needle: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map_while(Result::ok)
        .filter(|e| {
            std::fs::read(e.path())
                .map(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
                .unwrap_or(false)
        })
        .map(|e| e.path().display().to_string())
        .collect()
}

#[tokio::test]
async fn an_erasure_starts_with_the_deletion_and_finishes_with_clean_files() {
    let dir = tempfile::tempdir().unwrap();
    let url = db::sqlite_url(&dir.path().join("service.db"));
    let pool = db::connect(&url, 4).await.unwrap();
    sqlx::query("CREATE TABLE notes (member_id TEXT NOT NULL, body TEXT NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    let (ada, bob) = ("ada-id", "bob-id");
    note(&pool, ada).await;
    note(&pool, bob).await;
    assert!(
        !files_hold(dir.path(), SECRET).is_empty(),
        "the scan sees the notes"
    );

    let steps = Arc::new(AtomicUsize::new(0));
    let counted = steps.clone();
    let erasure = Erasure::open("notes", pool.clone(), None)
        .await
        .unwrap()
        .finishing(move |_member| {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        });
    let event = deleted(ada);
    let handler = erasure.track(DeleteNotes);
    assert_eq!(
        process_event(&pool, "notes", &event, &handler)
            .await
            .unwrap(),
        Processed::Handled
    );
    let started = erasure
        .record(ada)
        .await
        .unwrap()
        .expect("a started record");
    assert!(started.completed_at.is_none());
    // Ada's note is gone from the table but its page image is still in the WAL.
    assert!(
        !files_hold(dir.path(), &format!("{SECRET} of {ada}")).is_empty(),
        "before finishing, the old page is still on disk"
    );

    assert_eq!(erasure.finish_pending().await.unwrap(), 1);
    assert_eq!(steps.load(Ordering::SeqCst), 1, "the service's step ran");
    let done = erasure.record(ada).await.unwrap().unwrap();
    assert!(done.completed_at.is_some());
    assert_eq!(done.started_at, started.started_at);
    let events = outbox::unpublished(&pool, 10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type, COMPLETED_EVENT);
    assert_eq!(events[0].payload["service"], "notes");
    assert_eq!(events[0].payload["memberId"], ada);
    let ada_secret = format!("{SECRET} of {ada}");
    assert_eq!(files_hold(dir.path(), &ada_secret), Vec::<String>::new());
    assert!(
        !files_hold(dir.path(), &format!("{SECRET} of {bob}")).is_empty(),
        "Bob's note stays"
    );

    // A redelivery changes nothing; nothing is left to finish.
    assert_eq!(
        process_event(&pool, "notes", &event, &handler)
            .await
            .unwrap(),
        Processed::Duplicate
    );
    assert_eq!(erasure.finish_pending().await.unwrap(), 0);
    assert_eq!(steps.load(Ordering::SeqCst), 1);
    pool.close().await;
}

#[tokio::test]
async fn a_started_erasure_is_finished_by_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let url = db::sqlite_url(&dir.path().join("service.db"));
    let pool = db::connect(&url, 4).await.unwrap();
    sqlx::query("CREATE TABLE notes (member_id TEXT NOT NULL, body TEXT NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    note(&pool, "cy-id").await;
    {
        // The run that started it ends before finishing (its process died).
        let erasure = Erasure::open("notes", pool.clone(), None).await.unwrap();
        process_event(
            &pool,
            "notes",
            &deleted("cy-id"),
            &erasure.track(DeleteNotes),
        )
        .await
        .unwrap();
    }
    let erasure = Erasure::open("notes", pool.clone(), None).await.unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(erasure.clone().run(stop.clone()));
    let start = Instant::now();
    while erasure
        .record("cy-id")
        .await
        .unwrap()
        .and_then(|r| r.completed_at)
        .is_none()
    {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "not finished at start"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.cancel();
    task.await.unwrap();
    assert!(files_hold(dir.path(), SECRET).is_empty());
    pool.close().await;
}
