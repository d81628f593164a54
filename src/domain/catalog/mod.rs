//! Products, categories and stock levels: validation and the rules for creating and changing them.

pub mod error;
pub mod generator;
pub mod import;
pub mod model;

pub use error::CatalogError;
pub use model::{Attribute, Category, Offer, Product, ProductDraft, StockLevel};
