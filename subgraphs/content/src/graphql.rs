//! The content subgraph's GraphQL schema: posts, comments, reactions, search, and the
//! `Member.posts` field contributed to the profile service's `Member` entity.
//!
//! Visibility rules (the same for `post`, `Member.posts`, `searchPosts` and the entity resolver):
//! `PUBLIC` posts are visible to everyone, signed in or not; `CONNECTIONS` posts to their author
//! and to members connected to the author (granted by `connection.accepted` events, revoked by
//! `connection.removed`). A post the caller may not see is reported exactly like a missing one
//! (null, or NOT_FOUND in mutations), so its existence does not leak.

use std::sync::Arc;

use async_graphql::{
    Context, EmptySubscription, ErrorExtensions, Object, Schema, SimpleObject, ID,
};
use chrono::{DateTime, Utc};
use switchyard_subgraph_kit::auth::{caller, optional_caller};
use switchyard_subgraph_kit::pagination::{decode_cursor, encode_cursor, PageInfo};

use crate::search::{SearchError, SearchIndex, SearchScope};
use crate::store::{
    CommentRecord, ListPosition, PostRecord, ReactionKind, Store, StoreError, Visibility,
};

/// The executable content schema.
pub type ContentSchema = Schema<Query, Mutation, EmptySubscription>;

/// Largest `first` any list accepts.
pub const MAX_PAGE: i32 = 100;

/// What resolvers reach through the schema's data.
#[derive(Clone)]
pub struct ContentState {
    /// The database.
    pub store: Store,
    /// The search index.
    pub index: Arc<SearchIndex>,
}

/// Builds the schema (without data: add a [`ContentState`] and a `JwtVerifier` to execute).
pub fn schema_builder() -> async_graphql::SchemaBuilder<Query, Mutation, EmptySubscription> {
    switchyard_subgraph_kit::guards::apply(
        Schema::build(Query, Mutation, EmptySubscription).enable_federation(),
    )
}

fn coded(message: impl Into<String>, code: &'static str) -> async_graphql::Error {
    async_graphql::Error::new(message).extend_with(|_, e| e.set("code", code))
}

fn bad_input(message: impl Into<String>) -> async_graphql::Error {
    coded(message, "BAD_USER_INPUT")
}

fn store_error(e: StoreError) -> async_graphql::Error {
    match e {
        StoreError::NotFound(what) => coded(format!("{what} not found"), "NOT_FOUND"),
        StoreError::Forbidden(why) => coded(why, "FORBIDDEN"),
        StoreError::BadInput(why) => bad_input(why),
        other => {
            tracing::error!(error = %other, "content store failed");
            coded("content store unavailable", "INTERNAL_SERVER_ERROR")
        }
    }
}

fn search_error(e: SearchError) -> async_graphql::Error {
    match e {
        SearchError::BadQuery(why) => bad_input(why),
        other => {
            tracing::error!(error = %other, "search index failed");
            coded("search unavailable", "INTERNAL_SERVER_ERROR")
        }
    }
}

fn state<'a>(ctx: &Context<'a>) -> &'a ContentState {
    ctx.data_unchecked::<ContentState>()
}

fn page_size(first: Option<i32>, default: i32) -> async_graphql::Result<usize> {
    // An explicit null means "the default", like leaving the argument out.
    let first = first.unwrap_or(default);
    if !(0..=MAX_PAGE).contains(&first) {
        return Err(bad_input(format!("first must be between 0 and {MAX_PAGE}")));
    }
    Ok(first as usize)
}

fn list_position(after: Option<&str>) -> async_graphql::Result<Option<ListPosition>> {
    after
        .map(|cursor| {
            decode_cursor(cursor)
                .and_then(|key| ListPosition::parse(&key))
                .ok_or_else(|| bad_input("after is not a cursor from this list"))
        })
        .transpose()
}

fn parse_id(id: &ID) -> async_graphql::Result<String> {
    // Ids are UUIDs; rejecting anything else early keeps junk out of queries and logs.
    uuid::Uuid::parse_str(id.as_str())
        .map(|u| u.to_string())
        .map_err(|_| bad_input(format!("{:?} is not a valid id", id.as_str())))
}

/// A post id for a lookup: malformed ids find nothing rather than failing (queries return null).
fn lookup_id(id: &ID) -> Option<String> {
    uuid::Uuid::parse_str(id.as_str())
        .ok()
        .map(|u| u.to_string())
}

