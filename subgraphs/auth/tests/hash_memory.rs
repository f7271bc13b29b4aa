//! The password-hash cap bounds memory: a flood of concurrent log-ins at the production argon2
//! cost (19 MiB per hash) raises the process's peak memory by about the cap's worth of hashes,
//! not one hash per request. Alone in its test binary, so the peak is this test's own.

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap is the test failing, at that line"
)]
#![cfg(target_os = "linux")]

mod common;

use std::sync::Arc;

use common::*;
use switchyard_auth::{Config, Service};
use switchyard_subgraph_kit::EventBus;

const HASH_MIB: u64 = 19;
const FLOOD: usize = 16;

/// The process's peak resident memory so far, in MiB.
fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/self/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib / 1024
}

async fn flood(concurrent_hashes: usize) -> (u64, usize) {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        max_concurrent_hashes: concurrent_hashes,
        max_queued_hashes: 1000,
        ..Config::default()
    };
    let service = Arc::new(Service::open(config, EventBus::in_process()).await.unwrap());
    // The first unknown email makes the dummy hash; the flood only verifies.
    log_in(&service, "warm@example.com", "guess").await;
    let before = peak_rss_mib();
    let tasks: Vec<_> = (0..FLOOD)
        .map(|i| {
            let s = service.clone();
            tokio::spawn(async move { log_in(&s, &format!("flood{i}@example.com"), "guess").await })
        })
        .collect();
    for t in tasks {
        assert_eq!(code(&t.await.unwrap()), "INVALID_CREDENTIALS");
    }
    (peak_rss_mib() - before, service.peak_concurrent_hashes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hash_cap_bounds_memory_under_a_log_in_flood() {
    let (capped_growth, capped_peak) = flood(2).await;
    assert_eq!(capped_peak, 2);
    assert!(
        capped_growth <= 4 * HASH_MIB,
        "{FLOOD} log-ins with 2 hashes at once raised peak memory by {capped_growth} MiB"
    );
    // The same flood with room for all of them at once takes a hash's memory per request,
    // which is what the cap prevents (and shows this test can tell).
    let (uncapped_growth, uncapped_peak) = flood(FLOOD).await;
    eprintln!(
        "peak memory growth: {capped_growth} MiB capped at 2, {uncapped_growth} MiB with \
         {uncapped_peak} at once"
    );
    if uncapped_peak >= 8 {
        assert!(
            uncapped_growth >= 6 * HASH_MIB,
            "{uncapped_peak} hashes at once raised peak memory by only {uncapped_growth} MiB"
        );
    }
}
