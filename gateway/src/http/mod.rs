//! GraphQL over HTTP (axum): `POST`/`GET /graphql`, GraphiQL for browsers, WebSocket
//! subscriptions (`graphql-transport-ws`, see [`crate::subscription`]), `/health`, `/ready`.
//!
//! Follows the GraphQL-over-HTTP spec: `application/graphql-response+json` when the client
//! accepts it (then 400 for requests rejected before execution), else `application/json` with 200
//! for every well-formed request.

pub mod graphiql;

use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::header::{
    ACCEPT, ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_SECURITY_POLICY, CONTENT_TYPE,
    REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Extension;
use axum::Router;
use bytes::Bytes;
use serde::Deserialize;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tracing::Instrument;

use switchyard_guard::ClientAddr;

use crate::error::{GraphQLError, BAD_REQUEST, PAYLOAD_TOO_LARGE};
use crate::CorsSettings;

/// The header that carries the client's address to subgraphs.
pub(crate) const X_FORWARDED_FOR: http::HeaderName =
    http::HeaderName::from_static("x-forwarded-for");
use crate::pipeline::parse::{self, MissingQuery};
use crate::pipeline::Request;
use crate::{Gateway, GraphQLRequest, GraphQLResponse, ResponseStatus};

const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json";
const APPLICATION_JSON: &str = "application/json";

pub(crate) fn router(gateway: Gateway) -> Router {
    let cors = cors_layer(&gateway.config().cors);
    let router = Router::new()
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/graphiql/assets/{*path}", get(graphiql_asset))
        .route("/favicon.ico", get(favicon))
        .with_state(gateway);
    match cors {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

/// The CORS layer for `settings`, or none when no origin is allowed (then browsers keep
/// cross-origin pages out, and preflights get 405 like any unrouted method).
fn cors_layer(settings: &CorsSettings) -> Option<CorsLayer> {
    if !settings.enabled() {
        return None;
    }
    let headers = |names: &[String]| -> Vec<HeaderName> {
        names
            .iter()
            .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok())
            .collect()
    };
    let any_origin = settings.allow_origins.iter().any(|o| o == "*");
    // Credentials with any origin would let every site act as the signed-in user; config
    // loading refuses it, and a config built in code gets no credentials instead.
    let credentials = settings.allow_credentials && !any_origin;
    let origins = if any_origin {
        AllowOrigin::any()
    } else {
        let settings = settings.clone();
        AllowOrigin::predicate(move |origin: &HeaderValue, _| {
            origin.to_str().is_ok_and(|o| settings.allows(o))
        })
    };
    let mut layer = CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([Method::GET, Method::POST])
        .allow_credentials(credentials)
        .max_age(settings.max_age);
    // Empty lists would still send an empty header.
    if !settings.allow_headers.is_empty() {
        layer = layer.allow_headers(headers(&settings.allow_headers));
    }
    if !settings.expose_headers.is_empty() {
        layer = layer.expose_headers(headers(&settings.expose_headers));
    }
    Some(layer)
}

/// Browsers ask every origin for one; a 404 for it in every GraphiQL session is noise in logs
/// and devtools. A small SVG (all current browsers take SVG icons).
async fn favicon() -> Response {
    const ICON: &str = concat!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">"##,
        r##"<rect width="16" height="16" rx="3" fill="#24527a"/>"##,
        r##"<path d="M2 5h5l4 6h3M2 11h5l1.5-2.2M11 5h3" stroke="#fff" stroke-width="1.6" fill="none"/>"##,
        "</svg>"
    );
    let mut response = Response::new(Body::from(ICON));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("image/svg+xml"));
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    response
}

