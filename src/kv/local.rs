use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use moka::Expiry;
use moka::ops::compute::Op;
use tokio::sync::broadcast;

use super::cart_key;
use crate::domain::cart::Cart;
use crate::domain::events::CATALOG_TOPICS;
use crate::domain::flash::gate::{Attempt, GateAnswer, SaleGate};
use crate::domain::limits::{Acquire, Admission, Quota, gcra};
use crate::domain::primitives::Shopper;
use crate::ports::{BusError, Delivery, Event, EventBus};
use crate::ports::{Cache, CacheError, CartCache, Clock, FlashGate, GateError, LimiterError, RateLimiter};

/// Events a slow subscriber may fall behind by before it is told it lagged.
const TOPIC_BUFFER: usize = 64;
/// The catalog topic carries every stock move (each checkout's), and a lagging search indexer
/// must rebuild the whole index, so its one channel gets a deep buffer.
const CATALOG_BUFFER: usize = 16_384;
/// Forgotten topics (every subscriber gone) are pruned once per this many subscriptions.
const PRUNE_EVERY: u64 = 1024;

/// In-process pub/sub with one broadcast channel per topic, so an event costs only its own
/// topic's subscribers, however many other subscriptions are open.
#[derive(Default)]
pub struct LocalBus {
    topics: Mutex<HashMap<String, broadcast::Sender<Arc<Event>>>>,
    subscriptions: AtomicU64,
}

impl LocalBus {
    /// Hands events to this instance's subscribers.
    pub fn deliver(&self, events: &[Event]) {
        let mut topics = self.topics.lock().unwrap_or_else(PoisonError::into_inner);
        for event in events {
            if let Some(sender) = topics.get(&event.topic)
                && sender.send(Arc::new(event.clone())).is_err()
            {
                topics.remove(&event.topic);
            }
        }
    }

    fn receiver(&self, topic: &str) -> broadcast::Receiver<Arc<Event>> {
        let mut topics = self.topics.lock().unwrap_or_else(PoisonError::into_inner);
        if self.subscriptions.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            topics.retain(|_, sender| sender.receiver_count() > 0);
        }
        let capacity = if CATALOG_TOPICS.contains(&topic) { CATALOG_BUFFER } else { TOPIC_BUFFER };
        topics.entry(topic.to_owned()).or_insert_with(|| broadcast::channel(capacity).0).subscribe()
    }
}

#[async_trait]
impl EventBus for LocalBus {
    async fn publish(&self, events: &[Event]) -> Result<(), BusError> {
        self.deliver(events);
        Ok(())
    }

    fn subscribe(&self, topic: &str) -> BoxStream<'static, Delivery> {
        futures::stream::unfold(self.receiver(topic), |mut receiver| async move {
            match receiver.recv().await {
                Ok(event) => Some((Delivery::Event(event.as_ref().clone()), receiver)),
                Err(broadcast::error::RecvError::Lagged(_)) => Some((Delivery::Lagged, receiver)),
                Err(broadcast::error::RecvError::Closed) => None,
            }
        })
        .boxed()
    }

    fn reaches_other_instances(&self) -> bool {
        false
    }
}

#[derive(Clone)]
struct Entry<V> {
    version: i64,
    value: V,
    ttl: Duration,
}

/// Each entry lives the TTL it was put with.
struct PutTtl;

impl<V> Expiry<String, Entry<V>> for PutTtl {
    fn expire_after_create(&self, _key: &String, entry: &Entry<V>, _created_at: Instant) -> Option<Duration> {
        Some(entry.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        entry: &Entry<V>,
        _at: Instant,
        _left: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.ttl)
    }
}

/// A bounded in-process cache (moka: per-entry TTLs, eviction by recency and frequency) whose
/// entries are replaced only by a version at least as new: of documents, or of carts
/// (`LocalCartCache`).
pub struct LocalCache<V = Arc<str>> {
    entries: moka::sync::Cache<String, Entry<V>>,
}

/// Carts of this instance alone, kept as values: nobody else reads them, so they need not be
/// serialized, and a read or change need not parse a 90-line cart.
pub type LocalCartCache = LocalCache<Arc<Cart>>;

