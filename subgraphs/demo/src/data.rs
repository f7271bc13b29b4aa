//! The demo's deterministic in-memory data set.
//!
//! Every subgraph reads the same generated rows so that keys agree across services (a review's
//! author id exists in accounts, its product upc exists in products). The sizes are chosen for the
//! nested benchmark query (`schema/demo/queries/nested.json`): the top 5 products have 8 reviews
//! each, every author has 10 reviews, which makes the federated response about 93 KB
//! (`scripts/nested_reference.py` computes it without a gateway).

use std::collections::HashMap;
use std::sync::LazyLock;

/// How many products exist; `topProducts(first:)` returns a prefix of them.
pub const PRODUCT_COUNT: usize = 50;
/// Reviews per product; every product has exactly this many.
pub const REVIEWS_PER_PRODUCT: usize = 8;
/// Reviews per user; every user wrote exactly this many.
pub const REVIEWS_PER_USER: usize = 10;
/// How many users exist (all reviews spread evenly over them).
pub const USER_COUNT: usize = PRODUCT_COUNT * REVIEWS_PER_PRODUCT / REVIEWS_PER_USER;

/// A product category (the `Category` enum of the products subgraph).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// Printed and digital books.
    Books,
    /// Gadgets and devices.
    Electronics,
    /// Chairs, tables, shelves.
    Furniture,
    /// Tools and plants for the garden.
    Garden,
    /// Pots, pans and utensils.
    Kitchen,
    /// Games and toys.
    Toys,
}

impl Category {
    /// All categories, in the order products cycle through them.
    pub const ALL: [Category; 6] = [
        Category::Furniture,
        Category::Kitchen,
        Category::Electronics,
        Category::Books,
        Category::Garden,
        Category::Toys,
    ];
}

/// An account (owned by the accounts subgraph).
#[derive(Debug, Clone)]
pub struct UserRow {
    /// The `User` key.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Unique handle; also denormalized into the reviews subgraph (`@provides`).
    pub username: String,
    /// ISO-8601 date.
    pub birth_date: String,
}

/// A catalogue entry (owned by the products subgraph).
#[derive(Debug, Clone)]
pub struct ProductRow {
    /// The `Product` key.
    pub upc: String,
    /// Display name.
    pub name: String,
    /// Price in whole currency units.
    pub price: i32,
    /// Shipping weight in grams.
    pub weight: i32,
    /// Catalogue category.
    pub category: Category,
}

/// Stock level of a product (owned by the inventory subgraph).
#[derive(Debug, Clone)]
pub struct StockRow {
    /// Units on hand; zero means out of stock.
    pub quantity: i32,
}

/// A review (owned by the reviews subgraph).
#[derive(Debug, Clone)]
pub struct ReviewRow {
    /// The review id.
    pub id: String,
    /// Free text.
    pub body: String,
    /// 1..=5 stars.
    pub rating: i32,
    /// Index into [`Dataset::users`].
    pub author: usize,
    /// Index into [`Dataset::products`].
    pub product: usize,
}

/// All rows of all four subgraphs, with the indexes their resolvers need.
#[derive(Debug)]
pub struct Dataset {
    /// Users in id order.
    pub users: Vec<UserRow>,
    /// Products in ranking order (`topProducts` returns a prefix).
    pub products: Vec<ProductRow>,
    /// Stock per product, parallel to `products`.
    pub stock: Vec<StockRow>,
    /// Reviews in id order.
    pub reviews: Vec<ReviewRow>,
    user_by_id: HashMap<String, usize>,
    product_by_upc: HashMap<String, usize>,
    review_by_id: HashMap<String, usize>,
    reviews_by_user: Vec<Vec<usize>>,
    reviews_by_product: Vec<Vec<usize>>,
}

/// The process-wide data set, generated once on first use.
pub static DATASET: LazyLock<Dataset> = LazyLock::new(Dataset::generate);

const FIRST_NAMES: [&str; 16] = [
    "Ada",
    "Alan",
    "Barbara",
    "Claude",
    "Donald",
    "Edsger",
    "Frances",
    "Grace",
    "Hedy",
    "John",
    "Katherine",
    "Leslie",
    "Margaret",
    "Niklaus",
    "Radia",
    "Tim",
];
const LAST_NAMES: [&str; 12] = [
    "Lovelace", "Turing", "Liskov", "Shannon", "Knuth", "Dijkstra", "Allen", "Hopper", "Lamarr",
    "Backus", "Johnson", "Lamport",
];
const ADJECTIVES: [&str; 12] = [
    "Ergonomic",
    "Rustic",
    "Sleek",
    "Handcrafted",
    "Compact",
    "Durable",
    "Vintage",
    "Modern",
    "Portable",
    "Elegant",
    "Sturdy",
    "Lightweight",
];
const MATERIALS: [&str; 8] = [
    "Oak", "Steel", "Bamboo", "Granite", "Cotton", "Copper", "Walnut", "Ceramic",
];
const NOUNS: [&str; 6] = [
    "Chair", "Kettle", "Speaker", "Notebook", "Planter", "Puzzle",
];
const WORDS: [&str; 32] = [
    "great",
    "value",
    "quality",
    "arrived",
    "quickly",
    "works",
    "as",
    "described",
    "would",
    "buy",
    "again",
    "sturdy",
    "build",
    "looks",
    "better",
    "than",
    "expected",
    "a",
    "bit",
    "pricey",
    "but",
    "worth",
    "it",
    "my",
    "family",
    "loves",
    "this",
    "one",
    "solid",
    "choice",
    "overall",
    "recommend",
];

/// splitmix64: tiny, seedable, and stable across platforms and Rust versions.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

