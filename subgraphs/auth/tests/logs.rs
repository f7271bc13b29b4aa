//! What failed and throttled log-ins write to the logs: an account and a client fingerprint,
//! never the email, the address or the password.
//!
//! Its own test binary, with one test: `tracing::subscriber::set_default` only captures events
//! whose callsites are enabled for it, and tracing caches a callsite's interest when it first
//! fires. A test on another thread of the same binary firing "log-in failed" while this test
//! installs its subscriber can cache "never" past this subscriber's registration (a race in
//! the callsite registry), so the event went missing from the capture (a CI failure: only the
//! "log-in throttled" line captured). Alone in its process nothing else registers callsites.

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap is the test failing, at that line"
)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn failed_and_throttled_log_ins_are_logged_without_email_or_address() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let (_dir, service) = service_with(|c| c.login_failures_per_account = 1).await;
    for _ in 0..3 {
        log_in_from(
            &service,
            "192.0.2.44",
            "carol@example.com",
            "wrong password",
        )
        .await;
    }
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("log-in failed"), "{logs}");
    assert!(logs.contains("log-in throttled"), "{logs}");
    assert!(logs.contains("account="), "{logs}");
    assert!(logs.contains("client="), "{logs}");
    for secret in ["carol", "192.0.2.44", "wrong password"] {
        assert!(!logs.contains(secret), "{secret} in {logs}");
    }
}
