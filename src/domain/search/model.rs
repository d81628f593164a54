use std::hash::{Hash, Hasher};

use crate::domain::catalog::Attribute;
use crate::ports::StoreError;

pub const MAX_PAGE: usize = 100;
pub const MAX_QUERY_CHARS: usize = 256;

/// Price buckets of the `price` facet, in minor units (`lower-upper`, the last open-ended).
pub const PRICE_BUCKETS: [(i64, Option<i64>); 7] = [
    (0, Some(2_500)),
    (2_500, Some(5_000)),
    (5_000, Some(10_000)),
    (10_000, Some(25_000)),
    (25_000, Some(50_000)),
    (50_000, Some(100_000)),
    (100_000, None),
];

pub fn price_bucket(cents: i64) -> String {
    let (lower, upper) =
        PRICE_BUCKETS.iter().rev().find(|(lower, _)| cents >= *lower).copied().unwrap_or(PRICE_BUCKETS[0]);
    match upper {
        Some(upper) => format!("{lower}-{upper}"),
        None => format!("{lower}+"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub enum SearchSort {
    #[default]
    Relevance,
    PriceAsc,
    PriceDesc,
    Rating,
    Newest,
    Popularity,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct SearchFilter {
    /// A category path; matches it and its descendants.
    pub category_path: Option<String>,
    pub brands: Vec<String>,
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    pub in_stock_only: bool,
    pub min_rating: Option<f64>,
    /// (name, accepted values); a product must match every name, any of its values.
    pub attributes: Vec<(String, Vec<String>)>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SearchRequest {
    /// Trimmed; empty browses the filtered catalog.
    pub text: String,
    pub filter: SearchFilter,
    pub sort: SearchSort,
    pub limit: usize,
    pub offset: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FacetCount {
    pub value: String,
    pub count: u64,
}

/// The order facets are shown in: most frequent first, then by value.
pub fn sort_facet_counts(values: &mut [FacetCount]) {
    values.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SearchHits {
    pub total: u64,
    pub product_ids: Vec<String>,
    /// (facet name, counts): `brand`, `category`, `price`, then attribute names.
    pub facets: Vec<(String, Vec<FacetCount>)>,
    /// The query with misspelt words replaced by the indexed words that matched instead.
    pub corrected_query: Option<String>,
}

/// What the index holds of a product.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchDocument {
    pub id: String,
    pub title: String,
    pub description: String,
    pub brand: Option<String>,
    pub category_path: Option<String>,
    pub price_cents: i64,
    pub rating: Option<f64>,
    pub popularity: i64,
    pub created_at: i64,
    /// Units available; search reads only whether it is above zero (the in-stock filter).
    pub available: i32,
    pub attributes: Vec<Attribute>,
}

impl SearchDocument {
    /// A hash of what search reads of the document: equal for two versions that no search can
    /// tell apart, such as a stock that moved but stayed above zero (what most sales do).
    pub fn searchable_fingerprint(&self) -> u64 {
        let Self {
            id,
            title,
            description,
            brand,
            category_path,
            price_cents,
            rating,
            popularity,
            created_at,
            available,
            attributes,
        } = self;
        let mut hasher = std::hash::DefaultHasher::new();
        (id, title, description, brand, category_path, price_cents).hash(&mut hasher);
        (rating.map(f64::to_bits), popularity, created_at, *available > 0, attributes).hash(&mut hasher);
        hasher.finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("{field}: {message}")]
    InvalidInput { field: &'static str, message: String },
    #[error("search index: {0}")]
    Index(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SearchError {
    /// A failure of the index backend, kept as its message.
    pub fn index(err: impl std::fmt::Display) -> Self {
        SearchError::Index(err.to_string())
    }

    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        SearchError::InvalidInput { field, message: message.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document(available: i32) -> SearchDocument {
        SearchDocument {
            id: "prod-1".to_owned(),
            title: "Kazoo".to_owned(),
            description: String::new(),
            brand: Some("Acme".to_owned()),
            category_path: Some("Music".to_owned()),
            price_cents: 1_500,
            rating: Some(4.5),
            popularity: 10,
            created_at: 0,
            available,
            attributes: vec![Attribute { name: "colour".to_owned(), value: "red".to_owned() }],
        }
    }

    #[test]
    fn a_fingerprint_changes_with_what_search_reads_and_only_with_that() {
        let in_stock = document(5).searchable_fingerprint();
        assert_eq!(document(3).searchable_fingerprint(), in_stock, "a stock that stays above zero");
        assert_ne!(document(0).searchable_fingerprint(), in_stock, "out of stock");
        let repriced = SearchDocument { price_cents: 1_400, ..document(5) };
        assert_ne!(repriced.searchable_fingerprint(), in_stock);
        let rerated = SearchDocument { rating: None, ..document(5) };
        assert_ne!(rerated.searchable_fingerprint(), in_stock);
        let recoloured = SearchDocument {
            attributes: vec![Attribute { name: "colour".to_owned(), value: "blue".to_owned() }],
            ..document(5)
        };
        assert_ne!(recoloured.searchable_fingerprint(), in_stock);
    }
}
