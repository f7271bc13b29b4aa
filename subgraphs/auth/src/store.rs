//! The auth database: accounts (PII encrypted), refresh-token families and tokens, the outbox.
//!
//! One code path for SQLite and PostgreSQL through `sqlx::Any`: only `TEXT` and `BIGINT` columns
//! and `$n` placeholders, which both accept. Timestamps are Unix microseconds.

use chrono::{DateTime, Utc};
use sqlx::{AnyPool, Row};
use switchyard_subgraph_kit::events::outbox;

const SCHEMA: &[&str] = &[
    // One-off data steps already done in this database (see `announce_existing_accounts`).
    "CREATE TABLE IF NOT EXISTS auth_data_steps (
        name TEXT PRIMARY KEY,
        done_at BIGINT NOT NULL
    )",
    // Email and phone are stored only encrypted (key id beside each ciphertext, AAD = account id
    // and field), plus a keyed hash of the normalised email for login lookups and uniqueness.
    "CREATE TABLE IF NOT EXISTS auth_accounts (
        id TEXT PRIMARY KEY,
        email_hash TEXT NOT NULL UNIQUE,
        email_key_id TEXT NOT NULL,
        email_ciphertext TEXT NOT NULL,
        phone_key_id TEXT,
        phone_ciphertext TEXT,
        handle TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        created_at BIGINT NOT NULL
    )",
    // rotate-keys scans for rows not under the active key.
    "CREATE INDEX IF NOT EXISTS auth_accounts_email_key ON auth_accounts (email_key_id)",
    // One family per login; every refresh rotates the token within its family, and presenting a
    // used token revokes the whole family.
    "CREATE TABLE IF NOT EXISTS auth_refresh_families (
        id TEXT PRIMARY KEY,
        account_id TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        revoked_at BIGINT
    )",
    "CREATE INDEX IF NOT EXISTS auth_refresh_families_account
        ON auth_refresh_families (account_id)",
    // Only the SHA-256 of a refresh token is stored: a database leak yields no usable token.
    "CREATE TABLE IF NOT EXISTS auth_refresh_tokens (
        token_hash TEXT PRIMARY KEY,
        family_id TEXT NOT NULL,
        account_id TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        used_at BIGINT
    )",
    "CREATE INDEX IF NOT EXISTS auth_refresh_tokens_family ON auth_refresh_tokens (family_id)",
    "CREATE INDEX IF NOT EXISTS auth_refresh_tokens_account ON auth_refresh_tokens (account_id)",
];

/// Creates the auth tables and the outbox if missing (idempotent; run at every start).
pub async fn migrate(pool: &AnyPool) -> anyhow::Result<()> {
    for statement in SCHEMA {
        sqlx::query(*statement).execute(pool).await?;
    }
    sqlx::query(crate::erasures::SCHEMA).execute(pool).await?;
    outbox::migrate(pool).await?;
    let announced = announce_existing_accounts(pool).await?;
    if announced > 0 {
        tracing::info!(
            accounts = announced,
            "announced existing accounts to the services' member directories"
        );
    }
    Ok(())
}

