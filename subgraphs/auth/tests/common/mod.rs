//! Helpers for the auth service tests: a service on a temp data dir (SQLite) or a throwaway
//! PostgreSQL database, and a small GraphQL client over the schema.
#![allow(dead_code)]

use async_graphql::{Request, Variables};
use serde_json::{json, Value};
use switchyard_auth::{Config, Service};

use switchyard_subgraph_kit::auth::BearerToken;
use switchyard_subgraph_kit::EventBus;

/// A config on `dir` with a cheap argon2 cost (debug builds make the real cost slow).
pub fn config(dir: &std::path::Path) -> Config {
    Config {
        data_dir: dir.to_path_buf(),
        argon2_memory_kib: 1024,
        argon2_iterations: 1,
        ..Config::default()
    }
}

/// A service on a fresh SQLite data dir.
pub async fn sqlite_service() -> (tempfile::TempDir, Service) {
    let dir = tempfile::tempdir().unwrap();
    let service = Service::open(config(dir.path()), EventBus::in_process())
        .await
        .unwrap();
    (dir, service)
}

/// Runs a GraphQL operation; returns the response as JSON (`data` and `errors`).
pub async fn gql(service: &Service, token: Option<&str>, query: &str, variables: Value) -> Value {
    let mut request = Request::new(query).variables(Variables::from_json(variables));
    if let Some(t) = token {
        request = request.data(BearerToken(t.to_owned()));
    }
    let response = service.schema().execute(request).await;
    serde_json::to_value(&response).unwrap()
}

/// The first error's `extensions.code`.
pub fn code(response: &Value) -> &str {
    response["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error, got {response}"))
}

pub const PAYLOAD: &str =
    "accessToken refreshToken expiresAt account { id email phone handle createdAt member { id } }";

pub async fn sign_up(
    service: &Service,
    email: &str,
    handle: &str,
    password: &str,
    phone: Option<&str>,
) -> Value {
    gql(
        service,
        None,
        &format!(
            "mutation($e: String!, $p: String!, $h: String!, $ph: String) {{
                signUp(email: $e, password: $p, handle: $h, displayName: \"Test Person\", phone: $ph) {{ {PAYLOAD} }}
            }}"
        ),
        json!({"e": email, "p": password, "h": handle, "ph": phone}),
    )
    .await
}

pub async fn log_in(service: &Service, email: &str, password: &str) -> Value {
    gql(
        service,
        None,
        &format!("mutation($e: String!, $p: String!) {{ logIn(email: $e, password: $p) {{ {PAYLOAD} }} }}"),
        json!({"e": email, "p": password}),
    )
    .await
}

pub async fn refresh(service: &Service, token: &str) -> Value {
    gql(
        service,
        None,
        &format!("mutation($t: String!) {{ refresh(refreshToken: $t) {{ {PAYLOAD} }} }}"),
        json!({"t": token}),
    )
    .await
}

pub async fn me(service: &Service, token: Option<&str>) -> Value {
    gql(
        service,
        token,
        "{ me { id email phone handle } }",
        json!({}),
    )
    .await
}

/// A throwaway PostgreSQL database; drop it with `drop_now`.
pub type PgDatabase = switchyard_subgraph_kit::testing::TestDatabase;

/// Creates a fresh database, or `None` (skip) when PostgreSQL is unreachable.
pub async fn postgres() -> Option<PgDatabase> {
    PgDatabase::create("switchyard_auth_test_").await
}

