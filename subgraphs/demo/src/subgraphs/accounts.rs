//! accounts: owns `User` (`@key(fields: "id")`) and the `me` / `users` / `user` root fields.

use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema, ID};

use crate::data::{UserRow, DATASET};

/// The accounts subgraph's executable schema.
pub(crate) type AccountsSchema = Schema<Query, EmptyMutation, EmptySubscription>;

/// Builds the accounts schema with federation (`_service`, `_entities`) enabled.
pub(crate) fn schema() -> AccountsSchema {
    Schema::build(Query, EmptyMutation, EmptySubscription)
        .enable_federation()
        .finish()
}

/// Root query type of accounts.
pub(crate) struct Query;

#[Object]
impl Query {
    // The "signed-in" user; the demo has no auth, so it is always the first account.
    async fn me(&self) -> Option<User> {
        DATASET.users.first().map(User)
    }

    async fn users(&self, #[graphql(default = 10)] first: Option<i32>) -> Vec<User> {
        // An explicit `null` falls back to the default as well.
        let n = usize::try_from(first.unwrap_or(10)).unwrap_or(0);
        DATASET.users.iter().take(n).map(User).collect()
    }

    async fn user(&self, id: ID) -> Option<User> {
        DATASET.user_index(&id).map(|i| User(&DATASET.users[i]))
    }

    #[graphql(entity)]
    async fn find_user_by_id(&self, id: ID) -> Option<User> {
        DATASET.user_index(&id).map(|i| User(&DATASET.users[i]))
    }
}

/// A user account.
pub(crate) struct User(&'static UserRow);

#[Object]
impl User {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    // Shareable because reviews can also resolve it through `Review.author @provides`.
    #[graphql(shareable)]
    async fn username(&self) -> &str {
        &self.0.username
    }

    async fn birth_date(&self) -> &str {
        &self.0.birth_date
    }
}
