//! Identity end to end on real sockets: a JWKS served on a loopback port (fetched, cached,
//! refetched on an unknown kid, rate-limited), and the kit router carrying the bearer token into
//! resolvers over POST, GET and WebSocket `connection_init`. Plus the field cipher through its
//! public API.

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap is the test failing, at that line"
)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_graphql::{Context, EmptyMutation, Object, Schema, Subscription};
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use futures::{SinkExt, Stream, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use switchyard_subgraph_kit::auth::{
    self, caller, jwks, optional_caller, AuthError, Claims, JwtSigner, JwtVerifier,
};
use switchyard_subgraph_kit::crypto::{CryptoError, FieldCipher, SecretsDir};
use switchyard_subgraph_kit::server::{self, AlwaysReady};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// A JWKS endpoint whose key set the test changes, counting fetches.
#[derive(Clone, Default)]
struct JwksServer {
    signers: Arc<Mutex<Vec<JwtSigner>>>,
    fetches: Arc<AtomicUsize>,
}

async fn serve_jwks(state: JwksServer) -> String {
    async fn handler(State(s): State<JwksServer>) -> Json<Value> {
        s.fetches.fetch_add(1, Ordering::SeqCst);
        Json(jwks(&s.signers.lock().unwrap()))
    }
    let app = Router::new()
        .route("/.well-known/jwks.json", get(handler))
        .with_state(state);
    let listener = server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server::serve(listener, app, std::future::pending()));
    format!("http://{addr}/.well-known/jwks.json")
}

fn token(signer: &JwtSigner, handle: &str) -> String {
    signer.sign(&Claims::new(
        format!("id-{handle}"),
        handle,
        Duration::from_secs(900),
    ))
}

