//! The auth use cases (sign up, log in, refresh, log out, delete, me), independent of GraphQL.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::{AnyPool, Row};
use switchyard_subgraph_kit::auth::Claims;
use switchyard_subgraph_kit::crypto::{FieldCipher, Sealed};
use switchyard_subgraph_kit::events::{outbox, Event, OutboxRelay};
use tokio::sync::OnceCell;

pub use crate::erasures::ErasureStatus;
use crate::keys::SigningKeys;
use crate::store::{self, from_micros, now_micros, StoredAccount};
use crate::throttle::{address_key, Blocked, HashGate, HashSlot, Throttle, ThrottlePolicy};

/// Why an auth operation failed; each maps to a GraphQL `extensions.code`.
#[derive(Debug, thiserror::Error)]
pub enum AuthFailure {
    /// Input failed validation (`BAD_USER_INPUT`).
    #[error("{0}")]
    BadInput(String),
    /// The email is registered already (`EMAIL_TAKEN`).
    #[error("an account with this email already exists")]
    EmailTaken,
    /// The handle is taken (`HANDLE_TAKEN`).
    #[error("this handle is already taken")]
    HandleTaken,
    /// Unknown email or wrong password, deliberately indistinguishable (`INVALID_CREDENTIALS`).
    #[error("invalid email or password")]
    InvalidCredentials,
    /// No valid access or refresh token (`UNAUTHENTICATED`).
    #[error("{0}")]
    Unauthenticated(String),
    /// Too many attempts; try again after `retry_after_secs` (`RATE_LIMITED`, with
    /// `extensions.retryAfter`).
    #[error("{what}; try again in {retry_after_secs} s")]
    RateLimited {
        /// What was limited, for the message.
        what: &'static str,
        /// Whole seconds until an attempt can go through.
        retry_after_secs: u64,
    },
    /// A store or crypto failure (`INTERNAL_SERVER_ERROR`); details are logged, not returned.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl AuthFailure {
    /// The GraphQL `extensions.code` for this failure.
    pub fn code(&self) -> &'static str {
        match self {
            AuthFailure::BadInput(_) => "BAD_USER_INPUT",
            AuthFailure::EmailTaken => "EMAIL_TAKEN",
            AuthFailure::HandleTaken => "HANDLE_TAKEN",
            AuthFailure::InvalidCredentials => "INVALID_CREDENTIALS",
            AuthFailure::Unauthenticated(_) => "UNAUTHENTICATED",
            AuthFailure::RateLimited { .. } => "RATE_LIMITED",
            AuthFailure::Internal(_) => "INTERNAL_SERVER_ERROR",
        }
    }

    /// Seconds to wait before trying again, for `RATE_LIMITED`.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            AuthFailure::RateLimited {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        }
    }
}

fn rate_limited(what: &'static str, blocked: Blocked) -> AuthFailure {
    AuthFailure::RateLimited {
        what,
        retry_after_secs: blocked.retry_after_secs(),
    }
}

fn hashes_busy() -> AuthFailure {
    AuthFailure::RateLimited {
        what: "too many sign-ins in progress",
        retry_after_secs: 1,
    }
}

fn internal(e: impl Into<anyhow::Error>) -> AuthFailure {
    AuthFailure::Internal(e.into())
}

/// An account with its PII decrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Account id (= member id).
    pub id: String,
    /// Normalised email.
    pub email: String,
    /// Phone, as given.
    pub phone: Option<String>,
    /// Handle.
    pub handle: String,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
}

/// A signed-in session: tokens plus the account.
#[derive(Debug, Clone)]
pub struct Session {
    /// The JWT access token.
    pub access_token: String,
    /// The opaque refresh token.
    pub refresh_token: String,
    /// When the access token expires.
    pub expires_at: DateTime<Utc>,
    /// The account.
    pub account: Account,
}