async fn visible_post(
    ctx: &Context<'_>,
    id: &str,
    viewer: Option<&str>,
) -> async_graphql::Result<Option<PostRecord>> {
    state(ctx)
        .store
        .readable_post(id, viewer)
        .await
        .map_err(store_error)
}

/// The root query type.
pub struct Query;

#[Object]
impl Query {
    /// A post by id; null when it does not exist or the caller may not see it. A signed-in
    /// reader who is not the author produces `post.viewed` (at most once an hour per post).
    async fn post(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Post>> {
        let viewer = optional_caller(ctx).await?;
        let Some(id) = lookup_id(&id) else {
            return Ok(None);
        };
        let viewer_id = viewer.as_ref().map(|c| c.member_id.as_str());
        let Some(post) = visible_post(ctx, &id, viewer_id).await? else {
            return Ok(None);
        };
        if let Some(viewer) = viewer_id {
            // A lost view event must not fail the read.
            if let Err(e) = state(ctx).store.record_view(&post, viewer).await {
                tracing::warn!(error = %e, post = %post.id, "could not record post view");
            }
        }
        Ok(Some(Post(post)))
    }

    /// Full-text search over the posts the caller may see, best match first. Bare words match
    /// with typos (1 edit for 4–7 letters, 2 from 8); `"quoted words"` match as a phrase.
    async fn search_posts(
        &self,
        ctx: &Context<'_>,
        query: String,
        #[graphql(default = 10)] first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<PostSearchConnection> {
        let first = page_size(first, 10)?;
        let offset = match after.as_deref() {
            None => 0,
            Some(cursor) => decode_cursor(cursor)
                .and_then(|key| key.strip_prefix("o:")?.parse::<usize>().ok())
                .ok_or_else(|| bad_input("after is not a cursor from this search"))?,
        };
        let viewer = optional_caller(ctx).await?;
        let state = state(ctx);
        let parsed = state.index.parse_query(&query).map_err(search_error)?;
        let scope = match viewer {
            None => SearchScope::default(),
            Some(caller) => SearchScope {
                connections: state
                    .store
                    .connections_of(&caller.member_id)
                    .await
                    .map_err(store_error)?,
                viewer: Some(caller.member_id),
            },
        };
        let index = state.index.clone();
        let page =
            tokio::task::spawn_blocking(move || index.search(&parsed, &scope, first, offset))
                .await
                .map_err(|e| coded(format!("search failed: {e}"), "INTERNAL_SERVER_ERROR"))?
                .map_err(search_error)?;
        let ids: Vec<String> = page.hits.iter().map(|h| h.post_id.clone()).collect();
        let mut posts: std::collections::HashMap<String, PostRecord> = state
            .store
            .posts_by_ids(&ids)
            .await
            .map_err(store_error)?
            .into_iter()
            .map(|p| (p.id.clone(), p))
            .collect();
        let mut edges = Vec::with_capacity(page.hits.len());
        for (i, hit) in page.hits.iter().enumerate() {
            // A hit whose post was deleted a moment ago (index not yet caught up) is skipped.
            let Some(post) = posts.remove(&hit.post_id) else {
                continue;
            };
            edges.push(PostSearchEdge {
                cursor: encode_cursor(&format!("o:{}", offset + i + 1)),
                score: f64::from(hit.score),
                snippet: page.highlighter.snippet(&post.body),
                node: Post(post),
            });
        }
        Ok(PostSearchConnection {
            page_info: PageInfo {
                has_next_page: page.has_next,
                has_previous_page: offset > 0,
                start_cursor: edges.first().map(|e| e.cursor.clone()),
                end_cursor: edges.last().map(|e| e.cursor.clone()),
            },
            edges,
            total_count: i32::try_from(page.total).unwrap_or(i32::MAX),
        })
    }

    /// Federation: resolves `Post` references (same visibility rules as `post`, no view event).
    #[graphql(entity)]
    async fn find_post_by_id(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<Post>> {
        let viewer = optional_caller(ctx).await?;
        let Some(id) = lookup_id(&id) else {
            return Ok(None);
        };
        let viewer_id = viewer.as_ref().map(|c| c.member_id.as_str());
        Ok(visible_post(ctx, &id, viewer_id).await?.map(Post))
    }

    /// Federation: a `Member` reference, so `Member.posts` can be resolved here.
    #[graphql(entity)]
    async fn find_member_by_id(&self, id: ID) -> Member {
        Member { id }
    }
}

/// The root mutation type. Every mutation needs a signed-in caller.
pub struct Mutation;

#[Object]
impl Mutation {
    /// Publishes a post (1–10 000 characters) by the caller.
    async fn create_post(
        &self,
        ctx: &Context<'_>,
        body: String,
        #[graphql(default_with = "Visibility::Public")] visibility: Visibility,
    ) -> async_graphql::Result<Post> {
        let caller = caller(ctx).await?;
        let post = state(ctx)
            .store
            .create_post(&caller.member_id, &body, visibility)
            .await
            .map_err(store_error)?;
        Ok(Post(post))
    }

    /// Replaces the body of the caller's own post.
    async fn edit_post(
        &self,
        ctx: &Context<'_>,
        id: ID,
        body: String,
    ) -> async_graphql::Result<Post> {
        let caller = caller(ctx).await?;
        let id = parse_id(&id)?;
        let post = state(ctx)
            .store
            .edit_post(&id, &caller.member_id, &body)
            .await
            .map_err(store_error)?;
        Ok(Post(post))
    }

    /// Deletes the caller's own post with its comments and reactions; true when done.
    async fn delete_post(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<bool> {
        let caller = caller(ctx).await?;
        let id = parse_id(&id)?;
        state(ctx)
            .store
            .delete_post(&id, &caller.member_id)
            .await
            .map_err(store_error)?;
        Ok(true)
    }

    /// Comments (1–10 000 characters) on a post the caller can see.
    async fn comment(
        &self,
        ctx: &Context<'_>,
        post_id: ID,
        body: String,
    ) -> async_graphql::Result<Comment> {
        let caller = caller(ctx).await?;
        let post_id = parse_id(&post_id)?;
        let comment = state(ctx)
            .store
            .add_comment(&post_id, &caller.member_id, &body)
            .await
            .map_err(store_error)?;
        Ok(Comment(comment))
    }

    /// Sets the caller's reaction on a post (one per member per post; a new kind replaces the
    /// old one). Returns the post.
    async fn react(
        &self,
        ctx: &Context<'_>,
        post_id: ID,
        kind: ReactionKind,
    ) -> async_graphql::Result<Post> {
        let caller = caller(ctx).await?;
        let post_id = parse_id(&post_id)?;
        let post = state(ctx)
            .store
            .react(&post_id, &caller.member_id, kind)
            .await
            .map_err(store_error)?;
        Ok(Post(post))
    }
}

/// A post.
pub struct Post(pub PostRecord);

#[Object]
impl Post {
    /// The post id (UUID).
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }

    /// The text.
    async fn body(&self) -> &str {
        &self.0.body
    }

    /// Who may read it.
    async fn visibility(&self) -> Visibility {
        self.0.visibility
    }

    /// When it was published.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// When its body last changed; null if never edited.
    async fn edited_at(&self) -> Option<DateTime<Utc>> {
        self.0.edited_at
    }

    /// The author.
    async fn author(&self) -> Member {
        Member {
            id: ID(self.0.author_id.clone()),
        }
    }

    /// Comments, oldest first.
    async fn comments(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<CommentConnection> {
        let first = page_size(first, 20)?;
        let after = list_position(after.as_deref())?;
        let store = &state(ctx).store;
        let (comments, more) = store
            .comments(&self.0.id, first, after.as_ref())
            .await
            .map_err(store_error)?;
        let total = store
            .count_comments(&self.0.id)
            .await
            .map_err(store_error)?;
        let edges: Vec<CommentEdge> = comments
            .into_iter()
            .map(|c| CommentEdge {
                cursor: encode_cursor(&ListPosition::of_comment(&c).key()),
                node: Comment(c),
            })
            .collect();
        Ok(CommentConnection {
            page_info: PageInfo {
                has_next_page: more,
                has_previous_page: after.is_some(),
                start_cursor: edges.first().map(|e| e.cursor.clone()),
                end_cursor: edges.last().map(|e| e.cursor.clone()),
            },
            edges,
            total_count: i32::try_from(total).unwrap_or(i32::MAX),
        })
    }

    /// Reaction counts and the caller's own reaction.
    async fn reactions(&self, ctx: &Context<'_>) -> async_graphql::Result<ReactionSummary> {
        let viewer = optional_caller(ctx).await?;
        let (counts, own) = state(ctx)
            .store
            .reactions(&self.0.id, viewer.as_ref().map(|c| c.member_id.as_str()))
            .await
            .map_err(store_error)?;
        let total = counts.iter().map(|(_, n)| n).sum::<i64>();
        Ok(ReactionSummary {
            total: i32::try_from(total).unwrap_or(i32::MAX),
            by_kind: counts
                .into_iter()
                .map(|(kind, count)| ReactionCount {
                    kind,
                    count: i32::try_from(count).unwrap_or(i32::MAX),
                })
                .collect(),
            viewer_reaction: own,
        })
    }
}

/// A member (owned by the profile service); content adds the member's posts.
pub struct Member {
    id: ID,
}

#[Object]
impl Member {
    /// The member id.
    async fn id(&self) -> &ID {
        &self.id
    }

    /// The member's posts the caller may see, newest first. Nullable so a content outage nulls
    /// only this field, not the member profile it hangs off.
    async fn posts(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Option<PostConnection>> {
        let first = page_size(first, 20)?;
        let after = list_position(after.as_deref())?;
        let viewer = optional_caller(ctx).await?;
        let store = &state(ctx).store;
        let author = self.id.as_str();
        let include_connections = match &viewer {
            None => false,
            Some(c) => store
                .sees_connections_posts(&c.member_id, author)
                .await
                .map_err(store_error)?,
        };
        let (posts, more) = store
            .posts_by_author(author, include_connections, first, after.as_ref())
            .await
            .map_err(store_error)?;
        let total = store
            .count_posts_by_author(author, include_connections)
            .await
            .map_err(store_error)?;
        let edges: Vec<PostEdge> = posts
            .into_iter()
            .map(|p| PostEdge {
                cursor: encode_cursor(&ListPosition::of_post(&p).key()),
                node: Post(p),
            })
            .collect();
        Ok(Some(PostConnection {
            page_info: PageInfo {
                has_next_page: more,
                has_previous_page: after.is_some(),
                start_cursor: edges.first().map(|e| e.cursor.clone()),
                end_cursor: edges.last().map(|e| e.cursor.clone()),
            },
            edges,
            total_count: i32::try_from(total).unwrap_or(i32::MAX),
        }))
    }
}

/// A comment on a post.
pub struct Comment(pub CommentRecord);

#[Object]
impl Comment {
    /// The comment id (UUID).
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }

    /// The text.
    async fn body(&self) -> &str {
        &self.0.body
    }

    /// When it was written.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// The commenter.
    async fn author(&self) -> Member {
        Member {
            id: ID(self.0.author_id.clone()),
        }
    }
}

/// Reactions on a post.
#[derive(SimpleObject)]
pub struct ReactionSummary {
    /// All reactions.
    pub total: i32,
    /// Counts per kind (kinds nobody used are left out).
    pub by_kind: Vec<ReactionCount>,
    /// The caller's reaction, if signed in and reacted.
    pub viewer_reaction: Option<ReactionKind>,
}

/// How many reactions of one kind.
#[derive(SimpleObject)]
pub struct ReactionCount {
    /// The kind.
    pub kind: ReactionKind,
    /// How many.
    pub count: i32,
}

/// A page of posts.
#[derive(SimpleObject)]
pub struct PostConnection {
    /// The posts with their cursors.
    pub edges: Vec<PostEdge>,
    /// Paging state.
    pub page_info: PageInfo,
    /// Posts in the whole list.
    pub total_count: i32,
}

/// A post in a list.
#[derive(SimpleObject)]
pub struct PostEdge {
    /// Pass as `after` to continue after this post.
    pub cursor: String,
    /// The post.
    pub node: Post,
}

/// A page of comments.
#[derive(SimpleObject)]
pub struct CommentConnection {
    /// The comments with their cursors.
    pub edges: Vec<CommentEdge>,
    /// Paging state.
    pub page_info: PageInfo,
    /// Comments on the post.
    pub total_count: i32,
}

/// A comment in a list.
#[derive(SimpleObject)]
pub struct CommentEdge {
    /// Pass as `after` to continue after this comment.
    pub cursor: String,
    /// The comment.
    pub node: Comment,
}

/// A page of search results.
#[derive(SimpleObject)]
pub struct PostSearchConnection {
    /// Results, best first.
    pub edges: Vec<PostSearchEdge>,
    /// Paging state.
    pub page_info: PageInfo,
    /// Matching posts in total.
    pub total_count: i32,
}

/// One search result.
#[derive(SimpleObject)]
pub struct PostSearchEdge {
    /// Pass as `after` to continue after this result.
    pub cursor: String,
    /// Relevance (BM25; higher is better).
    pub score: f64,
    /// An excerpt of the body, HTML-escaped, with matched words in `<b>…</b>`.
    pub snippet: String,
    /// The post.
    pub node: Post,
}
