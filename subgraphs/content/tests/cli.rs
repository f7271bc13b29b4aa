//! The binary: `--print-schema` and `reindex`.

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap is the test failing, at that line"
)]

mod common;

use std::process::Command;

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_switchyard-content");

#[test]
fn prints_the_federation_schema() {
    let out = Command::new(BIN).arg("--print-schema").output().unwrap();
    assert!(out.status.success());
    let sdl = String::from_utf8(out.stdout).unwrap();
    assert_eq!(sdl, switchyard_content::sdl());
    for needle in [
        "type Post @key(fields: \"id\")",
        "type Member @key(fields: \"id\")",
        "searchPosts(query: String!, first: Int = 10, after: String): PostSearchConnection!",
        "createPost(body: String!, visibility: Visibility! = PUBLIC): Post!",
        "specs.apollo.dev/federation/v2",
    ] {
        assert!(sdl.contains(needle), "{needle} missing from\n{sdl}");
    }
}

#[tokio::test]
async fn reindex_rebuilds_from_the_database() {
    let env = Env::new(Backend::Sqlite).await.unwrap();
    let ada = env.token(&member());
    let mut written = Vec::new();
    {
        let service = env.open().await;
        for body in ["alpha post", "beta post", "gamma post"] {
            written.push(create_post(&service, &ada, body, "PUBLIC").await);
        }
        service.indexer().catch_up().await.unwrap();
    }
    written.sort();
    // Corrupt the index's view: wipe it, then rebuild with the command.
    std::fs::remove_dir_all(env.config().search_dir()).unwrap();
    let out = Command::new(BIN)
        .arg("reindex")
        .env("CONTENT_DATA_DIR", env.config().data_dir)
        .env_remove("DATABASE_URL")
        .env_remove("CONTENT_DATABASE_URL")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("reindexed 3 posts"), "{stdout}");
    let service = env.open().await;
    assert_eq!(service.index().all_ids().unwrap(), written);
    assert_eq!(search(&service, None, "post").await.len(), 3);
}
