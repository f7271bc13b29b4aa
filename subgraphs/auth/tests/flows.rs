//! The auth service on SQLite: sessions, validation, PII at rest, key rotation, the outbox, and
//! the JWKS over HTTP.

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap is the test failing, at that line"
)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use sqlx::Row;
use switchyard_auth::{Config, Service};
use switchyard_subgraph_kit::auth::JwtVerifier;
use switchyard_subgraph_kit::events::outbox;
use switchyard_subgraph_kit::EventBus;

#[tokio::test]
async fn session_life_cycle_on_sqlite() {
    let (_dir, service) = sqlite_service().await;
    core_flow(&service).await;
}

#[tokio::test]
async fn duplicates_and_bad_input_are_clear_errors() {
    let (_dir, service) = sqlite_service().await;
    let ok = sign_up(&service, "bob@example.com", "bob", "password1", None).await;
    assert!(ok.get("errors").is_none(), "{ok}");
    assert_eq!(ok["data"]["signUp"]["account"]["phone"], Value::Null);

    let dup = sign_up(&service, " BOB@example.com", "bob2", "password1", None).await;
    assert_eq!(code(&dup), "EMAIL_TAKEN");
    let dup = sign_up(&service, "bob2@example.com", "bob", "password1", None).await;
    assert_eq!(code(&dup), "HANDLE_TAKEN");

    for (email, handle, password, phone) in [
        ("not-an-email", "carl", "password1", None),
        ("carl@example.com", "Carl", "password1", None),
        ("carl@example.com", "ca", "password1", None),
        ("carl@example.com", "carl-x", "password1", None),
        ("carl@example.com", "carl", "short", None),
        (
            "carl@example.com",
            "carl",
            "password1",
            Some("call me maybe"),
        ),
    ] {
        let r = sign_up(&service, email, handle, password, phone).await;
        assert_eq!(
            code(&r),
            "BAD_USER_INPUT",
            "{email} {handle} {password}: {r}"
        );
        assert!(r["data"].is_null());
    }
    let r = gql(
        &service,
        None,
        "mutation { signUp(email: \"d@example.com\", password: \"password1\", handle: \"dee\", displayName: \"  \") { accessToken } }",
        json!({}),
    )
    .await;
    assert_eq!(code(&r), "BAD_USER_INPUT");
}

#[tokio::test]
async fn wrong_password_and_unknown_email_look_the_same() {
    let (_dir, service) = sqlite_service().await;
    sign_up(&service, "eve@example.com", "eve", "password1", None).await;
    let wrong = log_in(&service, "eve@example.com", "password2").await;
    let unknown = log_in(&service, "nobody@example.com", "password1").await;
    let malformed = log_in(&service, "nobody", "password1").await;
    assert_eq!(code(&wrong), "INVALID_CREDENTIALS");
    assert_eq!(
        wrong["errors"][0]["message"],
        unknown["errors"][0]["message"]
    );
    assert_eq!(
        wrong["errors"][0]["message"],
        malformed["errors"][0]["message"]
    );
}

/// Reads every file of the SQLite database (main, WAL, shared memory).
fn database_bytes(config: &Config) -> Vec<u8> {
    let mut bytes = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let path = format!("{}{suffix}", config.sqlite_path().display());
        if let Ok(b) = std::fs::read(&path) {
            bytes.extend(b);
        }
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Every value of every column of every table, as text.
async fn all_text(pool: &sqlx::AnyPool) -> Vec<String> {
    let tables: Vec<String> = sqlx::query("SELECT name FROM sqlite_master WHERE type = 'table'")
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(tables.iter().any(|t| t == "auth_accounts"), "{tables:?}");
    let mut values = Vec::new();
    for table in tables {
        let columns: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT name FROM pragma_table_info('{table}')"
        )))
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
        for column in columns {
            // Table and column names come from the catalogue, not input.
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT CAST({column} AS TEXT) FROM {table}"
            )))
            .fetch_all(pool)
            .await
            .unwrap();
            values.extend(rows.iter().filter_map(|r| r.get::<Option<String>, _>(0)));
        }
    }
    values
}

