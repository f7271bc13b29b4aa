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

/// A member, owned by the profile subgraph; auth only references it.
#[derive(SimpleObject)]
#[graphql(unresolvable = "id")]
pub struct Member {
    /// The member id (= account id).
    pub id: ID,
}

/// A sign-in account. Only ever returned to its owner (`me`, sign-up, log-in, refresh).
pub struct Account(core::Account);

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
            account: Account(s.account),
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
            .map(Account))
    }
}

/// Mutations.
pub struct Mutation;

#[Object]
impl Mutation {
    /// Creates an account and signs in.
    async fn sign_up(
        &self,
        ctx: &Context<'_>,
        email: String,
        password: String,
        handle: String,
        display_name: String,
        #[graphql(default)] phone: Option<String>,
    ) -> async_graphql::Result<AuthPayload> {
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
        Ok(session.into())
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
