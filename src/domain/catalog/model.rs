use crate::domain::primitives::Money;
use chrono::{DateTime, Utc};

use super::CatalogError;

pub const MAX_ID_LEN: usize = 64;
pub const MAX_TITLE_LEN: usize = 300;
pub const MAX_DESCRIPTION_LEN: usize = 10_000;
pub const MAX_BRAND_LEN: usize = 100;
pub const MAX_ATTRIBUTES: usize = 50;
pub const MAX_CATEGORY_SEGMENT_LEN: usize = 80;
pub const MAX_CATEGORY_DEPTH: usize = 8;
pub const MAX_STOCK: i32 = 1_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Attribute {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Category {
    pub id: String,
    pub name: String,
    pub parent_id: Option<String>,
    /// Names from the root joined by `/`, e.g. `Home/Furniture/Sofas`.
    pub path: String,
    pub depth: i32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Product {
    pub id: String,
    pub title: String,
    pub description: String,
    pub brand: Option<String>,
    pub category_id: Option<String>,
    pub price: Money,
    pub rating: Option<f64>,
    pub review_count: i32,
    pub popularity: i64,
    pub attributes: Vec<Attribute>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockLevel {
    pub product_id: String,
    pub available: i32,
    pub reserved: i32,
    pub version: i64,
}

/// A product as a cart or a checkout sees it: today's price and the units available.
#[derive(Debug, Clone, PartialEq)]
pub struct Offer {
    pub price: Money,
    pub available: i32,
}

/// A product as the outside world describes it (admin input, import file, generator), before
/// validation and category resolution.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProductDraft {
    pub id: Option<String>,
    pub title: String,
    pub description: String,
    pub brand: Option<String>,
    pub category_path: Option<String>,
    pub price_cents: i64,
    pub currency: Option<String>,
    pub rating: Option<f64>,
    pub review_count: i32,
    pub popularity: i64,
    pub attributes: Vec<Attribute>,
    /// Available units; `None` leaves an existing product's stock as it is (new products get 0).
    pub stock: Option<i32>,
    pub created_at: Option<DateTime<Utc>>,
}

/// A validated product with its category resolved, as the store writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductRecord {
    pub product: Product,
    pub stock: Option<i32>,
}

/// Ids are opaque but bounded: letters, digits and `._:-`, so they are safe in URLs and logs.
pub fn validate_id(field: &'static str, id: &str) -> Result<(), CatalogError> {
    let well_formed = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    if well_formed {
        Ok(())
    } else {
        Err(CatalogError::invalid(field, format!("malformed id: expected 1 to {MAX_ID_LEN} letters, digits or ._:-")))
    }
}

/// Splits a category path into its trimmed, non-empty segment names.
pub fn parse_category_path(path: &str) -> Result<Vec<String>, CatalogError> {
    let segments: Vec<String> = path.split('/').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
    if segments.is_empty() {
        return Err(CatalogError::invalid("categoryPath", "must name at least one category"));
    }
    if segments.len() > MAX_CATEGORY_DEPTH {
        return Err(CatalogError::invalid("categoryPath", format!("at most {MAX_CATEGORY_DEPTH} levels")));
    }
    if segments.iter().any(|s| s.chars().count() > MAX_CATEGORY_SEGMENT_LEN) {
        return Err(CatalogError::invalid(
            "categoryPath",
            format!("each level is at most {MAX_CATEGORY_SEGMENT_LEN} characters"),
        ));
    }
    Ok(segments)
}

/// Every level of a parsed path, root first. A category's id is derived from its path, so the
/// same path always yields the same id on every instance and every run.
pub fn category_levels(segments: &[String]) -> Vec<Category> {
    let mut levels: Vec<Category> = Vec::with_capacity(segments.len());
    for (depth, name) in segments.iter().enumerate() {
        let parent = levels.last();
        let path = match parent {
            Some(parent) => format!("{}/{}", parent.path, name),
            None => name.clone(),
        };
        let id = match parent {
            Some(parent) => format!("{}.{}", parent.id, slug(name)),
            None => slug(name),
        };
        levels.push(Category {
            id,
            name: name.clone(),
            parent_id: parent.map(|p| p.id.clone()),
            path,
            depth: depth as i32,
        });
    }
    levels
}

fn slug(name: &str) -> String {
    let mut slug = String::with_capacity(name.len());
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let trimmed = slug.trim_end_matches('-');
    if trimmed.is_empty() { "category".to_owned() } else { trimmed.to_owned() }
}

fn check_len(field: &'static str, value: &str, min: usize, max: usize) -> Result<(), CatalogError> {
    let len = value.chars().count();
    if len < min || len > max {
        return Err(CatalogError::invalid(field, format!("must be {min} to {max} characters, got {len}")));
    }
    Ok(())
}

pub fn validate_currency(code: &str) -> Result<(), CatalogError> {
    if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(CatalogError::invalid("currencyCode", "must be an ISO-4217 code such as USD"))
    }
}

pub fn validate_stock(quantity: i32) -> Result<(), CatalogError> {
    if (0..=MAX_STOCK).contains(&quantity) {
        Ok(())
    } else {
        Err(CatalogError::invalid("quantity", format!("must be 0 to {MAX_STOCK}")))
    }
}

impl ProductDraft {
    /// Checks every field; the first problem found is returned with the field it concerns.
    pub fn validate(&self) -> Result<(), CatalogError> {
        if let Some(id) = &self.id {
            validate_id("id", id)?;
        }
        check_len("title", self.title.trim(), 1, MAX_TITLE_LEN)?;
        check_len("description", &self.description, 0, MAX_DESCRIPTION_LEN)?;
        if let Some(brand) = &self.brand {
            check_len("brand", brand.trim(), 1, MAX_BRAND_LEN)?;
        }
        if let Some(path) = &self.category_path {
            parse_category_path(path)?;
        }
        if !(0..=i64::from(i32::MAX)).contains(&self.price_cents) {
            return Err(CatalogError::invalid("priceCents", "must be 0 or more minor units"));
        }
        if let Some(currency) = &self.currency {
            validate_currency(currency)?;
        }
        if let Some(rating) = self.rating
            && !(0.0..=5.0).contains(&rating)
        {
            return Err(CatalogError::invalid("rating", "must be between 0 and 5"));
        }
        if self.review_count < 0 {
            return Err(CatalogError::invalid("reviewCount", "must not be negative"));
        }
        if self.popularity < 0 {
            return Err(CatalogError::invalid("popularity", "must not be negative"));
        }
        if self.attributes.len() > MAX_ATTRIBUTES {
            return Err(CatalogError::invalid("attributes", format!("at most {MAX_ATTRIBUTES}")));
        }
        for attribute in &self.attributes {
            check_len("attributes.name", attribute.name.trim(), 1, 50)?;
            check_len("attributes.value", attribute.value.trim(), 1, 200)?;
        }
        if let Some(stock) = self.stock {
            validate_stock(stock)?;
        }
        Ok(())
    }
}
