//! Crate-private parsers opened to the JSON reader bench (`benches/json_reader.rs`) and the fuzz
//! targets (`fuzz/`), which are separate crates. Not an API: hidden from the docs, may change.

use serde::{Deserialize, Deserializer};

use crate::execute::{data, json};

/// A JSON value in the executor's own representation (what subgraph responses are merged as).
#[derive(Debug, Clone, PartialEq)]
pub struct Data(data::Value);

impl Data {
    /// The value as JSON text, written by the executor's writer.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::new();
        json::write_value(&mut out, &self.0);
        out
    }
}

impl From<serde_json::Value> for Data {
    /// The conversion another parser's tree would need before the executor could merge it.
    fn from(value: serde_json::Value) -> Self {
        Data(value.into())
    }
}

impl<'de> Deserialize<'de> for Data {
    /// Lets any serde parser (serde_json, sonic-rs) build the executor's value directly.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        data::Value::deserialize(deserializer).map(Data)
    }
}

/// A subgraph response body read the way the executor reads it: its `data` (`None` when absent
/// or null) and the number of entries in `errors`.
pub fn read_response(bytes: &[u8]) -> Result<(Option<Data>, usize), String> {
    data_and_error_count(json::parse_response(bytes))
}

/// [`read_response`] as the executor reads a body it fetched: long strings are read in place
/// from `body`, which the returned data keeps alive.
pub fn read_response_in(body: bytes::Bytes) -> Result<(Option<Data>, usize), String> {
    data_and_error_count(json::parse_response_in(body))
}

fn data_and_error_count(
    parsed: Result<json::Response, json::JsonError>,
) -> Result<(Option<Data>, usize), String> {
    let response = parsed.map_err(|err| err.to_string())?;
    let errors = response.errors.map_or(0, |errors| errors.len());
    Ok((response.data.map(Data), errors))
}

/// One JSON value (the whole text) read by the executor's reader.
pub fn read_value(text: &str) -> Result<Data, String> {
    json::parse_value(text)
        .map(Data)
        .map_err(|err| err.to_string())
}

/// A client's POST body parsed as the HTTP handler parses it: the query, or the message the
/// client would get.
pub fn parse_request_body(bytes: &[u8]) -> Result<String, String> {
    crate::http::parse_request_body(bytes).map(|request| request.query)
}

/// An operation a `GET /graphql` query string asks for.
#[derive(Debug)]
pub struct GetOperation {
    /// The document.
    pub query: String,
    /// The variables as JSON text (an object), if any.
    pub variables: Option<String>,
}

/// A `GET /graphql` query string (what follows `?`) parsed as the HTTP handler parses it:
/// `Ok(Some(operation))`, `Ok(None)` when there is no `query` (GraphiQL or "Missing query"),
/// or the 400 message. `None` when the text is not a valid URI query at all (the HTTP server
/// would have refused the request line before the handler saw it).
pub fn parse_get_query(query_string: &str) -> Option<Result<Option<GetOperation>, String>> {
    let uri = http::Uri::try_from(format!("/graphql?{query_string}")).ok()?;
    Some(crate::http::parse_get_request(&uri).map(|request| {
        match request {
            crate::http::GetRequest::Operation(request) => Some(GetOperation {
                query: request.query,
                variables: request
                    .variables
                    .map(|v| serde_json::Value::Object(v).to_string()),
            }),
            crate::http::GetRequest::NoQuery => None,
        }
    }))
}
