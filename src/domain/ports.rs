//! The traits the domain needs from the outside world. `app.rs` picks their adapters once.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::auth::model::{NewRefreshToken, RefreshTokenUse, User};
use crate::domain::cart::{Cart, CartError, CartLine, CartOwner};
use crate::domain::catalog::Money;
use crate::domain::catalog::model::{Category, Product, ProductRecord, StockLevel};
use crate::domain::events::EventBus;
use crate::domain::search::SearchDocument;

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
    /// updates the products, creates their inventory rows, sets stock where a record gives it,
    /// and queues a catalog event naming the products.
    async fn upsert_catalog(&self, categories: &[Category], products: &[ProductRecord]) -> StoreResult<()>;
    /// Sets the available quantity and bumps the version; `None` when the product is unknown.
    async fn set_stock(&self, product_id: &str, available: i32) -> StoreResult<Option<StockLevel>>;
    /// Search documents in id order, after `after_id`.
    async fn search_documents(&self, after_id: Option<&str>, limit: usize) -> StoreResult<Vec<SearchDocument>>;
    async fn search_documents_by_ids(&self, ids: &[String]) -> StoreResult<Vec<SearchDocument>>;
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

/// A product as a cart sees it: today's price and the units available.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductOffer {
    pub price: Money,
    pub available: i32,
}

/// A cart to lock and maybe change, with the expiry it gets if it changes.
#[derive(Debug, Clone)]
pub struct CartKey {
    pub owner: CartOwner,
    pub expires_at: Option<DateTime<Utc>>,
}

/// What a cart decision sees, inside the transaction: the locked carts (in the order asked,
/// empty if new) and the offers of the products asked about.
#[derive(Debug, Clone)]
pub struct CartView {
    pub carts: Vec<Cart>,
    pub offers: HashMap<String, ProductOffer>,
}

/// Decides the new lines of each cart (`None`: unchanged), or refuses the change.
pub type CartDecision = Box<dyn FnOnce(&CartView) -> Result<Vec<Option<Vec<CartLine>>>, CartError> + Send>;

#[async_trait]
pub trait CartStore: Send + Sync {
    async fn cart(&self, owner: &CartOwner) -> StoreResult<Option<Cart>>;
    /// In one transaction: locks the carts (creating missing ones), runs `decide` on them, and
    /// writes each changed cart with its version bumped by one and a `cart.<owner>` event in the
    /// outbox. Concurrent changes to one cart are serialized; none is lost.
    async fn change_carts(
        &self,
        keys: &[CartKey],
        offer_ids: &[String],
        now: DateTime<Utc>,
        decide: CartDecision,
    ) -> Result<Vec<Cart>, CartError>;
    /// Deletes guest carts past their expiry and carts untouched since `untouched_since`.
    async fn delete_expired_carts(&self, now: DateTime<Utc>, untouched_since: DateTime<Utc>) -> StoreResult<u64>;
}

#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Claims up to `limit` unpublished events, oldest first, and publishes them through `bus`
    /// in one transaction: events whose publishing fails stay in the outbox for the next try.
    async fn dispatch_outbox(&self, limit: usize, now: DateTime<Utc>, bus: &dyn EventBus) -> StoreResult<usize>;
    async fn delete_published_events(&self, published_before: DateTime<Utc>) -> StoreResult<u64>;
}

#[derive(Debug, thiserror::Error)]
#[error("cache: {0}")]
pub struct CacheError(pub String);

/// A shared cache of versioned JSON documents (in-process, or Redis across instances).
#[async_trait]
pub trait Cache: Send + Sync {
    async fn get(&self, key: &str) -> Result<Option<String>, CacheError>;
    /// Stores `value` unless the entry holds a higher version, so a slow writer never replaces
    /// a newer document with an older one.
    async fn put_versioned(&self, key: &str, version: i64, value: &str, ttl: Duration) -> Result<(), CacheError>;
}

#[async_trait]
pub trait Store: CatalogStore + UserStore + CartStore + OutboxStore {
    /// `postgres` or `sqlite`, for logs and readiness.
    fn backend_name(&self) -> &'static str;
    async fn ping(&self) -> StoreResult<()>;
}
