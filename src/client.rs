//! A small GraphQL-over-HTTP client: what the seeder and the end-to-end tests use to talk to the
//! gateway exactly as a frontend would (JSON POST, optional bearer token).

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

/// A client for one GraphQL endpoint, optionally signed in.
#[derive(Clone)]
pub struct GraphQLClient {
    url: String,
    token: Option<String>,
    /// Extra headers sent with every request (e.g. a `traceparent`).
    headers: Vec<(http::HeaderName, http::HeaderValue)>,
    http: Client<HttpConnector, Full<Bytes>>,
}

/// A GraphQL response: `data` and `errors` as the server sent them.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// The whole JSON body.
    pub body: Value,
}

impl Response {
    /// `data`, or an error listing the GraphQL errors when there are any.
    pub fn data(self) -> Result<Value> {
        if let Some(errors) = self.body.get("errors").filter(|e| !e.is_null()) {
            bail!("GraphQL errors: {errors}");
        }
        Ok(self.body.get("data").cloned().unwrap_or(Value::Null))
    }

    /// The `errors` list (empty when there are none).
    pub fn errors(&self) -> Vec<Value> {
        self.body
            .get("errors")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }
}

impl GraphQLClient {
    /// A client for `url` (e.g. `http://127.0.0.1:4000/graphql`), not signed in.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            token: None,
            headers: Vec::new(),
            http: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// The same client sending `Authorization: Bearer <token>`.
    pub fn with_token(&self, token: impl Into<String>) -> Self {
        Self {
            token: Some(token.into()),
            ..self.clone()
        }
    }

    /// The same client also sending `name: value` with every request.
    pub fn with_header(&self, name: http::HeaderName, value: http::HeaderValue) -> Self {
        let mut client = self.clone();
        client.headers.push((name, value));
        client
    }

    /// Sends one operation and returns the response, whatever its errors.
    pub async fn send(&self, query: &str, variables: Value) -> Result<Response> {
        let body = serde_json::to_vec(&json!({ "query": query, "variables": variables }))?;
        let mut request = http::Request::post(&self.url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/graphql-response+json");
        if let Some(token) = &self.token {
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let response = self
            .http
            .request(request.body(Full::new(Bytes::from(body)))?)
            .await
            .with_context(|| format!("POST {}", self.url))?;
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await?.to_bytes();
        let body: Value = serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "non-JSON response ({status}): {}",
                String::from_utf8_lossy(&bytes)
            )
        })?;
        Ok(Response { status, body })
    }

    /// Sends one operation and returns `data`, failing on any GraphQL error.
    pub async fn data(&self, query: &str, variables: Value) -> Result<Value> {
        self.send(query, variables).await?.data()
    }
}

/// A plain `GET url` with an `Accept` header: status, content type and body text (for the
/// monitoring endpoints: `/metrics`, `/status`).
pub async fn get(url: &str, accept: &str) -> Result<(u16, String, String)> {
    let http: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let request = http::Request::get(url)
        .header(http::header::ACCEPT, accept)
        .body(Full::new(Bytes::new()))?;
    let response = http
        .request(request)
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok((
        status,
        content_type,
        String::from_utf8_lossy(&bytes).into_owned(),
    ))
}
