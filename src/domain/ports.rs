//! The traits the domain needs from the outside world. `app.rs` picks their adapters once.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::auth::model::{NewRefreshToken, RefreshTokenUse, User};
use crate::domain::cart::{Cart, CartError, CartLine, CartOwner};
use crate::domain::catalog::Money;
use crate::domain::catalog::model::{Category, Product, ProductRecord, StockLevel};
use crate::domain::checkout::{CheckoutError, CheckoutSession, CheckoutStatus, Saga, SagaStep, Totals};
use crate::domain::events::EventBus;
use crate::domain::notify::Notification;
use crate::domain::orders::{Order, OrderEvent, OrderStatus, PlacedOrder};
use crate::domain::payments::{Payment, PaymentStatus};
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
    /// Products named by catalog events written since `since` (kept an hour after publishing).
    async fn catalog_changes_since(&self, since: DateTime<Utc>) -> StoreResult<Vec<String>>;
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

/// Decides, inside the reserving transaction, which lines to reserve at what prices: given the
/// locked cart and the offers of its products, the priced lines and their totals.
pub type CheckoutDecision =
    Box<dyn FnOnce(&Cart, &HashMap<String, ProductOffer>) -> Result<(Vec<CartLine>, Totals), CheckoutError> + Send>;

#[derive(Debug, Clone)]
pub struct NewCheckout {
    pub id: String,
    pub owner: CartOwner,
    pub now: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewPayment {
    pub id: String,
    pub amount: Money,
    pub payment_method: String,
}

/// A saga taking a checkout session to pay for it.
#[derive(Debug, Clone)]
pub struct PaymentClaim {
    /// Inserted when new; otherwise moved from FAILED back to CHARGING.
    pub saga: Saga,
    pub is_new: bool,
    /// The charge attempt to record; `None` when the order goes to review uncharged.
    pub payment: Option<NewPayment>,
    pub now: DateTime<Utc>,
}

/// Everything that happens at once when a checkout becomes an order.
#[derive(Debug, Clone)]
pub struct CheckoutCompletion {
    pub saga_id: String,
    /// The completed charge: payment id and gateway reference (none for a held order).
    pub payment: Option<(String, String)>,
    pub order: PlacedOrder,
    pub status: OrderStatus,
    pub notification: Option<Notification>,
    pub now: DateTime<Utc>,
}

/// One appended order event, with what it does to stock and payment.
#[derive(Debug, Clone)]
pub struct OrderChange {
    pub owner: CartOwner,
    pub session_id: String,
    pub event: OrderEvent,
    pub restock: bool,
    /// Payment id, new status, gateway reference.
    pub payment: Option<(String, PaymentStatus, Option<String>)>,
    pub notification: Option<Notification>,
}

#[async_trait]
pub trait CheckoutStore: Send + Sync {
    /// In one transaction: locks the owner's cart, releases the owner's other open sessions that
    /// no payment holds, lets `decide` price the lines, reserves every line with one conditional
    /// update each (all or nothing: OUT_OF_STOCK names every short line), and writes the session
    /// and its reservations.
    async fn reserve_checkout(
        &self,
        checkout: &NewCheckout,
        decide: CheckoutDecision,
    ) -> Result<CheckoutSession, CheckoutError>;
    async fn checkout_session(&self, id: &str) -> StoreResult<Option<CheckoutSession>>;
    /// Moves a RESERVED session that no payment holds to `status` (CANCELLED or EXPIRED) and
    /// returns its units to stock. False when the session was not in that state.
    async fn release_checkout(&self, id: &str, status: CheckoutStatus, now: DateTime<Utc>) -> StoreResult<bool>;
    /// Open sessions past their expiry that no payment holds.
    async fn expired_checkouts(&self, now: DateTime<Utc>, limit: i64) -> StoreResult<Vec<String>>;
    async fn saga_by_key(&self, owner: &CartOwner, idempotency_key: &str) -> StoreResult<Option<Saga>>;
    async fn saga(&self, id: &str) -> StoreResult<Option<Saga>>;
    async fn sagas_in_step(&self, step: SagaStep, updated_before: DateTime<Utc>) -> StoreResult<Vec<Saga>>;
    /// In one transaction: records the saga (new, or a FAILED one retried), claims the session
    /// for it and records the charge attempt. Fails with PAYMENT_IN_PROGRESS when another
    /// request holds the key, and CONFLICT when the session cannot be paid for now.
    async fn claim_payment(&self, claim: &PaymentClaim) -> Result<Option<Payment>, CheckoutError>;
    async fn latest_payment(&self, saga_id: &str) -> StoreResult<Option<Payment>>;
    /// The attempt failed: the payment and saga become FAILED and the session is free again.
    async fn fail_payment(
        &self,
        saga_id: &str,
        payment_id: Option<&str>,
        failure: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// In one transaction: completes the saga (if it is still CHARGING; `None` otherwise) and
    /// the payment, creates the order with its first event, confirms the reservations,
    /// completes the session, removes the bought lines from the cart, queues the notification
    /// and the order event.
    async fn complete_checkout(&self, completion: &CheckoutCompletion) -> StoreResult<Option<Order>>;
    /// Undoes a charged saga that could not make its order: payment REFUNDED, stock released,
    /// session FAILED.
    async fn compensate_checkout(
        &self,
        saga_id: &str,
        payment_id: &str,
        failure: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    async fn failed_payments_since(&self, owner: &CartOwner, since: DateTime<Utc>) -> StoreResult<u64>;
}

#[async_trait]
pub trait OrderStore: Send + Sync {
    async fn orders_by_ids(&self, ids: &[String]) -> StoreResult<Vec<Order>>;
    /// The owner's orders, newest first, after the (created_at, id) cursor.
    async fn orders_of(
        &self,
        owner: &CartOwner,
        after: Option<(DateTime<Utc>, String)>,
        limit: i64,
    ) -> StoreResult<Vec<Order>>;
    async fn order_count(&self, owner: &CartOwner) -> StoreResult<u64>;
    /// Events of the orders, each order's oldest first.
    async fn order_events(&self, order_ids: &[String]) -> StoreResult<Vec<OrderEvent>>;
    async fn payments_by_ids(&self, ids: &[String]) -> StoreResult<Vec<Payment>>;
    /// A charge attempt for a held order (its review was approved).
    async fn add_payment_attempt(
        &self,
        saga_id: &str,
        payment: &NewPayment,
        now: DateTime<Utc>,
    ) -> StoreResult<Payment>;
    async fn record_payment(
        &self,
        payment_id: &str,
        status: PaymentStatus,
        failure: Option<&str>,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Appends the event if the order is still at the version before it (false otherwise) and
    /// applies it: projection, stock, payment, notification, and the order event for
    /// subscribers, in one transaction.
    async fn change_order(&self, change: &OrderChange) -> StoreResult<bool>;
}

#[async_trait]
pub trait NotificationStore: Send + Sync {
    /// Notifications due now, each leased until `lease_until` so that no other worker sends it.
    async fn claim_due_notifications(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Vec<Notification>>;
    async fn notification_sent(&self, id: &str, now: DateTime<Utc>) -> StoreResult<()>;
    /// Records a failed send; `retry_at: None` gives it up.
    async fn notification_failed(
        &self,
        id: &str,
        attempts: i32,
        retry_at: Option<DateTime<Utc>>,
        error: &str,
    ) -> StoreResult<()>;
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
pub trait Store:
    CatalogStore + UserStore + CartStore + OutboxStore + CheckoutStore + OrderStore + NotificationStore
{
    /// `postgres` or `sqlite`, for logs and readiness.
    fn backend_name(&self) -> &'static str;
    async fn ping(&self) -> StoreResult<()>;
}
