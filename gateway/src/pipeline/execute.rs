//! Step 7: the prepared operation run — the headers each subgraph gets (header rules applied
//! once per request), identical in-flight client queries collapsed into one execution when
//! `collapse_client_requests` is on, the executor, the client response.
//!
//! Collapsing shares one *answer* between clients, so its key holds everything the answer can
//! depend on: the prepared operation (one per operation text and operation name in the plan
//! cache), the coerced variables, and every header every subgraph would get after the header
//! rules (`Authorization`, cookies, the client address) — two requests that would reach any
//! subgraph differently are never collapsed. Only queries collapse; mutations and
//! subscriptions never do.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt, Shared, WeakShared};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value};
use switchyard_telemetry::trace::TraceContext;
use tracing::Instrument;

use super::prepared::PreparedOperation;
use crate::execute::Forwarded;
use crate::Gateway;

/// What one execution produced, shared by the requests collapsed onto it.
#[derive(Debug)]
pub(crate) struct Executed {
    /// The serialized client response.
    pub(crate) body: Bytes,
    /// How many errors it lists (for the request metrics' outcome).
    pub(crate) errors: usize,
    /// Subgraph response headers the header rules pass back.
    pub(crate) headers: HeaderMap,
}

/// Everything a collapsed answer depends on.
#[derive(Clone, PartialEq, Eq, Hash)]
struct CollapseKey {
    /// The prepared operation's address. The execution holds the `Arc`, so the address cannot
    /// be reused by another operation while the entry exists.
    operation: usize,
    /// The coerced variables, serialized (in the operation's declaration order).
    variables: Vec<u8>,
    /// The headers of every header-rule group, as subgraphs would get them.
    headers: Vec<Vec<(HeaderName, HeaderValue)>>,
}

type SharedExecution = Shared<BoxFuture<'static, Arc<Executed>>>;
type WeakExecution = WeakShared<BoxFuture<'static, Arc<Executed>>>;

#[derive(Default)]
struct Inflight {
    next_id: u64,
    /// Weak, so an execution every client gave up on is dropped (and removes itself) instead of
    /// being kept alive by the map.
    running: HashMap<CollapseKey, (u64, WeakExecution)>,
}

/// Identical in-flight client queries, for `collapse_client_requests`.
#[derive(Default)]
pub(crate) struct ClientCollapser {
    inflight: Arc<Mutex<Inflight>>,
}

/// Removes its execution's entry when the execution ends or is dropped (only its own entry:
/// a later execution under the same key may have replaced it).
struct Leave {
    inflight: Arc<Mutex<Inflight>>,
    key: CollapseKey,
    id: u64,
}

impl Drop for Leave {
    fn drop(&mut self) {
        let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        if inflight
            .running
            .get(&self.key)
            .is_some_and(|(id, _)| *id == self.id)
        {
            inflight.running.remove(&self.key);
        }
    }
}

impl Gateway {
    /// Runs `prepared` with coerced `variables` for a client that sent `headers`: collapsed onto
    /// an identical query in flight when the setting is on, executed otherwise.
    pub(crate) async fn execute_prepared(
        &self,
        prepared: &Arc<PreparedOperation>,
        variables: Map<String, Value>,
        headers: &HeaderMap,
        trace: Option<TraceContext>,
    ) -> Arc<Executed> {
        let forwarded = self.forwarded_headers(headers);
        if !self.inner.config.collapse_client_requests || prepared.is_mutation() {
            return Arc::new(execute_once(self, prepared, &variables, &forwarded, trace).await);
        }
        let key = CollapseKey {
            operation: Arc::as_ptr(prepared) as usize,
            variables: serde_json::to_vec(&variables).expect("JSON values serialize"),
            headers: forwarded,
        };
        let (execution, joined) = {
            let collapser = &self.inner.collapser;
            let mut inflight = collapser.inflight.lock().unwrap_or_else(|e| e.into_inner());
            let running = inflight
                .running
                .get(&key)
                .and_then(|(_, weak)| weak.upgrade());
            match running {
                Some(running) => (running, true),
                None => {
                    inflight.next_id += 1;
                    let id = inflight.next_id;
                    let leave = Leave {
                        inflight: Arc::clone(&collapser.inflight),
                        key: key.clone(),
                        id,
                    };
                    let gateway = self.clone();
                    let prepared = Arc::clone(prepared);
                    let execution: SharedExecution = async move {
                        let forwarded = &leave.key.headers;
                        let executed =
                            execute_once(&gateway, &prepared, &variables, forwarded, trace).await;
                        drop(leave);
                        Arc::new(executed)
                    }
                    .boxed()
                    .shared();
                    let weak = execution
                        .downgrade()
                        .expect("a shared future not yet polled has its inner future");
                    inflight.running.insert(key, (id, weak));
                    (execution, false)
                }
            }
        };
        if joined {
            self.metrics().collapsed_requests.inc();
        }
        execution.await
    }
}

/// One execution of `prepared` through the executor.
async fn execute_once(
    gateway: &Gateway,
    prepared: &PreparedOperation,
    variables: &Map<String, Value>,
    forwarded: &[Vec<(HeaderName, HeaderValue)>],
    trace: Option<TraceContext>,
) -> Executed {
    let span = tracing::info_span!(
        "execute",
        operation = prepared.operation().name.as_ref().map(|n| n.as_str())
    );
    let (body, errors, headers) = gateway
        .inner
        .executor
        .execute_counting_errors(
            &prepared.bound,
            variables,
            Forwarded::PerGroup(forwarded),
            trace,
        )
        .instrument(span)
        .await;
    Executed {
        body,
        errors,
        headers,
    }
}