/// What `signUp` takes.
#[derive(Debug, Clone)]
pub struct SignUp {
    /// Email (normalised here).
    pub email: String,
    /// Password (≥ 8 chars).
    pub password: String,
    /// Handle: 3–30 of `[a-z0-9_]`.
    pub handle: String,
    /// Display name (goes to profile via `account.created`).
    pub display_name: String,
    /// Optional phone.
    pub phone: Option<String>,
}

/// Password hashing cost.
#[derive(Debug, Clone, Copy)]
pub struct HashCost {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Iterations.
    pub iterations: u32,
}

/// Brute-force limits: throttles on log-ins and sign-ups, and the password-hash gate. The
/// defaults are [`crate::Config`]'s.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Failed log-ins per account (keyed by email, registered or not).
    pub log_ins_per_account: ThrottlePolicy,
    /// Failed log-ins per client address.
    pub log_ins_per_address: ThrottlePolicy,
    /// Sign-ups per client address.
    pub sign_ups_per_address: ThrottlePolicy,
    /// Password hashes running at once (0: one per core).
    pub concurrent_hashes: usize,
    /// Password hashes waiting for a slot before more are refused.
    pub queued_hashes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        crate::Config::default().limits()
    }
}

/// The auth service's state and operations.
#[derive(Clone)]
pub struct AuthCore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: AnyPool,
    cipher: FieldCipher,
    keys: SigningKeys,
    relay: OutboxRelay,
    access_ttl: Duration,
    refresh_ttl: Duration,
    cost: HashCost,
    /// A hash to verify against when the email is unknown, so both failures take equally long
    /// and response time does not reveal which emails are registered.
    dummy_hash: OnceCell<String>,
    log_ins_per_account: Throttle,
    log_ins_per_address: Throttle,
    sign_ups_per_address: Throttle,
    hashes: HashGate,
    /// Auth's own erasure saga, woken after a deletion (set once the service wires it).
    erasure: std::sync::OnceLock<switchyard_subgraph_kit::Erasure>,
}

const MAX_PASSWORD_LEN: usize = 1024;

impl AuthCore {
    /// Wires the operations to their store, keys and outbox relay.
    pub fn new(
        pool: AnyPool,
        cipher: FieldCipher,
        keys: SigningKeys,
        relay: OutboxRelay,
        access_ttl: Duration,
        refresh_ttl: Duration,
        cost: HashCost,
    ) -> Self {
        let limits = Limits::default();
        AuthCore {
            inner: Arc::new(Inner {
                pool,
                cipher,
                keys,
                relay,
                access_ttl,
                refresh_ttl,
                cost,
                dummy_hash: OnceCell::new(),
                log_ins_per_account: Throttle::new(limits.log_ins_per_account),
                log_ins_per_address: Throttle::new(limits.log_ins_per_address),
                sign_ups_per_address: Throttle::new(limits.sign_ups_per_address),
                hashes: HashGate::new(limits.concurrent_hashes, limits.queued_hashes),
                erasure: std::sync::OnceLock::new(),
            }),
        }
    }

    /// The same operations under other brute-force `limits` (before any request is served:
    /// attempts counted so far are not carried over).
    pub fn with_limits(self, limits: Limits) -> Self {
        let inner = &*self.inner;
        AuthCore {
            inner: Arc::new(Inner {
                pool: inner.pool.clone(),
                cipher: inner.cipher.clone(),
                keys: inner.keys.clone(),
                relay: inner.relay.clone(),
                access_ttl: inner.access_ttl,
                refresh_ttl: inner.refresh_ttl,
                cost: inner.cost,
                dummy_hash: OnceCell::new(),
                log_ins_per_account: Throttle::new(limits.log_ins_per_account),
                log_ins_per_address: Throttle::new(limits.log_ins_per_address),
                sign_ups_per_address: Throttle::new(limits.sign_ups_per_address),
                hashes: HashGate::new(limits.concurrent_hashes, limits.queued_hashes),
                erasure: inner.erasure.clone(),
            }),
        }
    }