impl<V: Clone + Send + Sync + 'static> LocalCache<V> {
    pub fn new(capacity: u64) -> Self {
        Self { entries: moka::sync::Cache::builder().max_capacity(capacity).expire_after(PutTtl).build() }
    }

    fn value(&self, key: &str) -> Option<V> {
        self.entries.get(key).map(|entry| entry.value)
    }

    fn keep(&self, key: &str, version: i64, value: V, ttl: Duration) {
        // Decided under the entry's lock, so two puts of one key cannot interleave.
        self.entries.entry(key.to_owned()).and_compute_with(|current| match current {
            Some(held) if held.value().version > version => Op::Nop,
            _ => Op::Put(Entry { version, value, ttl }),
        });
    }
}

#[async_trait]
impl Cache for LocalCache {
    async fn get(&self, key: &str) -> Result<Option<String>, CacheError> {
        Ok(self.value(key).map(|value| value.to_string()))
    }

    async fn put_versioned(&self, key: &str, version: i64, value: &str, ttl: Duration) -> Result<(), CacheError> {
        self.keep(key, version, value.into(), ttl);
        Ok(())
    }
}

#[async_trait]
impl CartCache for LocalCartCache {
    async fn get(&self, owner: &Shopper) -> Result<Option<Arc<Cart>>, CacheError> {
        Ok(self.value(&cart_key(owner)))
    }

    async fn put(&self, cart: &Arc<Cart>, _json: Option<&str>, ttl: Duration) -> Result<(), CacheError> {
        self.keep(&cart_key(&cart.owner), cart.version, cart.clone(), ttl);
        Ok(())
    }
}

/// Rate-limit counts of this instance alone (the embedded default): each key's GCRA arrival time,
/// forgotten once the longest quota period has passed since its last change (by then it has
/// lapsed anyway).
pub struct LocalRateLimiter {
    arrivals: moka::sync::Cache<String, i64>,
    clock: Arc<dyn Clock>,
}

impl LocalRateLimiter {
    pub fn new(capacity: u64, remember: Duration, clock: Arc<dyn Clock>) -> Self {
        Self { arrivals: moka::sync::Cache::builder().max_capacity(capacity).time_to_live(remember).build(), clock }
    }
}

#[async_trait]
impl RateLimiter for LocalRateLimiter {
    async fn acquire(&self, key: &str, quota: Quota, acquire: Acquire) -> Result<Admission, LimiterError> {
        let now_ms = self.clock.now().timestamp_millis();
        let mut admission = Admission::Allowed;
        // Decided under the entry's lock, so concurrent attempts cannot both take the last one.
        self.arrivals.entry(key.to_owned()).and_compute_with(|current| {
            let (answer, store) = gcra(current.map(|entry| entry.into_value()), now_ms, quota, acquire);
            admission = answer;
            store.map_or(Op::Nop, Op::Put)
        });
        Ok(admission)
    }
}

/// Flash-sale gates of this instance alone (the embedded default): each sale's `SaleGate`,
/// decided under one lock. A sale's gate is forgotten when it ends, so no expiry is kept.
#[derive(Default)]
pub struct LocalFlashGate {
    sales: Mutex<HashMap<String, SaleGate>>,
}

impl LocalFlashGate {
    fn with<T>(&self, sale_id: &str, act: impl FnOnce(&mut SaleGate) -> T) -> Option<T> {
        self.sales.lock().unwrap_or_else(PoisonError::into_inner).get_mut(sale_id).map(act)
    }
}

#[async_trait]
impl FlashGate for LocalFlashGate {
    async fn load(&self, sale_id: &str, units: i32, tickets: Option<i64>, _ttl: Duration) -> Result<(), GateError> {
        let mut sales = self.sales.lock().unwrap_or_else(PoisonError::into_inner);
        let gate = sales.entry(sale_id.to_owned()).or_insert_with(|| SaleGate::new(units, None));
        gate.tickets = gate.tickets.or(tickets);
        Ok(())
    }

    async fn enter(&self, sale_id: &str, attempt: &Attempt<'_>, _ttl: Duration) -> Result<GateAnswer, GateError> {
        Ok(self.with(sale_id, |gate| gate.enter(attempt)).unwrap_or(GateAnswer::Unloaded))
    }

