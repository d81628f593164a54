//! Products, categories and stock levels: validation and the rules for creating and changing them.

pub mod error;
pub mod generator;
pub mod import;
pub mod model;
pub mod service;

pub use error::CatalogError;
pub use model::{Attribute, Category, Money, Product, ProductDraft, StockLevel};
pub use service::CatalogService;