async fn health() -> Response {
    json_response(
        StatusCode::OK,
        APPLICATION_JSON,
        Bytes::from_static(br#"{"status":"UP"}"#),
    )
}

/// A `Gateway` only exists once its supergraph is loaded, so serving this route means ready
/// until the drain starts (503, so load balancers stop sending). The body tells about reloads:
/// a refused one (the previous schema still serving) shows its reason here.
async fn ready(State(gateway): State<Gateway>) -> Response {
    let draining = gateway.inner.shared.is_draining();
    let body = serde_json::json!({
        "status": if draining { "DRAINING" } else { "READY" },
        "reload": gateway.inner.shared.status(),
    });
    let status = if draining {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    json_response(status, APPLICATION_JSON, Bytes::from(body.to_string()))
}

/// Which response media type the client gets.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Media {
    GraphQLResponseJson,
    Json,
}

impl Media {
    fn negotiate(headers: &HeaderMap) -> Media {
        let accepts_new = headers
            .get_all(ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|range| range.split(';').next().map(str::trim) == Some(GRAPHQL_RESPONSE_JSON));
        if accepts_new {
            Media::GraphQLResponseJson
        } else {
            Media::Json
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Media::GraphQLResponseJson => GRAPHQL_RESPONSE_JSON,
            Media::Json => APPLICATION_JSON,
        }
    }
}

fn json_response(status: StatusCode, content_type: &'static str, body: Bytes) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn error_response(status: StatusCode, media: Media, message: &str, code: &str) -> Response {
    let body = GraphQLResponse::errors(
        ResponseStatus::RequestError,
        &[GraphQLError::new(message, code)],
    )
    .body;
    json_response(status, media.content_type(), body)
}

fn to_http(response: GraphQLResponse, media: Media) -> Response {
    let GraphQLResponse {
        body,
        status,
        headers: passed,
    } = response;
    let mut http = status_response(status, body, media);
    if !passed.is_empty() {
        // Headers passed back from subgraphs never replace the gateway's own.
        let own: Vec<_> = http.headers().keys().cloned().collect();
        for (name, value) in &passed {
            if !own.contains(name) {
                http.headers_mut().append(name.clone(), value.clone());
            }
        }
    }
    http
}

fn status_response(status: ResponseStatus, body: Bytes, media: Media) -> Response {
    let status = match (status, media) {
        // A planning failure answers `data: null`: GraphQL over HTTP recommends 200 then.
        (ResponseStatus::Executed | ResponseStatus::PlanningFailed, _) => StatusCode::OK,
        (ResponseStatus::MutationOverGet, _) => {
            let mut r = json_response(StatusCode::METHOD_NOT_ALLOWED, media.content_type(), body);
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST"));
            return r;
        }
        (_, Media::Json) => StatusCode::OK,
        (ResponseStatus::RequestError, Media::GraphQLResponseJson) => StatusCode::BAD_REQUEST,
    };
    json_response(status, media.content_type(), body)
}

/// The client's address as subgraphs see it (`X-Forwarded-For`, one address): the connection's
/// peer, or with `trust_forwarded_for` the last address the load balancer appended. Whatever
/// the client itself put in the header is replaced, so it cannot pose as someone else to the
/// auth service's per-address log-in throttling.
fn set_client_address(gateway: &Gateway, peer: Option<ClientAddr>, headers: &mut HeaderMap) {
    let forwarded = gateway
        .config()
        .trust_forwarded_for
        .then(|| {
            headers
                .get_all(X_FORWARDED_FOR)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .next_back()
                .and_then(|last| last.trim().parse::<std::net::IpAddr>().ok())
        })
        .flatten();
    let client = forwarded.or(peer.map(|ClientAddr(addr)| addr.ip()));
    headers.remove(X_FORWARDED_FOR);
    if let Some(ip) = client {
        if let Ok(value) = HeaderValue::from_str(&ip.to_string()) {
            headers.insert(X_FORWARDED_FOR, value);
        }
    }
}

async fn graphql_post(
    State(gateway): State<Gateway>,
    peer: Option<Extension<ClientAddr>>,
    mut headers: HeaderMap,
    body: Body,
) -> Response {
    set_client_address(&gateway, peer.map(|Extension(p)| p), &mut headers);
    let media = Media::negotiate(&headers);
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or(APPLICATION_JSON);
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case(APPLICATION_JSON) {
        return error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            media,
            &format!("Unsupported content type {essence:?}; send application/json."),
            BAD_REQUEST,
        );
    }
    let limit = gateway.config().max_body_bytes;
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return too_large(media, limit);
    }
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(err) => {
            let over_limit = std::error::Error::source(&err)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if over_limit {
                return too_large(media, limit);
            }
            return error_response(
                StatusCode::BAD_REQUEST,
                media,
                &format!("Could not read the request body: {err}"),
                BAD_REQUEST,
            );
        }
    };
    let request = match parse_request_body(&bytes) {
        Ok(request) => request,
        Err(message) => {
            return error_response(StatusCode::BAD_REQUEST, media, &message, BAD_REQUEST)
        }
    };
    let span = tracing::info_span!(
        "graphql_request",
        method = "POST",
        operation_name = request.operation_name.as_deref()
    );
    // A client that takes multipart may be sending a subscription: prepare first to know, and
    // hand the prepared operation on either way.
    let prepared = if gateway.config().subscriptions
        && crate::subscription::accepts_multipart(&headers)
    {
        let prepared = gateway.prepare_request(&request).await;
        if let Ok(subscription) = &prepared {
            if subscription.is_subscription() {
                let subscription = std::sync::Arc::clone(subscription);
                return crate::subscription::over_http(&gateway, subscription, request, headers);
            }
        }
        Some(prepared)
    } else {
        None
    };
    let response = gateway
        .run(request, &headers, false, prepared)
        .instrument(span)
        .await;
    to_http(response, media)
}

