//! The profile subgraph's GraphQL schema: `Member` (owned here), degrees, suggestions and the
//! connection mutations.

use std::sync::Arc;

use async_graphql::{
    Context, EmptySubscription, Enum, ErrorExtensions, MaybeUndefined, Object, Schema,
    SimpleObject, ID,
};
use chrono::{DateTime, Utc};
use switchyard_subgraph_kit::auth::{self, Caller, JwtVerifier};
use switchyard_subgraph_kit::pagination::{decode_cursor, encode_cursor, PageInfo};
use switchyard_subgraph_kit::{MemberDirectory, OutboxRelay};

use crate::store::{
    Degree, GraphStore, MemberRecord, ProfileUpdate, RequestOutcome, StoreError, MAX_PAGE,
};
use crate::views::ViewTracker;

/// The executable profile schema.
pub type ProfileSchema = Schema<Query, Mutation, EmptySubscription>;

/// What resolvers need, put into the schema's data.
#[derive(Clone)]
pub struct ProfileDeps {
    /// The graph store.
    pub store: Arc<dyn GraphStore>,
    /// Emits rate-limited `profile.viewed` events.
    pub views: ViewTracker,
    /// Woken after a change that enqueued an event, so it moves in milliseconds.
    pub relay: Option<OutboxRelay>,
    /// Which members were deleted (from `account.deleted`): their tokens are refused.
    pub members: Option<MemberDirectory>,
}

/// Longest accepted display name, headline and location (characters).
const MAX_DISPLAY_NAME: usize = 100;
const MAX_HEADLINE: usize = 220;
const MAX_LOCATION: usize = 100;

/// Builds the schema; `deps` is `None` only for printing the SDL.
pub fn build_schema(deps: Option<ProfileDeps>, verifier: Option<JwtVerifier>) -> ProfileSchema {
    let mut builder = switchyard_subgraph_kit::guards::apply(
        Schema::build(Query, Mutation, EmptySubscription).enable_federation(),
    );
    if let Some(deps) = deps {
        if let Some(members) = &deps.members {
            builder = builder.data(members.clone());
        }
        builder = builder.data(deps);
    }
    if let Some(verifier) = verifier {
        builder = builder.data(verifier);
    }
    builder.finish()
}

fn coded(message: impl Into<String>, code: &'static str) -> async_graphql::Error {
    async_graphql::Error::new(message).extend_with(|_, e| e.set("code", code))
}

fn bad_input(message: impl Into<String>) -> async_graphql::Error {
    coded(message, "BAD_USER_INPUT")
}

/// Maps a store failure to a GraphQL error with an `extensions.code`; internal details are
/// logged, not sent to clients.
fn store_error(e: StoreError) -> async_graphql::Error {
    match &e {
        StoreError::NotFound(id) => coded(format!("no member with id `{id}`"), "NOT_FOUND"),
        StoreError::SelfConnection => bad_input("a member cannot connect to themselves"),
        StoreError::NoPendingRequest(from) => coded(
            format!("no pending connection request from `{from}`"),
            "NOT_FOUND",
        ),
        StoreError::Database(_) | StoreError::Graph(_) | StoreError::Event(_) => {
            tracing::error!(error = %e, "profile store failed");
            coded("the profile store is unavailable", "INTERNAL_SERVER_ERROR")
        }
    }
}

fn deps<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a ProfileDeps> {
    ctx.data::<ProfileDeps>()
}

/// `first` as a page size: negative is an error, above [`MAX_PAGE`] is capped, and an
/// explicit null means the default.
fn page_size(first: Option<i32>, default: i32) -> async_graphql::Result<usize> {
    usize::try_from(first.unwrap_or(default))
        .map(|n| n.min(MAX_PAGE))
        .map_err(|_| bad_input("`first` must not be negative"))
}

fn wake(deps: &ProfileDeps) {
    if let Some(relay) = &deps.relay {
        relay.wake();
    }
}

/// A member of the network, or the placeholder standing in for one that does not exist.
pub struct Member {
    record: MemberRecord,
    placeholder: bool,
}

impl From<MemberRecord> for Member {
    fn from(record: MemberRecord) -> Self {
        Member {
            record,
            placeholder: false,
        }
    }
}

/// The handle of the placeholder member (never a real handle: those are `[a-z0-9_]`).
pub const PLACEHOLDER_HANDLE: &str = "[deleted]";
/// The display name of the placeholder member.
pub const PLACEHOLDER_DISPLAY_NAME: &str = "Deleted member";

