//! HTTP requests to subgraphs: a keep-alive connection pool, a per-request timeout, and the
//! collapsing of identical in-flight queries into one request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt, Shared};
use http::header::{HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE};
use http::{Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// What a subgraph request yields: the raw response body, or why there is none.
pub(crate) type FetchResult = Result<Bytes, Arc<str>>;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Identity of a subgraph request for collapsing: same subgraph, body and forwarded headers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct InflightKey {
    service: usize,
    body: Bytes,
    headers: Vec<(HeaderName, HeaderValue)>,
}

type InflightMap = HashMap<InflightKey, Shared<BoxFuture<'static, FetchResult>>>;

/// Sends requests to subgraphs over pooled HTTP/1.1 connections.
pub(crate) struct SubgraphClient {
    http: HttpClient,
    timeout: Duration,
    inflight: Arc<Mutex<InflightMap>>,
}

impl SubgraphClient {
    /// A client whose requests give up after `timeout`.
    pub(crate) fn new(timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_keepalive(Some(Duration::from_secs(60)));
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        Self {
            http,
            timeout,
            inflight: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// POSTs `body` to `uri`; when `collapse` is set, shares the response with every identical
    /// request already in flight instead of sending another.
    pub(crate) async fn fetch(
        &self,
        service: usize,
        uri: &Uri,
        body: Bytes,
        headers: &[(HeaderName, HeaderValue)],
        collapse: bool,
    ) -> FetchResult {
        if !collapse {
            return send(
                self.http.clone(),
                uri.clone(),
                body,
                headers.to_vec(),
                self.timeout,
            )
            .await;
        }
        let key = InflightKey {
            service,
            body,
            headers: headers.to_vec(),
        };
        let shared = {
            let mut map = self.inflight.lock().expect("inflight map poisoned");
            if let Some(existing) = map.get(&key) {
                existing.clone()
            } else {
                let inflight = Arc::clone(&self.inflight);
                let request = send(
                    self.http.clone(),
                    uri.clone(),
                    key.body.clone(),
                    key.headers.clone(),
                    self.timeout,
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
                map.insert(key, fut.clone());
                fut
            }
        };
        shared.await
    }
}

async fn send(
    http: HttpClient,
    uri: Uri,
    body: Bytes,
    headers: Vec<(HeaderName, HeaderValue)>,
    timeout: Duration,
) -> FetchResult {
    let mut builder = Request::post(uri)
        .header(CONTENT_TYPE, "application/json")
        .header(ACCEPT, "application/json");
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    let request = builder
        .body(Full::new(body))
        .map_err(|err| Arc::<str>::from(err.to_string()))?;
    let exchange = async {
        let response = http
            .request(request)
            .await
            .map_err(|err| Arc::<str>::from(describe_client_error(&err)))?;
        let status = response.status();
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
        Ok(bytes)
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(Arc::from(format!(
            "request timed out after {} ms",
            timeout.as_millis()
        ))),
    }
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
    message
}

fn looks_like_json_object(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{')
}