/// Enqueues `account.created` again for every account, once per database (recorded in
/// `auth_data_steps`, in the same transaction). Services check member ids against a record of
/// members built from `account.created`; accounts that signed up before those records existed
/// would otherwise be unknown to them. Consumers treat a repeated `account.created` as a no-op
/// (profile keeps an existing member); the payload has no displayName (auth does not keep it)
/// and says `reannounced: true`. Returns how many accounts were announced.
pub async fn announce_existing_accounts(pool: &AnyPool) -> anyhow::Result<u64> {
    const STEP: &str = "announce-accounts-to-member-directories";
    let mut tx = switchyard_subgraph_kit::db::begin(pool).await?;
    let claimed = sqlx::query(
        "INSERT INTO auth_data_steps (name, done_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(STEP)
    .bind(now_micros())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if claimed == 0 {
        tx.rollback().await?;
        return Ok(0);
    }
    let accounts = sqlx::query("SELECT id, handle FROM auth_accounts ORDER BY id")
        .fetch_all(&mut *tx)
        .await?;
    for row in &accounts {
        let id: String = row.try_get("id")?;
        let handle: String = row.try_get("handle")?;
        let event = switchyard_subgraph_kit::Event::new(
            "account.created",
            id.clone(),
            serde_json::json!({
                "accountId": id,
                "memberId": id,
                "handle": handle,
                "reannounced": true,
            }),
        )?;
        outbox::enqueue(&mut *tx, &event).await?;
    }
    tx.commit().await?;
    Ok(accounts.len() as u64)
}

/// Microseconds since the epoch, the stored timestamp form.
/// Deletes refresh tokens that expired before `now` (µs) and the families left with none.
/// Returns how many tokens went. An expired token is refused whether or not its row exists, so
/// this loses nothing that guards a session (reuse detection only matters while a token could
/// still be accepted); it keeps the table from growing with every refresh forever.
pub async fn prune_expired_refresh_tokens(pool: &AnyPool, now: i64) -> sqlx::Result<u64> {
    let mut tx = switchyard_subgraph_kit::db::begin(pool).await?;
    let tokens = sqlx::query("DELETE FROM auth_refresh_tokens WHERE expires_at < $1")
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    sqlx::query(
        "DELETE FROM auth_refresh_families WHERE NOT EXISTS \
         (SELECT 1 FROM auth_refresh_tokens t WHERE t.family_id = auth_refresh_families.id)",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(tokens)
}

pub fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

/// A stored timestamp back as a `DateTime`.
pub fn from_micros(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

/// An account row as stored (PII still sealed).
#[derive(Debug, Clone)]
pub struct StoredAccount {
    /// Account id (= member id).
    pub id: String,
    /// Key id of the email ciphertext.
    pub email_key_id: String,
    /// Base64 email ciphertext.
    pub email_ciphertext: String,
    /// Key id of the phone ciphertext.
    pub phone_key_id: Option<String>,
    /// Base64 phone ciphertext.
    pub phone_ciphertext: Option<String>,
    /// Handle.
    pub handle: String,
    /// PHC argon2id string.
    pub password_hash: String,
    /// Creation time (µs).
    pub created_at: i64,
}

const ACCOUNT_COLUMNS: &str = "id, email_key_id, email_ciphertext, phone_key_id, \
    phone_ciphertext, handle, password_hash, created_at";

fn account_from_row(row: &sqlx::any::AnyRow) -> Result<StoredAccount, sqlx::Error> {
    Ok(StoredAccount {
        id: row.try_get("id")?,
        email_key_id: row.try_get("email_key_id")?,
        email_ciphertext: row.try_get("email_ciphertext")?,
        phone_key_id: row.try_get("phone_key_id")?,
        phone_ciphertext: row.try_get("phone_ciphertext")?,
        handle: row.try_get("handle")?,
        password_hash: row.try_get("password_hash")?,
        created_at: row.try_get("created_at")?,
    })
}

/// The account with this id.
pub async fn account_by_id(pool: &AnyPool, id: &str) -> sqlx::Result<Option<StoredAccount>> {
    // The column list is a constant, never input.
    let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM auth_accounts WHERE id = $1");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.to_owned())
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(account_from_row)
        .transpose()
}

/// The account whose normalised email has this keyed hash.
pub async fn account_by_email_hash(
    pool: &AnyPool,
    email_hash: &str,
) -> sqlx::Result<Option<StoredAccount>> {
    let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM auth_accounts WHERE email_hash = $1");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(email_hash.to_owned())
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(account_from_row)
        .transpose()
}

/// Accounts with a field not sealed under `active_key`, after `after_id`, by id (a batch for
/// rotate-keys).
pub async fn accounts_not_under_key(
    pool: &AnyPool,
    active_key: &str,
    after_id: &str,
    limit: i64,
) -> sqlx::Result<Vec<StoredAccount>> {
    let sql = format!(
        "SELECT {ACCOUNT_COLUMNS} FROM auth_accounts
         WHERE id > $1 AND (email_key_id <> $2
             OR (phone_key_id IS NOT NULL AND phone_key_id <> $2))
         ORDER BY id LIMIT $3"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(after_id.to_owned())
        .bind(active_key.to_owned())
        .bind(limit)
        .fetch_all(pool)
        .await?
        .iter()
        .map(account_from_row)
        .collect()
}