/// The whole session life cycle; shared with the PostgreSQL test.
pub async fn core_flow(service: &Service) {
    let up = sign_up(
        service,
        "  Ada@Example.COM ",
        "ada",
        "correct horse",
        Some("+1 555 0100"),
    )
    .await;
    assert!(up.get("errors").is_none(), "{up}");
    let up = &up["data"]["signUp"];
    let id = up["account"]["id"].as_str().unwrap().to_owned();
    assert_eq!(up["account"]["email"], "ada@example.com");
    assert_eq!(up["account"]["phone"], "+1 555 0100");
    assert_eq!(up["account"]["handle"], "ada");
    assert_eq!(up["account"]["member"]["id"], id.as_str());
    uuid::Uuid::parse_str(&id).expect("account ids are UUIDs");

    let login = log_in(service, "ADA@example.com", "correct horse").await;
    let login = &login["data"]["logIn"];
    assert_eq!(login["account"]["id"], id.as_str());
    let access = login["accessToken"].as_str().unwrap().to_owned();
    let refresh1 = login["refreshToken"].as_str().unwrap().to_owned();
    let expires: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(login["expiresAt"].clone()).unwrap();
    let ttl = expires - chrono::Utc::now();
    assert!(ttl > chrono::Duration::minutes(14) && ttl <= chrono::Duration::minutes(15));

    let who = me(service, Some(&access)).await;
    assert_eq!(
        who,
        json!({"data": {"me": {"id": id, "email": "ada@example.com", "phone": "+1 555 0100", "handle": "ada"}}})
    );
    assert_eq!(me(service, None).await, json!({"data": {"me": null}}));
    assert_eq!(code(&me(service, Some("garbage")).await), "UNAUTHENTICATED");

    // Refresh rotates: new tokens, the old refresh token is used up.
    let r = refresh(service, &refresh1).await;
    let refresh2 = r["data"]["refresh"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(refresh2, refresh1);
    let access2 = r["data"]["refresh"]["accessToken"].as_str().unwrap();
    assert_eq!(
        me(service, Some(access2)).await["data"]["me"]["id"],
        id.as_str()
    );
    // Presenting the used token again: refused, and the whole family is revoked (theft).
    let replay = refresh(service, &refresh1).await;
    assert_eq!(code(&replay), "UNAUTHENTICATED");
    assert!(replay["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("already used"));
    assert_eq!(code(&refresh(service, &refresh2).await), "UNAUTHENTICATED");

    // A second login is a separate family: unaffected by the first one's revocation.
    let login2 = log_in(service, "ada@example.com", "correct horse").await;
    let refresh3 = login2["data"]["logIn"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = refresh(service, &refresh3).await;
    let refresh4 = r["data"]["refresh"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();

    // logOut revokes the family.
    let out = gql(
        service,
        None,
        "mutation($t: String!) { logOut(refreshToken: $t) }",
        json!({"t": refresh4}),
    )
    .await;
    assert_eq!(out, json!({"data": {"logOut": true}}));
    assert_eq!(code(&refresh(service, &refresh4).await), "UNAUTHENTICATED");
    let out = gql(
        service,
        None,
        "mutation { logOut(refreshToken: \"never-issued\") }",
        json!({}),
    )
    .await;
    assert_eq!(out, json!({"data": {"logOut": false}}));
    assert_eq!(
        code(&refresh(service, "never-issued").await),
        "UNAUTHENTICATED"
    );

    // Deleting needs a token and the password.
    let del = "mutation($p: String!) { deleteAccount(password: $p) }";
    assert_eq!(
        code(&gql(service, None, del, json!({"p": "correct horse"})).await),
        "UNAUTHENTICATED"
    );
    assert_eq!(
        code(&gql(service, Some(&access), del, json!({"p": "wrong password"})).await),
        "INVALID_CREDENTIALS"
    );
    let login3 = log_in(service, "ada@example.com", "correct horse").await;
    let refresh5 = login3["data"]["logIn"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        gql(service, Some(&access), del, json!({"p": "correct horse"})).await,
        json!({"data": {"deleteAccount": true}})
    );
    assert_eq!(
        me(service, Some(&access)).await,
        json!({"data": {"me": null}})
    );
    assert_eq!(
        code(&log_in(service, "ada@example.com", "correct horse").await),
        "INVALID_CREDENTIALS"
    );
    assert_eq!(code(&refresh(service, &refresh5).await), "UNAUTHENTICATED");
    // The email and handle are free again.
    let again = sign_up(service, "ada@example.com", "ada", "another password", None).await;
    assert!(again.get("errors").is_none(), "{again}");
    assert_ne!(again["data"]["signUp"]["account"]["id"], id.as_str());
}

/// The log-in mutation with the email and password as `$e` and `$p`.
pub const LOG_IN: &str =
    "mutation($e: String!, $p: String!) { logIn(email: $e, password: $p) { accessToken } }";

/// Runs an operation as the kit would for a client at `client`.
pub async fn gql_from(service: &Service, client: &str, query: &str, variables: Value) -> Value {
    let client: std::net::IpAddr = client.parse().unwrap();
    let request = Request::new(query)
        .variables(Variables::from_json(variables))
        .data(switchyard_subgraph_kit::ClientAddress(client));
    serde_json::to_value(service.schema().execute(request).await).unwrap()
}

/// Logs in as `email` from the client address `client`.
pub async fn log_in_from(service: &Service, client: &str, email: &str, password: &str) -> Value {
    gql_from(service, client, LOG_IN, json!({"e": email, "p": password})).await
}

/// A service on a fresh SQLite data dir with `config` applied to the test config.
pub async fn service_with(config: impl FnOnce(&mut Config)) -> (tempfile::TempDir, Service) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = self::config(dir.path());
    config(&mut c);
    let service = Service::open(c, EventBus::in_process()).await.unwrap();
    (dir, service)
}