    /// Wires auth's own erasure saga: a deletion starts it in its transaction and wakes it.
    pub fn set_erasure(&self, erasure: switchyard_subgraph_kit::Erasure) {
        let _ = self.inner.erasure.set(erasure);
    }

    /// Where the erasure of `member_id` stands; `None` if no such account was deleted.
    pub async fn erasure_status(
        &self,
        member_id: &str,
    ) -> Result<Option<ErasureStatus>, AuthFailure> {
        crate::erasures::status(&self.inner.pool, member_id)
            .await
            .map_err(internal)
    }

    /// The signing keys (for the JWKS).
    pub fn keys(&self) -> &SigningKeys {
        &self.inner.keys
    }

    /// The most password hashes that ran at once so far.
    pub fn peak_concurrent_hashes(&self) -> usize {
        self.inner.hashes.peak()
    }

    /// A client address as logs show it: a keyed hash, so logs hold no address in clear but
    /// one client's lines still group together.
    fn client_tag(&self, key: &str) -> String {
        let mut tag = self
            .inner
            .cipher
            .keyed_hash(format!("client:{key}").as_bytes());
        tag.truncate(16);
        tag
    }

    /// Creates an account, enqueues `account.created` in the same transaction, and signs in.
    /// `client` (when known) is throttled on sign-ups.
    pub async fn sign_up(
        &self,
        input: SignUp,
        client: Option<IpAddr>,
    ) -> Result<Session, AuthFailure> {
        let email = normalise_email(&input.email)?;
        validate_handle(&input.handle)?;
        validate_password(&input.password)?;
        let display_name = input.display_name.trim().to_owned();
        if display_name.is_empty() || display_name.chars().count() > 100 {
            return Err(AuthFailure::BadInput(
                "displayName must be 1–100 characters".into(),
            ));
        }
        let phone = match input.phone.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(p) => Some(validate_phone(p)?),
        };
        let email_hash = self.inner.cipher.keyed_hash(email.as_bytes());
        // Before the lookup that tells whether the email is taken, which makes sign-up a way to
        // test emails, and before the expensive hash.
        if let Some(client) = client.map(address_key) {
            if let Err(blocked) = self.inner.sign_ups_per_address.attempt(&client) {
                tracing::warn!(
                    client = %self.client_tag(&client),
                    retry_after_secs = blocked.retry_after_secs(),
                    "sign-up throttled"
                );
                return Err(rate_limited("too many sign-ups from this address", blocked));
            }
        }
        // Cheap pre-checks before the expensive hash; the unique indexes decide races.
        self.check_free(&email_hash, &input.handle).await?;
        let password_hash = self.hash_password(input.password).await?;

        let id = uuid::Uuid::now_v7().to_string();
        let email_sealed = self.seal(&id, "email", &email)?;
        let phone_sealed = phone
            .as_deref()
            .map(|p| self.seal(&id, "phone", p))
            .transpose()?;
        let created_at = now_micros();
        let event = Event::new(
            "account.created",
            id.clone(),
            json!({
                "accountId": id,
                "memberId": id,
                "handle": input.handle,
                "displayName": display_name,
            }),
        )
        .map_err(internal)?;

