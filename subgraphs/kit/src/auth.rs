//! Who is calling: access-token verification shared by every subgraph.
//!
//! The auth service issues short-lived JWT access tokens signed with Ed25519 (`alg: EdDSA`, a
//! `kid` in the header) and publishes the public keys as a JWKS document. The gateway forwards
//! the client's `Authorization: Bearer …` header; the kit router puts it into each GraphQL
//! request's data as a [`BearerToken`] (from the HTTP header, or from the WebSocket
//! `connection_init` payload). Resolvers call [`caller`] (required) or [`optional_caller`], which
//! verify the token with the [`JwtVerifier`] the service put into its schema data, and refuse
//! tokens of accounts the service's [`crate::members::MemberDirectory`] (when in the schema data)
//! knows to be deleted.
//!
//! The verifier fetches the JWKS lazily and caches it; a token with a `kid` it does not know makes
//! it refetch (the auth service rotated keys), at most once per 30 s so a flood of forged kids
//! cannot turn into a flood of fetches against the auth service.
//!
//! [`JwtSigner`] is the issuing side: the auth service signs with it, and other services' tests
//! mint tokens with it (`JwtVerifier::from_jwks_json(&jwks(&[signer]))`).
//!
//! ```no_run
//! use async_graphql::{Context, EmptyMutation, EmptySubscription, Object, Schema};
//! use switchyard_subgraph_kit::auth::{caller, JwtVerifier};
//!
//! struct Query;
//!
//! #[Object]
//! impl Query {
//!     /// Only for signed-in members: UNAUTHENTICATED otherwise.
//!     async fn my_member_id(&self, ctx: &Context<'_>) -> async_graphql::Result<String> {
//!         Ok(caller(ctx).await?.member_id)
//!     }
//! }
//!
//! let schema = Schema::build(Query, EmptyMutation, EmptySubscription)
//!     .enable_federation()
//!     .data(JwtVerifier::from_jwks_url("http://127.0.0.1:4101/.well-known/jwks.json"))
//!     .finish();
//! # let _ = schema;
//! ```
//!
//! In tests, sign tokens yourself:
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::time::Duration;
//! use switchyard_subgraph_kit::auth::{jwks, BearerToken, Claims, JwtSigner, JwtVerifier};
//!
//! let signer = JwtSigner::generate("test-key");
//! let verifier = JwtVerifier::from_jwks_json(&jwks(&[signer.clone()])).unwrap();
//! let token = signer.sign(&Claims::new("member-uuid", "ada", Duration::from_secs(900)));
//! assert_eq!(verifier.verify(&token).await.unwrap().handle, "ada");
//! // Put `verifier` in the schema data and `BearerToken(token)` in the request data:
//! let _request = async_graphql::Request::new("{ myMemberId }").data(BearerToken(token));
//! # });
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_graphql::{Context, ErrorExtensions};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The `iss` of every access token.
pub const ISSUER: &str = "switchyard-auth";
/// The `aud` of every access token.
pub const AUDIENCE: &str = "switchyard";
/// Clock skew tolerated when checking `exp` (and `iat` in the future).
pub const LEEWAY_SECS: i64 = 30;
/// Minimum time between JWKS refetches after a successful fetch.
const REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// Minimum time between JWKS fetch attempts after a failed one (auth may still be starting).
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_JWKS_BYTES: usize = 256 * 1024;

/// The raw access token of the current request (from `Authorization: Bearer <token>`).
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken(pub String);

impl fmt::Debug for BearerToken {
    // Tokens are credentials: keep them out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(…)")
    }
}

impl BearerToken {
    /// The token from an `Authorization` header value (`Bearer <token>`, scheme case-insensitive);
    /// `None` for other schemes or an empty token.
    pub fn from_header_value(value: &str) -> Option<BearerToken> {
        let value = value.trim();
        let (scheme, token) = value.split_once(' ')?;
        let token = token.trim();
        (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty())
            .then(|| BearerToken(token.to_owned()))
    }
}

/// In a request's data instead of a [`BearerToken`] when the client sent an `Authorization`
/// value that is not `Bearer <token>` (a bare token, another scheme): the client meant to sign
/// in, so asking for the caller is an `UNAUTHENTICATED` error rather than the anonymous view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotBearer;

