//! reviews: owns `Review`; adds `reviews` to `User` and `Product`. `Review.author` provides
//! `username` (kept denormalized here), so the gateway need not ask accounts for it.

use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema, ID};

use crate::data::{ReviewRow, DATASET};

/// The reviews subgraph's executable schema.
pub(crate) type ReviewsSchema = Schema<Query, EmptyMutation, EmptySubscription>;

/// Builds the reviews schema with federation (`_service`, `_entities`) enabled.
pub(crate) fn schema() -> ReviewsSchema {
    Schema::build(Query, EmptyMutation, EmptySubscription)
        .enable_federation()
        .finish()
}

// Root query type of reviews.
pub(crate) struct Query;

#[Object]
impl Query {
    async fn review(&self, id: ID) -> Option<Review> {
        DATASET.review_index(&id).map(Review::at)
    }

    // Newest first; ids grow with time in the demo data.
    async fn latest_reviews(&self, #[graphql(default = 10)] first: Option<i32>) -> Vec<Review> {
        // An explicit `null` falls back to the default as well.
        let n = usize::try_from(first.unwrap_or(10)).unwrap_or(0);
        DATASET.reviews.iter().rev().take(n).map(Review).collect()
    }

    #[graphql(entity)]
    async fn find_user_by_id(&self, id: ID) -> Option<User> {
        DATASET.user_index(&id).map(User)
    }

    #[graphql(entity)]
    async fn find_product_by_upc(&self, upc: String) -> Option<Product> {
        DATASET.product_index(&upc).map(Product)
    }
}

// A review.
pub(crate) struct Review(&'static ReviewRow);

impl Review {
    fn at(index: usize) -> Review {
        Review(&DATASET.reviews[index])
    }
}

#[Object]
impl Review {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }

    async fn body(&self) -> &str {
        &self.0.body
    }

    async fn rating(&self) -> i32 {
        self.0.rating
    }

    #[graphql(provides = "username")]
    async fn author(&self) -> Option<User> {
        Some(User(self.0.author))
    }

    async fn product(&self) -> Option<Product> {
        Some(Product(self.0.product))
    }
}

// A user as reviews sees it: the key, the provided username, and the user's reviews.
pub(crate) struct User(usize);

#[Object]
impl User {
    async fn id(&self) -> ID {
        ID(DATASET.users[self.0].id.clone())
    }

    #[graphql(external)]
    async fn username(&self) -> &str {
        &DATASET.users[self.0].username
    }

    async fn reviews(&self) -> Vec<Review> {
        DATASET
            .reviews_by_user(self.0)
            .iter()
            .map(|&r| Review::at(r))
            .collect()
    }
}

// A product as reviews sees it: the key and its reviews.
pub(crate) struct Product(usize);

#[Object]
impl Product {
    async fn upc(&self) -> &str {
        &DATASET.products[self.0].upc
    }

    async fn reviews(&self) -> Vec<Review> {
        DATASET
            .reviews_by_product(self.0)
            .iter()
            .map(|&r| Review::at(r))
            .collect()
    }
}