/// A POST body as one GraphQL request, or why it is not one: batches (JSON arrays) and
/// non-object bodies get their own messages instead of serde's "invalid type" wording.
pub(crate) fn parse_request_body(bytes: &[u8]) -> Result<Request, String> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        Some(b'[') => {
            return Err(
                "Batched requests (a JSON array of operations) are not supported; send \
                        one operation per request."
                    .to_owned(),
            )
        }
        None => {
            return Err(
                "The request body is empty; send a JSON object with a \"query\".".to_owned(),
            )
        }
        Some(_) => {
            return Err(
                "The request body must be a JSON object with a \"query\" (and optionally \
                 \"operationName\", \"variables\", \"extensions\")."
                    .to_owned(),
            )
        }
    }
    // Checked first because `from_slice` does not check the strings of members it ignores, so
    // a body with invalid UTF-8 in an unknown member would pass (found by `fuzz/request_body`).
    let text = std::str::from_utf8(bytes).map_err(|err| {
        format!(
            "Invalid JSON request body: invalid UTF-8 at byte {}",
            err.valid_up_to()
        )
    })?;
    let mut request: GraphQLRequest =
        serde_json::from_str(text).map_err(|err| format!("Invalid JSON request body: {err}"))?;
    let extensions = request.extensions.take();
    let request = Request::try_from(request).map_err(|_| MissingQuery::MESSAGE.to_owned())?;
    check_extensions(extensions.as_ref())?;
    Ok(request)
}

/// `extensions`, when present and not null, must be a JSON object (GraphQL over HTTP).
fn check_extensions(extensions: Option<&serde_json::Value>) -> Result<(), String> {
    match extensions {
        None | Some(serde_json::Value::Null | serde_json::Value::Object(_)) => Ok(()),
        Some(_) => Err("\"extensions\" must be a JSON object.".to_owned()),
    }
}

fn too_large(media: Media, limit: usize) -> Response {
    error_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        media,
        &format!("Request body is larger than {limit} bytes."),
        PAYLOAD_TOO_LARGE,
    )
}

/// GET parameters; `variables` and `extensions` are JSON-encoded strings.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetParams {
    query: Option<String>,
    operation_name: Option<String>,
    variables: Option<String>,
    extensions: Option<String>,
}

/// What a `GET /graphql` query string asks for.
#[derive(Debug)]
pub(crate) enum GetRequest {
    /// An operation to run.
    Operation(Request),
    /// No `query` parameter: GraphiQL for a browser, "Missing query" for anyone else.
    NoQuery,
}

/// Parses a `GET /graphql` query string (`query`, `operationName`, and `variables` and
/// `extensions` as JSON text), or the message the client gets with a 400.
pub(crate) fn parse_get_request(uri: &http::Uri) -> Result<GetRequest, String> {
    let Query(params) = Query::<GetParams>::try_from_uri(uri)
        .map_err(|err| format!("Invalid query string: {err}"))?;
    let Ok(query) = parse::require_query(params.query) else {
        return Ok(GetRequest::NoQuery);
    };
    let variables = match params.variables.as_deref().filter(|v| !v.is_empty()) {
        None => None,
        Some(text) => {
            serde_json::from_str::<Option<serde_json::Map<String, serde_json::Value>>>(text)
                .map_err(|err| format!("Invalid variables JSON: {err}"))?
        }
    };
    let extensions = match params.extensions.as_deref().filter(|e| !e.is_empty()) {
        None => None,
        Some(text) => Some(
            serde_json::from_str::<serde_json::Value>(text)
                .map_err(|err| format!("Invalid extensions JSON: {err}"))?,
        ),
    };
    check_extensions(extensions.as_ref())?;
    Ok(GetRequest::Operation(Request {
        query,
        operation_name: params.operation_name,
        variables,
    }))
}

fn accepts_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/html"))
}

async fn graphql_get(State(gateway): State<Gateway>, request: axum::extract::Request) -> Response {
    let (mut parts, _body) = request.into_parts();
    let peer = parts.extensions.get::<ClientAddr>().copied();
    set_client_address(&gateway, peer, &mut parts.headers);
    if crate::subscription::is_upgrade(&parts.headers) {
        return websocket(gateway, &mut parts).await;
    }
    let headers = parts.headers;
    let uri = parts.uri;
    let media = Media::negotiate(&headers);
    let request = match parse_get_request(&uri) {
        Ok(GetRequest::Operation(request)) => request,
        Ok(GetRequest::NoQuery) if accepts_html(&headers) => return graphiql(&gateway),
        Ok(GetRequest::NoQuery) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                media,
                MissingQuery::MESSAGE,
                BAD_REQUEST,
            )
        }
        Err(message) => {
            return error_response(StatusCode::BAD_REQUEST, media, &message, BAD_REQUEST)
        }
    };
    let span = tracing::info_span!(
        "graphql_request",
        method = "GET",
        operation_name = request.operation_name.as_deref()
    );
    let response = gateway
        .run(request, &headers, true, None)
        .instrument(span)
        .await;
    to_http(response, media)
}