/// What an `Authorization` value (header or WebSocket `connection_init` key) gives a request:
/// the token, or [`NotBearer`] when the value is not `Bearer <token>`.
pub fn authorization(value: &str) -> Result<BearerToken, NotBearer> {
    BearerToken::from_header_value(value).ok_or(NotBearer)
}

/// The claims of a Switchyard access token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The member id (= account id, a UUID string).
    pub sub: String,
    /// The member's handle at issue time.
    pub handle: String,
    /// Always [`ISSUER`].
    pub iss: String,
    /// Always [`AUDIENCE`].
    pub aud: String,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expires at (Unix seconds).
    pub exp: i64,
}

impl Claims {
    /// Claims for `sub`/`handle`, issued now, valid for `ttl`.
    pub fn new(sub: impl Into<String>, handle: impl Into<String>, ttl: Duration) -> Claims {
        let iat = chrono::Utc::now().timestamp();
        Claims {
            sub: sub.into(),
            handle: handle.into(),
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            iat,
            exp: iat + ttl.as_secs() as i64,
        }
    }
}

/// Why a token was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token was sent.
    #[error("authentication required: send `Authorization: Bearer <access token>`")]
    Missing,
    /// An `Authorization` value was sent that is not `Bearer <token>`.
    #[error("the Authorization header must be `Bearer <access token>`")]
    NotBearer,
    /// The token is not a well-formed JWT of the expected shape.
    #[error("malformed access token: {0}")]
    Malformed(String),
    /// The header's `alg` is not EdDSA.
    #[error("unsupported token algorithm `{0}` (expected EdDSA)")]
    Algorithm(String),
    /// No key with the token's `kid` is known, even after refetching the key set.
    #[error("access token signed with unknown key `{0}`")]
    UnknownKey(String),
    /// The signature does not match (tampered token or wrong key).
    #[error("access token signature is invalid")]
    BadSignature,
    /// `exp` is in the past.
    #[error("access token has expired")]
    Expired,
    /// `iss` is not [`ISSUER`].
    #[error("access token has the wrong issuer")]
    WrongIssuer,
    /// `aud` is not [`AUDIENCE`].
    #[error("access token has the wrong audience")]
    WrongAudience,
    /// The key set could not be fetched or parsed.
    #[error("cannot load the token verification keys: {0}")]
    Jwks(String),
    /// The token is valid but its account has been deleted (this service has processed
    /// `account.deleted`; see [`crate::members`]).
    #[error("the account of this access token has been deleted")]
    AccountDeleted,
}

impl AuthError {
    /// As a GraphQL error with `extensions.code = "UNAUTHENTICATED"` (plain `?` would go through
    /// async-graphql's blanket `Display` conversion and drop the code).
    pub fn to_graphql(&self) -> async_graphql::Error {
        async_graphql::Error::new(self.to_string())
            .extend_with(|_, e| e.set("code", "UNAUTHENTICATED"))
    }
}

/// The verified caller of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The member id (= account id).
    pub member_id: String,
    /// The member's handle (as of token issue).
    pub handle: String,
}

/// The verified caller; GraphQL error with `extensions.code = "UNAUTHENTICATED"` when the token
/// is missing or invalid.
pub async fn caller(ctx: &Context<'_>) -> async_graphql::Result<Caller> {
    optional_caller(ctx)
        .await?
        .ok_or_else(|| AuthError::Missing.to_graphql())
}

