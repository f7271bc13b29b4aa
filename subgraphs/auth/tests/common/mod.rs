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

/// Fails (under CI) or skips with a notice when a server is unreachable.
pub fn unavailable<T>(what: &str, error: impl std::fmt::Display) -> Option<T> {
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{what} is required under CI but unreachable: {error}");
    }
    let notice = format!("\nSKIPPED: {what} unreachable ({error})\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), notice.as_bytes());
    None
}

/// A throwaway PostgreSQL database; drop it with [`PgDatabase::drop_now`].
pub struct PgDatabase {
    admin: sqlx::AnyPool,
    name: String,
    pub url: String,
}

/// Creates a fresh database, or `None` (skip) when PostgreSQL is unreachable.
pub async fn postgres() -> Option<PgDatabase> {
    let admin_url = std::env::var("SWITCHYARD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    sqlx::any::install_default_drivers();
    let admin = match sqlx::any::AnyPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(std::time::Duration::from_secs(3))
        .connect(&admin_url)
        .await
    {
        Ok(pool) => pool,
        Err(e) => return unavailable("PostgreSQL", e),
    };
    sweep_abandoned(&admin).await;
    let name = format!("{PG_PREFIX}{}", uuid::Uuid::now_v7().simple());
    // The name is generated from a UUID, never from input.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .unwrap();
    let base = admin_url
        .rsplit_once('/')
        .map_or(admin_url.as_str(), |(b, _)| b);
    Some(PgDatabase {
        url: format!("{base}/{name}"),
        admin,
        name,
    })
}

const PG_PREFIX: &str = "switchyard_auth_test_";

/// Drops test databases over an hour old (a panicking test never reaches `drop_now`); the UUID
/// v7 in each name says when it was made.
async fn sweep_abandoned(admin: &sqlx::AnyPool) {
    use sqlx::Row;
    let Ok(rows) = sqlx::query("SELECT datname FROM pg_database WHERE datname LIKE $1")
        .bind(format!("{PG_PREFIX}%"))
        .fetch_all(admin)
        .await
    else {
        return;
    };
    let now = chrono::Utc::now().timestamp().max(0) as u64;
    for row in rows {
        let name: String = row.get(0);
        let made = uuid::Uuid::parse_str(&name[PG_PREFIX.len()..])
            .ok()
            .and_then(|id| id.get_timestamp())
            .map(|ts| ts.to_unix().0);
        if made.is_some_and(|secs| now.saturating_sub(secs) > 3600) {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(admin)
            .await;
        }
    }
}

impl PgDatabase {
    /// Drops the database.
    pub async fn drop_now(self) {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&self.admin)
        .await
        .unwrap();
    }
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