impl Member {
    /// What another service's reference to `id` resolves to when profile has no such member
    /// (the account was deleted, or the id never was a member): a member with that id, the
    /// placeholder handle and name and nothing else, so the list or object holding the
    /// reference still answers (`Member.deleted` tells clients).
    pub fn placeholder(id: String) -> Member {
        Member {
            record: MemberRecord {
                id,
                handle: PLACEHOLDER_HANDLE.to_owned(),
                display_name: PLACEHOLDER_DISPLAY_NAME.to_owned(),
                headline: None,
                location: None,
                joined_at: DateTime::<Utc>::UNIX_EPOCH,
            },
            placeholder: true,
        }
    }

    /// The stored record (the placeholder's for a placeholder).
    pub fn record(&self) -> &MemberRecord {
        &self.record
    }
}

#[Object]
impl Member {
    /// Member id (the account id).
    async fn id(&self) -> ID {
        ID(self.record.id.clone())
    }

    /// Unique handle.
    // Shareable: auth provides it on `signUp`'s answer (read-your-writes after sign-up).
    #[graphql(shareable)]
    async fn handle(&self) -> &str {
        &self.record.handle
    }

    /// Name shown to others.
    // Shareable: auth provides it on `signUp`'s answer.
    #[graphql(shareable)]
    async fn display_name(&self) -> &str {
        &self.record.display_name
    }

    /// One-line professional headline.
    async fn headline(&self) -> Option<&str> {
        self.record.headline.as_deref()
    }

    /// Free-text location.
    async fn location(&self) -> Option<&str> {
        self.record.location.as_deref()
    }

    /// When the member joined (the Unix epoch for the placeholder).
    async fn joined_at(&self) -> DateTime<Utc> {
        self.record.joined_at
    }

    /// True for the placeholder that stands in for a member who no longer exists (deleted
    /// account) or never did, where another service still refers to them (a post's author, a
    /// conversation member, a message's sender): handle `[deleted]`, display name
    /// `Deleted member`, no connections.
    async fn deleted(&self) -> bool {
        self.placeholder
    }

    /// The member's connections, ordered by member id.
    async fn connections(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<MemberConnection> {
        let first = page_size(first, 20)?;
        if self.placeholder {
            return Ok(MemberConnection {
                edges: Vec::new(),
                page_info: PageInfo {
                    has_next_page: false,
                    has_previous_page: false,
                    start_cursor: None,
                    end_cursor: None,
                },
                total_count: 0,
            });
        }
        let after_id = match &after {
            Some(cursor) => Some(
                decode_cursor(cursor).ok_or_else(|| bad_input("`after` is not a valid cursor"))?,
            ),
            None => None,
        };
        let page = deps(ctx)?
            .store
            .connections(&self.record.id, first, after_id.as_deref())
            .await
            .map_err(store_error)?;
        let edges: Vec<MemberEdge> = page
            .members
            .into_iter()
            .map(|m| MemberEdge {
                cursor: encode_cursor(&m.id),
                node: Member::from(m),
            })
            .collect();
        Ok(MemberConnection {
            page_info: PageInfo {
                has_next_page: page.has_next_page,
                has_previous_page: after.is_some(),
                start_cursor: edges.first().map(|e| e.cursor.clone()),
                end_cursor: edges.last().map(|e| e.cursor.clone()),
            },
            edges,
            total_count: count(page.total_count),
        })
    }

    /// How many connections the member has.
    async fn connection_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i32> {
        if self.placeholder {
            return Ok(0);
        }
        let n = deps(ctx)?
            .store
            .connection_count(&self.record.id)
            .await
            .map_err(store_error)?;
        Ok(count(n))
    }

    /// Connections this member shares with the member `with`, ordered by member id.
    async fn mutual_connections(
        &self,
        ctx: &Context<'_>,
        with: ID,
        #[graphql(default = 20)] first: Option<i32>,
    ) -> async_graphql::Result<Vec<Member>> {
        let first = page_size(first, 20)?;
        if self.placeholder {
            return Ok(Vec::new());
        }
        let members = deps(ctx)?
            .store
            .mutual_connections(&self.record.id, &with, first)
            .await
            .map_err(store_error)?;
        Ok(members.into_iter().map(Member::from).collect())
    }
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// A page of members.
#[derive(SimpleObject)]
pub struct MemberConnection {
    /// The members on this page, with their cursors.
    pub edges: Vec<MemberEdge>,
    /// Where this page sits.
    pub page_info: PageInfo,
    /// All items, across pages.
    pub total_count: i32,
}

/// A member and its cursor.
#[derive(SimpleObject)]
pub struct MemberEdge {
    /// Pass as `after` to continue after this member.
    pub cursor: String,
    /// The member.
    pub node: Member,
}

/// How far apart two members are.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum ConnectionDegree {
    /// Directly connected.
    First,
    /// They share a connection.
    Second,
    /// Three hops apart.
    Third,
    /// Further apart, or not connected at all.
    OutOfNetwork,
}

impl From<Degree> for ConnectionDegree {
    fn from(d: Degree) -> Self {
        match d {
            Degree::First => ConnectionDegree::First,
            Degree::Second => ConnectionDegree::Second,
            Degree::Third => ConnectionDegree::Third,
            Degree::OutOfNetwork => ConnectionDegree::OutOfNetwork,
        }
    }
}

/// A degree and one shortest path.
#[derive(SimpleObject)]
pub struct ConnectionDegreeResult {
    /// The degree.
    pub degree: ConnectionDegree,
    /// Members from `from` to `to`, both included; empty when out of network.
    pub path: Vec<Member>,
}

/// A suggested member.
#[derive(SimpleObject)]
pub struct Suggestion {
    /// The member.
    pub member: Member,
    /// Connections you have in common.
    pub mutual_count: i32,
}

/// Where a connection request stands.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum ConnectionRequestStatus {
    /// Waiting for the other member.
    Pending,
    /// Connected (the other member had asked too, or you already were).
    Connected,
}