/// `None` without a token; an `UNAUTHENTICATED` error for an invalid one (a client that sent a
/// bad token should learn so, not silently see the anonymous view).
pub async fn optional_caller(ctx: &Context<'_>) -> async_graphql::Result<Option<Caller>> {
    let Some(BearerToken(token)) = ctx.data_opt::<BearerToken>() else {
        if ctx.data_opt::<NotBearer>().is_some() {
            return Err(AuthError::NotBearer.to_graphql());
        }
        return Ok(None);
    };
    let verifier = ctx.data_opt::<JwtVerifier>().ok_or_else(|| {
        tracing::error!("schema has no JwtVerifier in its data; cannot check tokens");
        async_graphql::Error::new("server misconfigured: token verification unavailable")
    })?;
    let claims = verifier.verify(token).await.map_err(|e| match e {
        // The detail names internal addresses: log it, tell the client only what failed.
        AuthError::Jwks(detail) => {
            tracing::error!(%detail, "cannot load the JWKS to verify a token");
            AuthError::Jwks("the identity service is unreachable".into()).to_graphql()
        }
        other => other.to_graphql(),
    })?;
    // A token outlives its account by up to its lifetime: once this service has processed the
    // deletion, the token stops working here.
    if let Some(directory) = ctx.data_opt::<crate::members::MemberDirectory>() {
        if directory.is_deleted(&claims.sub).await {
            return Err(AuthError::AccountDeleted.to_graphql());
        }
    }
    Ok(Some(Caller {
        member_id: claims.sub,
        handle: claims.handle,
    }))
}

/// Verifies access tokens against a JWKS (fetched from a URL, or given).
#[derive(Clone)]
pub struct JwtVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    url: Option<String>,
    refetch_interval: Duration,
    keys: RwLock<HashMap<String, VerifyingKey>>,
    fetch: tokio::sync::Mutex<FetchState>,
    /// Tokens already verified, with their claims: one request can ask for the caller many
    /// times (every entity of an `_entities` batch), and an Ed25519 check costs ~50 µs.
    /// Keyed by token; holds the signing key id so a key dropped from the JWKS also drops them.
    verified: std::sync::Mutex<HashMap<String, (String, Claims)>>,
}

/// Most verified tokens remembered; the map is cleared when full (access tokens live 15 min,
/// so a cleared entry costs one more signature check).
const VERIFIED_CACHE_SIZE: usize = 4096;

#[derive(Default)]
struct FetchState {
    last_attempt: Option<Instant>,
    last_ok: bool,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kids: Vec<String> = self
            .inner
            .keys
            .read()
            .map(|k| k.keys().cloned().collect())
            .unwrap_or_default();
        f.debug_struct("JwtVerifier")
            .field("url", &self.inner.url)
            .field("kids", &kids)
            .finish()
    }
}

impl JwtVerifier {
    /// A verifier that fetches the JWKS from `url` (plain `http://`) on first use, caches it, and
    /// refetches on an unknown `kid` (at most once per 30 s).
    pub fn from_jwks_url(url: impl Into<String>) -> Self {
        JwtVerifier {
            inner: Arc::new(Inner {
                url: Some(url.into()),
                refetch_interval: REFETCH_INTERVAL,
                keys: RwLock::new(HashMap::new()),
                fetch: tokio::sync::Mutex::new(FetchState::default()),
                verified: std::sync::Mutex::new(HashMap::new()),
            }),
        }
    }

