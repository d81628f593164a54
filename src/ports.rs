//! The traits for what lies outside the process or has two adapters, gathered in one place;
//! `app.rs` picks each one's adapter once, at start. The store is not behind a trait: one
//! adapter (`db`) serves both databases, and services run their transactions on it directly.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;

use crate::domain::cart::Cart;
use crate::domain::flash::gate::{Attempt, GateAnswer};
use crate::domain::limits::{Acquire, Admission, Quota};
use crate::domain::notify::Notification;
use crate::domain::primitives::{Money, Shopper};
use crate::domain::search::{SearchDocument, SearchError, SearchHits, SearchRequest};

/// A store failure. `Conflict` is a uniqueness or constraint violation the domain can explain;
/// everything else is internal and carries the operation it happened in.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("conflict: {0}")]
    Conflict(String),
    /// A change found a write it requires (`Writes::require`) changing no row (its row had
    /// moved on): nothing of it was kept.
    #[error("refused while {0}: a write it requires changed no row")]
    Refused(&'static str),
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

/// Carts kept between reads and changes, so that neither loads the row.
#[async_trait]
pub trait CartCache: Send + Sync {
    async fn get(&self, owner: &Shopper) -> Result<Option<Arc<Cart>>, CacheError>;
    /// Keeps `cart` for `ttl` unless a newer version of it is kept. `json` is the cart
    /// serialized, when the caller has it already.
    async fn put(&self, cart: &Arc<Cart>, json: Option<&str>, ttl: Duration) -> Result<(), CacheError>;
}

/// One event as it travels: a topic (whom it concerns) and a JSON payload.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Event {
    pub topic: String,
    pub payload: String,
}

/// What a subscriber receives: an event, or word that it fell behind and missed some, so that
/// it re-reads the current state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Event(Event),
    Lagged,
}

#[derive(Debug, thiserror::Error)]
#[error("event bus: {0}")]
pub struct BusError(pub String);

#[async_trait]
pub trait EventBus: Send + Sync {
    /// Publishes to every instance's subscribers of each event's topic.
    async fn publish(&self, events: &[Event]) -> Result<(), BusError>;
    /// Deliveries for one topic on this instance, from now on.
    fn subscribe(&self, topic: &str) -> BoxStream<'static, Delivery>;
    /// Whether subscribers of other instances hear what this one publishes.
    fn reaches_other_instances(&self) -> bool;
}

#[derive(Debug, Clone)]
pub struct ChargeRequest {
    pub amount: Money,
    pub payment_method: String,
    pub idempotency_key: String,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    pub reference: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// The card was refused; nothing was charged.
    #[error("declined: {0}")]
    Declined(String),
    #[error("unknown payment method {0}")]
    UnknownPaymentMethod(String),
    /// Worth retrying: the processor did not charge this time.
    #[error("temporary failure: {0}")]
    Transient(String),
    /// The outcome is unknown (the processor did not answer); asking again with the same
    /// idempotency key tells.
    #[error("payment processor unavailable: {0}")]
    Unavailable(String),
    /// The gateway broke in a way a retry will not fix.
    #[error("{0}")]
    Failed(String),
}

#[async_trait]
pub trait PaymentGateway: Send + Sync {
    /// Charges once per idempotency key: asking again returns the first charge.
    async fn charge(&self, request: &ChargeRequest) -> Result<Charge, GatewayError>;
    /// Refunds a charge in full; idempotent per key as well.
    async fn refund(&self, reference: &str, idempotency_key: &str) -> Result<(), GatewayError>;
    /// Whether the processor knows the payment method (`UnknownPaymentMethod` if not), asked
    /// before an order is held for review, so that a made-up method is refused as bad input.
    async fn check_payment_method(&self, payment_method: &str) -> Result<(), GatewayError>;
    /// The longest one call may take before it gives up (a charge's lease is sized from it).
    fn longest_call(&self) -> std::time::Duration;
}

#[derive(Debug, thiserror::Error)]
#[error("notifier: {0}")]
pub struct NotifyError(pub String);

#[async_trait]
pub trait Notifier: Send + Sync {
    async fn send(&self, notification: &Notification) -> Result<(), NotifyError>;
}

#[derive(Debug, thiserror::Error)]
#[error("rate limiter: {0}")]
pub struct LimiterError(pub String);

/// Counts actions per key under a quota (GCRA, `domain::limits`): in process, or in Redis where
/// every instance shares the counts.
#[async_trait]
pub trait RateLimiter: Send + Sync {
    async fn acquire(&self, key: &str, quota: Quota, acquire: Acquire) -> Result<Admission, LimiterError>;
}

#[derive(Debug, thiserror::Error)]
#[error("flash sale gate: {0}")]
pub struct GateError(pub String);

/// The front of each flash sale's stock gate (`domain::flash::gate`): in process, or in Redis
/// where every instance shares it. The store stays the truth behind it.
#[async_trait]
pub trait FlashGate: Send + Sync {
    /// Loads a sale's counters unless they are there: its units and, once its waiting room is
    /// open, the tickets handed out. They live `ttl`.
    async fn load(&self, sale_id: &str, units: i32, tickets: Option<i64>, ttl: Duration) -> Result<(), GateError>;
    /// One `joinFlashSale` attempt; what the gate writes lives `ttl`.
    async fn enter(&self, sale_id: &str, attempt: &Attempt<'_>, ttl: Duration) -> Result<GateAnswer, GateError>;
    /// Undoes an entry the store did not take (`SaleGate::put_back`).
    async fn put_back(&self, sale_id: &str, shopper: Option<&str>, units: i32) -> Result<(), GateError>;
    /// Sets a loaded sale's units to the store's count.
    async fn set_units(&self, sale_id: &str, units: i32) -> Result<(), GateError>;
    /// Attempts refused by note 16's limit so far.
    async fn rate_limited(&self, sale_id: &str) -> Result<i64, GateError>;
    /// Forgets an ended sale.
    async fn close(&self, sale_id: &str) -> Result<(), GateError>;
}

/// Injected time, so that expiries can be tested without sleeping. Times have microsecond
/// precision, which both backends store exactly, so what is written reads back equal.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

#[async_trait]
pub trait SearchIndex: Send + Sync {
    async fn search(&self, request: &SearchRequest) -> Result<SearchHits, SearchError>;
    /// Adds or replaces documents (by id); visible to searches once this returns.
    async fn upsert(&self, documents: Vec<SearchDocument>) -> Result<(), SearchError>;
    async fn document_count(&self) -> Result<u64, SearchError>;
    /// Builds a complete new index from `pages` beside the live one, then swaps it in: searches
    /// see the old contents until the new ones are whole. `snapshot_started` is when reading
    /// the pages began, so that changes made since can be applied afterwards.
    async fn replace_all(
        &self,
        pages: futures::stream::BoxStream<'_, Result<Vec<SearchDocument>, SearchError>>,
        snapshot_started: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), SearchError>;
    /// Switches to an index another process built (`shop reindex`), if there is one; returns
    /// when that index's snapshot began.
    async fn adopt_replacement(&self) -> Result<Option<chrono::DateTime<chrono::Utc>>, SearchError>;
    /// Changes whenever the searchable content changes, and differs between instances (each
    /// has its own index); cached results carry it.
    fn generation(&self) -> String;
}