/// The result of `requestConnection`.
#[derive(SimpleObject)]
pub struct ConnectionRequestResult {
    /// Where the request stands.
    pub status: ConnectionRequestStatus,
    /// The member asked.
    pub member: Member,
}

/// Reads.
pub struct Query;

impl Query {
    /// Returns the member and, for a signed-in reader who is someone else, records the view.
    async fn read_member(
        ctx: &Context<'_>,
        found: Option<MemberRecord>,
    ) -> async_graphql::Result<Option<Member>> {
        let Some(member) = found else {
            return Ok(None);
        };
        if let Some(viewer) = auth::optional_caller(ctx).await? {
            deps(ctx)?.views.viewed(&member.id, &viewer.member_id);
        }
        Ok(Some(Member::from(member)))
    }
}

#[Object]
impl Query {
    /// A member by id; null when there is none.
    async fn member(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Member>> {
        let found = deps(ctx)?.store.member(&id).await.map_err(store_error)?;
        Query::read_member(ctx, found).await
    }

    /// A member by handle (case-insensitive); null when there is none.
    async fn member_by_handle(
        &self,
        ctx: &Context<'_>,
        handle: String,
    ) -> async_graphql::Result<Option<Member>> {
        let found = deps(ctx)?
            .store
            .member_by_handle(&handle)
            .await
            .map_err(store_error)?;
        Query::read_member(ctx, found).await
    }

    /// How far apart two members are (up to 3 hops), with one shortest path.
    async fn connection_degree(
        &self,
        ctx: &Context<'_>,
        from: ID,
        to: ID,
    ) -> async_graphql::Result<ConnectionDegreeResult> {
        if from == to {
            return Err(bad_input("`from` and `to` must be different members"));
        }
        let store = &deps(ctx)?.store;
        let result = store.degree(&from, &to).await.map_err(store_error)?;
        // All at once, so a store that batches lookups (FalkorDB) reads them in one statement.
        let found = futures::future::try_join_all(result.path.iter().map(|id| store.member(id)))
            .await
            .map_err(store_error)?;
        let mut path = Vec::with_capacity(found.len());
        for (id, found) in result.path.iter().zip(found) {
            // A member deleted between the traversal and this read fails the answer rather
            // than returning a path with a hole.
            match found {
                Some(m) => path.push(Member::from(m)),
                None => return Err(store_error(StoreError::NotFound(id.clone()))),
            }
        }
        Ok(ConnectionDegreeResult {
            degree: result.degree.into(),
            path,
        })
    }

    /// Members the caller may know, most connections in common first.
    async fn people_you_may_know(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 10)] first: Option<i32>,
    ) -> async_graphql::Result<Vec<Suggestion>> {
        let first = page_size(first, 10)?;
        let me = auth::caller(ctx).await?;
        let suggestions = deps(ctx)?
            .store
            .people_you_may_know(&me.member_id, first)
            .await
            .map_err(store_error)?;
        Ok(suggestions
            .into_iter()
            .map(|s| Suggestion {
                member: Member::from(s.member),
                mutual_count: count(s.mutual_count),
            })
            .collect())
    }

    /// Members waiting for the caller to accept or decline their request, oldest first.
    async fn pending_connection_requests(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<Member>> {
        let me = auth::caller(ctx).await?;
        let members = deps(ctx)?
            .store
            .pending_requests(&me.member_id)
            .await
            .map_err(store_error)?;
        Ok(members.into_iter().map(Member::from).collect())
    }

    /// Federation entity resolver for `Member` by id. Other services only refer to members
    /// they were told about, so an id profile does not have is one whose account was deleted,
    /// a reference stored before references were checked, or a member that signed up moments
    /// ago whose `account.created` has not arrived (waited for, see [`SIGN_UP_ARRIVAL`]): it
    /// resolves to the
    /// [`Member::placeholder`] rather than null, which would null the whole list or object
    /// holding it (a conversation's members, a page of posts) for everyone.
    #[graphql(entity)]
    async fn find_member_by_id(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<Member>> {
        let deps = deps(ctx)?;
        let mut found = deps.store.member(&id).await.map_err(store_error)?;
        if found.is_none() {
            if let Some(wait) = arrival_wait(&id) {
                found = wait_for_member(deps, &id, wait).await?;
            }
        }
        match found {
            Some(_) => Query::read_member(ctx, found).await,
            None => Ok(Some(Member::placeholder(id.0))),
        }
    }
}

/// How long after its sign-up a member may still be on its way to profile: a reference to a
/// member this young that profile does not have yet is waited for (until the sign-up is this
/// old) rather than answered with the placeholder. Auth mints member ids as UUID v7, so an id
/// tells when it was made. `account.created` normally arrives within milliseconds; the bound
/// is what a client selecting profile-only fields under `signUp` can wait at most.
pub const SIGN_UP_ARRIVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// How long to wait for `id` if it may be a member that signed up moments ago, else `None`.
fn arrival_wait(id: &str) -> Option<std::time::Duration> {
    let uuid = uuid::Uuid::parse_str(id).ok()?;
    if uuid.get_version_num() != 7 {
        return None;
    }
    let (secs, nanos) = uuid.get_timestamp()?.to_unix();
    let minted = std::time::UNIX_EPOCH + std::time::Duration::new(secs, nanos);
    let age = std::time::SystemTime::now()
        .duration_since(minted)
        .unwrap_or_default();
    SIGN_UP_ARRIVAL.checked_sub(age).filter(|d| !d.is_zero())
}

/// Waits up to `wait` for `id` to be created by the account consumer; the member once it is,
/// `None` if the wait ends first or profile learns the account was deleted.
async fn wait_for_member(
    deps: &ProfileDeps,
    id: &str,
    wait: std::time::Duration,
) -> async_graphql::Result<Option<MemberRecord>> {
    let Some(directory) = &deps.members else {
        return Ok(None);
    };
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let arrival = directory.arrival();
        tokio::pin!(arrival);
        arrival.as_mut().enable();
        if let Some(member) = deps.store.member(id).await.map_err(store_error)? {
            return Ok(Some(member));
        }
        if directory.is_deleted(id).await {
            return Ok(None);
        }
        // Another replica's consumer creates members without waking this one: look again
        // every 100 ms too.
        let next =
            (tokio::time::Instant::now() + std::time::Duration::from_millis(100)).min(deadline);
        tokio::select! {
            _ = &mut arrival => {}
            _ = tokio::time::sleep_until(next) => {}
        }
        if tokio::time::Instant::now() >= deadline {
            return deps.store.member(id).await.map_err(store_error);
        }
    }
}

