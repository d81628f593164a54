use async_graphql::{Enum, InputObject, SimpleObject};

use super::Product;
use crate::domain::search::{SearchFilter, SearchSort};

#[derive(InputObject, Debug)]
pub struct ProductFilter {
    /// Category id or path; matches the category and all its descendants.
    pub category: Option<String>,
    pub brands: Option<Vec<String>>,
    /// Minor units, inclusive.
    pub min_price: Option<i32>,
    pub max_price: Option<i32>,
    pub in_stock_only: Option<bool>,
    pub min_rating: Option<f64>,
    pub attributes: Option<Vec<AttributeFilter>>,
}

#[derive(InputObject, Debug)]
pub struct AttributeFilter {
    pub name: String,
    pub values: Vec<String>,
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Default)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum ProductSort {
    #[default]
    Relevance,
    PriceAsc,
    PriceDesc,
    Rating,
    Newest,
    Popularity,
}

#[derive(SimpleObject)]
pub struct ProductSearchResult {
    pub total_count: i32,
    pub nodes: Vec<Product>,
    pub page_info: PageInfo,
    pub facets: Vec<Facet>,
    /// The query actually run after typo correction, when it differs.
    pub corrected_query: Option<String>,
}

#[derive(SimpleObject, Clone, Debug)]
pub struct Facet {
    pub name: String,
    pub values: Vec<FacetValue>,
}

#[derive(SimpleObject, Clone, Debug)]
pub struct FacetValue {
    pub value: String,
    pub count: i32,
}

#[derive(SimpleObject, Clone, Debug)]
pub struct PageInfo {
    pub has_next_page: bool,
    pub end_cursor: Option<String>,
}

impl From<ProductSort> for SearchSort {
    fn from(sort: ProductSort) -> Self {
        match sort {
            ProductSort::Relevance => SearchSort::Relevance,
            ProductSort::PriceAsc => SearchSort::PriceAsc,
            ProductSort::PriceDesc => SearchSort::PriceDesc,
            ProductSort::Rating => SearchSort::Rating,
            ProductSort::Newest => SearchSort::Newest,
            ProductSort::Popularity => SearchSort::Popularity,
        }
    }
}

impl ProductFilter {
    /// The filter, and the category (an id or a path, resolved by the search service).
    pub fn into_domain(self) -> (SearchFilter, Option<String>) {
        let filter = SearchFilter {
            category_path: None,
            brands: self.brands.unwrap_or_default(),
            min_price: self.min_price.map(i64::from),
            max_price: self.max_price.map(i64::from),
            in_stock_only: self.in_stock_only.unwrap_or(false),
            min_rating: self.min_rating,
            attributes: self.attributes.unwrap_or_default().into_iter().map(|a| (a.name, a.values)).collect(),
        };
        (filter, self.category)
    }
}
