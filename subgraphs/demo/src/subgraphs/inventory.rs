//! inventory: extends `Product` with stock fields; `shippingEstimate` needs the product's
//! `price` and `weight`, which products owns (`@requires` over `@external` fields).

use async_graphql::{EmptyMutation, EmptySubscription, Error, Object, Result, Schema};

use crate::data::DATASET;

/// The inventory subgraph's executable schema.
pub(crate) type InventorySchema = Schema<Query, EmptyMutation, EmptySubscription>;

/// Builds the inventory schema with federation (`_service`, `_entities`) enabled.
pub(crate) fn schema() -> InventorySchema {
    Schema::build(Query, EmptyMutation, EmptySubscription)
        .enable_federation()
        .finish()
}

// Root query type: inventory has no root fields of its own, only the entity resolver.
pub(crate) struct Query;

#[Object]
impl Query {
    // `price` and `weight` arrive in the representation only when the gateway fetches
    // `shippingEstimate`, hence optional.
    #[graphql(entity)]
    async fn find_product_by_upc(
        &self,
        #[graphql(key)] upc: String,
        price: Option<i32>,
        weight: Option<i32>,
    ) -> Option<Product> {
        let stock = DATASET
            .product_index(&upc)
            .map(|i| DATASET.stock[i].quantity)?;
        Some(Product {
            upc,
            price,
            weight,
            stock,
        })
    }
}

// A product as inventory sees it: its key, the external fields the gateway sent, and the stock.
pub(crate) struct Product {
    upc: String,
    price: Option<i32>,
    weight: Option<i32>,
    stock: i32,
}

// Free shipping above this price, as in the classic federation demo.
const FREE_SHIPPING_ABOVE: i32 = 1000;

#[Object]
impl Product {
    async fn upc(&self) -> &str {
        &self.upc
    }

    #[graphql(external)]
    async fn price(&self) -> Result<i32> {
        self.price
            .ok_or_else(|| Error::new("Product.price is external: resolved by products"))
    }

    #[graphql(external)]
    async fn weight(&self) -> Result<i32> {
        self.weight
            .ok_or_else(|| Error::new("Product.weight is external: resolved by products"))
    }

    async fn in_stock(&self) -> bool {
        self.stock > 0
    }

    #[graphql(requires = "price weight")]
    async fn shipping_estimate(&self) -> Result<Option<i32>> {
        match (self.price, self.weight) {
            (Some(price), _) if price > FREE_SHIPPING_ABOVE => Ok(Some(0)),
            // Half a unit per 100 g, rounded up: a cheap and visibly derived number.
            (Some(_), Some(weight)) => Ok(Some((weight + 199) / 200)),
            _ => Err(Error::new(
                "shippingEstimate needs the product's price and weight in the representation",
            )),
        }
    }
}