    /// A verifier with a fixed key set (never fetches).
    pub fn from_jwks_json(jwks: &Value) -> Result<Self, AuthError> {
        Ok(JwtVerifier {
            inner: Arc::new(Inner {
                url: None,
                refetch_interval: REFETCH_INTERVAL,
                keys: RwLock::new(parse_jwks(jwks)?),
                fetch: tokio::sync::Mutex::new(FetchState::default()),
                verified: std::sync::Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Changes the minimum time between refetches (default 30 s); for tests and tuning.
    pub fn with_refetch_interval(self, interval: Duration) -> Self {
        JwtVerifier {
            inner: Arc::new(Inner {
                url: self.inner.url.clone(),
                refetch_interval: interval,
                keys: RwLock::new(
                    self.inner
                        .keys
                        .read()
                        .map(|k| k.clone())
                        .unwrap_or_default(),
                ),
                fetch: tokio::sync::Mutex::new(FetchState::default()),
                verified: std::sync::Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Checks signature, `exp` (with [`LEEWAY_SECS`]), `iss` and `aud`; returns the claims.
    pub async fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        if let Some(claims) = self.remembered(token) {
            return Ok(claims);
        }
        let (kid, claims) = self.verify_uncached(token).await?;
        if let Ok(mut verified) = self.inner.verified.lock() {
            if verified.len() >= VERIFIED_CACHE_SIZE {
                verified.clear();
            }
            verified.insert(token.to_owned(), (kid, claims.clone()));
        }
        Ok(claims)
    }

    /// Claims of a token verified before and not expired since.
    fn remembered(&self, token: &str) -> Option<Claims> {
        let mut verified = self.inner.verified.lock().ok()?;
        let (kid, claims) = verified.get(token)?;
        let expired = claims.exp + LEEWAY_SECS < chrono::Utc::now().timestamp();
        if expired || self.key(kid).is_none() {
            verified.remove(token);
            return None;
        }
        Some(claims.clone())
    }

    /// Full verification; returns the signing key id with the claims.
    async fn verify_uncached(&self, token: &str) -> Result<(String, Claims), AuthError> {
        let parts = split_token(token)?;
        let key = match self.key(&parts.kid) {
            Some(key) => key,
            None => {
                self.refresh().await?;
                self.key(&parts.kid)
                    .ok_or_else(|| AuthError::UnknownKey(parts.kid.clone()))?
            }
        };
        key.verify_strict(parts.signed.as_bytes(), &parts.signature)
            .map_err(|_| AuthError::BadSignature)?;
        let claims: Claims = serde_json::from_slice(&parts.payload)
            .map_err(|e| AuthError::Malformed(format!("claims: {e}")))?;
        let now = chrono::Utc::now().timestamp();
        if claims.exp + LEEWAY_SECS < now {
            return Err(AuthError::Expired);
        }
        if claims.iat > now + LEEWAY_SECS {
            return Err(AuthError::Malformed("issued in the future".into()));
        }
        if claims.iss != ISSUER {
            return Err(AuthError::WrongIssuer);
        }
        if claims.aud != AUDIENCE {
            return Err(AuthError::WrongAudience);
        }
        Ok((parts.kid, claims))
    }

    fn key(&self, kid: &str) -> Option<VerifyingKey> {
        self.inner.keys.read().ok()?.get(kid).copied()
    }

    /// Refetches the key set unless one was fetched recently. Concurrent callers wait for one
    /// fetch instead of each starting their own.
    async fn refresh(&self) -> Result<(), AuthError> {
        let Some(url) = &self.inner.url else {
            return Ok(());
        };
        let mut state = self.inner.fetch.lock().await;
        if let Some(at) = state.last_attempt {
            let wait = if state.last_ok {
                self.inner.refetch_interval
            } else {
                RETRY_AFTER_FAILURE
            };
            if at.elapsed() < wait {
                return Ok(());
            }
        }
        state.last_attempt = Some(Instant::now());
        state.last_ok = false;
        let jwks = fetch_json(url).await?;
        let keys = parse_jwks(&jwks)?;
        tracing::debug!(url, keys = keys.len(), "fetched JWKS");
        if let Ok(mut current) = self.inner.keys.write() {
            *current = keys;
        }
        state.last_ok = true;
        Ok(())
    }
}

struct TokenParts {
    kid: String,
    signed: String,
    payload: Vec<u8>,
    signature: Signature,
}

fn split_token(token: &str) -> Result<TokenParts, AuthError> {
    let malformed = |what: &str| AuthError::Malformed(what.to_owned());
    let mut it = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err(malformed("expected three dot-separated parts"));
    };
    let header: Value = URL_SAFE_NO_PAD
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| malformed("header is not base64url JSON"))?;
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    if alg != "EdDSA" {
        return Err(AuthError::Algorithm(alg.to_owned()));
    }
    let kid = header
        .get("kid")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("header has no kid"))?
        .to_owned();
    let payload = URL_SAFE_NO_PAD
        .decode(p)
        .map_err(|_| malformed("payload is not base64url"))?;
    let signature = URL_SAFE_NO_PAD
        .decode(s)
        .ok()
        .and_then(|b| Signature::from_slice(&b).ok())
        .ok_or_else(|| malformed("signature is not a base64url Ed25519 signature"))?;
    Ok(TokenParts {
        kid,
        signed: format!("{h}.{p}"),
        payload,
        signature,
    })
}

/// Ed25519 keys of a JWKS document by `kid`; other key types are skipped.
fn parse_jwks(jwks: &Value) -> Result<HashMap<String, VerifyingKey>, AuthError> {
    let keys = jwks
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| AuthError::Jwks("document has no `keys` array".into()))?;
    let mut out = HashMap::new();
    for jwk in keys {
        let field = |name: &str| jwk.get(name).and_then(Value::as_str);
        if field("kty") != Some("OKP") || field("crv") != Some("Ed25519") {
            continue;
        }
        let (Some(kid), Some(x)) = (field("kid"), field("x")) else {
            return Err(AuthError::Jwks("Ed25519 key without kid or x".into()));
        };
        let bytes: [u8; 32] = URL_SAFE_NO_PAD
            .decode(x)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| AuthError::Jwks(format!("key `{kid}`: x is not 32 base64url bytes")))?;
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|e| AuthError::Jwks(format!("key `{kid}`: {e}")))?;
        out.insert(kid.to_owned(), key);
    }
    Ok(out)
}

async fn fetch_json(url: &str) -> Result<Value, AuthError> {
    use http_body_util::{BodyExt, Empty, Limited};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let err = |what: String| AuthError::Jwks(format!("{url}: {what}"));
    let uri: hyper::Uri = url.parse().map_err(|e| err(format!("bad URL: {e}")))?;
    if uri.scheme_str() != Some("http") {
        // No TLS stack in the kit: JWKS is fetched from the auth service on the private network.
        return Err(err("only http:// JWKS URLs are supported".into()));
    }
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    let request = hyper::Request::get(uri)
        .header(hyper::header::ACCEPT, "application/json")
        .body(Empty::new())
        .map_err(|e| err(e.to_string()))?;
    let work = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| err(e.to_string()))?;
        if !response.status().is_success() {
            return Err(err(format!("HTTP {}", response.status())));
        }
        let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
            .collect()
            .await
            .map_err(|e| err(e.to_string()))?
            .to_bytes();
        serde_json::from_slice(&body).map_err(|e| err(format!("not JSON: {e}")))
    };
    tokio::time::timeout(FETCH_TIMEOUT, work)
        .await
        .map_err(|_| err("timed out".into()))?
}

