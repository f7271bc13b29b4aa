//! HTTP requests to subgraphs: keep-alive connection pools (HTTP/1.1 or HTTP/2, plain or TLS;
//! see `transport.rs`), per-subgraph timeouts, circuit breakers and in-flight caps, and the
//! collapsing of identical in-flight queries into one request.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt, Shared};
use http::header::{HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE};
use http::{Request, Uri};
use http_body_util::{BodyExt, Full};

pub(crate) use super::breaker::CircuitState;
use super::breaker::{describe_open, Admission, CircuitBreaker};
use super::transport::{self, HttpClient};
use crate::config::SubgraphPolicy;
use crate::headers::ResponseHeaderRule;

/// What a subgraph request yields: the raw response body, or why there is none.
/// A subgraph's parsed answer. Requests collapsed onto one fetch share it, so a response is
/// parsed once however many requests wait for it.
#[derive(Debug)]
pub(crate) struct Fetched {
    /// The parsed body.
    pub(crate) response: super::json::Response,
    /// The body's size in bytes.
    pub(crate) bytes: usize,
    /// The response headers the subgraph's header rules pass back to the client.
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    /// How many requests waited for this response when it arrived (more than one: collapsed
    /// requests share it).
    pub(crate) waiters: usize,
    /// What requests derived from data whose last merged response is this one (`memo.rs`).
    pub(crate) derived: super::memo::Derived,
}

pub(crate) type FetchResult = Result<Arc<Fetched>, FetchError>;

/// Why a subgraph request produced no body.
#[derive(Debug, Clone)]
pub(crate) enum FetchError {
    /// The request went out and failed (connect error, timeout, bad status, unreadable body).
    Failed(Arc<str>),
    /// The subgraph's circuit is open: nothing was sent.
    CircuitOpen(Arc<str>),
    /// The subgraph already has its maximum of requests in flight: nothing was sent.
    Overloaded(Arc<str>),
}

impl FetchError {
    /// The human-readable reason.
    pub(crate) fn message(&self) -> &str {
        match self {
            FetchError::Failed(m) | FetchError::CircuitOpen(m) | FetchError::Overloaded(m) => m,
        }
    }

    /// The `extensions.code` clients see.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            FetchError::CircuitOpen(_) => crate::error::SUBGRAPH_CIRCUIT_OPEN,
            FetchError::Failed(_) | FetchError::Overloaded(_) => {
                crate::error::SUBGRAPH_REQUEST_FAILED
            }
        }
    }
}

/// One subgraph's resilience state: its timeout, breaker and in-flight count.
#[derive(Debug)]
struct Service {
    policy: SubgraphPolicy,
    /// The pooled client (shared by subgraphs with equal transport settings).
    http: HttpClient,
    /// Response headers passed back to the client.
    response_rules: Vec<ResponseHeaderRule>,
    breaker: CircuitBreaker,
    inflight: AtomicUsize,
    /// Counts requests that joined one already in flight (metrics).
    collapsed: switchyard_telemetry::prometheus::IntCounter,
}