#[tokio::test]
async fn no_plaintext_email_or_phone_at_rest() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::config(dir.path());
    let service = Service::open(config.clone(), EventBus::in_process())
        .await
        .unwrap();
    let email = "zelda.pii-probe@example.org";
    let phone = "+44 20 7946 0958";
    let r = sign_up(
        &service,
        "Zelda.PII-Probe@Example.org",
        "zelda",
        "password1",
        Some(phone),
    )
    .await;
    assert!(r.get("errors").is_none(), "{r}");
    log_in(&service, email, "password1").await;

    let values = all_text(service.pool()).await;
    assert!(values.len() > 10, "the scan read the tables: {values:?}");
    assert!(
        values.iter().any(|v| v == "zelda"),
        "handles are stored in clear"
    );
    for v in &values {
        let lower = v.to_lowercase();
        assert!(
            !lower.contains("pii-probe"),
            "plaintext email in a column: {v}"
        );
        // The phone's digits in any formatting ("+44 20 7946 0958", "+442079460958", ...);
        // a shorter probe ("7946") also matched time-based account ids now and then.
        let digits: String = v.chars().filter(char::is_ascii_digit).collect();
        assert!(
            !digits.contains("2079460958"),
            "plaintext phone in a column: {v}"
        );
    }
    service.pool().close().await;
    let bytes = database_bytes(&config);
    assert!(bytes.len() > 4096);
    assert!(contains(&bytes, "zelda"), "the file scan sees clear text");
    for needle in [email, "Zelda.PII-Probe", "pii-probe", phone, "7946 0958"] {
        assert!(
            !contains(&bytes, needle),
            "{needle:?} found in the database files"
        );
    }
}

#[tokio::test]
async fn rotate_keys_reencrypts_and_logins_still_work() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::config(dir.path());
    let service = Service::open(config.clone(), EventBus::in_process())
        .await
        .unwrap();
    for (i, phone) in [Some("+1 555 0101"), None, Some("+1 555 0103")]
        .into_iter()
        .enumerate()
    {
        let r = sign_up(
            &service,
            &format!("user{i}@example.com"),
            &format!("user{i}"),
            "password1",
            phone,
        )
        .await;
        assert!(r.get("errors").is_none(), "{r}");
    }
    let old_keys = key_ids(service.pool()).await;
    assert_eq!(old_keys.len(), 1, "{old_keys:?}");
    service.pool().close().await;
    drop(service);

    let report = switchyard_auth::rotate_keys(&config, true, 2)
        .await
        .unwrap();
    assert_eq!(
        (report.rows, report.emails, report.phones, report.failed),
        (3, 3, 2, 0)
    );
    // Idempotent: nothing left under the old key.
    let again = switchyard_auth::rotate_keys(&config, false, 2)
        .await
        .unwrap();
    assert_eq!(again, switchyard_auth::RotationReport::default());

    let service = Service::open(config.clone(), EventBus::in_process())
        .await
        .unwrap();
    let new_keys = key_ids(service.pool()).await;
    assert_eq!(new_keys.len(), 1);
    assert_ne!(new_keys, old_keys);
    for i in 0..3 {
        let login = log_in(&service, &format!("user{i}@example.com"), "password1").await;
        assert!(login.get("errors").is_none(), "{login}");
        let token = login["data"]["logIn"]["accessToken"].as_str().unwrap();
        assert_eq!(
            me(&service, Some(token)).await["data"]["me"]["email"],
            format!("user{i}@example.com")
        );
    }
    let me0 = log_in(&service, "user0@example.com", "password1").await;
    assert_eq!(me0["data"]["logIn"]["account"]["phone"], "+1 555 0101");
    // New sign-ups use the new key too.
    sign_up(
        &service,
        "user9@example.com",
        "user9",
        "password1",
        Some("+1 555 0109"),
    )
    .await;
    assert_eq!(key_ids(service.pool()).await, new_keys);
}

