//! The catalog read cache: products, stock levels and categories held in process, in front of
//! the store, for browsing (product pages, search results, cart lines). Checkout and stock
//! reservations read the store.
//!
//! A catalog event names the products whose fields, price or stock changed; a stock event, those
//! whose stock alone changed (their product entries stay). `apply` drops what an event made
//! stale: at once on the instance that committed the change (the pool's after-commit hook), and
//! on every other instance when the event arrives through the bus. A load that overlaps a drop
//! may have read the store before that change committed, so it takes its result back out.
//! Categories never change once created, but new ones come with the products written into
//! them: a catalog event also drops the category lists and the lookups that found nothing.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::domain::catalog::model::{Category, Product, StockLevel};
use crate::domain::events::STOCK_TOPIC;
use crate::expiring::ExpiringCache;
use crate::ports::Event;

/// Product and stock entries; a catalog of this size fits whole.
const PRODUCT_ENTRIES: usize = 200_000;
const CATEGORY_ENTRIES: usize = 20_000;
/// A safety net for catalog events lost on their way (a bus outage): entries are dropped by
/// events, and this bounds how long a missed one can leave an entry stale.
const ENTRY_TTL: Duration = Duration::from_secs(60);
/// The key of the root categories' list.
const ROOTS: &str = "";

pub struct CatalogReadCache {
    products: Cache<Arc<Product>>,
    stock: Cache<StockLevel>,
    /// `None`: the store has no such category (a search filter naming a path, not an id).
    categories_by_id: Cache<Option<Category>>,
    categories_by_path: Cache<Option<Category>>,
    children: Cache<Arc<Vec<Category>>>,
    /// Counts drops, so a load can tell that one overlapped it.
    drops: AtomicU64,
}

impl Default for CatalogReadCache {
    fn default() -> Self {
        Self {
            products: Cache::new(PRODUCT_ENTRIES, ENTRY_TTL),
            stock: Cache::new(PRODUCT_ENTRIES, ENTRY_TTL),
            categories_by_id: Cache::new(CATEGORY_ENTRIES, ENTRY_TTL),
            categories_by_path: Cache::new(CATEGORY_ENTRIES, ENTRY_TTL),
            children: Cache::new(CATEGORY_ENTRIES, ENTRY_TTL),
            drops: AtomicU64::new(0),
        }
    }
}

type Cache<V> = ExpiringCache<String, V>;

impl CatalogReadCache {
    /// Drops what a catalog or stock event made stale; everything, if it names no products.
    pub fn apply(&self, event: &Event) {
        let Ok(ids) = serde_json::from_str::<Vec<String>>(&event.payload) else {
            tracing::warn!(topic = %event.topic, "a catalog event without product ids; dropping the whole cache");
            return self.drop_all();
        };
        self.drops.fetch_add(1, Ordering::SeqCst);
        for id in &ids {
            self.stock.remove(id);
        }
        if event.topic != STOCK_TOPIC {
            for id in &ids {
                self.products.remove(id);
            }
            self.children.clear();
            self.categories_by_id.clear();
            self.categories_by_path.clear();
        }
    }

    /// Drops everything (a subscriber that fell behind may have missed any change).
    pub fn drop_all(&self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
        self.products.clear();
        self.stock.clear();
        self.categories_by_id.clear();
        self.categories_by_path.clear();
        self.children.clear();
    }

    pub async fn products<E>(
        &self,
        ids: &[String],
        load: impl AsyncFnOnce(Vec<String>) -> Result<Vec<Product>, E>,
    ) -> Result<Vec<Arc<Product>>, E> {
        let load = async |missing| Ok(load(missing).await?.into_iter().map(Arc::new).collect());
        self.listed(&self.products, ids, |p| &p.id, load).await
    }

    pub async fn stock_levels<E>(
        &self,
        ids: &[String],
        load: impl AsyncFnOnce(Vec<String>) -> Result<Vec<StockLevel>, E>,
    ) -> Result<Vec<StockLevel>, E> {
        self.listed(&self.stock, ids, |s| &s.product_id, load).await
    }

    pub async fn categories_by_ids<E>(
        &self,
        ids: &[String],
        load: impl AsyncFnOnce(Vec<String>) -> Result<Vec<Category>, E>,
    ) -> Result<Vec<Category>, E> {
        self.categories(&self.categories_by_id, ids, |c| &c.id, load).await
    }

    pub async fn categories_by_paths<E>(
        &self,
        paths: &[String],
        load: impl AsyncFnOnce(Vec<String>) -> Result<Vec<Category>, E>,
    ) -> Result<Vec<Category>, E> {
        self.categories(&self.categories_by_path, paths, |c| &c.path, load).await
    }