/// Changes, all as the signed-in caller.
pub struct Mutation;

async fn existing(store: &Arc<dyn GraphStore>, id: &str) -> async_graphql::Result<MemberRecord> {
    store
        .member(id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| store_error(StoreError::NotFound(id.to_owned())))
}

fn check_self(me: &Caller, other: &ID) -> async_graphql::Result<()> {
    if me.member_id == other.as_str() {
        return Err(bad_input("a member cannot connect to themselves"));
    }
    Ok(())
}

/// Trims a text field and checks its length; empty means "clear".
fn clean(value: &str, field: &str, max: usize) -> async_graphql::Result<Option<String>> {
    let value = value.trim();
    // No store can keep a NUL (PostgreSQL text and FalkorDB strings reject it); other control
    // characters only ever garble a profile.
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(bad_input(format!("`{field}` contains a control character")));
    }
    if value.chars().count() > max {
        return Err(bad_input(format!(
            "`{field}` is longer than {max} characters"
        )));
    }
    Ok((!value.is_empty()).then(|| value.to_owned()))
}

#[Object]
impl Mutation {
    /// Asks `to` to connect. If `to` had already asked the caller, they connect at once.
    async fn request_connection(
        &self,
        ctx: &Context<'_>,
        to: ID,
    ) -> async_graphql::Result<ConnectionRequestResult> {
        let me = auth::caller(ctx).await?;
        check_self(&me, &to)?;
        let deps = deps(ctx)?;
        let outcome = deps
            .store
            .request_connection(&me.member_id, &to)
            .await
            .map_err(store_error)?;
        if outcome == RequestOutcome::Connected {
            wake(deps);
        }
        let status = match outcome {
            RequestOutcome::Requested | RequestOutcome::AlreadyRequested => {
                ConnectionRequestStatus::Pending
            }
            RequestOutcome::Connected | RequestOutcome::AlreadyConnected => {
                ConnectionRequestStatus::Connected
            }
        };
        Ok(ConnectionRequestResult {
            status,
            member: Member::from(existing(&deps.store, &to).await?),
        })
    }

