//! The auth subgraph's GraphQL API.

use async_graphql::{
    Context, EmptySubscription, ErrorExtensions, Object, Schema, SimpleObject, ID,
};
use chrono::{DateTime, Utc};
use switchyard_subgraph_kit::auth::{caller, optional_caller};
use switchyard_subgraph_kit::ClientAddress;

use crate::core::{self, AuthCore, AuthFailure, SignUp};

/// The auth subgraph schema.
pub type AuthSchema = Schema<Query, Mutation, EmptySubscription>;

/// Builds the schema; without `core` (for `--print-schema`) resolvers have no store.
pub fn build(core: Option<AuthCore>) -> AuthSchema {
    let mut builder = switchyard_subgraph_kit::guards::apply(
        Schema::build(Query, Mutation, EmptySubscription).enable_federation(),
    );
    if let Some(core) = core {
        let verifier = switchyard_subgraph_kit::auth::JwtVerifier::from_jwks_json(
            &switchyard_subgraph_kit::auth::jwks(core.keys().all()),
        )
        .expect("our own JWKS parses");
        builder = builder.data(verifier).data(core);
    }
    builder.finish()
}

fn gql(e: AuthFailure) -> async_graphql::Error {
    if let AuthFailure::Internal(inner) = &e {
        tracing::error!(error = %format!("{inner:#}"), "auth operation failed");
    }
    let code = e.code();
    let retry_after = e.retry_after_secs();
    async_graphql::Error::new(e.to_string()).extend_with(|_, ext| {
        ext.set("code", code);
        if let Some(secs) = retry_after {
            ext.set("retryAfter", secs);
        }
    })
}

/// The caller's network address, as the kit found it (none for in-process calls).
fn client_of(ctx: &Context<'_>) -> Option<std::net::IpAddr> {
    ctx.data_opt::<ClientAddress>().map(|ClientAddress(ip)| *ip)
}

fn core_of<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a AuthCore> {
    ctx.data::<AuthCore>()
}

/// A member, owned by the profile subgraph. Auth resolves no member by itself; it only knows,
/// at sign-up, the handle and display name the member was created with, and provides them on
/// `signUp`'s path so a client reads them back at once instead of racing `account.created` to
/// profile.
pub struct Member {
    id: ID,
    signed_up: Option<SignedUp>,
}

/// What auth was told at sign-up.
struct SignedUp {
    handle: String,
    display_name: String,
}

fn not_provided(field: &str) -> async_graphql::Error {
    async_graphql::Error::new(format!(
        "auth knows `Member.{field}` only on signUp's answer; ask profile"
    ))
    .extend_with(|_, ext| ext.set("code", "INTERNAL_SERVER_ERROR"))
}

/// A member, owned by the profile subgraph; auth only references it.
#[Object(unresolvable = "id")]
impl Member {
    /// The member id (= account id).
    async fn id(&self) -> &ID {
        &self.id
    }

    /// Unique handle.
    // Profile's field; auth provides it on `signUp`'s answer only. The description is
    // profile's, word for word, so the supergraph keeps it whichever it takes.
    #[graphql(external)]
    async fn handle(&self) -> async_graphql::Result<&str> {
        self.signed_up
            .as_ref()
            .map(|s| s.handle.as_str())
            .ok_or_else(|| not_provided("handle"))
    }

    /// Name shown to others.
    // Profile's field; auth provides it on `signUp`'s answer only.
    #[graphql(external)]
    async fn display_name(&self) -> async_graphql::Result<&str> {
        self.signed_up
            .as_ref()
            .map(|s| s.display_name.as_str())
            .ok_or_else(|| not_provided("displayName"))
    }
}

/// A sign-in account. Only ever returned to its owner (`me`, sign-up, log-in, refresh); on
/// sign-up it carries the display name the member was created with.
pub struct Account(core::Account, Option<String>);

#[Object]
impl Account {
    /// The account id, which is also the member id.
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }

    /// The normalised (lower-case) email.
    async fn email(&self) -> &str {
        &self.0.email
    }

    /// The phone number, if one was given.
    async fn phone(&self) -> Option<&str> {
        self.0.phone.as_deref()
    }

    /// The unique handle.
    async fn handle(&self) -> &str {
        &self.0.handle
    }

    /// When the account was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// The member profile of this account.
    async fn member(&self) -> Member {
        Member {
            id: ID(self.0.id.clone()),
            signed_up: self.1.as_ref().map(|display_name| SignedUp {
                handle: self.0.handle.clone(),
                display_name: display_name.clone(),
            }),
        }
    }
}

/// Tokens for a signed-in session.
#[derive(SimpleObject)]
pub struct AuthPayload {
    /// JWT (EdDSA) to send as `Authorization: Bearer …`; valid for 15 minutes.
    access_token: String,
    /// Opaque token for `refresh`; single use, valid for 30 days.
    refresh_token: String,
    /// When the access token expires.
    expires_at: DateTime<Utc>,
    /// The signed-in account.
    account: Account,
}