    /// The children of each parent; a parent without children maps to an empty list.
    pub async fn children<E>(
        &self,
        parent_ids: &[String],
        load: impl AsyncFnOnce(Vec<String>) -> Result<HashMap<String, Vec<Category>>, E>,
    ) -> Result<HashMap<String, Arc<Vec<Category>>>, E> {
        self.read_through(&self.children, parent_ids, async |missing| {
            let mut found = load(missing.clone()).await?;
            Ok(missing
                .into_iter()
                .map(|parent| (parent.clone(), Arc::new(found.remove(&parent).unwrap_or_default())))
                .collect())
        })
        .await
    }

    pub async fn roots<E>(
        &self,
        load: impl AsyncFnOnce() -> Result<Vec<Category>, E>,
    ) -> Result<Arc<Vec<Category>>, E> {
        let mut found = self
            .read_through(&self.children, &[ROOTS.to_owned()], async |_| {
                Ok(HashMap::from([(ROOTS.to_owned(), Arc::new(load().await?))]))
            })
            .await?;
        Ok(found.remove(ROOTS).unwrap_or_default())
    }

    /// The product, if the cache holds it.
    pub fn held_product(&self, id: &str) -> Option<Arc<Product>> {
        self.products.get(id)
    }

    /// The stock levels the cache holds of `ids`, and the ids it lacks.
    pub fn held_stock_levels(&self, ids: &[String]) -> (HashMap<String, StockLevel>, Vec<String>) {
        held(&self.stock, ids)
    }

    /// The categories the cache holds of `ids`, and the ids it lacks (an id it knows the store
    /// lacks is in neither).
    pub fn held_categories(&self, ids: &[String]) -> (HashMap<String, Category>, Vec<String>) {
        let (found, missing) = held(&self.categories_by_id, ids);
        (found.into_iter().filter_map(|(id, category)| Some((id, category?))).collect(), missing)
    }

    /// `read_through` for values that carry their key.
    async fn listed<V, E>(
        &self,
        cache: &Cache<V>,
        keys: &[String],
        key_of: fn(&V) -> &String,
        load: impl AsyncFnOnce(Vec<String>) -> Result<Vec<V>, E>,
    ) -> Result<Vec<V>, E>
    where
        V: Clone + Send + Sync + 'static,
    {
        let load = async |missing| Ok(load(missing).await?.into_iter().map(|v| (key_of(&v).clone(), v)).collect());
        Ok(self.read_through(cache, keys, load).await?.into_values().collect())
    }

    /// `read_through` that also remembers which keys the store does not know.
    async fn categories<E>(
        &self,
        cache: &Cache<Option<Category>>,
        keys: &[String],
        key_of: fn(&Category) -> &String,
        load: impl AsyncFnOnce(Vec<String>) -> Result<Vec<Category>, E>,
    ) -> Result<Vec<Category>, E> {
        let load = async |missing: Vec<String>| {
            let mut found: HashMap<String, Option<Category>> = missing.iter().map(|key| (key.clone(), None)).collect();
            for category in load(missing).await? {
                found.insert(key_of(&category).clone(), Some(category));
            }
            Ok(found)
        };
        Ok(self.read_through(cache, keys, load).await?.into_values().flatten().collect())
    }

    /// The cached entries of `keys`, and the store's for the rest (which are then kept, unless
    /// entries were dropped while they loaded). Keys the store does not know stay out of the
    /// result.
    async fn read_through<V, E>(
        &self,
        cache: &Cache<V>,
        keys: &[String],
        load: impl AsyncFnOnce(Vec<String>) -> Result<HashMap<String, V>, E>,
    ) -> Result<HashMap<String, V>, E>
    where
        V: Clone + Send + Sync + 'static,
    {
        let (mut found, missing) = held(cache, keys);
        if missing.is_empty() {
            return Ok(found);
        }
        let drops_before = self.drops.load(Ordering::SeqCst);
        let loaded = load(missing).await?;
        for (key, value) in &loaded {
            cache.insert(key.clone(), value.clone());
        }
        // Kept first and taken back after: a drop between the check and the insert would
        // otherwise miss the entry it should have dropped.
        if self.drops.load(Ordering::SeqCst) != drops_before {
            for key in loaded.keys() {
                cache.remove(key);
            }
        }
        found.extend(loaded);
        Ok(found)
    }
}