        let mut tx = switchyard_subgraph_kit::db::begin(&self.inner.pool)
            .await
            .map_err(internal)?;
        let inserted = sqlx::query(
            "INSERT INTO auth_accounts (id, email_hash, email_key_id, email_ciphertext,
                 phone_key_id, phone_ciphertext, handle, password_hash, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(id.clone())
        .bind(email_hash.clone())
        .bind(email_sealed.key_id)
        .bind(STANDARD.encode(&email_sealed.bytes))
        .bind(phone_sealed.as_ref().map(|s| s.key_id.clone()))
        .bind(phone_sealed.as_ref().map(|s| STANDARD.encode(&s.bytes)))
        .bind(input.handle.clone())
        .bind(password_hash)
        .bind(created_at)
        .execute(&mut *tx)
        .await;
        if let Err(e) = inserted {
            drop(tx);
            if is_unique_violation(&e) {
                // Lost a race with a concurrent sign-up: say which field collided.
                self.check_free(&email_hash, &input.handle).await?;
            }
            return Err(internal(e));
        }
        outbox::enqueue(&mut *tx, &event).await.map_err(internal)?;
        let (refresh_token, _) = self.start_family(&mut tx, &id).await?;
        tx.commit().await.map_err(internal)?;
        self.inner.relay.wake();
        tracing::info!(account = %id, "account created");

        let account = Account {
            id,
            email,
            phone,
            handle: input.handle,
            created_at: from_micros(created_at),
        };
        Ok(self.session(account, refresh_token))
    }