impl From<core::Session> for AuthPayload {
    fn from(s: core::Session) -> Self {
        AuthPayload {
            access_token: s.access_token,
            refresh_token: s.refresh_token,
            expires_at: s.expires_at,
            account: Account(s.account, None),
        }
    }
}

/// Queries.
pub struct Query;

#[Object]
impl Query {
    /// The account of the access token's bearer; null without a token.
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Account>> {
        let Some(who) = optional_caller(ctx).await? else {
            return Ok(None);
        };
        Ok(core_of(ctx)?
            .account(&who.member_id)
            .await
            .map_err(gql)?
            .map(|account| Account(account, None)))
    }

    /// Where the erasure of a deleted account stands, service by service; null when no account
    /// with this id was deleted. Anyone may ask: it tells only that the id was deleted and
    /// when (a reference to it already says `deleted`), and the member cannot sign in any more.
    async fn account_erasure(
        &self,
        ctx: &Context<'_>,
        member_id: ID,
    ) -> async_graphql::Result<Option<AccountErasure>> {
        Ok(core_of(ctx)?
            .erasure_status(&member_id)
            .await
            .map_err(gql)?
            .map(AccountErasure))
    }
}

/// How far the erasure of a deleted account has got: every service erases what it holds for
/// the member and reports it (`erasure.completed`).
pub struct AccountErasure(core::ErasureStatus);

#[Object]
impl AccountErasure {
    /// The deleted account's member id.
    async fn member_id(&self) -> ID {
        ID(self.0.member_id.clone())
    }

    /// When the account was deleted.
    async fn requested_at(&self) -> DateTime<Utc> {
        self.0.requested_at
    }

    /// True once every service has reported its erasure finished.
    async fn complete(&self) -> bool {
        self.0.services.iter().all(|s| s.erased_at.is_some())
    }

    /// When the last service finished; null until all have.
    async fn completed_at(&self) -> Option<DateTime<Utc>> {
        self.0
            .services
            .iter()
            .map(|s| s.erased_at)
            .collect::<Option<Vec<_>>>()
            .and_then(|times| times.into_iter().max())
    }

    /// Each service's state, by service name.
    async fn services(&self) -> Vec<ServiceErasure> {
        self.0
            .services
            .iter()
            .map(|s| ServiceErasure {
                service: s.service.clone(),
                erased: s.erased_at.is_some(),
                erased_at: s.erased_at,
            })
            .collect()
    }
}

/// One service's part of an account erasure.
#[derive(SimpleObject)]
pub struct ServiceErasure {
    /// The service (auth, profile, content, chat, analytics).
    service: String,
    /// True once the service has erased (or anonymised) everything it held for the member,
    /// its files included.
    erased: bool,
    /// When it reported that.
    erased_at: Option<DateTime<Utc>>,
}

/// Mutations.
pub struct Mutation;

#[Object]
impl Mutation {
    /// Creates an account and signs in. The new member's handle and display name are answered
    /// here (provided by auth), so they read back on the first call.
    #[graphql(provides = "account { member { handle displayName } }")]
    async fn sign_up(
        &self,
        ctx: &Context<'_>,
        email: String,
        password: String,
        handle: String,
        display_name: String,
        #[graphql(default)] phone: Option<String>,
    ) -> async_graphql::Result<AuthPayload> {
        let created_as = display_name.trim().to_owned();
        let session = core_of(ctx)?
            .sign_up(
                SignUp {
                    email,
                    password,
                    handle,
                    display_name,
                    phone,
                },
                client_of(ctx),
            )
            .await
            .map_err(gql)?;
        let mut payload = AuthPayload::from(session);
        payload.account.1 = Some(created_as);
        Ok(payload)
    }

    /// Signs in with email and password.
    async fn log_in(
        &self,
        ctx: &Context<'_>,
        email: String,
        password: String,
    ) -> async_graphql::Result<AuthPayload> {
        let session = core_of(ctx)?
            .log_in(&email, &password, client_of(ctx))
            .await
            .map_err(gql)?;
        Ok(session.into())
    }

    /// Exchanges a refresh token for new tokens; the presented token is used up.
    async fn refresh(
        &self,
        ctx: &Context<'_>,
        refresh_token: String,
    ) -> async_graphql::Result<AuthPayload> {
        let session = core_of(ctx)?.refresh(&refresh_token).await.map_err(gql)?;
        Ok(session.into())
    }

    /// Revokes the session (refresh-token family) of `refreshToken`; false if it is unknown.
    async fn log_out(
        &self,
        ctx: &Context<'_>,
        refresh_token: String,
    ) -> async_graphql::Result<bool> {
        core_of(ctx)?.log_out(&refresh_token).await.map_err(gql)
    }

    /// Deletes the caller's account (password required again).
    async fn delete_account(
        &self,
        ctx: &Context<'_>,
        password: String,
    ) -> async_graphql::Result<bool> {
        let who = caller(ctx).await?;
        core_of(ctx)?
            .delete_account(&who.member_id, &password)
            .await
            .map_err(gql)
    }
}