/// An Ed25519 signing key with its `kid`: issues access tokens.
#[derive(Clone)]
pub struct JwtSigner {
    kid: String,
    key: SigningKey,
}

impl fmt::Debug for JwtSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtSigner")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl JwtSigner {
    /// A signer from a 32-byte Ed25519 seed.
    pub fn from_seed(kid: impl Into<String>, seed: [u8; 32]) -> Self {
        JwtSigner {
            kid: kid.into(),
            key: SigningKey::from_bytes(&seed),
        }
    }

    /// A signer with a fresh random key.
    pub fn generate(kid: impl Into<String>) -> Self {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).expect("the OS random source is available");
        Self::from_seed(kid, seed)
    }

    /// The key id put in token headers.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The 32-byte seed (to persist the key).
    pub fn seed(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The public key as a JWK (`kty: OKP, crv: Ed25519, alg: EdDSA, use: sig`).
    pub fn jwk(&self) -> Value {
        json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "alg": "EdDSA",
            "use": "sig",
            "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(self.key.verifying_key().as_bytes()),
        })
    }

    /// A compact JWS (`header.payload.signature`) of `claims`.
    pub fn sign(&self, claims: &Claims) -> String {
        let header = json!({ "alg": "EdDSA", "typ": "JWT", "kid": self.kid });
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialize")),
        );
        let signature = self.key.sign(signed.as_bytes());
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
    }
}