#[tokio::test]
async fn jwks_is_fetched_lazily_cached_and_refetched_on_unknown_kid() {
    let state = JwksServer::default();
    let k1 = JwtSigner::generate("k1");
    state.signers.lock().unwrap().push(k1.clone());
    let url = serve_jwks(state.clone()).await;
    let verifier = JwtVerifier::from_jwks_url(url);
    assert_eq!(state.fetches.load(Ordering::SeqCst), 0, "lazy");

    let claims = verifier.verify(&token(&k1, "ada")).await.unwrap();
    assert_eq!(claims.handle, "ada");
    assert_eq!(claims.sub, "id-ada");
    verifier.verify(&token(&k1, "bob")).await.unwrap();
    assert_eq!(state.fetches.load(Ordering::SeqCst), 1, "cached");

    // The auth service rotates: a token under the new kid is refused while the last fetch is
    // recent (30 s by default), so forged kids cannot hammer the auth service…
    let k2 = JwtSigner::generate("k2");
    state.signers.lock().unwrap().insert(0, k2.clone());
    assert_eq!(
        verifier.verify(&token(&k2, "cy")).await.unwrap_err(),
        AuthError::UnknownKey("k2".into()),
    );
    assert_eq!(state.fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn unknown_kid_refetches_once_the_interval_has_passed() {
    let state = JwksServer::default();
    let k1 = JwtSigner::generate("k1");
    state.signers.lock().unwrap().push(k1.clone());
    let url = serve_jwks(state.clone()).await;
    let verifier =
        JwtVerifier::from_jwks_url(url).with_refetch_interval(Duration::from_millis(200));
    verifier.verify(&token(&k1, "ada")).await.unwrap();
    assert_eq!(state.fetches.load(Ordering::SeqCst), 1);

    let k2 = JwtSigner::generate("k2");
    state.signers.lock().unwrap().insert(0, k2.clone());
    tokio::time::sleep(Duration::from_millis(250)).await;
    let claims = verifier.verify(&token(&k2, "cy")).await.unwrap();
    assert_eq!(claims.handle, "cy");
    assert_eq!(state.fetches.load(Ordering::SeqCst), 2, "one refetch");
    // Both keys are now cached.
    verifier.verify(&token(&k1, "ada")).await.unwrap();
    verifier.verify(&token(&k2, "cy")).await.unwrap();
    assert_eq!(state.fetches.load(Ordering::SeqCst), 2);

    // A key dropped from the JWKS stops verifying after the next refetch.
    state.signers.lock().unwrap().retain(|s| s.kid() != "k1");
    tokio::time::sleep(Duration::from_millis(250)).await;
    let k3 = JwtSigner::generate("k3");
    assert!(verifier.verify(&token(&k3, "x")).await.is_err());
    assert_eq!(state.fetches.load(Ordering::SeqCst), 3);
    assert_eq!(
        verifier.verify(&token(&k1, "ada")).await.unwrap_err(),
        AuthError::UnknownKey("k1".into())
    );
}

#[tokio::test]
async fn unknown_kid_triggers_one_refetch_then_rate_limits() {
    let state = JwksServer::default();
    let k1 = JwtSigner::generate("k1");
    state.signers.lock().unwrap().push(k1.clone());
    let url = serve_jwks(state.clone()).await;
    let verifier = JwtVerifier::from_jwks_url(url);

    // First use with a kid the server already rotated to: initial fetch finds it.
    let k2 = JwtSigner::generate("k2");
    state.signers.lock().unwrap().push(k2.clone());
    verifier.verify(&token(&k2, "ada")).await.unwrap();
    verifier.verify(&token(&k1, "ada")).await.unwrap();
    assert_eq!(state.fetches.load(Ordering::SeqCst), 1);

    // A forged kid: one refetch at most per 30 s, however many arrive concurrently.
    let forged = JwtSigner::generate("forged");
    let attempts = futures::future::join_all((0..20).map(|_| {
        let t = token(&forged, "x");
        let v = verifier.clone();
        async move { v.verify(&t).await }
    }))
    .await;
    assert!(attempts
        .iter()
        .all(|r| *r == Err(AuthError::UnknownKey("forged".into()))));
    assert_eq!(state.fetches.load(Ordering::SeqCst), 1);
    // Known keys keep working from the cache meanwhile.
    verifier.verify(&token(&k1, "ada")).await.unwrap();
}

#[tokio::test]
async fn unreachable_jwks_is_a_clear_error_and_retried_soon() {
    // Bind then drop: a port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let verifier = JwtVerifier::from_jwks_url(format!("http://{addr}/.well-known/jwks.json"));
    let k1 = JwtSigner::generate("k1");
    let err = verifier.verify(&token(&k1, "ada")).await.unwrap_err();
    assert!(matches!(err, AuthError::Jwks(_)), "{err:?}");

    // The auth service comes up on that port: after the short failure back-off, it works.
    let state = JwksServer::default();
    state.signers.lock().unwrap().push(k1.clone());
    let app = Router::new()
        .route(
            "/.well-known/jwks.json",
            get(
                |State(s): State<JwksServer>| async move { Json(jwks(&s.signers.lock().unwrap())) },
            ),
        )
        .with_state(state);
    let Ok(listener) = tokio::net::TcpListener::bind(addr).await else {
        // Someone else took the port meanwhile; the first half still proved the error.
        return;
    };
    tokio::spawn(server::serve(listener, app, std::future::pending()));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    verifier.verify(&token(&k1, "ada")).await.unwrap();
}

#[tokio::test]
async fn https_jwks_urls_are_refused() {
    let verifier = JwtVerifier::from_jwks_url("https://auth.example/.well-known/jwks.json");
    let err = verifier
        .verify(&token(&JwtSigner::generate("k"), "a"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("only http://"), "{err}");
}

struct Query;

#[Object]
impl Query {
    /// The caller's handle, or null when anonymous.
    async fn whoami(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<String>> {
        Ok(optional_caller(ctx).await?.map(|c| c.handle))
    }

    /// The caller's member id; requires a token.
    async fn my_id(&self, ctx: &Context<'_>) -> async_graphql::Result<String> {
        Ok(caller(ctx).await?.member_id)
    }
}

struct Subs;

#[Subscription]
impl Subs {
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<impl Stream<Item = String>> {
        let c = caller(ctx).await?;
        Ok(futures::stream::iter([c.handle, c.member_id]))
    }
}

async fn post(url: &str, token: Option<&str>, body: Value) -> Value {
    post_with_authorization(url, token.map(|t| format!("Bearer {t}")), body).await
}

/// POST with `authorization` set to exactly `value`.
async fn post_with_authorization(url: &str, value: Option<String>, body: Value) -> Value {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut builder = http::Request::post(url).header("content-type", "application/json");
    if let Some(value) = value {
        builder = builder.header("authorization", value);
    }
    let response = client
        .request(
            builder
                .body(Full::new(Bytes::from(body.to_string())))
                .unwrap(),
        )
        .await
        .unwrap();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

async fn get_query(url: &str, token: &str) -> Value {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = http::Request::get(url)
        .header("Authorization", format!("bearer {token}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = client.request(request).await.unwrap();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn router_carries_the_bearer_token_over_post_get_and_websocket() {
    let signer = JwtSigner::generate("k1");
    let verifier = JwtVerifier::from_jwks_json(&jwks(std::slice::from_ref(&signer))).unwrap();
    let schema = Schema::build(Query, EmptyMutation, Subs)
        .enable_federation()
        .enable_subscription_in_federation()
        .data(verifier)
        .finish();
    let router = server::router(schema, Arc::new(AlwaysReady));
    let listener = server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server::serve(listener, router, std::future::pending()));
    let url = format!("http://{addr}/graphql");
    let ada = token(&signer, "ada");

    // POST with a token; batches are refused (guards.rs), token or not.
    let body = post(&url, Some(&ada), json!({"query": "{ whoami myId }"})).await;
    assert_eq!(body, json!({"data": {"whoami": "ada", "myId": "id-ada"}}));
    let body = post(
        &url,
        Some(&ada),
        json!([{"query": "{ whoami }"}, {"query": "{ myId }"}]),
    )
    .await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_REQUEST");

    // Anonymous: optional is null, required is UNAUTHENTICATED.
    let body = post(&url, None, json!({"query": "{ whoami }"})).await;
    assert_eq!(body, json!({"data": {"whoami": null}}));
    let body = post(&url, None, json!({"query": "{ myId }"})).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");

    // A bad token is an error even where a token is optional.
    let (h, p, _) = {
        let mut it = ada.split('.');
        (
            it.next().unwrap().to_owned(),
            it.next().unwrap().to_owned(),
            (),
        )
    };
    let tampered = format!("{h}.{p}.AAAA");
    let body = post(&url, Some(&tampered), json!({"query": "{ whoami }"})).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    let other = JwtSigner::generate("k9");
    let body = post(
        &url,
        Some(&token(&other, "eve")),
        json!({"query": "{ whoami }"}),
    )
    .await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    assert!(body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("unknown key"));

    // A token without `Bearer ` (or another scheme) is an error, not silently anonymous.
    for value in [ada.clone(), format!("Basic {ada}"), "Bearer ".to_owned()] {
        let body = post_with_authorization(&url, Some(value), json!({"query": "{ whoami }"})).await;
        assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("must be `Bearer <access token>`"),
            "{body}"
        );
    }
    let frames = subscribe(addr, json!({ "Authorization": ada }), None).await;
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0][0]["extensions"]["code"], "UNAUTHENTICATED");

    // GET, scheme in lower case.
    let body = get_query(&format!("{url}?query=%7Bwhoami%7D"), &ada).await;
    assert_eq!(body, json!({"data": {"whoami": "ada"}}));

    // WebSocket: the token in connection_init (browsers cannot set upgrade headers).
    for key in ["Authorization", "authorization"] {
        let frames = subscribe(addr, json!({ key: format!("Bearer {ada}") }), None).await;
        assert_eq!(frames, [json!({"me": "ada"}), json!({"me": "id-ada"})]);
    }
    // …or on the upgrade request's header.
    let frames = subscribe(addr, json!({}), Some(&ada)).await;
    assert_eq!(frames, [json!({"me": "ada"}), json!({"me": "id-ada"})]);
    // Without any: an UNAUTHENTICATED error frame.
    let frames = subscribe(addr, json!({}), None).await;
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0][0]["extensions"]["code"], "UNAUTHENTICATED");
}

/// Subscribes to `me` over graphql-transport-ws; returns the `data` of each `next` frame, or
/// the errors of an `error` frame.
async fn subscribe(addr: std::net::SocketAddr, init: Value, header: Option<&str>) -> Vec<Value> {
    let mut request = format!("ws://{addr}/graphql")
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    if let Some(t) = header {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let send = |v: Value| Message::Text(v.to_string().into());
    ws.send(send(json!({"type": "connection_init", "payload": init})))
        .await
        .unwrap();
    ws.send(send(json!({
        "type": "subscribe", "id": "1",
        "payload": {"query": "subscription { me }"}
    })))
    .await
    .unwrap();
    let mut out = Vec::new();
    while let Some(message) = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("subscription stalled")
    {
        let Message::Text(text) = message.unwrap() else {
            continue;
        };
        let frame: Value = serde_json::from_str(&text).unwrap();
        match frame["type"].as_str().unwrap() {
            "connection_ack" => {}
            "next" => {
                if let Some(errors) = frame["payload"].get("errors") {
                    out.push(errors.clone());
                } else {
                    out.push(frame["payload"]["data"].clone());
                }
            }
            "error" => {
                out.push(frame["payload"].clone());
                break;
            }
            "complete" => break,
            other => panic!("unexpected frame {other}: {frame}"),
        }
    }
    out
}

#[test]
fn field_cipher_rotation_and_aad_through_the_public_api() {
    let dir = tempfile::tempdir().unwrap();
    let k_old = switchyard_subgraph_kit::crypto::generate_key_base64().unwrap();
    let k_new = switchyard_subgraph_kit::crypto::generate_key_base64().unwrap();
    let hash = switchyard_subgraph_kit::crypto::generate_key_base64().unwrap();
    let env_old = |name: &str| match name {
        "PROFILE_DATA_KEYS" => Some(format!("old:{k_old}")),
        "PROFILE_HASH_KEY" => Some(hash.clone()),
        _ => None,
    };
    let old =
        FieldCipher::load_with("PROFILE", &SecretsDir::new(None, dir.path()), env_old).unwrap();
    let sealed = old.encrypt(b"+1 555 0100", b"member-1").unwrap();
    assert_eq!(sealed.key_id, "old");

    let env_new = |name: &str| match name {
        "PROFILE_DATA_KEYS" => Some(format!("new:{k_new},old:{k_old}")),
        "PROFILE_HASH_KEY" => Some(hash.clone()),
        _ => None,
    };
    let new =
        FieldCipher::load_with("PROFILE", &SecretsDir::new(None, dir.path()), env_new).unwrap();
    assert_eq!(new.active_key_id(), "new");
    assert_eq!(new.decrypt(&sealed, b"member-1").unwrap(), b"+1 555 0100");
    assert!(matches!(
        new.decrypt(&sealed, b"member-2"),
        Err(CryptoError::Decrypt)
    ));
    let resealed = new.encrypt(b"+1 555 0100", b"member-1").unwrap();
    assert_eq!(resealed.key_id, "new");
    assert_eq!(
        old.keyed_hash(b"ada@example.com"),
        new.keyed_hash(b"ada@example.com"),
        "lookups survive data-key rotation"
    );
    // Unused import guard: the module path is public.
    let _ = auth::ISSUER;
}