    /// Signs in with email and password; a new refresh-token family per login.
    ///
    /// Throttled per account and per `client` address (see [`crate::throttle`]): while either
    /// is blocked the attempt is refused with `RATE_LIMITED` before the password is looked at.
    /// Failed and refused attempts are logged with keyed hashes instead of email and address.
    pub async fn log_in(
        &self,
        email: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<Session, AuthFailure> {
        // Malformed input cannot match an account: same answer as a wrong password.
        let email = normalise_email(email).map_err(|_| AuthFailure::InvalidCredentials)?;
        if password.len() > MAX_PASSWORD_LEN {
            return Err(AuthFailure::InvalidCredentials);
        }
        let hash = self.inner.cipher.keyed_hash(email.as_bytes());
        let account_tag = &hash[..16];
        let client = client.map(address_key);
        let client_tag = client.as_deref().map(|c| self.client_tag(c));
        let client_tag = client_tag.as_deref().unwrap_or("unknown");
        // Counted before the password is checked, so concurrent and batched guesses are
        // counted too; a success takes its count back.
        if let Some(client) = &client {
            if let Err(blocked) = self.inner.log_ins_per_address.attempt(client) {
                tracing::warn!(
                    account = account_tag,
                    client = client_tag,
                    retry_after_secs = blocked.retry_after_secs(),
                    "log-in throttled: too many failures from this client"
                );
                return Err(rate_limited(
                    "too many failed log-ins from this address",
                    blocked,
                ));
            }
        }
        let attempts = match self.inner.log_ins_per_account.attempt(&hash) {
            Ok(attempts) => attempts,
            Err(blocked) => {
                if let Some(client) = &client {
                    self.inner.log_ins_per_address.refund(client);
                }
                tracing::warn!(
                    account = account_tag,
                    client = client_tag,
                    retry_after_secs = blocked.retry_after_secs(),
                    "log-in throttled: too many failures for this account"
                );
                return Err(rate_limited(
                    "too many failed log-ins for this account",
                    blocked,
                ));
            }
        };
        let refund = || {
            self.inner.log_ins_per_account.refund(&hash);
            if let Some(client) = &client {
                self.inner.log_ins_per_address.refund(client);
            }
        };
        let verified = match self.check_password(&hash, password).await {
            Ok(verified) => verified,
            Err(e) => {
                // Not a guess that was checked: it must not count.
                refund();
                return Err(e);
            }
        };
        let Some(stored) = verified else {
            tracing::warn!(
                account = account_tag,
                client = client_tag,
                attempts,
                "log-in failed"
            );
            return Err(AuthFailure::InvalidCredentials);
        };
        self.inner.log_ins_per_account.forgive(&hash);
        if let Some(client) = &client {
            self.inner.log_ins_per_address.refund(client);
        }
        let account = self.open(&stored)?;
        let mut tx = switchyard_subgraph_kit::db::begin(&self.inner.pool)
            .await
            .map_err(internal)?;
        let (refresh_token, _) = self.start_family(&mut tx, &account.id).await?;
        tx.commit().await.map_err(internal)?;
        Ok(self.session(account, refresh_token))
    }

    /// The account with this email hash if `password` is its password; `None` for a wrong
    /// password or an unknown email, which take equally long.
    async fn check_password(
        &self,
        email_hash: &str,
        password: &str,
    ) -> Result<Option<StoredAccount>, AuthFailure> {
        let stored = store::account_by_email_hash(&self.inner.pool, email_hash)
            .await
            .map_err(internal)?;
        let Some(stored) = stored else {
            let dummy = self.dummy_hash().await?;
            let _ = self.verify_password(password.to_owned(), dummy).await?;
            return Ok(None);
        };
        let verified = self
            .verify_password(password.to_owned(), stored.password_hash.clone())
            .await?;
        Ok(verified.then_some(stored))
    }

    /// Exchanges a refresh token for a new access token and a new refresh token (rotation). A
    /// token presented twice revokes its family: one of the two presenters stole it.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Session, AuthFailure> {
        let token_hash = hash_refresh_token(refresh_token);
        let row = sqlx::query(
            "SELECT t.family_id, t.account_id, t.expires_at, t.used_at, f.revoked_at
             FROM auth_refresh_tokens t JOIN auth_refresh_families f ON f.id = t.family_id
             WHERE t.token_hash = $1",
        )
        .bind(token_hash.clone())
        .fetch_optional(&self.inner.pool)
        .await
        .map_err(internal)?
        .ok_or_else(|| AuthFailure::Unauthenticated("invalid refresh token".into()))?;
        let family_id: String = row.try_get("family_id").map_err(internal)?;
        let account_id: String = row.try_get("account_id").map_err(internal)?;
        let expires_at: i64 = row.try_get("expires_at").map_err(internal)?;
        let used_at: Option<i64> = row.try_get("used_at").map_err(internal)?;
        let revoked_at: Option<i64> = row.try_get("revoked_at").map_err(internal)?;
        if revoked_at.is_some() {
            return Err(AuthFailure::Unauthenticated(
                "refresh token has been revoked; log in again".into(),
            ));
        }
        if used_at.is_some() {
            self.revoke_reused(&family_id, &account_id).await?;
            return Err(reuse_error());
        }
        if expires_at < now_micros() {
            return Err(AuthFailure::Unauthenticated(
                "refresh token has expired; log in again".into(),
            ));
        }
        let mut tx = switchyard_subgraph_kit::db::begin(&self.inner.pool)
            .await
            .map_err(internal)?;
        // Conditional on `used_at IS NULL`: of two concurrent presenters exactly one wins.
        let claimed = sqlx::query(
            "UPDATE auth_refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL",
        )
        .bind(now_micros())
        .bind(token_hash)
        .execute(&mut *tx)
        .await
        .map_err(internal)?
        .rows_affected();
        if claimed != 1 {
            drop(tx);
            self.revoke_reused(&family_id, &account_id).await?;
            return Err(reuse_error());
        }
        let new_token = self
            .issue_in_family(&mut tx, &family_id, &account_id)
            .await?;
        tx.commit().await.map_err(internal)?;
        let stored = store::account_by_id(&self.inner.pool, &account_id)
            .await
            .map_err(internal)?
            .ok_or_else(|| AuthFailure::Unauthenticated("account no longer exists".into()))?;
        let account = self.open(&stored)?;
        Ok(self.session(account, new_token))
    }

    /// Revokes the refresh-token family `refresh_token` belongs to; `false` if it is unknown.
    pub async fn log_out(&self, refresh_token: &str) -> Result<bool, AuthFailure> {
        let family: Option<String> =
            sqlx::query("SELECT family_id FROM auth_refresh_tokens WHERE token_hash = $1")
                .bind(hash_refresh_token(refresh_token))
                .fetch_optional(&self.inner.pool)
                .await
                .map_err(internal)?
                .map(|r| r.try_get("family_id"))
                .transpose()
                .map_err(internal)?;
        let Some(family) = family else {
            return Ok(false);
        };
        self.revoke_family(&family).await?;
        Ok(true)
    }