/// The entries `cache` holds of `keys`, and the keys it lacks.
fn held<V: Clone>(cache: &Cache<V>, keys: &[String]) -> (HashMap<String, V>, Vec<String>) {
    let mut found = HashMap::with_capacity(keys.len());
    let mut missing = Vec::new();
    for key in keys {
        match cache.get(key) {
            Some(value) => {
                found.insert(key.clone(), value);
            }
            None => missing.push(key.clone()),
        }
    }
    (found, missing)
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use chrono::Utc;

    use super::*;
    use crate::domain::events::CATALOG_TOPIC;
    use crate::domain::primitives::Money;

    fn product(id: &str, cents: i64) -> Product {
        Product {
            id: id.to_owned(),
            title: "Kazoo".to_owned(),
            description: String::new(),
            brand: None,
            category_id: None,
            price: Money { cents, currency: "USD".to_owned() },
            rating: None,
            review_count: 0,
            popularity: 0,
            attributes: Vec::new(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn event(topic: &str, id: &str) -> Event {
        Event { topic: topic.to_owned(), payload: serde_json::json!([id]).to_string() }
    }

    async fn price(cache: &CatalogReadCache, id: &str, store_price: i64) -> i64 {
        let found =
            cache.products(&[id.to_owned()], async |_| Ok::<_, Infallible>(vec![product(id, store_price)])).await;
        found.expect("load")[0].price.cents
    }

    #[tokio::test]
    async fn a_read_is_kept_until_its_product_is_dropped() {
        let cache = CatalogReadCache::default();
        assert_eq!(price(&cache, "p1", 100).await, 100);
        assert_eq!(price(&cache, "p1", 200).await, 100, "the second read came from the cache");
        cache.apply(&event(CATALOG_TOPIC, "p1"));
        assert_eq!(price(&cache, "p1", 200).await, 200);
    }

    #[tokio::test]
    async fn a_stock_event_drops_the_stock_and_keeps_the_product() {
        let cache = CatalogReadCache::default();
        let ids = ["p1".to_owned()];
        let level = |available| StockLevel { product_id: "p1".to_owned(), available, reserved: 0, version: 0 };
        assert_eq!(price(&cache, "p1", 100).await, 100);
        cache.stock_levels(&ids, async |_| Ok::<_, Infallible>(vec![level(5)])).await.expect("load");
        cache.apply(&event(STOCK_TOPIC, "p1"));
        assert_eq!(price(&cache, "p1", 200).await, 100, "the product stayed");
        let stock = cache.stock_levels(&ids, async |_| Ok::<_, Infallible>(vec![level(4)])).await;
        assert_eq!(stock.expect("load")[0].available, 4, "the stock was read again");
        cache.apply(&event(CATALOG_TOPIC, "p1"));
        assert_eq!(price(&cache, "p1", 200).await, 200);
    }

    #[tokio::test]
    async fn a_load_that_overlaps_a_drop_is_not_kept() {
        let cache = CatalogReadCache::default();
        // The store answered with the old price, then the change committed and dropped p1.
        let stale = cache
            .products(&["p1".to_owned()], async |_| {
                let read = vec![product("p1", 100)];
                cache.apply(&event(CATALOG_TOPIC, "p1"));
                Ok::<_, Infallible>(read)
            })
            .await;
        assert_eq!(stale.expect("load")[0].price.cents, 100, "the caller still gets what it read");
        assert_eq!(price(&cache, "p1", 200).await, 200, "the next read goes to the store");
    }

    #[tokio::test]
    async fn unknown_keys_are_left_out_and_children_lists_cover_every_parent() {
        let cache = CatalogReadCache::default();
        let ids = ["p1".to_owned(), "nope".to_owned()];
        let found = cache.products(&ids, async |_| Ok::<_, Infallible>(vec![product("p1", 1)])).await;
        assert_eq!(found.expect("load").len(), 1);
        let unknown = ["Electronics".to_owned()];
        let looked = cache.categories_by_ids(&unknown, async |_| Ok::<_, Infallible>(Vec::new())).await;
        assert!(looked.expect("load").is_empty());
        let again = cache.categories_by_ids(&unknown, async |_| -> Result<Vec<Category>, &str> { Err("asked again") });
        assert!(again.await.expect("remembered as unknown").is_empty());
        cache.apply(&event(CATALOG_TOPIC, "p1"));
        let after = cache.categories_by_ids(&unknown, async |_| -> Result<Vec<Category>, &str> { Err("asked again") });
        assert_eq!(after.await, Err("asked again"), "a catalog write may have made it");
        let children = cache.children(&["leaf".to_owned()], async |_| Ok::<_, Infallible>(HashMap::new())).await;
        assert!(children.expect("load")["leaf"].is_empty());
    }
}