/// `GET /graphql` with `Upgrade: websocket`: subscriptions over graphql-transport-ws.
async fn websocket(gateway: Gateway, parts: &mut axum::http::request::Parts) -> Response {
    let media = Media::negotiate(&parts.headers);
    if !gateway.config().subscriptions {
        return error_response(
            StatusCode::BAD_REQUEST,
            media,
            "Subscriptions are disabled on this gateway.",
            BAD_REQUEST,
        );
    }
    if !crate::subscription::offers_protocol(&parts.headers) {
        return error_response(
            StatusCode::BAD_REQUEST,
            media,
            &format!(
                "Unsupported WebSocket subprotocol; offer \"{}\" in Sec-WebSocket-Protocol.",
                crate::subscription::PROTOCOL
            ),
            BAD_REQUEST,
        );
    }
    let upgrade = match WebSocketUpgrade::from_request_parts(parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let headers = parts.headers.clone();
    upgrade
        .protocols([crate::subscription::PROTOCOL])
        .on_upgrade(move |socket| crate::subscription::serve(gateway, socket, headers))
}

fn graphiql(gateway: &Gateway) -> Response {
    if !gateway.config().graphiql {
        return (StatusCode::NOT_FOUND, "GraphiQL is disabled").into_response();
    }
    let html = graphiql::graphiql_html(
        "/graphql",
        gateway.config().subscriptions,
        gateway.graphiql_default_query().as_deref(),
    );
    let mut response = Response::new(Body::from(html));
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(graphiql::CONTENT_SECURITY_POLICY),
    );
    // Belt and braces for browsers older than CSP's frame-ancestors.
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn graphiql_asset(State(gateway): State<Gateway>, uri: Uri) -> Response {
    let found = gateway
        .config()
        .graphiql
        .then(|| graphiql::asset(uri.path()))
        .flatten();
    let Some((content_type, bytes)) = found else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut response = Response::new(Body::from(Bytes::from_static(bytes)));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // Asset URLs carry the GraphiQL version, so a cached copy can never go stale.
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_that_are_not_utf8_json_are_refused() {
        // Invalid UTF-8 in a key of a member the request type ignores.
        let mut body = br#"{"query":"{ me { id } }","unknown":{"k"#.to_vec();
        let at = body.len();
        body.push(0x9b);
        body.extend_from_slice(br#"":1}}"#);
        assert!(serde_json::from_slice::<serde_json::Value>(&body).is_err());
        let err = parse_request_body(&body).unwrap_err();
        assert!(
            err.contains(&format!("invalid UTF-8 at byte {at}")),
            "{err}"
        );
        let ok = br#"{"query":"{ me { id } }","unknown":{"k":1}}"#;
        assert_eq!(parse_request_body(ok).unwrap().query, "{ me { id } }");
    }

    fn get(query_string: &str) -> Result<GetRequest, String> {
        parse_get_request(&http::Uri::try_from(format!("/graphql?{query_string}")).unwrap())
    }

    #[test]
    fn get_query_strings_parse_or_say_what_is_wrong() {
        let Ok(GetRequest::Operation(request)) = get(
            "query=query%20Q(%24n%3AInt)%7Bposts(first%3A%24n)%7Bid%7D%7D&operationName=Q\
             &variables=%7B%22n%22%3A3%7D",
        ) else {
            panic!("a well-formed GET was refused")
        };
        assert_eq!(request.query, "query Q($n:Int){posts(first:$n){id}}");
        assert_eq!(request.operation_name.as_deref(), Some("Q"));
        assert_eq!(request.variables.unwrap()["n"], 3);
        // Empty and null variables are no variables.
        for qs in [
            "query=%7Bme%7Bid%7D%7D&variables=",
            "query=%7Bme%7Bid%7D%7D&variables=null",
        ] {
            let Ok(GetRequest::Operation(request)) = get(qs) else {
                panic!("{qs} was refused")
            };
            assert!(request.variables.is_none(), "{qs}");
        }
        assert!(matches!(get("operationName=Q"), Ok(GetRequest::NoQuery)));
        let refused = [
            ("query=%7Bme%7D&variables=%5B1%5D", "Invalid variables JSON"),
            ("query=%7Bme%7D&variables=%7B", "Invalid variables JSON"),
            (
                "query=%7Bme%7D&extensions=1",
                "\"extensions\" must be a JSON object",
            ),
            ("query=%7Bme%7D&extensions=%7B", "Invalid extensions JSON"),
            ("query=a&query=b", "Invalid query string"),
        ];
        for (qs, expected) in refused {
            let err = get(qs).expect_err(qs);
            assert!(err.contains(expected), "{qs}: {err}");
        }
    }
}
