//! products: owns `Product` (`@key(fields: "upc")`), its catalogue fields and `topProducts`.

use async_graphql::{EmptyMutation, EmptySubscription, Enum, Object, Schema};

use crate::data::{self, ProductRow, DATASET};

/// The products subgraph's executable schema.
pub(crate) type ProductsSchema = Schema<Query, EmptyMutation, EmptySubscription>;

/// Builds the products schema with federation (`_service`, `_entities`) enabled.
pub(crate) fn schema() -> ProductsSchema {
    Schema::build(Query, EmptyMutation, EmptySubscription)
        .enable_federation()
        .finish()
}

/// Root query type of products.
pub(crate) struct Query;

#[Object]
impl Query {
    async fn top_products(&self, #[graphql(default = 5)] first: Option<i32>) -> Vec<Product> {
        // An explicit `null` falls back to the default as well.
        let n = usize::try_from(first.unwrap_or(5)).unwrap_or(0);
        DATASET.products.iter().take(n).map(Product).collect()
    }

    async fn product(&self, upc: String) -> Option<Product> {
        DATASET
            .product_index(&upc)
            .map(|i| Product(&DATASET.products[i]))
    }

    async fn products_by_category(&self, category: Category) -> Vec<Product> {
        DATASET
            .products
            .iter()
            .filter(|p| Category::from(p.category) == category)
            .map(Product)
            .collect()
    }

    #[graphql(entity)]
    async fn find_product_by_upc(&self, upc: String) -> Option<Product> {
        DATASET
            .product_index(&upc)
            .map(|i| Product(&DATASET.products[i]))
    }
}

// Catalogue category of a product. Plain `//` comments: doc comments would become GraphQL
// descriptions, and the hand-composed supergraph would have to carry them.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Category {
    Books,
    Electronics,
    Furniture,
    Garden,
    Kitchen,
    Toys,
}

impl From<data::Category> for Category {
    fn from(c: data::Category) -> Self {
        match c {
            data::Category::Books => Category::Books,
            data::Category::Electronics => Category::Electronics,
            data::Category::Furniture => Category::Furniture,
            data::Category::Garden => Category::Garden,
            data::Category::Kitchen => Category::Kitchen,
            data::Category::Toys => Category::Toys,
        }
    }
}

/// A catalogue entry.
pub(crate) struct Product(&'static ProductRow);

#[Object]
impl Product {
    async fn upc(&self) -> &str {
        &self.0.upc
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    async fn price(&self) -> i32 {
        self.0.price
    }

    async fn weight(&self) -> i32 {
        self.0.weight
    }

    async fn category(&self) -> Category {
        self.0.category.into()
    }
}