    /// Deletes the caller's account after re-checking the password; enqueues `account.deleted`
    /// and, in the same transaction, requests the erasure from every service and starts auth's
    /// own (its rows go here; the saga scrubs its files and reports).
    pub async fn delete_account(
        &self,
        account_id: &str,
        password: &str,
    ) -> Result<bool, AuthFailure> {
        let stored = store::account_by_id(&self.inner.pool, account_id)
            .await
            .map_err(internal)?
            .ok_or_else(|| AuthFailure::Unauthenticated("account no longer exists".into()))?;
        if password.len() > MAX_PASSWORD_LEN
            || !self
                .verify_password(password.to_owned(), stored.password_hash.clone())
                .await?
        {
            return Err(AuthFailure::InvalidCredentials);
        }
        let event = Event::new(
            "account.deleted",
            account_id,
            json!({ "accountId": account_id, "memberId": account_id }),
        )
        .map_err(internal)?;
        let mut tx = switchyard_subgraph_kit::db::begin(&self.inner.pool)
            .await
            .map_err(internal)?;
        for sql in [
            "DELETE FROM auth_refresh_tokens WHERE account_id = $1",
            "DELETE FROM auth_refresh_families WHERE account_id = $1",
            "DELETE FROM auth_accounts WHERE id = $1",
            // The announcements carry the handle and display name in clear. Unpublished, they
            // never leave (consumers then see only the deletion); published, no replay needs
            // them any more.
            "DELETE FROM switchyard_outbox WHERE aggregate_id = $1
                 AND event_type = 'account.created'",
        ] {
            sqlx::query(sql)
                .bind(account_id.to_owned())
                .execute(&mut *tx)
                .await
                .map_err(internal)?;
        }
        outbox::enqueue(&mut *tx, &event).await.map_err(internal)?;
        crate::erasures::request(&mut tx, account_id, now_micros())
            .await
            .map_err(internal)?;
        switchyard_subgraph_kit::erasure::start(&mut tx, account_id)
            .await
            .map_err(|e| AuthFailure::Internal(anyhow::anyhow!(e)))?;
        tx.commit().await.map_err(internal)?;
        self.inner.relay.wake();
        if let Some(erasure) = self.inner.erasure.get() {
            erasure.wake();
        }
        tracing::info!(account = %account_id, "account deleted");
        Ok(true)
    }

    /// The account with this id, decrypted; `None` if it no longer exists.
    pub async fn account(&self, id: &str) -> Result<Option<Account>, AuthFailure> {
        store::account_by_id(&self.inner.pool, id)
            .await
            .map_err(internal)?
            .map(|stored| self.open(&stored))
            .transpose()
    }