    async fn put_back(&self, sale_id: &str, shopper: Option<&str>, units: i32) -> Result<(), GateError> {
        self.with(sale_id, |gate| gate.put_back(shopper, units));
        Ok(())
    }

    async fn set_units(&self, sale_id: &str, units: i32) -> Result<(), GateError> {
        self.with(sale_id, |gate| gate.units = units);
        Ok(())
    }

    async fn rate_limited(&self, sale_id: &str) -> Result<i64, GateError> {
        Ok(self.with(sale_id, |gate| gate.rate_limited).unwrap_or_default())
    }

    async fn close(&self, sale_id: &str) -> Result<(), GateError> {
        self.sales.lock().unwrap_or_else(PoisonError::into_inner).remove(sale_id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_older_version_never_replaces_a_newer_one() {
        let cache = LocalCache::new(2);
        let ttl = Duration::from_secs(60);
        cache.put_versioned("k", 2, "two", ttl).await.expect("put");
        cache.put_versioned("k", 1, "one", ttl).await.expect("put");
        assert_eq!(cache.get("k").await.expect("get").as_deref(), Some("two"));
        cache.put_versioned("a", 1, "a", ttl).await.expect("put");
        cache.put_versioned("b", 1, "b", ttl).await.expect("put");
        cache.entries.run_pending_tasks();
        let held = ["k", "a", "b"];
        let mut present = 0;
        for key in held {
            present += usize::from(cache.get(key).await.expect("get").is_some());
        }
        assert_eq!(present, 2, "bounded to its capacity");
    }

    #[tokio::test]
    async fn a_kept_cart_is_replaced_only_by_a_newer_version() {
        let cache = LocalCartCache::new(10);
        let owner = Shopper::Guest("g".to_owned());
        let now = chrono::Utc::now();
        let first = Cart::empty(&owner, now).changed(Vec::new(), now, None);
        let second = Arc::new(first.changed(Vec::new(), now, None));
        let ttl = Duration::from_secs(60);
        cache.put(&second, None, ttl).await.expect("put");
        cache.put(&Arc::new(first), None, ttl).await.expect("put");
        assert_eq!(cache.get(&owner).await.expect("get").map(|cart| cart.version), Some(2));
        assert!(cache.get(&Shopper::Guest("other".to_owned())).await.expect("get").is_none());
    }

    #[tokio::test]
    async fn an_entry_lives_the_ttl_it_was_put_with() {
        let cache = LocalCache::new(10);
        cache.put_versioned("short", 1, "gone soon", Duration::from_millis(10)).await.expect("put");
        cache.put_versioned("long", 1, "stays", Duration::from_secs(60)).await.expect("put");
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(cache.get("short").await.expect("get"), None);
        assert_eq!(cache.get("long").await.expect("get").as_deref(), Some("stays"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_attempts_never_take_more_than_the_quota() {
        let limiter =
            Arc::new(LocalRateLimiter::new(100, Duration::from_secs(60), Arc::new(crate::domain::clock::SystemClock)));
        let attempts = (0..50).map(|_| {
            let limiter = limiter.clone();
            tokio::spawn(async move { limiter.acquire("k", Quota::per_minute(20), Acquire::Take).await })
        });
        let mut allowed = 0;
        for attempt in attempts {
            allowed += usize::from(attempt.await.expect("task").expect("acquire") == Admission::Allowed);
        }
        assert_eq!(allowed, 20);
        let other = limiter.acquire("other", Quota::per_minute(20), Acquire::Take).await.expect("acquire");
        assert_eq!(other, Admission::Allowed, "keys are counted apart");
    }

    #[tokio::test]
    async fn subscribers_get_their_topic_only() {
        let bus = LocalBus::default();
        let mut mine = bus.subscribe("cart.a");
        let event = |topic: &str| Event { topic: topic.to_owned(), payload: "{}".to_owned() };
        bus.publish(&[event("cart.b"), event("cart.a")]).await.expect("publish");
        assert_eq!(mine.next().await, Some(Delivery::Event(event("cart.a"))));
    }
}
