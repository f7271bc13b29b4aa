//! The analytics subgraph's GraphQL schema: `Member.stats`, `Post.stats` and `trendingPosts`.
//!
//! Everything here is public: stats are counts, never who viewed or reacted, so any caller
//! (signed in or not) may read any member's or post's stats.

use async_graphql::{
    Context, EmptyMutation, EmptySubscription, ErrorExtensions, Object, Schema, ID,
};

use crate::store::{MemberMetric, Store};

/// The analytics subgraph schema type.
pub type AnalyticsSchema = Schema<Query, EmptyMutation, EmptySubscription>;

/// Longest window member stats accept, in days.
pub const MAX_DAYS: i32 = 365;
/// Longest window `trendingPosts` accepts, in hours (30 days).
pub const MAX_HOURS: i32 = 720;
/// Most posts `trendingPosts` returns.
pub const MAX_FIRST: i32 = 100;

/// Builds the schema; resolvers read the store from the schema data (`None` for SDL export).
pub fn build_schema(store: Option<Store>) -> AnalyticsSchema {
    let builder = switchyard_subgraph_kit::guards::apply(
        Schema::build(Query, EmptyMutation, EmptySubscription).enable_federation(),
    );
    match store {
        Some(store) => builder.data(store).finish(),
        None => builder.finish(),
    }
}

fn bad_input(message: String) -> async_graphql::Error {
    async_graphql::Error::new(message).extend_with(|_, e| e.set("code", "BAD_USER_INPUT"))
}

fn store_error(e: impl std::fmt::Display) -> async_graphql::Error {
    tracing::error!(error = %e, "analytics store query failed");
    async_graphql::Error::new("the analytics store is unavailable")
        .extend_with(|_, e| e.set("code", "INTERNAL_SERVER_ERROR"))
}

fn store<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Store> {
    ctx.data::<Store>()
}

/// Checks an optional integer argument against `1..=max`; `None` (explicit null) takes `default`.
fn in_range(name: &str, value: Option<i32>, default: i32, max: i32) -> async_graphql::Result<u32> {
    let value = value.unwrap_or(default);
    if (1..=max).contains(&value) {
        Ok(value as u32)
    } else {
        Err(bad_input(format!(
            "`{name}` must be between 1 and {max}, got {value}"
        )))
    }
}

fn clamp_i32(n: i64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Root query type.
pub struct Query;

/// Trending posts, and the federation entry points for `Member` and `Post`.
#[Object]
impl Query {
    /// Public posts with the most engagement over the last `hours` (1..=720, current hour
    /// included), best first: score = reactions + 2 × comments + 0.1 × impressions counted
    /// inside the window. Deleted posts are excluded; ties go to the newer post.
    async fn trending_posts(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 24)] hours: Option<i32>,
        #[graphql(default = 10)] first: Option<i32>,
    ) -> async_graphql::Result<Vec<Post>> {
        let hours = in_range("hours", hours, 24, MAX_HOURS)?;
        let first = in_range("first", first, 10, MAX_FIRST)?;
        let ranked = store(ctx)?
            .trending(hours, first)
            .await
            .map_err(store_error)?;
        Ok(ranked
            .into_iter()
            .map(|t| Post { id: ID(t.post_id) })
            .collect())
    }

    /// Federation entity resolver: any member id has stats (zeros when nothing happened).
    #[graphql(entity)]
    async fn find_member_by_id(&self, id: ID) -> Member {
        Member { id }
    }

    /// Federation entity resolver: any post id has stats (zeros when nothing happened).
    #[graphql(entity)]
    async fn find_post_by_id(&self, id: ID) -> Post {
        Post { id }
    }
}

/// A member (owned by the profile subgraph); analytics contributes `stats`.
pub struct Member {
    id: ID,
}

// No GraphQL description: composition would show it on the owner's type.
#[Object]
impl Member {
    // Undocumented in GraphQL for the same reason as the type.
    async fn id(&self) -> &ID {
        &self.id
    }

    /// Activity counters for this member; readable by anyone. Nullable, like every field this
    /// service adds to another's entity, so an analytics outage nulls only the counters.
    async fn stats(&self) -> Option<MemberStats> {
        Some(MemberStats {
            member_id: self.id.to_string(),
        })
    }
}

/// Counters about one member over a window of recent UTC days (`days`: 1..=365, today
/// included; default 30).
pub struct MemberStats {
    member_id: String,
}

impl MemberStats {
    async fn count(
        &self,
        ctx: &Context<'_>,
        metric: MemberMetric,
        days: Option<i32>,
    ) -> async_graphql::Result<i32> {
        let days = in_range("days", days, 30, MAX_DAYS)?;
        let counts = store(ctx)?
            .member_counts(&self.member_id, days)
            .await
            .map_err(store_error)?;
        Ok(clamp_i32(counts.get(metric)))
    }
}

/// Counters about one member over a window of recent UTC days (`days`: 1..=365, today
/// included; default 30). Readable by anyone.
#[Object]
impl MemberStats {
    /// Times other signed-in members viewed this member's profile.
    async fn profile_views(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 30)] days: Option<i32>,
    ) -> async_graphql::Result<i32> {
        self.count(ctx, MemberMetric::ProfileViews, days).await
    }

    /// Reads of this member's posts by other signed-in members.
    async fn post_impressions(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 30)] days: Option<i32>,
    ) -> async_graphql::Result<i32> {
        self.count(ctx, MemberMetric::PostImpressions, days).await
    }

    /// Reactions added to this member's posts.
    async fn reactions_received(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 30)] days: Option<i32>,
    ) -> async_graphql::Result<i32> {
        self.count(ctx, MemberMetric::ReactionsReceived, days).await
    }

    /// Connections this member gained (either side of an accepted request).
    async fn connections_gained(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 30)] days: Option<i32>,
    ) -> async_graphql::Result<i32> {
        self.count(ctx, MemberMetric::ConnectionsGained, days).await
    }

    /// Chat messages this member sent.
    async fn messages_sent(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 30)] days: Option<i32>,
    ) -> async_graphql::Result<i32> {
        self.count(ctx, MemberMetric::MessagesSent, days).await
    }
}

/// A post (owned by the content subgraph); analytics contributes `stats`.
pub struct Post {
    id: ID,
}

// No GraphQL description: composition would show it on the owner's type.
#[Object]
impl Post {
    // Undocumented in GraphQL for the same reason as the type.
    async fn id(&self) -> &ID {
        &self.id
    }

    /// All-time engagement counters of this post; readable by anyone. Nullable for the same
    /// reason as `Member.stats`.
    async fn stats(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<PostStats>> {
        let totals = store(ctx)?
            .post_totals(self.id.as_str())
            .await
            .map_err(store_error)?;
        Ok(Some(PostStats {
            impressions: clamp_i32(totals.impressions),
            reactions: clamp_i32(totals.reactions),
            comments: clamp_i32(totals.comments),
        }))
    }
}

/// All-time engagement counters of one post.
#[derive(async_graphql::SimpleObject)]
pub struct PostStats {
    /// Reads by signed-in members other than the author.
    pub impressions: i32,
    /// Reactions added.
    pub reactions: i32,
    /// Comments added.
    pub comments: i32,
}