/// A JWKS document (`{"keys": [...]}`) with the public keys of `signers`.
pub fn jwks(signers: &[JwtSigner]) -> Value {
    json!({ "keys": signers.iter().map(JwtSigner::jwk).collect::<Vec<_>>() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> JwtSigner {
        JwtSigner::from_seed("k1", [7; 32])
    }

    fn verifier(signers: &[JwtSigner]) -> JwtVerifier {
        JwtVerifier::from_jwks_json(&jwks(signers)).unwrap()
    }

    fn claims() -> Claims {
        Claims::new("0190-member", "ada", Duration::from_secs(900))
    }

    #[tokio::test]
    async fn valid_token_verifies() {
        let token = signer().sign(&claims());
        let got = verifier(&[signer()]).verify(&token).await.unwrap();
        assert_eq!(got.sub, "0190-member");
        assert_eq!(got.handle, "ada");
    }

    #[tokio::test]
    async fn tampered_payload_fails_signature() {
        let token = signer().sign(&claims());
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut forged = claims();
        forged.sub = "someone-else".into();
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        let err = verifier(&[signer()])
            .verify(&parts.join("."))
            .await
            .unwrap_err();
        assert_eq!(err, AuthError::BadSignature);
    }

    #[tokio::test]
    async fn wrong_key_with_same_kid_fails() {
        let impostor = JwtSigner::from_seed("k1", [8; 32]);
        let err = verifier(&[signer()])
            .verify(&impostor.sign(&claims()))
            .await
            .unwrap_err();
        assert_eq!(err, AuthError::BadSignature);
    }

    #[tokio::test]
    async fn unknown_kid_is_rejected_without_url() {
        let other = JwtSigner::from_seed("k2", [7; 32]);
        let err = verifier(&[signer()])
            .verify(&other.sign(&claims()))
            .await
            .unwrap_err();
        assert_eq!(err, AuthError::UnknownKey("k2".into()));
    }

    #[tokio::test]
    async fn expiry_issuer_audience_are_checked() {
        let v = verifier(&[signer()]);
        let mut c = claims();
        c.exp = chrono::Utc::now().timestamp() - LEEWAY_SECS - 5;
        assert_eq!(
            v.verify(&signer().sign(&c)).await.unwrap_err(),
            AuthError::Expired
        );
        // Within the leeway: still accepted (clock skew between services).
        c.exp = chrono::Utc::now().timestamp() - 5;
        assert!(v.verify(&signer().sign(&c)).await.is_ok());
        let mut c = claims();
        c.aud = "elsewhere".into();
        assert_eq!(
            v.verify(&signer().sign(&c)).await.unwrap_err(),
            AuthError::WrongAudience
        );
        let mut c = claims();
        c.iss = "mallory".into();
        assert_eq!(
            v.verify(&signer().sign(&c)).await.unwrap_err(),
            AuthError::WrongIssuer
        );
    }

    #[tokio::test]
    async fn other_algorithms_and_garbage_are_rejected() {
        let v = verifier(&[signer()]);
        let token = signer().sign(&claims());
        let (_, rest) = token.split_once('.').unwrap();
        let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"k1"}"#);
        assert_eq!(
            v.verify(&format!("{none_header}.{rest}"))
                .await
                .unwrap_err(),
            AuthError::Algorithm("none".into())
        );
        for garbage in ["", "a.b", "a.b.c.d", "!!.??.**"] {
            assert!(matches!(
                v.verify(garbage).await.unwrap_err(),
                AuthError::Malformed(_) | AuthError::Algorithm(_)
            ));
        }
    }

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(
            BearerToken::from_header_value("Bearer abc"),
            Some(BearerToken("abc".into()))
        );
        assert_eq!(
            BearerToken::from_header_value("bearer  abc "),
            Some(BearerToken("abc".into()))
        );
        assert_eq!(BearerToken::from_header_value("Basic abc"), None);
        assert_eq!(BearerToken::from_header_value("Bearer "), None);
        assert_eq!(BearerToken::from_header_value("abc"), None);
    }

    #[test]
    fn jwks_skips_foreign_keys_and_rejects_bad_ones() {
        let doc = json!({ "keys": [
            { "kty": "RSA", "kid": "rsa", "n": "x", "e": "AQAB" },
            signer().jwk(),
        ]});
        assert_eq!(parse_jwks(&doc).unwrap().len(), 1);
        let bad = json!({ "keys": [{ "kty": "OKP", "crv": "Ed25519", "kid": "b", "x": "AAAA" }] });
        assert!(matches!(parse_jwks(&bad), Err(AuthError::Jwks(_))));
        assert!(matches!(parse_jwks(&json!({})), Err(AuthError::Jwks(_))));
    }
}