    /// Accepts `from`'s pending request; returns `from`. Accepting again changes nothing.
    async fn accept_connection(
        &self,
        ctx: &Context<'_>,
        from: ID,
    ) -> async_graphql::Result<Member> {
        let me = auth::caller(ctx).await?;
        check_self(&me, &from)?;
        let deps = deps(ctx)?;
        deps.store
            .accept_connection(&me.member_id, &from)
            .await
            .map_err(store_error)?;
        wake(deps);
        Ok(Member::from(existing(&deps.store, &from).await?))
    }

    /// Declines `from`'s pending request; false when there was none.
    async fn decline_connection(&self, ctx: &Context<'_>, from: ID) -> async_graphql::Result<bool> {
        let me = auth::caller(ctx).await?;
        check_self(&me, &from)?;
        deps(ctx)?
            .store
            .decline_connection(&me.member_id, &from)
            .await
            .map_err(store_error)
    }

    /// Removes the connection with `with` (and any pending request between you); false when
    /// there was none.
    async fn remove_connection(&self, ctx: &Context<'_>, with: ID) -> async_graphql::Result<bool> {
        let me = auth::caller(ctx).await?;
        check_self(&me, &with)?;
        let deps = deps(ctx)?;
        let removed = deps
            .store
            .remove_connection(&me.member_id, &with)
            .await
            .map_err(store_error)?;
        if removed {
            // `connection.removed` revokes what the connection granted elsewhere: send it now.
            wake(deps);
        }
        Ok(removed)
    }

    /// Updates the caller's profile. Omitted fields stay; an empty or null headline or
    /// location clears it.
    async fn update_profile(
        &self,
        ctx: &Context<'_>,
        headline: MaybeUndefined<String>,
        location: MaybeUndefined<String>,
        display_name: Option<String>,
    ) -> async_graphql::Result<Member> {
        let me = auth::caller(ctx).await?;
        let mut update = ProfileUpdate::default();
        if let Some(name) = display_name {
            let name = clean(&name, "displayName", MAX_DISPLAY_NAME)?
                .ok_or_else(|| bad_input("`displayName` must not be empty"))?;
            update.display_name = Some(name);
        }
        update.headline = match headline {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(v) => Some(clean(&v, "headline", MAX_HEADLINE)?),
        };
        update.location = match location {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(v) => Some(clean(&v, "location", MAX_LOCATION)?),
        };
        let member = deps(ctx)?
            .store
            .update_profile(&me.member_id, &update)
            .await
            .map_err(store_error)?;
        Ok(Member::from(member))
    }
}
