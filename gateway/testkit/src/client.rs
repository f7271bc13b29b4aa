//! A minimal HTTP client for tests: POST a JSON body, read a JSON answer.

use std::collections::BTreeMap;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::TestkitError;

/// An HTTP response: status and body (parsed as JSON when it is JSON, else a JSON string).
#[derive(Debug, Clone, PartialEq)]
pub struct JsonResponse {
    /// HTTP status code.
    pub status: u16,
    /// The body.
    pub body: Value,
}

/// POSTs `body` as JSON to `url` with extra `headers`.
pub async fn post_json(
    url: &str,
    body: &Value,
    headers: &BTreeMap<String, String>,
) -> Result<JsonResponse, TestkitError> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = http::Request::post(url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json");
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let request = request
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| TestkitError::Http(e.to_string()))?;
    let response = client
        .request(request)
        .await
        .map_err(|e| TestkitError::Http(format!("POST {url}: {e}")))?;
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| TestkitError::Http(format!("reading {url}: {e}")))?
        .to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Ok(JsonResponse { status, body })
}
