//! The traits the domain needs from the outside world. `app.rs` picks their adapters once.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::auth::model::{NewRefreshToken, RefreshTokenUse, User};
use crate::domain::catalog::model::{Category, Product, ProductRecord, StockLevel};

/// A store failure. `Conflict` is a uniqueness or constraint violation the domain can explain;
/// everything else is internal and carries the operation it happened in.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("store failure while {operation}: {source}")]
    Internal {
        operation: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StoreError {
    pub fn internal(operation: &'static str, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Internal { operation, source: Box::new(source) }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

#[async_trait]
pub trait CatalogStore: Send + Sync {
    async fn products_by_ids(&self, ids: &[String]) -> StoreResult<Vec<Product>>;
    async fn categories_by_ids(&self, ids: &[String]) -> StoreResult<Vec<Category>>;
    async fn categories_by_paths(&self, paths: &[String]) -> StoreResult<Vec<Category>>;
    /// Children of every given parent, in name order.
    async fn category_children(&self, parent_ids: &[String]) -> StoreResult<Vec<Category>>;
    async fn root_categories(&self) -> StoreResult<Vec<Category>>;
    async fn stock_levels(&self, product_ids: &[String]) -> StoreResult<Vec<StockLevel>>;
    async fn product_count(&self) -> StoreResult<u64>;
    /// In one transaction: inserts the categories that do not exist yet (by path), inserts or
    /// updates the products, creates their inventory rows and sets stock where a record gives it.
    async fn upsert_catalog(&self, categories: &[Category], products: &[ProductRecord]) -> StoreResult<()>;
    /// Sets the available quantity and bumps the version; `None` when the product is unknown.
    async fn set_stock(&self, product_id: &str, available: i32) -> StoreResult<Option<StockLevel>>;
}

#[async_trait]
pub trait UserStore: Send + Sync {
    /// Fails with `StoreError::Conflict` when the email is taken.
    async fn insert_user(&self, user: &User) -> StoreResult<User>;
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>>;
    async fn users_by_ids(&self, ids: &[String]) -> StoreResult<Vec<User>>;
    /// Creates the admin or promotes and re-keys an existing account of that email.
    async fn upsert_admin(&self, user: &User) -> StoreResult<User>;
    async fn insert_refresh_token(&self, token: &NewRefreshToken) -> StoreResult<()>;
    /// Marks an unused, unexpired token as used (atomically) and says what happened to it.
    async fn use_refresh_token(&self, token_hash: &str, now: DateTime<Utc>) -> StoreResult<RefreshTokenUse>;
    async fn revoke_refresh_family(&self, family_id: &str) -> StoreResult<()>;
}

#[async_trait]
pub trait Store: CatalogStore + UserStore {
    /// `postgres` or `sqlite`, for logs and readiness.
    fn backend_name(&self) -> &'static str;
    async fn ping(&self) -> StoreResult<()>;
}