    async fn check_free(&self, email_hash: &str, handle: &str) -> Result<(), AuthFailure> {
        let taken = |sql: &'static str, value: String| {
            let pool = self.inner.pool.clone();
            async move {
                sqlx::query(sql)
                    .bind(value)
                    .fetch_optional(&pool)
                    .await
                    .map(|r| r.is_some())
                    .map_err(internal)
            }
        };
        if taken(
            "SELECT 1 FROM auth_accounts WHERE email_hash = $1",
            email_hash.to_owned(),
        )
        .await?
        {
            return Err(AuthFailure::EmailTaken);
        }
        if taken(
            "SELECT 1 FROM auth_accounts WHERE handle = $1",
            handle.to_owned(),
        )
        .await?
        {
            return Err(AuthFailure::HandleTaken);
        }
        Ok(())
    }

    fn seal(&self, id: &str, field: &str, value: &str) -> Result<Sealed, AuthFailure> {
        self.inner
            .cipher
            .encrypt(value.as_bytes(), &aad(id, field))
            .map_err(internal)
    }

    fn open(&self, stored: &StoredAccount) -> Result<Account, AuthFailure> {
        let email = open_field(
            &self.inner.cipher,
            &stored.id,
            "email",
            &stored.email_key_id,
            &stored.email_ciphertext,
        )?;
        let phone = match (&stored.phone_key_id, &stored.phone_ciphertext) {
            (Some(key_id), Some(ciphertext)) => Some(open_field(
                &self.inner.cipher,
                &stored.id,
                "phone",
                key_id,
                ciphertext,
            )?),
            _ => None,
        };
        Ok(Account {
            id: stored.id.clone(),
            email,
            phone,
            handle: stored.handle.clone(),
            created_at: from_micros(stored.created_at),
        })
    }

    fn session(&self, account: Account, refresh_token: String) -> Session {
        let claims = Claims::new(
            account.id.clone(),
            account.handle.clone(),
            self.inner.access_ttl,
        );
        let access_token = self.inner.keys.active().sign(&claims);
        Session {
            access_token,
            refresh_token,
            expires_at: DateTime::from_timestamp(claims.exp, 0).unwrap_or_default(),
            account,
        }
    }

    async fn start_family(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        account_id: &str,
    ) -> Result<(String, String), AuthFailure> {
        let family_id = uuid::Uuid::now_v7().to_string();
        sqlx::query(
            "INSERT INTO auth_refresh_families (id, account_id, created_at) VALUES ($1, $2, $3)",
        )
        .bind(family_id.clone())
        .bind(account_id.to_owned())
        .bind(now_micros())
        .execute(&mut **tx)
        .await
        .map_err(internal)?;
        let token = self.issue_in_family(tx, &family_id, account_id).await?;
        Ok((token, family_id))
    }

    async fn issue_in_family(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        family_id: &str,
        account_id: &str,
    ) -> Result<String, AuthFailure> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| internal(anyhow::anyhow!("randomness: {e}")))?;
        let token = URL_SAFE_NO_PAD.encode(bytes);
        let now = now_micros();
        let ttl = i64::try_from(self.inner.refresh_ttl.as_micros()).unwrap_or(i64::MAX);
        sqlx::query(
            "INSERT INTO auth_refresh_tokens (token_hash, family_id, account_id, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(hash_refresh_token(&token))
        .bind(family_id.to_owned())
        .bind(account_id.to_owned())
        .bind(now)
        .bind(now.saturating_add(ttl))
        .execute(&mut **tx)
        .await
        .map_err(internal)?;
        Ok(token)
    }

    async fn revoke_family(&self, family_id: &str) -> Result<(), AuthFailure> {
        sqlx::query(
            "UPDATE auth_refresh_families SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(now_micros())
        .bind(family_id.to_owned())
        .execute(&self.inner.pool)
        .await
        .map_err(internal)?;
        Ok(())
    }

    async fn revoke_reused(&self, family_id: &str, account_id: &str) -> Result<(), AuthFailure> {
        tracing::warn!(
            account = %account_id,
            family = %family_id,
            "refresh token reused; revoking its family"
        );
        self.revoke_family(family_id).await
    }

    async fn hash_slot(&self) -> Result<HashSlot, AuthFailure> {
        self.inner.hashes.slot().await.map_err(|_| {
            tracing::warn!("password hash queue full; refusing");
            hashes_busy()
        })
    }

    /// Verifies on a blocking thread, holding a hash slot; the parameters come from the PHC
    /// string itself.
    async fn verify_password(&self, password: String, phc: String) -> Result<bool, AuthFailure> {
        let mut slot = self.hash_slot().await?;
        tokio::task::spawn_blocking(move || slot.verify(password.as_bytes(), &phc))
            .await
            .map_err(internal)?
            .map_err(AuthFailure::Internal)
    }

    async fn hash_password(&self, password: String) -> Result<String, AuthFailure> {
        let cost = self.inner.cost;
        let mut slot = self.hash_slot().await?;
        // Argon2 is deliberately slow and memory-hard: keep it off the async workers, and at
        // most as many at once as the gate allows.
        tokio::task::spawn_blocking(move || {
            slot.hash(password.as_bytes(), cost.memory_kib, cost.iterations)
        })
        .await
        .map_err(internal)?
        .map_err(AuthFailure::Internal)
    }

    async fn dummy_hash(&self) -> Result<String, AuthFailure> {
        self.inner
            .dummy_hash
            .get_or_try_init(|| self.hash_password("not a real password".into()))
            .await
            .cloned()
    }
}

