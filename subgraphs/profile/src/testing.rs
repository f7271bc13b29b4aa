//! Test support for the graph servers profile can use: the FalkorDB the tests share (started by
//! `scripts/ci-services.sh`), with the kit's rule for a missing server — skip with a visible
//! notice on a laptop, fail under CI. Not used by the service at run time.

use std::time::Duration;

use falkordb::FalkorClientBuilder;
use switchyard_subgraph_kit::testing::unavailable;

/// Prefix of the graphs tests create; graphs with it that are over an hour old are swept.
pub const TEST_GRAPH_PREFIX: &str = "profile_test_";

/// The FalkorDB tests use (`SWITCHYARD_TEST_FALKORDB_URL`, default `falkor://127.0.0.1:6380`,
/// where `scripts/ci-services.sh` starts it), or `None` (skip) when it does not answer outside
/// CI. Answering means `GRAPH.LIST` works, so a plain Redis on that port does not count.
pub async fn falkordb_url() -> Option<String> {
    let url = std::env::var("SWITCHYARD_TEST_FALKORDB_URL")
        .unwrap_or_else(|_| "falkor://127.0.0.1:6380".to_owned());
    let probe = async {
        let info = url.as_str().try_into()?;
        let client = FalkorClientBuilder::new_async()
            .with_connection_info(info)
            .build()
            .await?;
        let graphs = client.list_graphs().await?;
        sweep_abandoned(&client, &graphs).await;
        Ok::<_, falkordb::FalkorDBError>(())
    };
    // Boxed for the same reason as the store's queries (see `store/falkor.rs`).
    let probe: futures::future::BoxFuture<'_, _> = Box::pin(probe);
    match tokio::time::timeout(Duration::from_secs(5), probe).await {
        Ok(Ok(())) => Some(url),
        Ok(Err(e)) => unavailable("FalkorDB", e),
        Err(_) => unavailable("FalkorDB", "no answer within 5 s"),
    }
}

/// Deletes a test's graph (panics if FalkorDB does not answer).
pub async fn delete_graph(url: &str, graph: &str) {
    let info = url.try_into().expect("a FalkorDB URL");
    let deleted: futures::future::BoxFuture<'_, falkordb::FalkorResult<()>> = Box::pin(async {
        let client = FalkorClientBuilder::new_async()
            .with_connection_info(info)
            .build()
            .await?;
        client.select_graph(graph).delete().await
    });
    deleted.await.expect("deleting the test graph");
}

/// A fresh graph name for one test: the prefix and a UUID v7 (which says when it was made).
pub fn test_graph_name() -> String {
    format!("{TEST_GRAPH_PREFIX}{}", uuid::Uuid::now_v7().simple())
}

/// Deletes test graphs over an hour old: a panicking test never reaches its clean-up.
async fn sweep_abandoned(client: &falkordb::FalkorAsyncClient, graphs: &[String]) {
    let now = chrono::Utc::now().timestamp().max(0).unsigned_abs();
    for name in graphs {
        let Some(id) = name.strip_prefix(TEST_GRAPH_PREFIX) else {
            continue;
        };
        let made = uuid::Uuid::parse_str(id)
            .ok()
            .and_then(|id| id.get_timestamp())
            .map(|ts| ts.to_unix().0);
        if made.is_some_and(|secs| now.saturating_sub(secs) > 3600) {
            // Best effort: a concurrent run may be deleting it too.
            let _ = client.select_graph(name).delete().await;
        }
    }
}