/// A taken in-flight slot; dropping it frees the slot (also when the request is cancelled).
struct Slot(Arc<Service>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Service {
    /// Asks the breaker, then takes an in-flight slot; either may refuse without any I/O.
    fn admit(self: &Arc<Self>) -> Result<Slot, FetchError> {
        if self.breaker.admit(Instant::now()) == Admission::Rejected {
            return Err(FetchError::CircuitOpen(Arc::from(describe_open(
                &self.policy.breaker,
            ))));
        }
        let before = self.inflight.fetch_add(1, Ordering::AcqRel);
        let slot = Slot(Arc::clone(self));
        if before >= self.policy.max_inflight {
            return Err(FetchError::Overloaded(Arc::from(format!(
                "too many requests in flight (limit {})",
                self.policy.max_inflight
            ))));
        }
        Ok(slot)
    }
}

/// The client's address as forwarded to subgraphs. It is left out of the collapsing key: it does
/// not change a query's answer, and keeping it would stop collapsing across clients.
const CLIENT_ADDRESS: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The W3C trace context header sent to subgraphs when tracing is on.
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Identity of a subgraph request for collapsing: same subgraph, body and forwarded headers.
/// The map hashes a body of kilobytes once per fetch, into `hash` (keyed SipHash, so clients
/// cannot aim requests at one bucket), not once for the lookup, again for the insert and again
/// for the removal.
#[derive(Debug, Clone, PartialEq, Eq)]
struct InflightKey {
    hash: u64,
    service: usize,
    body: Bytes,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl std::hash::Hash for InflightKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// A request in flight, and how many requests wait for it (each counts toward the breaker).
type InflightMap = HashMap<
    InflightKey,
    (Shared<BoxFuture<'static, FetchResult>>, Arc<AtomicUsize>),
    super::PassThroughHash,
>;

/// Sends requests to subgraphs over pooled connections.
pub(crate) struct SubgraphClient {
    services: Vec<Arc<Service>>,
    inflight: Arc<Mutex<InflightMap>>,
    /// The keyed hasher of [`InflightKey::hash`].
    keys: RandomState,
}

impl SubgraphClient {
    /// A client for `(name, policy, http client, response header rules)` subgraphs, indexed
    /// as given, counting collapsed fetches in `collapsed` (same indexes).
    pub(crate) fn new(
        policies: Vec<(String, SubgraphPolicy, HttpClient, Vec<ResponseHeaderRule>)>,
        collapsed: &[switchyard_telemetry::prometheus::IntCounter],
    ) -> Self {
        let services = policies
            .into_iter()
            .zip(collapsed)
            .map(|((name, policy, http, response_rules), collapsed)| {
                Arc::new(Service {
                    policy,
                    http,
                    response_rules,
                    breaker: CircuitBreaker::new(&name, policy.breaker),
                    inflight: AtomicUsize::new(0),
                    collapsed: collapsed.clone(),
                })
            })
            .collect();
        Self {
            services,
            inflight: Arc::new(Mutex::new(HashMap::default())),
            keys: RandomState::new(),
        }
    }

    /// Where subgraph `service`'s circuit breaker is now.
    pub(crate) fn circuit(&self, service: usize) -> CircuitState {
        self.services[service].breaker.state(Instant::now())
    }

    /// The response header rules of subgraph `service`.
    pub(crate) fn response_rules(&self, service: usize) -> &[ResponseHeaderRule] {
        &self.services[service].response_rules
    }

    /// The pooled client of subgraph `service`.
    pub(crate) fn http(&self, service: usize) -> &HttpClient {
        &self.services[service].http
    }

    /// Requests to subgraph `service` in flight now.
    pub(crate) fn inflight(&self, service: usize) -> usize {
        self.services[service].inflight.load(Ordering::Relaxed)
    }

    /// POSTs `body` to `uri`; when `collapse` is set, shares the response with every identical
    /// request already in flight instead of sending another. `traceparent` goes along with a
    /// request that is sent, and is not part of what makes two requests identical. The flag
    /// says whether this request joined one already in flight.
    pub(crate) async fn fetch(
        &self,
        service: usize,
        uri: &Uri,
        body: Bytes,
        headers: &[(HeaderName, HeaderValue)],
        collapse: bool,
        traceparent: Option<HeaderValue>,
    ) -> (FetchResult, bool) {
        let service_state = &self.services[service];
        let outgoing = || {
            let mut outgoing = headers.to_vec();
            if let Some(value) = &traceparent {
                outgoing.push((TRACEPARENT, value.clone()));
            }
            outgoing
        };
        if !collapse {
            let slot = match service_state.admit() {
                Ok(slot) => slot,
                Err(err) => return (Err(err), false),
            };
            let waiters = Arc::new(AtomicUsize::new(1));
            let result = send(uri.clone(), body, outgoing(), slot, waiters).await;
            return (result, false);
        }
        let headers: Vec<_> = headers
            .iter()
            .filter(|(name, _)| name != CLIENT_ADDRESS)
            .cloned()
            .collect();
        let key = InflightKey {
            hash: self.keys.hash_one((service, &body, &headers)),
            service,
            body,
            headers,
        };
        let (shared, joined) = {
            let mut map = self.inflight.lock().expect("inflight map poisoned");
            if let Some((existing, waiters)) = map.get(&key) {
                waiters.fetch_add(1, Ordering::AcqRel);
                service_state.collapsed.inc();
                (existing.clone(), true)
            } else {
                // Joining a request already in flight costs the subgraph nothing, so only a
                // new request asks the breaker and takes a slot.
                let slot = match service_state.admit() {
                    Ok(slot) => slot,
                    Err(err) => return (Err(err), false),
                };
                let waiters = Arc::new(AtomicUsize::new(1));
                let inflight = Arc::clone(&self.inflight);
                let request = send(
                    uri.clone(),
                    key.body.clone(),
                    outgoing(),
                    slot,
                    Arc::clone(&waiters),
                );
                let map_key = key.clone();
                // The entry removes itself when the request completes, so only requests that
                // overlap in time are collapsed; later ones see fresh data.
                let fut = async move {
                    let result = request.await;
                    inflight
                        .lock()
                        .expect("inflight map poisoned")
                        .remove(&map_key);
                    result
                }
                .boxed()
                .shared();
                map.insert(key, (fut.clone(), waiters));
                (fut, false)
            }
        };
        (shared.await, joined)
    }
}

/// Sends one request holding `slot`, and tells the subgraph's breaker how it went — once for
/// every request that waited for it (`waiters`): a frozen subgraph that fails forty collapsed
/// requests has failed forty times, not once, so the circuit opens within one timeout.
async fn send(
    uri: Uri,
    body: Bytes,
    headers: Vec<(HeaderName, HeaderValue)>,
    slot: Slot,
    waiters: Arc<AtomicUsize>,
) -> FetchResult {
    let service = &slot.0;
    let policy = service.policy;
    let http = &service.http;
    let started = tokio::time::Instant::now();
    let mut builder = Request::post(uri)
        .header(CONTENT_TYPE, "application/json")
        .header(ACCEPT, "application/json");
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    let request = builder
        .body(Full::new(body))
        .map_err(|err| FetchError::Failed(Arc::from(err.to_string())))?;
    let exchange = async {
        // The response head must arrive within the first-byte timeout: a stopped or wedged
        // subgraph still accepts connections (the kernel does), so only silence tells.
        let first_byte = policy.first_byte_timeout.min(policy.timeout);
        let response = match tokio::time::timeout(first_byte, http.request(request)).await {
            Ok(response) => {
                response.map_err(|err| Arc::<str>::from(describe_client_error(&err)))?
            }
            Err(_) => {
                return Err(Arc::<str>::from(format!(
                    "timed out after {} ms waiting for the response to start (first-byte timeout)",
                    first_byte.as_millis()
                )))
            }
        };
        let status = response.status();
        let captured = crate::headers::capture(&service.response_rules, response.headers());
        // The subgraph is unhealthy on a 5xx even when it sends a GraphQL body with it.
        let healthy = !status.is_server_error();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|err| Arc::<str>::from(format!("reading the response body: {err}")))?
            .to_bytes();
        // A GraphQL-over-HTTP subgraph may answer 4xx with a well-formed GraphQL body; keep it.
        if !status.is_success() && !looks_like_json_object(&bytes) {
            return Err(Arc::<str>::from(format!("HTTP status {status}")));
        }
        Ok((bytes, healthy, captured))
    };
    let (result, healthy) = match tokio::time::timeout_at(started + policy.timeout, exchange).await
    {
        Ok(Ok((bytes, healthy, captured))) => (Ok((bytes, captured)), healthy),
        Ok(Err(reason)) => (Err(FetchError::Failed(reason)), false),
        Err(_) => (
            Err(FetchError::Failed(Arc::from(format!(
                "request timed out after {} ms",
                policy.timeout.as_millis()
            )))),
            false,
        ),
    };
    let outcomes = waiters.load(Ordering::Acquire).max(1);
    service
        .breaker
        .record_many(healthy, outcomes, Instant::now());
    let (bytes, headers) = result?;
    let size = bytes.len();
    let response = super::json::parse_response_in(bytes).map_err(|err| {
        FetchError::Failed(Arc::from(format!("invalid JSON in the response: {err}")))
    })?;
    Ok(Arc::new(Fetched {
        response,
        bytes: size,
        headers,
        waiters: outcomes,
        derived: Default::default(),
    }))
}

fn describe_client_error(err: &hyper_util::client::legacy::Error) -> String {
    use std::error::Error;
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        message.push_str(": ");
        message.push_str(&inner.to_string());
        source = inner.source();
    }
    if let Some(hint) = transport::hint(&message) {
        message.push_str(" (");
        message.push_str(hint);
        message.push(')');
    }
    message
}

fn looks_like_json_object(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{')
}