fn reuse_error() -> AuthFailure {
    AuthFailure::Unauthenticated(
        "refresh token was already used; this session has been revoked, log in again".into(),
    )
}

/// Associated data binding a ciphertext to its row and column.
pub fn aad(account_id: &str, field: &str) -> Vec<u8> {
    format!("auth_accounts:{account_id}:{field}").into_bytes()
}

/// Decrypts one stored field.
pub fn open_field(
    cipher: &FieldCipher,
    account_id: &str,
    field: &str,
    key_id: &str,
    ciphertext_b64: &str,
) -> Result<String, AuthFailure> {
    let bytes = STANDARD.decode(ciphertext_b64).map_err(internal)?;
    let plain = cipher
        .decrypt(
            &Sealed {
                key_id: key_id.to_owned(),
                bytes,
            },
            &aad(account_id, field),
        )
        .map_err(internal)?;
    String::from_utf8(plain).map_err(internal)
}

/// SHA-256 (hex) of a refresh token: what the database stores.
pub fn hash_refresh_token(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Trim + lowercase, then a basic shape check (one `@`, a dot in the domain, no spaces).
pub fn normalise_email(email: &str) -> Result<String, AuthFailure> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if valid {
        Ok(email)
    } else {
        Err(AuthFailure::BadInput(
            "email must be a valid address like name@example.com".into(),
        ))
    }
}

fn validate_handle(handle: &str) -> Result<(), AuthFailure> {
    let ok = (3..=30).contains(&handle.len())
        && handle
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(AuthFailure::BadInput(
            "handle must be 3–30 characters of a-z, 0-9 and _".into(),
        ))
    }
}

fn validate_password(password: &str) -> Result<(), AuthFailure> {
    let chars = password.chars().count();
    if chars < 8 {
        return Err(AuthFailure::BadInput(
            "password must be at least 8 characters".into(),
        ));
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(AuthFailure::BadInput(format!(
            "password must be at most {MAX_PASSWORD_LEN} bytes"
        )));
    }
    Ok(())
}

fn validate_phone(phone: &str) -> Result<String, AuthFailure> {
    let digits = phone.chars().filter(char::is_ascii_digit).count();
    let allowed = phone
        .chars()
        .all(|c| c.is_ascii_digit() || " +-().".contains(c));
    if allowed && (7..=15).contains(&digits) {
        Ok(phone.to_owned())
    } else {
        Err(AuthFailure::BadInput(
            "phone must have 7–15 digits (spaces, +, -, parentheses and dots allowed)".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            normalise_email("  Ada@Example.COM ").unwrap(),
            "ada@example.com"
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@x.com",
            "a b@x.com",
            "a@b@c.com",
            "a@com",
            "a@x.",
        ] {
            assert!(normalise_email(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn handles_passwords_phones() {
        assert!(validate_handle("ada_99").is_ok());
        for bad in ["ab", "Ada", "ada-x", &"a".repeat(31), "ädä"] {
            assert!(validate_handle(bad).is_err(), "{bad:?}");
        }
        assert!(validate_password("12345678").is_ok());
        assert!(validate_password("1234567").is_err());
        assert!(validate_phone("+1 (555) 010-0199").is_ok());
        assert!(validate_phone("call me").is_err());
        assert!(validate_phone("123").is_err());
    }

    #[test]
    fn refresh_token_hash_is_sha256_hex() {
        assert_eq!(
            hash_refresh_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