impl Dataset {
    fn generate() -> Dataset {
        let mut rng = SplitMix(0x5717_C4A2_D000_0001);

        let users: Vec<UserRow> = (0..USER_COUNT)
            .map(|i| {
                let first = FIRST_NAMES[i % FIRST_NAMES.len()];
                let last = LAST_NAMES[(i * 5 + i / FIRST_NAMES.len()) % LAST_NAMES.len()];
                UserRow {
                    id: (i + 1).to_string(),
                    name: format!("{first} {last}"),
                    username: format!("{}{}", first.to_lowercase(), i + 1),
                    birth_date: format!(
                        "{}-{:02}-{:02}",
                        1950 + rng.below(50),
                        1 + rng.below(12),
                        1 + rng.below(28)
                    ),
                }
            })
            .collect();

        let products: Vec<ProductRow> = (0..PRODUCT_COUNT)
            .map(|i| ProductRow {
                upc: format!("{}", 1001 + i),
                name: format!(
                    "{} {} {}",
                    ADJECTIVES[rng.below(ADJECTIVES.len())],
                    MATERIALS[rng.below(MATERIALS.len())],
                    NOUNS[i % NOUNS.len()]
                ),
                price: 5 + rng.below(1500) as i32,
                weight: 50 + rng.below(5000) as i32,
                category: Category::ALL[i % Category::ALL.len()],
            })
            .collect();

        let stock = (0..PRODUCT_COUNT)
            .map(|_| StockRow {
                // About one product in five is sold out.
                quantity: if rng.below(5) == 0 {
                    0
                } else {
                    1 + rng.below(200) as i32
                },
            })
            .collect();

        // Review j belongs to product j / REVIEWS_PER_PRODUCT; its author is a bijection of j
        // within each block of USER_COUNT reviews, so every user gets exactly REVIEWS_PER_USER
        // reviews and a product never has the same author twice.
        let reviews: Vec<ReviewRow> = (0..PRODUCT_COUNT * REVIEWS_PER_PRODUCT)
            .map(|j| {
                let words = 12 + rng.below(6);
                let mut body = String::with_capacity(96);
                for w in 0..words {
                    let word = WORDS[rng.below(WORDS.len())];
                    if w == 0 {
                        let mut chars = word.chars();
                        body.extend(chars.next().map(|c| c.to_ascii_uppercase()));
                        body.push_str(chars.as_str());
                    } else {
                        body.push(' ');
                        body.push_str(word);
                    }
                }
                body.push('.');
                ReviewRow {
                    id: (j + 1).to_string(),
                    body,
                    rating: 1 + rng.below(5) as i32,
                    author: (j * 7 + 3) % USER_COUNT,
                    product: j / REVIEWS_PER_PRODUCT,
                }
            })
            .collect();

        let mut reviews_by_user = vec![Vec::new(); USER_COUNT];
        let mut reviews_by_product = vec![Vec::new(); PRODUCT_COUNT];
        for (j, r) in reviews.iter().enumerate() {
            reviews_by_user[r.author].push(j);
            reviews_by_product[r.product].push(j);
        }

        Dataset {
            user_by_id: users
                .iter()
                .enumerate()
                .map(|(i, u)| (u.id.clone(), i))
                .collect(),
            product_by_upc: products
                .iter()
                .enumerate()
                .map(|(i, p)| (p.upc.clone(), i))
                .collect(),
            review_by_id: reviews
                .iter()
                .enumerate()
                .map(|(i, r)| (r.id.clone(), i))
                .collect(),
            users,
            products,
            stock,
            reviews,
            reviews_by_user,
            reviews_by_product,
        }
    }

    /// The index of the user with this id.
    pub fn user_index(&self, id: &str) -> Option<usize> {
        self.user_by_id.get(id).copied()
    }

    /// The index of the product with this upc.
    pub fn product_index(&self, upc: &str) -> Option<usize> {
        self.product_by_upc.get(upc).copied()
    }

    /// The index of the review with this id.
    pub fn review_index(&self, id: &str) -> Option<usize> {
        self.review_by_id.get(id).copied()
    }

    /// Review indexes written by a user, oldest first.
    pub fn reviews_by_user(&self, user: usize) -> &[usize] {
        &self.reviews_by_user[user]
    }

    /// Review indexes about a product, oldest first.
    pub fn reviews_by_product(&self, product: usize) -> &[usize] {
        &self.reviews_by_product[product]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_user_and_product_has_the_planned_review_count() {
        let d = &*DATASET;
        assert_eq!(d.users.len(), USER_COUNT);
        for u in 0..USER_COUNT {
            assert_eq!(d.reviews_by_user(u).len(), REVIEWS_PER_USER);
        }
        for p in 0..PRODUCT_COUNT {
            let rs = d.reviews_by_product(p);
            assert_eq!(rs.len(), REVIEWS_PER_PRODUCT);
            let mut authors: Vec<usize> = rs.iter().map(|&r| d.reviews[r].author).collect();
            authors.sort_unstable();
            authors.dedup();
            assert_eq!(
                authors.len(),
                REVIEWS_PER_PRODUCT,
                "product {p} repeats an author"
            );
        }
    }

    #[test]
    fn generation_is_deterministic() {
        let a = Dataset::generate();
        let b = Dataset::generate();
        assert_eq!(a.reviews[17].body, b.reviews[17].body);
        assert_eq!(a.products[3].name, b.products[3].name);
        assert_eq!(a.users[9].birth_date, b.users[9].birth_date);
        assert_eq!(a.product_index("1001"), Some(0));
        assert_eq!(a.user_index("1"), Some(0));
        assert_eq!(a.review_index("400"), Some(399));
    }
}