/// Distinct key ids in use across email and phone columns.
async fn key_ids(pool: &sqlx::AnyPool) -> Vec<String> {
    let mut ids: Vec<String> = sqlx::query(
        "SELECT email_key_id FROM auth_accounts
         UNION SELECT phone_key_id FROM auth_accounts WHERE phone_key_id IS NOT NULL",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn account_events_go_through_the_outbox_with_the_change() {
    let (_dir, service) = sqlite_service().await;
    let r = sign_up(&service, "fay@example.com", "fay", "password1", None).await;
    let id = r["data"]["signUp"]["account"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let events = outbox::unpublished(service.pool(), 100).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type, "account.created");
    assert_eq!(events[0].aggregate_id, id);
    assert_eq!(
        events[0].payload,
        json!({"accountId": id, "memberId": id, "handle": "fay", "displayName": "Test Person"})
    );

    // Failed sign-ups leave no event (nor an account).
    assert_eq!(
        code(&sign_up(&service, "fay@example.com", "fay2", "password1", None).await),
        "EMAIL_TAKEN"
    );
    assert_eq!(
        code(&sign_up(&service, "fay2@example.com", "fay", "password1", None).await),
        "HANDLE_TAKEN"
    );
    assert_eq!(
        code(&sign_up(&service, "fay3@example.com", "fay3", "short", None).await),
        "BAD_USER_INPUT"
    );
    assert_eq!(
        outbox::unpublished(service.pool(), 100)
            .await
            .unwrap()
            .len(),
        1
    );
    let accounts: i64 = sqlx::query("SELECT COUNT(*) FROM auth_accounts")
        .fetch_one(service.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(accounts, 1);

    // Deletion: account.deleted; a refused deletion emits nothing.
    let token = r["data"]["signUp"]["accessToken"].as_str().unwrap();
    let del = "mutation($p: String!) { deleteAccount(password: $p) }";
    gql(&service, Some(token), del, json!({"p": "nope-nope"})).await;
    assert_eq!(
        outbox::unpublished(service.pool(), 100)
            .await
            .unwrap()
            .len(),
        1
    );
    gql(&service, Some(token), del, json!({"p": "password1"})).await;
    // The announcement (handle and display name in clear) goes with the account: consumers
    // see only the deletion.
    let events = outbox::unpublished(service.pool(), 100).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type, "account.deleted");
    assert_eq!(events[0].payload, json!({"accountId": id, "memberId": id}));
}

async fn http(method: &str, url: &str, token: Option<&str>, body: Option<Value>) -> (u16, String) {
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut builder = http::Request::builder().method(method).uri(url);
    if let Some(t) = token {
        builder = builder.header("authorization", format!("Bearer {t}"));
    }
    let body = match body {
        Some(v) => {
            builder = builder.header("content-type", "application/json");
            Full::new(Bytes::from(v.to_string()))
        }
        None => Full::new(Bytes::new()),
    };
    let response = client.request(builder.body(body).unwrap()).await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test]
async fn served_jwks_verifies_issued_tokens_and_events_reach_the_bus() {
    let dir = tempfile::tempdir().unwrap();
    let bus = EventBus::in_process();
    let mut subscription = bus.subscribe("profile").await.unwrap();
    // A poll interval far beyond the waits below: only the wake-up on commit can deliver in time.
    let config = Config {
        outbox_poll_interval_ms: 600_000,
        ..common::config(dir.path())
    };
    let service = Service::open(config, bus).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let serving = tokio::spawn(service.serve(listener, shutdown.clone()));
    let base = format!("http://{addr}");

    assert_eq!(
        http("GET", &format!("{base}/ready"), None, None).await,
        (200, "ready".into())
    );
    let (status, jwks) = http("GET", &format!("{base}/.well-known/jwks.json"), None, None).await;
    assert_eq!(status, 200);
    let jwks: Value = serde_json::from_str(&jwks).unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(
        (key["kty"].as_str(), key["crv"].as_str()),
        (Some("OKP"), Some("Ed25519"))
    );
    assert_eq!(
        (key["alg"].as_str(), key["use"].as_str()),
        (Some("EdDSA"), Some("sig"))
    );

    let (status, body) = http(
        "POST",
        &format!("{base}/graphql"),
        None,
        Some(json!({"query": "mutation { signUp(email: \"gil@example.com\", password: \"password1\", handle: \"gil\", displayName: \"Gil\") { accessToken account { id } } }"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    let token = body["data"]["signUp"]["accessToken"].as_str().unwrap();
    let id = body["data"]["signUp"]["account"]["id"].as_str().unwrap();

    // What every other service does with the token.
    let verifier = JwtVerifier::from_jwks_url(format!("{base}/.well-known/jwks.json"));
    let claims = verifier.verify(token).await.unwrap();
    assert_eq!((claims.sub.as_str(), claims.handle.as_str()), (id, "gil"));
    assert_eq!(
        (claims.iss.as_str(), claims.aud.as_str()),
        ("switchyard-auth", "switchyard")
    );
    assert_eq!(claims.exp - claims.iat, 900);

    let (_, body) = http(
        "POST",
        &format!("{base}/graphql"),
        Some(token),
        Some(json!({"query": "{ me { handle } }"})),
    )
    .await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"data": {"me": {"handle": "gil"}}})
    );

    // The relay is woken on commit (it would otherwise not look for ten minutes).
    let batch = subscription
        .next_batch(10, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0].event.event_type, "account.created");
    assert_eq!(batch[0].event.aggregate_id, id);

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn production_argon2_cost_works() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    let service = Service::open(config, EventBus::in_process()).await.unwrap();
    let r = sign_up(&service, "hal@example.com", "hal", "password1", None).await;
    assert!(r.get("errors").is_none(), "{r}");
    let hash: String = sqlx::query("SELECT password_hash FROM auth_accounts")
        .fetch_one(service.pool())
        .await
        .unwrap()
        .get(0);
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert!(!hash.contains("password1"));
    assert!(log_in(&service, "hal@example.com", "password1")
        .await
        .get("errors")
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_races_have_one_winner() {
    let (_dir, service) = sqlite_service().await;
    let service = std::sync::Arc::new(service);

    // Five sign-ups with one email: one account, the rest EMAIL_TAKEN (the unique index decides).
    let attempts = futures_join(
        (0..5)
            .map(|i| {
                let s = service.clone();
                async move {
                    sign_up(
                        &s,
                        "race@example.com",
                        &format!("racer{i}"),
                        "password1",
                        None,
                    )
                    .await
                }
            })
            .collect(),
    )
    .await;
    let winners = attempts
        .iter()
        .filter(|r| r.get("errors").is_none())
        .count();
    assert_eq!(winners, 1, "{attempts:?}");
    assert!(attempts
        .iter()
        .filter(|r| r.get("errors").is_some())
        .all(|r| code(r) == "EMAIL_TAKEN"));

    // Five concurrent refreshes of one token: at most one succeeds, and since the token was
    // presented more than once, the family ends up revoked.
    let login = log_in(&service, "race@example.com", "password1").await;
    let token = login["data"]["logIn"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let attempts = futures_join(
        (0..5)
            .map(|_| {
                let s = service.clone();
                let t = token.clone();
                async move { refresh(&s, &t).await }
            })
            .collect(),
    )
    .await;
    let successes: Vec<&Value> = attempts
        .iter()
        .filter(|r| r.get("errors").is_none())
        .collect();
    assert!(successes.len() <= 1, "{attempts:?}");
    for r in attempts.iter().filter(|r| r.get("errors").is_some()) {
        assert_eq!(code(r), "UNAUTHENTICATED");
    }
    if let Some(winner) = successes.first() {
        let new_token = winner["data"]["refresh"]["refreshToken"].as_str().unwrap();
        assert_eq!(code(&refresh(&service, new_token).await), "UNAUTHENTICATED");
    }
}

/// Runs the futures concurrently on the runtime's workers.
async fn futures_join<F>(futures: Vec<F>) -> Vec<Value>
where
    F: std::future::Future<Output = Value> + Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn expired_refresh_tokens_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        refresh_token_ttl_secs: 1,
        ..common::config(dir.path())
    };
    let service = Service::open(config, EventBus::in_process()).await.unwrap();
    let up = sign_up(&service, "ivy@example.com", "ivy", "password1", None).await;
    let token = up["data"]["signUp"]["refreshToken"].as_str().unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = refresh(&service, token).await;
    assert_eq!(code(&r), "UNAUTHENTICATED");
    assert!(r["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("expired"));
}

#[tokio::test]
async fn expired_refresh_tokens_are_pruned_with_their_families() {
    use switchyard_auth::store::{now_micros, prune_expired_refresh_tokens};
    let (_dir, service) = common::sqlite_service().await;
    let signed_up =
        common::sign_up(&service, "prune@example.com", "prune", "long enough", None).await;
    let refresh = signed_up["data"]["signUp"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let rows = |table: &'static str| {
        let pool = service.pool().clone();
        async move {
            sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*) FROM {table}"
            )))
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    assert_eq!(rows("auth_refresh_tokens").await, 1);

    // Nothing is due yet.
    assert_eq!(
        prune_expired_refresh_tokens(service.pool(), now_micros())
            .await
            .unwrap(),
        0
    );
    let still_valid = common::refresh(&service, &refresh).await;
    assert!(still_valid["errors"].is_null(), "{still_valid}");

    // A month on, both tokens of the session (the used one and its successor) have expired.
    let month_later = now_micros() + 31 * 24 * 3600 * 1_000_000;
    assert_eq!(
        prune_expired_refresh_tokens(service.pool(), month_later)
            .await
            .unwrap(),
        2
    );
    assert_eq!(rows("auth_refresh_tokens").await, 0);
    assert_eq!(rows("auth_refresh_families").await, 0);
}

#[tokio::test]
async fn accounts_from_before_the_member_directories_are_announced_once() {
    let (dir, service) = sqlite_service().await;
    let r = sign_up(&service, "gus@example.com", "gus", "password1", None).await;
    let id = r["data"]["signUp"]["account"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A new database has nothing to announce: only the sign-up's own event.
    assert_eq!(
        outbox::unpublished(service.pool(), 100)
            .await
            .unwrap()
            .len(),
        1
    );
    // A database from before the step: the account is announced again at the next start...
    sqlx::query("DELETE FROM auth_data_steps")
        .execute(service.pool())
        .await
        .unwrap();
    drop(service);
    let service = Service::open(config(dir.path()), EventBus::in_process())
        .await
        .unwrap();
    let events = outbox::unpublished(service.pool(), 100).await.unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[1].event_type, "account.created");
    assert_eq!(
        events[1].payload,
        json!({"accountId": id, "memberId": id, "handle": "gus", "reannounced": true})
    );
    // ...and only once.
    drop(service);
    let service = Service::open(config(dir.path()), EventBus::in_process())
        .await
        .unwrap();
    assert_eq!(
        outbox::unpublished(service.pool(), 100)
            .await
            .unwrap()
            .len(),
        2
    );
}

#[cfg(unix)]
#[tokio::test]
async fn secrets_can_live_apart_from_the_data_and_files_are_the_owners_only() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let data = tempfile::tempdir().unwrap();
    let secrets = tempfile::tempdir().unwrap();
    let keys = secrets.path().join("auth-keys");
    let config = Config {
        secrets_dir: Some(keys.clone()),
        ..common::config(data.path())
    };
    let service = Service::open(config.clone(), EventBus::in_process())
        .await
        .unwrap();
    let up = sign_up(&service, "kim@example.com", "kim", "password1", None).await;
    assert!(up.get("errors").is_none(), "{up}");
    assert!(!data.path().join("secrets").exists());
    assert_eq!(mode(&keys), 0o700);
    for file in ["data_keys", "hash_key", "jwt_signing_keys"] {
        assert_eq!(mode(&keys.join(file)), 0o600, "{file}");
    }
    for file in ["auth.db", "auth.db-wal", "auth.db-shm"] {
        assert_eq!(mode(&data.path().join(file)), 0o600, "{file}");
    }
    // The same keys are found again at the next start.
    service.pool().close().await;
    drop(service);
    let again = Service::open(config, EventBus::in_process()).await.unwrap();
    let login = log_in(&again, "kim@example.com", "password1").await;
    assert!(login.get("errors").is_none(), "{login}");
}
